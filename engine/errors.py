"""The error roots of Journeys: one per concern, so a handler catches the concern it can
answer. Every exception the project raises on purpose is under one of them. A root and
the subclasses that answer differently carry what a handler needs: ``status`` (HTTP) and
``code`` (the machine ``error`` field); the message is the sentence::

    RulesError  422 invalid_rules rules/ or templates/ are wrong: fix the file
    ├── engine.JourneyValidationError   every Problem in the journey, policy, segment files
    ├── engine.expr.ExpressionError     a CEL expression failed to evaluate
    ├── engine._segment_tokens.Unsupported  a segment rule outside the SQL subset
    ├── messaging.render.TemplateError  a template cannot be rendered
    └── messaging._limits.LimitExceeded a template went past its bounds
    InputError  400 invalid_input what a caller sent is refused: fix the request
    ├── ingest.segment.IngestError      an event or request over HTTP (``status`` and
    │                                   ``code``, also ``reason``, per instance)
    ├── ingest._signals.Unsendable      an event that cannot travel as a signal (dead letter)
    ├── ingest.event_file.SimulationInputError   a line of a ``journeys simulate`` file
    ├── engine.forecast.ForecastInputError  customer summaries that are not summaries
    ├── orchestration.merging.BadMerge  422 (its ``code``): a merge by hand asked wrongly
    └── cli.commands.UserError          a CLI invocation (exit 1 with the sentence)
    RefusedError  409 refused     the current data refuses an operation
    ├── engine.UnknownJourneyError      404 unknown_journey: not in the catalog
    ├── engine.MoveError                400 invalid_move: an admin move that cannot apply
    ├── store.offers.OfferError         409 offer_refused
    │   ├── UnknownBudget               404 unknown_budget
    │   └── RedeemRefused               404 unknown_code, else 409 with its ``code``
    ├── store.surveys.SurveyRefused     its ``code`` (unknown, expired, answered, bad_score,
    │                                   bad_comment) and the status of that code
    ├── store.managers.ManagerError     422 bad_manager
    │   ├── UnknownPool, UnknownManager 404 unknown_pool, unknown_manager
    │   └── DuplicateManager            409 duplicate_manager
    ├── orchestration.merging.UnknownCustomer  404 unknown_customer: an id to merge
    │                                   that Journeys never saw
    └── store.tasks.UnknownTask         404 unknown_task (a LookupError too)
    channels.DeliveryError        a message could not be delivered: Permanent (do not retry)
                                  or Transient (retry); its own tree in ``channels._errors``
    settings.ConfigurationError   the process cannot run as configured: a setting missing,
                                  malformed or unsafe, a service it starts did not come up;
                                  its tree in ``settings.errors``

Outside the roots, one mechanism: ``api._guard.BodyTooLarge`` is a FastAPI
``HTTPException`` (413), because it is raised from ``receive`` while FastAPI reads a body,
where only an ``HTTPException`` passes through; the app's HTTPException handler answers it.

Handled once, by root: ``api.app`` has one exception handler per root (``RulesError``,
``InputError``, ``RefusedError``) answering ``{"error": code, "message": sentence}`` with
``status`` (ingestion paths add ``"success": false``), so a route catches one of these
only to do more than translate it (an HTML page, CORS headers, a metric). ``cli.run``
turns the three roots and ``ConfigurationError`` into exit 1 with the sentence.

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

    status: int = 422
    code: str = "invalid_rules"


class InputError(Exception):
    """What a caller sent (an HTTP request, an event file, a CLI invocation) is refused;
    the message says what to fix and never repeats personal data."""

    status: int = 400
    code: str = "invalid_input"


class RefusedError(Exception):
    """An operation the current data refuses: an unknown id, an answer already given, a
    move from the wrong state; the message says why."""

    status: int = 409
    code: str = "refused"
