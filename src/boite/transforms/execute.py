"""Run one transform in the engine and write its result as a Parquet file.

Inputs are exposed to the SQL as views over their verified Parquet files, so the
query streams from disk; the result streams back to disk without passing
through Python.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boite.core.engine import quote_ident, quote_literal
from boite.errors import TransformError
from boite.transforms.python import PythonTransform, argument_kinds, load_function

if TYPE_CHECKING:
    import duckdb

_LINE = re.compile(r"LINE (\d+):")
_WIDE_INTEGERS = {"HUGEINT", "UHUGEINT"}
_ERROR_KIND = re.compile(r"^(\w+ Error): ", re.MULTILINE)


def expose_inputs(con: duckdb.DuckDBPyConnection, inputs: dict[str, Path]) -> None:
    for table, path in inputs.items():
        con.execute(
            f"CREATE OR REPLACE VIEW {quote_ident(table)} AS "
            f"SELECT * FROM read_parquet({quote_literal(str(path))})"
        )


def write_relation(rel: duckdb.DuckDBPyRelation, out_path: Path) -> dict[str, str]:
    """Write ``rel`` to ``out_path`` (Parquet, zstd) and return its schema as DuckDB types."""
    schema = {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}
    duplicates = sorted({c for c in rel.columns if list(rel.columns).count(c) > 1})
    if duplicates:
        raise ValueError(f"the result has duplicate column names: {', '.join(duplicates)}")
    wide = [name for name, kind in schema.items() if kind in _WIDE_INTEGERS]
    if wide:
        # DuckDB sums integers into 128-bit integers, which Parquet can only hold
        # as floating point; BIGINT keeps counts exact (and overflow is an error).
        rel = rel.project(
            ", ".join(
                f"CAST({quote_ident(c)} AS BIGINT) AS {quote_ident(c)}"
                if c in wide
                else quote_ident(c)
                for c in schema
            )
        )
        schema = {c: ("BIGINT" if c in wide else kind) for c, kind in schema.items()}
    rel.write_parquet(str(out_path), compression="zstd")
    return schema


def run_sql(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    file: str,
    inputs: dict[str, Path],
    out_path: Path,
) -> dict[str, str]:
    import duckdb

    expose_inputs(con, inputs)
    try:
        rel = con.sql(sql)
        if rel is None:
            raise TransformError("the SQL produced no result; a transform is one SELECT", file=file)
        return write_relation(rel, out_path)
    except duckdb.Error as exc:
        raise _sql_error(exc, file, sql) from None
    except ValueError as exc:
        raise TransformError(
            str(exc), file=file, hint="Give each output column its own name with AS."
        ) from None


def _sql_error(exc: Exception, file: str, sql: str) -> TransformError:
    text = str(exc).strip()
    lines = text.splitlines() or [type(exc).__name__]
    match = _LINE.search(text)
    line = int(match.group(1)) if match else None
    column = re.search(r'column "([^"]+)"', lines[0])
    if line is None and column:
        # DuckDB names the column but not where it is: the first mention is.
        pattern = re.compile(rf"\b{re.escape(column.group(1))}\b", re.IGNORECASE)
        line = next((i for i, t in enumerate(sql.splitlines(), 1) if pattern.search(t)), None)
    detail = [t for t in lines[1:] if t.startswith("Candidate bindings")]
    return TransformError(
        f"DuckDB could not run this SQL: {lines[0]}" + (f" ({detail[0]})" if detail else ""),
        file=file,
        line=line,
        hint="Fix the query; the previous version of this table stays current until it runs.",
    )


def run_python(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    transform: PythonTransform,
    *,
    inputs: dict[str, Path],
    out_path: Path,
) -> dict[str, str]:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    function = load_function(path, transform)
    kinds = argument_kinds(function, transform.tables)
    args: dict[str, Any] = {}
    params = {p.lower(): p for p in _param_names(function)}
    for table, source in inputs.items():
        rel = con.read_parquet(str(source))
        kind = kinds.get(table, "pandas")
        value: Any = rel if kind == "duckdb" else rel.arrow() if kind == "arrow" else rel.df()
        if kind == "arrow" and isinstance(value, pa.RecordBatchReader):
            value = value.read_all()
        args[params.get(table, table)] = value
    try:
        result = function(**args)
    except (Exception, SystemExit) as exc:  # user code must not end the run (or the process)
        line = _user_line(exc, path)
        raise TransformError(
            f"the function '{transform.function}' raised {type(exc).__name__}: {exc}",
            file=transform.file,
            line=line,
        ) from exc
    if isinstance(result, pa.RecordBatchReader):
        result = result.read_all()
    if isinstance(result, pd.DataFrame | pa.Table):
        con.register("__boite_result", result)
        rel = con.table("__boite_result")
    elif isinstance(result, duckdb.DuckDBPyRelation):
        rel = result
    else:
        raise TransformError(
            f"the function '{transform.function}' returned {type(result).__name__}",
            file=transform.file,
            hint="Return a pandas DataFrame, a pyarrow Table or a DuckDB relation.",
        )
    try:
        return write_relation(rel, out_path)
    except (duckdb.Error, ValueError) as exc:
        raise TransformError(
            f"its result cannot be written as a table: {exc}", file=transform.file
        ) from None


def _param_names(function: Any) -> list[str]:
    import inspect

    return list(inspect.signature(function).parameters)


def _user_line(exc: BaseException, path: Path) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line
