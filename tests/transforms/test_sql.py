"""Reading the SQL of a transform: checks, tables read and column lineage.

The golden files in ``golden/`` pair ``NAME.sql`` with ``NAME.expected.json``, which
holds the schemas of the tables read, the tables and their first lines, and the lineage
of every output column in output order. Run with ``BOITE_UPDATE_GOLDEN=1`` to rewrite
the expected files after a deliberate change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from boite.errors import SQLSyntaxError, TransformError, UserError
from boite.transforms.sql import ParsedSQL, column_lineage, parse_sql

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.sql"))
UPDATE = os.environ.get("BOITE_UPDATE_GOLDEN") == "1"


def _expected(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.expected.json").read_text())


def _as_json(lineage: dict[str, list[tuple[str, str]]]) -> list[list[Any]]:
    # A list of items, not a dict, so that the output order is compared too.
    return [[column, [list(pair) for pair in pairs]] for column, pairs in lineage.items()]


# --- golden files ---------------------------------------------------------------------------


def test_golden_cases_are_complete() -> None:
    assert len(CASES) >= 6
    for name in CASES:
        assert (GOLDEN / f"{name}.expected.json").is_file(), f"{name}.sql has no expected file"


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    sql = (GOLDEN / f"{name}.sql").read_text()
    expected = _expected(name)

    parsed = parse_sql(sql, file=f"transforms/{name}.sql")
    lineage = column_lineage(parsed, expected["schemas"])

    if UPDATE:
        expected.update(
            tables=list(parsed.tables),
            table_lines=parsed.table_lines,
            lineage={c: [list(p) for p in pairs] for c, pairs in lineage.items()},
        )
        (GOLDEN / f"{name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    assert parsed.sql == sql
    assert list(parsed.tables) == expected["tables"]
    assert parsed.table_lines == expected["table_lines"]
    assert _as_json(lineage) == [[c, pairs] for c, pairs in expected["lineage"].items()]


@pytest.mark.parametrize("name", CASES)
def test_golden_sql_runs_in_duckdb_with_the_columns_traced(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The golden files must be real DuckDB SQL, and the lineage must name DuckDB's output
    # columns in DuckDB's order: run each query on empty tables of the given schemas.
    expected = _expected(name)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "holidays.csv").write_text("day,name\n1997-12-25,Christmas\n")
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()
    for table, columns in expected["schemas"].items():
        body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        con.execute(f'CREATE TABLE "{table}" ({body})')

    description = con.execute((GOLDEN / f"{name}.sql").read_text()).description

    assert description is not None
    assert [d[0].lower() for d in description] == list(expected["lineage"])


# --- DuckDB syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT shop, count(*) AS n FROM orders GROUP BY ALL", ("orders",)),
        (
            "SELECT *, row_number() OVER (PARTITION BY c ORDER BY d) AS rn FROM orders "
            "QUALIFY rn = 1",
            ("orders",),
        ),
        (
            "SELECT sum(x) OVER (ORDER BY d RANGE BETWEEN INTERVAL 30 DAYS PRECEDING "
            "AND CURRENT ROW) AS s FROM orders",
            ("orders",),
        ),
        ("SELECT strptime(day, '%Y%m%d') AS d, day::DATE AS d2 FROM raw", ("raw",)),
        ("SELECT count(*) FILTER (WHERE amount > 10) AS big FROM orders", ("orders",)),
        ("SELECT * FROM trades ASOF JOIN quotes USING (symbol, ts)", ("trades", "quotes")),
        ("SELECT * EXCLUDE (a) FROM t", ("t",)),
        ("SELECT last_day(d) AS month_end FROM t", ("t",)),
        (
            "SELECT d FROM range(DATE '1997-01-01', DATE '1998-01-01', INTERVAL 1 MONTH) t(d)",
            (),
        ),
        ("SELECT * FROM a UNION BY NAME SELECT * FROM b", ("a", "b")),
        ("FROM orders SELECT id", ("orders",)),
        ("FROM orders", ("orders",)),
        ("(SELECT 1 AS one)", ()),
        ("SELECT 1 AS one;", ()),
        ("-- a comment first\nSELECT 1 AS one; -- and one last\n", ()),
        ("SELECT * FROM read_csv('x.csv') JOIN read_parquet(['a.parquet']) USING (k)", ()),
        ("SELECT * FROM 'data/file.parquet'", ()),
        ("SELECT * FROM generate_series(1, 3) g(i) JOIN t ON t.i = g.i", ("t",)),
    ],
)
def test_duckdb_syntax_parses(sql: str, tables: tuple[str, ...]) -> None:
    assert parse_sql(sql, file="transforms/x.sql").tables == tables


def test_tables_lower_cased_deduplicated_in_order_of_first_appearance() -> None:
    sql = (
        "SELECT *\n"
        "FROM Orders o\n"
        'JOIN "CUSTOMERS" c ON c.id = o.customer_id\n'
        "JOIN orders o2 ON o2.id = o.id\n"
        "WHERE o.id IN (SELECT order_id FROM Returns)\n"
    )

    parsed = parse_sql(sql, file="transforms/x.sql")

    assert parsed.tables == ("orders", "customers", "returns")
    assert parsed.table_lines == {"orders": 2, "customers": 3, "returns": 5}


def test_text_order_not_tree_order() -> None:
    # The subquery in FROM sits deeper in the tree than the join after it.
    sql = "SELECT * FROM (SELECT * FROM inner_t) s\nJOIN outer_t USING (k)"

    assert parse_sql(sql, file="x.sql").tables == ("inner_t", "outer_t")


def test_cte_names_are_not_tables_but_what_they_shadow_is() -> None:
    sql = (
        "WITH orders AS (SELECT * FROM Orders WHERE ok),\n"
        "     late AS (SELECT * FROM orders WHERE late)\n"
        "SELECT * FROM late JOIN (WITH x AS (SELECT 1 AS k) SELECT * FROM x) USING (k)\n"
        "JOIN x USING (k)\n"
    )

    parsed = parse_sql(sql, file="x.sql")

    # Inside its own definition, 'orders' is the table; after it, the CTE. The inner
    # WITH's 'x' is not visible outside its query, so the last 'x' is a table.
    assert parsed.tables == ("orders", "x")
    assert parsed.table_lines == {"orders": 1, "x": 4}


def test_cte_of_a_union_is_seen_by_every_branch() -> None:
    sql = "WITH a AS (SELECT x FROM t) SELECT x FROM a UNION ALL SELECT x FROM a"

    assert parse_sql(sql, file="x.sql").tables == ("t",)


def test_recursive_cte_reads_itself() -> None:
    sql = (
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
        "SELECT * FROM r"
    )

    assert parse_sql(sql, file="x.sql").tables == ()


def test_parsed_sql_compares_on_text_and_tables() -> None:
    a = parse_sql("SELECT * FROM t", file="a.sql")
    b = parse_sql("SELECT * FROM t", file="b.sql")

    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_sql("SELECT * FROM t ", file="a.sql")
    assert isinstance(a, ParsedSQL)


# --- bad input ------------------------------------------------------------------------------


def test_syntax_error_has_line_column_file_and_token() -> None:
    sql = "SELECT customer_id,\n       sum(dollar_value) revenue total\nFROM purchases\n"

    with pytest.raises(SQLSyntaxError) as info:
        parse_sql(sql, file="transforms/monthly.sql")

    err = info.value
    assert (err.line, err.column) == (2, 34)
    assert err.file == "transforms/monthly.sql"
    assert str(err).startswith("transforms/monthly.sql:2:34: ")
    assert '"total"' in err.message
    # The hint shows the line with a caret under the offending token.
    assert err.hint is not None
    assert "sum(dollar_value) revenue total" in err.hint
    assert "\n" + " " * 4 + "| " + " " * 33 + "^" in err.hint
    assert isinstance(err, UserError)
    assert err.exit_code == 2


@pytest.mark.parametrize(
    ("sql", "line", "column", "quoted"),
    [
        # sqlglot accepts these; DuckDB does not, and DuckDB runs the query.
        ("SELECT a,, b FROM t", 1, 10, '","'),
        ("SELECT a\nFROM t\nGROUP BY", 3, 7, '"BY"'),
        # Tokenizer errors, with no token to blame.
        ("SELECT a,\n  'unterminated FROM t", 2, 3, "unterminated string"),
        ("SELECT a /* never closed", 1, 10, "comment"),
        ("SELEC a FROM t", 1, 1, '"SELEC"'),
        ("SELECT 'é', a b c FROM t", 1, 17, '"c"'),
        ("SELECT 1;\nSELECT FROM WHERE", 2, 13, '"WHERE"'),
    ],
)
def test_syntax_errors(sql: str, line: int, column: int, quoted: str) -> None:
    with pytest.raises(SQLSyntaxError) as info:
        parse_sql(sql, file="transforms/bad.sql")

    assert (info.value.line, info.value.column) == (line, column)
    assert quoted in info.value.message
    assert "transforms/bad.sql" in str(info.value)


def test_sql_duckdb_accepts_but_sqlglot_cannot_read() -> None:
    # Python-style lambdas are DuckDB syntax (1.3+) that sqlglot 30 does not parse; the
    # dependencies cannot be found, so the transform is refused, with the reason.
    with pytest.raises(SQLSyntaxError) as info:
        parse_sql("SELECT lambda x: x + 1 AS f", file="transforms/f.sql")

    assert info.value.line == 1
    if "cannot analyse" in info.value.message:
        assert info.value.column == 16
        assert "DuckDB accepts" in (info.value.hint or "")


def test_sqlglot_alone_when_duckdb_cannot_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # A DuckDB build without json_serialize_sql: sqlglot's verdict stands alone, and its
    # position (where the token ends) is moved to where the token starts.
    monkeypatch.setattr("boite.transforms.sql._duckdb_verdict", lambda sql: (False, None))

    with pytest.raises(SQLSyntaxError) as info:
        parse_sql("SELECT a\n  FROM t\n  WHERE", file="transforms/bad.sql")
    assert (info.value.line, info.value.column) == (3, 3)
    assert '"WHERE"' in info.value.message

    # What sqlglot tolerates then passes: the check is best effort.
    assert parse_sql("SELECT a,, b FROM t", file="x.sql").tables == ("t",)


def test_two_statements() -> None:
    sql = "SELECT * FROM a;\n\n-- then\nSELECT * FROM b;\n"

    with pytest.raises(TransformError) as info:
        parse_sql(sql, file="transforms/two.sql")

    err = info.value
    assert type(err) is TransformError
    assert "2 SQL statements" in err.message
    assert (err.line, err.column) == (4, 1)
    assert "one SELECT" in (err.hint or "")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("CREATE TABLE orders AS SELECT * FROM raw", "a CREATE TABLE statement"),
        ("INSERT INTO orders SELECT * FROM raw", "an INSERT statement"),
        ("DELETE FROM orders WHERE id = 1", "a DELETE statement"),
        ("COPY orders TO 'orders.csv'", "a COPY statement"),
        ("-- comment\nUPDATE orders SET x = 1", "an UPDATE statement"),
    ],
)
def test_not_a_select(sql: str, kind: str) -> None:
    with pytest.raises(TransformError) as info:
        parse_sql(sql, file="transforms/orders.sql")

    err = info.value
    assert type(err) is TransformError
    assert f"holds {kind}, not a SELECT" in err.message
    assert err.line == sql.count("\n") + 1
    assert "becomes the table named after the file" in (err.hint or "")
    assert "'orders'" in (err.hint or "")


@pytest.mark.parametrize("sql", ["", "   \n\t", "-- only a comment\n", "/* */ ;\n;"])
def test_empty_file(sql: str) -> None:
    with pytest.raises(TransformError) as info:
        parse_sql(sql, file="transforms/empty.sql")

    assert type(info.value) is TransformError
    assert "no SQL statement" in info.value.message
    assert str(info.value).startswith("transforms/empty.sql: ")


@pytest.mark.parametrize(
    ("sql", "written", "line", "column"),
    [
        ("SELECT *\nFROM main.orders", "main.orders", 2, 6),
        ("SELECT *\nFROM t\nJOIN lake.raw.events e USING (k)", "lake.raw.events", 3, 6),
        ('SELECT * FROM t WHERE k IN (SELECT k FROM "S"."U")', '"S"."U"', 1, 43),
    ],
)
def test_qualified_table_names(sql: str, written: str, line: int, column: int) -> None:
    with pytest.raises(TransformError) as info:
        parse_sql(sql, file="transforms/x.sql")

    err = info.value
    assert f"'{written}'" in err.message
    assert (err.line, err.column) == (line, column)
    assert "bare name" in (err.hint or "")


# --- lineage ---------------------------------------------------------------------------------


def test_lineage_without_schemas_leaves_stars_out() -> None:
    parsed = parse_sql("SELECT *, a + 1 AS b FROM t", file="x.sql")

    assert column_lineage(parsed, {}) == {"b": [("t", "a")]}


def test_lineage_leaves_out_files_and_table_functions() -> None:
    parsed = parse_sql(
        "SELECT f.a, t.b, g.i FROM 'data/f.parquet' AS f JOIN t USING (k)\n"
        "JOIN generate_series(1, 3) AS g(i) ON g.i = t.b",
        file="x.sql",
    )

    lineage = column_lineage(parsed, {"t": {"k": "INT", "b": "INT"}})

    assert lineage == {"a": [], "b": [("t", "b")], "i": []}


def test_lineage_schema_names_are_case_insensitive() -> None:
    parsed = parse_sql("SELECT * FROM Orders", file="x.sql")

    lineage = column_lineage(parsed, {"ORDERS": {"Id": "INTEGER", "Total": "DOUBLE"}})

    assert lineage == {"id": [("orders", "id")], "total": [("orders", "total")]}


def test_lineage_does_not_change_the_parsed_query() -> None:
    parsed = parse_sql("SELECT * FROM t", file="x.sql")
    before = parsed.expression.sql() if parsed.expression else ""

    column_lineage(parsed, {"t": {"a": "INTEGER"}})

    assert parsed.expression is not None
    assert parsed.expression.sql() == before


def test_lineage_one_bad_column_costs_only_itself() -> None:
    # The branches have different widths (DuckDB would refuse it when binding);
    # sqlglot cannot trace the second column, but the first one is fine.
    parsed = parse_sql("SELECT a, b FROM t UNION ALL SELECT c FROM u", file="x.sql")

    lineage = column_lineage(parsed, {"t": {"a": "INT", "b": "INT"}, "u": {"c": "INT"}})

    assert lineage == {"a": [("t", "a"), ("u", "c")], "b": []}


@pytest.mark.parametrize(
    "schemas",
    [
        {"t": {"a": "INT"}, "u": {"b": "INT"}},
        {"t": "not a mapping"},
    ],
)
def test_lineage_never_raises(schemas: Any) -> None:
    # USING a column neither table has: sqlglot cannot qualify the query.
    parsed = parse_sql("SELECT * FROM t JOIN u USING (nope)", file="x.sql")

    assert column_lineage(parsed, schemas) == {}


def test_lineage_of_a_parsed_sql_without_expression() -> None:
    assert column_lineage(ParsedSQL(sql="", tables=(), table_lines={}), {}) == {}
