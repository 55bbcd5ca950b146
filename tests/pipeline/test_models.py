"""Models through the Project API, on small real projects built from UCI Adult rows.

Training on the columns of one dataset and on a feature view (point in time), what a
version records (params, features, signature, metrics, lineage, trials in the ledger),
gates against production on the same test rows, fairness limits, promotion, rollback,
history and ``alias_at``, tampered model files, and every bad input the issue lists.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import boite
from boite.core.ledger import SUCCEEDED, NewArtifact
from boite.errors import (
    ArtifactIntegrityError,
    ConfigError,
    RegistryError,
    TrainingError,
    UserError,
)
from boite.pipeline.project import Project
from boite.training.metrics import task_metrics
from boite.training.split import split_frame

MakeProject = Callable[..., Path]

ADULT = Path(__file__).resolve().parents[2] / "examples/income/data/adult/adult.csv.gz"
ROWS = 3000

INCOME = """\
name: adult
sources:
  people: {path: data/people.csv}
models:
  income:
    task: binary_classification
    description: Whether a person earns more than 50K a year
    intended_use: Tests of boite
    owner: tests
    label: {dataset: people, column: income}
    features: ["*"]
    exclude: [fnlwgt, education, cohort, band]
    params: {n_estimators: 20}
    search: {trials: 3, space: {num_leaves: [4, 31]}}
    gates: {roc_auc: ">= 0.8", beat_production_by: 0.0}
    business: {value_true_positive: 10, cost_false_positive: 2}
    slices: [sex]
  income_fair:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age, education_num, hours_per_week, marital_status, sex]
    params: {n_estimators: 20}
    fairness: {sensitive: [sex, race], max_demographic_parity_difference: 0.05}
  income_lr:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age, education_num, hours_per_week, capital_gain, workclass]
    algorithm: sklearn:sklearn.linear_model.LogisticRegression
    params: {solver: liblinear}
  race:
    task: multiclass
    label: {dataset: people, column: race}
    features: [age, education_num, hours_per_week, occupation, native_country]
    params: {n_estimators: 20}
    search: {trials: 3, space: {num_leaves: [4, 31]}}
  hours:
    task: regression
    label: {dataset: people, column: hours_per_week}
    features: [age, education_num, occupation, sex, marital_status]
    params: {n_estimators: 20}
  # bad specs: each fails with its own message
  typo_label:
    task: binary_classification
    label: {dataset: people, column: incme}
    features: ["*"]
  constant_label:
    task: binary_classification
    label: {dataset: people, column: cohort}
    features: [age]
  no_features:
    task: binary_classification
    label: {dataset: people, column: income}
    features: ["*"]
    exclude: [age, workclass, fnlwgt, education, education_num, marital_status, occupation,
              relationship, race, sex, capital_gain, capital_loss, hours_per_week,
              native_country, cohort, band]
  typo_algorithm:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age]
    algorithm: lightgmb
  typo_param:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age]
    params: {n_estimators: 20, num_leafs: 8}
  sklearn_kwarg:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age]
    algorithm: sklearn:sklearn.linear_model.LogisticRegression
    params: {depth: 3}
  rare_class:
    task: multiclass
    label: {dataset: people, column: workclass}
    features: [age, education_num]
    params: {n_estimators: 20}
  three_values:
    task: binary_classification
    label: {dataset: people, column: band}
    features: [education_num]
  text_regression:
    task: regression
    label: {dataset: people, column: income}
    features: [age]
  typo_exclude:
    task: binary_classification
    label: {dataset: people, column: income}
    features: ["*"]
    exclude: [fnlwgtt]
