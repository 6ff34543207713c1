"""The journey language and its pure interpreter (no I/O, no clock, no Temporal)."""

from ._errors import JourneyError, JourneyValidationError, MoveError, Problem, UnknownJourneyError
from .catalog import Catalog, digest
from .checks import migration_problems
from .loader import load_rules
from .machine import Step, fire_timers, handle_event, journeys_attribute, move, next_due, upgrade
from .model import ActionCommand, Customer, CustomerState, Event, Journey, Run

__all__ = [
    "ActionCommand",
    "Catalog",
    "Customer",
    "CustomerState",
    "Event",
    "Journey",
    "JourneyError",
    "JourneyValidationError",
    "MoveError",
    "Problem",
    "Run",
    "Step",
    "UnknownJourneyError",
    "digest",
    "fire_timers",
    "handle_event",
    "journeys_attribute",
    "load_rules",
    "migration_problems",
    "move",
    "next_due",
    "upgrade",
]
