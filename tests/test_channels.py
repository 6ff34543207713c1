"""Delivery channels against real local servers: email through a recording SMTP server
(plain, STARTTLS + login, refusals), SMS and webhooks through a recording HTTP server
(signatures, idempotency keys, retries, timeouts), the SSRF guard, and the development mail
catcher with its API route."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time

import pytest
from pydantic_settings import SettingsConfigDict

from channels import (
    Email,
    PermanentDeliveryError,
    TransientDeliveryError,
    message_id,
    post_webhook,
    send_email,
    send_sms,
    sign,
    verify,
)
from channels.guard import why_blocked
from devstack.stack import free_port
from settings import Settings
from tests.standins import RecordingHTTPServer, RecordingSMTPServer, Reply


class IsolatedSettings(Settings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")


def settings(**env: str) -> Settings:
    """Settings from these values (not from a developer's .data/stack.env)."""
    return IsolatedSettings.model_validate(env)


def welcome(**kw) -> Email:
    fields = {
        "to": "Ann Lee <ann@example.com>",
        "subject": "Welcome, Ann",
        "text": "Hello Ann",
        "html": "<p>Hello <b>Ann</b></p>",
        "idempotency_key": "c42:lifecycle:new:1",
    }
    return Email(**(fields | kw))


# -- email --------------------------------------------------------------------------------


async def test_email_is_multipart_with_idempotent_headers():
    async with RecordingSMTPServer() as smtp:
        cfg = settings(**smtp.env(), JOURNEYS_MAIL_FROM="Shop <hello@shop.example>")
        email = welcome(unsubscribe_url="http://x.test/u/tok", reply_to="help@shop.example")
        sent = await send_email(cfg, email)
        again = await send_email(cfg, email)
        other = await send_email(cfg, welcome(idempotency_key="c42:lifecycle:new:2"))
    digest = hashlib.sha256(b"c42:lifecycle:new:1").hexdigest()[:32]
    assert (
        sent
        == again
        == f"<{digest}@shop.example>"
        == message_id(email.idempotency_key, cfg.mail_from)
    )
    assert other != sent
    first = smtp.mail[0]
    assert first.mail_from == "hello@shop.example" and first.rcpt_tos == ["ann@example.com"]
    msg = first.message
    assert msg["Message-ID"] == sent == smtp.mail[1].message["Message-ID"]
    assert msg["Subject"] == "Welcome, Ann" and msg["To"] == "Ann Lee <ann@example.com>"
    assert msg["X-Journeys-Idempotency-Key"] == "c42:lifecycle:new:1"
    assert msg["List-Unsubscribe"] == "<http://x.test/u/tok>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Reply-To"] == "help@shop.example"
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain and plain.get_content().strip() == "Hello Ann"
    assert html and html.get_content().strip() == "<p>Hello <b>Ann</b></p>"
    assert "List-Unsubscribe" not in smtp.mail[2].message


async def test_email_with_one_part():
    async with RecordingSMTPServer() as smtp:
        cfg = settings(**smtp.env())
        await send_email(cfg, welcome(html=None))
        await send_email(cfg, welcome(text=None))
    assert [m.message.get_content_type() for m in smtp.mail] == ["text/plain", "text/html"]
    with pytest.raises(PermanentDeliveryError, match="neither a text nor an HTML part"):
        await send_email(cfg, welcome(text=None, html=None))


async def test_email_over_starttls_with_login(monkeypatch):
    async with RecordingSMTPServer(starttls=True, login=("journeys", "s3cret")) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert_path))  # trust its self-signed cert
        await send_email(settings(**smtp.env()), welcome())
        assert smtp.mail[0].tls and smtp.mail[0].login == "journeys"
        wrong = settings(**smtp.env() | {"SMTP_PASSWORD": "nope"})
        with pytest.raises(PermanentDeliveryError, match="SMTP_USERNAME and SMTP_PASSWORD"):
            await send_email(wrong, welcome())
        anonymous = settings(**smtp.env() | {"SMTP_USERNAME": "", "SMTP_PASSWORD": ""})
        with pytest.raises(PermanentDeliveryError, match=r"530.*SMTP_USERNAME"):
            await send_email(anonymous, welcome())
    assert len(smtp.mail) == 1


