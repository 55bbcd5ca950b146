"""The runner through the Python API: incremental runs and bad inputs, on real small projects.

Every error is checked for its type (from boite.errors) and for what its message
tells the user: the file, the line, what is allowed, and a "did you mean".
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import boite
from boite.errors import (
    ArtifactIntegrityError,
    CheckFailedError,
    ConfigError,
    CycleError,
    MissingTableError,
    NotFoundError,
    PlanError,
    ProjectLockedError,
    SourceError,
    SQLSyntaxError,
    TransformError,
    UserError,
)
from boite.pipeline.project import Project
from boite.pipeline.runner import RunReport

CSV = "id,amount\n1,10\n2,20\n3,30\n"
ORDERS = """\
name: shop
sources:
  orders:
    path: data/orders.csv
"""
FILES = {"data/orders.csv": CSV}


def open_(root: Path) -> Project:
    return boite.open_project(root)


def states(report: RunReport) -> dict[str, str]:
    return {o.name: o.state for o in report.outcomes}


def versions(project: Project, name: str) -> list[int]:
    return [a.version for a in project.ledger.versions("dataset", name)]


def full_text(error: BaseException) -> str:
    """What the CLI shows: the message and its hint."""
    return str(error)


# --- boite.yaml ------------------------------------------------------------------------


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        """\
        name: shop
        sources:
          orders:
            path: data/orders.csv
            columns: {id: INTEGER, amount: DOUBLE
        transforms: {}
        """,
        files=FILES,
    )
    with pytest.raises(ConfigError) as info:
        open_(root)
    err = info.value
    assert isinstance(err, UserError)
    assert err.file is not None and err.file.endswith("boite.yaml")
    assert err.line is not None and 5 <= err.line <= 6
    assert f"boite.yaml:{err.line}" in err.message
    assert "not valid YAML" in err.message
    assert err.hint and "indentation" in err.hint


def test_unknown_key_suggests_the_near_one(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        """\
        name: shop
        sources:
          orders:
            path: data/orders.csv
            delimeter: ","
        """,
        files=FILES,
    )
    with pytest.raises(ConfigError) as info:
        open_(root)
    err = info.value
    assert err.key == "sources.orders.delimeter"
    assert err.line == 5
    assert "boite.yaml:5" in err.message
    assert "unknown key 'delimeter'" in err.message
    assert "Did you mean 'delimiter'?" in full_text(err)
    # What is allowed there.
    assert "Allowed keys here:" in full_text(err)
    assert "path" in err.hint and "columns" in err.hint


def test_unknown_top_level_key_suggests_the_near_one(tmp_path: Path, make_project) -> None:
    root = make_project(tmp_path, "name: shop\ntransfroms: {}\n")
    with pytest.raises(ConfigError) as info:
        open_(root)
    assert info.value.line == 2
    assert "Did you mean 'transforms'?" in full_text(info.value)


def test_no_project_here(tmp_path: Path) -> None:
    with pytest.raises(boite.ProjectError) as info:
        open_(tmp_path)
    assert "boite.yaml" in info.value.message
    assert "boite init" in (info.value.hint or "")


def test_open_project_finds_the_root_from_a_subfolder(tmp_path: Path, make_project) -> None:
    root = make_project(tmp_path, ORDERS, files=FILES)
    project = open_(root / "data")
    assert project.root == root.resolve()


# --- planning ------------------------------------------------------------------------------


def test_missing_table_names_file_line_and_near_name(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"totals.sql": "SELECT id,\n    amount\nFROM ordrs\n"},
        files=FILES,
    )
    project = open_(root)
    with pytest.raises(MissingTableError) as info:
        project.run()
    err = info.value
    assert isinstance(err, PlanError)
    assert err.step == "totals"
    assert err.table == "ordrs"
    assert err.message.startswith("transforms/totals.sql:3:")
    assert "'ordrs'" in err.message
    assert "Did you mean 'orders'?" in full_text(err)
    assert "Known tables: orders" in full_text(err)
    # Nothing ran: the plan is checked first.
    assert project.runs().empty


def test_missing_table_of_a_python_transform_names_its_parameter_line(
    tmp_path: Path, make_project
) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"py_totals.py": "def py_totals(\n    ordres,\n):\n    return ordres\n"},
        files=FILES,
    )
    with pytest.raises(MissingTableError) as info:
        open_(root).plan()
    assert info.value.message.startswith("transforms/py_totals.py:2:")
    assert "Did you mean 'orders'?" in full_text(info.value)


def test_cycle_lists_the_cycle(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "a.sql": "SELECT * FROM c",
            "b.sql": "SELECT * FROM a",
            "c.sql": "SELECT b.* FROM b JOIN orders USING (id)",
            "ok.sql": "SELECT * FROM orders",
        },
        files=FILES,
    )
    project = open_(root)
    with pytest.raises(CycleError) as info:
        project.run()
    err = info.value
    assert isinstance(err, PlanError)
    cycle = err.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert len(cycle) == 4
    assert " -> ".join(cycle) in err.message
    assert "break the cycle" in (err.hint or "")
    assert project.runs().empty


def test_sql_syntax_error_gives_file_line_and_column(tmp_path: Path, make_project) -> None:
    sql = "SELECT id,\n    amount\nFRM orders\n"
    root = make_project(tmp_path, ORDERS, transforms={"totals.sql": sql}, files=FILES)
    project = open_(root)
    with pytest.raises(SQLSyntaxError) as info:
        project.run()
    err = info.value
    assert isinstance(err, TransformError)
    assert err.file == "transforms/totals.sql"
    assert err.line == 3
    assert err.column is not None and err.column >= 1
    assert err.message.startswith(f"transforms/totals.sql:3:{err.column}:")
    assert "syntax error" in err.message
    # The hint shows the line with a caret, and what a transform may hold.
    assert "3 | FRM orders" in (err.hint or "")
    assert "^" in (err.hint or "")
    assert "one SELECT" in (err.hint or "")
    assert project.runs().empty


def test_two_statements_are_refused(tmp_path: Path, make_project) -> None:
    sql = "SELECT * FROM orders;\nDELETE FROM orders;\n"
    root = make_project(tmp_path, ORDERS, transforms={"totals.sql": sql}, files=FILES)
    with pytest.raises(TransformError) as info:
        open_(root).plan()
    assert info.value.file == "transforms/totals.sql"
    assert info.value.line == 2
    assert "exactly one" in info.value.message


def test_unknown_step_name_suggests_the_near_one(tmp_path: Path, make_project) -> None:
    root = make_project(tmp_path, ORDERS, files=FILES)
    with pytest.raises(NotFoundError) as info:
        open_(root).run(["ordrs"])
    assert info.value.kind == "step"
    assert "no step named 'ordrs'" in info.value.message
    assert "Did you mean 'orders'?" in full_text(info.value)


def test_running_selected_steps_runs_what_they_need_only(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "big.sql": "SELECT * FROM orders WHERE amount > 15",
            "small.sql": "SELECT * FROM orders WHERE amount <= 15",
        },
        files=FILES,
    )
    project = open_(root)
    report = project.run(["big"])
    assert states(report) == {"orders": "built", "big": "built"}
    assert project.dataset("big").rows == 2
    with pytest.raises(NotFoundError):
        project.dataset("small")


# --- SQL runtime errors ---------------------------------------------------------------------


def test_sql_runtime_error_is_a_transform_error_with_the_file(tmp_path: Path, make_project) -> None:
    sql = "SELECT id,\n    amont\nFROM orders\n"
    root = make_project(tmp_path, ORDERS, transforms={"totals.sql": sql}, files=FILES)
    project = open_(root)
    report = project.run()
    assert not report.ok
    assert states(report) == {"orders": "built", "totals": "failed"}
    err = report.outcome("totals").error
    assert type(err) is TransformError
    assert err.file == "transforms/totals.sql"
    assert err.message.startswith("transforms/totals.sql")
    assert "amont" in err.message
    # The failed run is on record with its error; no version of the table exists.
    failed = project.ledger.latest_runs()["totals"]
    assert failed.status == "failed"
    assert "amont" in (failed.error or "")
    with pytest.raises(NotFoundError):
        project.dataset("totals")
    # A failed step runs again next time (it is not "up to date").
    assert states(project.run())["totals"] == "failed"


def test_sql_runtime_error_suggests_the_near_column(tmp_path: Path, make_project) -> None:
    # DuckDB knows the candidate ("Candidate bindings: amount"); the user should see it.
    sql = "SELECT id,\n    amont\nFROM orders\n"
    root = make_project(tmp_path, ORDERS, transforms={"totals.sql": sql}, files=FILES)
    err = open_(root).run().outcome("totals").error
    assert isinstance(err, TransformError)
    assert "amount" in full_text(err).replace("amont", "")
    # DuckDB gives no position; the line of the first mention of the column will do.
    assert err.line == 2


def test_fixing_a_failed_transform_builds_it_and_its_downstream(
    tmp_path: Path, make_project
) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "totals.sql": "SELECT sum(amont) AS total FROM orders",
            "report.sql": "SELECT total * 2 AS doubled FROM totals",
        },
        files=FILES,
    )
    project = open_(root)
    first = project.run()
    assert states(first) == {"orders": "built", "totals": "failed", "report": "blocked"}
    assert "totals" in report_detail(first, "report")
    (root / "transforms/totals.sql").write_text("SELECT sum(amount) AS total FROM orders")
    second = project.run()
    assert states(second) == {"orders": "up to date", "totals": "built", "report": "built"}
    assert project.dataset("report").to_pandas()["doubled"].tolist() == [120]


def report_detail(report: RunReport, name: str) -> str:
    return report.outcome(name).detail


# --- sources --------------------------------------------------------------------------------


def test_csv_ragged_row_names_file_and_line(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"totals.sql": "SELECT sum(amount) AS total FROM orders"},
        files={"data/orders.csv": "id,amount\n1,10\n2,20,5\n3,30\n"},
    )
    report = open_(root).run()
    assert states(report) == {"orders": "failed", "totals": "blocked"}
    err = report.outcome("orders").error
    assert isinstance(err, SourceError)
    assert err.source == "orders"
    assert err.file == "data/orders.csv"
    assert err.line == 3
    assert "data/orders.csv, line 3" in err.message
    assert "3 fields where 2 were expected" in err.message
    assert "delimiter" in (err.hint or "")


def test_csv_value_of_the_wrong_declared_type_names_line_and_column(
    tmp_path: Path, make_project
) -> None:
    root = make_project(
        tmp_path,
        """\
        name: shop
        sources:
          orders:
            path: data/orders.csv
            columns: {amount: INTEGER}
        """,
        files={"data/orders.csv": "id,amount\n1,10\n2,20\n3,abc\n"},
    )
    err = open_(root).run().outcome("orders").error
    assert isinstance(err, SourceError)
    assert err.file == "data/orders.csv"
    assert err.line == 4
    assert "'amount'" in err.message
    assert "'abc'" in err.message
    assert "INTEGER" in err.message
    assert "amount: VARCHAR" in (err.hint or "")


@pytest.mark.parametrize("text", ["id,amount\n", ""], ids=["header-only", "empty-file"])
def test_empty_source_is_an_error(tmp_path: Path, make_project, text: str) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"totals.sql": "SELECT count(*) AS n FROM orders"},
        files={"data/orders.csv": text},
    )
    project = open_(root)
    report = project.run()
    assert states(report) == {"orders": "failed", "totals": "blocked"}
    err = report.outcome("orders").error
    assert isinstance(err, SourceError)
    assert "no rows" in err.message
    assert "data/orders.csv" in err.message
    with pytest.raises(NotFoundError):
        project.dataset("orders")


def test_missing_source_file_suggests_the_near_file(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        "name: shop\nsources:\n  orders:\n    path: data/order.csv\n",
        files=FILES,
    )
    err = open_(root).run().outcome("orders").error
    assert isinstance(err, SourceError)
    assert "data/order.csv" in err.message
    assert "Did you mean 'data/orders.csv'?" in (err.hint or "")


# --- checks -------------------------------------------------------------------------------

CHECKED = """\
name: shop
sources:
  orders:
    path: data/orders.csv
transforms:
  positive:
    checks:
      - range: {column: amount, min: 0}
"""


def test_failing_check_keeps_the_good_version_and_blocks_downstream(
    tmp_path: Path, make_project
) -> None:
    root = make_project(
        tmp_path,
        CHECKED,
        transforms={
            "positive.sql": "SELECT id, amount FROM orders",
            "downstream.sql": "SELECT sum(amount) AS total FROM positive",
        },
        files=FILES,
    )
    project = open_(root)
    assert states(project.run()) == dict.fromkeys(["orders", "positive", "downstream"], "built")
    good = project.dataset("positive")
    downstream_runs = len(project.runs("downstream"))

    (root / "transforms/positive.sql").write_text("SELECT id, amount - 25 AS amount FROM orders")
    report = project.run()
    assert not report.ok
    assert states(report) == {"orders": "up to date", "positive": "failed", "downstream": "blocked"}
    assert "positive" in report.outcome("downstream").detail

    err = report.outcome("positive").error
    assert isinstance(err, CheckFailedError)
    assert err.step == "positive"
    assert "positive@1 stays current" in err.message
    assert "2 rows have amount < 0 (allowed: >= 0)" in (err.hint or "")
    assert err.report.failed[0].failing_rows == 2

    # The previous good version stays current, and nothing downstream was built.
    assert project.dataset("positive").content_hash == good.content_hash
    assert versions(project, "positive") == [1]
    assert versions(project, "downstream") == [1]
    assert len(project.runs("downstream")) == downstream_runs
    assert project.dataset("downstream").to_pandas()["total"].tolist() == [60]

    # The check report is an artifact of the failed run, with the failing rows.
    stored = project.ledger.latest_artifacts("check_report")["positive"]
    failed_run = project.ledger.latest_runs()["positive"]
    assert failed_run.status == "failed"
    assert stored.run_id == failed_run.id
    assert stored.id in {a.id for a in project.ledger.outputs_of(failed_run.id)}
    body = json.loads(project.store.read_bytes(stored.uri, stored.content_hash))
    assert body["step"] == "positive"
    assert body["passed"] is False
    (result,) = body["results"]
    assert result["kind"] == "range"
    assert result["failing_rows"] == 2
    assert sorted(row["amount"] for row in result["sample"]) == [-15, -5]

    status = {s.name: s for s in project.status()}
    assert status["positive"].state == "failed"
    assert status["positive"].version == 1


def test_failing_check_on_the_first_run_leaves_no_version(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        CHECKED,
        transforms={"positive.sql": "SELECT id, amount - 25 AS amount FROM orders"},
        files=FILES,
    )
    project = open_(root)
    err = project.run().outcome("positive").error
    assert isinstance(err, CheckFailedError)
    assert "no version is current yet" in err.message
    with pytest.raises(NotFoundError):
        project.dataset("positive")


# --- Python transforms -------------------------------------------------------------------

PY_PANDAS = """\
import pandas as pd


def with_pandas(orders: pd.DataFrame) -> pd.DataFrame:
    assert isinstance(orders, pd.DataFrame), type(orders)
    return orders.assign(doubled=orders["amount"] * 2)
"""
PY_ARROW = """\
import pyarrow as pa
import pyarrow.compute as pc


def with_arrow(orders: pa.Table) -> pa.Table:
    assert isinstance(orders, pa.Table), type(orders)
    return orders.append_column("tripled", pc.multiply(orders["amount"], 3))
"""
PY_DUCKDB = """\
import duckdb


def with_duckdb(orders: duckdb.DuckDBPyRelation, with_pandas: duckdb.DuckDBPyRelation):
    assert isinstance(orders, duckdb.DuckDBPyRelation), type(orders)
    big = orders.filter("amount > 15").set_alias("o")
    doubled = with_pandas.select("id, doubled").set_alias("p")
    return big.join(doubled, "o.id = p.id").select("o.id, o.amount, p.doubled")
"""
PY_RAISES = """\
def _check(frame):
    if len(frame) > 0:
        raise ValueError("three rows is too many")


def raises(orders):
    _check(orders)
    return orders
"""
PY_WRONG_TYPE = """\
def wrong_type(orders):
    return orders["amount"].tolist()
"""


def test_python_transforms_receive_what_they_annotate(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "with_pandas.py": PY_PANDAS,
            "with_arrow.py": PY_ARROW,
            "with_duckdb.py": PY_DUCKDB,
        },
        files=FILES,
    )
    project = open_(root)
    report = project.run()
    assert report.ok, [(o.name, o.detail) for o in report.failed]
    assert project.plan().steps["with_duckdb"].inputs == ("orders", "with_pandas")
    pandas_out = project.dataset("with_pandas").to_pandas()
    assert pandas_out["doubled"].tolist() == [20, 40, 60]
    arrow_out = project.dataset("with_arrow").to_pandas()
    assert arrow_out["tripled"].tolist() == [30, 60, 90]
    duck_out = project.dataset("with_duckdb").to_pandas().sort_values("id")
    assert duck_out["id"].tolist() == [2, 3]
    assert duck_out["doubled"].tolist() == [40, 60]
    assert project.dataset("with_duckdb").schema["id"] == "BIGINT"
    # A second run executes none of them.
    assert project.run().executed == []


def test_python_transform_that_raises_names_the_line_in_the_users_file(
    tmp_path: Path, make_project
) -> None:
    root = make_project(tmp_path, ORDERS, transforms={"raises.py": PY_RAISES}, files=FILES)
    err = open_(root).run().outcome("raises").error
    assert type(err) is TransformError
    assert err.file == "transforms/raises.py"
    assert err.line == 3  # the raise inside the helper, in the user's own file
    assert err.message.startswith("transforms/raises.py:3:")
    assert "ValueError" in err.message
    assert "three rows is too many" in err.message


def test_python_transform_returning_a_wrong_type(tmp_path: Path, make_project) -> None:
    root = make_project(tmp_path, ORDERS, transforms={"wrong_type.py": PY_WRONG_TYPE}, files=FILES)
    err = open_(root).run().outcome("wrong_type").error
    assert type(err) is TransformError
    assert err.file == "transforms/wrong_type.py"
    assert "returned list" in err.message
    assert "pandas DataFrame, a pyarrow Table or a DuckDB relation" in (err.hint or "")


PY_EXITS = """\
import sys


def exits(orders):
    sys.exit(3)
"""


def test_python_transform_calling_sys_exit_is_a_transform_error(
    tmp_path: Path, make_project
) -> None:
    # User code that exits must fail its step, not end the caller's process.
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"exits.py": PY_EXITS, "fine.sql": "SELECT * FROM orders"},
        files=FILES,
    )
    project = open_(root)
    try:
        report = project.run()
    except SystemExit as exc:  # pragma: no cover - the bug this test guards against
        pytest.fail(f"project.run() let the transform's SystemExit({exc.code}) escape")
    assert states(report) == {"orders": "built", "exits": "failed", "fine": "built"}
    err = report.outcome("exits").error
    assert isinstance(err, TransformError)
    assert err.file == "transforms/exits.py"
    assert err.line == 5
    assert "SystemExit" in err.message


def test_python_transform_with_a_syntax_error_fails_the_plan(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"broken.py": "def broken(orders):\n    return orders +\n"},
        files=FILES,
    )
    with pytest.raises(TransformError) as info:
        open_(root).plan()
    assert info.value.file == "transforms/broken.py"
    assert info.value.line == 2


HELPER = "def factor():\n    return {n}\n"
SCALED = """\
from _helpers import factor


def scaled(orders):
    return orders.assign(scaled=orders["amount"] * factor())
"""


@pytest.fixture
def clean_imports(tmp_path: Path):
    """Forget the modules imported from this test's projects, so none leaks into later tests."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(tmp_path.resolve()):
            del sys.modules[name]


@pytest.mark.usefixtures("clean_imports")
def test_editing_a_python_helper_rebuilds_with_the_new_code(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"_helpers.py": HELPER.format(n=2), "scaled.py": SCALED},
        files=FILES,
    )
    project = open_(root)
    assert project.run().ok
    assert project.dataset("scaled").to_pandas()["scaled"].tolist() == [20, 40, 60]
    (root / "transforms/_helpers.py").write_text(HELPER.format(n=3))
    assert {s.name: s.state for s in project.status()}["scaled"] == "stale"
    report = project.run()
    assert report.outcome("scaled").state == "built"
    assert project.dataset("scaled").to_pandas()["scaled"].tolist() == [30, 60, 90]


