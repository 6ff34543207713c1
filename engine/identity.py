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
CONTACT_TRAITS = frozenset(
    {
        "email",
        "phone",
        "mobile",
        "name",
        "first_name",
        "last_name",
        "firstname",
        "lastname",
        "full_name",
        "address",
        "street",
        "city",
        "postal_code",
        "zip",
        "zipcode",
        "birthday",
        "ip",
        "username",
    }
)
WORKFLOW_PREFIX = "customer-"


def is_contact_like(value: str) -> bool:
    return "@" in value or bool(_PHONE.match(value))


def customer_key(customer_id: str) -> str:
    """The id used in Temporal: the customer id itself when it is safe to show, else a hash."""
    if _SAFE_ID.match(customer_id) and not is_contact_like(customer_id):
        return customer_id
    return "h-" + hashlib.sha256(customer_id.encode()).hexdigest()[:32]


def workflow_id(customer_id: str) -> str:
    """The id of the customer's entity workflow."""
    return WORKFLOW_PREFIX + customer_key(customer_id)


def redact_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Traits without contact details, for conditions in journeys. ``address`` objects,
    emails and phone numbers are dropped whatever their key says."""
    out: dict[str, Any] = {}
    for key, value in traits.items():
        norm = re.sub(r"[^a-z0-9]", "_", str(key).lower())
        if norm in CONTACT_TRAITS or norm.replace("_", "") in CONTACT_TRAITS:
            continue
        if isinstance(value, str) and "@" in value and "." in value.split("@")[-1]:
            continue
        out[str(key)] = value
    return out
