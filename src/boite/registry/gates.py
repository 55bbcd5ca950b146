"""Promotion gates: metric thresholds, beating production on the same test data, fairness.

Gates are judged when a version is trained (against the production model of that
moment, scored on the candidate's own test rows) and their verdict is stored on
the version, with every reason in words; the version's record never changes after.

Only the beat-production gate depends on anything outside the version, so only it
can go stale: when production has moved by the time the version is promoted (another
promotion, a rollback, or a first production model), the promotion judges that gate
again against the production model of that moment, on the same test rows, and
records the fresh verdict on the alias move (``rejudge``). Metric thresholds and
fairness limits depend on the version alone: their stored results stand.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any

from boite.core.config import ModelConfig

_BEAT = "beat production"
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
    beat = beat_production(
        cfg,
        metrics,
        production=production,
        primary_metric=primary_metric,
        higher_is_better=higher_is_better,
    )
    if beat is not None:
        report.results.append(beat)
    for limit in fairness or []:
        report.results.append(
            GateResult(
                f"fairness {limit.metric} by {limit.attribute}", bool(limit.passed), limit.message
            )
        )
    return report


def production_gate_name(cfg: ModelConfig, primary_metric: str) -> str | None:
    """The name of the beat-production gate of ``cfg``; None when it has none."""
    if "beat_production_by" not in cfg.gates:
        return None
    return f"{_BEAT} on {primary_metric} by {float(cfg.gates['beat_production_by']):g}"


def is_production_gate(result: GateResult) -> bool:
    return result.gate.startswith(f"{_BEAT} on ")


def beat_production(
    cfg: ModelConfig,
    metrics: dict[str, float],
    *,
    production: tuple[str, dict[str, float]] | None,
    primary_metric: str,
    higher_is_better: bool = True,
) -> GateResult | None:
    """The beat-production gate alone (None when ``cfg`` has none): ``production`` is
    (its ref, its metrics on the candidate's test rows) and ``metrics`` the candidate's."""
    name = production_gate_name(cfg, primary_metric)
    if name is None:
        return None
    margin = float(cfg.gates["beat_production_by"])
    if production is None:
        return GateResult(name, True, "no production model yet: nothing to beat")
    ref, theirs = production
    mine, base = metrics.get(primary_metric), theirs.get(primary_metric)
    if mine is None or base is None:
        return GateResult(name, False, f"{primary_metric} is missing for one of the models")
    gain = (mine - base) if higher_is_better else (base - mine)
    return GateResult(
        name,
        gain >= margin,
        f"{primary_metric} {mine:.4f} vs production {ref} {base:.4f} on the same "
        f"test rows: {'better' if gain > 0 else 'not better'} by {gain:+.4f} "
        f"(needed {margin:+g})",
    )


def rejudge(stored: GateReport, fresh: GateResult) -> GateReport:
    """The stored verdict with its beat-production result replaced by ``fresh``.

    Thresholds and fairness limits were judged on the version's own test rows and
    do not depend on production, so their stored results are kept as they are.
    """
    results = [fresh if is_production_gate(r) else r for r in stored.results]
    if not any(is_production_gate(r) for r in stored.results):
        results.append(fresh)
    return GateReport(results)
