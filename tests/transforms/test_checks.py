"""Data checks against real DuckDB tables, a Parquet file and the CDNOW data set."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from pydantic import TypeAdapter

from boite.core.config import Check, parse_config
from boite.transforms.checks import CheckReport, CheckResult, quote_ident, run_checks

CDNOW = Path(__file__).resolve().parents[2] / "examples/retail/data/cdnow/CDNOW_master.txt.gz"
NOW = datetime(2024, 1, 10, 12, 0, 0)
_CHECK = TypeAdapter(Check)


def check(kind: str, **settings: Any) -> Check:
    return _CHECK.validate_python({"kind": kind, **settings})


def run(con: duckdb.DuckDBPyConnection, relation: str, *checks: Check, **kw: Any) -> CheckReport:
    kw.setdefault("step", "orders")
    kw.setdefault("now", NOW)
    return run_checks(con, relation, list(checks), **kw)


def only(report: CheckReport) -> CheckResult:
    (result,) = report.results
    return result


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE orders AS SELECT * FROM (VALUES
            (1, 'c1', 'paid',     10.50::DECIMAL(10, 2), TIMESTAMP '2024-01-08 09:00:00'),
            (2, 'c1', 'paid',    -3.00::DECIMAL(10, 2), TIMESTAMP '2024-01-09 10:00:00'),
            (3, 'c2', 'refunded', 250.00::DECIMAL(10, 2), TIMESTAMP '2024-01-09 23:30:00'),
            (4, NULL, 'lost',      NULL,                TIMESTAMP '2024-01-07 08:00:00'),
            (4, 'c3', NULL,        -7.25::DECIMAL(10, 2), NULL)
        ) AS v(order_id, customer_id, status, spend, ordered_at)
        """
    )
    yield con
    con.close()


def test_quote_ident_doubles_embedded_quotes() -> None:
    assert quote_ident("spend") == '"spend"'
    assert quote_ident('a "b" c') == '"a ""b"" c"'
    assert quote_ident("") == '""'


# --- not_null -------------------------------------------------------------------------------


def test_not_null_passes(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("not_null", columns="order_id")))
    assert result.passed
    assert result.failing_rows == 0
    assert result.sample == []
    assert result.description == "not_null: order_id"


def test_not_null_counts_rows_with_any_null_and_names_the_columns(
    con: duckdb.DuckDBPyConnection,
) -> None:
    result = only(run(con, "orders", check("not_null", columns=["customer_id", "status"])))
    assert not result.passed
    assert result.failing_rows == 2
    assert result.message == (
        "2 rows have a null in customer_id or status (customer_id: 1, status: 1)"
    )
    assert [row["order_id"] for row in result.sample] == [4, 4]
    # The checked columns come first in a sample row, so the eye lands on them.
    assert list(result.sample[0])[:2] == ["customer_id", "status"]


# --- unique ---------------------------------------------------------------------------------


def test_unique_passes_on_a_combination(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("unique", columns=["order_id", "customer_id"])))
    assert result.passed, result.message


def test_unique_counts_rows_in_duplicated_groups_and_samples_keys(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute("INSERT INTO orders VALUES (1, 'c9', 'paid', 1, NULL), (1, 'c9', 'paid', 1, NULL)")
    result = only(run(con, "orders", check("unique", columns="order_id")))
    assert not result.passed
    assert result.failing_rows == 5  # three rows of order 1, two of order 4
    assert result.sample == [{"order_id": 1, "count": 3}, {"order_id": 4, "count": 2}]
    assert result.message == (
        "5 rows share 2 duplicated values of order_id; the most repeated is 1 (3 rows)"
    )


def test_unique_ignores_keys_with_nulls_and_avoids_a_count_column_clash() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (NULL, 1), (NULL, 1), (2, 5), (2, 5), (3, 5))"
        ' AS v("count", b)'
    )
    result = only(run(con, "t", check("unique", columns=["count", "b"])))
    assert result.failing_rows == 2
    assert result.sample == [{"count": 2, "b": 5, "count_": 2}]


# --- accepted_values ------------------------------------------------------------------------


