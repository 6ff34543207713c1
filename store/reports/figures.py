"""The figures of a report as typed rows: what the queries of ``store.reports`` return
and the pages of ``reports`` draw.

Rates are ``None`` when their denominator is zero (no data is not 0%)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


def ratio(part: int | float, whole: int | float) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Count:
    """How many of something: a segment, a tier, a state, a pool queue."""

    label: str
    count: int


@dataclass(frozen=True)
class Rate:
    """``numerator`` of ``denominator`` customers (reactivation, repurchase, churn)."""

    numerator: int
    denominator: int

    @property
    def rate(self) -> float | None:
        return ratio(self.numerator, self.denominator)


@dataclass(frozen=True)
class Segments:
    """Customers per segment and per tier in ``customer_metrics`` now."""

    segments: list[Count]
    tiers: list[Count]
    computed_at: datetime | None  # the newest metrics row


@dataclass(frozen=True)
class Migration:
    """Who moved between segments in the last refresh: ``cells[(before, after)]`` customers;
    ``before`` is ``(new)`` for customers without metrics before."""

    refresh_id: int
    as_of: datetime
    previous_as_of: datetime | None
    cells: dict[tuple[str, str], int]

    @property
    def before(self) -> list[str]:
        return sorted({b for b, _ in self.cells})

    @property
    def after(self) -> list[str]:
        return sorted({a for _, a in self.cells})

    @property
    def moved(self) -> int:
        return sum(n for (b, a), n in self.cells.items() if b != a)


@dataclass(frozen=True)
class Edge:
    """Of ``entrants`` customers who entered ``source``, ``customers`` went next to
    ``target``."""

    source: str
    target: str
    customers: int
    entrants: int

    @property
    def share(self) -> float | None:
        return ratio(self.customers, self.entrants)


@dataclass(frozen=True)
class StateTime:
    """Median time spent in ``state`` over ``visits`` finished visits."""

    state: str
    visits: int
    median_seconds: float


@dataclass
class JourneyFigures:
    """One journey's customers per state now, entries, exits, edges and time in state."""

    journey: str
    states_now: list[Count] = field(default_factory=list)
    entries: int = 0
    exits: int = 0
    edges: list[Edge] = field(default_factory=list)
    time_in_state: list[StateTime] = field(default_factory=list)


@dataclass(frozen=True)
class OfferRow:
    """Offers of one template (or all): issued, redeemed and what the redeeming orders
    brought in."""

    template: str
    issued: int
    redeemed: int
    revenue: float

    @property
    def rate(self) -> float | None:
        return ratio(self.redeemed, self.issued)


@dataclass(frozen=True)
class Offers:
    total: OfferRow
    by_template: list[OfferRow]


@dataclass(frozen=True)
class NpsWeek:
    """NPS surveys sent in the week starting ``week`` (Monday, UTC) and their answers."""

    week: date | None  # None: the whole period
    sent: int
    answered: int
    promoters: int
    passives: int
    detractors: int

    @property
    def nps(self) -> float | None:
        return ratio((self.promoters - self.detractors) * 100, self.answered)

    @property
    def response_rate(self) -> float | None:
        return ratio(self.answered, self.sent)


@dataclass(frozen=True)
class Surveys:
    weeks: list[NpsWeek]
    total: NpsWeek
    csat_answers: int
    csat_average: float | None


@dataclass(frozen=True)
class ManagerLoad:
    """A manager's customers now against their capacity, and their open tasks."""

    id: int
    pool: str
    name: str
    active: bool
    capacity: int
    assigned: int
    open_tasks: int

    @property
    def load(self) -> float:
        return self.assigned / self.capacity


@dataclass(frozen=True)
class Managers:
    managers: list[ManagerLoad]
    queues: list[Count]  # open tasks waiting in a pool's queue (no manager)


@dataclass(frozen=True)
class Messages:
    by_status: list[Count]  # sent, suppressed, deferred, failed, unknown, sending
    unknown: int  # at_most_once messages whose outcome no attempt could record


@dataclass(frozen=True)
class StaffRow:
    """Tasks of one pool (``manager`` None: every task of the pool, queue and managers'
    alike) or of one manager in it: created in the period, completed, the response time
    (created → completed) of the completed ones, and the open ones overdue now."""

    pool: str
    manager: str | None
    created: int
    completed: int
    median_seconds: float | None
    p90_seconds: float | None
    overdue: int


@dataclass(frozen=True)
class CallBacks:
    """Detractor NPS answers of the period and the follow-up task of each: ``called_back``
    of ``answers`` had it completed, the time from the answer to that completion."""

    answers: int
    called_back: int
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def waiting(self) -> int:
        return self.answers - self.called_back


@dataclass(frozen=True)
class Staff:
    rows: list[StaffRow]  # per pool, each followed by its managers
    callbacks: CallBacks


@dataclass(frozen=True)
class ArmCounts:
    """One arm of an experiment: ``customers`` assigned to it, ``converters`` of them who
    converted at least once, ``conversions`` (runs that converted) and their ``revenue``."""

    arm: str
    customers: int
    converters: int
    conversions: int
    revenue: float


@dataclass(frozen=True)
class ExperimentCounts:
    """An experiment's arms in name order, the journeys that split customers into it and
    the first and last assignment."""

    experiment: str
    journeys: list[str]
    first_assigned: datetime
    last_assigned: datetime
    arms: list[ArmCounts]

    @property
    def customers(self) -> int:
        return sum(a.customers for a in self.arms)


@dataclass(frozen=True)
class Decile:
    """One tenth of a past refresh's customers, by their expected orders in 90 days
    (1: the lowest), and the purchases they made in those 90 days."""

    decile: int
    customers: int
    predicted: float  # expected purchases, summed over the customers
    actual: int  # purchases made (same-day orders: one)

    @property
    def mean_predicted(self) -> float | None:
        return ratio(self.predicted, self.customers)

    @property
    def mean_actual(self) -> float | None:
        return ratio(self.actual, self.customers)


@dataclass(frozen=True)
class Calibration:
    """A past refresh's expected orders against the purchases of the 90 days after it."""

    refresh_id: int
    as_of: datetime
    until: datetime  # as_of + 90 days
    deciles: list[Decile]

    @property
    def predicted(self) -> float:
        return sum(d.predicted for d in self.deciles)

    @property
    def actual(self) -> int:
        return sum(d.actual for d in self.deciles)

    @property
    def customers(self) -> int:
        return sum(d.customers for d in self.deciles)


@dataclass(frozen=True)
class ClvRow:
    """Customers of one tier or segment with a forecast: their predicted CLV (365 days)
    and mean P(alive)."""

    label: str
    customers: int
    mean_clv: float
    total_clv: float
    mean_p_alive: float


@dataclass(frozen=True)
class ForecastFigures:
    """The latest forecast (refresh ``refresh_id`` as of ``as_of``): its calibration, or
    ``calibration_ready_at``, when the oldest kept refresh's 90 days end (None: no refresh
    kept yet); and the predicted CLV per tier and per segment now."""

    refresh_id: int
    as_of: datetime
    customers: int  # with a forecast now
    calibration: Calibration | None
    calibration_ready_at: datetime | None
    by_tier: list[ClvRow]
    by_segment: list[ClvRow]
