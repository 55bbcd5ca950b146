"""fairness_report on the real Adult census data and on small cases with known answers.

The Adult numbers are checked against fairlearn's own functions run on the raw rows, and
against pandas groupbys, so that neither the compression into confusion cells nor the
small-group filter can drift from the definitions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from boite.errors import UserError
from boite.fairness import (
    MISSING_GROUP,
    FairnessError,
    FairnessReport,
    GroupMetrics,
    fairness_report,
)

ADULT = Path(__file__).resolve().parents[2] / "examples/income/data/adult/adult.csv.gz"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    frame = pd.read_csv(ADULT)
    frame["y_true"] = (frame["income"] == ">50K").astype(int)
    # A deterministic decision rule stands in for a model: high capital gains or a degree.
    rule = (frame["capital_gain"] > 5000) | (frame["education_num"] >= 13)
    frame["y_pred"] = rule.astype(int)
    return frame


@pytest.fixture(scope="module")
def adult_report(adult: pd.DataFrame) -> FairnessReport:
    return fairness_report(
        adult["y_true"], adult["y_pred"], adult, attributes=["sex", "race"], min_group_size=30
    )


@pytest.fixture(scope="module")
def evaluation(adult: pd.DataFrame) -> pd.DataFrame:
    # The held-out split, as a model would be evaluated on; fairlearn's own functions are slow
    # on raw rows, and a third of the data keeps the cross-checks quick.
    return adult[adult["split"] == "test"].reset_index(drop=True)


@pytest.fixture(scope="module")
def evaluation_report(evaluation: pd.DataFrame) -> FairnessReport:
    return fairness_report(evaluation["y_true"], evaluation["y_pred"], evaluation[["sex", "race"]])


# --- Adult: against fairlearn and pandas -------------------------------------------------------


def test_keys_are_attributes_and_their_intersection(adult_report: FairnessReport) -> None:
    keys = ["sex", "race", "sex×race"]
    assert adult_report.attribute_keys == keys
    assert list(adult_report.demographic_parity_difference) == keys
    assert list(adult_report.equalized_odds_difference) == keys
    assert list(adult_report.demographic_parity_ratio) == keys
    assert adult_report.small_groups == []
    assert adult_report.unmeasured == []


@pytest.mark.parametrize("attributes", [["sex"], ["race"], ["sex", "race"]])
def test_gaps_match_fairlearn_on_the_raw_rows(
    evaluation: pd.DataFrame, evaluation_report: FairnessReport, attributes: list[str]
) -> None:
    key = "×".join(attributes)
    features = evaluation[attributes]
    y_true, y_pred = evaluation["y_true"], evaluation["y_pred"]
    report = evaluation_report
    assert report.demographic_parity_difference[key] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=features), abs=1e-12
    )
    assert report.demographic_parity_ratio[key] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=features), abs=1e-12
    )
    # Every group has both labels, so fairlearn's 0.0 for an undefined rate cannot make its
    # answer differ from ours here.
    assert evaluation.groupby(attributes)["y_true"].nunique().eq(2).all()
    assert report.equalized_odds_difference[key] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=features), abs=1e-12
    )


def test_group_metrics_match_a_pandas_groupby(
    adult: pd.DataFrame, adult_report: FairnessReport
) -> None:
    for attributes in (["sex"], ["race"], ["sex", "race"]):
        grouped = adult.groupby(attributes)
        expected = pd.DataFrame(
            {
                "size": grouped.size(),
                "selection_rate": grouped["y_pred"].mean(),
                "base_rate": grouped["y_true"].mean(),
            }
        )
        positives = adult[adult["y_true"] == 1].groupby(attributes)["y_pred"].mean()
        negatives = adult[adult["y_true"] == 0].groupby(attributes)["y_pred"].mean()
        mine = [g for g in adult_report.groups if list(g.attributes) == attributes]
        assert len(mine) == len(expected)
        for g in mine:
            index = g.group if len(g.group) > 1 else g.group[0]
            assert g.size == expected.loc[index, "size"]
            assert g.selection_rate == pytest.approx(expected.loc[index, "selection_rate"])
            assert g.base_rate == pytest.approx(expected.loc[index, "base_rate"])
            assert g.true_positive_rate == pytest.approx(positives.loc[index])
            assert g.false_positive_rate == pytest.approx(negatives.loc[index])
            rows = adult[(adult[attributes] == list(g.group)).all(axis=1)]
            assert g.accuracy == pytest.approx(accuracy_score(rows["y_true"], rows["y_pred"]))


def test_published_group_sizes(adult_report: FairnessReport) -> None:
    # The counts SOURCE.txt gives for the data set.
    sizes = {(g.attributes, g.group): g.size for g in adult_report.groups}
    assert sizes[(("sex",), ("Male",))] == 32650
    assert sizes[(("sex",), ("Female",))] == 16192
    assert sizes[(("race",), ("Black",))] == 4685
    assert sum(s for (a, _), s in sizes.items() if a == ("sex", "race")) == 48842


def test_small_groups_are_reported_but_left_out_of_the_gaps(
    evaluation: pd.DataFrame, evaluation_report: FairnessReport
) -> None:
    report = fairness_report(
        evaluation["y_true"],
        evaluation["y_pred"],
        evaluation[["sex", "race"]],
        min_group_size=80,
    )
    assert report.small_groups == [
        ("sex×race", ("Female", "Amer-Indian-Eskimo"), 66),
        ("sex×race", ("Female", "Other"), 46),
    ]
    # Still measured, one row per group.
    assert len([g for g in report.groups if g.attributes == ("sex", "race")]) == 10
    assert report.to_frame()["small"].sum() == 2
    # The gap is fairlearn's over the rows of the large groups only.
    left_out = (evaluation["sex"] == "Female") & evaluation["race"].isin(
        ["Amer-Indian-Eskimo", "Other"]
    )
    large = evaluation[~left_out]
    features = large[["sex", "race"]]
    assert report.demographic_parity_difference["sex×race"] == pytest.approx(
        demographic_parity_difference(large["y_true"], large["y_pred"], sensitive_features=features)
    )
    assert report.equalized_odds_difference["sex×race"] == pytest.approx(
        equalized_odds_difference(large["y_true"], large["y_pred"], sensitive_features=features)
    )
    assert (
        report.equalized_odds_difference["sex×race"]
        != evaluation_report.equalized_odds_difference["sex×race"]
    )
    # Attributes alone are untouched by a small intersection.
    for key in ("sex", "race"):
        assert (
            report.demographic_parity_difference[key]
            == evaluation_report.demographic_parity_difference[key]
        )


def test_a_trained_model_on_three_attributes(adult: pd.DataFrame) -> None:
    train = adult[adult["split"] == "train"]
    test = adult[adult["split"] == "test"].copy()
    columns = ["age", "education_num", "hours_per_week", "capital_gain"]
    model = LogisticRegression(max_iter=500).fit(np.log1p(train[columns]), train["y_true"])
    y_pred = model.predict(np.log1p(test[columns]))
    test["age_band"] = pd.cut(test["age"], [0, 30, 50, 120], labels=["<30", "30-49", "50+"])
    report = fairness_report(
        test["y_true"].to_numpy(),
        y_pred,
        test[["sex", "race", "age_band"]],
        min_group_size=30,
    )
    assert report.attribute_keys == [
        "sex",
        "race",
        "age_band",
        "sex×race",
        "sex×age_band",
        "race×age_band",
        "sex×race×age_band",
    ]
    three_way = {g.group for g in report.groups if len(g.attributes) == 3}
    assert ("Female", "Black", "30-49") in three_way
    # Some three-way groups are tiny, and they are the ones under the limit.
    assert report.small_groups
    assert all(size < 30 for _, _, size in report.small_groups)
    assert {key for key, _, _ in report.small_groups} <= {
        "race×age_band",
        "sex×race×age_band",
    }
    assert report.demographic_parity_difference["age_band"] == pytest.approx(
        demographic_parity_difference(
            test["y_true"], y_pred, sensitive_features=test["age_band"].astype(str)
        )
    )


def test_report_is_json_and_reads_back(adult_report: FairnessReport) -> None:
    text = json.dumps(adult_report.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["demographic_parity_difference"].keys() == {"sex", "race", "sex×race"}
    assert data["groups"][0] == {
        "attributes": ["sex"],
        "group": ["Female"],
        "size": 16192,
        "selection_rate": pytest.approx(0.2336, abs=1e-4),
        "true_positive_rate": pytest.approx(0.6201, abs=1e-4),
        "false_positive_rate": pytest.approx(0.1862, abs=1e-4),
        "accuracy": pytest.approx(0.7926, abs=1e-4),
        "base_rate": pytest.approx(0.1093, abs=1e-4),
    }
    assert FairnessReport.from_dict(data) == adult_report


def test_to_frame_has_one_row_per_group(adult_report: FairnessReport) -> None:
    frame = adult_report.to_frame()
    assert len(frame) == len(adult_report.groups) == 2 + 5 + 10
    assert list(frame.columns) == [
        "attributes",
        "group",
        "size",
        "selection_rate",
        "true_positive_rate",
        "false_positive_rate",
        "accuracy",
        "base_rate",
        "small",
    ]
    row = frame[(frame["attributes"] == "sex×race") & (frame["group"] == "Female×Black")]
    assert row["size"].item() == 2308


# --- small cases with known answers ---------------------------------------------------------


def _frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_perfect_parity_is_zero() -> None:
    y_true = [1, 0, 1, 0, 1, 0, 1, 0]
    y_pred = [1, 0, 0, 1, 1, 0, 0, 1]
    groups = _frame(g=["a", "a", "a", "a", "b", "b", "b", "b"])
    report = fairness_report(y_true, y_pred, groups)
    assert report.demographic_parity_difference == {"g": 0.0}
    assert report.equalized_odds_difference == {"g": 0.0}
    assert report.demographic_parity_ratio == {"g": 1.0}


def test_one_group_always_selected_is_one() -> None:
    y_true = [1, 0, 1, 0]
    y_pred = [1, 1, 0, 0]
    report = fairness_report(y_true, y_pred, _frame(g=["a", "a", "b", "b"]))
    assert report.demographic_parity_difference == {"g": 1.0}
    assert report.demographic_parity_ratio == {"g": 0.0}
    # Group a: TPR 1, FPR 1; group b: TPR 0, FPR 0.
    assert report.equalized_odds_difference == {"g": 1.0}
    a, b = report.groups
    assert (a.group, a.selection_rate, a.accuracy, a.base_rate) == (("a",), 1.0, 0.5, 0.5)
    assert (b.group, b.selection_rate, b.accuracy, b.base_rate) == (("b",), 0.0, 0.5, 0.5)


def test_equalized_odds_is_the_worse_of_the_two_gaps() -> None:
    # a: TPR 2/2, FPR 1/4; b: TPR 1/2, FPR 1/4 -> gaps 0.5 and 0.0.
    y_true = [1, 1, 0, 0, 0, 0] * 2
    y_pred = [1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0]
    report = fairness_report(y_true, y_pred, _frame(g=["a"] * 6 + ["b"] * 6))
    assert report.equalized_odds_difference["g"] == pytest.approx(0.5)
    assert report.demographic_parity_difference["g"] == pytest.approx(1 / 6)
    assert report.demographic_parity_ratio["g"] == pytest.approx(2 / 3)


def test_a_group_without_positives_has_no_true_positive_rate() -> None:
    y_true = [1, 1, 0, 0, 0, 0]
    y_pred = [1, 1, 0, 0, 0, 0]
    report = fairness_report(y_true, y_pred, _frame(g=["a", "a", "a", "b", "b", "b"]))
    b = report.groups[1]
    assert b.true_positive_rate is None
    assert b.false_positive_rate == 0.0
    # fairlearn would count b's TPR as 0.0 and report a gap of 1.0 the model never made.
    assert report.equalized_odds_difference == {"g": 0.0}
    frame = report.to_frame()
    assert frame["true_positive_rate"].dtype == "float64"
    assert np.isnan(frame.loc[1, "true_positive_rate"])
    assert json.loads(json.dumps(report.to_dict()))["groups"][1]["true_positive_rate"] is None


def test_nobody_selected_is_parity() -> None:
    report = fairness_report([1, 0, 1, 0], [0, 0, 0, 0], _frame(g=["a", "a", "b", "b"]))
    assert report.demographic_parity_difference == {"g": 0.0}
    assert report.demographic_parity_ratio == {"g": 1.0}


def test_intersections_of_every_combination() -> None:
    rng = np.random.default_rng(0)
    n = 400
    frame = _frame(
        a=list(rng.choice(["x", "y"], n)),
        b=list(rng.choice(["p", "q"], n)),
        c=list(rng.choice(["u", "v"], n)),
    )
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    report = fairness_report(y_true, y_pred, frame)
    assert report.attribute_keys == ["a", "b", "c", "a×b", "a×c", "b×c", "a×b×c"]
    assert len([g for g in report.groups if g.attributes == ("a", "b", "c")]) == 8
    assert sum(g.size for g in report.groups if g.attributes == ("a", "c")) == n

    without = fairness_report(y_true, y_pred, frame, intersections=False)
    assert without.attribute_keys == ["a", "b", "c"]
    only = fairness_report(y_true, y_pred, frame, attributes=["c", "a"])
    assert only.attribute_keys == ["c", "a", "c×a"]


def test_unobserved_combinations_are_no_groups() -> None:
    # (x, q) and (y, p) never occur together.
    frame = _frame(a=["x", "x", "y", "y"], b=["p", "p", "q", "q"])
    report = fairness_report([1, 0, 1, 0], [1, 0, 0, 0], frame)
    assert {g.group for g in report.groups if len(g.attributes) == 2} == {
        ("x", "p"),
        ("y", "q"),
    }


def test_one_large_group_leaves_the_attribute_unmeasured() -> None:
    frame = _frame(g=["a"] * 5 + ["b"] * 2 + ["c"])
    report = fairness_report([1, 0] * 4, [1, 1, 0, 0] * 2, frame, min_group_size=3)
    assert report.demographic_parity_difference == {}
    assert report.equalized_odds_difference == {}
    assert report.demographic_parity_ratio == {}
    assert report.unmeasured == ["g"]
    assert report.small_groups == [("g", ("b",), 2), ("g", ("c",), 1)]
    assert report.min_group_size == 3


def test_values_of_any_type_and_nulls() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False, None, True],
            "code": pd.array([1, 2, None, 1], dtype="Int64"),
            "band": pd.Categorical(["lo", "hi", None, "lo"], categories=["lo", "hi", "mid"]),
        }
    )
    report = fairness_report([1, 0, 1, 0], [1, 0, 1, 1], frame, intersections=False)
    groups = {(g.attributes[0], g.group[0]): g.size for g in report.groups}
    assert groups == {
        ("flag", "False"): 1,
        ("flag", "True"): 2,
        ("flag", MISSING_GROUP): 1,
        ("code", "1"): 2,
        ("code", "2"): 1,
        ("code", MISSING_GROUP): 1,
        # An unused category is no group.
        ("band", "hi"): 1,
        ("band", "lo"): 2,
        ("band", MISSING_GROUP): 1,
    }


def test_rows_are_matched_by_position_not_index() -> None:
    y_true = pd.Series([1, 0, 1, 0], index=[10, 11, 12, 13])
    y_pred = np.array([True, True, False, False])
    sensitive = pd.DataFrame({"g": ["a", "a", "b", "b"]}, index=[3, 2, 1, 0])
    report = fairness_report(y_true, y_pred, sensitive)
    assert report.demographic_parity_difference == {"g": 1.0}


def test_a_series_is_one_attribute() -> None:
    report = fairness_report([1, 0], [1, 0], pd.Series(["a", "b"], name="sex"))
    assert report.attribute_keys == ["sex"]


def test_a_column_of_decisions_is_accepted() -> None:
    report = fairness_report(np.array([[1], [0]]), np.array([[1], [0]]), _frame(g=["a", "b"]))
    assert report.groups[0].size == 1


# --- bad input ---------------------------------------------------------------------------------


def test_lengths_differ() -> None:
    with pytest.raises(FairnessError, match="y_true has 3 rows but y_pred has 2"):
        fairness_report([1, 0, 1], [1, 0], _frame(g=["a", "b", "c"]))
    with pytest.raises(FairnessError, match="sensitive attributes frame has 2 rows but"):
        fairness_report([1, 0, 1], [1, 0, 1], _frame(g=["a", "b"]))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "pattern"),
    [
        ([1, 2, 0], [1, 0, 0], r"y_true must hold only 0 and 1 \(labels\); row 1 holds 2"),
        (
            [1, 0, 0],
            [0.2, 0.7, 0.9],
            r"y_pred must hold only 0 and 1 \(binary decisions at a threshold, not scores\); "
            r"row 0 holds 0.2 \(and 2 other rows\)",
        ),
        ([1, np.nan, 0], [1, 0, 0], r"y_true must hold only 0 and 1.*row 1 holds nan"),
        (["yes", "no", "no"], [1, 0, 0], r"row 0 holds 'yes'"),
        ([-1, 1, 1], [1, 0, 0], r"row 0 holds -1"),
    ],
)
def test_labels_not_binary(y_true: list[object], y_pred: list[object], pattern: str) -> None:
    with pytest.raises(FairnessError, match=pattern) as info:
        fairness_report(y_true, y_pred, _frame(g=["a", "b", "c"]))
    assert "Map the positive class to 1" in str(info.value)


def test_probabilities_of_two_classes() -> None:
    with pytest.raises(FairnessError, match=r"y_pred must be one-dimensional.*\(2, 2\)"):
        fairness_report([1, 0], np.array([[0.2, 0.8], [0.6, 0.4]]), _frame(g=["a", "b"]))


def test_a_sensitive_attribute_missing() -> None:
    frame = _frame(sex=["F", "M"], race=["x", "y"], age=[30, 40])
    with pytest.raises(FairnessError, match="sensitive attribute 'sexe' is not a column") as info:
        fairness_report([1, 0], [1, 0], frame, attributes=["sexe", "race"])
    hint = info.value.hint or ""
    assert "Did you mean 'sex'?" in hint
    assert "Columns: sex, race, age." in hint


def test_empty_input() -> None:
    with pytest.raises(FairnessError, match="no predictions to measure"):
        fairness_report([], [], _frame(g=[]))
    with pytest.raises(FairnessError, match="no sensitive attributes to measure by"):
        fairness_report([1, 0], [1, 0], pd.DataFrame(index=range(2)))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"min_group_size": 0}, "'min_group_size' parameter of fairness_report must be"),
        ({"min_group_size": 2.5}, "Got 2.5 instead"),
        ({"intersections": "yes"}, "'intersections' parameter of fairness_report must be"),
        ({"attributes": ["g", "g"]}, "listed more than once: 'g'"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(FairnessError, match=pattern):
        fairness_report([1, 0], [1, 0], _frame(g=["a", "b"]), **kwargs)  # type: ignore[arg-type]


def test_sensitive_must_be_a_frame() -> None:
    with pytest.raises(FairnessError, match=r"must be a pandas DataFrame.*Got list instead"):
        fairness_report([1, 0], [1, 0], ["a", "b"])  # type: ignore[arg-type]


def test_errors_are_user_errors_and_value_errors() -> None:
    assert issubclass(FairnessError, UserError)
    assert issubclass(FairnessError, ValueError)
    assert FairnessError("x").exit_code == 2


def test_group_metrics_read_back() -> None:
    g = GroupMetrics(("sex",), ("F",), 3, 0.5, None, 0.25, 0.75, 0.0)
    assert GroupMetrics.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert g.key == "sex"