"""


def adult_rows(n: int = ROWS) -> pd.DataFrame:
    frame = pd.read_csv(ADULT, nrows=n).drop(columns=["split"])
    frame["cohort"] = "2024"  # a constant column
    frame["band"] = np.select([frame["age"] < 30, frame["age"] < 50], ["young", "mid"], "old")
    return frame


def people_csv() -> str:
    frame = adult_rows()
    # every 10th person has no known income: these rows are not examples
    frame.loc[frame.index[::10], "income"] = None
    return frame.to_csv(index=False)


def build(make_project: MakeProject, root: Path, yaml_text: str = INCOME) -> Project:
    make_project(root, yaml_text, files={"data/people.csv": people_csv()})
    project = boite.open_project(root)
    project.run()
    return project


def reopen(project: Project, yaml_text: str | None = None) -> Project:
    """The project again from its folder (optionally with a new boite.yaml)."""
    root = project.root
    project.close()
    if yaml_text is not None:
        (root / "boite.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    return boite.open_project(root)


def trial_runs(project: Project, run_id: str) -> list[Any]:
    return [
        r
        for r in project.ledger.runs()
        if r.kind == "trial" and r.params.get("parent_run") == run_id
    ]


def held_out(project: Project, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out rows of a model trained on `people`, split again from the spec."""
    cfg = project.config.models[name]
    frame = project.dataset("people").to_pandas()
    label = cfg.label.column
    frame = frame[frame[label].notna()].reset_index(drop=True)
    _, test, _ = split_frame(
        frame, cfg.split, model=name, label=label, time_column=None, classification=True
    )
    return frame[test], test


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject
) -> Iterator[tuple[Project, Any]]:
    """The project with `income` trained once; tests that change it work on a copy."""
    project = build(make_project, tmp_path_factory.mktemp("models") / "adult")
    result = project.train("income")
    yield project, result
    project.close()


