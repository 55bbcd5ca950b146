"""A trained model ready to score frames: its preprocessing and its fitted estimator."""

from __future__ import annotations

import ctypes
import threading
import weakref
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

    @cached_property
    def _one_row(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """LightGBM's single-row fast path (``LGBM_BoosterPredictForMatSingleRowFast``).

        The serving path scores one row per request; this C entry point keeps its
        setup (parsed parameters, buffers) between calls, so a row costs
        microseconds. Its state is not safe to share between threads, hence one
        per thread. Absent (None) if LightGBM's library does not offer it.
        """
        try:
            from lightgbm.basic import _LIB, _safe_call
        except ImportError:  # pragma: no cover - depends on LightGBM's internals
            return None
        if not hasattr(_LIB, "LGBM_BoosterPredictForMatSingleRowFast"):
            return None  # pragma: no cover
        booster = self.model
        columns = booster.num_feature()
        width = booster.num_model_per_iteration()
        iterations = booster.best_iteration if booster.best_iteration > 0 else -1
        local = threading.local()
        configs: list[ctypes.c_void_p] = []

        def free(handles: list[ctypes.c_void_p]) -> None:
            for handle in handles:
                _LIB.LGBM_FastConfigFree(handle)

        weakref.finalize(self, free, configs)

        def state() -> tuple[Any, Any, Any, np.ndarray, ctypes.c_void_p]:
            """This thread's fast-path state: (function, config, length, output, its address)."""
            config = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities, values
                    ctypes.c_int(0),
                    ctypes.c_int(iterations),
                    ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                    ctypes.c_int32(columns),
                    ctypes.c_char_p(b"num_threads=1"),
                    ctypes.byref(config),
                )
            )
            configs.append(config)
            out = np.empty(width, dtype=np.float64)
            length = ctypes.c_int64(0)
            call = _LIB.LGBM_BoosterPredictForMatSingleRowFast
            local.state = (
                call,
                config,
                ctypes.byref(length),
                out,
                ctypes.c_void_p(out.ctypes.data),
            )
            return local.state

        def predict(row: np.ndarray) -> np.ndarray:
            call, config, length, out, out_address = getattr(local, "state", None) or state()
            if row.dtype != np.float64 or not row.flags.c_contiguous:
                row = np.ascontiguousarray(row, dtype=np.float64)
            if row.shape != (columns,):
                raise ValueError(f"expected {columns} features, got {row.shape}")
            # raw addresses: building ctypes pointer objects costs more than the trees
            _safe_call(
                call(
                    config,
                    ctypes.c_void_p(row.ctypes.data),
                    length,
                    out_address,
                )
            )
            return out.copy()

        return predict

    def scores_of(self, X: np.ndarray) -> np.ndarray:
        if self.task == "clustering":
            return np.asarray(self.model.predict(X))
        if self.flavor == "torch":
            from boite.training.deep import predict_state

            return predict_state(self.model, X, task=self.task)
        if self.flavor == "lightgbm":
            if len(X) == 1 and self._one_row is not None:
                out = self._one_row(X[0])
                return out.reshape(1, -1) if self.task == "multiclass" else out[:1]
            if len(X) <= SMALL_BATCH:
                # OpenMP threads cost ~1 ms to wake for a few rows (10x the work itself)
                return np.asarray(self._single_thread(X))
            return np.asarray(self.model.predict(X))
        if self.task == "binary_classification":
            return np.asarray(self.model.predict_proba(X))[:, 1]
        if self.task == "multiclass":
            return np.asarray(self.model.predict_proba(X))
        return np.asarray(self.model.predict(X))
