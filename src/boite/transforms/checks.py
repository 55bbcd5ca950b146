"""Data checks: run the checks a transform declares in boite.yaml against its output.

Every check is SQL that DuckDB runs over the whole relation. The counts of all row-level
checks (not_null, accepted_values, range), the row count and the newest values for freshness
come from one scan; unique needs its own grouping, and only a failing check pays one more
query for its sample rows. A check that cannot run as written (a column that does not exist,
a column of the wrong type) becomes a failed result that says why, never an engine error, so
one wrong check does not hide the verdict of the others.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from boite.core.config import (
    AcceptedValuesCheck,
    Check,
    FreshnessCheck,
    NotNullCheck,
    RangeCheck,
    RowCountCheck,
    UniqueCheck,
)
from boite.core.durations import format_duration
from boite.core.engine import quote_ident
from boite.core.suggest import did_you_mean

__all__ = ["CheckReport", "CheckResult", "describe", "quote_ident", "run_checks"]

# Sample rows shown per failed check by CheckReport.summary(); the report keeps more.
SUMMARY_SAMPLE_ROWS = 5
# Offending values named in an accepted_values message; the sample rows show the rest.
_SHOWN_VALUES = 5
# Columns listed after a missing column; wide tables would otherwise drown the message.
_SHOWN_COLUMNS = 30

_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|REAL|DECIMAL\(\d+,\s*\d+\)|VARINT|BIGNUM)$"
)
_FLOATING = {"FLOAT", "DOUBLE", "REAL"}
_TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
_TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", _TIMESTAMPTZ}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    ``failing_rows`` counts the rows that break the check. row_count and freshness judge the
    table as a whole, so they report 1 when they fail, and a check that could not run (a
    missing column, a column of the wrong type) reports 0; the message says which.
    """

    kind: str
    description: str
    passed: bool
    failing_rows: int
    message: str
    sample: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "passed": self.passed,
            "failing_rows": self.failing_rows,
            "message": self.message,
            "sample": self.sample,
        }


@dataclass(frozen=True)
class CheckReport:
    """The verdicts of all the checks of one step, in the order they were declared."""

    step: str
    results: list[CheckResult]
    rows: int

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rows": self.rows,
            "passed": self.passed,
            "results": [result.to_dict() for result in self.results],
        }

    def summary(self) -> str:
        """A few lines for the CLI: a verdict, then each failed check with some sample rows."""
        total = len(self.results)
        checks = f"{total} check" + ("" if total == 1 else "s")
        failed = self.failed
        if not failed:
            return f"step '{self.step}': {checks} passed ({_count(self.rows, 'row')} checked)"
        lines = [
            f"step '{self.step}': {len(failed)} of {checks} failed "
            f"({_count(self.rows, 'row')} checked)"
        ]
        for result in failed:
            lines.append(f"  FAIL {result.description}: {result.message}")
            for row in result.sample[:SUMMARY_SAMPLE_ROWS]:
                lines.append("       " + _show_row(row))
            hidden = len(result.sample) - SUMMARY_SAMPLE_ROWS
            if hidden > 0:
                lines.append(f"       ... {hidden} more sample row(s) in the report")
        return "\n".join(lines)


def run_checks(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    checks: Sequence[Check],
    *,
    step: str,
    now: datetime,
    sample_size: int = 20,
) -> CheckReport:
    """Run ``checks`` against ``relation`` (SQL usable after FROM) and report every verdict.

    ``now`` is the reference time of freshness checks; a naive ``now`` is read as UTC.
    Every check runs even when an earlier one fails.
    """
    if sample_size < 0:
        raise ValueError(f"sample_size must be 0 or more; got {sample_size}")
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    ctx = _Context(
        con=con,
        relation=relation,
        step=step,
        columns={str(row[0]): str(row[1]) for row in described},
        now=now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC),
        sample_size=sample_size,
    )
    plans = [_plan(ctx, check) for check in checks]
    rows, values = _scan(ctx, plans)
    results = [plan.finish(value, rows) for plan, value in zip(plans, values, strict=True)]
    return CheckReport(step=step, results=results, rows=rows)


