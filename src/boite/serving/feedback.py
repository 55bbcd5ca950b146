"""Feedback: labels that arrive after the predictions, joined to the prediction log.

A label names its prediction by ``request_id`` (and ``row``, for a request of
several rows), or by the entity keys and a time: then it joins, for each model
version and role in the log, the latest prediction of that entity at or before
that time (an ``ASOF`` join in DuckDB, over the log's Parquet partitions).

Duplicates are settled deterministically: of two labels for one request row (or
one entity and time) the later in the input wins; of two predictions of one
entity at one time by one version and role, the one in the newer partition (then
the higher row) wins. The champion and a shadow challenger log the same request
id, so one label scores both: that is how they are compared on live traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from boite.core.engine import quote_ident, quote_literal
from boite.core.suggest import did_you_mean
from boite.errors import UserError

if TYPE_CHECKING:
    import duckdb

FEEDBACK = "feedback"  # the artifact kind of one batch of labels
LABEL, LABEL_TIME, MATCHED_BY = "label", "label_time", "matched_by"
_ORDER = "__label_row"
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "json", ".ndjson": "json"}
_TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


@dataclass(frozen=True)
class Labels:
    """Labels normalized: ``request_id``, ``row``, the keys (as text), ``label_time``
    (UTC), ``label``, one row per label, duplicates removed."""

    table: pa.Table
    keys: tuple[str, ...]
    rows_given: int
    duplicates: int


def read_labels(source: Any, *, text_columns: Sequence[str] = ()) -> pa.Table:
    """Labels from a file (CSV, Parquet, JSON lines), a list of dicts (an API's body),
    a pandas DataFrame or an Arrow table."""
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, list):
        if not source or not all(isinstance(r, dict) for r in source):
            raise UserError(
                "the labels must be a non-empty list of objects",
                hint='Send [{"request_id": "...", "label": 1}, ...].',
            )
        return pa.Table.from_pylist(source)
    if hasattr(source, "to_records") and hasattr(source, "columns"):
        return pa.Table.from_pandas(source, preserve_index=False)
    path = Path(source)
    if not path.is_file():
        raise UserError(
            f"the labels file '{path}' does not exist",
            hint="Give a CSV, Parquet or JSON lines file of labels.",
        )
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"the labels file '{path}' has the suffix '{path.suffix}', which boite cannot read",
            hint="Use one of: " + ", ".join(_FORMATS) + ".",
        )
    import duckdb

    literal = quote_literal(str(path.resolve()))
    con = duckdb.connect()
    try:
        if kind == "parquet":
            return con.sql(f"SELECT * FROM read_parquet({literal})").to_arrow_table()
        if kind == "json":
            return con.sql(
                f"SELECT * FROM read_json({literal}, format = 'newline_delimited')"
            ).to_arrow_table()
        plain = f"read_csv({literal}, header = true)"
        columns = con.sql(f"SELECT * FROM {plain} LIMIT 0").columns
        # ids are text: '00001' must not be sniffed into the number 1
        texts = [c for c in ("request_id", *text_columns) if c in columns]
        types = ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in texts)
        relation = f"read_csv({literal}, header = true, types = {{{types}}})" if texts else plain
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table()
    except duckdb.Error as exc:
        raise UserError(
            f"the labels file '{path}' cannot be read: {str(exc).splitlines()[0]}",
            hint="A CSV needs a header row; JSON lines one object per line.",
        ) from None
    finally:
        con.close()


def normalize(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    *,
    label_column: str,
    keys: Sequence[str],
    timestamp: str | None,
    where: str,
) -> Labels:
    """Check the labels' columns and bring them to one layout (see :class:`Labels`)."""
    columns = table.column_names
    if label_column not in columns:
        guess = did_you_mean(label_column, columns)
        raise UserError(
            f"the labels {where} have no label column '{label_column}'",
            hint=(f"Did you mean '{guess}'? " if guess else "")
            + "Columns: "
            + ", ".join(columns)
            + ". Name it with --label-column.",
        )
    by_id = "request_id" in columns
    by_entity = bool(keys) and all(k in columns for k in keys)
    time_column = timestamp
    con.register("__given", table)
    types = dict(
        zip(columns, (str(t) for t in con.sql("SELECT * FROM __given LIMIT 0").types), strict=True)
    )
    if by_entity:
        if time_column is None:
            times = [c for c, t in types.items() if t.startswith(_TIME_TYPES)]
            if len(times) == 1:
                time_column = times[0]
        if time_column is None or time_column not in columns:
            if not by_id:
                raise UserError(
                    f"the labels {where} name entities ({', '.join(keys)}) but no time to join "
                    "them at"
                    + ("" if time_column is None else f": there is no column '{time_column}'"),
                    hint="Give the time each label is about (--timestamp COLUMN); it joins the "
                    "latest prediction at or before it.",
                )
            by_entity = False
    if not by_id and not by_entity:
        raise UserError(
            f"the labels {where} have neither a 'request_id' column nor the entity keys "
            + (", ".join(repr(k) for k in keys) if keys else "(the model has none)"),
            hint="Give request_id (and row) as the server answered them, or the keys and a "
            "time. Columns: " + ", ".join(columns) + ".",
        )
    selects = [
        "row_number() OVER () AS " + _ORDER,
        ("CAST(request_id AS VARCHAR)" if by_id else "CAST(NULL AS VARCHAR)") + " AS request_id",
        ('CAST("row" AS INTEGER)' if by_id and "row" in columns else "CAST(NULL AS INTEGER)")
        + ' AS "row"',
    ]
    for key in keys:
        value = f"CAST({quote_ident(key)} AS VARCHAR)" if by_entity else "CAST(NULL AS VARCHAR)"
        selects.append(f"{value} AS {quote_ident(key)}")
    if by_entity:
        assert time_column is not None
        time_sql = _as_utc(con, types, time_column, where)
    else:
        time_sql = "CAST(NULL AS TIMESTAMPTZ)"
    selects.append(f"{time_sql} AS {LABEL_TIME}")
    selects.append(f"{quote_ident(label_column)} AS {LABEL}")
    rel = con.sql(f"SELECT {', '.join(selects)} FROM __given")
    con.register("__normal", rel.to_arrow_table())
    con.unregister("__given")
    # the later label of one request row (or one entity and time) wins: a correction
    key_sql = ", ".join(quote_ident(k) for k in keys)
    entity_part = f"{key_sql}, {LABEL_TIME}" if keys else LABEL_TIME
    unique = con.sql(
        f"SELECT * FROM __normal WHERE {LABEL} IS NOT NULL "
        "AND (request_id IS NOT NULL OR "
        + (" AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in keys) or "FALSE")
        + f" AND {LABEL_TIME} IS NOT NULL) "
        'QUALIFY row_number() OVER (PARTITION BY request_id, "row", '
        f"CASE WHEN request_id IS NULL THEN struct_pack({entity_part}) END "
        f"ORDER BY {_ORDER} DESC) = 1 ORDER BY {_ORDER}"
    ).to_arrow_table()
    con.unregister("__normal")
    usable = table.num_rows - table.column(label_column).null_count
    return Labels(unique, tuple(keys), table.num_rows, usable - unique.num_rows)


def _as_utc(con: duckdb.DuckDBPyConnection, types: dict[str, str], column: str, where: str) -> str:
    kind = types[column]
    name = quote_ident(column)
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return name
    if kind.startswith(_TIME_TYPES):
        return f"timezone('UTC', CAST({name} AS TIMESTAMP))"
    bad = con.execute(
        f"SELECT {name} FROM __given WHERE {name} IS NOT NULL "
        f"AND TRY_CAST({name} AS TIMESTAMPTZ) IS NULL LIMIT 1"
    ).fetchall()
    if bad:
        raise UserError(
            f"the labels {where}: the time column '{column}' holds '{bad[0][0]}', which is not "
            "a date or time",
            hint="Write ISO 8601 dates or times (1998-06-30, 1998-06-30T12:00:00Z).",
        )
    return f"CAST({name} AS TIMESTAMPTZ)"


def match_sql(parts: Sequence[Path], keys: Sequence[str], *, columns: str) -> str:
    """Labels (``__labels``) joined to the log partitions ``parts`` (oldest first).

    ``columns`` are the log columns to keep (``g.*`` for all). The result has one row
    per (label, matched log row), with ``__label_row``, ``__part`` (the partition's
    index), ``label``, ``label_time`` and ``matched_by``.
    """
    files = ", ".join(quote_literal(str(p)) for p in parts)
    parts_values = ", ".join(f"({quote_literal(str(p))}, {i})" for i, p in enumerate(parts))
    log = (
        "__log AS (SELECT g.*, p.__part FROM read_parquet([" + files + "], union_by_name = true, "
        "filename = true) AS g JOIN (VALUES " + parts_values + ") AS p(__file, __part) "
        "ON g.filename = p.__file)"
    )
    keep = f"{columns}, l.{_ORDER}, g.__part, l.{LABEL}, l.{LABEL_TIME}"
    by_id = (
        f"SELECT {keep}, 'request_id' AS {MATCHED_BY} FROM __labels AS l JOIN __log AS g "
        'ON g.request_id = l.request_id AND (l."row" IS NULL OR g."row" = l."row") '
        "WHERE l.request_id IS NOT NULL"
    )
    if not keys:
        return f"WITH {log} {by_id}"
    key_cols = ", ".join(f"g.{quote_ident(k)}" for k in keys)
    entity_log = (
        "__entity_log AS (SELECT * FROM __log AS g WHERE "
        + " AND ".join(f"g.{quote_ident(k)} IS NOT NULL" for k in keys)
        + f" QUALIFY row_number() OVER (PARTITION BY {key_cols}, g.version, g.role, g.time "
        'ORDER BY g.__part DESC, g."row" DESC) = 1)'
    )
    pairs = "__pairs AS (SELECT DISTINCT version AS __v, role AS __r FROM __entity_log)"
    wanted = (
        "__wanted AS (SELECT l.*, p.__v, p.__r FROM __labels AS l, __pairs AS p "
        f"WHERE l.request_id IS NULL AND l.{LABEL_TIME} IS NOT NULL)"
    )
    on = " AND ".join(f"g.{quote_ident(k)} = l.{quote_ident(k)}" for k in keys)
    by_entity = (
        f"SELECT {keep}, 'entity' AS {MATCHED_BY} FROM __wanted AS l ASOF JOIN __entity_log AS g "
        f"ON {on} AND g.version = l.__v AND g.role = l.__r AND l.{LABEL_TIME} >= g.time"
    )
    return f"WITH {log}, {entity_log}, {pairs}, {wanted} {by_id} UNION ALL BY NAME {by_entity}"
