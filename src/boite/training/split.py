"""Hold-out splits: random (stratified for classifiers), by time, or by group."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from boite.core.config import SplitConfig
from boite.errors import TrainingError


def split_frame(
    frame: pd.DataFrame,
    cfg: SplitConfig,
    *,
    model: str,
    label: str | None,
    time_column: str | None,
    classification: bool,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Boolean masks (train, test) and a description of the split for the record."""
    n = len(frame)
    if n < 2:
        raise TrainingError(
            f"model '{model}' has {n} example(s); it needs at least two", model=model
        )
    if cfg.by == "time":
        column = cfg.column or time_column
        if column is None or column not in frame:
            raise TrainingError(
                f"model '{model}' splits by time but has no time column",
                model=model,
                hint="Set split.column, or give the label a timestamp (label.timestamp).",
            )
        times = pd.to_datetime(frame[column])
        if cfg.test_from is not None:
            cut = pd.Timestamp(cfg.test_from)
            if times.dt.tz is not None and cut.tzinfo is None:
                cut = cut.tz_localize("UTC")
            elif times.dt.tz is None and cut.tzinfo is not None:
                cut = cut.tz_convert("UTC").tz_localize(None)
        else:
            cut = times.quantile(1 - cfg.test_size)
        test = (times >= cut).to_numpy()
        info = {"by": "time", "column": column, "test_from": str(cut)}
    elif cfg.by == "group":
        assert cfg.column is not None
        if cfg.column not in frame:
            raise TrainingError(
                f"model '{model}' splits by group on '{cfg.column}', which the data lacks",
                model=model,
            )
        groups = frame[cfg.column].astype("string").fillna("<missing>").unique()
        rng = np.random.default_rng(cfg.seed)
        chosen = rng.choice(groups, size=max(1, round(len(groups) * cfg.test_size)), replace=False)
        test = frame[cfg.column].astype("string").fillna("<missing>").isin(set(chosen)).to_numpy()
        info = {"by": "group", "column": cfg.column, "test_groups": len(chosen)}
    else:
        rng = np.random.default_rng(cfg.seed)
        test = np.zeros(n, dtype=bool)
        if classification and label is not None:
            # stratified: every class keeps its share in both parts
            for _, index in frame.groupby(label, dropna=False, sort=True).indices.items():
                k = round(len(index) * cfg.test_size)
                test[rng.choice(index, size=k, replace=False)] = True
        else:
            test[rng.choice(n, size=max(1, round(n * cfg.test_size)), replace=False)] = True
        info = {"by": "random", "test_size": cfg.test_size, "seed": cfg.seed}
    train = ~test
    if not train.any() or not test.any():
        which = "training" if not train.any() else "test"
        raise TrainingError(
            f"model '{model}': the {cfg.by} split leaves the {which} part empty",
            model=model,
            hint="Move split.test_from, or change split.test_size.",
        )
    info.update(train_rows=int(train.sum()), test_rows=int(test.sum()))
    return train, test, info
