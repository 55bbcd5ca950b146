"""Reading sources into one Parquet file: real files, real DuckDB, real SQLite."""

from __future__ import annotations

import gzip
import hashlib
import os
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boite.core.config import SourceConfig
from boite.errors import SourceError
from boite.sources.readers import InputFile, SourceSnapshot, read_source, resolve_files

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail"
CDNOW = "data/cdnow/CDNOW_master.txt.gz"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    return project


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "artifacts" / "snapshot.parquet"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def write(root: Path, relpath: str, text: str) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read(
    con: duckdb.DuckDBPyConnection, root: Path, out: Path, name: str = "src", **config: object
) -> SourceSnapshot:
    return read_source(con, name, SourceConfig(**config), root, out)


def table(path: Path) -> pa.Table:
    return pq.read_table(path)


def fails(
    con: duckdb.DuckDBPyConnection, root: Path, out: Path, name: str = "src", **config: object
) -> SourceError:
    with pytest.raises(SourceError) as info:
        read(con, root, out, name, **config)
    assert info.value.source == name
    return info.value


def leftovers(out: Path) -> list[str]:
    return sorted(os.listdir(out.parent)) if out.parent.exists() else []


# --- csv -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "relpath"),
    [(",", "data/a.csv"), (";", "data/a.csv"), ("\t", "data/a.tsv"), ("|", "data/a.txt")],
)
def test_csv_with_a_header(con, root, out, delimiter, relpath):
    write(root, relpath, delimiter.join(["id", "name", "amount"]) + "\n")
    rows = [["1", "ann", "2.50"], ["2", "bob", "3.25"], ["3", "cy", "-1"]]
    with (root / relpath).open("a") as handle:
        handle.writelines(delimiter.join(r) + "\n" for r in rows)
    declared = None if relpath.endswith(".tsv") else delimiter
    snap = read(con, root, out, path=relpath, delimiter=declared)
    data = table(out)
    assert snap.rows == 3
    assert data.column_names == ["id", "name", "amount"]
    assert data.column("name").to_pylist() == ["ann", "bob", "cy"]
    assert data.column("amount").to_pylist() == [2.5, 3.25, -1.0]
    assert data.schema.field("id").type == pa.int64()
    assert [f.relpath for f in snap.files] == [relpath]
    assert snap.bytes_in == (root / relpath).stat().st_size
    assert leftovers(out) == ["snapshot.parquet"]


def test_csv_without_a_header_names_columns_by_position(con, root, out):
    write(root, "data/a.csv", "1;007;x\n2;008;y\n")
    snap = read(
        con,
        root,
        out,
        path="data/a.csv",
        delimiter=";",
        header=False,
        columns={"column1": "VARCHAR"},
    )
    data = table(out)
    assert snap.rows == 2
    assert data.column_names == ["column0", "column1", "column2"]
    assert data.column("column1").to_pylist() == ["007", "008"]


def test_csv_columns_override_only_the_named_columns(con, root, out):
    write(root, "data/a.csv", "zip,n,when\n01234,5,2024-01-02\n99999,6,2024-02-03\n")
    read(con, root, out, path="data/a.csv", columns={"zip": "VARCHAR", "n": "DOUBLE"})
    data = table(out)
    assert data.column("zip").to_pylist() == ["01234", "99999"]
    assert data.schema.field("n").type == pa.float64()
    assert data.schema.field("when").type == pa.date32()  # still auto-detected


def test_compressed_csv_is_read_through_gzip(con, root, out):
    path = root / "data" / "a.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n"))
    assert read(con, root, out, path="data/a.csv.gz").rows == 2


def test_a_semicolon_file_read_with_the_default_comma_says_so(con, root, out):
    write(root, "data/a.csv", "a;b\n1;2\n")
    error = fails(con, root, out, path="data/a.csv")
    assert "delimiter: ';'" in str(error)


# --- whitespace ----------------------------------------------------------------


def test_cdnow_whitespace_delimited(con, out):
    snap = read(
        con,
        RETAIL,
        out,
        name="cdnow",
        path=CDNOW,
        delimiter="whitespace",
        columns={"customer_id": "VARCHAR"},
    )
    assert snap.rows == 69_659
    assert snap.files[0].relpath == CDNOW
    data = table(out)
    assert data.column_names == ["customer_id", "date", "number_of_cds", "dollar_value"]
    ids = data.column("customer_id")
    assert ids[0].as_py() == "00001"
    assert len(ids.unique()) == 23_570
    expected = pd.read_csv(RETAIL / CDNOW, sep=r"\s+", dtype={"customer_id": str})
    assert len(expected) == snap.rows
    assert sum(data.column("dollar_value").to_pylist()) == pytest.approx(
        expected["dollar_value"].sum(), abs=1e-6
    )
    assert data.column("date").to_pylist()[:2] == expected["date"].tolist()[:2]
    assert leftovers(out) == ["snapshot.parquet"]


