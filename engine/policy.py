"""The messaging policy (``rules/policy.yaml``): consent, frequency caps and quiet hours,
across all of a customer's journeys.

A pure decision: :func:`decide` takes the policy, the message's channel and kind, the
customer's opt-outs, time zone and recent marketing sends, and the time, and answers
*send*, *skip* (with the reason) or *defer* (until when, with the reason). The send
activity gathers those facts from PostgreSQL and records what was decided; a deferred
message becomes a timer in the customer's workflow, so it survives restarts.

    consent:
      opt_out_traits: {email: [unsubscribed, email_opt_out], sms: [sms_opt_out]}
    frequency_caps:
      - {name: marketing_weekly, channels: [email, sms], max: 3, per: 7d, when_exceeded: skip}
    quiet_hours:
      {from: "21:00", until: "09:00", channels: [sms, email], when_quiet: defer,
       time_zone_trait: timezone, default_time_zone: Europe/Berlin}

    await_contact: 15m          # a message to a customer without the address waits for it
    delivery:                   # at_least_once (default) or at_most_once
      {default: at_least_once, channels: {sms: at_most_once}, templates: {welcome: at_most_once}}

Transactional messages (``send: {transactional: true}``) ignore consent and caps; quiet
hours apply to them only when ``quiet_hours.transactional: true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from .actions import Spec, _seconds
from .channel_kinds import check_channel, person_channels
from .durations import format_duration
from .loader import load_mapping_file

ChannelName = Annotated[str, AfterValidator(check_channel)]  # see engine.channel_kinds
Choice = Literal["defer", "skip"]
POLICY_FILE = "policy.yaml"


def _default_opt_outs() -> dict[str, list[str]]:
    return {name: ["unsubscribed"] for name in person_channels()}


def _people_channels() -> list[str]:
    return person_channels()


def _await_seconds(value: Any, info: Any) -> int:
    if value in (0, "0", None):
        return 0
    return _seconds(value, info)


class Consent(Spec):
    # identify traits that, when truthy, mean the customer opted out of the channel
    opt_out_traits: dict[ChannelName, list[str]] = Field(default_factory=_default_opt_outs)


class FrequencyCap(Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    channels: list[ChannelName] = Field(default_factory=_people_channels, min_length=1)
    max: Annotated[int, Field(ge=0)]
    per: Annotated[int, Field(gt=0)]
    when_exceeded: Choice = "skip"

    _dur = field_validator("per", mode="before")(_seconds)


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 21:00 as the sexagesimal number 1260
        return time(value // 60 % 24, value % 60)
    if not isinstance(value, str):
        raise ValueError(f'expected a time of day like "21:00", got {value!r}')
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a time of day; write it like \"21:00\"") from None


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{value}' is not a time zone; use an IANA name such as Europe/Berlin"
        ) from None
    return str(value)


class QuietHours(Spec):
    from_: time = Field(alias="from")
    until: time
    channels: list[ChannelName] = Field(default_factory=_people_channels, min_length=1)
    when_quiet: Choice = "defer"
    time_zone_trait: str = "timezone"
    default_time_zone: str = "UTC"
    transactional: bool = False  # do quiet hours hold back transactional messages too?

    _clocks = field_validator("from_", "until", mode="before")(_clock)
    _tz = field_validator("default_time_zone", mode="before")(_zone)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.from_ == self.until:
            raise ValueError("quiet hours 'from' and 'until' are the same time")
        return self

    def quiet_at(self, local: time) -> bool:
        if self.from_ < self.until:
            return self.from_ <= local < self.until
        return local >= self.from_ or local < self.until  # across midnight

    def ends_after(self, local: datetime) -> datetime:
        """The first allowed local moment at or after ``local``."""
        end = local.replace(hour=self.until.hour, minute=self.until.minute, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)


DeliveryMode = Literal["at_least_once", "at_most_once"]


class Delivery(Spec):
    """What a crash between the provider's acceptance and its record may cost: a second
    send (``at_least_once``, the default) or a missed one (``at_most_once``: an attempt
    that finds an earlier one's outcome unknown records ``unknown`` instead of sending).
    A template's choice wins over its channel's, which wins over the default."""

    default: DeliveryMode = "at_least_once"
    channels: dict[ChannelName, DeliveryMode] = Field(default_factory=dict)
    templates: dict[str, DeliveryMode] = Field(default_factory=dict)

    def mode(self, template: str, channel: str) -> DeliveryMode:
        if template in self.templates:
            return self.templates[template]
        for name, mode in self.channels.items():
            if name == channel:
                return mode
        return self.default


class Policy(Spec):
    consent: Consent = Field(default_factory=Consent)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    # seconds a message to a customer without the channel's address (an identify that
    # comes after the sign-up) waits for it, from its first attempt, before it is
    # suppressed; 0: suppressed at once
    await_contact: Annotated[int, Field(ge=0)] = 0
    delivery: Delivery = Field(default_factory=Delivery)

    _wait = field_validator("await_contact", mode="before")(_await_seconds)

    def time_zones(self) -> dict[str, str]:
        """Where a customer's time zone is found (``time_zone_trait``) and the zone of those
        without one (``default_time_zone``), from ``quiet_hours``: what calendar timers
        use too, as :class:`engine.catalog.Catalog` fields."""
        quiet = self.quiet_hours or QuietHours.model_validate({"from": "00:00", "until": "00:01"})
        return {
            "time_zone_trait": quiet.time_zone_trait,
            "default_time_zone": quiet.default_time_zone,
        }

    def longest_window(self) -> int:
        """Seconds of send history the caps need to look at."""
        return max((c.per for c in self.frequency_caps), default=0)


@dataclass(frozen=True)
class Decision:
    verdict: Literal["send", "skip", "defer"]
    reason: str = ""
    until: datetime | None = None


def decide(
    policy: Policy,
    *,
    channel: str,
    marketing: bool,
    now: datetime,
    opted_out: bool,
    time_zone: str | None,
    recent: list[tuple[datetime, str]],
) -> Decision:
    """What to do with one message now. ``recent`` holds the customer's marketing messages
    sent within :meth:`Policy.longest_window` (time, channel)."""
    if marketing and opted_out:
        return Decision("skip", f"the customer opted out of {channel}")
    if marketing:
        for cap in policy.frequency_caps:
            if channel not in cap.channels:
                continue
            window = [t for t, ch in recent if ch in cap.channels and t > now - _s(cap.per)]
            if len(window) >= cap.max:
                reason = f"frequency cap {cap.name}: {cap.max} per {_human(cap.per)} reached"
                if cap.when_exceeded == "skip" or cap.max == 0:
                    return Decision("skip", reason)
                # allowed again once the oldest counted message leaves the window
                oldest = sorted(window)[len(window) - cap.max]
                return Decision("defer", reason, oldest + _s(cap.per))
    quiet = policy.quiet_hours
    if quiet and channel in quiet.channels and (marketing or quiet.transactional):
        zone = _customer_zone(time_zone, quiet.default_time_zone)
        local = now.astimezone(zone)
        if quiet.quiet_at(local.time()):
            reason = (
                f"quiet hours {quiet.from_:%H:%M}-{quiet.until:%H:%M} in {zone.key} "
                f"(local time {local:%H:%M})"
            )
            if quiet.when_quiet == "skip":
                return Decision("skip", reason)
            return Decision("defer", reason, quiet.ends_after(local).astimezone(now.tzinfo))
    return Decision("send")


def _customer_zone(name: str | None, default: str) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a bad trait must not stop the message: the default zone applies
    return ZoneInfo(default)


def _s(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


def _human(seconds: int) -> str:
    return format_duration(seconds)


def load_policy(rules_dir: Path | str = "rules", *, display_root: Path | None = None) -> Policy:
    """``rules_dir/policy.yaml`` validated (the defaults when there is none); raises
    :class:`JourneyValidationError` with every problem, at file:line:col."""
    return load_mapping_file(
        Path(rules_dir) / POLICY_FILE,
        display_root,
        Policy,
        _allowed_keys,
        shape="a mapping of consent, frequency_caps, quiet_hours, await_contact and delivery",
    )


def _allowed_keys(loc: list[int | str]) -> list[str]:
    parent = [s for s in loc[:-1] if isinstance(s, str)]
    models: dict[str, type[Spec]] = {
        "consent": Consent,
        "frequency_caps": FrequencyCap,
        "quiet_hours": QuietHours,
        "delivery": Delivery,
    }
    model = models.get(parent[0] if parent else "", Policy)
    return [f.alias or n for n, f in model.model_fields.items()]
