"""Automatic preprocessing, recorded as part of the model.

Categorical columns become integer codes over the categories seen in training
(an unseen category reads as missing); booleans become 0/1; dates become days
since the epoch. Missing values stay NaN for algorithms that handle them
(LightGBM) and are imputed with the training median for those that do not.
The whole recipe is plain JSON, so it travels inside the model file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from boite.errors import TrainingError


class BadValue(ValueError):
    """A row's value cannot be read as its feature's kind (serving answers it with a 400)."""

    def __init__(self, message: str, *, column: str, row: int) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLAIN = frozenset({int, float, type(None)})  # not bool: a bool is a number only by accident


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    raise TypeError("a number")


def _flag(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or value in (0, 1):
        return float(value)
    raise TypeError("true, false, 0 or 1")


def _days(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise TypeError("an ISO 8601 date or time") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - _EPOCH).total_seconds() / 86400.0
    if isinstance(value, date):
        return float((value - _EPOCH.date()).days)
    raise TypeError("an ISO 8601 date or time")


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

    @cached_property
    def _all_numbers(self) -> bool:
        return all(self.kinds[c] == "number" for c in self.features)

    @cached_property
    def _converters(self) -> list[Callable[[Any], float]]:
        """One function per feature from a plain value (JSON, SQLite) to its number."""
        out: list[Callable[[Any], float]] = []
        for column in self.features:
            kind = self.kinds[column]
            if kind == "category":
                codes = {c: float(i) for i, c in enumerate(self.categories[column])}

                def category(value: Any, codes: dict[str, float] = codes) -> float:
                    if value is None:
                        return math.nan
                    if isinstance(value, dict | list):
                        raise TypeError("a text or a number")
                    # a category unseen in training reads as missing
                    return codes.get(value if isinstance(value, str) else str(value), math.nan)

                out.append(category)
            else:
                out.append({"bool": _flag, "time": _days}.get(kind, _number))
        return out

    def transform_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """``transform`` for plain rows (values in ``features`` order), without pandas.

        The serving path: a request has a few rows, for which building a frame
        costs far more than the model. A value of the wrong kind raises BadValue.
        """
        if self._all_numbers and all(type(v) in _PLAIN for row in rows for v in row):
            # every value a plain number or None: NumPy converts them at C speed
            out = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.features))
            if self.impute is not None:
                for j, column in enumerate(self.features):
                    col = out[:, j]
                    col[~np.isfinite(col)] = self.impute[column]
            return out
        converters = self._converters
        out = np.empty((len(rows), len(converters)), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, convert in enumerate(converters):
                try:
                    out[i, j] = convert(row[j])
                except (TypeError, ValueError, OverflowError) as exc:
                    column = self.features[j]
                    raise BadValue(
                        f"the feature '{column}' must be {exc}; got {row[j]!r}",
                        column=column,
                        row=i,
                    ) from None
        if self.impute is not None:
            for j, column in enumerate(self.features):
                col = out[:, j]
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