def test_whitespace_lines_keep_their_numbers(con, root, out):
    # CRLF, leading blanks, tabs, blank and blank-looking lines: the bad row is line 6.
    text = " id  x\r\n 001  1\r\n\r\n   \r\n 002 \t 2 \r\n 003 4 5\r\n"
    write(root, "data/w.txt", text)
    error = fails(con, root, out, path="data/w.txt", delimiter="whitespace")
    assert error.line == 6
    assert error.file == "data/w.txt"
    assert "line 6 has 3 fields where 2 were expected" in str(error)
    assert leftovers(out) == []


def test_whitespace_keeps_leading_zeros_when_declared(con, root, out):
    write(root, "data/w.txt", " id  x\r\n 001  1\r\n\r\n 002 \t 2 \r\n")
    snap = read(
        con, root, out, path="data/w.txt", delimiter="whitespace", columns={"id": "VARCHAR"}
    )
    assert snap.rows == 2
    assert table(out).to_pydict() == {"id": ["001", "002"], "x": [1, 2]}


def test_whitespace_type_error_points_at_the_original_line(con, root, out):
    write(root, "data/w.txt", "id x\n\n1 2\n2 oops\n")
    error = fails(con, root, out, path="data/w.txt", delimiter="whitespace", columns={"x": "INT"})
    assert (error.file, error.line) == ("data/w.txt", 4)
    assert "'oops'" in str(error)


# --- several files -------------------------------------------------------------


def test_globs_are_sorted_and_deduplicated(con, root, out):
    for day in (3, 1, 2):
        write(root, f"data/sales/day-{day}.csv", f"day,amount\n{day},{day * 10}\n{day},1\n")
    write(root, "data/sales/notes.md", "not data")
    (root / "data" / "sales" / "archive.csv").mkdir()  # a folder the glob also matches
    config = SourceConfig(path=["data/sales/day-2.csv", "data/sales/*.csv"])
    files = resolve_files("sales", config, root)
    assert [f.relpath for f in files] == [
        "data/sales/day-2.csv",
        "data/sales/day-1.csv",
        "data/sales/day-3.csv",
    ]
    first = files[0]
    assert isinstance(first, InputFile)
    assert first.path.is_absolute()
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size
    snap = read_source(con, "sales", config, root, out, files)
    assert snap.rows == 6
    assert table(out).column("day").to_pylist() == [2, 2, 1, 1, 3, 3]
    assert snap.bytes_in == sum(f.size for f in files)


def test_files_with_columns_in_another_order_are_aligned_by_name(con, root, out):
    write(root, "data/a.csv", "x,y\n1,a\n")
    write(root, "data/b.csv", "y,x\nb,2\n")
    read(con, root, out, path="data/*.csv")
    assert table(out).to_pydict() == {"x": [1, 2], "y": ["a", "b"]}


def test_recursive_glob(con, root, out):
    write(root, "data/2024/01/a.jsonl", '{"k": 1}\n')
    write(root, "data/2024/02/b.jsonl", '{"k": 2}\n')
    snap = read(con, root, out, path="data/**/*.jsonl")
    assert [f.relpath for f in snap.files] == ["data/2024/01/a.jsonl", "data/2024/02/b.jsonl"]
    assert table(out).column("k").to_pylist() == [1, 2]


# --- parquet and json ----------------------------------------------------------


def test_parquet_files(con, root, out):
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), root / "data" / "p1.parquet")
    pq.write_table(pa.table({"b": ["z"], "a": [3]}), root / "data" / "p2.pq")
    snap = read(con, root, out, path=["data/p1.parquet", "data/p2.pq"], columns={"a": "DOUBLE"})
    assert snap.rows == 3
    data = table(out)
    assert data.to_pydict() == {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}
    assert data.schema.field("a").type == pa.float64()


def test_json_lines(con, root, out):
    write(root, "data/e.jsonl", '{"id": 1, "tag": "a"}\n{"id": 2, "tag": null}\n')
    (root / "data" / "f.ndjson.gz").write_bytes(gzip.compress(b'{"id": 3, "tag": "c"}\n'))
    snap = read(con, root, out, path=["data/e.jsonl", "data/f.ndjson.gz"])
    assert snap.rows == 3
    assert table(out).to_pydict() == {"id": [1, 2, 3], "tag": ["a", None, "c"]}


