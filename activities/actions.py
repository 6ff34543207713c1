"""The activities of the action kinds, gathered for the worker.

What each kind does lives in ``activities.kinds`` (one module per kind, registered with
``performs``); its model in ``engine.actions`` names its Temporal activity. This module
binds each to one :class:`ActionActivities` (the worker's pool, settings and messenger),
so the worker registers every kind without a list to extend, and fails loudly when a kind
has no activity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from engine.actions import ACTIONS
from workflows.io import ActionInput, ActionResult

from .kinds import PERFORMERS, ActionBase, Perform, now_of

__all__ = ["ActionActivities", "now_of"]

Activity = Callable[[ActionInput], Awaitable[ActionResult]]


class ActionActivities(ActionBase):
    """Activities that need the database; one instance per worker, sharing its pool.
    Each action's activity is also an attribute named as Temporal knows it
    (``acts.tag_customer``), for tests that run one activity."""

    def all(self) -> list[Callable[..., Any]]:
        """Every action activity; fails loudly if an action kind has no activity."""
        missing = [k for k, cls in ACTIONS.items() if cls.activity and k not in PERFORMERS]
        if missing:
            raise RuntimeError(f"actions without an activity: {', '.join(missing)}")
        unknown = sorted(k for k in PERFORMERS if k not in ACTIONS or not ACTIONS[k].activity)
        if unknown:
            raise RuntimeError(f"activities for no action model: {', '.join(unknown)}")
        return [
            self._bind(kind, cls.activity, PERFORMERS[kind])
            for kind, cls in ACTIONS.items()
            if cls.activity
        ]

    async def perform(self, data: ActionInput) -> ActionResult:
        """Run ``data``'s action as its own activity would (``act_then_record``)."""
        kind = data.command.kind
        if kind not in PERFORMERS:
            raise RuntimeError(f"no activity performs action kind {kind!r}")
        return await self.act(data, kind, lambda d: PERFORMERS[kind](self, d))

    def __getattr__(self, name: str) -> Activity:
        # only called for names the instance lacks: an activity's, or a mistake
        for kind, cls in ACTIONS.items():
            if cls.activity == name and kind in PERFORMERS:
                return self._bind(kind, name, PERFORMERS[kind])
        raise AttributeError(f"{type(self).__name__!r} has no attribute or activity {name!r}")

    def _bind(self, kind: str, name: str, body: Perform) -> Activity:
        async def run(data: ActionInput) -> ActionResult:
            return await self.act(data, kind, lambda d: body(self, d))

        run.__name__ = run.__qualname__ = name
        run.__doc__ = body.__doc__
        return activity.defn(name=name)(run)
