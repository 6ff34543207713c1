"""The API's seam: a route module is one ``APIRouter`` that takes what it needs from
``api.deps`` (the pool, the Temporal client, the caller), is listed in
``api.app.ROUTERS``, and imports neither the app nor another route module; credentials
are parsed in ``api.auth`` only."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter

from api import create_app
from api.app import ROUTERS
from api.deps import Admin, Pool, Temporal
from devstack.stack import free_port
from ingest import keys
from settings import Settings

API = Path(__file__).resolve().parent.parent / "api"
ROUTE_MODULES = sorted(p.stem for p in API.glob("*_routes.py"))

# A newcomer's route module, whole: nothing but the aliases of api.deps.
router = APIRouter()


@router.get("/v1/newcomer")
async def newcomer(admin: Admin, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM api_keys WHERE id = %s", (admin,))
        row = await cur.fetchone()
    return {"admin_key_rows": row[0] if row else 0}


@router.get("/v1/newcomer/temporal")
async def newcomer_temporal(_: Admin, client: Temporal) -> dict[str, Any]:
    return {"namespace": client.namespace}


async def _call(db_url: str, *requests: tuple[str, str | None]) -> list[httpx.Response]:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_DISPATCHER": False,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing listens
        }
    )
    app = create_app(settings)
    app.include_router(router)
    out = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http,
    ):
        for path, token in requests:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            out.append(await http.get(path, headers=headers))
    return out


async def test_a_new_route_module_needs_only_the_dependencies(db, db_url):
    async with db.connection() as conn:
        _, write = await keys.create(conn, "write", "test source")
        _, admin = await keys.create(conn, "admin", "test admin")

    anonymous, writer, ok, no_temporal, no_temporal_anonymous = await _call(
        db_url,
        ("/v1/newcomer", None),
        ("/v1/newcomer", write),
        ("/v1/newcomer", admin),
        ("/v1/newcomer/temporal", admin),
        ("/v1/newcomer/temporal", None),
    )

    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "missing_token")
    assert (writer.status_code, writer.json()["error"]) == (403, "write_key")
    assert (ok.status_code, ok.json()) == (200, {"admin_key_rows": 1})  # Admin is the key id
    assert no_temporal.status_code == 503
    assert no_temporal.json()["error"] == "temporal_unavailable"
    # the caller is checked before anything is connected
    assert no_temporal_anonymous.status_code == 401


def _imports(module: str) -> set[str]:
    """What ``api/<module>.py`` imports: relative imports as ``api.x``."""
    tree = ast.parse((API / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(p for p in ("api" if node.level else "", node.module or "") if p)
            if node.module:  # not "from . import x", which imports x only
                found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_route_modules_import_neither_the_app_nor_each_other():
    assert len(ROUTE_MODULES) >= 9
    for module in ROUTE_MODULES:
        wrong = {
            name
            for name in _imports(module)
            if name in {"api.app", "api"}
            or any(name == f"api.{m}" or name.startswith(f"api.{m}.") for m in ROUTE_MODULES)
        }
        assert not wrong, f"api/{module}.py imports {sorted(wrong)}: take it from api.deps"


def test_every_route_module_is_served():
    served = {id(r) for r in ROUTERS}
    for module in ROUTE_MODULES:
        found = importlib.import_module(f"api.{module}").router
        assert id(found) in served, f"api/{module}.py: add its router to api.app.ROUTERS"


def test_the_app_imports_its_routers_up_front():
    tree = ast.parse((API / "app.py").read_text(encoding="utf-8"))
    late = [
        node.lineno
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert late == [], f"api/app.py imports inside a function at lines {late}"


def test_credentials_are_parsed_in_one_place():
    readers = sorted(
        p.name for p in API.glob("*.py") if "b64decode" in p.read_text(encoding="utf-8")
    )
    assert readers == ["auth.py"]