def test_format_can_be_declared(con, root, out):
    write(root, "data/export.dat", "a|b\n1|2\n")
    assert read(con, root, out, path="data/export.dat", format="csv", delimiter="|").rows == 1


# --- databases -----------------------------------------------------------------


@pytest.fixture
def shop_duckdb(root: Path) -> Path:
    path = root / "data" / "shop.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE orders AS SELECT range AS id, range * 1.5 AS total FROM range(5)")
        db.execute("CREATE SCHEMA sales")
        db.execute("CREATE TABLE sales.refunds (id INTEGER, amount DOUBLE)")
        db.execute("INSERT INTO sales.refunds VALUES (1, 2.0)")
        db.execute("CREATE TABLE empty_one (id INTEGER)")
    return path


def test_duckdb_table(con, root, out, shop_duckdb):
    snap = read(con, root, out, url="duckdb:///data/shop.duckdb", table="orders")
    assert snap.rows == 5
    assert snap.files == []
    assert snap.origin == "duckdb:///data/shop.duckdb (table orders)"
    assert table(out).column("total").to_pylist() == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert read(con, root, out, url="duckdb:///data/shop.duckdb", table="sales.refunds").rows == 1
    # Attached only while reading, and the caller's default database is untouched.
    assert con.execute("SELECT current_database()").fetchone() == ("memory",)
    assert [r[0] for r in con.execute("SHOW DATABASES").fetchall()] == ["memory"]


def test_duckdb_query_runs_against_the_file(con, root, out, shop_duckdb):
    query = "SELECT id FROM orders WHERE total > 3 ORDER BY id DESC;"
    snap = read(con, root, out, url="duckdb:///data/shop.duckdb", query=query)
    assert snap.rows == 2
    assert table(out).column("id").to_pylist() == [4, 3]
    assert con.execute("SELECT current_database()").fetchone() == ("memory",)


def test_duckdb_missing_table_suggests(con, root, out, shop_duckdb):
    error = fails(con, root, out, url="duckdb:///data/shop.duckdb", table="order")
    text = str(error)
    assert "no table 'order'" in text
    assert "Did you mean 'orders'?" in text
    assert "empty_one, orders, sales.refunds" in text


def test_duckdb_empty_table_is_an_error(con, root, out, shop_duckdb):
    error = fails(con, root, out, url="duckdb:///data/shop.duckdb", table="empty_one")
    assert "no rows" in str(error)
    assert not out.exists()


@pytest.fixture
def shop_sqlite(root: Path) -> Path:
    path = root / "data" / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, credit REAL)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(i, f"c{i}:x", None if i % 3 == 0 else i / 4) for i in range(1, 251)],
        )
        db.execute("CREATE VIEW good AS SELECT * FROM customers WHERE credit IS NOT NULL")
    return path


def test_sqlite_table(con, root, out, shop_sqlite, monkeypatch):
    # Chunks much smaller than the table, and one chunk whose 'credit' is all NULL.
    monkeypatch.setattr("boite.sources.readers.DB_CHUNK_ROWS", 3)
    snap = read(con, root, out, url="sqlite:///data/shop.db", table="customers")
    assert snap.rows == 250
    assert snap.origin == "sqlite:///data/shop.db (table customers)"
    data = table(out)
    assert data.column("id").to_pylist() == list(range(1, 251))
    assert data.schema.field("id").type == pa.int64()
    assert data.column("credit").to_pylist()[:4] == [0.25, 0.5, None, 1.0]
    assert leftovers(out) == ["snapshot.parquet"]


def test_sqlite_query_runs_as_written(con, root, out, shop_sqlite):
    query = "SELECT id, name FROM good WHERE name LIKE 'c1%:x' ORDER BY id"
    snap = read(con, root, out, url="sqlite:///data/shop.db", query=query)
    with sqlite3.connect(shop_sqlite) as db:
        expected = db.execute(query).fetchall()
    assert snap.rows == len(expected) == 75
    assert table(out).column("name").to_pylist() == [name for _, name in expected]


def test_sqlite_missing_table_suggests(con, root, out, shop_sqlite):
    error = fails(con, root, out, url="sqlite:///data/shop.db", table="customer")
    assert "Did you mean 'customers'?" in str(error)
    assert "customers, good" in str(error)


def test_sqlite_missing_file_is_not_created(con, root, out):
    error = fails(con, root, out, url="sqlite:///data/nope.db", table="t")
    assert "no file matches 'data/nope.db'" in str(error)
    assert not (root / "data" / "nope.db").exists()