async def test_email_refusals_are_classified():
    replies = ["451 4.7.1 greylisted, try later", "554 5.7.1 message rejected"]
    async with RecordingSMTPServer(replies=replies, refuse={"gone@example.com"}) as smtp:
        cfg = settings(**smtp.env())
        with pytest.raises(TransientDeliveryError, match="451"):
            await send_email(cfg, welcome())
        with pytest.raises(PermanentDeliveryError, match="554"):
            await send_email(cfg, welcome())
        with pytest.raises(
            PermanentDeliveryError, match=re.escape("refused gone@example.com: 550")
        ):
            await send_email(cfg, welcome(to="gone@example.com"))
        for bad in ("not-an-address", "ann@example.com\r\nBcc: eve@example.com", ""):
            with pytest.raises(PermanentDeliveryError):
                await send_email(cfg, welcome(to=bad))
        with pytest.raises(PermanentDeliveryError, match=r"linefeed|line break"):
            await send_email(cfg, welcome(subject="Hi\r\nBcc: eve@example.com"))
    assert smtp.mail == [] and len(smtp.rejected) == 2


async def test_email_unreachable_or_silent_server_is_transient():
    with pytest.raises(TransientDeliveryError, match="could not send"):
        await send_email(settings(SMTP_PORT=str(free_port())), welcome())

    done, closed = asyncio.Event(), asyncio.Event()

    async def silent(reader, writer):  # accepts, never greets
        await done.wait()
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="Timed out"):
        await send_email(settings(SMTP_PORT=str(port), SMTP_TIMEOUT_SECONDS="0.3"), welcome())
    assert time.monotonic() - started < 3
    done.set()
    await closed.wait()
    server.close()
    await server.wait_closed()


# -- SMS and webhooks ---------------------------------------------------------------------


def http_settings(server: RecordingHTTPServer, **env: str) -> Settings:
    return settings(
        JOURNEYS_SMS_URL=f"{server.url}/v1/sms",
        JOURNEYS_OUTBOUND_ALLOW="127.0.0.1",
        JOURNEYS_OUTBOUND_TIMEOUT_SECONDS="0.3",
        **env,
    )


async def test_sms_posts_json_with_token_and_idempotency_key():
    script = [
        Reply(201, {"sid": "SM123"}),
        Reply(202, headers={"X-Request-Id": "req-9"}),
        Reply(202),
    ]
    async with RecordingHTTPServer(script=script) as server:
        cfg = http_settings(server, JOURNEYS_SMS_TOKEN="tok")
        ids = [
            await send_sms(cfg, to="+49 (151) 123-456", body="Hi Ann", idempotency_key=f"k{i}")
            for i in range(3)
        ]
    assert ids == ["SM123", "req-9", "HTTP 202"]
    first = server.deliveries[0]
    assert (first.method, first.path) == ("POST", "/v1/sms")
    assert first.json() == {"to": "+49151123456", "body": "Hi Ann"}
    assert first.header("authorization") == "Bearer tok"
    assert first.header("idempotency-key") == "k0"
    assert first.header("content-type") == "application/json"


async def test_the_configured_sms_provider_may_be_private():
    async with RecordingHTTPServer() as server:
        cfg = settings(JOURNEYS_SMS_URL=f"{server.url}/sms")  # no JOURNEYS_OUTBOUND_ALLOW
        assert await send_sms(cfg, to="+491511234", body="x", idempotency_key="k") == "rec_1"
        with pytest.raises(PermanentDeliveryError, match="loopback"):  # webhooks still guarded
            await post_webhook(cfg, url=f"{server.url}/hook", payload={}, idempotency_key="k")
    assert [r.path for r in server.requests] == ["/sms"]


async def test_sms_needs_a_provider_and_a_number():
    with pytest.raises(PermanentDeliveryError, match="set JOURNEYS_SMS_URL"):
        await send_sms(settings(), to="+491511234", body="x", idempotency_key="k")
    async with RecordingHTTPServer() as server:
        with pytest.raises(PermanentDeliveryError, match="not a phone number"):
            await send_sms(
                http_settings(server), to="ann@example.com", body="x", idempotency_key="k"
            )
        with pytest.raises(PermanentDeliveryError, match=r"401.*JOURNEYS_SMS_TOKEN"):
            server.script.append(Reply(401, "bad token"))
            await send_sms(http_settings(server), to="+491511234", body="x", idempotency_key="k")
    assert len(server.requests) == 1


