"""Automatic preprocessing, recorded as part of the model.

Categorical columns become integer codes over the categories seen in training
(an unseen category reads as missing); booleans become 0/1; dates become days
since the epoch. Missing values stay NaN for algorithms that handle them
(LightGBM) and are imputed with the training median for those that do not.
The whole recipe is plain JSON, so it travels inside the model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from boite.errors import TrainingError


@dataclass(frozen=True)
class Preprocessor:
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    kinds: dict[str, str]  # 'number', 'category', 'bool', 'time'
    impute: dict[str, float] | None  # None: missing values stay NaN

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str], *, impute: bool) -> Preprocessor:
        kinds: dict[str, str] = {}
        categories: dict[str, list[str]] = {}
        for column in features:
            series = frame[column]
            if pd.api.types.is_bool_dtype(series):
                kinds[column] = "bool"
            elif pd.api.types.is_numeric_dtype(series):
                kinds[column] = "number"
            elif pd.api.types.is_datetime64_any_dtype(series):
                kinds[column] = "time"
            else:
                kinds[column] = "category"
                values = series.dropna().astype(str).unique().tolist()
                categories[column] = sorted(values)
        pre = cls(tuple(features), categories, kinds, None)
        if impute:
            matrix = pre.transform(frame)
            medians = np.nanmedian(np.where(np.isfinite(matrix), matrix, np.nan), axis=0)
            values = {
                c: float(0.0 if np.isnan(m) else m) for c, m in zip(features, medians, strict=True)
            }
            pre = cls(tuple(features), categories, kinds, values)
        return pre

    @property
    def categorical(self) -> list[str]:
        return [c for c in self.features if self.kinds[c] == "category"]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame]
        if missing:
            raise TrainingError(
                "the data lacks the feature column(s) " + ", ".join(repr(c) for c in missing),
                hint="The model was trained on: " + ", ".join(self.features) + ".",
            )
        out = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for i, column in enumerate(self.features):
            series = frame[column]
            kind = self.kinds[column]
            if kind == "category":
                # a category unseen in training reads as missing
                index = pd.Index(self.categories[column])
                codes = index.get_indexer(series.astype("string")).astype(np.float64)
                codes[codes < 0] = np.nan
                out[:, i] = codes
            elif kind == "time":
                values = pd.to_datetime(series)
                if values.dt.tz is not None:
                    values = values.dt.tz_convert("UTC").dt.tz_localize(None)
                seconds = values.astype("datetime64[s]").astype("int64").astype(np.float64)
                seconds[values.isna().to_numpy()] = np.nan
                out[:, i] = seconds / 86400.0
            else:
                out[:, i] = (
                    pd.to_numeric(series, errors="coerce")
                    .astype(np.float64)
                    .to_numpy(na_value=np.nan)
                )
        if self.impute is not None:
            for i, column in enumerate(self.features):
                col = out[:, i]
                col[~np.isfinite(col)] = self.impute[column]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "categories": self.categories,
            "kinds": self.kinds,
            "impute": self.impute,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            tuple(data["features"]), dict(data["categories"]), dict(data["kinds"]), data["impute"]
        )