@pytest.fixture
def scratch(built: tuple[Project, Any], tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "adult"
    shutil.copytree(built[0].root, root)
    project = boite.open_project(root)
    yield project
    project.close()


# --- what a version records ---------------------------------------------------------------


def test_train_registers_a_version_with_its_record(built: tuple[Project, Any]) -> None:
    project, result = built
    version = result.version
    assert version.ref == "income@1" and result.new
    assert project.model("income") == project.model("income@1") == version
    meta = version.meta
    assert meta["task"] == "binary_classification" and meta["algorithm"] == "lightgbm"
    assert meta["label"] == "income" and meta["classes"] == ["<=50K", ">50K"]
    expected = [
        "age",
        "workclass",
        "education_num",
        "marital_status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
        "native_country",
    ]
    assert meta["features"] == expected
    assert [i["name"] for i in meta["signature"]["inputs"]] == expected
    kinds = {i["name"]: i["type"] for i in meta["signature"]["inputs"]}
    assert kinds["age"] == "number" and kinds["sex"] == "category"
    assert meta["training_data"] == "people@1"
    assert meta["split"]["unlabelled_rows_dropped"] == ROWS // 10
    assert meta["split"]["train_rows"] + meta["split"]["test_rows"] == ROWS - ROWS // 10
    metrics = version.metrics
    assert metrics["roc_auc"] > 0.85
    assert {"pr_auc", "log_loss", "brier", "accuracy", "business_value"} <= set(metrics)
    assert metrics["rows"] == meta["split"]["test_rows"]
    assert meta["calibration"]["bins"] and "expected_calibration_error" in meta["calibration"]
    assert meta["business"]["best_value"] == metrics["business_value"]
    assert [s["slice"] for s in meta["slices"]["sex"]] == ["Female", "Male"]
    assert meta["gates"]["passed"] is True and result.gates.passed
    assert [g["gate"] for g in meta["gates"]["results"]] == [
        "roc_auc >= 0.8",
        "beat production on roc_auc by 0",
    ]
    assert meta["production_baseline"] is None
    assert meta["owner"] == "tests" and meta["description"].startswith("Whether")


def test_the_version_is_a_verified_file_with_lineage_and_resources(
    built: tuple[Project, Any],
) -> None:
    project, result = built
    record = result.version.record
    path = project.root / record.uri
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record.content_hash
    assert record.kind == "model" and record.run_id == result.run_id
    run = project.ledger.run(result.run_id)
    assert run.status == SUCCEEDED and run.kind == "train" and run.step == "train:income"
    assert run.code_fingerprint and len(run.code_fingerprint) == 64
    assert run.params["spec"]["algorithm"] == "lightgbm"
    assert run.wall_s > 0 and run.cpu_s > 0 and run.peak_rss_bytes > 0
    assert run.rows_in == ROWS
    # lineage: the run consumed the dataset version and produced the model version
    inputs = project.ledger.inputs_of(run.id)
    assert [(a.kind, a.ref) for a in inputs] == [("dataset", "people@1")]
    assert [a.ref for a in project.ledger.outputs_of(run.id)] == ["income@1"]
    assert [r.id for r in project.ledger.producers_of(record.id)] == [run.id]
    assert project.ledger.metrics(run.id)["roc_auc"] == result.version.metrics["roc_auc"]


def test_trials_are_runs_in_the_ledger_and_the_best_made_the_version(
    built: tuple[Project, Any],
) -> None:
    project, result = built
    trials = trial_runs(project, result.run_id)
    assert len(trials) == 3
    assert {t.step for t in trials} == {"train:income"}
    assert sorted(t.params["number"] for t in trials) == [0, 1, 2]
    assert all(t.status == "complete" and t.wall_s > 0 for t in trials)
    values = {t.id: project.ledger.metrics(t.id)["value"] for t in trials}
    best = max(trials, key=lambda t: values[t.id])
    params = {k: v for k, v in best.params.items() if k not in ("number", "parent_run")}
    assert result.version.meta["params"] == params
    search = result.version.meta["search"]
    assert search["metric"] == "roc_auc" and search["trials"] == search["complete"] == 3
    assert search["best"] == pytest.approx(values[best.id])


def test_each_trial_run_carries_its_own_times(built: tuple[Project, Any]) -> None:
    """A trial's run ends after it starts (by its wall time), and trials start one by one."""
    project, result = built
    trials = sorted(trial_runs(project, result.run_id), key=lambda r: r.params["number"])
    train_run = project.ledger.run(result.run_id)
    for trial in trials:
        assert train_run.started_at <= trial.started_at <= train_run.ended_at
        assert trial.ended_at is not None
        took = (trial.ended_at - trial.started_at).total_seconds()
        assert took == pytest.approx(trial.wall_s, abs=0.05), (trial.started_at, trial.ended_at)
    starts = [t.started_at for t in trials]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_the_reloaded_model_scores_the_test_rows_as_evaluated(built: tuple[Project, Any]) -> None:
    project, result = built
    predictor = project.models.predictor(result.version)
    rows, _ = held_out(project, "income")
    scores = predictor.scores(rows)
    y = (rows["income"] == ">50K").to_numpy().astype(int)
    again = task_metrics("binary_classification", y, scores)
    for key in ("roc_auc", "log_loss", "accuracy"):
        assert again[key] == pytest.approx(result.version.metrics[key], abs=1e-12)


def test_a_scikit_learn_model_and_a_regression(built: tuple[Project, Any]) -> None:
    project, _ = built
    lr = project.train("income_lr").version
    assert lr.meta["algorithm"] == "sklearn:sklearn.linear_model.LogisticRegression"
    assert lr.metrics["roc_auc"] > 0.75
    rows, _ = held_out(project, "income_lr")
    scores = project.models.predictor(lr).scores(rows)
    y = (rows["income"] == ">50K").to_numpy().astype(int)
    assert task_metrics("binary_classification", y, scores)["roc_auc"] == pytest.approx(
        lr.metrics["roc_auc"], abs=1e-12
    )
    hours = project.train("hours").version
    assert hours.meta["classes"] is None and "calibration" in hours.meta
    assert hours.meta["calibration"] is None
    assert hours.metrics["rmse"] < 12 and {"mae", "r2"} <= set(hours.metrics)


def test_a_multiclass_search_reports_its_lowest_log_loss_as_best(
    built: tuple[Project, Any],
) -> None:
    project, _ = built
    result = project.train("race")
    version = result.version
    assert version.meta["classes"] == sorted(adult_rows()["race"].unique())
    trials = trial_runs(project, result.run_id)
    values = {t.id: project.ledger.metrics(t.id)["value"] for t in trials}
    best = min(trials, key=lambda t: values[t.id])  # log_loss: lower is better
    params = {k: v for k, v in best.params.items() if k not in ("number", "parent_run")}
    assert version.meta["params"] == params
    assert version.meta["search"]["metric"] == "log_loss"
    assert version.meta["search"]["best"] == pytest.approx(values[best.id])


# --- fairness -------------------------------------------------------------------------------


def test_a_model_using_sex_fails_a_tight_fairness_limit(built: tuple[Project, Any]) -> None:
    project, _ = built
    result = project.train("income_fair")
    version = result.version
    assert not result.gates.passed and version.gates["passed"] is False
    failed = [r.message for r in result.gates.failed]
    assert any("demographic parity difference by sex is" in m for m in failed)
    fairness = version.meta["fairness"]
    # by each sensitive attribute and by their intersection
    assert {"×".join(g["attributes"]) for g in fairness["groups"]} == {"sex", "race", "sex×race"}
    assert {"sex", "race", "sex×race"} <= set(fairness["demographic_parity_difference"])
    # the reported gap is the one the decisions at 0.5 show on the test rows
    rows, _ = held_out(project, "income_fair")
    decided = project.models.predictor(version).scores(rows) >= 0.5
    rates = pd.Series(decided).groupby(rows["sex"].to_numpy()).mean()
    assert fairness["demographic_parity_difference"]["sex"] == pytest.approx(
        rates.max() - rates.min()
    )
    with pytest.raises(RegistryError, match="failed its gates") as info:
        project.promote(version.ref, to="production", reason="try")
    assert "demographic parity difference by sex" in info.value.message
    assert info.value.model_version == version.ref
    assert project.models.registry.alias("income_fair", "production") is None


# --- gates, promotion, rollback, history ---------------------------------------------------------


def test_promote_gates_force_rollback_and_history(scratch: Project) -> None:
    project = scratch
    registry = project.models.registry
    before = datetime.now(UTC)
    time.sleep(0.01)
    first = project.promote("income@1", to="production", reason="first model")
    assert (first.model, first.alias, first.version, first.previous_version) == (
        "income",
        "production",
        1,
        None,
    )
    assert not first.forced and first.details["gates"]["passed"] is True
    assert registry.alias("income", "production").ref == "income@1"

    # a much weaker model: it cannot beat production on the same test rows
    weaker = INCOME.replace("{n_estimators: 20}", "{n_estimators: 2, num_leaves: 3}", 1)
    project = reopen(project, weaker)
    registry = project.models.registry
    weak = project.train("income", trials=0)
    assert weak.version.ref == "income@2" and weak.new
    assert not weak.gates.passed
    (beat,) = [r for r in weak.gates.results if r.gate.startswith("beat production")]
    assert not beat.passed and "vs production income@1" in beat.message
    # production was scored on the candidate's own test rows: the same rows as its own test
    baseline = weak.version.meta["production_baseline"]
    assert baseline["version"] == "income@1"
    first_metrics = project.model("income@1").metrics
    for key in ("roc_auc", "log_loss", "accuracy", "business_value"):
        assert baseline["metrics"][key] == pytest.approx(first_metrics[key], abs=1e-12)

    with pytest.raises(RegistryError, match="income@2 failed its gates") as info:
        project.promote("income@2", to="production", reason="try")
    assert "beat" in str(info.value) or "production income@1" in str(info.value)
    assert "--force" in (info.value.hint or "")
    # a challenger is measured on live traffic: not beating production does not bar it
    assert not project.promote("income@2", to="challenger", reason="try").forced
    staged = project.promote("income@2", to="staging", reason="to look at it")
    assert not staged.forced  # staging is not gated
    with pytest.raises(RegistryError, match="reason"):
        project.promote("income@2", to="production", reason="  ", force=True)
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    forced = project.promote("income@2", to="production", reason="cheaper to serve", force=True)
    assert forced.forced and forced.previous_version == 1
    assert forced.details["gates"]["passed"] is False
    assert registry.alias("income", "production").version == 2

    # what was in production at each moment, and what trained it
    assert registry.alias_at("income", "production", before) is None
    assert registry.alias_at("income", "production", between) == 1
    assert registry.alias_at("income", "production", datetime.now(UTC)) == 2
    naive = between.replace(tzinfo=None)  # naive times are UTC
    assert registry.alias_at("income", "production", naive) == 1
    then = project.model(f"income@{registry.alias_at('income', 'production', between)}")
    trainer = project.ledger.run(then.record.run_id)
    assert trainer.step == "train:income"
    assert [a.ref for a in project.ledger.inputs_of(trainer.id)] == ["people@1"]

    back = project.rollback("income", reason="the cheap model misbehaves")
    assert (back.version, back.previous_version) == (1, 2)
    assert back.details == {"rollback_from": 2} and back.reason == "the cheap model misbehaves"
    assert registry.alias("income", "production").version == 1

    history = registry.history("income")
    assert [(e.alias, e.version, e.forced) for e in history] == [
        ("production", 1, False),
        ("challenger", 2, False),
        ("staging", 2, False),
        ("production", 2, True),
        ("production", 1, False),
    ]
    assert all(e.actor and e.at.tzinfo is not None for e in history)
    assert [e.reason for e in registry.history("income", alias="production")][:2] == [
        "first model",
        "cheaper to serve",
    ]
    project.close()


def test_retraining_the_same_spec_gives_the_same_version(scratch: Project) -> None:
    project = scratch
    project.promote("income@1", to="production", reason="first")
    again = project.train("income")
    assert not again.new and again.version.ref == "income@1"
    # equal to production on the same rows: a margin of 0 is met
    (beat,) = [r for r in again.gates.results if r.gate.startswith("beat production")]
    assert beat.passed, beat.message
    assert len(project.models.registry.versions("income")) == 1


def test_refused_promotions_and_rollbacks(scratch: Project) -> None:
    project = scratch
    with pytest.raises(RegistryError, match="no version 9") as info:
        project.promote("income@9", to="production", reason="x")
    assert "@1" in (info.value.hint or "")
    with pytest.raises(RegistryError, match="no model named 'incme'") as info:
        project.promote("incme@1", to="production", reason="x")
    assert "Did you mean 'income'?" in (info.value.hint or "")
    with pytest.raises(RegistryError, match="one version"):
        project.promote("income", to="production", reason="x")
    with pytest.raises(RegistryError, match="not an alias") as info:
        project.promote("income@1", to="prodution", reason="x")
    assert "Did you mean 'production'?" in (info.value.hint or "")
    with pytest.raises(RegistryError, match="needs a reason"):
        project.promote("income@1", to="production", reason="")
    with pytest.raises(RegistryError, match="never had a production version"):
        project.rollback("income")
    project.promote("income@1", to="production", reason="x")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        project.rollback("income")


def _fake_versions(project: Project, name: str, count: int) -> None:
    """Register model versions straight in the ledger: alias moves need no real model."""
    for i in range(count):
        run_id = project.ledger.start_run(f"train:{name}", "train")
        digest = hashlib.sha256(f"{name}{i}".encode()).hexdigest()
        project.ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            produced=[
                NewArtifact(
                    kind="model",
                    name=name,
                    content_hash=digest,
                    uri=f".boite/artifacts/{digest}.model.zip",
                    format="boite-model",
                    meta={"gates": {"passed": True, "results": []}},
                )
            ],
        )