async def test_webhook_is_signed_stripe_style():
    async with RecordingHTTPServer() as server:
        cfg = http_settings(server, JOURNEYS_WEBHOOK_SECRET="whsec_test")
        payload = {"event": "vip", "customer": {"id": "c42"}, "amount": 6000}
        await post_webhook(
            cfg, url=f"{server.url}/hooks/vip?x=1", payload=payload, idempotency_key="w1"
        )
    got = server.deliveries[0]
    assert got.path == "/hooks/vip?x=1" and got.json() == payload
    header = got.header("journeys-signature")
    assert header is not None
    assert verify("whsec_test", header, got.body)
    t = int(header.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 60
    expected = hmac.new(b"whsec_test", f"{t}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}" == sign("whsec_test", t, got.body)
    assert not verify("other", header, got.body)
    assert not verify("whsec_test", header, got.body + b" ")
    assert not verify("whsec_test", header, got.body, now=t + 301)
    assert verify("whsec_test", header, got.body, now=t + 299)
    assert verify("whsec_test", f"t={t},v1=00,v1={expected}", got.body)  # rotation
    assert not verify("whsec_test", "garbage", got.body)


async def test_unsigned_webhook_without_secret():
    async with RecordingHTTPServer() as server:
        await post_webhook(http_settings(server), url=server.url, payload={}, idempotency_key="w")
    assert server.deliveries[0].header("journeys-signature") is None


async def test_503_is_retried_with_the_same_key_and_delivered_once():
    async with RecordingHTTPServer(
        script=[Reply(503), Reply(502), Reply(200, {"id": "ok"})]
    ) as server:
        cfg = http_settings(server, JOURNEYS_WEBHOOK_SECRET="s")
        assert (
            await post_webhook(cfg, url=server.url, payload={"a": 1}, idempotency_key="w7") == "ok"
        )
    assert len(server.requests) == 3 and len(server.deliveries) == 1
    assert {r.header("idempotency-key") for r in server.requests} == {"w7"}
    assert len({r.body for r in server.requests}) == 1


async def test_a_slow_provider_gets_the_same_key_and_does_not_deliver_twice():
    async with RecordingHTTPServer(script=[Reply(200, {"id": "m1"}, delay=1.0)]) as server:
        sms_id = await send_sms(
            http_settings(server), to="+491511234", body="x", idempotency_key="s1"
        )
    assert sms_id == "m1"  # the replay of the first, timed-out answer
    assert len(server.requests) == 2 and len(server.deliveries) == 1


async def test_timeouts_and_5xx_become_transient_after_a_few_tries():
    async with RecordingHTTPServer(script=[Reply(200, delay=1.0)] * 3, idempotent=False) as server:
        started = time.monotonic()
        with pytest.raises(TransientDeliveryError, match=r"timed out after 0.3s"):
            await post_webhook(
                http_settings(server), url=server.url, payload={}, idempotency_key="k"
            )
        assert time.monotonic() - started < 3
        assert len(server.requests) == 3
        server.script[:] = [Reply(500, "boom")] * 3
        with pytest.raises(TransientDeliveryError, match="500 Internal Server Error: boom"):
            await post_webhook(
                http_settings(server), url=server.url, payload={}, idempotency_key="k"
            )
        assert len(server.requests) == 6
    with pytest.raises(TransientDeliveryError, match="failed"):  # connection refused
        await post_webhook(
            http_settings(server),
            url=f"http://127.0.0.1:{free_port()}/",
            payload={},
            idempotency_key="k",
        )


async def test_4xx_is_permanent_and_not_retried():
    async with RecordingHTTPServer(script=[Reply(400, {"error": "bad payload"})]) as server:
        with pytest.raises(
            PermanentDeliveryError, match=re.escape('refused with 400 Bad Request: {"error"')
        ):
            await post_webhook(
                http_settings(server), url=server.url, payload={}, idempotency_key="k"
            )
    assert len(server.requests) == 1


async def test_retry_after_is_honoured_within_a_cap():
    script = [Reply(429, headers={"Retry-After": "1"}), Reply(200)]
    async with RecordingHTTPServer(script=script) as server:
        started = time.monotonic()
        await post_webhook(http_settings(server), url=server.url, payload={}, idempotency_key="k")
        assert time.monotonic() - started >= 0.95
        server.script.append(Reply(503, headers={"Retry-After": "120"}))
        with pytest.raises(TransientDeliveryError, match="retry after 120s"):
            await post_webhook(
                http_settings(server), url=server.url, payload={}, idempotency_key="k2"
            )
    assert len(server.requests) == 3  # the long pause is left to Temporal's retries


# -- SSRF guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://10.0.0.5/hook",
            "10.0.0.5 is a private address; add it to JOURNEYS_OUTBOUND_ALLOW",
        ),
        ("http://169.254.169.254/latest/meta-data", "the cloud metadata address"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://[::ffff:10.0.0.5]/", "an IPv4-mapped private address"),
        ("http://0.0.0.0:80/", "an unspecified address"),
        ("http://100.64.0.1/", "not a public address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
async def test_guard_refuses_non_public_targets(url, reason):
    with pytest.raises(PermanentDeliveryError, match=f"refusing to call .*{reason}"):
        await post_webhook(settings(), url=url, payload={}, idempotency_key="k")


async def test_guard_exact_message():
    with pytest.raises(PermanentDeliveryError) as caught:
        await post_webhook(settings(), url="http://10.0.0.5/hook", payload={}, idempotency_key="k")
    assert str(caught.value) == (
        "refusing to call http://10.0.0.5/hook: 10.0.0.5 is a private address; add it to"
        " JOURNEYS_OUTBOUND_ALLOW if this is intended"
    )


async def test_guard_refuses_loopback_unless_allowed():
    async with RecordingHTTPServer() as server:
        port = server.port
        for url in (
            f"http://127.0.0.1:{port}/",
            f"http://[::1]:{port}/",
            f"http://localhost:{port}/",
        ):
            with pytest.raises(PermanentDeliveryError, match="loopback address"):
                await post_webhook(settings(), url=url, payload={}, idempotency_key="k")
        assert server.requests == []
        for allow, url in [
            ("127.0.0.1", f"http://127.0.0.1:{port}/a"),
            ("10.0.0.0/8, 127.0.0.0/8", f"http://127.0.0.1:{port}/b"),
            ("LOCALHOST", f"http://localhost:{port}/c"),  # pinned: ::1 refused, then 127.0.0.1
        ]:
            cfg = settings(JOURNEYS_OUTBOUND_ALLOW=allow)
            await post_webhook(cfg, url=url, payload={}, idempotency_key="k" + allow)
    assert [r.path for r in server.deliveries] == ["/a", "/b", "/c"]
    assert server.deliveries[2].header("host") == f"localhost:{port}"  # name kept, IP dialled


async def test_redirects_are_not_followed():
    script = [Reply(302, headers={"Location": "http://10.0.0.5/internal"})]
    async with RecordingHTTPServer(script=script) as server:
        with pytest.raises(
            PermanentDeliveryError, match=re.escape("redirecting to http://10.0.0.5/internal")
        ):
            await post_webhook(
                http_settings(server), url=server.url, payload={}, idempotency_key="k"
            )
    assert len(server.requests) == 1


def test_public_addresses_pass():
    import ipaddress

    for ip in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert why_blocked(ipaddress.ip_address(ip)) is None
    assert why_blocked(ipaddress.ip_address("::1")) == "a loopback address"


def test_idempotency_keys_are_safe_header_values():
    from channels import header_key

    assert header_key("c1/lifecycle/1/2/enter:vip/0") == "c1/lifecycle/1/2/enter:vip/0"
    for odd in ("jürgen/lifecycle/1/1/enter:new/0", "a\nb/x", "x" * 300, "with space"):
        safe = header_key(odd)
        assert safe.startswith("sha256:") and len(safe) == 71 and safe == header_key(odd)
