"""Group metrics of a classifier's decisions by sensitive attribute and by their intersections.

fairlearn's :class:`~fairlearn.metrics.MetricFrame` does the disaggregation; this module
chooses what to measure, cleans the inputs so that every user mistake gets a message saying
what and where, and shapes the result into a :class:`FairnessReport` that is plain data
(JSON-serialisable through :meth:`FairnessReport.to_dict`) for the ledger, gates and monitors.

Two choices differ from calling fairlearn's one-line functions on the raw data, both because
a promotion gate must not be moved by noise or by an undefined number:

- groups with fewer than ``min_group_size`` rows are measured and reported, but left out of the
  differences and ratios, since a rate over a handful of rows says little about the model;
- a group without positive labels has no true positive rate (and one without negatives no
  false positive rate). fairlearn counts such a rate as 0.0, which would report an equalized
  odds gap the model never made; here the rate is ``None`` and is left out of the gap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from boite.core.suggest import did_you_mean
from boite.errors import UserError

__all__ = [
    "INTERSECTION_SEPARATOR",
    "MISSING_GROUP",
    "FairnessError",
    "FairnessReport",
    "GroupMetrics",
    "attribute_key",
    "fairness_report",
]

# Joins attribute names into a key ("sex×race") and group values into a label ("Female×Black");
# a character that column names and category values practically never contain.
INTERSECTION_SEPARATOR = "×"
# The group a null sensitive value falls in: people whose attribute is unknown are still people
# the model decides about, so they are measured rather than dropped.
MISSING_GROUP = "missing"


class FairnessError(UserError, ValueError):
    """The inputs of a fairness measurement, or the limits to check, are wrong.

    A :class:`ValueError` too, so that callers that validate with ``except ValueError`` (as
    scikit-learn code does) catch it, while the CLI still exits 2 for it as a user error.
    """


@dataclass(frozen=True)
class GroupMetrics:
    """The metrics of one group of one attribute set.

    ``attributes=("sex",)`` with ``group=("Female",)``, or ``attributes=("sex", "race")``
    with ``group=("Female", "Black")``.
    """

    attributes: tuple[str, ...]
    group: tuple[str, ...]
    size: int
    selection_rate: float
    true_positive_rate: float | None  # None when the group has no positive labels
    false_positive_rate: float | None  # None when the group has no negative labels
    accuracy: float
    base_rate: float  # share of positive labels

    @property
    def key(self) -> str:
        """The attribute set as the differences are keyed: ``"sex×race"``."""
        return attribute_key(self.attributes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attributes": list(self.attributes),
            "group": list(self.group),
            "size": self.size,
            "selection_rate": self.selection_rate,
            "true_positive_rate": self.true_positive_rate,
            "false_positive_rate": self.false_positive_rate,
            "accuracy": self.accuracy,
            "base_rate": self.base_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupMetrics:
        return cls(
            attributes=tuple(data["attributes"]),
            group=tuple(data["group"]),
            size=int(data["size"]),
            selection_rate=float(data["selection_rate"]),
            true_positive_rate=_optional_float(data["true_positive_rate"]),
            false_positive_rate=_optional_float(data["false_positive_rate"]),
            accuracy=float(data["accuracy"]),
            base_rate=float(data["base_rate"]),
        )


@dataclass(frozen=True)
class FairnessReport:
    """Group metrics and the gaps between groups, per attribute and per intersection.

    The three dicts are keyed by :func:`attribute_key` (``"sex"``, ``"sex×race"``). An
    attribute set with fewer than two groups of at least ``min_group_size`` rows has no gap to
    measure, so it has no entry there; :attr:`unmeasured` lists those keys.
    """

    groups: list[GroupMetrics]
    demographic_parity_difference: dict[str, float]
    equalized_odds_difference: dict[str, float]
    demographic_parity_ratio: dict[str, float]
    # (attribute key, group, size) of the groups left out of the gaps for being small
    small_groups: list[tuple[str, tuple[str, ...], int]]
    min_group_size: int = 1

    @property
    def attribute_keys(self) -> list[str]:
        """Every attribute set measured, in the order of the report."""
        return list(dict.fromkeys(g.key for g in self.groups))

    @property
    def unmeasured(self) -> list[str]:
        """Attribute sets with fewer than two groups large enough to compare."""
        return [k for k in self.attribute_keys if k not in self.demographic_parity_difference]

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "demographic_parity_difference": dict(self.demographic_parity_difference),
            "equalized_odds_difference": dict(self.equalized_odds_difference),
            "demographic_parity_ratio": dict(self.demographic_parity_ratio),
            "small_groups": [
                {"attributes": key, "group": list(group), "size": size}
                for key, group, size in self.small_groups
            ],
            "min_group_size": self.min_group_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessReport:
        """Read back what :meth:`to_dict` wrote (e.g. a report stored as an artifact)."""
        return cls(
            groups=[GroupMetrics.from_dict(g) for g in data["groups"]],
            demographic_parity_difference=_float_dict(data["demographic_parity_difference"]),
            equalized_odds_difference=_float_dict(data["equalized_odds_difference"]),
            demographic_parity_ratio=_float_dict(data["demographic_parity_ratio"]),
            small_groups=[
                (str(s["attributes"]), tuple(s["group"]), int(s["size"]))
                for s in data["small_groups"]
            ],
            min_group_size=int(data.get("min_group_size", 1)),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per group; ``small`` marks the groups left out of the gaps."""
        small = {(key, group) for key, group, _ in self.small_groups}
        rows = [
            {
                "attributes": g.key,
                "group": INTERSECTION_SEPARATOR.join(g.group),
                "size": g.size,
                "selection_rate": g.selection_rate,
                "true_positive_rate": g.true_positive_rate,
                "false_positive_rate": g.false_positive_rate,
                "accuracy": g.accuracy,
                "base_rate": g.base_rate,
                "small": (g.key, g.group) in small,
            }
            for g in self.groups
        ]
        columns = [
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
        frame = pd.DataFrame(rows, columns=columns)
        # Undefined rates read as NaN in a frame, where None would make the column object.
        for column in ("true_positive_rate", "false_positive_rate"):
            frame[column] = frame[column].astype("float64")
        return frame


def attribute_key(attributes: Sequence[str]) -> str:
    """The key of an attribute set in a report's dicts: ``("sex", "race")`` -> ``"sex×race"``."""
    return INTERSECTION_SEPARATOR.join(attributes)


def fairness_report(
    y_true: Any,
    y_pred: Any,
    sensitive: pd.DataFrame,
    *,
    attributes: Sequence[str] | None = None,
    intersections: bool = True,
    min_group_size: int = 1,
) -> FairnessReport:
    """Measure a classifier's decisions by each sensitive attribute and their intersections.

    ``y_true`` and ``y_pred`` are binary 0/1 (or boolean) arrays of the same length;
    ``y_pred`` holds decisions at a threshold, not scores. ``sensitive`` has one column per
    attribute and one row per prediction, in the same order (its index is ignored); values of
    any type are compared as text, and nulls form the group ``"missing"``. ``attributes``
    picks and orders the columns to use (default: all of them), so a frame of all features
    can be passed with the attribute names from ``boite.yaml``.

    With ``intersections`` and two or more attributes, every combination of two or more
    attributes is measured too. Groups under ``min_group_size`` rows are reported but left
    out of the differences and ratios.
    """
    _check_parameters(intersections, min_group_size)
    truth = _binary(y_true, "y_true")
    decisions = _binary(y_pred, "y_pred")
    if len(truth) != len(decisions):
        raise FairnessError(
            f"y_true has {len(truth)} rows but y_pred has {len(decisions)}",
            hint="Pass the labels and the decisions of the same rows, in the same order.",
        )
    if len(truth) == 0:
        raise FairnessError(
            "there are no predictions to measure: y_true and y_pred are empty",
            hint="Measure fairness on a non-empty evaluation set.",
        )
    frame = _sensitive_frame(sensitive, attributes, len(truth))

    names = list(frame.columns)
    sets: list[tuple[int, ...]] = [(i,) for i in range(len(names))]
    if intersections:
        for size in range(2, len(names) + 1):
            sets.extend(itertools.combinations(range(len(names)), size))

    groups: list[GroupMetrics] = []
    small_groups: list[tuple[str, tuple[str, ...], int]] = []
    dpd: dict[str, float] = {}
    eod: dict[str, float] = {}
    dpr: dict[str, float] = {}
    cells = _cells(truth, decisions, frame)
    for positions in sets:
        attribute_set = tuple(names[i] for i in positions)
        columns = [_column(i) for i in positions]
        key = attribute_key(attribute_set)
        measured, metric_frame = _measure(cells, columns, attribute_set)
        groups.extend(measured)
        large = [g.group for g in measured if g.size >= min_group_size]
        small_groups.extend((key, g.group, g.size) for g in measured if g.size < min_group_size)
        if len(large) < 2:
            # One group has nothing to be compared with; a gap of 0.0 here would let a gate
            # pass on a comparison that was never made.
            continue
        if len(large) < len(measured):
            # MetricFrame compares all the groups it is given, so the small ones' rows go.
            keep = pd.MultiIndex.from_frame(cells[columns]).isin(large)
            metric_frame = _metric_frame(cells[keep], columns, _GAP_METRICS)
        dpd[key], eod[key], dpr[key] = _gaps(metric_frame)
    return FairnessReport(
        groups=groups,
        demographic_parity_difference=dpd,
        equalized_odds_difference=eod,
        demographic_parity_ratio=dpr,
        small_groups=small_groups,
        min_group_size=min_group_size,
    )


# --- metrics ---------------------------------------------------------------------------------
#
# fairlearn's MetricFrame calls its metric functions through np.stack over every row of every
# group, a Python-speed loop that takes seconds on 50,000 rows. The metrics here depend only on
# how many rows of each group fall in each cell of the confusion matrix, so one vectorised
# groupby compresses the rows into those cells (at most 4 per finest group) with their counts,
# and MetricFrame runs on the cells with the counts as sample weights: the same numbers as on
# the raw rows, for a cost that no longer grows with the rows.


def _size(y_true: np.ndarray, y_pred: np.ndarray, *, sample_weight: np.ndarray) -> float:
    return float(np.sum(sample_weight))


def _tpr(y_true: np.ndarray, y_pred: np.ndarray, *, sample_weight: np.ndarray) -> float:
    # fairlearn answers 0.0 for a group without positives; an undefined rate must stay undefined.
    if not (y_true == 1).any():
        return math.nan
    return float(true_positive_rate(y_true, y_pred, pos_label=1, sample_weight=sample_weight))


def _fpr(y_true: np.ndarray, y_pred: np.ndarray, *, sample_weight: np.ndarray) -> float:
    if not (y_true == 0).any():
        return math.nan
    return float(false_positive_rate(y_true, y_pred, pos_label=1, sample_weight=sample_weight))


def _base_rate(y_true: np.ndarray, y_pred: np.ndarray, *, sample_weight: np.ndarray) -> float:
    return float(np.average(y_true, weights=sample_weight))


_GROUP_METRICS: dict[str, Callable[..., float]] = {
    "size": _size,
    "selection_rate": selection_rate,
    "true_positive_rate": _tpr,
    "false_positive_rate": _fpr,
    "accuracy": accuracy_score,
    "base_rate": _base_rate,
}
_GAP_METRICS: dict[str, Callable[..., float]] = {
    "selection_rate": selection_rate,
    "true_positive_rate": _tpr,
    "false_positive_rate": _fpr,
}


def _cells(y_true: np.ndarray, y_pred: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (finest group, label, decision) with its number of rows, ``weight``.

    Attribute ``i`` of ``frame`` is column ``_column(i)``, so that no attribute name can
    collide with the label, decision and weight columns.
    """
    rows = pd.DataFrame({_column(i): frame.iloc[:, i] for i in range(frame.shape[1])})
    rows[_Y_TRUE] = y_true
    rows[_Y_PRED] = y_pred
    return (
        rows.groupby(list(rows.columns), sort=False, observed=True)
        .size()
        .rename(_WEIGHT)
        .reset_index()
    )


_Y_TRUE, _Y_PRED, _WEIGHT = "y_true", "y_pred", "weight"


def _column(position: int) -> str:
    return f"attribute_{position}"


def _metric_frame(
    cells: pd.DataFrame, columns: list[str], metrics: dict[str, Callable[..., float]]
) -> MetricFrame:
    weights = cells[_WEIGHT].to_numpy()
    return MetricFrame(
        metrics=metrics,
        y_true=cells[_Y_TRUE].to_numpy(),
        y_pred=cells[_Y_PRED].to_numpy(),
        sensitive_features=cells[columns],
        sample_params={name: {"sample_weight": weights} for name in metrics},
    )


def _measure(
    cells: pd.DataFrame, columns: list[str], attributes: tuple[str, ...]
) -> tuple[list[GroupMetrics], MetricFrame]:
    frame = _metric_frame(cells, columns, _GROUP_METRICS)
    by_group = frame.by_group
    # MetricFrame lists every combination of the values of several attributes, observed or
    # not; a combination nobody belongs to is no group.
    by_group = by_group[by_group["size"].notna() & (by_group["size"] > 0)]
    result = []
    for index, row in by_group.iterrows():
        labels = index if isinstance(index, tuple) else (index,)
        result.append(
            GroupMetrics(
                attributes=attributes,
                group=tuple(str(label) for label in labels),
                size=round(row["size"]),
                selection_rate=float(row["selection_rate"]),
                true_positive_rate=_optional_float(row["true_positive_rate"]),
                false_positive_rate=_optional_float(row["false_positive_rate"]),
                accuracy=float(row["accuracy"]),
                base_rate=float(row["base_rate"]),
            )
        )
    return result, frame


def _gaps(frame: MetricFrame) -> tuple[float, float, float]:
    """Demographic parity difference, equalized odds difference and parity ratio."""
    difference = frame.difference(method="between_groups")
    ratio = frame.ratio(method="between_groups")
    parity_difference = float(difference["selection_rate"])
    parity_ratio = float(ratio["selection_rate"])
    if math.isnan(parity_ratio):
        # 0/0: no group is ever selected, which is parity.
        parity_ratio = 1.0
    # Worst case of the two gaps, as fairlearn's equalized_odds_difference; a gap is NaN only
    # when no group has that rate defined (e.g. no group has positives), and then the other
    # gap is the whole answer.
    odds_gaps = [
        float(difference[m])
        for m in ("true_positive_rate", "false_positive_rate")
        if not math.isnan(float(difference[m]))
    ]
    odds_difference = max(odds_gaps) if odds_gaps else 0.0
    return parity_difference, odds_difference, parity_ratio


# --- inputs ----------------------------------------------------------------------------------


def _check_parameters(intersections: Any, min_group_size: Any) -> None:
    if not isinstance(intersections, bool):
        raise FairnessError(
            "The 'intersections' parameter of fairness_report must be True or False. "
            f"Got {intersections!r} instead."
        )
    if (
        isinstance(min_group_size, bool)
        or not isinstance(min_group_size, int | np.integer)
        or min_group_size < 1
    ):
        raise FairnessError(
            "The 'min_group_size' parameter of fairness_report must be an integer of at least "
            f"1. Got {min_group_size!r} instead."
        )


def _binary(values: Any, name: str) -> np.ndarray:
    """``values`` as an int64 array of 0 and 1, or an error naming the first bad row."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise FairnessError(f"{name} is not a one-dimensional array of 0 and 1: {exc}") from exc
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise FairnessError(
            f"{name} must be one-dimensional (one 0/1 value per row). "
            f"Got an array of shape {array.shape} instead.",
            hint="For a two-column array of class probabilities, threshold the positive column "
            "into decisions first.",
        )
    if array.dtype == bool:
        return array.astype(np.int64)
    # isin compares by value, so 1, 1.0 and True pass while "1", NaN and None do not.
    valid = pd.Series(array).isin([0, 1])
    if not valid.all():
        bad = np.flatnonzero(~valid.to_numpy())
        others = f" (and {len(bad) - 1} other rows)" if len(bad) > 1 else ""
        what = "binary decisions at a threshold, not scores" if name == "y_pred" else "labels"
        first = array[bad[0]]
        # numpy scalars repr as np.float64(0.7); the user wrote 0.7.
        shown = first.item() if isinstance(first, np.generic) else first
        raise FairnessError(
            f"{name} must hold only 0 and 1 ({what}); row {int(bad[0])} holds {shown!r}{others}",
            hint="Map the positive class to 1 and the other to 0"
            + (", and threshold scores into decisions." if name == "y_pred" else "."),
        )
    return array.astype(np.int64)


def _sensitive_frame(sensitive: Any, attributes: Sequence[str] | None, rows: int) -> pd.DataFrame:
    """The sensitive attributes as text columns named by ``attributes``, nulls as "missing"."""
    if isinstance(sensitive, pd.Series):
        # A single attribute given as a Series: its name is the attribute's.
        sensitive = sensitive.to_frame(
            name="sensitive" if sensitive.name is None else sensitive.name
        )
    if not isinstance(sensitive, pd.DataFrame):
        raise FairnessError(
            "The 'sensitive' parameter of fairness_report must be a pandas DataFrame with one "
            f"column per sensitive attribute. Got {type(sensitive).__name__} instead."
        )
    columns = [str(c) for c in sensitive.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise FairnessError(
            "the sensitive attributes frame has more than one column named "
            + ", ".join(repr(c) for c in duplicated)
        )
    if attributes is None:
        chosen = columns
    else:
        if isinstance(attributes, str):
            attributes = [attributes]
        chosen = [str(a) for a in attributes]
        repeated = sorted({a for a in chosen if chosen.count(a) > 1})
        if repeated:
            raise FairnessError(
                "sensitive attributes are listed more than once: "
                + ", ".join(repr(a) for a in repeated)
            )
        for name in chosen:
            if name not in columns:
                suggestion = did_you_mean(name, columns)
                hint = f"Did you mean '{suggestion}'? " if suggestion else ""
                raise FairnessError(
                    f"sensitive attribute '{name}' is not a column of the sensitive "
                    "attributes frame",
                    hint=hint
                    + "Columns: "
                    + ", ".join(columns[:30])
                    + (", …" if len(columns) > 30 else "")
                    + ".",
                )
    if not chosen:
        raise FairnessError(
            "no sensitive attributes to measure by: the sensitive attributes frame has no columns",
            hint="Pass one column per sensitive attribute, e.g. df[['sex', 'race']].",
        )
    if len(sensitive) != rows:
        raise FairnessError(
            f"the sensitive attributes frame has {len(sensitive)} rows but y_true and y_pred "
            f"have {rows}",
            hint="Pass the sensitive attributes of the same rows as the predictions, "
            "in the same order.",
        )
    result = {}
    for name in chosen:
        column = sensitive.iloc[:, columns.index(name)]
        text = column.astype(str).to_numpy(dtype=object)
        # Nulls of every kind (None, NaN, NaT, pd.NA) are one group: the unknown.
        text[column.isna().to_numpy()] = MISSING_GROUP
        result[name] = text
    return pd.DataFrame(result)


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _float_dict(data: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in data.items()}