def test_rolling_back_twice_walks_further_back(tmp_path: Path, make_project: MakeProject) -> None:
    """1 -> 2 -> 3 in production; rollback -> 2; rollback again -> 1, not forward to 3."""
    project = boite.open_project(make_project(tmp_path / "p", "name: p\n"))
    _fake_versions(project, "m", 3)
    for v in (1, 2, 3):
        project.promote(f"m@{v}", to="production", reason=f"v{v}")
    assert project.rollback("m", reason="bad").version == 2
    second = project.rollback("m", reason="still bad")
    assert second.version == 1, f"the second rollback went to m@{second.version}"
    project.close()


# --- tampered files ----------------------------------------------------------------------------


def _tamper(project: Project, ref: str) -> None:
    path = project.root / project.model(ref).record.uri
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_changed_model_file_is_refused_when_loaded_and_when_training(scratch: Project) -> None:
    project = scratch
    project.promote("income@1", to="production", reason="first")
    _tamper(project, "income@1")
    with pytest.raises(ArtifactIntegrityError, match="changed after it was written") as info:
        project.models.predictor(project.model("income@1"))
    assert info.value.uri == project.model("income@1").record.uri
    # training scores production on the new test rows: it must not load the changed file
    with pytest.raises(ArtifactIntegrityError):
        project.train("income", trials=0)
    failed = project.ledger.runs(step="train:income")[0]
    assert failed.status == "failed" and "changed after it was written" in failed.error


