"""The training building blocks on small real data: split, preprocess, labels, metrics,
algorithms and ``train_model`` (search included), with every bad input the issue lists.

Data: the first 3,000 rows of UCI Adult (binary: income; multiclass: race, workclass)
and the 731 days of the UCI bike-sharing data set (regression: cnt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from boite.core.config import BusinessConfig, ModelConfig, SplitConfig, parse_config
from boite.errors import ConfigError, TrainingError, UserError
from boite.registry.modelfile import read_model, write_model
from boite.training.algorithms import FitData, get_algorithm
from boite.training.metrics import (
    business_value,
    calibration,
    slice_metrics,
    task_metrics,
)
from boite.training.predictor import Predictor
from boite.training.preprocess import Preprocessor
from boite.training.split import split_frame
from boite.training.trainer import Trained, encode_labels, train_model

REPO = Path(__file__).resolve().parents[2]
ADULT = REPO / "examples" / "income" / "data" / "adult" / "adult.csv.gz"
BIKE = REPO / "tests" / "data" / "bike_sharing" / "day.csv"  # SOURCE.txt beside it
ADULT_FEATURES = [
    "age",
    "workclass",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
]
FAST = {"n_estimators": 20}


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    frame = pd.read_csv(ADULT, nrows=3000).drop(columns=["split"])
    # a time column for time splits: one row a day
    frame["day"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="D")
    return frame


@pytest.fixture(scope="module")
def bike() -> pd.DataFrame:
    return pd.read_csv(BIKE, parse_dates=["dteday"])


def spec(**fields: Any) -> ModelConfig:
    body: dict[str, Any] = {
        "task": "binary_classification",
        "label": {"dataset": "adult", "column": "income"},
        "features": ["*"],
        "params": dict(FAST),
    }
    body.update(fields)
    return ModelConfig.model_validate(body)


def train(frame: pd.DataFrame, cfg: ModelConfig, features: list[str], **kw: Any) -> Trained:
    label = cfg.label.column if cfg.label else None
    kw.setdefault("time_column", None)
    return train_model("m", cfg, frame, label=label, features=features, **kw)


# --- split ---------------------------------------------------------------------------


def test_random_split_is_stratified_disjoint_and_seeded(adult: pd.DataFrame) -> None:
    cfg = SplitConfig(test_size=0.25, seed=3)
    train_mask, test_mask, info = split_frame(
        adult, cfg, model="m", label="income", time_column=None, classification=True
    )
    assert not (train_mask & test_mask).any()
    assert (train_mask | test_mask).all()
    assert info["train_rows"] + info["test_rows"] == len(adult)
    assert info["test_rows"] == pytest.approx(0.25 * len(adult), abs=2)
    overall = (adult["income"] == ">50K").mean()
    in_test = (adult.loc[test_mask, "income"] == ">50K").mean()
    assert in_test == pytest.approx(overall, abs=0.005)  # stratified
    again, _, _ = split_frame(
        adult, cfg, model="m", label="income", time_column=None, classification=True
    )
    assert (again == train_mask).all()
    other, _, _ = split_frame(
        adult,
        SplitConfig(test_size=0.25, seed=4),
        model="m",
        label="income",
        time_column=None,
        classification=True,
    )
    assert not (other == train_mask).all()


def test_time_split_from_a_date_and_from_a_quantile(adult: pd.DataFrame) -> None:
    cut = pd.Timestamp("2027-01-01")
    cfg = SplitConfig(by="time", test_from=cut.to_pydatetime())
    train_mask, test_mask, info = split_frame(
        adult, cfg, model="m", label="income", time_column="day", classification=True
    )
    assert (adult.loc[test_mask, "day"] >= cut).all()
    assert (adult.loc[train_mask, "day"] < cut).all()
    assert info["by"] == "time" and info["column"] == "day"
    # a timezone-aware column against a naive test_from, and a quantile cut
    aware = adult.assign(day=adult["day"].dt.tz_localize("UTC"))
    _, test_aware, _ = split_frame(
        aware, cfg, model="m", label="income", time_column="day", classification=True
    )
    assert (test_aware == test_mask).all()
    _, test_q, info_q = split_frame(
        adult,
        SplitConfig(by="time", test_size=0.1),
        model="m",
        label="income",
        time_column="day",
        classification=True,
    )
    assert test_q[-300:].all() and not test_q[:-301].any()
    assert info_q["test_rows"] == pytest.approx(300, abs=1)


def test_group_split_keeps_each_group_on_one_side(adult: pd.DataFrame) -> None:
    cfg = SplitConfig(by="group", column="occupation", test_size=0.3, seed=1)
    train_mask, test_mask, info = split_frame(
        adult, cfg, model="m", label="income", time_column=None, classification=True
    )
    assert not set(adult.loc[train_mask, "occupation"]) & set(adult.loc[test_mask, "occupation"])
    assert info["test_groups"] == round(adult["occupation"].nunique() * 0.3)


def test_split_errors(adult: pd.DataFrame) -> None:
    late = SplitConfig(by="time", test_from=pd.Timestamp("2040-01-01").to_pydatetime())
    with pytest.raises(TrainingError, match="leaves the test part empty"):
        split_frame(adult, late, model="m", label="income", time_column="day", classification=True)
    with pytest.raises(TrainingError, match="no time column") as info:
        split_frame(
            adult,
            SplitConfig(by="time"),
            model="m",
            label="income",
            time_column=None,
            classification=True,
        )
    assert "label.timestamp" in (info.value.hint or "")
    with pytest.raises(TrainingError, match="at least two"):
        split_frame(
            adult.head(1),
            SplitConfig(),
            model="m",
            label="income",
            time_column=None,
            classification=True,
        )
    with pytest.raises(TrainingError, match="'nope'"):
        split_frame(
            adult,
            SplitConfig(by="group", column="nope"),
            model="m",
            label="income",
            time_column=None,
            classification=True,
        )


# --- preprocess ------------------------------------------------------------------------


def test_preprocessor_codes_categories_and_keeps_missing_values() -> None:
    frame = pd.DataFrame(
        {
            "colour": ["red", "blue", None, "green", "red"],
            "n": [1.0, np.nan, 3.0, 4.0, 5.0],
            "flag": [True, False, True, True, False],
            "when": pd.to_datetime(["1970-01-02", "1970-01-11", None, "2000-01-01", "1970-01-01"]),
        }
    )
    pre = Preprocessor.fit(frame, ["colour", "n", "flag", "when"], impute=False)
    assert pre.kinds == {"colour": "category", "n": "number", "flag": "bool", "when": "time"}
    assert pre.categories == {"colour": ["blue", "green", "red"]}
    assert pre.categorical == ["colour"]
    X = pre.transform(frame)
    assert X[:, 0].tolist()[:2] == [2.0, 0.0] and np.isnan(X[2, 0])
    assert np.isnan(X[1, 1]) and X[0, 1] == 1.0
    assert X[:, 2].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert X[0, 3] == 1.0 and X[1, 3] == 10.0 and np.isnan(X[2, 3])
    # a category unseen in training reads as missing, not as a new code
    unseen = pre.transform(frame.assign(colour=["purple", "red", "blue", "red", "red"]))
    assert np.isnan(unseen[0, 0]) and unseen[1, 0] == 2.0


@pytest.mark.filterwarnings("error")
def test_an_unseen_category_does_not_lean_on_deprecated_pandas_behaviour() -> None:
    """pandas 3.1 warns (pandas 4 will raise) when a Categorical gets values outside its
    categories: scoring a row with a new category must keep working on the next pandas."""
    pre = Preprocessor.fit(pd.DataFrame({"c": ["a", "b"]}), ["c"], impute=False)
    codes = pre.transform(pd.DataFrame({"c": ["b", "new", None]}))[:, 0]
    assert codes[0] == 1.0 and np.isnan(codes[1]) and np.isnan(codes[2])


def test_preprocessor_imputes_medians_for_algorithms_without_missing_values() -> None:
    frame = pd.DataFrame({"n": [1.0, np.nan, 3.0, 10.0], "c": ["a", "b", None, "b"]})
    pre = Preprocessor.fit(frame, ["n", "c"], impute=True)
    assert pre.impute == {"n": 3.0, "c": 1.0}
    X = pre.transform(frame)
    assert np.isfinite(X).all()
    assert X[1, 0] == 3.0 and X[2, 1] == 1.0


def test_preprocessor_round_trips_through_json_and_names_missing_columns() -> None:
    frame = pd.DataFrame({"n": [1.0, 2.0, np.nan], "c": ["x", "y", "x"]})
    pre = Preprocessor.fit(frame, ["n", "c"], impute=True)
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert back == pre
    assert np.array_equal(back.transform(frame), pre.transform(frame))
    with pytest.raises(TrainingError, match="'c'") as info:
        pre.transform(frame.drop(columns=["c"]))
    assert "n, c" in (info.value.hint or "")


# --- labels ----------------------------------------------------------------------------


def test_encode_labels_for_each_task() -> None:
    y, classes = encode_labels(
        "binary_classification", pd.Series([">50K", "<=50K", ">50K"]), model="m", column="y"
    )
    assert classes == ["<=50K", ">50K"] and y.tolist() == [1, 0, 1]
    y, classes = encode_labels("multiclass", pd.Series(["b", "c", "a", "b"]), model="m", column="y")
    assert classes == ["a", "b", "c"] and y.tolist() == [1, 2, 0, 1]
    y, classes = encode_labels("regression", pd.Series([1, 2, 5]), model="m", column="y")
    assert classes is None and y.dtype == np.float64 and y.tolist() == [1.0, 2.0, 5.0]


def test_a_constant_label_is_refused() -> None:
    with pytest.raises(TrainingError, match="'y' is constant") as info:
        encode_labels("binary_classification", pd.Series([1, 1, 1]), model="m", column="y")
    assert info.value.model == "m"
    with pytest.raises(TrainingError, match="all missing"):
        encode_labels("regression", pd.Series([None, None], dtype=float), model="m", column="y")


def test_a_binary_label_with_three_values_is_refused() -> None:
    with pytest.raises(TrainingError, match="two values; 'race' has 3") as info:
        encode_labels(
            "binary_classification", pd.Series(["a", "b", "c", "a"]), model="m", column="race"
        )
    assert "multiclass" in (info.value.hint or "")


def test_a_text_regression_label_is_refused() -> None:
    with pytest.raises(TrainingError, match="regression label must be numeric; 'income'"):
        encode_labels("regression", pd.Series(["<=50K", ">50K"]), model="m", column="income")


# --- metrics ---------------------------------------------------------------------------


def test_task_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    out = task_metrics("binary_classification", y, s)
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, s >= 0.5))
    assert out["brier"] == pytest.approx(skm.brier_score_loss(y, s))
    assert out["rows"] == 200 and out["positive_rate"] == pytest.approx(y.mean())
    probs = rng.dirichlet([1, 1, 1], 150)
    yc = rng.integers(0, 3, 150)
    multi = task_metrics("multiclass", yc, probs)
    assert multi["accuracy"] == pytest.approx(skm.accuracy_score(yc, probs.argmax(1)))
    assert multi["log_loss"] == pytest.approx(skm.log_loss(yc, probs))
    yr, pr = rng.normal(size=50), rng.normal(size=50)
    reg = task_metrics("regression", yr, pr)
    assert reg["rmse"] == pytest.approx(np.sqrt(np.mean((yr - pr) ** 2)))
    assert reg["mae"] == pytest.approx(np.mean(np.abs(yr - pr)))


def test_calibration_table_and_expected_error() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.92])
    out = calibration(y, s, bins=10)
    bins = {b["bin"]: b for b in out["bins"]}
    assert set(bins) == {0, 1, 9}  # 1.0 falls in the last bin
    assert bins[1]["rows"] == 2 and bins[1]["observed_rate"] == 0.5
    assert bins[9]["mean_score"] == pytest.approx((0.95 + 1.0 + 0.92) / 3)
    expected = (1 * 0.05 + 2 * abs(0.15 - 0.5) + 3 * abs((0.95 + 1.0 + 0.92) / 3 - 2 / 3)) / 6
    assert out["expected_calibration_error"] == pytest.approx(expected)


def _value(y: np.ndarray, decide: np.ndarray, table: BusinessConfig) -> float:
    tp = float(((decide == 1) & (y == 1)).sum())
    fp = float(((decide == 1) & (y == 0)).sum())
    fn = float(((decide == 0) & (y == 1)).sum())
    tn = float(((decide == 0) & (y == 0)).sum())
    return (
        tp * table.value_true_positive
        - fp * table.cost_false_positive
        - fn * table.cost_false_negative
        + tn * table.value_true_negative
    )


def _brute_force(y: np.ndarray, s: np.ndarray, table: BusinessConfig) -> float:
    # every distinct score as a threshold (score >= t acts), and acting on no one
    candidates = [*np.unique(s), np.inf]
    return max(_value(y, (s >= t).astype(int), table) for t in candidates)


def test_business_value_matches_a_brute_force_on_a_tiny_example() -> None:
    y = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.7, 0.4, 0.35, 0.2, 0.1])  # a tie at 0.7
    table = BusinessConfig(value_true_positive=10, cost_false_positive=4, cost_false_negative=1)
    out = business_value(y, s, table)
    # by hand (4 positives, 4 negatives): t=0.9 -> 10 - 3 = 7; t=0.7 (both tied rows act)
    # -> 20 - 8 - 2 = 10; t=0.35 -> 30 - 12 - 1 = 17; t=0.1 -> 40 - 16 = 24 (act on everyone)
    assert out["best_value"] == 24 == _brute_force(y, s, table)
    assert out["best_threshold"] == pytest.approx(0.1)
    assert out["value_at_0_5"] == _value(y, (s >= 0.5).astype(int), table) == 10
    assert out["value_acting_on_none"] == -4
    assert out["rows"] == 8 and out["value_per_1000"] == pytest.approx(24 / 8 * 1000)
    # costly false positives: the best cut is high, and the tie at 0.7 is decided together
    dear = BusinessConfig(value_true_positive=10, cost_false_positive=30)
    out = business_value(y, s, dear)
    assert out["best_value"] == _brute_force(y, s, dear) == 10
    assert out["best_threshold"] == pytest.approx(0.9)


def test_business_value_when_acting_on_no_one_is_best() -> None:
    y = np.array([0, 1, 0, 0])
    s = np.array([0.9, 0.6, 0.5, 0.1])
    table = BusinessConfig(value_true_positive=1, cost_false_positive=100, value_true_negative=1)
    out = business_value(y, s, table)
    assert out["best_value"] == out["value_acting_on_none"] == 3 == _brute_force(y, s, table)
    assert not (s >= out["best_threshold"]).any()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])),
        min_size=1,
        max_size=25,
    ),
    st.tuples(*[st.integers(0, 20)] * 4),
)
def test_business_value_is_the_brute_force_optimum(
    rows: list[tuple[int, float]], costs: tuple[int, int, int, int]
) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    table = BusinessConfig(
        value_true_positive=costs[0],
        cost_false_positive=costs[1],
        cost_false_negative=costs[2],
        value_true_negative=costs[3],
    )
    out = business_value(y, s, table)
    best = _brute_force(y, s, table)
    assert out["best_value"] == pytest.approx(best)
    # deciding at the reported threshold gives the reported value
    assert _value(y, (s >= out["best_threshold"]).astype(int), table) == pytest.approx(best)


def test_slice_metrics_per_value_and_quartiles() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"sex": ["F", "M"] * 50, "age": np.arange(100)})
    y = rng.integers(0, 2, 100)
    s = rng.random(100)
    out = slice_metrics("binary_classification", frame, y, s, ["sex", "age"])
    assert [r["slice"] for r in out["sex"]] == ["F", "M"]
    female = np.arange(100) % 2 == 0
    assert out["sex"][0]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[female], s[female]))
    assert out["sex"][0]["rows"] == 50
    assert len(out["age"]) == 4 and sum(r["rows"] for r in out["age"]) == 100


# --- algorithms ------------------------------------------------------------------------


def test_a_misspelled_algorithm_suggests_lightgbm() -> None:
    with pytest.raises(UserError) as info:
        get_algorithm("lightgmb", model="churn")
    text = str(info.value)
    assert "model 'churn'" in text and "'lightgmb'" in text
    assert "Did you mean 'lightgbm'?" in text
    assert "sklearn:" in text  # how to use any scikit-learn estimator


def test_an_estimator_path_that_does_not_import_or_fit() -> None:
    with pytest.raises(TrainingError, match="cannot import the estimator"):
        get_algorithm("sklearn:sklearn.linear_model.LogisticRegresion", model="m")
    with pytest.raises(TrainingError, match="no fit method"):
        get_algorithm("sklearn:json.JSONDecoder", model="m")


def _tiny_fit() -> FitData:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    return FitData(X, (X[:, 0] > 0).astype(int), ["a", "b"], [])


def test_lightgbm_rejects_an_unknown_parameter_with_model_key_and_suggestion() -> None:
    algo = get_algorithm("lightgbm", model="churn")
    with pytest.raises(TrainingError) as info:
        algo.fit(_tiny_fit(), task="binary_classification", params={"num_leafs": 8}, model="churn")
    assert "model 'churn'" in info.value.message and "'num_leafs'" in info.value.message
    assert info.value.model == "churn"
    assert "Did you mean 'num_leaf" in (info.value.hint or "")  # num_leaves or its alias
    assert "models.churn.params" in (info.value.hint or "")


def test_lightgbm_rejects_a_bad_value_with_its_own_message() -> None:
    algo = get_algorithm("lightgbm", model="churn")
    with pytest.raises(TrainingError, match="lightgbm rejected the parameters") as info:
        algo.fit(
            _tiny_fit(),
            task="binary_classification",
            params={"num_leaves": 1, "n_estimators": 2},
            model="churn",
        )
    assert "num_leaves" in info.value.message and "model 'churn'" in info.value.message


def test_a_scikit_learn_estimator_rejects_a_keyword() -> None:
    algo = get_algorithm("sklearn:sklearn.linear_model.LogisticRegression", model="churn")
    with pytest.raises(TrainingError) as info:
        algo.fit(_tiny_fit(), task="binary_classification", params={"strength": 2}, model="churn")
    message = info.value.message
    assert "model 'churn'" in message and "LogisticRegression" in message
    assert "'strength'" in message  # the estimator's own words name the key
    assert "models.churn.params" in (info.value.hint or "")
    with pytest.raises(TrainingError, match="The 'C' parameter of LogisticRegression"):
        algo.fit(_tiny_fit(), task="binary_classification", params={"C": -1.0}, model="churn")


# --- train_model: the tasks ----------------------------------------------------------------


def test_binary_lightgbm_on_adult(adult: pd.DataFrame) -> None:
    cfg = spec(
        business={"value_true_positive": 10, "cost_false_positive": 2},
        slices=["sex"],
    )
    trained = train(adult, cfg, ADULT_FEATURES)
    assert trained.classes == ["<=50K", ">50K"]
    assert trained.metrics["roc_auc"] > 0.85
    assert trained.metrics["rows"] == trained.split["test_rows"] == 600
    assert trained.params == FAST and trained.trials == []
    assert trained.preprocessor.impute is None  # LightGBM takes NaN as it is
    assert set(trained.preprocessor.categorical) == {
        "workclass",
        "marital_status",
        "occupation",
        "relationship",
        "sex",
    }
    assert trained.calibration is not None
    assert sum(b["rows"] for b in trained.calibration["bins"]) == 600
    assert trained.business is not None
    assert trained.metrics["business_value"] == trained.business["best_value"]
    assert [r["slice"] for r in trained.slices["sex"]] == ["Female", "Male"]
    # the test rows are the frame's rows at test_index, scored as predict() scores them
    rows = adult.iloc[trained.test_index]
    assert np.array_equal(trained.test_y, (rows["income"] == ">50K").to_numpy().astype(int))
    assert np.allclose(trained.predict(rows), trained.test_scores)


def test_unlabelled_rows_are_dropped_and_test_index_points_into_the_frame(
    adult: pd.DataFrame,
) -> None:
    frame = adult.copy()
    frame.loc[frame.index[::5], "income"] = None
    trained = train(frame, spec(), ADULT_FEATURES)
    assert trained.split["unlabelled_rows_dropped"] == 600
    rows = frame.iloc[trained.test_index]
    assert rows["income"].notna().all()
    assert np.array_equal(trained.test_y, (rows["income"] == ">50K").to_numpy().astype(int))
    assert np.allclose(trained.predict(rows), trained.test_scores)


def test_binary_with_a_scikit_learn_estimator(adult: pd.DataFrame) -> None:
    cfg = spec(
        algorithm="sklearn:sklearn.linear_model.LogisticRegression",
        params={"solver": "liblinear"},
    )
    trained = train(adult, cfg, ADULT_FEATURES)
    assert trained.algorithm.flavor == "sklearn"
    assert trained.preprocessor.impute is not None  # imputed: not every estimator takes NaN
    assert trained.metrics["roc_auc"] > 0.8


def test_multiclass_on_race(adult: pd.DataFrame) -> None:
    cfg = spec(task="multiclass", label={"dataset": "adult", "column": "race"})
    trained = train(adult, cfg, ADULT_FEATURES)
    assert trained.classes == sorted(adult["race"].unique())
    assert trained.test_scores.shape == (600, 5)
    assert np.allclose(trained.test_scores.sum(axis=1), 1)
    assert {"accuracy", "macro_f1", "log_loss", "roc_auc"} <= set(trained.metrics)
    assert trained.calibration is None and trained.business is None


def test_regression_on_bike_sharing(bike: pd.DataFrame) -> None:
    cfg = spec(task="regression", label={"dataset": "day", "column": "cnt"}, params=FAST)
    features = ["dteday", "season", "yr", "mnth", "holiday", "weekday", "workingday"]
    features += ["weathersit", "temp", "atemp", "hum", "windspeed"]
    trained = train(bike, cfg, features)
    assert trained.preprocessor.kinds["dteday"] == "time"
    assert trained.classes is None
    rows = bike.iloc[trained.test_index]
    assert trained.metrics["rmse"] < rows["cnt"].std() * 0.6
    assert trained.metrics["r2"] > 0.6


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("lightgbm", FAST),
        ("sklearn:sklearn.linear_model.LogisticRegression", {"solver": "liblinear"}),
    ],
)
def test_a_model_file_reloads_to_the_same_predictions(
    adult: pd.DataFrame, tmp_path: Path, algorithm: str, params: dict[str, Any]
) -> None:
    trained = train(adult, spec(algorithm=algorithm, params=params), ADULT_FEATURES)
    pre = trained.preprocessor
    digest = write_model(
        tmp_path / "m.model.zip",
        flavor=trained.algorithm.flavor,
        task=trained.task,
        model=trained.fitted,
        signature={
            "inputs": [{"name": f, "type": pre.kinds[f]} for f in ADULT_FEATURES],
            "outputs": [{"name": "score", "type": "float"}],
        },
        preprocessing={"features": pre.to_dict(), "classes": trained.classes},
    )
    loaded = read_model(tmp_path / "m.model.zip", expected_sha256=digest)
    predictor = Predictor.from_parts(loaded.flavor, loaded.task, loaded.model, loaded.preprocessing)
    assert predictor.classes == ["<=50K", ">50K"]
    rows = adult.iloc[trained.test_index]
    assert np.array_equal(predictor.scores(rows), trained.test_scores)
    # the raw frame, not a matrix: unseen categories and missing values are handled the same
    odd = rows.head(5).assign(workclass="Astronaut", age=np.nan)
    assert np.array_equal(predictor.scores(odd), trained.predict(odd))


# --- train_model: search ---------------------------------------------------------------------


def _search_spec(**search: Any) -> ModelConfig:
    return spec(
        params={"n_estimators": 40},
        search={
            "trials": 3,
            "space": {"learning_rate": [0.001, 0.5, "log"], "num_leaves": [2, 31]},
            **search,
        },
    )


def test_search_records_every_trial_and_keeps_the_best_params(adult: pd.DataFrame) -> None:
    seen: list[Any] = []
    trained = train(adult, _search_spec(), ADULT_FEATURES, on_trial=seen.append)
    assert len(trained.trials) == len(seen) == 3
    assert trained.search_metric == "roc_auc"
    complete = [t for t in trained.trials if t.state == "complete"]
    best = max(complete, key=lambda t: t.value)
    assert trained.params == best.params  # the search's best trial made the version
    for t in trained.trials:
        assert t.params["n_estimators"] == 40 and t.seconds > 0
    # seeded: the same search again suggests the same parameters
    again = train(adult, _search_spec(), ADULT_FEATURES)
    assert [t.params for t in again.trials] == [t.params for t in trained.trials]
    assert again.params == trained.params


def test_search_trials_argument_overrides_the_spec(adult: pd.DataFrame) -> None:
    assert len(train(adult, _search_spec(), ADULT_FEATURES, trials=2).trials) == 2
    none = train(adult, _search_spec(), ADULT_FEATURES, trials=0)
    assert none.trials == [] and none.params == {"n_estimators": 40}


def test_search_prunes_unpromising_trials(adult: pd.DataFrame) -> None:
    trained = train(adult, _search_spec(trials=8), ADULT_FEATURES)
    assert [t.number for t in trained.trials] == list(range(8))
    states = [t.state for t in trained.trials]
    assert "pruned" in states and "complete" in states
    assert all(t.value is None for t in trained.trials if t.state == "pruned")
    unpruned = train(adult, _search_spec(trials=8, pruning=False), ADULT_FEATURES)
    assert {t.state for t in unpruned.trials} == {"complete"}


def test_search_runs_trials_in_parallel(adult: pd.DataFrame) -> None:
    seen: list[Any] = []
    trained = train(adult, _search_spec(trials=6, parallel=2), ADULT_FEATURES, on_trial=seen.append)
    assert sorted(t.number for t in trained.trials) == list(range(6))
    assert len(seen) == 6
    complete = [t for t in trained.trials if t.state == "complete"]
    assert trained.params == max(complete, key=lambda t: t.value).params


def test_search_minimizing_log_loss_keeps_the_lowest(adult: pd.DataFrame) -> None:
    cfg = spec(
        task="multiclass",
        label={"dataset": "adult", "column": "race"},
        search={"trials": 3, "space": {"num_leaves": [2, 31]}},
    )
    trained = train(adult, cfg, ADULT_FEATURES)
    assert trained.search_metric == "log_loss"
    best = min(trained.trials, key=lambda t: t.value)
    assert trained.params == best.params


def test_search_on_an_unknown_metric_suggests_one(adult: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="cannot search on the metric 'roc_acu'") as info:
        train(adult, _search_spec(metric="roc_acu"), ADULT_FEATURES)
    assert "Did you mean 'roc_auc'?" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ("{num_leaves: [8]}", "must be [low, high]"),
        ("{num_leaves: [31, 8]}", "low 31 >= high 8"),
        ("{learning_rate: [0, 1, log]}", "log-scaled"),
        ("{learning_rate: [0.1, 1, lin]}", "may only be 'log'"),
        ("{num_leaves: {choices: []}}", "{choices: [a, b, ...]}"),
        ("{num_leaves: [a, b]}", "low and high numbers"),
    ],
)
def test_a_search_space_of_the_wrong_shape_is_a_config_error(space: str, words: str) -> None:
    text = f"""