# --- planning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    con: duckdb.DuckDBPyConnection
    relation: str
    step: str
    columns: dict[str, str]
    now: datetime
    sample_size: int

    def resolve(self, name: str) -> str | None:
        """The relation's spelling of ``name``; DuckDB matches identifiers case-insensitively."""
        if name in self.columns:
            return name
        same = [column for column in self.columns if column.lower() == name.lower()]
        return same[0] if len(same) == 1 else None

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.con.execute(sql)
        names = [str(column[0]) for column in cursor.description or []]
        return names, cursor.fetchall()

    def sample(self, predicate: str, first: list[str]) -> list[dict[str, Any]]:
        """Up to ``sample_size`` rows matching ``predicate``, the checked columns first."""
        if self.sample_size == 0:
            return []
        order = first + [column for column in self.columns if column not in first]
        select = ", ".join(quote_ident(column) for column in order)
        names, rows = self.query(
            f"SELECT {select} FROM {self.relation} WHERE {predicate} LIMIT {self.sample_size}"
        )
        return [_json_row(names, row) for row in rows]


@dataclass(frozen=True)
class _Plan:
    """What one check adds to the shared scan, and how it turns those values into a verdict."""

    aggregates: list[str]
    finish: Callable[[Any, int], CheckResult]


def _scan(ctx: _Context, plans: list[_Plan]) -> tuple[int, list[Sequence[Any] | _Refused]]:
    aggregates = [aggregate for plan in plans for aggregate in plan.aggregates]
    try:
        row = ctx.query(_scan_sql(ctx, aggregates))[1][0]
    except duckdb.Error:
        # Find the check the engine refused, so that it alone fails and the others still run.
        return _scan_one_by_one(ctx, plans)
    values: list[Sequence[Any] | _Refused] = []
    at = 1
    for plan in plans:
        values.append(row[at : at + len(plan.aggregates)])
        at += len(plan.aggregates)
    return int(row[0]), values


def _scan_one_by_one(
    ctx: _Context, plans: list[_Plan]
) -> tuple[int, list[Sequence[Any] | _Refused]]:
    rows = int(ctx.query(_scan_sql(ctx, []))[1][0][0])
    values: list[Sequence[Any] | _Refused] = []
    for plan in plans:
        try:
            values.append(ctx.query(_scan_sql(ctx, plan.aggregates))[1][0][1:])
        except duckdb.Error as exc:
            values.append(_Refused(_first_line(exc)))
    return rows, values


@dataclass(frozen=True)
class _Refused:
    """Stands in for a check's values when the engine refused its SQL."""

    error: str


def _scan_sql(ctx: _Context, aggregates: list[str]) -> str:
    return f"SELECT {', '.join(['count(*)', *aggregates])} FROM {ctx.relation}"


def _plan(ctx: _Context, check: Check) -> _Plan:
    description = describe(check)
    missing = _missing_column(ctx, check, description)
    if missing is not None:
        return _Plan([], lambda _values, _rows: missing)
    planners: dict[type, Callable[[_Context, Any, str], _Plan]] = {
        NotNullCheck: _not_null,
        UniqueCheck: _unique,
        AcceptedValuesCheck: _accepted_values,
        RangeCheck: _range,
        RowCountCheck: _row_count,
        FreshnessCheck: _freshness,
    }
    plan = planners[type(check)](ctx, check, description)
    return _Plan(plan.aggregates, _guarded(ctx, check, description, plan.finish))


def _guarded(
    ctx: _Context,
    check: Check,
    description: str,
    finish: Callable[[Sequence[Any], int], CheckResult],
) -> Callable[[Sequence[Any], int], CheckResult]:
    def run(values: Sequence[Any] | _Refused, rows: int) -> CheckResult:
        error = values.error if isinstance(values, _Refused) else None
        if error is None:
            try:
                return finish(values, rows)
            except duckdb.Error as exc:
                error = _first_line(exc)
        return CheckResult(
            kind=check.kind,
            description=description,
            passed=False,
            failing_rows=0,
            message=f"the check could not run on the output of step '{ctx.step}': {error}",
        )

    return run


def describe(check: Check) -> str:
    """One line naming a check and its settings, such as ``range: spend between 0 and +inf``."""
    if isinstance(check, NotNullCheck | UniqueCheck):
        return f"{check.kind}: {', '.join(check.columns)}"
    if isinstance(check, AcceptedValuesCheck):
        values = ", ".join(_show_value(value) for value in check.values)
        return f"accepted_values: {check.column} in [{values}]"
    if isinstance(check, RangeCheck):
        return f"range: {check.column} between {_bound(check.min, '-')} and {_bound(check.max)}"
    if isinstance(check, RowCountCheck):
        return f"row_count: between {_bound(check.min, '', 0)} and {_bound(check.max)}"
    return f"freshness: {check.column} at most {format_duration(check.max_age)} old"


