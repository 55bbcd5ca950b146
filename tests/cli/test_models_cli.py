"""`boite train` and `boite models ...` through the real console script.

One small project (3,000 rows of UCI Adult) is trained once per module: income@1 by
`boite train --trials 2`, promoted to production, then income@2 (a much weaker model,
refused by its beat-production gate). The read-only commands run on it first; the
alias moves run last, in order, in one test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

import boite

MakeProject = Callable[..., Path]

BOITE = Path(sys.executable).parent / "boite"
ADULT = Path(__file__).resolve().parents[2] / "examples/income/data/adult/adult.csv.gz"

PROJECT = """\
name: adult
sources:
  people: {path: data/people.csv}
models:
  income:
    task: binary_classification
    description: Whether a person earns more than 50K a year
    label: {dataset: people, column: income}
    features: [age, workclass, education_num, marital_status, occupation, sex, hours_per_week]
    params: {n_estimators: 20}
    search: {trials: 5, space: {num_leaves: [4, 31]}}
    gates: {roc_auc: ">= 0.75", beat_production_by: 0.0}
    business: {value_true_positive: 10, cost_false_positive: 2}
"""


def boite_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOITE_DEBUG", "COLUMNS")}
    env["COLUMNS"] = "200"  # tables keep their rows on one line
    return subprocess.run(
        [str(BOITE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=180
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def user_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, one paragraph on stderr, no traceback; returns stderr."""
    assert result.returncode == 2, output(result)
    assert "Traceback" not in output(result)
    err = result.stderr.strip()
    assert err.startswith("error:"), err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Path:
    people = pd.read_csv(ADULT, nrows=3000).drop(columns=["split"]).to_csv(index=False)
    root = make_project(
        tmp_path_factory.mktemp("cli-models") / "adult",
        PROJECT,
        files={"data/people.csv": people},
    )
    project = boite.open_project(root)
    project.run()
    project.close()
    result = boite_cli("train", "income", "--trials", "2", cwd=root)
    assert result.returncode == 0, output(result)
    (root / "train-1.txt").write_text(result.stdout)
    project = boite.open_project(root)
    project.promote("income@1", to="production", reason="first model")
    project.close()
    weaker = PROJECT.replace("{n_estimators: 20}", "{n_estimators: 2, num_leaves: 3}")
    (root / "boite.yaml").write_text(textwrap.dedent(weaker))
    result = boite_cli("train", "income", "--trials", "0", cwd=root)
    assert result.returncode == 0, output(result)  # registered, refused only at promotion
    (root / "train-2.txt").write_text(result.stdout)
    return root


def test_train_prints_the_version_search_business_value_and_gates(trained: Path) -> None:
    first = (trained / "train-1.txt").read_text()
    assert re.search(r"income@1 registered roc_auc=0\.\d+", first), first
    assert "search: 2/2 trials complete, best roc_auc" in first
    assert "business value on the test rows:" in first
    assert "gate pass roc_auc >= 0.75" in first
    assert "income@1 may be promoted to production." in first
    project = boite.open_project(trained)
    trials = [r for r in project.ledger.runs() if r.kind == "trial"]
    assert len(trials) == 2  # --trials 2 overrides search.trials: 5
    project.close()
    second = (trained / "train-2.txt").read_text()
    assert "income@2 registered" in second and "search:" not in second
    assert "gate FAIL beat production on roc_auc by 0" in second
    assert "vs production income@1" in second
    assert (
        "income@2 failed its gates: it cannot be promoted to production without --force" in second
    )


def test_models_list(trained: Path) -> None:
    result = boite_cli("models", "list", cwd=trained)
    assert result.returncode == 0, output(result)
    lines = result.stdout.splitlines()
    (one,) = [line for line in lines if "@1" in line]
    (two,) = [line for line in lines if "@2" in line]
    assert "income" in one and "production" in one and "pass" in one and "roc_auc=" in one
    assert "fail" in two and "production" not in two


