"""Customer identity: workflow ids and what of a profile may enter Temporal history.

Contact details (email, phone, name, address) never go into workflow ids, search
attributes or history: traits and event properties are redacted before they reach a
workflow, provider error texts are scrubbed, and a customer id that looks like contact data
is replaced by a keyed hash (HMAC-SHA-256 with ``JOURNEYS_ID_SECRET``) in the workflow id
and the ``CustomerId`` search attribute. Everything else a workflow carries is encrypted by
the payload codec (``orchestration.codec``); these functions are for what stays in clear.

Without a secret the functions keep their first behaviour, an unsalted SHA-256: the
customer workflow calls ``customer_key(id)`` for starts that predate the ``CustomerId``
attribute, and workflows started under such ids are still found (``orchestration.customers``)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

from . import channel_kinds

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
# a date (1990-03-05) or a timestamp has the digits of a phone number but is none; journeys
# read dates such as a birthday (docs/journeys.md, "What journeys may read")
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
WORKFLOW_PREFIX = "customer-"


def is_contact_like(value: str) -> bool:
    """An email, or a formatted phone number (``+49 170 ...``). Plain digit strings are
    not: numeric customer ids are common and show as they are."""
    return "@" in value or (
        not value.isdigit() and bool(_PHONE.match(value)) and sum(c.isdigit() for c in value) >= 7
    )


def is_hashed(customer_id: str) -> bool:
    """Whether the customer's id is shown as a hash in Temporal (not as itself)."""
    return not (_SAFE_ID.match(customer_id) and not is_contact_like(customer_id))


def shown_id(customer_id: str) -> str:
    """The customer id in texts that may reach a log (action summaries): itself when it
    is safe to show, else ``[hidden]``."""
    return "[hidden]" if is_hashed(customer_id) else customer_id


def customer_key(customer_id: str, secret: str | None = None) -> str:
    """The id used in Temporal: the customer id itself when it is safe to show, else a
    keyed hash (``k-``) with ``secret``; without one, the legacy unsalted hash (``h-``)."""
    if not is_hashed(customer_id):
        return customer_id
    if secret is None:
        return "h-" + hashlib.sha256(customer_id.encode()).hexdigest()[:32]
    mac = hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256)
    return "k-" + mac.hexdigest()[:32]


def workflow_id(customer_id: str, secret: str | None = None) -> str:
    """The id of the customer's entity workflow (legacy form without ``secret``)."""
    return WORKFLOW_PREFIX + customer_key(customer_id, secret)


_CONTACT_PARTS = frozenset(
    {
        "email",
        "emails",
        "mail",
        "phone",
        "phones",
        "mobile",
        "tel",
        "telephone",
        "address",
        "addresses",
        "street",
        "zip",
        "zipcode",
        "postal",
        "postcode",
        "ip",
        "fax",
        "iban",
        "ssn",
    }
)
_CONTACT_NAMES = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "middle_name",
        "given_name",
        "family_name",
        "firstname",
        "lastname",
        "givenname",
        "familyname",
        "full_name",
        "fullname",
        "display_name",
        "nickname",
        "nick_name",
        "username",
        "user_name",
        "surname",
    }
)
# bounded parts (RFC 5321: 64 before the @, 255 after): unbounded ones made every search
# quadratic in the text's length, seconds on a 30 KB property (hostile input)
_EMAIL = re.compile(r"[^@\s<>\"'(),;:]{1,64}@[^@\s<>\"'(),;:]{1,255}\.[^@\s<>\"'(),;:.]{1,63}")
_URI = re.compile(r"^\s*(tel|mailto|sms|callto):", re.IGNORECASE)


def _is_contact_key(key: str) -> bool:
    norm = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    norm = re.sub(r"[^a-z0-9]+", "_", norm.lower()).strip("_")
    return (
        norm in _CONTACT_NAMES
        or bool(set(norm.split("_")) & _CONTACT_PARTS)
        or norm.replace("_", "") in _CONTACT_PARTS | _CONTACT_NAMES
        or key in channel_kinds.contact_traits()  # a channel's address, whatever its name
    )


