"""Actions a journey can take (``enter:`` and ``do:``), one model each.

Adding an action kind is one model here, decorated with :func:`action`, plus what it does:
one module in ``activities/kinds/`` (``performs``), which becomes the Temporal activity the
model's ``activity`` names. ``emit`` is the exception:
it is an internal event, handled by the interpreter itself, and needs no activity.

What else differs between kinds is said by the model's class attributes and read where it
matters, never spelled there: ``templates`` (the fields naming message templates, checked
when journeys load), ``provides`` (template names only this kind's messages have,
``engine.templates``) with :meth:`ActionSpec.sample` (their values in ``journeys render``'s
preview, ``engine.template_context``), ``dropped_when_stale`` (a deferred message of this
kind is dropped once the customer left the state it was made for,
``workflows._actions.is_stale``), ``reaches_customer`` (withheld from a run in an
experiment's holdout, ``engine.goals``), ``written`` (``False``: made by the interpreter,
never written in YAML, as ``convert``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .channel_kinds import check_channel, check_person_channel
from .channel_kinds import kind as channel_kind
from .channel_kinds import names as channel_names
from .durations import format_duration, parse_duration
from .experiments import MAX_NAME_LENGTH, check_arms
from .names import normalize_event_name

_NAME = r"^[a-z][a-z0-9_]*$"


class Spec(BaseModel):
    """Base of everything parsed from ops' YAML: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


FROM_YAML = {"from_yaml": True}  # validation context of the loader


def from_yaml(info: ValidationInfo) -> bool:
    """Whether this validation reads ops' YAML (the loader's), not a stored definition."""
    return bool(info.context and info.context.get("from_yaml"))


def _seconds(value: Any, info: ValidationInfo) -> int:
    """Durations as ops write them (``14d``), at most ``engine.durations.LONGEST``. Whole
    seconds are accepted only when a stored definition is read back, never from YAML, where
    a bare number has no unit; they load as they were published, whatever their length."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0 and not from_yaml(info):
        return value
    return parse_duration(value)


@dataclass(frozen=True)
class SampleFacts:
    """What an action kind's sample context may draw on (``journeys render``'s preview)."""

    public_url: str  # where links point, without a trailing slash
    token: str  # stands in for a signed link's token
    expires_at: datetime  # when anything the sample hands out expires


class ActionSpec(Spec):
    """Arguments of one action. ``kind`` is its YAML key, ``activity`` the Temporal activity
    that carries it out (``None``: handled inside the interpreter)."""

    kind: ClassVar[str]
    activity: ClassVar[str | None]
    templates: ClassVar[tuple[str, ...]] = ()
    # A deferred action (the policy held its message back) is dropped when its journey run
    # ended; one of a kind marked here also when the customer left the state it was made
    # for: a win-back offer after they came back would be wrong, a welcome is still right.
    dropped_when_stale: ClassVar[bool] = False
    # the names of the template context only this kind's messages have, with their
    # attributes (None: free-form); engine.templates checks templates against them
    provides: ClassVar[dict[str, frozenset[str] | None]] = {}
    # a message to the customer: a run in an experiment's holdout arm does not get it
    reaches_customer: ClassVar[bool] = False
    # False: an action only the interpreter makes (a conversion), never written in YAML
    written: ClassVar[bool] = True

    # a CEL condition checked just before the action (``ctx.arm == "offer_15"``); left out
    # of dumps when unset, so journeys written before it keep their digests and versions
    when: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @classmethod
    def sample(cls, facts: SampleFacts) -> dict[str, Any]:
        """The names of ``provides`` with sample values, as a real action would give them:
        what ``journeys render`` previews a template of this kind with."""
        return {}

    def summary(self, customer_id: str) -> str:
        """One line for the Temporal UI: what this does to whom."""
        return f"{self.kind} for customer {customer_id}"


ACTIONS: dict[str, type[ActionSpec]] = {}


def action(kind: str, *, activity: str | None) -> Callable[[type[ActionSpec]], type[ActionSpec]]:
    """Register an action model under its YAML key."""

    def register(cls: type[ActionSpec]) -> type[ActionSpec]:
        cls.kind = kind
        cls.activity = activity
        ACTIONS[kind] = cls
        return cls

    return register


# Channel names are registered by the channels package (see engine.channel_kinds), so an
# unknown one in YAML is reported with the channels there are.
Channel = Annotated[str, AfterValidator(check_channel)]
PersonChannel = Annotated[str, AfterValidator(check_person_channel)]  # coupons, survey links
Seconds = Annotated[int, Field(gt=0)]


@action("send", activity="send_message")
class Send(ActionSpec):
    templates = ("template",)
    reaches_customer = True
    template: str = Field(pattern=_NAME)
    channel: Channel = "email"
    transactional: bool = False
    # where a webhook goes; left out of dumps when unset, so journeys without webhooks keep
    # their digests (and versions) from before the field existed
    url: str | None = Field(default=None, pattern=r"^https?://", exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _url_for_channel(self, info: ValidationInfo) -> Send:
        if not (info.context and info.context.get("from_yaml")):
            return self  # a stored definition, checked when it was published
        if not channel_kind(self.channel).reaches_person and not self.url:
            raise ValueError(
                f"a {self.channel} needs 'url: https://...' (where to POST the message)"
            )
        if self.url and channel_kind(self.channel).reaches_person:
            addressed = ", ".join(n for n in channel_names() if not channel_kind(n).reaches_person)
            raise ValueError(
                f"'url' is only for channel: {addressed} (this sends by {self.channel})"
            )
        return self

    def summary(self, customer_id: str) -> str:
        return f"send {self.template} by {self.channel} to customer {customer_id}"


def offer_context(
    *,
    code: str,
    percent_off: float | None,
    amount_off: float | None,
    expires_at: datetime,
    discount: str,
) -> dict[str, Any]:
    """What an offer's message adds: ``offer`` (the coupon)."""
    return {
        "offer": {
            "code": code,
            "percent_off": percent_off,
            "amount_off": amount_off,
            "expires_at": expires_at,
            "discount": discount,
        }
    }


