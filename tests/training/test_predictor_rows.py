"""The single-row and small-batch LightGBM paths give exactly what Booster.predict gives."""

from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pytest

from boite.training.predictor import Predictor
from boite.training.preprocess import Preprocessor

TASKS = {
    "binary_classification": {"objective": "binary"},
    "multiclass": {"objective": "multiclass", "num_class": 3},
    "regression": {"objective": "regression"},
}


@pytest.mark.parametrize("task", list(TASKS))
def test_one_row_equals_booster_predict(task: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = {
        "binary_classification": (np.nan_to_num(X[:, 0]) > 0).astype(int),
        "multiclass": rng.integers(0, 3, 500),
        "regression": np.nan_to_num(X[:, 1]) * 3.0,
    }[task]
    booster = lgb.train(
        {**TASKS[task], "verbosity": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=15,
    )
    names = tuple(f"f{i}" for i in range(6))
    predictor = Predictor(
        "lightgbm",
        task,
        booster,
        Preprocessor(names, {}, dict.fromkeys(names, "number"), None),
        [0, 1, 2] if task == "multiclass" else None,
    )
    expected = booster.predict(X)
    one = np.vstack([np.atleast_2d(predictor.scores_of(X[i : i + 1])) for i in range(200)])
    np.testing.assert_allclose(one.reshape(expected[:200].shape), expected[:200], rtol=1e-12)
    np.testing.assert_allclose(predictor.scores_of(X[:100]), expected[:100], rtol=1e-12)
    np.testing.assert_allclose(predictor.scores_of(X), expected, rtol=1e-12)
    # one fast-path state per thread: concurrent rows do not mix
    results: dict[int, np.ndarray] = {}

    def score(start: int) -> None:
        results[start] = np.vstack(
            [np.atleast_2d(predictor.scores_of(X[i : i + 1])) for i in range(start, start + 100)]
        )

    threads = [threading.Thread(target=score, args=(s,)) for s in (0, 100, 200, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for start, got in results.items():
        np.testing.assert_allclose(
            got.reshape(expected[start : start + 100].shape),
            expected[start : start + 100],
            rtol=1e-12,
        )