def test_accepted_values_passes_and_ignores_nulls(con: duckdb.DuckDBPyConnection) -> None:
    accepted = ["paid", "refunded", "lost"]
    result = only(run(con, "orders", check("accepted_values", column="status", values=accepted)))
    assert result.passed, result.message


def test_accepted_values_fails_with_the_offending_values(con: duckdb.DuckDBPyConnection) -> None:
    result = only(
        run(con, "orders", check("accepted_values", column="status", values=["paid", "o'k"]))
    )
    assert not result.passed
    assert result.failing_rows == 2
    assert result.message == (
        "2 rows have a value of 'status' outside "
        '["paid", "o\'k"]: "lost" (1 row), "refunded" (1 row)'
    )
    assert sorted(row["status"] for row in result.sample) == ["lost", "refunded"]


def test_accepted_values_compare_in_the_column_type(con: duckdb.DuckDBPyConnection) -> None:
    # 1.0 and "2" mean the integers 1 and 2; "x" can never match an integer column.
    result = only(
        run(con, "orders", check("accepted_values", column="order_id", values=[1.0, "2", "x"]))
    )
    assert result.failing_rows == 3
    assert sorted(row["order_id"] for row in result.sample) == [3, 4, 4]
    assert result.message.endswith(": 4 (2 rows), 3 (1 row)")


def test_accepted_values_lists_how_many_other_values_there_are() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS n FROM range(100)")
    result = only(run(con, "t", check("accepted_values", column="n", values=[0]), sample_size=3))
    assert result.failing_rows == 99
    assert result.message.endswith("and 94 other values")
    assert len(result.sample) == 3


# --- range ----------------------------------------------------------------------------------


def test_range_passes_within_inclusive_bounds(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("range", column="spend", min=-7.25, max=250)))
    assert result.passed, result.message
    assert result.description == "range: spend between -7.25 and 250"


def test_range_below_min(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("range", column="spend", min=0)))
    assert result.description == "range: spend between 0 and +inf"
    assert not result.passed
    assert result.failing_rows == 2
    assert result.message == "2 rows have spend < 0 (allowed: >= 0)"
    assert [row["spend"] for row in result.sample] == [-3.0, -7.25]


def test_range_both_sides(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("range", column="spend", min=0, max=100)))
    assert result.failing_rows == 3
    assert result.message == ("2 rows have spend < 0; 1 row has spend > 100 (allowed: 0 to 100)")


def test_range_counts_nan_as_failing_even_without_max() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1.0), ('nan'::DOUBLE), (NULL)) v(x)")
    result = only(run(con, "t", check("range", column="x", min=0)))
    assert result.failing_rows == 1
    assert result.message == "1 row has x NaN (not a number) (allowed: >= 0)"
    assert result.sample == [{"x": "NaN"}]


def test_range_on_a_timestamp_column_fails_clearly(con: duckdb.DuckDBPyConnection) -> None:
    result = only(run(con, "orders", check("range", column="ordered_at", min=0)))
    assert not result.passed
    assert result.failing_rows == 0
    assert "column 'ordered_at' of step 'orders' is TIMESTAMP, not a number" in result.message
    assert "freshness" in result.message


# --- row_count ------------------------------------------------------------------------------


def test_row_count(con: duckdb.DuckDBPyConnection) -> None:
    report = run(
        con,
        "orders",
        check("row_count", min=1, max=5),
        check("row_count", min=6),
        check("row_count", max=4),
    )
    ok, few, many = report.results
    assert ok.passed and ok.failing_rows == 0
    assert not few.passed and few.failing_rows == 1
    assert few.message == "the output of step 'orders' has 5 rows (allowed: at least 6)"
    assert not many.passed
    assert many.message == "the output of step 'orders' has 5 rows (allowed: at most 4)"
    assert few.description == "row_count: between 6 and +inf"


# --- freshness ------------------------------------------------------------------------------