def _checked_columns(check: Check) -> list[str]:
    if isinstance(check, NotNullCheck | UniqueCheck):
        return list(check.columns)
    if isinstance(check, RowCountCheck):
        return []
    return [check.column]


def _missing_column(ctx: _Context, check: Check, description: str) -> CheckResult | None:
    for name in _checked_columns(check):
        if ctx.resolve(name) is not None:
            continue
        known = list(ctx.columns)
        guess = did_you_mean(name, known)
        hint = f" Did you mean '{guess}'?" if guess else ""
        shown = ", ".join(known[:_SHOWN_COLUMNS])
        if len(known) > _SHOWN_COLUMNS:
            shown += f", ... ({len(known) - _SHOWN_COLUMNS} more)"
        return CheckResult(
            kind=check.kind,
            description=description,
            passed=False,
            failing_rows=0,
            message=(
                f"column '{name}' does not exist in the output of step '{ctx.step}'.{hint} "
                f"Available columns: {shown or '(none)'}."
            ),
        )
    return None


def _failed_type(
    ctx: _Context, check: Check, description: str, column: str, why: str
) -> CheckResult:
    return CheckResult(
        kind=check.kind,
        description=description,
        passed=False,
        failing_rows=0,
        message=(f"column '{column}' of step '{ctx.step}' is {ctx.columns[column]}, {why}"),
    )


# --- the checks -------------------------------------------------------------------------------


def _not_null(ctx: _Context, check: NotNullCheck, description: str) -> _Plan:
    columns = [ctx.resolve(name) or name for name in check.columns]
    nulls = [f"{quote_ident(column)} IS NULL" for column in columns]
    predicate = " OR ".join(nulls)
    # With several columns, a count per column tells which one is at fault.
    aggregates = [f"count_if({predicate})"]
    if len(columns) > 1:
        aggregates += [f"count_if({null})" for null in nulls]
    names = " or ".join(columns)

    def finish(values: Sequence[Any], rows: int) -> CheckResult:
        failing = int(values[0])
        if failing == 0:
            message = f"no row has a null in {names}"
            return CheckResult(check.kind, description, True, 0, message)
        message = f"{_count(failing, 'row')} {_has(failing)} a null in {names}"
        if len(columns) > 1:
            per_column = ", ".join(
                f"{column}: {int(count)}"
                for column, count in zip(columns, values[1:], strict=True)
                if count
            )
            message += f" ({per_column})"
        sample = ctx.sample(predicate, columns)
        return CheckResult(check.kind, description, False, failing, message, sample)

    return _Plan(aggregates, finish)


def _unique(ctx: _Context, check: UniqueCheck, description: str) -> _Plan:
    columns = [ctx.resolve(name) or name for name in check.columns]
    keys = ", ".join(quote_ident(column) for column in columns)
    # Nulls are the concern of not_null; like a SQL UNIQUE constraint, keys with a null
    # never collide.
    present = " AND ".join(f"{quote_ident(column)} IS NOT NULL" for column in columns)
    counted = _free_name("count", columns)
    duplicated = (
        f"SELECT {keys}, count(*) AS {quote_ident(counted)} FROM {ctx.relation} "
        f"WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
    )
    names = ", ".join(columns)
    what = f"({names})" if len(columns) > 1 else names

    def finish(_values: Sequence[Any], _rows: int) -> CheckResult:
        groups, failing = ctx.query(
            f"SELECT count(*), coalesce(sum({quote_ident(counted)}), 0) FROM ({duplicated})"
        )[1][0]
        groups, failing = int(groups), int(failing)
        if groups == 0:
            message = f"no two rows share a value of {what}"
            return CheckResult(check.kind, description, True, 0, message)
        message = f"{_count(failing, 'row')} share {_count(groups, 'duplicated value')} of {what}"
        sample: list[dict[str, Any]] = []
        if ctx.sample_size:
            header, rows = ctx.query(
                f"SELECT * FROM ({duplicated}) ORDER BY {quote_ident(counted)} DESC, {keys} "
                f"LIMIT {ctx.sample_size}"
            )
            sample = [_json_row(header, row) for row in rows]
            top = sample[0]
            shown = ", ".join(_show_value(top[column]) for column in columns)
            message += f"; the most repeated is {shown} ({top[counted]} rows)"
        return CheckResult(check.kind, description, False, failing, message, sample)

    return _Plan([], finish)


