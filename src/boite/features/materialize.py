"""Materialization: each entity's newest values, from the offline history to the online store.

DuckDB reduces the history to one row per entity (the latest event, then the
latest created) before anything crosses into Python, so a million-row history of
a hundred thousand entities costs a hundred thousand upserts. It is incremental:
only events newer than the last materialized one are read, unless ``full``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boite.core.engine import quote_ident
from boite.features.online import OnlineTable, SQLiteOnlineStore
from boite.features.pit import parquet_relation
from boite.features.views import FeatureView

if TYPE_CHECKING:
    import duckdb

_BATCH = 50_000


@dataclass(frozen=True)
class Materialized:
    view: str
    rows_read: int  # entities with a newer event than the store had
    rows_written: int  # of those, rows that changed the store
    watermark_us: int | None
    full: bool


def online_table(view: FeatureView) -> OnlineTable:
    types = {c: view.types[c] for c in (*view.entities, *view.features)}
    return OnlineTable(view.name, view.entities, view.features, types)


def _micros(column: str, kind: str) -> str:
    if kind == "DATE":
        return f"epoch_us(CAST({quote_ident(column)} AS TIMESTAMP))"
    return f"epoch_us({quote_ident(column)})"


def _online_value(column: str, kind: str) -> str:
    ident = quote_ident(column)
    if kind in ("DATE", "TIME") or kind.startswith(("TIMESTAMP", "INTERVAL")):
        return f"CAST({ident} AS VARCHAR)"
    if kind in ("HUGEINT", "UHUGEINT", "UBIGINT"):
        return f"CAST({ident} AS BIGINT)"
    if kind.startswith("DECIMAL"):
        return f"CAST({ident} AS DOUBLE)"
    if kind in ("FLOAT", "DOUBLE", "REAL", "BOOLEAN", "VARCHAR") or "INT" in kind:
        return ident
    return f"CAST({ident} AS VARCHAR)"


def latest_rows_sql(view: FeatureView, relation: str, *, after_us: int | None) -> str:
    """One row per entity: its newest event (ties: newest created), as store rows."""
    keys = [quote_ident(k) for k in view.entities]
    event = _micros(view.timestamp, view.types[view.timestamp])
    created = (
        _micros(view.created_timestamp, view.types[view.created_timestamp])
        if view.created_timestamp
        else "NULL::BIGINT"
    )
    feats = [_online_value(f, view.types[f]) for f in view.features]
    where = f"{quote_ident(view.timestamp)} IS NOT NULL"
    if after_us is not None:
        where += f" AND {event} > {int(after_us)}"
    order = f"{event} DESC" + (f", {created} DESC NULLS LAST" if view.created_timestamp else "")
    return (
        f"SELECT {', '.join(keys)}, {event} AS __event_us, {created} AS __created_us, "
        f"{', '.join(feats)} FROM {relation} WHERE {where} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1"
    )


def materialize(
    con: duckdb.DuckDBPyConnection,
    store: SQLiteOnlineStore,
    view: FeatureView,
    paths: Sequence[Path],
    *,
    source_hash: str | None,
    full: bool = False,
) -> Materialized:
    table = online_table(view)
    if full:
        store.drop(view.name)
    store.ensure(table)
    state = store.state(view.name)
    after = None if full or state is None else state.watermark_us
    sql = latest_rows_sql(view, parquet_relation(paths), after_us=after)
    cursor = con.execute(sql)
    read = written = 0
    newest = after
    n_keys = len(view.entities)
    while True:
        batch: list[tuple[Any, ...]] = cursor.fetchmany(_BATCH)
        if not batch:
            break
        read += len(batch)
        top = max(r[n_keys] for r in batch)
        newest = top if newest is None else max(newest, top)
        written += store.write(view.name, batch)
    store.mark(view.name, watermark_us=newest, source_hash=source_hash)
    return Materialized(view.name, read, written, newest, full)