def test_freshness_with_naive_timestamp_and_naive_now(con: duckdb.DuckDBPyConnection) -> None:
    # The newest order is 2024-01-09 23:30, 12h30m before NOW.
    fresh, stale = run(
        con,
        "orders",
        check("freshness", column="ordered_at", max_age="13h"),
        check("freshness", column="ordered_at", max_age="12h"),
    ).results
    assert fresh.passed, fresh.message
    assert not stale.passed
    assert stale.failing_rows == 1
    assert stale.message == (
        "the newest ordered_at is 2024-01-09 23:30:00, 12:30:00 before now "
        "(2024-01-10T12:00:00+00:00); allowed: at most 12h old"
    )


def test_freshness_with_an_aware_now_in_another_zone(con: duckdb.DuckDBPyConnection) -> None:
    # 14:00 at UTC+2 is NOW; the same instant must give the same verdict.
    now = datetime(2024, 1, 10, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    fresh, stale = run(
        con,
        "orders",
        check("freshness", column="ordered_at", max_age="13h"),
        check("freshness", column="ordered_at", max_age="12h"),
        now=now,
    ).results
    assert fresh.passed and not stale.passed
    assert "12:30:00 before now (2024-01-10T12:00:00+00:00)" in stale.message


def test_freshness_with_a_timestamptz_column() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT TIMESTAMPTZ '2024-01-10 10:00:00+05' AS at")
    # 10:00 at UTC+5 is 05:00 UTC, 7 hours before NOW.
    fresh, stale = run(
        con,
        "t",
        check("freshness", column="at", max_age="7h"),
        check("freshness", column="at", max_age="6h"),
    ).results
    assert fresh.passed, fresh.message
    assert not stale.passed
    assert "7:00:00 before now" in stale.message


def test_freshness_with_a_date_column_reads_midnight_utc() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (DATE '2024-01-08'), (DATE '2024-01-09')) v(d)"
    )
    aware_now = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
    fresh, stale = run(
        con,
        "t",
        check("freshness", column="d", max_age="2d"),
        check("freshness", column="d", max_age="1d"),
        now=aware_now,
    ).results
    assert fresh.passed
    assert not stale.passed
    assert stale.message.startswith("the newest d is 2024-01-09, 1 day, 12:00:00 before now")


def test_freshness_fails_on_an_empty_table_and_on_all_nulls() -> None:
    con = duckdb.connect()
    con.execute('CREATE TABLE empty ("at" TIMESTAMP)')  # a keyword, so quoted
    con.execute("CREATE TABLE nulls AS SELECT NULL::TIMESTAMP AS at FROM range(3)")
    empty = only(run(con, "empty", check("freshness", column="at", max_age="1d")))
    nulls = only(run(con, "nulls", check("freshness", column="at", max_age="1d")))
    assert not empty.passed and empty.failing_rows == 1
    assert empty.message.startswith("the output is empty, so there is no newest at")
    assert not nulls.passed
    assert nulls.message.startswith("at is null in every row")


def test_freshness_passes_for_values_after_now_and_rejects_text_columns() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT TIMESTAMP '2024-01-11 00:00' AS at, '2024-01-11' AS s")
    future, text = run(
        con,
        "t",
        check("freshness", column="at", max_age="1h"),
        check("freshness", column="s", max_age="1h"),
    ).results
    assert future.passed
    assert "12:00:00 after now" in future.message
    assert not text.passed
    assert "column 's' of step 'orders' is VARCHAR, not a date or timestamp" in text.message


# --- names ----------------------------------------------------------------------------------


def test_missing_column_is_a_failed_result_with_did_you_mean(
    con: duckdb.DuckDBPyConnection,
) -> None:
    report = run(
        con,
        "orders",
        check("range", column="spnd", min=0),
        check("not_null", columns=["order_id", "custmer_id"]),
        check("row_count", min=1),
    )
    spnd, customer, rows = report.results
    assert not spnd.passed and spnd.failing_rows == 0
    assert spnd.message == (
        "column 'spnd' does not exist in the output of step 'orders'. Did you mean 'spend'? "
        "Available columns: order_id, customer_id, status, spend, ordered_at."
    )
    assert "column 'custmer_id'" in customer.message
    assert "Did you mean 'customer_id'?" in customer.message
    assert rows.passed  # the checks after a broken one still run


