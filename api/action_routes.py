"""What actions left behind, over HTTP: coupon redemption and budgets, account managers
and staff tasks (admin token), and the public, token-in-the-path pages customers use:
survey answers (``/s/{token}``, ``/v1/surveys/{token}``) and unsubscribe links
(``/u/{token}``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from ingest import sanitize
from ingest.segment import IngestError
from store import consent, managers, offers, surveys, tasks, waitlist

from . import survey_page as pages
from .admin_routes import Admin, _state
from .app import AppState

router = APIRouter()

NAME = r"^[a-z][a-z0-9_]*$"  # budget and pool names, as journeys write them
PG_INT = 2**31 - 1  # PostgreSQL integer columns (max_live, capacity)
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # bigserial ids
REFUSAL_STATUS = {
    "unknown": 404,
    "expired": 410,
    "answered": 409,
    "bad_score": 422,
    "bad_comment": 422,
}


def _error(status: int, error: str, message: str) -> HTTPException:
    return HTTPException(status, {"error": error, "message": message})


def _now() -> datetime:
    return datetime.now(UTC)


# --- offers -------------------------------------------------------------------------------


class RedeemBody(BaseModel):
    customer_id: str | None = Field(None, description="refuse unless the coupon is theirs")


def _coupon(c: offers.Coupon) -> dict[str, Any]:
    return {**asdict(c), "discount": c.discount}


@router.post("/v1/offers/{code}/redeem", tags=["offers"])
async def redeem_offer(code: str, state: Admin, body: RedeemBody | None = None) -> dict[str, Any]:
    """Redeem a coupon (case and dashes do not matter): 404 unknown code, 409 refused
    (already redeemed, expired, another customer's) with the reason."""
    async with state.pool.connection() as conn:
        try:
            coupon = await offers.redeem(
                conn, code, customer_id=body.customer_id if body else None, via="api", now=_now()
            )
        except offers.RedeemRefused as exc:
            status = 404 if exc.code == "unknown_code" else 409
            raise _error(status, exc.code, exc.reason) from None
    return _coupon(coupon)


class BudgetBody(BaseModel):
    max_live: int = Field(
        ge=0, le=PG_INT, description="at most this many unredeemed, unexpired coupons"
    )


@router.put("/v1/offer-budgets/{name}", tags=["offers"])
async def put_budget(
    name: Annotated[str, Path(pattern=NAME, max_length=100)], body: BudgetBody, state: Admin
) -> dict[str, Any]:
    """Create or change an offer budget (journeys name it in ``offer: {budget: NAME}``)."""
    async with state.pool.connection() as conn:
        await offers.set_budget(conn, name, body.max_live)
    return {"name": name, "max_live": body.max_live}


# --- account managers -----------------------------------------------------------------------


class ManagerBody(BaseModel):
    pool: str = Field(min_length=1, max_length=100, pattern=NAME)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    capacity: int = Field(gt=0, le=1_000_000)


@router.get("/v1/managers", tags=["managers"])
async def get_managers(state: Admin, pool: str | None = None) -> dict[str, Any]:
    """Managers (of one pool) with their load and capacity."""
    async with state.pool.connection() as conn:
        found = await managers.list_managers(conn, pool)
    return {"managers": [asdict(m) for m in found]}


@router.post("/v1/managers", tags=["managers"], status_code=201)
async def post_manager(body: ManagerBody, state: Admin) -> dict[str, Any]:
    """Add an account manager to a pool (bringing a deactivated one back). Customers
    waiting in the pool's queue get a manager at once (``assigned_from_queue``: how many);
    the worker sends their managers' notes."""
    async with state.pool.connection() as conn:
        try:
            manager = await managers.add(conn, **body.model_dump())
        except managers.DuplicateManager as exc:
            raise _error(409, "duplicate_manager", str(exc)) from None
        except managers.ManagerError as exc:  # e.g. a name of blanks only
            raise _error(422, "bad_manager", str(exc)) from None
        assigned = await waitlist.assign_waiting(conn, manager.pool, now=datetime.now(UTC))
        manager = await managers.get(conn, manager.id) or manager  # its load now
    return {**asdict(manager), "assigned_from_queue": len(assigned)}


@router.post("/v1/managers/{manager_id}/deactivate", tags=["managers"])
async def deactivate_manager(manager_id: RowId, state: Admin) -> dict[str, Any]:
    """Deactivate a manager; their customers and open tasks go to the others."""
    async with state.pool.connection() as conn:
        try:
            moves = await managers.deactivate(conn, manager_id)
        except managers.UnknownManager as exc:
            raise _error(404, "unknown_manager", str(exc)) from None
    return {
        "deactivated": manager_id,
        "reassigned": [{"customer_id": c, "manager": asdict(m) if m else None} for c, m in moves],
    }


# --- tasks ------------------------------------------------------------------------------------


def _task(t: tasks.Task) -> dict[str, Any]:
    return {**asdict(t), "assignee": t.assignee}


@router.get("/v1/tasks", tags=["tasks"])
async def get_tasks(
    state: Admin,
    assignee: Annotated[
        str | None,
        Query(max_length=320, description="manager email or id, pool name, or 'unassigned'"),
    ] = None,
    status: Annotated[str | None, Query(pattern="^(open|done)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Staff tasks by due date."""
    async with state.pool.connection() as conn:
        found = await tasks.list_tasks(conn, assignee=assignee, status=status, limit=limit)
    return {"tasks": [_task(t) for t in found]}


class CompleteBody(BaseModel):
    by: str | None = Field(None, max_length=320, description="who did it (default: admin)")


@router.post("/v1/tasks/{task_id}/complete", tags=["tasks"])
async def complete_task(
    task_id: RowId, state: Admin, body: CompleteBody | None = None
) -> dict[str, Any]:
    """Mark a task done (again: no change); the customer's journeys get task_completed."""
    by = (body.by if body else None) or "admin"
    async with state.pool.connection() as conn:
        try:
            task = await tasks.complete(conn, task_id, by=by, now=_now())
        except tasks.UnknownTask as exc:
            raise _error(404, "unknown_task", str(exc)) from None
    return _task(task)


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


@router.get("/s/{token}", tags=["public"], response_class=HTMLResponse)
async def survey_page(token: str, request: Request) -> HTMLResponse:
    """The survey answer page: a plain HTML form that needs no JavaScript."""
    state = _state(request)
    async with state.pool.connection() as conn:
        survey = await surveys.get(conn, token)
    try:
        surveys.check(survey, _now())
    except surveys.SurveyRefused as exc:
        return _html(pages.message_page("Survey", exc.reason), REFUSAL_STATUS[exc.code])
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


@router.post("/v1/surveys/{token}", tags=["public"], response_model=None)
async def answer_survey(token: str, request: Request) -> Response:
    """Answer a survey: JSON ``{score, comment}`` gets JSON back; a form post (from the
    page) gets an HTML page. 404 unknown, 410 expired, 409 answered, 422 bad score."""
    state = _state(request)
    raw = await request.body()
    as_json = request.headers.get("content-type", "").startswith("application/json")
    if len(raw) > MAX_BODY:
        raise _error(413, "too_large", f"the answer is over {MAX_BODY} bytes")
    if as_json:
        try:
            data = sanitize.loads(raw or b"{}")
        except IngestError as exc:
            raise _error(400, exc.reason, str(exc)) from None
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
    try:
        sanitize.check_text(data, "body")  # a form's %00 too
    except IngestError as exc:
        raise _error(400, exc.reason, str(exc)) from None
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
            status = REFUSAL_STATUS[exc.code]
            if as_json:
                raise _error(status, exc.code, exc.reason) from None
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


# --- unsubscribe (public) -------------------------------------------------------------------


def _unsubscribe_target(request: Request, token: str) -> tuple[str, str] | None:
    return consent.check_unsubscribe_token(_state(request).settings.link_secret, token)


_BAD_LINK = "This unsubscribe link is not valid. Use the link from a recent message."


@router.get("/u/{token}", tags=["public"], response_class=HTMLResponse)
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """Asks to confirm; opting out takes the form's POST."""
    target = _unsubscribe_target(request, token)
    if target is None:
        return _html(pages.message_page("Unsubscribe", _BAD_LINK), 404)
    return _html(pages.unsubscribe_form(token, target[1]))


@router.post("/u/{token}", tags=["public"], response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Opt out: the confirmation form, or a mail client's RFC 8058 one-click POST."""
    target = _unsubscribe_target(request, token)
    if target is None:
        return _html(pages.message_page("Unsubscribe", _BAD_LINK), 404)
    customer_id, channel = target
    async with _state(request).pool.connection() as conn:
        await consent.set_opt_out(conn, customer_id, channel, True, "unsubscribe_link")
    return _html(pages.unsubscribed_page(channel))