def _is_contact_value(value: Any) -> bool:
    """A string holding an email address anywhere (``"Ann <ann@x.org>"`` too), a phone
    number (alone, or in international form ``+49 ...`` anywhere), or a ``tel:`` or
    ``mailto:`` URI."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    digits = sum(c.isdigit() for c in text)
    return (
        ("@" in text and bool(_EMAIL.search(text)))
        or bool(_URI.match(text))
        or (bool(_PHONE.match(text)) and digits >= 7 and not _DATE.match(text))
        or any(_phone_or_not(m) != m.group(0) for m in _INTL_PHONE.finditer(text))
    )


_DROP = object()


def _redact(value: Any) -> Any:
    """``value`` without contact details, or ``_DROP`` when nothing of it may stay."""
    if _is_contact_value(value):
        return _DROP
    if isinstance(value, dict):
        inner = redact_traits(value)
        if (value and not inner) or _looks_like_address(value):
            return _DROP
        return inner
    if isinstance(value, list):
        kept = [_redact(v) for v in value]
        return [v for v in kept if v is not _DROP]
    return value


def redact_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Traits (or event properties) without contact details, for conditions in journeys.
    Keys that name contact data (email, phone, name, given_name, nickname, address,
    street, ...) are dropped at any depth, in objects and lists alike, and so are values
    that hold an email address (``"Ann <ann@example.com>"``), a phone number or a
    ``tel:`` URI, whatever their key; an object that held only contact data disappears
    with it. Dates stay, a birthday among them: calendar timers read them, and a date
    reaches no one (payloads in Temporal are encrypted; docs/journeys.md)."""
    out: dict[str, Any] = {}
    for key, value in traits.items():
        if _is_contact_key(str(key)):
            continue
        kept = _redact(value)
        if kept is not _DROP:
            out[str(key)] = kept
    return out


# free text that people typed: stays in PostgreSQL, never travels to a workflow
_FREE_TEXT = {"survey_answered": ("comment",)}


def redact_properties(event: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An event's properties as a workflow may see them: :func:`redact_traits`, and free
    text typed by the customer (a survey's ``comment``) replaced by whether there was any
    (``has_comment``)."""
    out = redact_traits(properties)
    for name in _FREE_TEXT.get(event, ()):
        if name in properties:
            out.pop(name, None)
            out[f"has_{name}"] = bool(properties[name])
    return out


def contact_values(traits: dict[str, Any]) -> list[str]:
    """The strings in ``traits`` that are contact details (under a contact key, or
    looking like one), to scrub from texts that may quote them."""
    found: list[str] = []

    def walk(value: Any, contact: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, contact or _is_contact_key(str(k)))
        elif isinstance(value, list):
            for v in value:
                walk(v, contact)
        elif isinstance(value, str) and (contact or _is_contact_value(value)):
            found.append(value)

    walk(traits, False)
    return found


_PHONE_IN_TEXT = re.compile(r"(?<![\w./-])\+?\(?\d[\d().-]{0,20}(?: [\d().-]{1,20}){0,6}\d(?![\w])")
# dates, times and IPv4 addresses have the digits of a phone number but are none
_INTL_PHONE = re.compile(r"\+\(?\d[\d().-]{0,20}(?: [\d().-]{1,20}){0,6}\d")
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d\d:\d\d|^\d{1,3}(\.\d{1,3}){3}$")
_NAMED_EMAIL = re.compile(r"(\"[^\"]*\"\s*)?<?" + _EMAIL.pattern + r">?")


def _phone_or_not(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < 7 or _NOT_PHONE.search(text.strip()):
        return text
    return "<phone>"


def scrub_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` (a provider's error, a log line) with contact details replaced: the
    ``known`` values (the customer's contact traits, the recipient), then anything that
    looks like an email address (with a quoted display name) or a phone number."""
    for value in sorted({v.strip() for v in known if len(v.strip()) >= 3}, key=len, reverse=True):
        text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    text = _NAMED_EMAIL.sub("<email>", text)
    return _PHONE_IN_TEXT.sub(_phone_or_not, text)


def _looks_like_address(value: dict[str, Any]) -> bool:
    keys = {re.sub(r"[^a-z]", "", str(k).lower()) for k in value}
    return bool(
        keys & {"street", "city", "zip", "zipcode", "postalcode", "line1", "country"}
    ) and bool(keys & {"street", "zip", "zipcode", "postalcode", "line1"})
