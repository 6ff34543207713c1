"""The SSRF guard: outbound HTTP reaches public addresses only, unless configured.

A webhook URL is written by ops (or, one day, by a customer), so a call to it must not be
able to reach the database, the Temporal frontend or a cloud metadata service inside our
network. Every connection goes through :class:`GuardedTransport`, which resolves the host
once, checks every address it resolves to, and then connects to the checked address itself
(the Host header and TLS SNI keep the original name): a DNS answer that changes between the
check and the connection (rebinding) therefore cannot slip through. Because the check is in
the transport, it applies to every hop; callers also do not follow redirects.

``JOURNEYS_OUTBOUND_ALLOW`` lists hosts, addresses and networks (comma-separated) that may
be private anyway, e.g. ``127.0.0.1,sms.internal,10.1.0.0/16``."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import PermanentDeliveryError, TransientDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# AWS/GCP/Azure/OpenStack metadata (IPv4) and AWS's IPv6 metadata endpoint
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


@dataclass(frozen=True)
class AllowList:
    """Hosts (lower case) and networks that may be called although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """``"127.0.0.1, sms.internal, 10.0.0.0/8"`` (the JOURNEYS_OUTBOUND_ALLOW format)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip in net for net in self.networks if net.version == ip.version)


# IANA's special-purpose address registries (iana.org/assignments/iana-ipv4-special-registry
# and iana-ipv6-special-registry), the entries that are not globally reachable, listed by
# hand: Python's ``is_global`` changes between versions and missed 192.0.0.0/24 on ours.
# Addresses that wrap an IPv4 address (IPv4-mapped, 6to4, Teredo) are unwrapped first.
SPECIAL_PURPOSE: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "'this network'"),
        ("10.0.0.0/8", "private-use"),
        ("100.64.0.0/10", "shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private-use"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "private-use"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "limited broadcast"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("64:ff9b::/96", "IPv4-IPv6 translation"),
        ("64:ff9b:1::/48", "local-use IPv4-IPv6 translation"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "dummy IPv6 prefix"),
        ("2001:2::/48", "benchmarking"),
        ("2001:10::/28", "deprecated ORCHID"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing SIDs"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "deprecated site-local"),
        ("ff00::/8", "multicast"),
    )
)
_6TO4 = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def _wrapped(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, with what carries them: a connection to
    it may end at them (a 6to4 relay, a Teredo relay, the host's own IPv4 stack)."""
    if ip.ipv4_mapped is not None:
        return [("IPv4-mapped", ip.ipv4_mapped)]
    if ip in _6TO4 and ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo", client), ("Teredo", server)]
    return []


def why_blocked(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"a private address"``), or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        for how, inner in _wrapped(ip):
            reason = why_blocked(inner)
            if reason and how == "IPv4-mapped" and not reason.startswith("not "):
                return f"an IPv4-mapped {_bare(reason)}"
            if reason:
                return f"{'an' if how[0] in 'AEIOU' else 'a'} {how} address of {inner}, {reason}"
    if ip in METADATA:
        return "the cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    for net, name in SPECIAL_PURPOSE:
        if ip.version == net.version and ip in net:
            return f"not a public address ({name}, {net})"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:  # whatever this Python knows beyond the list above
        return "not a public address"
    return None


def _bare(reason: str) -> str:
    """``"a private address"`` -> ``"private address"``, to prefix with how it is wrapped."""
    for article in ("an ", "a ", "the "):
        if reason.startswith(article):
            return reason.removeprefix(article)
    return reason


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


async def resolve(url: httpx.URL, allow: AllowList) -> list[str]:
    """The addresses to connect to for ``url``, in order, every one of them checked.

    Raises :class:`PermanentDeliveryError` for a scheme other than http(s), an unknown host
    or any address that is not public and not allowed."""
    if url.scheme not in ("http", "https"):
        raise PermanentDeliveryError(
            f"refusing to call {url}: only http and https URLs can be called"
        )
    host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS want it
    if not host:
        raise PermanentDeliveryError(f"refusing to call {url}: the URL has no host")
    literal = _ip(host)
    if literal is not None:
        found = [literal]
    else:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise PermanentDeliveryError(
                    f"cannot call {url}: the host {host} does not exist ({exc.strerror});"
                    " check the URL"
                ) from None
            raise TransientDeliveryError(f"cannot resolve {host} for {url}: {exc}") from None
        found = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]))
            if ip not in found:
                found.append(ip)
    if not allow.allows_host(host):
        for ip in found:
            reason = why_blocked(ip)
            if reason is None or allow.allows_address(ip):
                continue
            if literal is not None:
                what, add = f"{ip} is {reason}", "it"
            else:
                what, add = f"{host} resolves to {ip}, {reason}", f"{host} or {ip}"
            raise PermanentDeliveryError(
                f"refusing to call {url}: {what}; add {add} to JOURNEYS_OUTBOUND_ALLOW"
                " if this is intended"
            )
    return [str(ip) for ip in found]


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses :func:`resolve` has checked.

    Use a new client (and so a new transport) per delivery: connections are pooled by the
    pinned address, and two host names on one address must not share a TLS connection."""

    def __init__(self, allow: AllowList, **transport_options: Any) -> None:
        self.allow = allow
        self.inner = httpx.AsyncHTTPTransport(**transport_options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await resolve(request.url, self.allow)
        last: httpx.ConnectError | None = None
        for address in addresses:  # like a browser: the next address if one is unreachable
            extensions = dict(request.extensions)
            if request.url.scheme == "https":
                extensions["sni_hostname"] = request.url.raw_host.decode("ascii")
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=address),
                headers=request.headers,  # keeps Host: the original name
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self.inner.aclose()
