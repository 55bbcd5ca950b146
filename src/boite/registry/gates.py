"""Promotion gates: metric thresholds, beating production on the same test data, fairness.

Gates are judged when a version is trained (against the production model of that
moment, scored on the candidate's own test rows) and their verdict is stored on
the version, with every reason in words.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any

from boite.core.config import ModelConfig

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    message: str


@dataclass
class GateReport:
    results: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [asdict(r) for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        return cls([GateResult(**r) for r in data.get("results", [])])


def judge(
    cfg: ModelConfig,
    metrics: dict[str, float],
    *,
    production: tuple[str, dict[str, float]] | None,
    primary_metric: str,
    higher_is_better: bool = True,
    fairness: list[Any] | None = None,
) -> GateReport:
    """``production`` is (its ref, its metrics on the candidate's test rows), if there is one."""
    report = GateReport()
    for gate in cfg.metric_gates:
        value = metrics.get(gate.metric)
        name = f"{gate.metric} {gate.op} {gate.threshold:g}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            report.results.append(
                GateResult(
                    name,
                    False,
                    f"{gate.metric} was not measured for this model "
                    f"(measured: {', '.join(sorted(metrics))})",
                )
            )
            continue
        ok = _OPS[gate.op](value, gate.threshold)
        report.results.append(
            GateResult(
                name,
                ok,
                f"{gate.metric} is {value:.4f}, "
                f"{'meeting' if ok else 'missing'} {gate.op} {gate.threshold:g}",
            )
        )
    if "beat_production_by" in cfg.gates:
        margin = float(cfg.gates["beat_production_by"])
        name = f"beat production on {primary_metric} by {margin:g}"
        if production is None:
            report.results.append(
                GateResult(name, True, "no production model yet: nothing to beat")
            )
        else:
            ref, theirs = production
            mine, base = metrics.get(primary_metric), theirs.get(primary_metric)
            if mine is None or base is None:
                report.results.append(
                    GateResult(name, False, f"{primary_metric} is missing for one of the models")
                )
            else:
                gain = (mine - base) if higher_is_better else (base - mine)
                ok = gain >= margin
                report.results.append(
                    GateResult(
                        name,
                        ok,
                        f"{primary_metric} {mine:.4f} vs production {ref} {base:.4f} on the same "
                        f"test rows: {'better' if gain > 0 else 'not better'} by {gain:+.4f} "
                        f"(needed {margin:+g})",
                    )
                )
    for limit in fairness or []:
        report.results.append(
            GateResult(
                f"fairness {limit.metric} by {limit.attribute}", bool(limit.passed), limit.message
            )
        )
    return report