# --- a feature view, point in time ------------------------------------------------------------

VIEW = """\
name: fv
sources:
  people: {path: data/people.csv}
  outcomes: {path: data/outcomes.csv}
feature_views:
  person:
    entity: person_id
    timestamp: as_of
    source: people
    online: false
models:
  income:
    task: binary_classification
    label: {dataset: outcomes, column: income, timestamp: as_of}
    features: ["person:*"]
    params: {n_estimators: 20}
    search: {trials: 2, space: {num_leaves: [4, 31]}}
"""


def test_training_on_a_feature_view_is_point_in_time_correct(
    tmp_path: Path, make_project: MakeProject
) -> None:
    adult = adult_rows(2000)
    adult["person_id"] = [f"p{i}" for i in range(len(adult))]
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(adult)) % 28, unit="D")
    adult["as_of"] = day.strftime("%Y-%m-%d")
    features = ["age", "education_num", "hours_per_week", "occupation", "sex"]
    now = adult[["person_id", "as_of", *features]]
    # the same people a day later with values no row may see when it is labelled
    future = now.assign(
        as_of=(day + timedelta(days=1)).strftime("%Y-%m-%d"), age=999, hours_per_week=999
    )
    people = pd.concat([now, future]).to_csv(index=False)
    outcomes = adult[["person_id", "as_of", "income"]].to_csv(index=False)
    root = make_project(
        tmp_path / "fv",
        VIEW,
        files={"data/people.csv": people, "data/outcomes.csv": outcomes},
    )
    project = boite.open_project(root)
    project.run()
    result = project.train("income")
    version = result.version
    assert version.meta["features"] == features
    assert version.meta["feature_refs"] == ["person:*"]
    assert version.metrics["roc_auc"] > 0.8
    assert len(trial_runs(project, result.run_id)) == 2
    # lineage: train <- training set <- (labels, the view's dataset)
    (training_set,) = project.ledger.inputs_of(result.run_id)
    assert training_set.kind == "training_set"
    assert version.meta["training_data"] == training_set.ref
    upstream = project.ledger.inputs_of(training_set.run_id)
    assert {a.ref for a in upstream} == {"outcomes@1", "people@1"}
    frame = project.dataset(training_set.ref).to_pandas()
    assert len(frame) == 2000
    assert frame["age"].max() < 999 and frame["hours_per_week"].max() < 999
    project.close()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "error", "words"),
    [
        ("typo_label", TrainingError, ["'incme' is not in people@1", "Did you mean 'income'?"]),
        ("constant_label", TrainingError, ["'cohort' is constant"]),
        ("no_features", TrainingError, ["resolves to no column", "exclude"]),
        ("typo_algorithm", UserError, ["'lightgmb'", "Did you mean 'lightgbm'?"]),
        ("typo_param", TrainingError, ["model 'typo_param'", "'num_leafs'"]),
        ("sklearn_kwarg", TrainingError, ["model 'sklearn_kwarg'", "'depth'"]),
        ("rare_class", TrainingError, ["'Without-pay'", "test split"]),
        ("three_values", TrainingError, ["binary label has two values", "'band' has 3"]),
        ("text_regression", TrainingError, ["regression label must be numeric", "'income'"]),
    ],
)
def test_bad_specs_fail_with_a_clear_error_and_a_failed_run(
    built: tuple[Project, Any], model: str, error: type[Exception], words: list[str]
) -> None:
    project, _ = built
    with pytest.raises(error) as info:
        project.train(model)
    text = str(info.value)
    for word in words:
        assert word in text
    run = project.ledger.runs(step=f"train:{model}")[0]
    assert run.status == "failed" and words[0] in run.error
    assert project.models.registry.versions(model) == []


