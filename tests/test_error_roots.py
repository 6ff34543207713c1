"""The error tree drawn in ``engine.errors`` and ``settings.errors`` is the one the code has:
every exception raised on purpose sits under its concern's root. The roots are answered
once, by root: a route that lets a ``RefusedError``, ``InputError`` or ``RulesError``
through answers its ``status``, its ``code`` and its sentence through the app's handler
(never a 500), and ``cli.run`` turns the same roots into exit 1 with the sentence."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

import cli
from api import create_app
from api.deps import Pool
from channels import _errors as delivery
from cli.commands import UserError
from devstack.stack import free_port
from engine import JourneyError, JourneyValidationError, MoveError, UnknownJourneyError
from engine._segment_sql import Unsupported
from engine.errors import InputError, RefusedError, RulesError
from engine.expr import ExpressionError
from engine.forecast import ForecastInputError
from ingest._signals import Unsendable
from ingest.event_file import SimulationInputError
from ingest.segment import IngestError
from messaging._limits import LimitExceeded
from messaging.render import TemplateError
from settings import (
    ConfigurationError,
    MissingSetting,
    PayloadKeyError,
    Settings,
    StartupRefused,
    UnsafeSettings,
)
from store import tasks
from store.managers import DuplicateManager, ManagerError, UnknownManager, UnknownPool
from store.offers import OfferError, RedeemRefused, UnknownBudget
from store.surveys import SurveyRefused
from store.tasks import UnknownTask

TREE: dict[type[Exception], list[type[Exception]]] = {
    RulesError: [JourneyValidationError, ExpressionError, Unsupported, TemplateError, LimitExceeded],
    InputError: [IngestError, Unsendable, SimulationInputError, UserError, ForecastInputError],
    RefusedError: [
        UnknownJourneyError, MoveError, OfferError, UnknownBudget, RedeemRefused, SurveyRefused,
        ManagerError, UnknownPool, UnknownManager, DuplicateManager, UnknownTask,
    ],
    delivery.DeliveryError: [delivery.PermanentDeliveryError, delivery.TransientDeliveryError],
    ConfigurationError: [PayloadKeyError, StartupRefused, UnsafeSettings, MissingSetting],
}  # fmt: skip


@pytest.mark.parametrize("root", list(TREE), ids=lambda r: r.__name__)
def test_every_exception_sits_under_its_concern(root):
    for exc in TREE[root]:
        assert issubclass(exc, root), exc
        others = [r for r in TREE if r is not root]
        assert not any(issubclass(exc, r) for r in others), exc


def test_the_old_bases_still_catch_what_they_caught():
    assert all(issubclass(e, JourneyError) for e in (JourneyValidationError, MoveError))
    assert issubclass(UnknownJourneyError, JourneyError)
    assert issubclass(UnknownTask, LookupError) and issubclass(SimulationInputError, ValueError)
    assert issubclass(PayloadKeyError, ValueError)


def test_a_missing_database_url_is_a_startup_refusal_with_one_sentence():
    settings = Settings.model_validate({"DATABASE_URL": ""})
    with pytest.raises(MissingSetting, match="DATABASE_URL is not set") as caught:
        settings.require_database_url()
    assert isinstance(caught.value, SystemExit) and caught.value.code == str(caught.value)
    assert Settings.model_validate({"DATABASE_URL": "postgresql://x"}).require_database_url()


class ShelfEmpty(RefusedError):
    """A newcomer's refusal: only the class line and the answer it carries."""

    status = 410
    code = "shelf_empty"


class NoCode(RefusedError):
    """A refusal that carries nothing of its own: the root's 409 ``refused``."""


# a newcomer's route module: no try/except, the roots answer
router = APIRouter()


@router.get("/v1/roots/task/{task_id}")
async def complete_missing_task(task_id: int, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:  # the real store raises UnknownTask
        await tasks.complete(conn, task_id, by="test", now=datetime.now(UTC))
    return {}


@router.get("/v1/sources/roots/refuse")  # an ingestion path: Segment's answer shape
async def refuse_ingestion() -> dict[str, Any]:
    raise IngestError(400, "bad_source", "the source sent nothing we can read")


@router.get("/v1/roots/{which}")
async def refuse(which: str) -> dict[str, Any]:
    if which == "shelf":
        raise ShelfEmpty("the shelf is empty; restock it first")
    if which == "plain":
        raise NoCode("nothing to do here")
    if which == "rules":
        raise RulesError("rules/x.yaml:3: 'to' names no state")
    raise InputError("send a number")


async def _get(db_url: str, *paths: str) -> list[httpx.Response]:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_DISPATCHER": False,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing listens, none needed
        }
    )
    app = create_app(settings)
    app.include_router(router)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http,
    ):
        return [await http.get(path) for path in paths]


async def test_a_route_without_a_catch_answers_through_the_roots(db_url):
    task, shelf, plain, rules, bad, ingestion = await _get(
        db_url,
        "/v1/roots/task/424242",
        "/v1/roots/shelf",
        "/v1/roots/plain",
        "/v1/roots/rules",
        "/v1/roots/input",
        "/v1/sources/roots/refuse",
    )

    assert (task.status_code, task.json()) == (
        404,
        {"error": "unknown_task", "message": "no task with id 424242"},
    )
    assert (shelf.status_code, shelf.json()) == (
        410,
        {"error": "shelf_empty", "message": "the shelf is empty; restock it first"},
    )
    assert (plain.status_code, plain.json()) == (
        409,
        {"error": "refused", "message": "nothing to do here"},
    )
    assert (rules.status_code, rules.json()) == (
        422,
        {"error": "invalid_rules", "message": "rules/x.yaml:3: 'to' names no state"},
    )
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_input", "message": "send a number"},
    )
    assert (ingestion.status_code, ingestion.json()) == (
        400,
        {"success": False, "error": "bad_source", "message": "the source sent nothing we can read"},
    )


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@pytest.mark.parametrize(
    "error",
    [
        ShelfEmpty("the shelf is empty; restock it first"),
        RulesError("the shelf is empty; restock it first"),
        InputError("the shelf is empty; restock it first"),
    ],
)
def test_the_cli_exits_1_with_the_sentence_of_a_root(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(args: argparse.Namespace) -> int:
        raise error

    # a newcomer's command, registered where the CLI finds its commands
    monkeypatch.setitem(cli.COMMANDS, "refuse", ("refuses", _no_arguments, command))

    assert cli.run(["refuse"]) == 1
    out = capsys.readouterr()
    assert out.err == "journeys refuse: the shelf is empty; restock it first\n"
    assert out.out == ""
