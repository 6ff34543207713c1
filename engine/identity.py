"""Customer identity: workflow ids and what of a profile may enter Temporal history.

Contact details (email, phone, name, address) never go into workflow ids, search
attributes or history: traits are redacted before they reach a workflow, and a customer id
that looks like contact data is replaced by its hash in the workflow id."""

from __future__ import annotations

import hashlib
import re
from typing import Any

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
WORKFLOW_PREFIX = "customer-"


def is_contact_like(value: str) -> bool:
    """An email, or a formatted phone number (``+49 170 ...``). Plain digit strings are
    not: numeric customer ids are common and show as they are."""
    return "@" in value or (
        not value.isdigit() and bool(_PHONE.match(value)) and sum(c.isdigit() for c in value) >= 7
    )


def customer_key(customer_id: str) -> str:
    """The id used in Temporal: the customer id itself when it is safe to show, else a hash."""
    if _SAFE_ID.match(customer_id) and not is_contact_like(customer_id):
        return customer_id
    return "h-" + hashlib.sha256(customer_id.encode()).hexdigest()[:32]


def workflow_id(customer_id: str) -> str:
    """The id of the customer's entity workflow."""
    return WORKFLOW_PREFIX + customer_key(customer_id)


_CONTACT_PARTS = frozenset(
    {
        "email",
        "mail",
        "phone",
        "mobile",
        "address",
        "street",
        "zip",
        "zipcode",
        "postal",
        "postcode",
        "birthday",
        "birthdate",
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
        "firstname",
        "lastname",
        "full_name",
        "fullname",
        "display_name",
        "username",
        "surname",
    }
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _is_contact_key(key: str) -> bool:
    norm = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    norm = re.sub(r"[^a-z0-9]+", "_", norm.lower()).strip("_")
    return (
        norm in _CONTACT_NAMES
        or bool(set(norm.split("_")) & _CONTACT_PARTS)
        or norm.replace("_", "") in _CONTACT_PARTS | _CONTACT_NAMES
    )


def _is_contact_value(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    digits = sum(c.isdigit() for c in text)
    return bool(_EMAIL.match(text)) or (bool(_PHONE.match(text)) and digits >= 7)


def redact_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Traits without contact details, for conditions in journeys. Keys that name contact
    data (email, phone, name, address, street, ...) are dropped at any depth, and so are
    values that look like an email address or a phone number, whatever their key; an
    object that held only contact data disappears with it."""
    out: dict[str, Any] = {}
    for key, value in traits.items():
        if _is_contact_key(str(key)) or _is_contact_value(value):
            continue
        if isinstance(value, dict):
            inner = redact_traits(value)
            if (value and not inner) or _looks_like_address(value):
                continue
            value = inner
        elif isinstance(value, list):
            value = [
                redact_traits(v) if isinstance(v, dict) else v
                for v in value
                if not _is_contact_value(v)
            ]
        out[str(key)] = value
    return out


def _looks_like_address(value: dict[str, Any]) -> bool:
    keys = {re.sub(r"[^a-z]", "", str(k).lower()) for k in value}
    return bool(
        keys & {"street", "city", "zip", "zipcode", "postalcode", "line1", "country"}
    ) and bool(keys & {"street", "zip", "zipcode", "postalcode", "line1"})