def test_models_show(trained: Path) -> None:
    result = boite_cli("models", "show", "income@2", cwd=trained)
    assert result.returncode == 0, output(result)
    text = result.stdout
    assert text.startswith("# Model card: income@2")
    assert "## Gates — FAILED" in text and "FAIL `beat production on roc_auc by 0`" in text
    assert "Production income@1 on the same test rows:" in text
    assert "- **Training data:** people@1 (label `income`)" in text


def test_models_card_html(trained: Path) -> None:
    result = boite_cli("models", "card", "income@1", "-o", "card.html", cwd=trained)
    assert result.returncode == 0, output(result)
    assert "wrote card.html" in result.stdout
    page = (trained / "card.html").read_text()
    assert page.startswith("<!doctype html>") and "<h1>Model card: income@1</h1>" in page
    assert "<h2>Business value</h2>" in page and "<h2>Calibration</h2>" in page
    assert "Aliases now: production" in page


def test_models_compare(trained: Path) -> None:
    result = boite_cli("models", "compare", "income@1", "income@2", cwd=trained)
    assert result.returncode == 0, output(result)
    text = result.stdout
    assert "income@1" in text and "income@2" in text
    (auc,) = [line for line in text.splitlines() if line.strip().startswith("roc_auc")]
    assert len(re.findall(r"0\.\d+", auc)) == 2
    (leaves,) = [line for line in text.splitlines() if "param num_leaves" in line]
    assert leaves.split()[-1] == "3"
    (gates,) = [line for line in text.splitlines() if line.strip().startswith("gates")]
    assert gates.replace("│", " ").split()[1:] == ["pass", "fail"]


def test_promote_force_rollback_and_history(trained: Path) -> None:
    refused = boite_cli(
        "models", "promote", "income@2", "--to", "production", "--reason", "cheaper", cwd=trained
    )
    err = user_error(refused)
    assert "income@2 failed its gates, so it cannot become production" in err
    assert "vs production income@1" in err and "--force" in err

    missing = boite_cli(
        "models", "promote", "income@9", "--to", "production", "--reason", "x", cwd=trained
    )
    assert "the model 'income' has no version 9" in user_error(missing)

    forced = boite_cli(
        "models",
        "promote",
        "income@2",
        "--to",
        "production",
        "--reason",
        "cheaper to serve",
        "--force",
        cwd=trained,
    )
    assert forced.returncode == 0, output(forced)
    assert "income production: @1 -> @2 (FORCED past failed gates)" in forced.stdout

    back = boite_cli("models", "rollback", "income", "--reason", "too weak", cwd=trained)
    assert back.returncode == 0, output(back)
    assert "income production: @2 -> @1 (too weak)" in back.stdout

    project = boite.open_project(trained)
    events = project.models.registry.history("income")
    run_id = project.model("income@2").record.run_id
    project.close()
    assert [(e.version, e.forced) for e in events] == [(1, False), (2, True), (1, False)]
    while_forced = (events[1].at + timedelta(microseconds=1)).isoformat()
    history = boite_cli("models", "history", "income", "--at", while_forced, cwd=trained)
    assert history.returncode == 0, output(history)
    rows = [line for line in history.stdout.splitlines() if "production" in line]
    assert "cheaper to serve" in rows[1] and "yes" in rows[1]  # forced, shown
    assert "first model" in rows[0] and "yes" not in rows[0]
    assert "too weak" in rows[2]
    assert (
        f"production at {while_forced}: income@2, on people@1, trained by run {run_id[:8]}"
        in history.stdout
    )

    bad = boite_cli("models", "history", "income", "--at", "yesterday", cwd=trained)
    assert "--at 'yesterday' is not an ISO date or time" in user_error(bad)


def test_training_an_unknown_model_is_a_user_error(trained: Path) -> None:
    err = user_error(boite_cli("train", "incom", cwd=trained))
    assert "no model named 'incom'" in err and "Did you mean 'income'?" in err
