"""Promotion judges the beat-production gate against the production model of that moment.

A version's verdict is stored when it is trained, against the production model of
then. When production has moved since (a promotion, a rollback, a first production
model), promoting it to a gated alias judges that gate again on its own test rows,
rebuilt from its recorded training data; the fresh verdict decides and is kept on the
alias move, and the version's record stays as it was.

One small project (3,000 rows of UCI Adult) is trained once per module, four times:
income@1 weak, promoted; income@2 strong and income@3 medium, both judged against @1
and passing; @2 promoted; income@4 (between @3 and @2) judged against @2 and failing.
Tests that move aliases work on a copy. Recommenders use synthetic implicit feedback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import boite
from boite.core import ledger_schema as t
from boite.errors import RegistryError
from boite.pipeline.project import Project

MakeProject = Callable[..., Path]

ADULT = Path(__file__).resolve().parents[2] / "examples/income/data/adult/adult.csv.gz"
BOITE = Path(sys.executable).parent / "boite"

INCOME = """\
name: adult
sources:
  people: {path: data/people.csv}
models:
  income:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age, workclass, education_num, marital_status, occupation, sex, hours_per_week,
               capital_gain]
    params: PARAMS
    gates: {roc_auc: ">= 0.6", beat_production_by: 0.0}
    business: {value_true_positive: 10, cost_false_positive: 2}
