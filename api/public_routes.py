"""The public, token-in-the-path pages customers use (no credentials: the token is the
secret): survey answers (``/s/{token}``, ``/v1/surveys/{token}``) and unsubscribe links
(``/u/{token}``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ingest import sanitize
from store import consent, surveys

from . import survey_page as pages
from .deps import Pool, State
from .state import AppState

router = APIRouter(tags=["public"])


def _error(status: int, error: str, message: str) -> HTTPException:
    return HTTPException(status, {"error": error, "message": message})


def _now() -> datetime:
    return datetime.now(UTC)


# --- surveys (public) -----------------------------------------------------------------------


MAX_BODY = 16_384  # a score and a 2,000-character comment, with room for encoding

# Public pages carry a secret token in their URL: never cached, never sent on as a
# Referer, never framed, and nothing runs in them.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=_PAGE_HEADERS)


@router.get("/s/{token}", response_class=HTMLResponse)
async def survey_page(token: str, state: State) -> HTMLResponse:
    """The survey answer page: a plain HTML form that needs no JavaScript."""
    async with state.pool.connection() as conn:
        survey = await surveys.get(conn, token)
    try:
        surveys.check(survey, _now())
    except surveys.SurveyRefused as exc:
        return _html(pages.message_page("Survey", exc.reason), exc.status)
    assert survey is not None
    return _html(pages.survey_form(survey, _strings(state, survey)))


def _strings(state: AppState, survey: surveys.Survey) -> dict[str, str]:
    url = survey.url(state.settings.public_url)
    return pages.strings(state.settings.templates_dir, survey, url=url)


def _score(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # a score has a digit or two: longer strings are refused before int() (which refuses
    # 4,300 digits with a ValueError)
    if isinstance(value, str) and len(value) <= 10 and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


@router.post("/v1/surveys/{token}", response_model=None)
async def answer_survey(token: str, request: Request, state: State) -> Response:
    """Answer a survey: JSON ``{score, comment}`` gets JSON back; a form post (from the
    page) gets an HTML page. 404 unknown, 410 expired, 409 answered, 422 bad score."""
    raw = await request.body()
    as_json = request.headers.get("content-type", "").startswith("application/json")
    if len(raw) > MAX_BODY:
        raise _error(413, "too_large", f"the answer is over {MAX_BODY} bytes")
    if as_json:
        try:
            data = sanitize.loads(raw or b"{}")  # an IngestError: the app's InputError handler
        except ValueError:
            raise _error(400, "bad_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _error(400, "bad_json", 'send {"score": N, "comment": "..."}')
    else:
        try:
            form = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=10)
        except ValueError:
            raise _error(400, "bad_form", "send the fields score and comment") from None
        data = {k: v[0] for k, v in form.items()}
    sanitize.check_text(data, "body")  # a form's %00 too
    comment = data.get("comment")
    async with state.pool.connection() as conn:
        survey = await surveys.get(conn, token)
        try:
            score = _score(data.get("score"))
            if score is None:
                low, high = survey.scale if survey else (0, 10)
                surveys.check(survey, _now())
                raise surveys.SurveyRefused("bad_score", f"choose a score from {low} to {high}")
            done = await surveys.answer(
                conn,
                token,
                score=score,
                comment=comment if isinstance(comment, str) else None,
                now=_now(),
            )
        except surveys.SurveyRefused as exc:
            status = exc.status
            if as_json:
                raise  # the app's RefusedError handler answers it
            if survey is not None and exc.code in ("bad_score", "bad_comment"):
                text = _strings(state, survey)
                return _html(pages.survey_form(survey, text, error=exc.reason), status)
            return _html(pages.message_page("Survey", exc.reason), status)
    if as_json:
        return JSONResponse(
            {
                "token": done.token,
                "kind": done.kind,
                "score": done.score,
                "category": done.category,
                "comment": done.comment,
                "answered_at": done.answered_at.isoformat() if done.answered_at else None,
            }
        )
    text = _strings(state, done)
    return _html(pages.message_page(text["page_title"], text["thanks"], lang=text["lang"]))


# --- unsubscribe ----------------------------------------------------------------------------


def _unsubscribe_target(state: AppState, token: str) -> tuple[str, str] | None:
    return consent.check_unsubscribe_token(state.settings.link_secret, token)


_BAD_LINK = "This unsubscribe link is not valid. Use the link from a recent message."


@router.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, state: State) -> HTMLResponse:
    """Asks to confirm; opting out takes the form's POST."""
    target = _unsubscribe_target(state, token)
    if target is None:
        return _html(pages.message_page("Unsubscribe", _BAD_LINK), 404)
    return _html(pages.unsubscribe_form(token, target[1]))


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, state: State, pool: Pool) -> HTMLResponse:
    """Opt out: the confirmation form, or a mail client's RFC 8058 one-click POST."""
    target = _unsubscribe_target(state, token)
    if target is None:
        return _html(pages.message_page("Unsubscribe", _BAD_LINK), 404)
    customer_id, channel = target
    async with pool.connection() as conn:
        await consent.set_opt_out(conn, customer_id, channel, True, "unsubscribe_link")
    return _html(pages.unsubscribed_page(channel))