@pytest.mark.usefixtures("clean_imports")
def test_helpers_of_two_projects_do_not_mix(tmp_path: Path, make_project) -> None:
    results = []
    for n in (2, 5):
        root = make_project(
            tmp_path / f"p{n}",
            ORDERS,
            transforms={"_helpers.py": HELPER.format(n=n), "scaled.py": SCALED},
            files=FILES,
        )
        project = open_(root)
        assert project.run().ok
        results.append(project.dataset("scaled").to_pandas()["scaled"].tolist())
    assert results == [[20, 40, 60], [50, 100, 150]]


SLEEPY = """\
import time


def {name}(orders):
    time.sleep(0.5)
    return orders
"""


def test_independent_steps_run_in_parallel(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "left.py": SLEEPY.format(name="left"),
            "right.py": SLEEPY.format(name="right"),
        },
        files=FILES,
    )
    project = open_(root)
    assert project.run(workers=2).ok
    runs = {r.step: r for r in project.ledger.runs()}
    left, right = runs["left"], runs["right"]
    assert left.ended_at is not None and right.ended_at is not None
    # Both started before either ended: they overlapped.
    assert left.started_at < right.ended_at
    assert right.started_at < left.ended_at
    # And both started after the source they read was done.
    assert runs["orders"].ended_at <= min(left.started_at, right.started_at)


