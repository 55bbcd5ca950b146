"""Promotion gates on their own: metric thresholds, beating production, fairness limits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from boite.core.config import ModelConfig, parse_config
from boite.errors import ConfigError
from boite.fairness import check_limits, fairness_report
from boite.registry.gates import (
    GateReport,
    GateResult,
    beat_production,
    is_production_gate,
    judge,
    production_gate_name,
    rejudge,
)


def cfg(gates: dict[str, Any]) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "task": "binary_classification",
            "label": {"dataset": "d", "column": "y"},
            "features": ["*"],
            "gates": gates,
        }
    )


@pytest.mark.parametrize(
    ("rule", "value", "passed"),
    [
        (">= 0.7", 0.7, True),
        (">= 0.7", 0.69, False),
        ("> 0.7", 0.7, False),
        ("> 0.7", 0.71, True),
        ("<= 0.3", 0.3, True),
        ("< 0.3", 0.3, False),
        ("<0.3", 0.1, True),
        (">= -1e-2", -0.01, True),
    ],
)
def test_metric_thresholds(rule: str, value: float, passed: bool) -> None:
    report = judge(cfg({"roc_auc": rule}), {"roc_auc": value}, production=None, primary_metric="x")
    (result,) = report.results
    assert result.passed is passed and report.passed is passed
    assert result.gate.startswith("roc_auc ")
    assert f"roc_auc is {value:.4f}" in result.message
    assert ("meeting" if passed else "missing") in result.message


def test_an_unmeasured_metric_fails_its_gate_and_says_what_was_measured() -> None:
    report = judge(
        cfg({"roc_acu": ">= 0.7", "rmse": "< 3"}),
        {"roc_auc": 0.9, "rmse": math.nan},
        production=None,
        primary_metric="roc_auc",
    )
    first, second = report.results
    assert not first.passed and "roc_acu was not measured" in first.message
    assert "roc_auc" in first.message  # what was measured
    assert not second.passed and "rmse was not measured" in second.message
    assert [r.gate for r in report.failed] == [first.gate, second.gate]


def test_beat_production_with_no_production_passes() -> None:
    report = judge(
        cfg({"beat_production_by": 0.01}),
        {"roc_auc": 0.8},
        production=None,
        primary_metric="roc_auc",
    )
    (result,) = report.results
    assert result.passed and "no production model yet" in result.message
    assert result.gate == "beat production on roc_auc by 0.01"


@pytest.mark.parametrize(
    ("mine", "theirs", "margin", "higher", "passed"),
    [
        (0.80, 0.78, 0.01, True, True),
        (0.80, 0.79, 0.02, True, False),
        (0.80, 0.80, 0.0, True, True),  # equal meets a margin of 0
        (0.80, 0.81, 0.0, True, False),
        (2.0, 2.5, 0.4, False, True),  # rmse: lower is better
        (2.5, 2.0, 0.0, False, False),
    ],
)
def test_beat_production_by_a_margin(
    mine: float, theirs: float, margin: float, higher: bool, passed: bool
) -> None:
    metric = "roc_auc" if higher else "rmse"
    report = judge(
        cfg({"beat_production_by": margin}),
        {metric: mine},
        production=("m@1", {metric: theirs}),
        primary_metric=metric,
        higher_is_better=higher,
    )
    (result,) = report.results
    assert result.passed is passed
    gain = (mine - theirs) if higher else (theirs - mine)
    assert f"vs production m@1 {theirs:.4f} on the same test rows" in result.message
    assert f"{gain:+.4f}" in result.message


def test_beat_production_without_the_metric_fails() -> None:
    report = judge(
        cfg({"beat_production_by": 0}),
        {"roc_auc": 0.8},
        production=("m@1", {"rmse": 1.0}),
        primary_metric="roc_auc",
    )
    assert not report.passed and "missing for one of the models" in report.results[0].message


def test_rejudge_replaces_only_the_beat_production_result() -> None:
    """At promotion only beating production can go stale: thresholds and fairness stand."""
    spec = cfg({"roc_auc": ">= 0.7", "beat_production_by": 0.0})
    stored = judge(
        spec, {"roc_auc": 0.8}, production=("m@1", {"roc_auc": 0.75}), primary_metric="roc_auc"
    )
    fairness = GateResult("fairness demographic_parity_difference by sex", True, "fine")
    stored = GateReport([*stored.results, fairness])
    assert stored.passed
    fresh = beat_production(
        spec, {"roc_auc": 0.8}, production=("m@2", {"roc_auc": 0.85}), primary_metric="roc_auc"
    )
    assert fresh is not None and not fresh.passed and "vs production m@2" in fresh.message
    again = rejudge(stored, fresh)
    assert [r.gate for r in again.results] == [r.gate for r in stored.results]
    assert again.results[0] == stored.results[0] and again.results[2] == fairness
    assert again.results[1] == fresh and not again.passed
    assert [r for r in stored.results if is_production_gate(r)] == [stored.results[1]]
    assert production_gate_name(spec, "roc_auc") == fresh.gate
    no_gate = cfg({"roc_auc": ">= 0.7"})
    assert production_gate_name(no_gate, "roc_auc") is None
    assert beat_production(no_gate, {}, production=None, primary_metric="roc_auc") is None


def test_fairness_limits_become_gates() -> None:
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"sex": np.repeat(["F", "M"], 100)})
    y = rng.integers(0, 2, 200)
    decided = np.r_[np.zeros(100, int), np.ones(100, int)]  # all M selected, no F
    report = fairness_report(y, decided, groups, attributes=["sex"], min_group_size=30)
    limits = check_limits(report, {"max_demographic_parity_difference": 0.1})
    gates = judge(
        cfg({"roc_auc": ">= 0.5"}),
        {"roc_auc": 0.6},
        production=None,
        primary_metric="roc_auc",
        fairness=limits,
    )
    assert [r.gate for r in gates.results] == [
        "roc_auc >= 0.5",
        "fairness demographic_parity_difference by sex",
    ]
    assert not gates.passed
    assert (
        gates.failed[0].message
        == "demographic parity difference by sex is 1.00, above the limit 0.10"
    )


def test_a_report_round_trips_through_json_shaped_dicts() -> None:
    report = GateReport([GateResult("a", True, "ok"), GateResult("b", False, "no")])
    data = report.to_dict()
    assert data == {
        "passed": False,
        "results": [
            {"gate": "a", "passed": True, "message": "ok"},
            {"gate": "b", "passed": False, "message": "no"},
        ],
    }
    assert GateReport.from_dict(data).results == report.results
    assert GateReport().passed and GateReport.from_dict({}).passed  # no gates: nothing fails


def test_metric_gates_are_parsed_in_order() -> None:
    spec = cfg({"roc_auc": ">= 0.7", "beat_production_by": 0.01, "log_loss": "< 0.5"})
    assert [(g.metric, g.op, g.threshold) for g in spec.metric_gates] == [
        ("roc_auc", ">=", 0.7),
        ("log_loss", "<", 0.5),
    ]


@pytest.mark.parametrize(
    ("gates", "words"),
    [
        ('{roc_auc: "at least 0.7"}', 'must read like ">= 0.70"'),
        ("{roc_auc: 0.7}", 'must read like ">= 0.70"'),
        ('{roc_auc: "=> 0.7"}', 'must read like ">= 0.70"'),
        ("{beat_production_by: yes}", "'beat_production_by' is a number"),
        ('{beat_production_by: "0.1"}', "'beat_production_by' is a number"),
    ],
)
def test_malformed_gates_are_config_errors_naming_the_key(gates: str, words: str) -> None:
    text = f"""\
name: p
models:
  churn:
    task: binary_classification
    label: {{dataset: d, column: y}}
    features: ["*"]
    gates: {gates}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == "models.churn.gates"
    assert info.value.line == 7
    assert words in str(info.value)