def test_column_names_match_case_insensitively_like_duckdb(
    con: duckdb.DuckDBPyConnection,
) -> None:
    result = only(run(con, "orders", check("range", column="Spend", min=0)))
    assert result.failing_rows == 2
    assert "spend < 0" in result.message


def test_identifiers_with_spaces_and_quotes() -> None:
    con = duckdb.connect()
    con.execute(
        'CREATE TABLE "my ""odd"" table" AS SELECT * FROM (VALUES '
        "(1, 'a', 5), (NULL, 'b', -1), (3, 'a', 2)"
        ') AS v("order id", "say ""hi""", "x; DROP TABLE y")'
    )
    relation = quote_ident('my "odd" table')
    report = run(
        con,
        relation,
        check("not_null", columns="order id"),
        check("unique", columns='say "hi"'),
        check("accepted_values", column='say "hi"', values=["a"]),
        check("range", column="x; DROP TABLE y", min=0),
    )
    assert [r.failing_rows for r in report.results] == [1, 2, 1, 1]
    assert report.results[0].sample == [{"order id": None, 'say "hi"': "b", "x; DROP TABLE y": -1}]
    assert report.results[1].sample == [{'say "hi"': "a", "count": 2}]


# --- the report -----------------------------------------------------------------------------


def test_every_check_runs_and_the_report_keeps_their_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    report = run(
        con,
        "orders",
        check("not_null", columns="customer_id"),
        check("row_count", min=1),
        check("unique", columns="order_id"),
        check("accepted_values", column="status", values=["paid", "refunded", "lost"]),
    )
    assert [r.kind for r in report.results] == [
        "not_null",
        "row_count",
        "unique",
        "accepted_values",
    ]
    assert [r.passed for r in report.results] == [False, True, False, True]
    assert not report.passed
    assert [r.kind for r in report.failed] == ["not_null", "unique"]
    assert report.rows == 5
    assert report.step == "orders"


def test_to_dict_is_json_for_every_kind_of_value() -> None:
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE t AS SELECT
            NULL::INTEGER AS k,
            1.25::DECIMAL(8, 2) AS dec,
            DATE '2024-01-02' AS d,
            TIMESTAMP '2024-01-02 03:04:05.5' AS ts,
            TIMESTAMPTZ '2024-01-02 03:04:05+01' AS tz,
            TIME '10:11:12' AS t,
            INTERVAL 90 MINUTE AS i,
            'e1b8c1b2-3b4c-4d5e-8f90-a1b2c3d4e5f6'::UUID AS u,
            '\\xAB'::BLOB AS b,
            [1, 2] AS l,
            {'a': 1, 'b': [DATE '2024-01-01']} AS s,
            MAP {'x': 1.5} AS m,
            'inf'::DOUBLE AS f,
            12345678901234567890::HUGEINT AS h
        """
    )
    report = run(con, "t", check("not_null", columns="k"))
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    row = data["results"][0]["sample"][0]
    assert row["dec"] == 1.25
    assert row["d"] == "2024-01-02"
    assert row["ts"] == "2024-01-02T03:04:05.500000"
    assert row["tz"] == "2024-01-02T02:04:05+00:00"
    assert row["t"] == "10:11:12"
    assert row["u"] == "e1b8c1b2-3b4c-4d5e-8f90-a1b2c3d4e5f6"
    assert row["b"] == "ab"
    assert row["l"] == [1, 2]
    assert row["s"] == {"a": 1, "b": ["2024-01-01"]}
    assert row["f"] == "Infinity"
    assert row["h"] == 12345678901234567890
    assert data["step"] == "orders" and data["rows"] == 1 and data["passed"] is False


def test_summary_lists_failed_checks_with_at_most_five_sample_rows() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS n, 'r' || range AS label FROM range(10)")
    report = run(
        con,
        "t",
        check("range", column="n", max=2),
        check("not_null", columns="n"),
        check("unique", columns="label"),
    )
    text = report.summary()
    lines = text.splitlines()
    assert lines[0] == "step 'orders': 1 of 3 checks failed (10 rows checked)"
    assert lines[1] == "  FAIL range: n between -inf and 2: 7 rows have n > 2 (allowed: <= 2)"
    assert lines[2] == '       n=3, label="r3"'
    assert len([line for line in lines if line.startswith("       n=")]) == 5
    assert lines[-1] == "       ... 2 more sample row(s) in the report"
    assert "not_null" not in text
    passing = run(con, "t", check("not_null", columns="n"))
    assert passing.summary() == "step 'orders': 1 check passed (10 rows checked)"


def test_sample_size_limits_samples(con: duckdb.DuckDBPyConnection) -> None:
    one = only(run(con, "orders", check("range", column="spend", min=0), sample_size=1))
    none = only(run(con, "orders", check("unique", columns="order_id"), sample_size=0))
    assert one.failing_rows == 2 and len(one.sample) == 1
    assert none.failing_rows == 2 and none.sample == []
    with pytest.raises(ValueError, match="sample_size"):
        run(con, "orders", check("row_count", min=1), sample_size=-1)


def test_a_check_the_engine_refuses_fails_alone() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE raw AS SELECT * FROM (VALUES (1, '12'), (2, 'abc')) v(id, s)")
    # The cast only fails when the column is read, which only the second check does.
    con.execute("CREATE VIEW v AS SELECT id, CAST(s AS INTEGER) AS n FROM raw")
    report = run(con, "v", check("not_null", columns="id"), check("not_null", columns="n"))
    ok, refused = report.results
    assert ok.passed
    assert not refused.passed
    assert refused.message.startswith("the check could not run on the output of step 'orders': ")
    assert "Could not convert string 'abc'" in refused.message
    assert "\n" not in refused.message


# --- files and the config -------------------------------------------------------------------


def test_checks_from_boite_yaml_on_a_parquet_file(tmp_path: Path) -> None:
    config = parse_config(
        """
