"""The messaging policy: loading rules/policy.yaml and the pure send/skip/defer decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import JourneyValidationError
from engine.policy import Policy, decide, load_policy

ROOT = Path(__file__).resolve().parents[2]


def policy(tmp_path: Path, text: str) -> Policy:
    (tmp_path / "policy.yaml").write_text(text)
    return load_policy(tmp_path, display_root=tmp_path)


def test_shipped_policy_loads() -> None:
    p = load_policy(ROOT / "rules")
    assert p.quiet_hours is not None and p.quiet_hours.default_time_zone == "Europe/Berlin"
    assert [c.name for c in p.frequency_caps] == ["marketing_weekly", "sms_daily"]


def test_no_policy_file_means_defaults(tmp_path: Path) -> None:
    assert load_policy(tmp_path) == Policy()


def test_policy_mistakes_point_at_file_line_col(tmp_path: Path) -> None:
    with pytest.raises(JourneyValidationError) as err:
        policy(
            tmp_path,
            "quiet_hours:\n"
            '  from: "25:00"\n'
            '  until: "09:00"\n'
            "  default_time_zone: Mars/Olympus\n"
            "  when_quite: defer\n"
            "frequency_caps:\n"
            "  - {name: weekly, max: 3, per: 7}\n",
        )
    assert [str(p) for p in err.value.problems] == [
        "policy.yaml:2:9 quiet_hours.from: '25:00' is not a time of day; write it like \"21:00\"",
        "policy.yaml:4:22 quiet_hours.default_time_zone: 'Mars/Olympus' is not a time zone; "
        "use an IANA name such as Europe/Berlin",
        "policy.yaml:5:3 quiet_hours.when_quite: unknown key 'when_quite' (did you mean "
        "'when_quiet'?); allowed here: from, until, channels, when_quiet, time_zone_trait, "
        "default_time_zone, transactional",
        "policy.yaml:7:33 frequency_caps[0].per: a bare number 7 has no unit; write a duration "
        "like 45s, 90m, 12h, 30d, 2w, 1d12h or ISO-8601 P30D / PT12H",
    ]


QUIET = """
quiet_hours: {from: "21:00", until: "09:00", default_time_zone: Europe/Berlin}
frequency_caps:
  - {name: weekly, channels: [email, sms], max: 2, per: 7d, when_exceeded: skip}
  - {name: sms_daily, channels: [sms], max: 1, per: 1d, when_exceeded: defer}
"""


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)  # Berlin is UTC+2 in June


def test_quiet_hours_defer_to_nine_local(tmp_path: Path) -> None:
    p = policy(tmp_path, QUIET)
    late = decide(
        p, channel="email", marketing=True, now=at(20), opted_out=False, time_zone=None, recent=[]
    )
    assert late.verdict == "defer" and late.until == at(7, day=11)  # 09:00 in Berlin
    assert "quiet hours 21:00-09:00 in Europe/Berlin (local time 22:00)" in late.reason
    day = decide(
        p, channel="email", marketing=True, now=at(8), opted_out=False, time_zone=None, recent=[]
    )
    assert day.verdict == "send"
    # the customer's own zone wins over the default; a bad zone falls back to the default
    ny = decide(
        p,
        channel="email",
        marketing=True,
        now=at(20),
        opted_out=False,
        time_zone="America/New_York",
        recent=[],
    )
    assert ny.verdict == "send"  # 16:00 in New York
    bad = decide(
        p,
        channel="email",
        marketing=True,
        now=at(20),
        opted_out=False,
        time_zone="nowhere",
        recent=[],
    )
    assert bad.verdict == "defer"


def test_transactional_ignores_consent_caps_and_quiet_hours(tmp_path: Path) -> None:
    p = policy(tmp_path, QUIET)
    recent = [(at(10, day=9), "email")] * 5
    d = decide(
        p,
        channel="email",
        marketing=False,
        now=at(23),
        opted_out=True,
        time_zone=None,
        recent=recent,
    )
    assert d.verdict == "send"


def test_opt_out_skips_marketing(tmp_path: Path) -> None:
    d = decide(
        policy(tmp_path, QUIET),
        channel="sms",
        marketing=True,
        now=at(10),
        opted_out=True,
        time_zone=None,
        recent=[],
    )
    assert (d.verdict, d.reason) == ("skip", "the customer opted out of sms")


def test_caps_skip_or_defer_until_the_window_frees(tmp_path: Path) -> None:
    p = policy(tmp_path, QUIET)
    two = [(at(10, day=5), "email"), (at(10, day=8), "sms")]
    skipped = decide(
        p,
        channel="email",
        marketing=True,
        now=at(10),
        opted_out=False,
        time_zone=None,
        recent=two,
    )
    assert skipped.verdict == "skip" and "frequency cap weekly: 2 per 1w reached" in skipped.reason
    # a week later the oldest has left the window
    ok = decide(
        p,
        channel="email",
        marketing=True,
        now=at(10, day=12) + timedelta(minutes=1),
        opted_out=False,
        time_zone=None,
        recent=two,
    )
    assert ok.verdict == "send"
    one_sms = [(at(10), "sms")]
    deferred = decide(
        p,
        channel="sms",
        marketing=True,
        now=at(12),
        opted_out=False,
        time_zone=None,
        recent=one_sms,
    )
    assert deferred.verdict == "defer" and deferred.until == at(10, day=11)


def test_await_contact_and_delivery_load_and_their_mistakes_point_at_file_line_col(
    tmp_path: Path,
) -> None:
    p = policy(
        tmp_path,
        "await_contact: 15m\n"
        "delivery: {channels: {sms: at_most_once}, templates: {welcome: at_most_once}}\n",
    )
    assert p.await_contact == 900
    assert p.delivery.mode("welcome", "email") == "at_most_once"  # the template's choice
    assert p.delivery.mode("lead_care", "sms") == "at_most_once"  # the channel's
    assert p.delivery.mode("lead_care", "email") == "at_least_once"  # the default
    assert load_policy(ROOT / "rules").await_contact == 900
    with pytest.raises(JourneyValidationError) as err:
        policy(
            tmp_path,
            "await_contact: soon\ndelivery:\n  channels: {email: maybe}\n  tempaltes: {}\n",
        )
    text = str(err.value)
    assert "policy.yaml:1:16 await_contact: 'soon' is not a duration" in text
    assert "policy.yaml:3:21 delivery.channels.email: input should be" in text
    assert "policy.yaml:4:3 delivery.tempaltes: unknown key 'tempaltes'" in text