@action("offer", activity="issue_offer")
class Offer(ActionSpec):
    templates = ("template",)
    dropped_when_stale = True
    reaches_customer = True
    provides = {"offer": frozenset({"code", "percent_off", "amount_off", "expires_at", "discount"})}
    template: str = Field(pattern=_NAME)
    percent_off: float | None = Field(default=None, gt=0, le=100)
    amount_off: float | None = Field(default=None, gt=0)
    valid_for: Seconds = 14 * 86400
    channel: PersonChannel = "email"
    budget: str | None = Field(default=None, pattern=_NAME)

    _dur = field_validator("valid_for", mode="before")(_seconds)

    @model_validator(mode="after")
    def _one_discount(self) -> Offer:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("give exactly one of percent_off or amount_off")
        return self

    @classmethod
    def sample(cls, facts: SampleFacts) -> dict[str, Any]:
        return offer_context(
            code="SAMPLE-7KQ2-9XWD",
            percent_off=15,
            amount_off=None,
            expires_at=facts.expires_at,
            discount="15%",
        )

    def summary(self, customer_id: str) -> str:
        off = f"{self.percent_off:g}%" if self.percent_off else f"{self.amount_off:g} off"
        return (
            f"offer {self.template} ({off}, valid {format_duration(self.valid_for)}) "
            f"to customer {customer_id}"
        )


@action("assign_manager", activity="assign_account_manager")
class AssignManager(ActionSpec):
    pool: str = Field(pattern=_NAME)

    def summary(self, customer_id: str) -> str:
        return f"assign a {self.pool} account manager to customer {customer_id}"


def survey_context(*, url: str, kind: str, expires_at: datetime) -> dict[str, Any]:
    """What a survey's message adds: ``survey`` (its link)."""
    return {"survey": {"url": url, "kind": kind, "expires_at": expires_at}}


@action("survey", activity="send_survey")
class Survey(ActionSpec):
    templates = ("template",)
    dropped_when_stale = True
    reaches_customer = True
    provides = {"survey": frozenset({"url", "kind", "expires_at"})}
    kind_: Literal["nps", "csat"] = Field(alias="kind")
    template: str = Field(pattern=_NAME)
    expires_in: Seconds = 7 * 86400
    channel: PersonChannel = "email"

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )
    _dur = field_validator("expires_in", mode="before")(_seconds)

    @classmethod
    def sample(cls, facts: SampleFacts) -> dict[str, Any]:
        url = f"{facts.public_url}/s/{facts.token}"
        return survey_context(url=url, kind="nps", expires_at=facts.expires_at)

    def summary(self, customer_id: str) -> str:
        return f"{self.kind_} survey {self.template} to customer {customer_id}"