def test_one_worker_runs_steps_one_after_another(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={
            "left.py": SLEEPY.format(name="left"),
            "right.py": SLEEPY.format(name="right"),
        },
        files=FILES,
    )
    project = open_(root)
    assert project.run(workers=1).ok
    runs = {r.step: r for r in project.ledger.runs()}
    first, second = sorted([runs["left"], runs["right"]], key=lambda r: r.started_at)
    assert first.ended_at <= second.started_at


# --- incremental behaviour -------------------------------------------------------------------


@pytest.fixture
def totals(tmp_path: Path, make_project) -> Project:
    root = make_project(
        tmp_path,
        ORDERS,
        transforms={"totals.sql": "SELECT sum(amount) AS total, count(*) AS n FROM orders"},
        files=FILES,
    )
    project = open_(root)
    assert states(project.run()) == {"orders": "built", "totals": "built"}
    return project


def test_second_run_does_nothing(totals: Project) -> None:
    before = len(totals.runs())
    report = totals.run()
    assert states(report) == {"orders": "up to date", "totals": "up to date"}
    assert report.executed == []
    assert len(totals.runs()) == before


def test_touching_a_source_file_changes_nothing(totals: Project) -> None:
    path = totals.root / "data/orders.csv"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns + 10**10, st.st_mtime_ns + 10**10))
    before = len(totals.runs())
    assert states(totals.run()) == {"orders": "up to date", "totals": "up to date"}
    assert len(totals.runs()) == before
    assert {s.state for s in totals.status()} == {"up to date"}


