"""Millions of numbers between PostgreSQL and numpy without a Python object per row: the
segment refresh reads the order events and writes the customers' totals and forecasts
this way.

Out: a query returns a few rows of ``array_send(array_agg(...))`` columns (8-byte values:
bigint, or timestamptz as microseconds since 2000-01-01 UTC), read by binary COPY; each
array is parsed by numpy at once. (Rows one by one cost microseconds each in Python: a
minute for ten million orders.) In: fixed-width rows written by one binary COPY.

The formats: a binary COPY is a signature, flags and a header extension length, then per
row the number of fields and each field's length and bytes, -1 as the field count at the
end; an array's binary form is its number of dimensions, a has-NULLs flag, the element
type, the size and lower bound of each dimension, then each element's length and value.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_TRAILER = b"\xff\xff"
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">i8")])


async def arrays(
    conn: AsyncConnection[Any], query: str, params: Mapping[str, Any] | None, n: int
) -> AsyncIterator[list[npt.NDArray[np.int64]]]:
    """Each row of ``query``, whose ``n`` columns are one-dimensional arrays of 8-byte
    values without NULLs in their binary form (``array_send``), as ``n`` int64 arrays of
    one length. A NULL column (``array_agg`` of no rows) is an empty array."""
    pending = bytearray()
    header = True
    statement = f"COPY ({query}) TO STDOUT (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(statement, params) as copy:
        async for block in copy:
            pending += block
            if header:
                if len(pending) < len(_SIGNATURE):
                    continue
                if pending[: len(_SIGNATURE)] != _SIGNATURE:
                    raise ValueError(f"COPY of {query!r} is not PostgreSQL's binary format")
                del pending[: len(_SIGNATURE)]
                header = False
            while (row := _take_row(pending)) is not None:
                columns = [_array(field, query) for field in row]
                if len(columns) != n or len({len(c) for c in columns}) > 1:
                    raise ValueError(f"{query!r}: a row is not {n} arrays of one length")
                yield columns
    if bytes(pending) != _TRAILER:
        raise ValueError(f"COPY of {query!r} did not end where its format does")


def _take_row(pending: bytearray) -> list[bytes | None] | None:
    """The fields of the first whole row in ``pending``, removed from it; None if no
    whole row is there yet (or only the end)."""
    if len(pending) < 2 or bytes(pending[:2]) == _TRAILER:
        return None
    (count,) = struct.unpack_from(">h", pending, 0)
    at = 2
    fields: list[bytes | None] = []
    for _ in range(count):
        if len(pending) < at + 4:
            return None
        (length,) = struct.unpack_from(">i", pending, at)
        at += 4
        if length < 0:
            fields.append(None)
            continue
        if len(pending) < at + length:
            return None
        fields.append(bytes(pending[at : at + length]))
        at += length
    del pending[:at]
    return fields


def _array(field: bytes | None, query: str) -> npt.NDArray[np.int64]:
    if field is None:
        return np.zeros(0, dtype=np.int64)
    ndim, has_null, _ = struct.unpack_from(">iii", field, 0)
    if ndim == 0:
        return np.zeros(0, dtype=np.int64)
    if ndim != 1 or has_null:
        raise ValueError(f"{query!r}: an array is not one-dimensional without NULLs")
    (size,) = struct.unpack_from(">i", field, 12)
    elements = np.frombuffer(field, dtype=_ELEMENT, offset=20)
    if len(elements) != size or not (elements["length"] == 8).all():
        raise ValueError(f"{query!r}: an array is not of 8-byte values")
    return elements["value"].astype(np.int64)


def _row_type(kinds: list[str]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    for i, kind in enumerate(kinds):
        fields += [(f"length{i}", ">i4"), (f"value{i}", ">" + kind)]
    return np.dtype(fields)


async def copy_in(
    conn: AsyncConnection[Any], statement: str, columns: list[tuple[npt.NDArray[Any], str]]
) -> None:
    """COPY ``columns`` (arrays of one length, each with its kind: i8 or f8) in binary."""
    rows = np.zeros(len(columns[0][0]), dtype=_row_type([kind for _, kind in columns]))
    rows["fields"] = len(columns)
    for i, (values, _) in enumerate(columns):
        rows[f"length{i}"] = 8
        rows[f"value{i}"] = values
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        await copy.write(_SIGNATURE + rows.tobytes() + _TRAILER)
