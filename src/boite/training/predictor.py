"""A trained model ready to score frames: its preprocessing and its fitted estimator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from boite.training.preprocess import Preprocessor

# Up to this many rows, LightGBM predicts on the calling thread.
SMALL_BATCH = 256


@dataclass(frozen=True)
class Predictor:
    flavor: str
    task: str
    model: Any
    preprocessor: Preprocessor
    classes: list[Any] | None

    @classmethod
    def from_parts(
        cls,
        flavor: str,
        task: str,
        model: Any,
        preprocessing: dict[str, Any],
        signature: dict[str, Any] | None = None,
    ) -> Any:
        if preprocessing.get("kind") == "recommender":
            from boite.training.recommend import Recommender

            return Recommender(dict(model))
        if "features" not in preprocessing:
            # format 0 kept no recipe: its inputs were plain numbers, named in the signature
            names = [i["name"] for i in (signature or {}).get("inputs", [])]
            recipe = Preprocessor(tuple(names), {}, dict.fromkeys(names, "number"), None)
            return cls(flavor, task, model, recipe, None)
        return cls(
            flavor,
            task,
            model,
            Preprocessor.from_dict(preprocessing["features"]),
            preprocessing.get("classes"),
        )

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multiclass) or values."""
        return self.scores_of(self.preprocessor.transform(frame))

    def score_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """``scores`` for plain rows in the order of ``features`` (the serving path)."""
        return self.scores_of(self.preprocessor.transform_rows(rows))

    @property
    def features(self) -> tuple[str, ...]:
        return self.preprocessor.features

    @cached_property
    def _single_thread(self) -> Callable[[np.ndarray], Any]:
        """LightGBM's predict on the calling thread, its predictor built once.

        ``Booster.predict`` builds a predictor on every call, which costs more than
        scoring one row; the prebuilt one is LightGBM's private API, so any change
        there falls back to the public call.
        """
        try:
            from lightgbm.basic import _InnerPredictor

            inner = _InnerPredictor.from_booster(self.model, {"num_threads": 1})
            return inner.predict
        except Exception:  # pragma: no cover - depends on LightGBM's internals
            return lambda X: self.model.predict(X, num_threads=1)

    def scores_of(self, X: np.ndarray) -> np.ndarray:
        if self.task == "clustering":
            return np.asarray(self.model.predict(X))
        if self.flavor == "torch":
            from boite.training.deep import predict_state

            return predict_state(self.model, X, task=self.task)
        if self.flavor == "lightgbm":
            if len(X) <= SMALL_BATCH:
                # OpenMP threads cost ~1 ms to wake for a few rows (10x the work itself)
                return np.asarray(self._single_thread(X))
            return np.asarray(self.model.predict(X))
        if self.task == "binary_classification":
            return np.asarray(self.model.predict_proba(X))[:, 1]
        if self.task == "multiclass":
            return np.asarray(self.model.predict_proba(X))
        return np.asarray(self.model.predict(X))