def test_rewriting_identical_content_makes_no_new_version(totals: Project) -> None:
    path = totals.root / "data/orders.csv"
    path.unlink()
    path.write_text(CSV)
    report = totals.run()
    assert report.executed == []
    assert versions(totals, "orders") == [1]
    assert versions(totals, "totals") == [1]


def test_changed_source_file_makes_a_new_version_and_rebuilds_downstream(
    totals: Project,
) -> None:
    path = totals.root / "data/orders.csv"
    path.write_text(CSV + "4,40\n")
    status = {s.name: s for s in totals.status()}
    assert status["orders"].state == "stale"
    assert "data/orders.csv" in status["orders"].reason
    assert status["totals"].state == "stale"

    report = totals.run()
    assert states(report) == {"orders": "built", "totals": "built"}
    assert versions(totals, "orders") == [1, 2]
    assert versions(totals, "totals") == [1, 2]
    frame = totals.dataset("totals").to_pandas()
    assert frame["total"].tolist() == [100]
    assert frame["n"].tolist() == [4]
    assert totals.dataset("totals@1").to_pandas()["total"].tolist() == [60]
    # The new raw file is on record as a new version of the file artifact.
    files = totals.ledger.versions("file", "data/orders.csv")
    assert [f.version for f in files] == [1, 2]


