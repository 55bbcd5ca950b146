"""Point-in-time joins: features as they were known at each label row's time.

For each label row and each feature view, the join takes the latest feature row
of the same entity whose event time is at or before the row's time, and within
the view's TTL; a row with no such feature row keeps its place with nulls. It is
one DuckDB query (an ``ASOF LEFT JOIN`` per view) streaming from Parquet, and the
label rows come out in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boite.core.engine import quote_ident, quote_literal
from boite.errors import FeatureError
from boite.features.views import TIME_TYPES, TZ_TYPES, FeatureView

if TYPE_CHECKING:
    import duckdb

ROW = "file_row_number"  # added by read_parquet(file_row_number=true): the label order


@dataclass(frozen=True)
class ViewInput:
    """A view, the features wanted from it, and the Parquet files that hold its history."""

    view: FeatureView
    features: tuple[str, ...]
    paths: tuple[Path, ...]


def parquet_relation(paths: Sequence[Path]) -> str:
    files = ", ".join(quote_literal(str(p)) for p in paths)
    return f"read_parquet([{files}], union_by_name = true)"


def _time_type(label_type: str, view: FeatureView, label_ts: str) -> str:
    """The type both sides are compared in; mixing zoned and naive times is an error."""
    view_type = view.types[view.timestamp]
    label_tz, view_tz = label_type in TZ_TYPES, view_type in TZ_TYPES
    if label_type not in TIME_TYPES + TZ_TYPES:
        raise FeatureError(
            f"the label column '{label_ts}' is {label_type}; it must be a DATE or TIMESTAMP",
            hint="Convert it before asking for features, e.g. pd.to_datetime(df[col]).",
        )
    if label_tz != view_tz:
        zoned, naive = (
            ("the labels", f"feature view '{view.name}'")
            if label_tz
            else (f"feature view '{view.name}'", "the labels")
        )
        raise FeatureError(
            f"time zones are mixed: {zoned} use timestamps with a time zone "
            f"('{label_ts}' is {label_type}, '{view.timestamp}' is {view_type}) and {naive} "
            "use timestamps without one",
            view=view.name,
            hint="Make both sides the same: convert the naive side to UTC (tz_localize('UTC')) "
            "or drop the zone from the zoned side (tz_convert('UTC').tz_localize(None)).",
        )
    return "TIMESTAMPTZ" if label_tz else "TIMESTAMP"


def feature_columns(
    inputs: Sequence[ViewInput], label_columns: Sequence[str], *, full_names: bool
) -> list[tuple[ViewInput, str, str]]:
    """(input, feature, output column) for every feature, refusing ambiguous names."""
    out: list[tuple[ViewInput, str, str]] = []
    taken = {c.lower(): "the labels" for c in label_columns}
    for item in inputs:
        for feature in item.features:
            name = f"{item.view.name}__{feature}" if full_names else feature
            owner = taken.get(name.lower())
            if owner is not None:
                raise FeatureError(
                    f"the column '{name}' would come both from {owner} and from feature view "
                    f"'{item.view.name}'",
                    view=item.view.name,
                    hint="Pass full_names=True to name features 'view__feature', or drop one.",
                )
            taken[name.lower()] = f"feature view '{item.view.name}'"
            out.append((item, feature, name))
    return out


def point_in_time_sql(
    labels: str,
    label_types: dict[str, str],
    timestamp: str,
    inputs: Sequence[ViewInput],
    *,
    full_names: bool = False,
) -> str:
    """The query; ``labels`` is a relation that carries the ``file_row_number`` column."""
    if timestamp not in label_types:
        raise FeatureError(
            f"the labels have no column '{timestamp}' to take the time of each row from",
            hint="Columns: " + ", ".join(c for c in label_types if c != ROW) + ".",
        )
    for item in inputs:
        missing = [k for k in item.view.entities if k not in label_types]
        if missing:
            raise FeatureError(
                f"the labels lack the entity column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)} of feature view '{item.view.name}'",
                view=item.view.name,
                hint="Every label row needs the keys of each view it takes features from; "
                "columns: " + ", ".join(c for c in label_types if c != ROW) + ".",
            )
        for key in item.view.entities:
            if _key_family(label_types[key]) != _key_family(item.view.types[key]):
                raise FeatureError(
                    f"the label column '{key}' is {label_types[key]} but feature view "
                    f"'{item.view.name}' keys it as {item.view.types[key]}; they would never match",
                    view=item.view.name,
                    hint=f"Convert the labels' '{key}' to {item.view.types[key]} "
                    "(for text ids, keep leading zeros: read them as strings).",
                )
    label_columns = [c for c in label_types if c != ROW]
    columns = feature_columns(inputs, label_columns, full_names=full_names)
    l_ts = f"l.{quote_ident(timestamp)}"
    ctes = [f"__labels AS (SELECT * FROM {labels})"]
    joins = []
    selects = [f"l.{quote_ident(c)}" for c in label_columns]
    for i, item in enumerate(inputs):
        view = item.view
        alias = f"__fv{i}"
        time_type = _time_type(label_types[timestamp], view, timestamp)
        ctes.append(f"{alias} AS ({history_sql(item, time_type)})")
        on = " AND ".join(
            f"l.{quote_ident(k)} = {alias}.__k{j}" for j, k in enumerate(view.entities)
        )
        joins.append(
            f"ASOF LEFT JOIN {alias} ON {on} AND CAST({l_ts} AS {time_type}) >= {alias}.__t"
        )
        for owner, feature, name in columns:
            if owner is not item:
                continue
            value = f"{alias}.{quote_ident(feature)}"
            if view.ttl is not None:
                seconds = int(view.ttl.total_seconds())
                value = (
                    f"CASE WHEN {alias}.__t >= CAST({l_ts} AS {time_type}) - "
                    f"INTERVAL '{seconds} seconds' THEN {value} END"
                )
            selects.append(f"{value} AS {quote_ident(name)}")
    return (
        "WITH "
        + ",\n".join(ctes)
        + "\nSELECT "
        + ", ".join(selects)
        + "\nFROM __labels AS l\n"
        + "\n".join(joins)
        + f"\nORDER BY l.{ROW}"
    )


def history_sql(item: ViewInput, time_type: str) -> str:
    """A view's history as the joins read it: its keys as ``__k0..``, its event time as
    ``__t`` (cast to ``time_type``), its features; one row per (keys, time), the latest
    created winning when the view has a created timestamp."""
    view = item.view
    keys = ", ".join(f"{quote_ident(k)} AS __k{j}" for j, k in enumerate(view.entities))
    feats = ", ".join(quote_ident(f) for f in item.features)
    dedupe = ""
    if view.created_timestamp:
        part = ", ".join(quote_ident(k) for k in (*view.entities, view.timestamp))
        dedupe = (
            f" QUALIFY row_number() OVER (PARTITION BY {part} "
            f"ORDER BY {quote_ident(view.created_timestamp)} DESC NULLS LAST) = 1"
        )
    return (
        f"SELECT {keys}, CAST({quote_ident(view.timestamp)} AS {time_type}) AS __t, {feats} "
        f"FROM {parquet_relation(item.paths)} "
        f"WHERE {quote_ident(view.timestamp)} IS NOT NULL{dedupe}"
    )


def _key_family(kind: str) -> str:
    return "text" if kind == "VARCHAR" else "integer" if "INT" in kind else kind


def check_unique_events(
    con: duckdb.DuckDBPyConnection, view: FeatureView, paths: Sequence[Path]
) -> None:
    """Two rows of one entity at one event time are ambiguous unless a created time decides."""
    if view.created_timestamp:
        return
    keys = ", ".join(quote_ident(k) for k in (*view.entities, view.timestamp))
    rows = con.execute(
        f"SELECT {keys}, count(*) AS n FROM {parquet_relation(paths)} "
        f"WHERE {quote_ident(view.timestamp)} IS NOT NULL "
        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 3"
    ).fetchall()
    if rows:
        shown = "; ".join(
            ", ".join(
                f"{c}={v!s}" for c, v in zip((*view.entities, view.timestamp), r[:-1], strict=True)
            )
            + f" ({r[-1]} rows)"
            for r in rows
        )
        raise FeatureError(
            f"feature view '{view.name}': several rows share one entity and event time, so "
            f"which value held then is ambiguous: {shown}",
            view=view.name,
            hint="De-duplicate them in the transform, or declare 'created_timestamp' so the "
            "latest created row wins.",
        )


def run_point_in_time(
    con: duckdb.DuckDBPyConnection,
    labels_path: Path,
    timestamp: str,
    inputs: Sequence[ViewInput],
    out_path: Path,
    *,
    full_names: bool = False,
) -> dict[str, str]:
    """Join, write ``out_path`` (Parquet), and return the output schema."""
    labels = f"read_parquet({quote_literal(str(labels_path))}, file_row_number = true)"
    rel = con.sql(f"SELECT * FROM {labels} LIMIT 0")
    label_types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    sql = point_in_time_sql(labels, label_types, timestamp, inputs, full_names=full_names)
    result = con.sql(sql)
    schema = {c: str(t) for c, t in zip(result.columns, result.types, strict=True)}
    result.write_parquet(str(out_path), compression="zstd")
    return schema
