"""The error tree drawn in ``engine.errors`` and ``settings.errors`` is the one the code has:
every exception raised on purpose sits under its concern's root."""

from __future__ import annotations

import pytest

from channels import _errors as delivery
from cli.commands import UserError
from engine import JourneyError, JourneyValidationError, MoveError, UnknownJourneyError
from engine._segment_sql import Unsupported
from engine.errors import InputError, RefusedError, RulesError
from engine.expr import ExpressionError
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
from store.managers import DuplicateManager, ManagerError, UnknownManager, UnknownPool
from store.offers import OfferError, RedeemRefused, UnknownBudget
from store.surveys import SurveyRefused
from store.tasks import UnknownTask

TREE: dict[type[Exception], list[type[Exception]]] = {
    RulesError: [JourneyValidationError, ExpressionError, Unsupported, TemplateError, LimitExceeded],
    InputError: [IngestError, Unsendable, SimulationInputError, UserError],
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
