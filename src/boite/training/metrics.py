"""Evaluation on the held-out split: task metrics, calibration, slices, business value.

Metrics come from scikit-learn. Every function takes arrays and returns plain
JSON-able dicts, so the results can be stored on the model version as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from boite.core.config import BusinessConfig

# metric -> direction, for the metrics a search may optimise and a gate may test
DIRECTIONS = {
    "roc_auc": "maximize",
    "pr_auc": "maximize",
    "accuracy": "maximize",
    "f1": "maximize",
    "precision": "maximize",
    "recall": "maximize",
    "macro_f1": "maximize",
    "log_loss": "minimize",
    "brier": "minimize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
    "business_value": "maximize",
    "ndcg": "maximize",
    "silhouette": "maximize",
}
DEFAULT_METRIC = {
    "binary_classification": "roc_auc",
    "multiclass": "log_loss",
    "regression": "rmse",
    "ranking": "ndcg",
    "clustering": "silhouette",
}


def task_metrics(
    task: str, y: np.ndarray, scores: np.ndarray, *, classes: list[Any] | None = None
) -> dict[str, float]:
    from sklearn import metrics as m

    out: dict[str, float] = {}
    if task == "binary_classification":
        decided = (scores >= 0.5).astype(int)
        if len(np.unique(y)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y, scores))
            out["pr_auc"] = float(m.average_precision_score(y, scores))
        out["log_loss"] = float(m.log_loss(y, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]))
        out["brier"] = float(m.brier_score_loss(y, scores))
        out["accuracy"] = float(m.accuracy_score(y, decided))
        out["f1"] = float(m.f1_score(y, decided, zero_division=0))
        out["precision"] = float(m.precision_score(y, decided, zero_division=0))
        out["recall"] = float(m.recall_score(y, decided, zero_division=0))
        out["positive_rate"] = float(np.mean(y))
    elif task == "multiclass":
        predicted = np.argmax(scores, axis=1)
        labels = list(range(scores.shape[1]))
        out["accuracy"] = float(m.accuracy_score(y, predicted))
        out["macro_f1"] = float(m.f1_score(y, predicted, average="macro", zero_division=0))
        out["log_loss"] = float(m.log_loss(y, np.clip(scores, 1e-15, 1), labels=labels))
        if len(np.unique(y)) == scores.shape[1]:
            out["roc_auc"] = float(m.roc_auc_score(y, scores, multi_class="ovr"))
    else:
        out["rmse"] = float(np.sqrt(m.mean_squared_error(y, scores)))
        out["mae"] = float(m.mean_absolute_error(y, scores))
        out["r2"] = float(m.r2_score(y, scores))
    out["rows"] = float(len(y))
    return out


def calibration(y: np.ndarray, scores: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Reliability table: per score bin, the mean score against the observed rate."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            table.append(
                {
                    "bin": b,
                    "from": float(edges[b]),
                    "to": float(edges[b + 1]),
                    "rows": int(mask.sum()),
                    "mean_score": float(scores[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    rows = np.array([t["rows"] for t in table], dtype=float)
    gaps = np.array([abs(t["mean_score"] - t["observed_rate"]) for t in table])
    ece = float((rows * gaps).sum() / rows.sum()) if len(rows) else 0.0
    return {"expected_calibration_error": ece, "bins": table}


def business_value(y: np.ndarray, scores: np.ndarray, table: BusinessConfig) -> dict[str, Any]:
    """Value of deciding 'positive' above a threshold, and the threshold that maximises it.

    Every distinct score is a candidate threshold; sorting once and taking
    cumulative counts prices all of them in O(n log n).
    """
    order = np.argsort(-scores, kind="stable")
    s, truth = scores[order], y[order].astype(float)
    positives, n = truth.sum(), len(truth)
    tp = np.cumsum(truth)
    fp = np.cumsum(1 - truth)
    # only cut where the score changes: equal scores get one decision
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp, cuts = tp[last], fp[last], s[last]
    fn = positives - tp
    tn = (n - positives) - fp
    value = (
        tp * table.value_true_positive
        - fp * table.cost_false_positive
        - fn * table.cost_false_negative
        + tn * table.value_true_negative
    )
    nobody = -positives * table.cost_false_negative + (n - positives) * table.value_true_negative
    best = int(np.argmax(value))
    at_half = (scores >= 0.5).astype(float)
    half = (
        (at_half * y).sum() * table.value_true_positive
        - (at_half * (1 - y)).sum() * table.cost_false_positive
        - ((1 - at_half) * y).sum() * table.cost_false_negative
        + ((1 - at_half) * (1 - y)).sum() * table.value_true_negative
    )
    best_value = float(value[best])
    threshold = float(cuts[best])
    if nobody > best_value:  # acting on no one beats every threshold
        best_value, threshold = float(nobody), float(np.nextafter(s[0], np.inf))
    return {
        "best_threshold": threshold,
        "best_value": best_value,
        "value_at_0_5": float(half),
        "value_acting_on_none": float(nobody),
        "value_per_1000": best_value / n * 1000 if n else 0.0,
        "rows": int(n),
    }


def slice_metrics(
    task: str, frame: pd.DataFrame, y: np.ndarray, scores: np.ndarray, columns: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The task metrics per value of each slice column (numbers cut into quartiles)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
            values = pd.qcut(values, 4, duplicates="drop").astype(str)
        keys = values.astype("string").fillna("<missing>").to_numpy()
        rows = []
        for key in sorted(set(keys)):
            mask = keys == key
            if mask.sum() < 2:
                continue
            metrics = task_metrics(task, y[mask], scores[mask])
            rows.append({"slice": str(key), **metrics})
        out[column] = rows
    return out


def ranking_metrics(
    y: np.ndarray, scores: np.ndarray, groups: np.ndarray, *, k: int
) -> dict[str, float]:
    """Mean NDCG@k over the groups (queries, users) with at least two rows."""
    from sklearn.metrics import ndcg_score

    values = []
    start = 0
    for size in groups:
        stop = start + int(size)
        if size > 1 and np.ptp(y[start:stop]) > 0:
            values.append(ndcg_score([y[start:stop]], [scores[start:stop]], k=k))
        start = stop
    mean = float(np.mean(values)) if values else float("nan")
    return {"ndcg": mean, f"ndcg_at_{k}": mean, "groups": float(len(groups)), "rows": float(len(y))}


def clustering_metrics(X: np.ndarray, segments: np.ndarray, *, seed: int) -> dict[str, float]:
    """Silhouette (on at most 10,000 rows) and the share of the largest segment."""
    from sklearn.metrics import silhouette_score

    labels, counts = np.unique(segments, return_counts=True)
    out = {
        "segments": float(len(labels)),
        "largest_share": float(counts.max() / counts.sum()),
        "rows": float(len(segments)),
    }
    if 1 < len(labels) < len(segments):
        out["silhouette"] = float(
            silhouette_score(X, segments, sample_size=min(10_000, len(segments)), random_state=seed)
        )
    return out
