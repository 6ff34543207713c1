"""The error roots of Journeys: one per concern, so a handler catches the concern it can
answer. Every exception the project raises on purpose is under one of them::

    RulesError                    rules/ or templates/ are wrong: fix the file
    ├── engine.JourneyValidationError   every Problem in the journey, policy, segment files
    ├── engine.expr.ExpressionError     a CEL expression failed to evaluate
    ├── engine._segment_tokens.Unsupported  a segment rule outside the SQL subset
    ├── messaging.render.TemplateError  a template cannot be rendered
    └── messaging._limits.LimitExceeded a template went past its bounds
    InputError                    what a caller sent is refused: fix the request
    ├── ingest.IngestError              an event or request over HTTP (``status`` is its code)
    ├── ingest._signals.Unsendable      an event that cannot travel as a signal (dead letter)
    ├── ingest.event_file.SimulationInputError   a line of a ``journeys simulate`` file
    └── cli.commands.UserError          a CLI invocation (exit 1 with the sentence)
    RefusedError                  the current data refuses an operation (HTTP 404/409/422)
    ├── engine.UnknownJourneyError      a journey or version the catalog does not hold
    ├── engine.MoveError                an admin move that cannot be applied
    ├── store.offers.OfferError         UnknownBudget, RedeemRefused
    ├── store.surveys.SurveyRefused     unknown, expired, answered, bad score or comment
    ├── store.managers.ManagerError     UnknownPool, UnknownManager, DuplicateManager
    └── store.tasks.UnknownTask         no task with that id (a LookupError too)
    channels.DeliveryError        a message could not be delivered: Permanent (do not retry)
                                  or Transient (retry); its own tree in ``channels._errors``
    settings.ConfigurationError   the process cannot run as configured: a setting missing,
                                  malformed or unsafe, a service it starts did not come up;
                                  its tree in ``settings.errors``

``engine.JourneyError`` stays the root of what the engine raises (validation, unknown
journey, move), for the callers that catch it; each of its children also sits under its
concern above. The delivery and configuration roots live in their own layers: ``channels``
is the only raiser of delivery errors, and ``settings`` stands beside ``engine``, not on
it, so neither can share a class defined here. There is no root above the roots on purpose:
"any error of ours" is never what a handler means; user errors become a CLI exit 1 or an
HTTP 4xx with their sentence, everything else is a bug.
"""

from __future__ import annotations

__all__ = ["InputError", "RefusedError", "RulesError"]


class RulesError(Exception):
    """A rules or templates file is wrong; the message says where and how to fix it."""


class InputError(Exception):
    """What a caller sent (an HTTP request, an event file, a CLI invocation) is refused;
    the message says what to fix and never repeats personal data."""


class RefusedError(Exception):
    """An operation the current data refuses: an unknown id, an answer already given, a
    move from the wrong state; the message says why."""
