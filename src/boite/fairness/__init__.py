"""Fairness: group metrics of a classifier's decisions, and checks of declared limits.

Pure functions over arrays and frames; training, the registry's gates and monitoring call
them and store what they return. Only :mod:`boite.core` and :mod:`boite.errors` are imported,
so that every stage downstream may use this package.

    report = fairness_report(y_true, y_pred, frame, attributes=["sex", "race"],
                             min_group_size=30)
    verdicts = check_limits(report, {"max_demographic_parity_difference": 0.1})
"""

from __future__ import annotations

from boite.fairness.limits import LIMIT_KEYS, FairnessLimit, check_limits
from boite.fairness.metrics import (
    INTERSECTION_SEPARATOR,
    MISSING_GROUP,
    FairnessError,
    FairnessReport,
    GroupMetrics,
    attribute_key,
    fairness_report,
)

__all__ = [
    "INTERSECTION_SEPARATOR",
    "LIMIT_KEYS",
    "MISSING_GROUP",
    "FairnessError",
    "FairnessLimit",
    "FairnessReport",
    "GroupMetrics",
    "attribute_key",
    "check_limits",
    "fairness_report",
]
