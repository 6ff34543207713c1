"""Exceptions raised by the journey engine.

Tree::

    JourneyError                  root of everything the engine raises on purpose
    ├── JourneyValidationError    rules/ or templates/ have problems; carries every Problem
    ├── UnknownJourneyError       a journey or version that the catalog does not hold
    └── MoveError                 an admin move that cannot be applied (bad state, not enrolled)

Each child also sits under its concern's root (``engine.errors``: RulesError, RefusedError).

Problems in user files are collected, never raised one by one, so that an operator sees
every mistake at once. Runtime CEL failures are not exceptions of this tree: the
interpreter records them on the customer's state (see ``engine.machine``) and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RefusedError, RulesError


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a journey or template file, with where it is and how to fix it."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


class JourneyError(Exception):
    """Root of the engine's exceptions."""


class JourneyValidationError(JourneyError, RulesError):
    """Journey or template files have problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownJourneyError(JourneyError, RefusedError):
    """A journey name or version that the catalog does not hold."""

    status = 404
    code = "unknown_journey"


class MoveError(JourneyError, RefusedError):
    """An admin move that cannot be applied; the message says why."""

    status = 400
    code = "invalid_move"