def test_glob_source_picks_up_added_and_removed_files(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        "name: shop\nsources:\n  orders:\n    path: data/orders/*.csv\n",
        transforms={"totals.sql": "SELECT sum(amount) AS total FROM orders"},
        files={"data/orders/2024-01.csv": CSV},
    )
    project = open_(root)
    assert project.run().ok
    (root / "data/orders/2024-02.csv").write_text("id,amount\n4,40\n")
    report = project.run()
    assert states(report) == {"orders": "built", "totals": "built"}
    assert project.dataset("totals").to_pandas()["total"].tolist() == [100]
    (root / "data/orders/2024-01.csv").unlink()
    status = {s.name: s for s in project.status()}
    assert "data/orders/2024-01.csv" in status["orders"].reason
    report = project.run()
    assert states(report) == {"orders": "built", "totals": "built"}
    assert project.dataset("totals").to_pandas()["total"].tolist() == [40]
    assert versions(project, "orders") == [1, 2, 3]


def test_new_source_content_with_the_same_result_keeps_downstream_version(
    totals: Project,
) -> None:
    # The same rows in another order: a new source version, the same totals.
    (totals.root / "data/orders.csv").write_text("id,amount\n3,30\n1,10\n2,20\n")
    report = totals.run()
    assert states(report) == {"orders": "built", "totals": "unchanged"}
    assert versions(totals, "orders") == [1, 2]
    assert versions(totals, "totals") == [1]
    assert totals.run().executed == []