def test_sqlite_bad_query(con, root, out, shop_sqlite):
    error = fails(con, root, out, url="sqlite:///data/shop.db", query="SELECT nope FROM customers")
    assert "cannot read the query's result: no such column: nope" in str(error)
    assert leftovers(out) == []


def test_password_is_never_shown(con, root, out):
    url = "postgresql://bob:s3cr3t-pw@127.0.0.1:1/shop"
    error = fails(con, root, out, url=url, table="orders")
    assert "s3cr3t-pw" not in str(error)
    assert "bob:***@127.0.0.1" in str(error)


# --- determinism ---------------------------------------------------------------


def test_same_input_gives_the_same_bytes(root, tmp_path):
    n = 300_000  # several row groups, read by several threads
    rows = "\n".join(f"{i},{i % 97},v{i % 13},{i / 7:.4f}" for i in range(n))
    write(root, "data/big.csv", "id,k,label,x\n" + rows + "\n")
    write(root, "data/big2.csv", "id,k,label,x\n1,2,a,0.5\n")
    digests = set()
    for attempt in range(3):
        connection = duckdb.connect()
        connection.execute("SET threads = 8")
        connection.execute("SET preserve_insertion_order = false")
        target = tmp_path / f"run{attempt}" / "out.parquet"
        snap = read(connection, root, target, path="data/big*.csv")
        assert snap.rows == n + 1
        # The caller's settings are put back.
        setting = "SELECT current_setting('preserve_insertion_order')"
        assert connection.execute(setting).fetchone() == (False,)
        connection.close()
        digests.add(hashlib.sha256(target.read_bytes()).hexdigest())
    assert len(digests) == 1
    assert table(target).column("id").to_pylist()[:3] == [0, 1, 2]
    metadata = pq.ParquetFile(target).metadata
    assert metadata.num_row_groups > 1
    assert metadata.row_group(0).column(0).compression == "ZSTD"


# --- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "found"),
    [("4,5", 2), ("4,5,6,7", 4)],
)
def test_ragged_row_near_the_top(con, root, out, row, found):
    # Inside DuckDB's sniffing sample: the sniffer fails without a line number.
    write(root, "data/a.csv", f"a,b,c\n1,2,3\n{row}\n6,7,8\n")
    error = fails(con, root, out, path="data/a.csv")
    assert (error.file, error.line) == ("data/a.csv", 3)
    assert f"line 3 has {found} fields where 3 were expected" in str(error)
    assert leftovers(out) == []


def test_ragged_row_far_down(con, root, out):
    lines = ["a,b,c"] + [f"{i},{i},{i}" for i in range(50_000)]
    lines[40_001] = "1,2"
    write(root, "data/a.csv", "\n".join(lines) + "\n")
    error = fails(con, root, out, path="data/a.csv")
    assert (error.file, error.line) == ("data/a.csv", 40_002)
    assert "has 2 fields where 3 were expected" in str(error)


def test_wrong_type_in_a_declared_column(con, root, out):
    write(root, "data/a.csv", "id,qty\n1,2\n2,abc\n3,4\n")
    error = fails(con, root, out, path="data/a.csv", columns={"qty": "INTEGER"})
    assert (error.file, error.line) == ("data/a.csv", 3)
    text = str(error)
    assert "line 3, column 'qty'" in text
    assert "'abc' cannot be read as INTEGER" in text
    assert "declare the column as VARCHAR under columns:" in text
    assert leftovers(out) == []


def test_wrong_type_beyond_the_detected_sample(con, root, out):
    lines = ["id,qty"] + [f"{i},{i}" for i in range(30_000)] + ["7,seven"]
    write(root, "data/a.csv", "\n".join(lines) + "\n")
    error = fails(con, root, out, path="data/a.csv")
    assert error.line == 30_002
    assert "column 'qty'" in str(error)
    assert "detected from the first rows" in str(error)


def test_unknown_column_and_unknown_type(con, root, out):
    write(root, "data/a.csv", "id,qty\n1,2\n")
    error = fails(con, root, out, path="data/a.csv", columns={"qtty": "INTEGER"})
    assert "Did you mean 'qty'?" in str(error)
    error = fails(con, root, out, path="data/a.csv", columns={"qty": "INTEGR"})
    assert "Did you mean 'INTEGER'?" in str(error)
    error = fails(con, root, out, path="data/a.csv", columns={"qty": "INT); DROP TABLE x; --"})
    assert "not a type name" in str(error)


def test_no_file_matches_the_glob(con, root, out):
    for name in ("orders-1.csv", "orders-2.csv", "customers.csv"):
        write(root, f"data/{name}", "a\n1\n")
    error = fails(con, root, out, path="data/order_*.csv")
    text = str(error)
    assert "no file matches 'data/order_*.csv'" in text
    assert str(root.resolve()) in text
    assert "data/customers.csv, data/orders-1.csv, data/orders-2.csv" in text