def _accepted_values(ctx: _Context, check: AcceptedValuesCheck, description: str) -> _Plan:
    column = ctx.resolve(check.column) or check.column
    quoted = quote_ident(column)
    # Each accepted value is cast to the column's type so that 1 matches 1.0 and '7' matches
    # 7; a value that cannot be cast can never match, so TRY_CAST lets it fall out as NULL,
    # which list_contains ignores.
    accepted = ", ".join(
        f"TRY_CAST({_literal(value)} AS {ctx.columns[column]})"
        for value in check.values
        if value is not None
    )
    predicate = f"{quoted} IS NOT NULL AND NOT list_contains([{accepted}], {quoted})"
    allowed = "[" + ", ".join(_show_value(value) for value in check.values) + "]"

    def finish(values: Sequence[Any], rows: int) -> CheckResult:
        failing, distinct = int(values[0]), int(values[1])
        if failing == 0:
            message = f"every non-null {column} is one of {allowed}"
            return CheckResult(check.kind, description, True, 0, message)
        # Positions, not names, in ORDER BY: the column may itself be called "n".
        _, top = ctx.query(
            f"SELECT {quoted}, count(*) FROM {ctx.relation} WHERE {predicate} "
            f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {_SHOWN_VALUES}"
        )
        found = ", ".join(
            f"{_show_value(_jsonable(value))} ({_count(int(n), 'row')})" for value, n in top
        )
        if distinct > len(top):
            found += f" and {_count(distinct - len(top), 'other value')}"
        message = (
            f"{_count(failing, 'row')} {_has(failing)} a value of '{column}' outside {allowed}: "
            f"{found}"
        )
        sample = ctx.sample(predicate, [column])
        return CheckResult(check.kind, description, False, failing, message, sample)

    aggregates = [f"count_if({predicate})", f"count(DISTINCT {quoted}) FILTER (WHERE {predicate})"]
    return _Plan(aggregates, finish)


def _range(ctx: _Context, check: RangeCheck, description: str) -> _Plan:
    column = ctx.resolve(check.column) or check.column
    kind = ctx.columns[column]
    if not _NUMERIC.match(kind):
        why = (
            "not a number: a range check compares numbers. For dates and timestamps use a "
            "freshness check, or cast the column to a number in the transform."
        )
        result = _failed_type(ctx, check, description, column, why)
        return _Plan([], lambda _values, _rows: result)
    quoted = quote_ident(column)
    # NaN sorts above every number in DuckDB; it is counted on its own rather than as
    # "above max", and it fails even a check with no max.
    floating = kind in _FLOATING
    not_nan = f" AND NOT isnan({quoted})" if floating else ""
    tests = {
        "below": f"{quoted} < {_float_sql(check.min)}" if check.min is not None else "false",
        "above": (
            f"{quoted} > {_float_sql(check.max)}{not_nan}" if check.max is not None else "false"
        ),
        "nan": f"isnan({quoted})" if floating else "false",
    }
    predicate = f"{quoted} IS NOT NULL AND ({' OR '.join(tests.values())})"
    if check.min is not None and check.max is not None:
        allowed = f"{_bound(check.min)} to {_bound(check.max)}"
    elif check.min is not None:
        allowed = f">= {_bound(check.min)}"
    else:
        allowed = f"<= {_bound(check.max)}"

    def finish(values: Sequence[Any], rows: int) -> CheckResult:
        below, above, nan = (int(value) for value in values)
        failing = below + above + nan
        if failing == 0:
            message = f"every non-null {column} is within {allowed}"
            return CheckResult(check.kind, description, True, 0, message)
        parts = []
        if below:
            parts.append(f"{_count(below, 'row')} {_has(below)} {column} < {_bound(check.min)}")
        if above:
            parts.append(f"{_count(above, 'row')} {_has(above)} {column} > {_bound(check.max)}")
        if nan:
            parts.append(f"{_count(nan, 'row')} {_has(nan)} {column} NaN (not a number)")
        message = f"{'; '.join(parts)} (allowed: {allowed})"
        sample = ctx.sample(predicate, [column])
        return CheckResult(check.kind, description, False, failing, message, sample)

    return _Plan([f"count_if({test})" for test in tests.values()], finish)