def test_deleted_artifact_file_is_rebuilt(totals: Project) -> None:
    record = totals.dataset("totals").record
    (totals.root / record.uri).unlink()
    status = {s.name: s for s in totals.status()}
    assert status["totals"].state == "stale"
    assert "missing" in status["totals"].reason
    report = totals.run()
    assert states(report) == {"orders": "up to date", "totals": "unchanged"}
    assert totals.dataset("totals").to_pandas()["total"].tolist() == [60]


def test_changed_settings_rebuild_the_step(totals: Project) -> None:
    config = totals.root / "boite.yaml"
    config.write_text(
        config.read_text() + "transforms:\n  totals:\n    checks:\n      - row_count: {min: 1}\n"
    )
    project = open_(totals.root)
    status = {s.name: s for s in project.status()}
    assert status["totals"].state == "stale"
    assert "settings changed" in status["totals"].reason
    report = project.run()
    assert states(report) == {"orders": "up to date", "totals": "unchanged"}


def test_missing_version_is_not_found(totals: Project) -> None:
    with pytest.raises(NotFoundError) as info:
        totals.dataset("totals@99")
    assert "totals@99" in info.value.message
    with pytest.raises(NotFoundError) as info:
        totals.dataset("totls")
    assert "Did you mean 'totals'?" in full_text(info.value)


