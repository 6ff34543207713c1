"""The SSRF guard's address table: IANA's special-purpose ranges by an explicit list, and
IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, Teredo) judged by that address."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from channels import PermanentDeliveryError
from channels.guard import AllowList, resolve, why_blocked


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("192.0.0.192", "not a public address (IETF protocol assignments, 192.0.0.0/24)"),
        ("192.0.0.9", "not a public address (IETF protocol assignments, 192.0.0.0/24)"),
        ("100.64.0.1", "not a public address (shared address space, 100.64.0.0/10)"),
        ("198.18.0.1", "a private address"),
        ("198.19.255.255", "a private address"),
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("192.88.99.1", "not a public address (deprecated 6to4 relay anycast, 192.88.99.0/24)"),
        ("64:ff9b::7f00:1", "not a public address (IPv4-IPv6 translation, 64:ff9b::/96)"),
        ("64:ff9b::808:808", "not a public address (IPv4-IPv6 translation, 64:ff9b::/96)"),
        ("64:ff9b:1::1", "not a public address (local-use IPv4-IPv6 translation, 64:ff9b:1::/48)"),
        ("3fff::1", "not a public address (documentation, 3fff::/20)"),
        ("5f00::1", "not a public address (segment routing SIDs, 5f00::/16)"),
        ("2002:7f00:1::", "a 6to4 address of 127.0.0.1, a loopback address"),
        ("2002:a00:5::1", "a 6to4 address of 10.0.0.5, a private address"),
        ("2002:a9fe:a9fe::", "a 6to4 address of 169.254.169.254, the cloud metadata address"),
        (
            "2002:c000:c0::",
            "a 6to4 address of 192.0.0.192, not a public address"
            " (IETF protocol assignments, 192.0.0.0/24)",
        ),
        ("::ffff:127.0.0.1", "an IPv4-mapped loopback address"),
        (
            "::ffff:192.0.0.192",
            "an IPv4-mapped address of 192.0.0.192, not a public"
            " address (IETF protocol assignments, 192.0.0.0/24)",
        ),
        # Teredo: the client's address is stored inverted in the last 32 bits
        ("2001:0:808:808::80ff:fffe", "a Teredo address of 127.0.0.1, a loopback address"),
        ("2001:0:a00:1::f7f7:f7f7", "a Teredo address of 10.0.0.1, a private address"),
    ],
)
def test_special_purpose_and_wrapped_addresses_are_blocked(ip, reason):
    assert why_blocked(ipaddress.ip_address(ip)) == reason


@pytest.mark.parametrize("ip", ["93.184.216.34", "1.1.1.1", "2002:808:808::1", "2a00:1450::1"])
def test_public_addresses_and_6to4_of_a_public_one_pass(ip):
    assert why_blocked(ipaddress.ip_address(ip)) is None


async def test_the_guard_refuses_them_with_a_sentence():
    for url, said in [
        ("http://192.0.0.192/hook", "192.0.0.192 is not a public address \\(IETF protocol"),
        (
            "http://[2002:7f00:1::]:8000/",
            "2002:7f00:1:: is a 6to4 address of 127.0.0.1, a loopback address; add it",
        ),
    ]:
        with pytest.raises(PermanentDeliveryError, match=f"refusing to call .*{said}"):
            await resolve(httpx.URL(url), AllowList())


async def test_an_allow_list_entry_still_lets_one_through():
    allow = AllowList.parse("2002::/16, 192.0.0.0/24")
    assert await resolve(httpx.URL("http://[2002:7f00:1::]/"), allow) == ["2002:7f00:1::"]
    assert await resolve(httpx.URL("http://192.0.0.192/"), allow) == ["192.0.0.192"]