name: shop
transforms:
  customers:
    checks:
      - not_null: customer_id
      - unique: [customer_id]
      - accepted_values: {column: tier, values: [gold, silver]}
      - range: {column: lifetime value, min: 0}
      - row_count: {min: 1, max: 10}
      - freshness: {column: last_seen, max_age: 2d}
"""
    )
    path = tmp_path / "it's customers.parquet"
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (SELECT * FROM (VALUES
            ('a', 'gold',   120.0, DATE '2024-01-09'),
            ('b', 'bronze', -5.0,  DATE '2024-01-01'),
            ('b', 'silver', 0.0,   NULL)
        ) v(customer_id, tier, "lifetime value", last_seen)) TO '{str(path).replace("'", "''")}'
        (FORMAT parquet)
        """
    )
    relation = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
    report = run_checks(
        con, relation, config.transforms["customers"].checks, step="customers", now=NOW
    )
    assert [r.passed for r in report.results] == [True, False, False, False, True, True]
    assert [r.failing_rows for r in report.results] == [0, 2, 1, 1, 0, 0]
    assert report.results[2].sample[0]["tier"] == "bronze"
    assert report.results[3].sample[0]["last_seen"] == "2024-01-01"
    json.dumps(report.to_dict(), allow_nan=False)


def test_cdnow_dollar_value_range() -> None:
    df = pd.read_csv(CDNOW, sep=r"\s+", dtype={"customer_id": str})
    con = duckdb.connect()
    con.register("cdnow", df)
    report = run_checks(
        con,
        "cdnow",
        [
            check("range", column="dollar_value", min=0),
            check("range", column="dollar_value", max=100),
            check("not_null", columns=["customer_id", "date"]),
        ],
        step="cdnow",
        now=NOW,
    )
    non_negative, at_most_100, not_null = report.results
    expected = int((df["dollar_value"] > 100).sum())
    assert expected > 0
    assert report.rows == len(df)
    assert non_negative.passed, non_negative.message
    assert not at_most_100.passed
    assert at_most_100.failing_rows == expected
    assert at_most_100.message == (f"{expected} rows have dollar_value > 100 (allowed: <= 100)")
    assert all(row["dollar_value"] > 100 for row in at_most_100.sample)
    assert len(at_most_100.sample) == 20
    assert not_null.passed