def test_a_missing_file_gets_a_suggestion(con, root, out):
    write(root, "data/orders.csv", "a\n1\n")
    error = fails(con, root, out, path="data/order.csv")
    assert "Did you mean 'data/orders.csv'?" in str(error)


def test_header_only_csv_has_no_rows(con, root, out):
    write(root, "data/a.csv", "a,b,c\n")
    error = fails(con, root, out, name="orders", path="data/a.csv")
    assert str(error).startswith("source 'orders': it has no rows (read data/a.csv)")
    assert error.hint and "header" in error.hint
    assert leftovers(out) == []


def test_empty_file_has_no_rows(con, root, out):
    write(root, "data/a.jsonl", "")
    assert "no rows" in str(fails(con, root, out, path="data/a.jsonl"))


def test_files_with_different_columns(con, root, out):
    write(root, "data/a.csv", "id,amount\n1,2\n")
    write(root, "data/b.csv", "id,amnt\n3,4\n")
    error = fails(con, root, out, path="data/*.csv")
    text = str(error)
    assert "column 'amount' is in data/a.csv but not in data/b.csv" in text


def test_parquet_files_with_different_columns(con, root, out):
    pq.write_table(pa.table({"a": [1]}), root / "data" / "p1.parquet")
    pq.write_table(pa.table({"a": [1], "extra": [2]}), root / "data" / "p2.parquet")
    error = fails(con, root, out, path="data/*.parquet")
    assert "column 'extra' is in data/p2.parquet but not in data/p1.parquet" in str(error)


def test_path_outside_the_project(con, root, out, tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    error = fails(con, root, out, path="../secret.csv")
    assert "points outside the project folder" in str(error)
    error = fails(con, root, out, path="data/../../*.csv")
    assert "points outside the project folder" in str(error)
    error = fails(con, root, out, url="sqlite:///../x.db", table="t")
    assert "outside the project folder" in str(error)


def test_an_absolute_path_that_exists_is_allowed(con, root, out, tmp_path):
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("a\n1\n")
    snap = read(con, root, out, path=str(elsewhere))
    assert snap.files[0].relpath == elsewhere.as_posix()
    error = fails(con, root, out, path=str(tmp_path / "missing.csv"))
    assert "no file matches" in str(error)


def test_a_folder_is_not_a_file(con, root, out):
    error = fails(con, root, out, path="data")
    assert "is a folder" in str(error)
    assert "data/*.csv" in str(error)


def test_bad_json_line(con, root, out):
    write(root, "data/e.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n')
    error = fails(con, root, out, path="data/e.jsonl")
    assert error.file == "data/e.jsonl"
    assert error.line in (3, 4)
    assert "is not valid JSON" in str(error)


def test_not_a_parquet_file(con, root, out):
    write(root, "data/p.parquet", "hello")
    error = fails(con, root, out, path="data/p.parquet")
    assert error.file == "data/p.parquet"
    assert "not a Parquet file" in str(error)
    assert str(root) not in str(error)


def test_unknown_extension_asks_for_a_format(con, root, out):
    write(root, "data/a.dat", "a\n1\n")
    error = fails(con, root, out, path="data/a.dat")
    assert "set 'format: csv'" in str(error)


def test_an_error_leaves_a_previous_output_alone(con, root, out):
    write(root, "data/a.csv", "a,b\n1,2\n")
    read(con, root, out, path="data/a.csv")
    before = out.read_bytes()
    write(root, "data/a.csv", "a,b\n1,2\n3\n")
    fails(con, root, out, path="data/a.csv")
    assert out.read_bytes() == before
    assert leftovers(out) == ["snapshot.parquet"]


def test_json_record_that_does_not_fit_the_detected_types(con, root, out):
    lines = [f'{{"n": {i}}}' for i in range(30_000)] + ['{"n": "many"}']
    write(root, "data/e.jsonl", "\n".join(lines) + "\n")
    error = fails(con, root, out, path="data/e.jsonl")
    assert (error.file, error.line) == ("data/e.jsonl", 30_001)
    assert "does not fit the types detected" in str(error)


def test_parquet_column_override_that_does_not_convert(con, root, out):
    pq.write_table(pa.table({"code": ["1", "x"]}), root / "data" / "p.parquet")
    error = fails(con, root, out, path="data/p.parquet", columns={"code": "INTEGER"})
    assert error.file == "data/p.parquet"
    assert "the column 'code', declared under 'columns:', does not convert" in str(error)
    assert "'x'" in str(error)
