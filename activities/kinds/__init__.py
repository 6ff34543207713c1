"""What each action kind does, one module per kind (or family of kinds).

Each module registers its bodies with :func:`performs` when this package is imported:
every public module here is imported below, so a new action kind is one new module (and
its model in ``engine.actions``) with no list to extend. ``activities.actions`` turns them
into the Temporal activities the worker registers, and fails loudly if a kind has none.

The action's deterministic idempotency key (customer, journey, enrolment, visit, step) is
the unique key of the row each effect creates (a message, a coupon, a survey, a task; an
assignment is unique per customer and pool, a tag per customer and tag), so a retried
activity (the worker died after the side effect, a provider timed out) finds its earlier
row and does nothing twice. Messages an action sends use the key plus a suffix
(``/message``, ``/notify``).

Bad configuration (a missing template, an unknown pool or budget) fails for good with a
sentence the Temporal UI shows; everything else is retried by Temporal.
"""

import importlib
import pkgutil

from ._base import PERFORMERS, ActionBase, Perform, now_of, performs

# every kind module registers itself on import; sorted, so the order is the same each time
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PERFORMERS", "ActionBase", "Perform", "now_of", "performs"]