name: p
models:
  churn:
    task: binary_classification
    label: {{dataset: d, column: y}}
    features: ["*"]
    search:
      trials: 2
      space: {space}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == "models.churn.search.space"
    assert words in str(info.value)
    assert info.value.line == 10  # the text starts with a newline


# --- train_model: bad input --------------------------------------------------------------------


def test_a_label_column_that_does_not_exist(adult: pd.DataFrame) -> None:
    cfg = spec(label={"dataset": "adult", "column": "incme"})
    with pytest.raises(TrainingError, match="the label column 'incme' does not exist") as info:
        train(adult, cfg, ADULT_FEATURES)
    assert "Did you mean 'income'?" in (info.value.hint or "")


def test_a_constant_label_column(adult: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="constant"):
        train(adult.assign(income=">50K"), spec(), ADULT_FEATURES)


def test_no_features(adult: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="resolves to no column"):
        train(adult, spec(), [])


def test_binary_on_a_three_valued_label(adult: pd.DataFrame) -> None:
    three = adult.assign(income=np.where(adult["age"] > 50, "old", adult["income"]))
    with pytest.raises(TrainingError, match="a binary label has two values; 'income' has 3"):
        train(three, spec(), ADULT_FEATURES)


def test_regression_on_a_text_label(adult: pd.DataFrame) -> None:
    cfg = spec(task="regression")
    with pytest.raises(TrainingError, match="regression label must be numeric"):
        train(adult, cfg, ADULT_FEATURES)


