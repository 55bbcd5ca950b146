"""Check a fairness report against the limits declared in ``boite.yaml``.

Every limit is checked for every attribute and every intersection of the report, and each
check becomes one :class:`FairnessLimit` whose message a person can read in a gate's verdict
or an alert without knowing the metric's definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boite.core.suggest import did_you_mean
from boite.fairness.metrics import FairnessError, FairnessReport

__all__ = ["LIMIT_KEYS", "FairnessLimit", "check_limits"]

# limit key -> (metric, attribute of FairnessReport, True for an upper bound)
_LIMITS: dict[str, tuple[str, str, bool]] = {
    "max_demographic_parity_difference": (
        "demographic_parity_difference",
        "demographic_parity_difference",
        True,
    ),
    "max_equalized_odds_difference": (
        "equalized_odds_difference",
        "equalized_odds_difference",
        True,
    ),
    "min_demographic_parity_ratio": (
        "demographic_parity_ratio",
        "demographic_parity_ratio",
        False,
    ),
}
LIMIT_KEYS: tuple[str, ...] = tuple(_LIMITS)

# Keys of the `fairness:` section of boite.yaml that configure the measurement, not a limit;
# named in the error so that passing the whole section says what to do instead.
_MEASUREMENT_KEYS = {
    "sensitive": "it names the attributes: pass them to fairness_report(attributes=...)",
    "min_group_size": "it configures the measurement: pass it to fairness_report()",
    "intersections": "it configures the measurement: pass it to fairness_report()",
}

# Differences are computed from rates such as 7/10 - 4/10, which land a few ulps away from the
# decimal a user wrote as the limit; a value equal to the limit in decimals must pass.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FairnessLimit:
    """The verdict of one limit on one attribute set.

    ``metric`` is the measure (``"demographic_parity_difference"``), ``attribute`` the key of
    the attribute set (``"sex"``, ``"sex×race"``). ``value`` is NaN when the attribute set
    could not be measured (fewer than two groups of ``min_group_size`` rows); such a limit
    does not pass, since a gate must not certify a comparison that was never made.
    """

    metric: str
    limit: float
    attribute: str
    value: float
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        # NaN is not JSON; an unmeasured value is null.
        return {
            "metric": self.metric,
            "limit": self.limit,
            "attribute": self.attribute,
            "value": None if math.isnan(self.value) else self.value,
            "passed": self.passed,
            "message": self.message,
        }


def check_limits(report: FairnessReport, limits: Mapping[str, float]) -> list[FairnessLimit]:
    """Check each limit for every attribute and intersection of ``report``.

    ``limits`` keys are among :data:`LIMIT_KEYS`; ``max_*`` limits are upper bounds on a
    difference, ``min_demographic_parity_ratio`` a lower bound on the ratio. Values lie in
    [0, 1]. Results come in the order of ``limits``, then of the report's attribute sets.
    """
    checked = _validate(limits)
    results: list[FairnessLimit] = []
    for key, limit in checked.items():
        metric, field_name, upper = _LIMITS[key]
        values: dict[str, float] = getattr(report, field_name)
        words = metric.replace("_", " ")
        for attribute in report.attribute_keys:
            if attribute not in values:
                results.append(
                    FairnessLimit(
                        metric=metric,
                        limit=limit,
                        attribute=attribute,
                        value=math.nan,
                        passed=False,
                        message=(
                            f"{words} by {attribute} cannot be measured: fewer than two of its "
                            f"groups have at least {report.min_group_size} rows, so the limit "
                            f"{_format(limit, 2)} cannot be checked"
                        ),
                    )
                )
                continue
            value = values[attribute]
            passed = value <= limit + _TOLERANCE if upper else value >= limit - _TOLERANCE
            shown_value, shown_limit = _format_pair(value, limit)
            if upper:
                verdict = "within" if passed else "above"
            else:
                verdict = "at or above" if passed else "below"
            results.append(
                FairnessLimit(
                    metric=metric,
                    limit=limit,
                    attribute=attribute,
                    value=value,
                    passed=passed,
                    message=(
                        f"{words} by {attribute} is {shown_value}, {verdict} the limit "
                        f"{shown_limit}"
                    ),
                )
            )
    return results


def _validate(limits: Any) -> dict[str, float]:
    if not isinstance(limits, Mapping):
        raise FairnessError(
            "The 'limits' parameter of check_limits must be a mapping of limit names to "
            f"numbers. Got {type(limits).__name__} instead.",
            hint="Allowed limits: " + ", ".join(LIMIT_KEYS) + ".",
        )
    checked: dict[str, float] = {}
    for key, value in limits.items():
        if key not in _LIMITS:
            name = str(key)
            parts = []
            if name in _MEASUREMENT_KEYS:
                parts.append(f"'{name}' is not a limit: {_MEASUREMENT_KEYS[name]}.")
            else:
                suggestion = did_you_mean(name, LIMIT_KEYS)
                if suggestion:
                    parts.append(f"Did you mean '{suggestion}'?")
            parts.append("Allowed limits: " + ", ".join(LIMIT_KEYS) + ".")
            raise FairnessError(f"unknown fairness limit '{name}'", hint=" ".join(parts))
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            raise FairnessError(
                f"fairness limit '{key}' must be a number between 0 and 1. Got {value!r} instead.",
                hint="Differences and ratios of rates lie between 0 and 1.",
            )
        checked[key] = float(value)
    return checked


def _format(number: float, digits: int) -> str:
    return f"{number:.{digits}f}"


def _format_pair(value: float, limit: float) -> tuple[str, str]:
    """Two decimals, or as many more as it takes for unequal numbers not to look equal.

    "0.10, above the limit 0.10" would read as a bug; "0.1049, above the limit 0.1000" does not.
    """
    digits = 2
    while (
        digits < 6
        and abs(value - limit) > _TOLERANCE
        and _format(value, digits) == _format(limit, digits)
    ):
        digits += 1
    return _format(value, digits), _format(limit, digits)
