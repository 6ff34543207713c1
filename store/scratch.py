"""Scratch databases: a database of its own for a run that must not touch anyone's data
(``journeys test --temporal``), created on a server and dropped after."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return make_conninfo(url, dbname=name)


def shown(url: str) -> str:
    """``host:port/dbname`` of ``url``, without user or password (for a log line)."""
    info = conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    if str(host).startswith("/"):
        host = "local socket"
    port = info.get("port") or 5432
    return f"{host}:{port}/{info.get('dbname') or ''}"


async def create(server_url: str, prefix: str) -> str:
    """A new, empty database named ``PREFIX_<random>`` on ``server_url``'s server; returns
    its URL. Needs the CREATEDB privilege."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


async def drop(server_url: str, url: str) -> None:
    """Drop the database of ``url`` (made by :func:`create`), connected through the
    server's ``server_url``; connections still open to it are closed."""
    name = conninfo_to_dict(url).get("dbname")
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )
