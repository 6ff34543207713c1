"""NPS and CSAT surveys (``surveys``): a link token per survey, one answer each, and the
answer as a ``survey_answered`` event for the customer's journeys.

Errors::

    SurveyRefused       unknown, expired, already answered, score out of range, comment
                        too long (``code`` says which, for HTTP status codes)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.errors import RefusedError

from . import events

Kind = Literal["nps", "csat"]
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5)}
MAX_COMMENT = 2000


class SurveyRefused(RefusedError):
    """An answer that cannot be taken. ``code``: unknown, expired, answered, bad_score,
    bad_comment; ``reason``: the sentence to show."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Survey:
    token: str
    customer_id: str
    journey: str
    template: str
    kind: str
    expires_at: datetime
    created_at: datetime
    answered_at: datetime | None
    score: int | None
    comment: str | None

    def url(self, public_url: str) -> str:
        """The answer page customers open: ``{public_url}/s/{token}``."""
        return f"{public_url.rstrip('/')}/s/{self.token}"

    @property
    def scale(self) -> tuple[int, int]:
        return SCALES[self.kind]

    @property
    def category(self) -> str | None:
        return category(self.kind, self.score) if self.score is not None else None


_COLUMNS = (
    "token, customer_id, journey, template, kind, expires_at, created_at, answered_at,"
    " score, comment"
)


def category(kind: str, score: int) -> str:
    """NPS: 0-6 detractor, 7-8 passive, 9-10 promoter. CSAT (1-5): 1-2 unsatisfied,
    3 neutral, 4-5 satisfied."""
    low, high = SCALES[kind]
    if not low <= score <= high:
        raise ValueError(f"{kind} scores go from {low} to {high}, got {score}")
    if kind == "nps":
        return "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
    return "unsatisfied" if score <= 2 else "neutral" if score == 3 else "satisfied"


_BY = {
    column: f"SELECT {_COLUMNS} FROM surveys WHERE {column} = %s"
    for column in ("token", "idempotency_key")
}  # the only columns a survey is looked up by: no name reaches the SQL from a caller


async def _by(conn: AsyncConnection[Any], column: str, value: str) -> Survey | None:
    cur = conn.cursor(row_factory=class_row(Survey))
    await cur.execute(_BY[column], (value,))
    return await cur.fetchone()


async def get(conn: AsyncConnection[Any], token: str) -> Survey | None:
    """The survey behind a link token, or None."""
    return await _by(conn, "token", token)


async def create(
    conn: AsyncConnection[Any],
    *,
    idempotency_key: str,
    customer_id: str,
    journey: str,
    template: str,
    kind: str,
    expires_in: timedelta,
    now: datetime,
) -> Survey:
    """Create a survey once per ``idempotency_key`` (a retry returns the first one)."""
    if kind not in SCALES:
        raise ValueError(f"survey kind must be nps or csat, got '{kind}'")
    while True:
        cur = await conn.execute(
            "INSERT INTO surveys (token, idempotency_key, customer_id, journey, template, kind,"
            " expires_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING token",
            (
                secrets.token_urlsafe(18),
                idempotency_key,
                customer_id,
                journey,
                template,
                kind,
                now + expires_in,
                now,
            ),
        )
        row = await cur.fetchone()
        survey = await _by(
            conn, *(("token", row[0]) if row else ("idempotency_key", idempotency_key))
        )
        if survey is not None:  # None only if the random token clashed: draw again
            return survey


def _day(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d}"


def check(survey: Survey | None, now: datetime) -> Survey:
    """The survey if it can still be answered, else SurveyRefused with the reason."""
    if survey is None:
        raise SurveyRefused("unknown", "this survey link is not valid")
    if survey.answered_at is not None:
        raise SurveyRefused(
            "answered", f"this survey was already answered on {_day(survey.answered_at)}"
        )
    if survey.expires_at <= now:
        raise SurveyRefused("expired", f"this survey closed on {_day(survey.expires_at)}")
    return survey


async def answer(
    conn: AsyncConnection[Any], token: str, *, score: int, comment: str | None, now: datetime
) -> Survey:
    """Store the one answer of a survey and record ``survey_answered`` {kind, score,
    category, comment, token, journey} in the same transaction. Raises SurveyRefused."""
    survey = check(await get(conn, token), now)
    low, high = survey.scale
    if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
        raise SurveyRefused("bad_score", f"choose a score from {low} to {high}")
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise SurveyRefused(
            "bad_comment", f"the comment is {len(comment)} characters long; at most {MAX_COMMENT}"
        )
    async with conn.transaction():
        cur = conn.cursor(row_factory=class_row(Survey))
        await cur.execute(
            "UPDATE surveys SET answered_at = %s, score = %s, comment = %s"
            " WHERE token = %s AND answered_at IS NULL AND expires_at > %s"
            f" RETURNING {_COLUMNS}",
            (now, score, comment, token, now),
        )
        done = await cur.fetchone()
        if done is None:  # answered (or closed) between our read and now
            check(await get(conn, token), now)
            raise SurveyRefused("answered", "this survey was already answered")
        await events.record(
            conn,
            done.customer_id,
            "survey_answered",
            {
                "kind": done.kind,
                "score": score,
                "category": category(done.kind, score),
                "comment": comment,
                "token": token,
                "journey": done.journey,
            },
            message_id=f"survey_answered:{token}",
            at=now,
        )
    return done