"""
WEAK, STRONG, MEDIUM, BETWEEN = (
    "{n_estimators: 2, num_leaves: 2}",
    "{n_estimators: 30, num_leaves: 15}",
    "{n_estimators: 3, num_leaves: 3}",
    "{n_estimators: 5, num_leaves: 4}",
)


def reopen(project: Project, yaml_text: str) -> Project:
    root = project.root
    project.close()
    (root / "boite.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    return boite.open_project(root)


def with_params(project: Project, params: str) -> Project:
    return reopen(project, INCOME.replace("PARAMS", params))


def beat(gates: dict[str, Any]) -> dict[str, Any]:
    (result,) = [r for r in gates["results"] if r["gate"].startswith("beat production")]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Path:
    people = pd.read_csv(ADULT, nrows=3000).drop(columns=["split"]).to_csv(index=False)
    root = make_project(
        tmp_path_factory.mktemp("promotion") / "adult",
        INCOME.replace("PARAMS", WEAK),
        files={"data/people.csv": people},
    )
    project = boite.open_project(root)
    project.run()
    assert project.train("income").gates.passed
    project.promote("income@1", to="production", reason="first model")
    for params in (STRONG, MEDIUM):
        project = with_params(project, params)
        result = project.train("income")
        assert result.gates.passed, result.gates.to_dict()  # both beat @1
    project.promote("income@2", to="production", reason="the strong one")
    project = with_params(project, BETWEEN)
    between = project.train("income")
    assert between.version.ref == "income@4" and not between.gates.passed  # below @2
    auc = [project.model(f"income@{v}").metrics["roc_auc"] for v in (1, 2, 3, 4)]
    # weak < medium < between < strong, all on the same test rows
    assert auc[0] < auc[2] < auc[3] < auc[1], auc
    project.close()
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "adult"
    shutil.copytree(trained, root)
    opened = boite.open_project(root)
    yield opened
    opened.close()


def test_a_pass_against_a_gone_production_is_judged_again_and_refused(project: Project) -> None:
    """@3 beat @1 when trained; production is now @2, which it does not beat."""
    third = project.model("income@3")
    assert third.gates["passed"] is True
    assert third.meta["production_baseline"]["version"] == "income@1"
    # the project's spec changed since: the re-judge splits as income@3 was split
    project = reopen(
        project,
        INCOME.replace("PARAMS", WEAK).replace(
            "params:", "split: {test_size: 0.4, seed: 7}\n    params:"
        ),
    )
    with pytest.raises(RegistryError) as info:
        project.promote("income@3", to="production", reason="cheaper")
    message, hint = str(info.value.message), info.value.hint or ""
    assert message.startswith("income@3 failed its gates, so it cannot become production")
    assert "vs production income@2" in message and "not better by -" in message
    assert "judged again against production income@2" in message
    assert "when it was trained, it was income@1" in message
    assert "Retrain income" in hint and "--force" in hint
    # a challenger need not beat production (live traffic will tell): no re-judge
    seat = project.promote("income@3", to="challenger", reason="try")
    assert not seat.forced and "rejudged_against" not in (seat.details or {})
    assert not project.promote("income@3", to="staging", reason="look").forced  # not gated
    with pytest.raises(RegistryError, match="needs a reason"):
        project.promote("income@3", to="production", reason=" ", force=True)

    forced = project.promote("income@3", to="production", reason="cheaper", force=True)
    assert forced.forced and (forced.previous_version, forced.version) == (2, 3)
    details = forced.details or {}
    assert details["rejudged_against"] == "income@2"
    assert details["stale_baseline"] == "income@1"
    assert details["gates"]["passed"] is False
    assert not beat(details["gates"])["passed"]
    # thresholds keep their stored result
    assert [r for r in details["gates"]["results"] if r["gate"] == "roc_auc >= 0.6"] == [
        r for r in third.gates["results"] if r["gate"] == "roc_auc >= 0.6"
    ]
    # income@2 was scored on the test rows income@3 was tested on: every version of this
    # module shares them, so its metrics there are its own stored ones
    second = project.model("income@2").metrics
    for key in ("roc_auc", "log_loss", "business_value"):
        assert details["production_metrics"][key] == pytest.approx(second[key], abs=1e-12)
    # the version's record is as it was
    assert project.model("income@3").meta == third.meta
    (event,) = [e for e in project.models.registry.history("income") if e.forced]
    assert event.details == details and event.reason == "cheaper"


def test_a_failure_against_a_gone_production_passes_after_a_rollback(project: Project) -> None:
    """@4 failed against @2; production rolls back to @1, then moves to @3."""
    fourth = project.model("income@4")
    assert fourth.gates["passed"] is False
    assert project.rollback("income", reason="@2 misbehaves").version == 1

    # @3 was judged against @1, which is production again: its stored verdict holds
    same = project.promote("income@3", to="production", reason="medium")
    assert same.details == {"gates": project.model("income@3").gates}

    # @4 was judged against @2; against @3 it passes, no force needed
    event = project.promote("income@4", to="production", reason="better than @3")
    assert not event.forced
    details = event.details or {}
    assert (details["rejudged_against"], details["stale_baseline"]) == ("income@3", "income@2")
    assert details["gates"]["passed"] is True
    assert "vs production income@3" in beat(details["gates"])["message"]
    assert project.model("income@4").gates == fourth.gates  # stored verdict unchanged

    history = project.models.registry.history("income", alias="production")
    assert [e.version for e in history] == [1, 2, 1, 3, 4]


def test_no_production_then_one_now_is_judged_again(project: Project) -> None:
    """@1 was trained with nothing to beat; production is now @2."""
    assert project.model("income@1").meta["production_baseline"] is None
    with pytest.raises(RegistryError) as info:
        project.promote("income@1", to="production", reason="back to the first")
    assert "vs production income@2" in info.value.message
    assert "when it was trained, there was none" in info.value.message
    # the version already in production is not judged against itself
    again = project.promote("income@2", to="production", reason="again")
    assert "rejudged_against" not in (again.details or {})


def test_test_rows_that_cannot_be_rebuilt_refuse_with_retrain(project: Project) -> None:
    """A recorded split that re-splitting does not reproduce: nothing is compared."""
    third = project.model("income@3")
    meta = dict(third.meta)
    meta["split"] = {**meta["split"], "test_rows_sha256": "0" * 64}
    with project.ledger.engine.begin() as conn:
        conn.execute(
            sa.update(t.artifacts).where(t.artifacts.c.id == third.record.id).values(meta=meta)
        )
    with pytest.raises(RegistryError) as info:
        project.promote("income@3", to="production", reason="x")
    message = info.value.message
    assert "the test rows of income@3 cannot be rebuilt exactly from people@1" in message
    assert "test_rows_sha256 is" in message
    assert "retrain income to judge it against income@2" in message
    forced = project.promote("income@3", to="production", reason="data is gone", force=True)
    assert forced.forced and "production_metrics" not in (forced.details or {})


# --- the command line -------------------------------------------------------------------


def boite_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOITE_DEBUG", "COLUMNS")}
    env["COLUMNS"] = "250"  # tables keep their rows on one line
    return subprocess.run(
        [str(BOITE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=180
    )


def test_cli_promote_history_and_show_carry_the_fresh_verdict(project: Project) -> None:
    root = project.root
    project.close()
    promote = ("models", "promote", "income@3", "--to", "production", "--reason", "cheaper")
    refused = boite_cli(*promote, cwd=root)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    err = " ".join(refused.stderr.split())
    assert err.startswith("error: income@3 failed its gates, so it cannot become production")
    assert "judged again against production income@2" in err and "Retrain income" in err

    forced = boite_cli(*promote, "--force", cwd=root)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    lines = forced.stdout.splitlines()
    assert lines[0] == "income production: @2 -> @3 (FORCED past failed gates)"
    assert "judged against production income@2 (when trained: income@1), FAILED" in lines[1]
    assert "FAIL `beat production on roc_auc by 0`: roc_auc" in lines[2]

    history = boite_cli("models", "history", "income", cwd=root)
    assert history.returncode == 0, history.stdout + history.stderr
    (row,) = [line for line in history.stdout.splitlines() if "cheaper" in line]
    assert "FAIL, re-judged vs income@2" in row and "yes" in row
    assert "Gates judged again at promotion (production had moved):" in history.stdout

    show = boite_cli("models", "show", "income@3", cwd=root)
    assert show.returncode == 0, show.stdout + show.stderr
    assert "## Gates — passed" in show.stdout  # the stored verdict, as trained
    assert "## Gates judged again at promotion" in show.stdout
    assert "judged against production income@2 (when trained: income@1), FAILED" in show.stdout


# --- recommenders --------------------------------------------------------------------------

RATINGS = """\
name: movies
sources:
  ratings: {path: data/ratings.csv}