def test_runs_frame_lists_every_run(totals: Project) -> None:
    frame = totals.runs()
    assert isinstance(frame, pd.DataFrame)
    assert sorted(frame["step"]) == ["orders", "totals"]
    assert set(frame["status"]) == {"succeeded"}
    assert (frame["rows_out"] > 0).all()


# --- a SQLite database source -----------------------------------------------------------------


def test_sqlite_database_source(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        """\
        name: crm
        sources:
          customers:
            url: sqlite:///data/crm.db
            table: customers
        """,
        transforms={
            "names.sql": "SELECT id, upper(name) AS name FROM customers ORDER BY id",
        },
    )
    (root / "data").mkdir()
    db = sqlite3.connect(root / "data/crm.db")
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    db.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "ada"), (2, "grace")])
    db.commit()
    db.close()

    project = open_(root)
    assert states(project.run()) == {"customers": "built", "names": "built"}
    frame = project.dataset("names").to_pandas()
    assert frame["name"].tolist() == ["ADA", "GRACE"]
    assert project.dataset("customers").rows == 2

    # A database is read again on every run; the same rows make no new version.
    again = project.run()
    assert again.outcome("customers").state == "unchanged"
    assert again.outcome("names").state == "up to date"
    assert versions(project, "customers") == [1]

    db = sqlite3.connect(root / "data/crm.db")
    db.execute("INSERT INTO customers VALUES (3, 'linus')")
    db.commit()
    db.close()
    third = project.run()
    assert states(third) == {"customers": "built", "names": "built"}
    assert versions(project, "customers") == [1, 2]
    assert project.dataset("names").to_pandas()["name"].tolist() == ["ADA", "GRACE", "LINUS"]