def _row_count(ctx: _Context, check: RowCountCheck, description: str) -> _Plan:
    if check.min is not None and check.max is not None:
        allowed = f"between {check.min} and {check.max}"
    elif check.min is not None:
        allowed = f"at least {check.min}"
    else:
        allowed = f"at most {check.max}"

    def finish(_values: Sequence[Any], rows: int) -> CheckResult:
        low = check.min is not None and rows < check.min
        high = check.max is not None and rows > check.max
        passed = not (low or high)
        message = f"the output of step '{ctx.step}' has {_count(rows, 'row')} (allowed: {allowed})"
        return CheckResult(check.kind, description, passed, 0 if passed else 1, message)

    return _Plan([], finish)


def _freshness(ctx: _Context, check: FreshnessCheck, description: str) -> _Plan:
    column = ctx.resolve(check.column) or check.column
    kind = ctx.columns[column]
    if kind not in _TEMPORAL:
        why = "not a date or timestamp: a freshness check needs DATE, TIMESTAMP or TIMESTAMPTZ."
        result = _failed_type(ctx, check, description, column, why)
        return _Plan([], lambda _values, _rows: result)
    quoted = quote_ident(column)
    # A TIMESTAMPTZ is an instant already; a TIMESTAMP is read as UTC, and a DATE as the
    # midnight (UTC) that starts it.
    newest = f"max({quoted})" if kind == _TIMESTAMPTZ else f"CAST(max({quoted}) AS TIMESTAMP)"
    limit = format_duration(check.max_age)

    def finish(values: Sequence[Any], rows: int) -> CheckResult:
        epoch_us, shown = values
        if shown is None:
            why = "the output is empty" if rows == 0 else f"{column} is null in every row"
            message = f"{why}, so there is no newest {column} (allowed: at most {limit} old)"
            return CheckResult(check.kind, description, False, 1, message)
        if epoch_us is None:
            # Only 'infinity' and '-infinity' have no epoch.
            passed = not str(shown).startswith("-")
            message = f"the newest {column} is {shown} (allowed: at most {limit} old)"
            return CheckResult(check.kind, description, passed, 0 if passed else 1, message)
        age = ctx.now - (_EPOCH + timedelta(microseconds=int(epoch_us)))
        now = ctx.now.isoformat()
        if age < timedelta(0):
            message = f"the newest {column} is {shown}, {_age(-age)} after now ({now})"
            return CheckResult(check.kind, description, True, 0, message)
        passed = age <= check.max_age
        message = (
            f"the newest {column} is {shown}, {_age(age)} before now ({now}); "
            f"allowed: at most {limit} old"
        )
        return CheckResult(check.kind, description, passed, 0 if passed else 1, message)

    return _Plan([f"epoch_us({newest})", f"CAST(max({quoted}) AS VARCHAR)"], finish)


# --- values and words ---------------------------------------------------------------------


def _literal(value: Any) -> str:
    """``value`` from boite.yaml as a SQL literal; strings are escaped, never interpolated."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_sql(value)
    if isinstance(value, datetime):
        kind = "TIMESTAMP" if value.tzinfo is None else "TIMESTAMPTZ"
        return f"{kind} '{value.isoformat()}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    text = value if isinstance(value, str) else json.dumps(_jsonable(value))
    return "'" + text.replace("'", "''") + "'"


def _float_sql(value: float) -> str:
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _bound(value: float | None, sign: str = "+", default: float | None = None) -> str:
    if value is None:
        value = default
    if value is None:
        return f"{sign}inf"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _jsonable(value: Any) -> Any:
    """``value`` as fetched from DuckDB, turned into something ``json.dumps`` accepts."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return _jsonable(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    return str(value)


def _json_row(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    return {name: _jsonable(value) for name, value in zip(names, row, strict=True)}


def _show_value(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _show_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{name}={_show_value(value)}" for name, value in row.items())


def _first_line(exc: Exception) -> str:
    # DuckDB appends the whole generated query, which says nothing to the user who wrote a check.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _has(n: int) -> str:
    return "has" if n == 1 else "have"


def _age(delta: timedelta) -> str:
    return str(timedelta(seconds=round(delta.total_seconds())))


def _free_name(name: str, taken: list[str]) -> str:
    lowered = {column.lower() for column in taken}
    while name.lower() in lowered:
        name += "_"
    return name