@action("task", activity="create_task")
class Task(ActionSpec):
    title: str = Field(min_length=1, max_length=200)
    assignee: str = Field(default="manager", pattern=_NAME)
    due_in: Seconds = 86400
    note: str | None = None

    _dur = field_validator("due_in", mode="before")(_seconds)

    def summary(self, customer_id: str) -> str:
        return f"task '{self.title}' for {self.assignee} about customer {customer_id}"


# Tags are kept in every customer's workflow state and in PostgreSQL: both stay small.
MAX_TAG_LENGTH = 64
MAX_TAGS = 50  # per customer, over all journeys


@action("tag", activity="tag_customer")
class TagCustomer(ActionSpec):
    """Add and remove tags of the customer (``engine.tags``: what the interpreter does)."""

    add: list[Annotated[str, Field(pattern=_NAME)]] = Field(default_factory=list)
    remove: list[Annotated[str, Field(pattern=_NAME)]] = Field(default_factory=list)

    @field_validator("add", "remove")
    @classmethod
    def _bounded(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if len(tag) > MAX_TAG_LENGTH:
                raise ValueError(
                    f"tag '{tag[:20]}...' has {len(tag)} characters; a tag has at most "
                    f"{MAX_TAG_LENGTH}"
                )
        if len(set(tags)) > MAX_TAGS:
            raise ValueError(
                f"{len(set(tags))} tags in one action; a customer holds at most {MAX_TAGS}"
            )
        return tags

    @model_validator(mode="after")
    def _add_or_remove(self) -> TagCustomer:
        both = sorted(set(self.add) & set(self.remove))
        if both:
            raise ValueError(f"'{both[0]}' is both added and removed; keep it in one list")
        return self

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"add": [data]}
        if isinstance(data, list):
            return {"add": data}
        return data

    def summary(self, customer_id: str) -> str:
        parts = [f"+{t}" for t in self.add] + [f"-{t}" for t in self.remove]
        return f"tag customer {customer_id} {' '.join(parts)}"


@action("split", activity="record_experiment_assignment")
class Split(ActionSpec):
    """Put the customer in one arm of an experiment, sticky (``engine.experiments``); the
    arm named ``holdout`` gets no messages from the journey."""

    experiment: str = Field(pattern=_NAME, max_length=MAX_NAME_LENGTH)
    arms: dict[str, int]

    @field_validator("arms", mode="before")
    @classmethod
    def _arms(cls, arms: Any, info: ValidationInfo) -> Any:
        if isinstance(arms, dict):  # else pydantic says what it should be
            check_arms(arms, written=from_yaml(info))
        return arms

    def summary(self, customer_id: str) -> str:
        return f"split customer {customer_id} in experiment {self.experiment}"


@action("emit", activity=None)
class Emit(ActionSpec):
    event: str = Field(min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_event_name(value)

    def summary(self, customer_id: str) -> str:
        return f"emit {self.event} to customer {customer_id}'s other journeys"


def _tag_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return next(iter(fields)) if len(fields) == 1 else None
    return None


_STEPS = {
    kind: create_model(f"{cls.__name__}Step", __base__=Spec, **{kind: (cls, ...)})  # type: ignore[call-overload,unused-ignore]
    for kind, cls in ACTIONS.items()
    if cls.written
}
if TYPE_CHECKING:
    ActionCall = BaseModel
else:
    ActionCall = Annotated[
        Union[tuple(Annotated[model, Tag(kind)] for kind, model in _STEPS.items())],  # noqa: UP007
        Discriminator(
            _tag_of,
            custom_error_type="unknown_action",
            custom_error_message="unknown action",
        ),
    ]
"""One item of ``enter:`` or ``do:`` as written in YAML: ``{send: {template: welcome}}``."""


def unwrap(call: BaseModel) -> ActionSpec:
    """The action's arguments out of its one-key YAML wrapper."""
    spec = next(iter(call.__dict__.values()))
    assert isinstance(spec, ActionSpec)
    return spec