def test_a_class_missing_from_the_test_split(adult: pd.DataFrame) -> None:
    # 'Without-pay' has one row in these 3,000: a stratified 20% test split cannot hold it
    cfg = spec(task="multiclass", label={"dataset": "adult", "column": "workclass"})
    features = [f for f in ADULT_FEATURES if f != "workclass"]
    with pytest.raises(TrainingError, match="'Without-pay' have no example in the test split"):
        train(adult, cfg, features)


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [("lightgbm", FAST), ("sklearn:sklearn.tree.DecisionTreeClassifier", {"max_depth": 3})],
)
def test_a_class_missing_from_the_training_split(
    adult: pd.DataFrame, algorithm: str, params: dict[str, Any]
) -> None:
    """A class first seen after test_from can be neither learnt nor judged fairly."""
    late = adult.copy()
    late.loc[late.index[-100:], "race"] = "Late"
    cfg = spec(
        task="multiclass",
        label={"dataset": "adult", "column": "race"},
        algorithm=algorithm,
        params=params,
        split={"by": "time", "test_size": 0.2},
    )
    with pytest.raises(TrainingError, match="'Late'") as info:
        train(late, cfg, ["age", "education_num", "hours_per_week"], time_column="day")
    assert "training" in info.value.message


def test_a_misspelled_slice_column_is_an_error_not_silence(adult: pd.DataFrame) -> None:
    """A slice column the data lacks would leave the version without the slices asked for."""
    with pytest.raises(TrainingError, match="'sexx'") as info:
        train(adult, spec(slices=["sexx"]), ADULT_FEATURES)
    assert "Did you mean 'sex'?" in str(info.value)


def test_a_misspelled_algorithm_in_a_spec(adult: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="Did you mean 'lightgbm'"):
        train(adult, spec(algorithm="lightgbn"), ADULT_FEATURES)


def test_rejected_parameters_through_train_model(adult: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="lightgbm has no parameter 'max_leaves_count'"):
        train(adult, spec(params={"max_leaves_count": 3}), ADULT_FEATURES)
    cfg = spec(algorithm="sklearn:sklearn.linear_model.LogisticRegression", params={"depth": 3})
    with pytest.raises(TrainingError, match="'depth'") as info:
        train(adult, cfg, ADULT_FEATURES)
    assert info.value.model == "m"
