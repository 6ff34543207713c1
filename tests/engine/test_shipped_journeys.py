"""The journeys shipped in rules/, through the pure interpreter."""

from __future__ import annotations

import pytest

from engine.catalog import Catalog
from engine.machine import (
    handle_event,
)
from tests.engine.support import (
    DAY,
    HOUR,
    T0,
    Trace,
    customer,
    ev,
)

SHOP = """
journey: shop
enroll:
  on: [signed_up]
start: new
states:
  new:
    on:
      order_completed: done
  done:
    final: true
"""


# --- the shipped journeys ----------------------------------------------------------------


def test_lifecycle_big_first_order_goes_straight_to_vip(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", id="o1", revenue=6000), T0)
    run = step.state.runs["lifecycle"]
    assert (run.state, run.context) == ("vip", {"orders": 1, "spent": 6000.0})
    assert [(r.from_state, r.to_state, r.cause) for r in step.transitions] == [
        (None, "new", "enroll:order_completed"),
        ("new", "vip", "event:order_completed"),
    ]
    assert [(a.kind, a.args, a.idempotency_key) for a in step.actions] == [
        (
            "send",
            {"template": "welcome", "channel": "email", "transactional": False},
            "c1/lifecycle/1/1/enter:new/0",
        ),
        ("assign_manager", {"pool": "vip"}, "c1/lifecycle/1/2/enter:vip/0"),
        (
            "send",
            {"template": "vip_welcome", "channel": "email", "transactional": False},
            "c1/lifecycle/1/2/enter:vip/1",
        ),
    ]
    assert step.actions[1].summary == "assign a vip account manager to customer c1"
    assert step.actions[2].event is not None and step.actions[2].event.id == "o1"
    assert [p.label for p in run.timers] == ["90d"]


def test_lifecycle_small_orders_add_up_to_vip(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("signed_up"))
    t.deliver(shipped, ev("order_completed", T0 + DAY, revenue=3000))
    assert t.state.runs["lifecycle"].state == "active"
    t.deliver(shipped, ev("order_completed", T0 + 2 * DAY, revenue="2000.5"))
    run = t.state.runs["lifecycle"]
    assert (run.state, run.context) == ("vip", {"orders": 2, "spent": 5000.5})


def test_lifecycle_does_not_enrol_test_customers(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("signed_up", country="test"), T0)
    assert step.state.runs == {}
    step = handle_event(shipped, customer(), ev("signed_up", country="de"), T0)
    assert step.state.runs["lifecycle"].state == "new"


def test_lead_followup_care_at_3d_task_at_7d_tag_and_close_at_30d(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("lead_created"))
    step = t.timers(shipped, T0 + 3 * DAY)
    assert [(a.kind, a.args["template"]) for a in step.actions] == [("send", "lead_care")]
    assert t.state.runs["lead_followup"].context == {"reminders": 1}
    assert t.timers(shipped, T0 + 7 * DAY - HOUR).actions == []
    step = t.timers(shipped, T0 + 7 * DAY)
    assert [
        (a.kind, a.args["title"], a.args["assignee"], a.args["due_in"]) for a in step.actions
    ] == [("task", "Call this lead", "sales", 2 * 86400)]
    step = t.timers(shipped, T0 + 30 * DAY)
    assert [(a.kind, a.args) for a in step.actions] == [
        ("tag", {"add": ["low_priority"], "remove": []})
    ]
    run = t.state.runs["lead_followup"]
    assert (run.state, run.status) == ("closed", "completed")
    assert [r.at for r in step.transitions] == [T0 + 30 * DAY]


def test_lead_followup_reply_ends_the_follow_up(shipped: Catalog):
    t = Trace(customer())
    t.deliver(shipped, ev("lead_created"))
    t.deliver(shipped, ev("Lead Replied", T0 + DAY))
    assert t.state.runs["lead_followup"].state == "engaged"
    assert t.timers(shipped, T0 + 40 * DAY).actions == []


def _surveyed(shipped: Catalog) -> Trace:
    t = Trace(customer())
    t.deliver(shipped, ev("order_delivered"))
    step = t.timers(shipped, T0 + 3 * DAY)
    assert [(a.kind, a.args) for a in step.actions] == [
        (
            "survey",
            {"kind": "nps", "template": "nps_survey", "expires_in": 14 * 86400, "channel": "email"},
        )
    ]
    return t


@pytest.mark.parametrize(
    ("properties", "final", "actions"),
    [
        ({"score": 3}, "detractor", [("task", "Call back an unhappy customer")]),
        ({"score": 0}, "detractor", [("task", "Call back an unhappy customer")]),
        ({"score": "10"}, "promoter", [("send", "referral_ask")]),
        ({"score": 9}, "promoter", [("send", "referral_ask")]),
        ({"score": 7}, "passive", []),
        ({}, "passive", []),
    ],
)
def test_nps_answer_paths(shipped: Catalog, properties: dict, final: str, actions: list):
    t = _surveyed(shipped)
    step = t.deliver(shipped, ev("survey_answered", T0 + 4 * DAY, **properties))
    run = t.state.runs["nps"]
    assert (run.state, run.status) == (final, "completed")
    assert [
        (a.kind, a.args.get("title") or a.args.get("template")) for a in step.actions
    ] == actions
    assert t.state.problems == []


def test_nps_without_an_answer_reminds_at_4d_then_ends_as_no_answer(shipped: Catalog):
    t = _surveyed(shipped)
    surveyed_at = T0 + 3 * DAY
    assert t.timers(shipped, surveyed_at + 4 * DAY - HOUR).actions == []
    step = t.timers(shipped, surveyed_at + 4 * DAY)
    assert [(a.kind, a.args["template"], a.idempotency_key) for a in step.actions] == [
        ("send", "nps_reminder", "c1/nps/1/2/after:4d:timer:1:2:4d:0/0")
    ]
    step = t.timers(shipped, surveyed_at + 30 * DAY)
    assert [(r.to_state, r.at) for r in step.transitions] == [("no_answer", surveyed_at + 10 * DAY)]
    assert t.state.runs["nps"].status == "completed"
