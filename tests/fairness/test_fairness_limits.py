"""check_limits: one verdict per limit and attribute set, in words a person can act on."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from boite.fairness import (
    LIMIT_KEYS,
    FairnessError,
    FairnessReport,
    GroupMetrics,
    check_limits,
    fairness_report,
)


def _groups(values: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"g": values})


def _report(dpd: dict[str, float], eod: dict[str, float], dpr: dict[str, float]) -> FairnessReport:
    # Only the attribute sets of the groups matter to check_limits.
    groups = [
        GroupMetrics(tuple(key.split("×")), tuple("x" for _ in key.split("×")), 50, 0, 0, 0, 0, 0)
        for key in dpd
    ]
    return FairnessReport(groups, dpd, eod, dpr, [], min_group_size=30)


REPORT = _report(
    {"sex": 0.19, "race": 0.05, "sex×race": 0.1},
    {"sex": 0.15, "race": 0.25, "sex×race": 0.3},
    {"sex": 0.62, "race": 0.9, "sex×race": 0.8},
)


def test_config_example_limits() -> None:
    limits = {"max_demographic_parity_difference": 0.1, "max_equalized_odds_difference": 0.2}
    results = check_limits(REPORT, limits)
    assert [(r.metric, r.attribute, r.passed) for r in results] == [
        ("demographic_parity_difference", "sex", False),
        ("demographic_parity_difference", "race", True),
        ("demographic_parity_difference", "sex×race", True),
        ("equalized_odds_difference", "sex", True),
        ("equalized_odds_difference", "race", False),
        ("equalized_odds_difference", "sex×race", False),
    ]
    messages = [r.message for r in results]
    assert messages[0] == "demographic parity difference by sex is 0.19, above the limit 0.10"
    assert messages[1] == "demographic parity difference by race is 0.05, within the limit 0.10"
    # Equal to the limit passes.
    assert messages[2] == "demographic parity difference by sex×race is 0.10, within the limit 0.10"
    assert messages[4] == "equalized odds difference by race is 0.25, above the limit 0.20"
    first = results[0]
    assert (first.limit, first.value) == (0.1, 0.19)


def test_ratio_is_a_lower_bound() -> None:
    results = check_limits(REPORT, {"min_demographic_parity_ratio": 0.8})
    assert [r.passed for r in results] == [False, True, True]
    assert results[0].message == "demographic parity ratio by sex is 0.62, below the limit 0.80"
    assert results[1].message == (
        "demographic parity ratio by race is 0.90, at or above the limit 0.80"
    )


def test_close_values_are_shown_with_enough_digits() -> None:
    report = _report({"sex": 0.1049}, {"sex": 0.0}, {"sex": 1.0})
    (result,) = check_limits(report, {"max_demographic_parity_difference": 0.1})
    assert not result.passed
    assert result.message == (
        "demographic parity difference by sex is 0.105, above the limit 0.100"
    )


def test_a_difference_equal_to_the_limit_in_decimals_passes() -> None:
    # Selection rates 7/10 and 4/10: the difference is 0.30000000000000004 in floating point.
    y_pred = [1] * 7 + [0] * 3 + [1] * 4 + [0] * 6
    report = fairness_report([1, 0] * 10, y_pred, _groups(["a"] * 10 + ["b"] * 10))
    assert report.demographic_parity_difference["g"] != 0.3
    (result,) = check_limits(report, {"max_demographic_parity_difference": 0.3})
    assert result.passed
    assert result.message.endswith("is 0.30, within the limit 0.30")


def test_unmeasured_attribute_fails_and_says_why() -> None:
    report = fairness_report(
        [1, 0] * 4, [1, 1, 0, 0] * 2, _groups(["a"] * 6 + ["b"] * 2), min_group_size=3
    )
    (result,) = check_limits(report, {"max_demographic_parity_difference": 0.1})
    assert not result.passed
    assert math.isnan(result.value)
    assert result.message == (
        "demographic parity difference by g cannot be measured: fewer than two of its groups "
        "have at least 3 rows, so the limit 0.10 cannot be checked"
    )
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["value"] is None


def test_no_limits_no_verdicts() -> None:
    assert check_limits(REPORT, {}) == []


def test_unknown_limit_suggests_the_right_one() -> None:
    with pytest.raises(ValueError, match="unknown fairness limit 'max_demographic_parity_diff'"):
        check_limits(REPORT, {"max_demographic_parity_diff": 0.1})
    try:
        check_limits(REPORT, {"max_demographic_parity_diff": 0.1})
    except FairnessError as exc:
        assert "Did you mean 'max_demographic_parity_difference'?" in str(exc)
        assert "Allowed limits: " + ", ".join(LIMIT_KEYS) + "." in str(exc)


def test_measurement_keys_say_where_they_belong() -> None:
    with pytest.raises(FairnessError, match="pass it to fairness_report"):
        check_limits(REPORT, {"min_group_size": 30})


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, True, "0.1", None])
def test_limit_values_are_numbers_between_0_and_1(value: object) -> None:
    with pytest.raises(FairnessError, match="must be a number between 0 and 1"):
        check_limits(REPORT, {"max_equalized_odds_difference": value})  # type: ignore[dict-item]


def test_limits_must_be_a_mapping() -> None:
    with pytest.raises(FairnessError, match="must be a mapping"):
        check_limits(REPORT, [("max_equalized_odds_difference", 0.1)])  # type: ignore[arg-type]