def test_a_misspelled_excluded_column_is_an_error_not_silence(
    built: tuple[Project, Any],
) -> None:
    """exclude: [fnlwgtt] would otherwise train on fnlwgt, the column meant to be left out."""
    project, _ = built
    cfg = project.config.models["typo_exclude"]
    with pytest.raises(TrainingError, match="'fnlwgtt'") as info:
        project.models.training_frame("typo_exclude", cfg)
    assert "Did you mean 'fnlwgt'?" in str(info.value)


SMALL = """\
name: small
sources:
  people: {{path: data/people.csv}}
models:
  m:
    task: {task}
    label: {{dataset: people, column: {label}}}
    features: [age, education_num, sex]
    params: {{n_estimators: 5}}
    {extra}
"""


@pytest.mark.parametrize(
    ("task", "label", "extra"),
    [
        (
            "regression",
            "hours_per_week",
            "fairness: {sensitive: [sex], max_demographic_parity_difference: 0.01}",
        ),
        (
            "multiclass",
            "race",
            "fairness: {sensitive: [sex], max_demographic_parity_difference: 0.01}",
        ),
        (
            "regression",
            "hours_per_week",
            "business: {value_true_positive: 10, cost_false_positive: 2}",
        ),
    ],
    ids=["fairness-regression", "fairness-multiclass", "business-regression"],
)
def test_fairness_or_business_on_a_task_they_do_not_apply_to_is_refused(
    tmp_path: Path, make_project: MakeProject, task: str, label: str, extra: str
) -> None:
    """A declared fairness limit must never pass a gate by being skipped in silence."""
    people = adult_rows(600).to_csv(index=False)
    text = SMALL.format(task=task, label=label, extra=extra)
    root = make_project(tmp_path / "small", text, files={"data/people.csv": people})
    section = extra.split(":")[0]
    project = None
    try:
        with pytest.raises(UserError, match=section) as info:
            project = boite.open_project(root)
            project.run()
            project.train("m")
        assert "binary_classification" in str(info.value)
    finally:
        if project is not None:
            project.close()


def test_an_unknown_model_name(built: tuple[Project, Any]) -> None:
    project, _ = built
    with pytest.raises(UserError, match="incom") as info:
        project.train("incom")
    assert "income" in str(info.value)


def test_a_search_space_of_the_wrong_shape_names_its_key(
    tmp_path: Path, make_project: MakeProject
) -> None:
    text = INCOME.replace("space: {num_leaves: [4, 31]}}", "space: {num_leaves: [31]}}", 1)
    root = make_project(tmp_path / "bad", text, files={"data/people.csv": "a\n1\n"})
    with pytest.raises(ConfigError) as info:
        boite.open_project(root)
    assert info.value.key == "models.income.search.space"
    assert "num_leaves" in str(info.value) and "[low, high]" in str(info.value)
