"""Insert thousands of rows in one statement: what a campaign's fan-out writes per chunk.

An executemany through the ORM's insert pays Python work per row and per bound parameter
(16 columns x 5,000 rows is 80,000 parameters). Here each column travels as one value: a
PostgreSQL array (`INSERT … SELECT FROM unnest($1::bigint[], $2::text[], …)`) or, on SQLite,
one JSON document read by `json_each` inside SQLite. Values go through each column type's own
bind processing first, so what is stored is exactly what the ORM would store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession


def _processors(table: Table, columns: Sequence[str], dialect: Any) -> list[Any]:
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str],
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert `rows` (dicts with the same keys), skipping conflicts on the `conflict` columns.

    Return the `returning` columns of the rows inserted (none for the ones skipped).
    """
    if not rows:
        return []
    columns = list(rows[0])
    dialect = session.get_bind().dialect
    processors = _processors(table, columns, dialect)
    values = [
        [process(row[name]) if process else row[name] for row in rows]
        for name, process in zip(columns, processors, strict=True)
    ]
    names = ", ".join(f'"{name}"' for name in columns)
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    back = f" RETURNING {', '.join(returning)}" if returning else ""
    if dialect.name == "postgresql":
        casts = []
        params: dict[str, Any] = {}
        for i, name in enumerate(columns):
            sql_type = table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)
            if sql_type.upper() in ("JSON", "JSONB"):
                # asyncpg takes JSON as text; the array of texts is cast element by element.
                params[f"c{i}"] = [
                    v if v is None or isinstance(v, str) else json.dumps(v) for v in values[i]
                ]
                casts.append(f"CAST(:c{i} AS TEXT[])")
                continue
            params[f"c{i}"] = values[i]
            casts.append(f"CAST(:c{i} AS {sql_type}[])")
        selected = ", ".join(
            f"CAST(u.c{i} AS {table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)})"
            for i, name in enumerate(columns)
        )
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {selected} "
            f"FROM unnest({', '.join(casts)}) AS u({aliases}) {on_conflict}{back}"
        )
        result = await session.execute(text(sql), params)
    else:
        document = json.dumps(
            [[values[i][r] for i in range(len(columns))] for r in range(len(rows))],
            default=str,
        )
        selected = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {selected} "
            f"FROM json_each(:doc) WHERE true {on_conflict}{back}"
        )
        result = await session.execute(text(sql), {"doc": document})
    return [tuple(row) for row in result.all()] if returning else []
