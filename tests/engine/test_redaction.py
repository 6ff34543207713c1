"""What of a profile, an event and an error text may reach Temporal and the logs."""

from __future__ import annotations

import pytest

from engine.identity import (
    contact_values,
    customer_key,
    redact_properties,
    redact_traits,
    scrub_text,
    workflow_id,
)


def test_redaction_drops_names_nicknames_email_lists_and_uris_at_any_depth():
    traits = {
        "given_name": "Ann",
        "family_name": "Lee",
        "nickname": "annie",
        "middleName": "Q",
        "emails": ["ann@example.com", "a.lee@work.example"],
        "contact": "Ann Lee <ann@example.com>",
        "quoted": '"Ann Lee" <ann@example.com>',
        "call": "tel:+4930123456",
        "write": "mailto:ann@example.com",
        "matrix": [["ok", "ann@example.com"], [{"email": "x@y.example", "plan": "pro"}]],
        "people": [{"name": "Ann"}, {"role": "owner"}],
        "plan": "pro",
        "tags": ["vip", "beta"],
        "orders": 3,
    }
    assert redact_traits(traits) == {
        "matrix": [["ok"], [{"plan": "pro"}]],
        "people": [{"role": "owner"}],
        "plan": "pro",
        "tags": ["vip", "beta"],
        "orders": 3,
    }


def test_event_properties_lose_contact_details_and_survey_comments():
    props = {"revenue": 10, "email": "ann@example.com", "note": "call +49 170 5550199"}
    assert redact_properties("order_completed", props) == {"revenue": 10}
    survey = {"kind": "nps", "score": 3, "comment": "Ann here, too slow", "token": "t"}
    assert redact_properties("survey_answered", survey) == {
        "kind": "nps",
        "score": 3,
        "token": "t",
        "has_comment": True,
    }
    assert redact_properties("survey_answered", {"score": 9, "comment": None}) == {
        "score": 9,
        "has_comment": False,
    }


def test_contact_values_are_the_strings_to_scrub():
    traits = {"first_name": "Ann", "address": {"street": "Main 1"}, "plan": "pro", "x": "a@b.de"}
    assert sorted(contact_values(traits)) == ["Ann", "Main 1", "a@b.de"]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "smtp 127.0.0.1:1025 refused ann@example.com: 550",
            "smtp 127.0.0.1:1025 refused <email>: 550",
        ),
        ('550 no such user "Ann Lee" <ann@example.com>', "550 no such user <email>"),
        ("400: number +49 170 5550199 invalid", "400: number <phone> invalid"),
        ("call (030) 123-4567 now", "call <phone> now"),
        ("tel:+4930123456", "tel:<phone>"),
        # what is not a phone number stays
        (
            "at 2026-12-01 18:39:02 after 30.0s (503, try 3 of 5)",
            "at 2026-12-01 18:39:02 after 30.0s (503, try 3 of 5)",
        ),
        (
            "to 192.168.100.200 order-1234567 /v1/c/1234567",
            "to 192.168.100.200 order-1234567 /v1/c/1234567",
        ),
    ],
)
def test_scrub_text(text: str, want: str):
    assert scrub_text(text) == want


def test_scrub_text_replaces_known_values_whatever_their_case():
    assert (
        scrub_text("SMS for ANN CANARY refused", ["Ann Canary", "x"])
        == "SMS for <redacted> refused"
    )


def test_contact_like_ids_get_a_keyed_hash_and_safe_ids_stay():
    cid = "ann@example.com"
    keyed = customer_key(cid, "s" * 32)
    assert keyed.startswith("k-") and len(keyed) == 34
    assert keyed != customer_key(cid, "t" * 32)  # without the secret, no dictionary attack
    assert customer_key(cid).startswith("h-")  # the legacy form the workflow still uses
    assert workflow_id(cid, "s" * 32) == f"customer-{keyed}"
    assert workflow_id("user_1", "s" * 32) == "customer-user_1"
