"""The real `boite` console script, run as a subprocess in real project folders.

User errors exit 2 with one paragraph on stderr and never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

MakeProject = Callable[..., Path]

BOITE = Path(sys.executable).parent / "boite"

CSV = "id,amount\n1,10\n2,20\n3,30\n"
SHOP = """\
name: shop
sources:
  orders:
    path: data/orders.csv
transforms:
  totals:
    checks:
      - row_count: {min: 1}
"""
TOTALS = "SELECT count(*) AS n,\n    sum(amount) AS total\nFROM orders\n"


def boite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOITE_DEBUG", "COLUMNS")}
    return subprocess.run(
        [str(BOITE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_user_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, a message on stderr in one paragraph, no traceback; returns stderr."""
    assert result.returncode == 2, output(result)
    assert "Traceback" not in output(result)
    err = result.stderr.strip()
    assert err.startswith("error:"), err
    assert "\n\n" not in err, err
    return err


def shop(make_project: MakeProject, root: Path, *, totals: str = TOTALS) -> Path:
    return make_project(
        root, SHOP, transforms={"totals.sql": totals}, files={"data/orders.csv": CSV}
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Path:
    """A small project, built once with `boite run`; the tests here only read it."""
    root = shop(make_project, tmp_path_factory.mktemp("cli") / "shop")
    result = boite("run", cwd=root)
    assert result.returncode == 0, output(result)
    return root


# --- help and version -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["init"],
        ["quickstart"],
        ["run"],
        ["status"],
        ["runs"],
        ["show"],
        ["show", "dataset"],
        ["show", "run"],
        ["lineage"],
        ["log"],
        ["log", "compact"],
    ],
    ids=lambda c: " ".join(c) or "boite",
)
def test_help_of_every_command(tmp_path: Path, command: list[str]) -> None:
    result = boite(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "Usage: boite" in result.stdout
    assert "Traceback" not in output(result)


def test_version(tmp_path: Path) -> None:
    result = boite("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert re.fullmatch(r"boite \d+\.\d+\.\d+\S*\n", result.stdout)


# --- init -----------------------------------------------------------------------------


def test_init_creates_a_project_and_refuses_twice(tmp_path: Path) -> None:
    result = boite("init", "my-product", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "Created the project" in result.stdout
    folder = tmp_path / "my-product"
    assert (folder / "boite.yaml").is_file()
    assert "name: my-product" in (folder / "boite.yaml").read_text()
    assert (folder / "transforms").is_dir()
    assert (folder / "data").is_dir()
    assert ".boite/" in (folder / ".gitignore").read_text()

    again = boite("init", "my-product", cwd=tmp_path)
    err = assert_user_error(again)
    assert "my-product" in err
    assert "already holds a boite project" in err
    other = tmp_path / "not-empty"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert "--force" in assert_user_error(boite("init", "not-empty", cwd=tmp_path))

    # The new project is valid: it has no steps and says so.
    status = boite("status", cwd=folder)
    assert status.returncode == 0, output(status)
    assert "no steps yet" in status.stdout
    run = boite("run", cwd=folder)
    assert run.returncode == 0, output(run)


# --- run, status, show, lineage, runs ---------------------------------------------------


def test_run_twice_says_nothing_to_do(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop")
    first = boite("run", cwd=root)
    assert first.returncode == 0, output(first)
    assert "orders" in first.stdout and "totals" in first.stdout
    assert "2 built" in first.stdout
    second = boite("run", cwd=root)
    assert second.returncode == 0, output(second)
    assert "Nothing to do: all 2 steps are up to date." in second.stdout


def test_run_with_project_option_from_elsewhere(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop")
    result = boite("run", "--project", str(root), "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "2 built" in result.stdout


def test_status_before_run_and_after_an_edit(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop")
    before = boite("status", cwd=root)
    assert before.returncode == 0, output(before)
    assert "never built" in before.stdout
    assert boite("run", cwd=root).returncode == 0
    (root / "transforms/totals.sql").write_text(TOTALS.replace("sum(amount)", "max(amount)"))
    edited = boite("status", cwd=root)
    assert edited.returncode == 0
    assert "code changed (transforms/totals.sql)" in edited.stdout
    assert "1 of 2 steps need `boite run`." in edited.stdout


def test_status_from_a_subfolder(built: Path) -> None:
    result = boite("status", cwd=built / "data")
    assert result.returncode == 0, output(result)
    assert "All 2 steps are up to date." in result.stdout


def test_show_dataset(built: Path) -> None:
    result = boite("show", "dataset", "totals", cwd=built)
    assert result.returncode == 0, output(result)
    text = result.stdout
    assert "dataset totals@1" in text
    assert "rows      1" in text
    assert "inputs    dataset orders@1" in text
    assert re.search(r"^total\s.*DOUBLE|^total\s.*BIGINT|^total\s.*HUGEINT", text, re.M)
    assert "orders.amount" in text  # column lineage
    explicit = boite("show", "dataset", "totals@1", cwd=built)
    assert explicit.returncode == 0
    assert "dataset totals@1" in explicit.stdout
    err = assert_user_error(boite("show", "dataset", "totals@99", cwd=built))
    assert "totals@99" in err


def test_show_dataset_unknown_version_says_which_exist(built: Path) -> None:
    # What is allowed: the versions there are (here only v1).
    err = assert_user_error(boite("show", "dataset", "totals@99", cwd=built))
    assert re.search(r"\bv?1\b", err.replace("totals@99", "")), err


def test_show_unknown_dataset_suggests_the_near_name(built: Path) -> None:
    err = assert_user_error(boite("show", "dataset", "totls", cwd=built))
    assert "Did you mean 'totals'?" in err


def test_lineage_json(built: Path) -> None:
    result = boite("lineage", "totals", "--upstream", "--format", "json", cwd=built)
    assert result.returncode == 0, output(result)
    graph = json.loads(result.stdout)
    assert graph["direction"] == "upstream"
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[graph["root"]]["label"] == "totals@1"
    kinds = sorted(n["kind"] for n in nodes.values())
    assert kinds == ["dataset", "dataset", "file", "run", "run"]
    (raw,) = [n for n in nodes.values() if n["kind"] == "file"]
    assert raw["name"] == "data/orders.csv"
    for edge in graph["edges"]:
        assert edge["from"] in nodes and edge["to"] in nodes


def test_lineage_downstream_json(built: Path) -> None:
    result = boite("lineage", "orders", "--downstream", "-f", "json", cwd=built)
    assert result.returncode == 0, output(result)
    graph = json.loads(result.stdout)
    assert graph["direction"] == "downstream"
    labels = {n["label"] for n in graph["nodes"]}
    assert {"orders@1", "totals@1"} <= labels


def test_lineage_dot(built: Path) -> None:
    result = boite("lineage", "totals", "--format", "dot", cwd=built)
    assert result.returncode == 0, output(result)
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "digraph lineage {"
    assert lines[-1] == "}"
    assert any('label="totals@1", shape=cylinder' in line for line in lines)
    assert any('label="data/orders.csv@1", shape=note' in line for line in lines)
    assert sum("->" in line for line in lines) == 4
    for line in lines[1:-1]:
        assert line.startswith('  "') or line == "  rankdir=LR;", line


def test_lineage_dot_keeps_long_lines_whole(tmp_path: Path, make_project: MakeProject) -> None:
    # Machine-readable output must not be wrapped to the terminal width.
    folder = "data/" + "a_rather_long_folder_name_" * 7
    path = f"{folder}/orders.csv"
    root = make_project(
        tmp_path / "long",
        f"name: long\nsources:\n  orders:\n    path: {path}\n",
        files={path: CSV},
    )
    assert boite("run", cwd=root).returncode == 0
    result = boite("lineage", "orders", "--format", "dot", cwd=root)
    assert result.returncode == 0, output(result)
    assert f'[label="{path}@1", shape=note];' in result.stdout
    for line in result.stdout.strip().splitlines()[1:-1]:
        assert line.startswith('  "') or line == "  rankdir=LR;", line


@pytest.fixture(scope="module")
def brackets(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Path:
    """Data and an error message holding square brackets, as user text often does."""
    root = make_project(
        tmp_path_factory.mktemp("brackets") / "roles",
        "name: roles\nsources:\n  users:\n    path: data/users.csv\n",
        transforms={"bad.py": 'def bad(users):\n    raise ValueError("need [id]")\n'},
        files={"data/users.csv": "role,n\n[admin],1\n[bold]zz,2\n"},
    )
    result = boite("run", cwd=root)
    assert result.returncode == 2, output(result)
    assert "need [id]" in result.stdout
    return root


def test_status_shows_error_text_verbatim(brackets: Path) -> None:
    result = boite("status", cwd=brackets)
    assert result.returncode == 0, output(result)
    assert "need [id]" in result.stdout


def test_show_dataset_shows_values_verbatim(brackets: Path) -> None:
    result = boite("show", "dataset", "users", cwd=brackets)
    assert result.returncode == 0, output(result)
    assert "[admin]" in result.stdout
    assert "[bold]zz" in result.stdout


def test_lineage_text(built: Path) -> None:
    result = boite("lineage", "totals", cwd=built)
    assert result.returncode == 0, output(result)
    assert result.stdout.startswith("dataset totals@1")
    assert "data/orders.csv@1" in result.stdout


def test_runs_and_show_run(built: Path) -> None:
    result = boite("runs", cwd=built)
    assert result.returncode == 0, output(result)
    lines = [line for line in result.stdout.splitlines() if "succeeded" in line]
    assert len(lines) == 2
    assert {"orders", "totals"} <= set(result.stdout.split())
    run_id = next(line.split()[0] for line in lines if " totals " in f" {line} ")
    assert re.fullmatch(r"[0-9a-f]{8}", run_id)
    shown = boite("show", "run", run_id, cwd=built)
    assert shown.returncode == 0, output(shown)
    assert "totals (transform)" in shown.stdout
    assert "succeeded" in shown.stdout
    assert "dataset orders@1" in shown.stdout
    only = boite("runs", "--step", "orders", cwd=built)
    assert only.returncode == 0
    assert "totals" not in only.stdout


def test_show_unknown_run(built: Path) -> None:
    err = assert_user_error(boite("show", "run", "ffffffff", cwd=built))
    assert "ffffffff" in err


# --- user errors: exit 2, one paragraph, no traceback ------------------------------------------


def test_no_project_here(tmp_path: Path) -> None:
    for command in (["run"], ["status"], ["show", "dataset", "x"]):
        err = assert_user_error(boite(*command, cwd=tmp_path))
        assert "no boite.yaml" in err
        assert "boite init" in err


def test_malformed_yaml(tmp_path: Path, make_project: MakeProject) -> None:
    root = make_project(tmp_path, "name: shop\nsources:\n  orders: {path: data/orders.csv\n")
    err = assert_user_error(boite("run", cwd=root))
    assert re.search(r"boite\.yaml:\d+", err), err
    assert "not valid YAML" in err


def test_unknown_key(tmp_path: Path, make_project: MakeProject) -> None:
    root = make_project(tmp_path, "name: shop\nsoruces: {}\n")
    err = assert_user_error(boite("run", cwd=root))
    assert "boite.yaml:2" in err
    assert "Did you mean 'sources'?" in err


def test_unknown_step_name(built: Path) -> None:
    err = assert_user_error(boite("run", "totls", cwd=built))
    assert "no step named 'totls'" in err
    assert "Did you mean 'totals'?" in err


def test_missing_table(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop", totals=TOTALS.replace("FROM orders", "FROM ordrs"))
    err = assert_user_error(boite("run", cwd=root))
    assert "transforms/totals.sql:3" in err
    assert "'ordrs'" in err
    assert "Did you mean 'orders'?" in err


def test_sql_syntax_error(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop", totals=TOTALS.replace("FROM", "FRM"))
    result = boite("run", cwd=root)
    assert result.returncode == 2, output(result)
    assert "Traceback" not in output(result)
    assert "transforms/totals.sql:3:" in result.stderr


def test_failing_check(tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(make_project, tmp_path / "shop", totals="SELECT * FROM orders WHERE amount > 99\n")
    result = boite("run", cwd=root)
    assert result.returncode == 2, output(result)
    text = output(result)
    assert "Traceback" not in text
    assert "totals failed" in text
    assert "data check failed on 'totals'" in text
    assert "row_count" in text
    status = boite("status", cwd=root)
    assert status.returncode == 0
    assert re.search(r"^totals\s.*failed", status.stdout, re.M), status.stdout


def test_source_error(tmp_path: Path, make_project: MakeProject) -> None:
    root = make_project(
        tmp_path,
        SHOP,
        transforms={"totals.sql": TOTALS},
        files={"data/orders.csv": "id,amount\n1,10\n2,20,30\n"},
    )
    result = boite("run", cwd=root)
    assert result.returncode == 2, output(result)
    assert "Traceback" not in output(result)
    assert "data/orders.csv, line 3" in output(result)
    assert "totals did not run" in result.stdout


# --- quickstart ---------------------------------------------------------------------------


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    result = boite("quickstart", "qs", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "Traceback" not in output(result)
    assert "Try next" in result.stdout
    assert "cd qs" in result.stdout
    for name in ("transactions", "customer_daily", "customer_activity", "repurchase_labels"):
        assert name in result.stdout
    assert "69,659" in result.stdout
    folder = tmp_path / "qs"
    assert (folder / "boite.yaml").is_file()
    assert (folder / ".boite" / "ledger.db").is_file()

    again = boite("quickstart", "qs", cwd=tmp_path)
    assert again.returncode == 0, output(again)
    assert re.search(r"Nothing to do: all \d+ steps are up to date\.", again.stdout)
    assert "Try next" in again.stdout

    status = boite("status", cwd=folder)
    assert status.returncode == 0
    # status agrees with the run that said there was nothing to do.
    assert re.search(r"All \d+ steps are up to date\.", status.stdout), status.stdout


def test_quickstart_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    err = assert_user_error(boite("quickstart", "taken", cwd=tmp_path))
    assert "--force" in err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