def test_sqlite_missing_table_suggests_the_near_one(tmp_path: Path, make_project) -> None:
    root = make_project(
        tmp_path,
        "name: crm\nsources:\n  customers:\n    url: sqlite:///data/crm.db\n    table: custmers\n",
    )
    (root / "data").mkdir()
    db = sqlite3.connect(root / "data/crm.db")
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.execute("INSERT INTO customers VALUES (1)")
    db.commit()
    db.close()
    err = open_(root).run().outcome("customers").error
    assert isinstance(err, SourceError)
    assert "custmers" in err.message
    assert "Did you mean 'customers'?" in (err.hint or "")


# --- a killed run, the project lock, a damaged artifact ------------------------------------

STALLS = """\
import time
from pathlib import Path


def stalls(orders):
    stall = Path(__file__).resolve().parents[1] / "stall"
    if stall.exists():
        (stall.parent / "started").write_text("started")
        time.sleep(120)
    return orders
"""


def test_killed_run_keeps_the_lock_honest_and_the_next_run_resumes(
    tmp_path: Path, make_project
) -> None:
    root = make_project(tmp_path, ORDERS, transforms={"stalls.py": STALLS}, files=FILES)
    (root / "stall").write_text("")
    code = f"import boite; boite.open_project({str(root)!r}).run(workers=1)"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (root / "started").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the transform never started"
            time.sleep(0.05)
        # While it runs, a second run is refused, naming the holder.
        with pytest.raises(ProjectLockedError) as info:
            open_(root).run()
        assert str(proc.pid) in info.value.holder
        assert "--wait" in (info.value.hint or "")
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()

    (root / "stall").unlink()
    project = open_(root)
    report = project.run()
    assert states(report) == {"orders": "up to date", "stalls": "built"}
    runs = project.ledger.runs(step="stalls")
    assert sorted(r.status for r in runs) == ["interrupted", "succeeded"]
    interrupted = next(r for r in runs if r.status == "interrupted")
    assert "stopped before it finished" in (interrupted.error or "")
    assert project.dataset("stalls").rows == 3
    # The killed run's scratch files are gone.
    scratch = root / ".boite" / "tmp"
    assert not scratch.exists() or not any(scratch.iterdir())


def test_damaged_artifact_is_refused_and_deleting_it_repairs(totals: Project) -> None:
    record = totals.dataset("orders").record
    path = totals.root / record.uri
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactIntegrityError) as info:
        totals.dataset("orders").to_pandas()
    assert record.uri in info.value.message
    assert "Delete that file" in (info.value.hint or "")

    (totals.root / "transforms/totals.sql").write_text("SELECT max(amount) AS total FROM orders")
    report = totals.run()
    assert states(report) == {"orders": "up to date", "totals": "failed"}
    assert isinstance(report.outcome("totals").error, ArtifactIntegrityError)

    # Doing what the hint says repairs the project.
    path.unlink()
    report = totals.run()
    assert states(report) == {"orders": "unchanged", "totals": "built"}
    assert totals.dataset("totals").to_pandas()["total"].tolist() == [30]