models:
  films:
    task: recommendation
    label: {dataset: ratings, column: rating}
    user: user_id
    item: item_id
    features: [user_id, item_id]
    k: 10
    split: SPLIT
    algorithm: ALGO
    params: PARAMS
    gates: {beat_production_by: 0.0}
"""


def films(split: str, algorithm: str, params: str = "{}") -> str:
    return RATINGS.replace("SPLIT", split).replace("ALGO", algorithm).replace("PARAMS", params)


def synthetic_ratings(users: int = 400, items: int = 300, seed: int = 7) -> pd.DataFrame:
    """Implicit feedback with a planted taste structure: each user favours one of five
    item groups (real rating sets such as MovieLens may not be shipped with the repo)."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 5, users)
    rows = []
    for user in range(users):
        liked = np.flatnonzero(np.arange(items) % 5 == taste[user])
        chosen = np.concatenate(
            [rng.choice(liked, 25, replace=False), rng.choice(items, 15, replace=False)]
        )
        rows += [(user, int(item), 1) for item in np.unique(chosen)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


def test_recommenders_are_judged_again_only_on_the_same_held_out_interactions(
    tmp_path: Path, make_project: MakeProject
) -> None:
    ratings = synthetic_ratings()
    root = make_project(
        tmp_path / "movies",
        films("{test_size: 0.2}", "popularity"),
        files={"data/ratings.csv": ratings.to_csv(index=False)},
    )
    project = boite.open_project(root)
    project.run()
    project.train("films")
    project.promote("films@1", to="production", reason="first")
    als = "{factors: 8, iterations: 3}"
    for params in (als, "{factors: 16, iterations: 3}"):
        project = reopen(project, films("{test_size: 0.2}", "als", params))
        project.train("films")  # @2, @3: judged against @1 on the same held-out interactions
    project = reopen(project, films("{test_size: 0.3}", "popularity"))
    other = project.train("films").version  # @4: another split, so nothing was compared
    assert other.ref == "films@4" and other.meta["production_baseline"] is None

    project.promote("films@2", to="production", reason="als")
    # @3 against @2: the same split of the same data, so @2's own metrics are comparable
    third, second = project.model("films@3"), project.model("films@2")
    gain = third.metrics["precision_at_10"] - second.metrics["precision_at_10"]
    if gain >= 0:
        event = project.promote("films@3", to="production", reason="bigger")
        assert beat(event.details["gates"])["passed"]  # type: ignore[index]
    else:
        with pytest.raises(RegistryError, match="vs production films@2"):
            project.promote("films@3", to="production", reason="bigger")
    now = project.models.registry.alias("films", "production")
    assert now is not None
    # @4 against production: another split, other held-out interactions: refused
    with pytest.raises(RegistryError) as info:
        project.promote("films@4", to="production", reason="other split")
    message = info.value.message
    assert "their held-out interactions differ" in message
    assert f"retrain films to judge it against {now.ref}" in message
    project.close()
