"""Algorithms: LightGBM (native API) and any scikit-learn-API estimator by dotted path.

Each algorithm fits on a float matrix made by the preprocessor and predicts
scores: the positive-class probability for binary tasks, class probabilities
for multiclass, values for regression. Parameters the library rejects become a
TrainingError naming the model and the key.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from boite.core.plugins import Plugins, UnknownPluginError
from boite.core.suggest import did_you_mean
from boite.errors import TrainingError

SKLEARN_PREFIX = "sklearn:"


@dataclass(frozen=True)
class FitData:
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    categorical: list[str]
    num_class: int | None = None
    X_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None
    groups: np.ndarray | None = None  # ranking: sizes of consecutive query groups
    groups_valid: np.ndarray | None = None


# Called every few boosting rounds with (round, validation score); may raise to prune.
Progress = Callable[[int, float], None]


class Algorithm(Protocol):
    name: str
    flavor: str
    handles_missing: bool

    def fit(
        self,
        data: FitData,
        *,
        task: str,
        params: dict[str, Any],
        model: str,
        progress: Progress | None = None,
    ) -> Any: ...

    def predict(self, fitted: Any, X: np.ndarray, *, task: str) -> np.ndarray: ...


_LGB_OBJECTIVES = {
    "binary_classification": ("binary", "auc"),
    "multiclass": ("multiclass", "multi_logloss"),
    "regression": ("regression", "l2"),
    "ranking": ("lambdarank", "ndcg"),
}


def _lightgbm_names() -> set[str] | None:
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except Exception:  # a private API: if it moves, LightGBM's own checks remain
        return None
    return set(aliases) | {a for names in aliases.values() for a in names}


class LightGBMAlgorithm:
    name = "lightgbm"
    flavor = "lightgbm"
    handles_missing = True

    def fit(
        self,
        data: FitData,
        *,
        task: str,
        params: dict[str, Any],
        model: str,
        progress: Progress | None = None,
    ) -> Any:
        import lightgbm as lgb

        if task not in _LGB_OBJECTIVES:
            raise TrainingError(
                f"lightgbm in boite trains {', '.join(_LGB_OBJECTIVES)}; not {task}", model=model
            )
        known = _lightgbm_names()
        if known is not None:
            for key in params:
                if key not in known:
                    guess = did_you_mean(key, known)
                    raise TrainingError(
                        f"model '{model}': lightgbm has no parameter '{key}'",
                        model=model,
                        hint=(f"Did you mean '{guess}'? " if guess else "")
                        + "See LightGBM's parameter list; fix models."
                        + model
                        + ".params.",
                    )
        objective, metric = _LGB_OBJECTIVES[task]
        settings: dict[str, Any] = {
            "objective": objective,
            "metric": metric,
            "verbosity": -1,
            "seed": 0,
            "deterministic": True,
            # OpenMP spins when it has fewer cores than threads: on a small shared
            # machine one thread per two cores is the fast setting, not all of them.
            "num_threads": max(1, (os.cpu_count() or 2) // 2),
            "force_col_wise": True,
        }
        if task == "multiclass":
            settings["num_class"] = data.num_class
        if task == "ranking":
            settings["eval_at"] = [10]
        user = dict(params)
        rounds = int(
            user.pop("n_estimators", user.pop("num_iterations", user.pop("num_boost_round", 100)))
        )
        settings.update(user)
        categorical = [data.feature_names.index(c) for c in data.categorical]
        train = lgb.Dataset(
            data.X,
            data.y,
            feature_name=data.feature_names,
            categorical_feature=categorical or "auto",
            free_raw_data=False,
            group=data.groups,
        )
        valid_sets = []
        callbacks = []
        if data.X_valid is not None and data.y_valid is not None:
            valid_sets = [
                lgb.Dataset(data.X_valid, data.y_valid, reference=train, group=data.groups_valid)
            ]
            if progress is not None:

                def report(env: Any) -> None:
                    if env.iteration % 10 == 9 and env.evaluation_result_list:
                        progress(env.iteration + 1, float(env.evaluation_result_list[0][2]))

                callbacks.append(report)
        try:
            return lgb.train(
                settings, train, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
            )
        except lgb.basic.LightGBMError as exc:
            raise TrainingError(
                f"model '{model}': lightgbm rejected the parameters: {str(exc).split(' at ')[0]}",
                model=model,
                hint=f"Fix models.{model}.params (or its search space).",
            ) from None

    def predict(self, fitted: Any, X: np.ndarray, *, task: str) -> np.ndarray:
        return np.asarray(fitted.predict(X))


class SklearnAlgorithm:
    flavor = "sklearn"
    handles_missing = False

    def __init__(self, dotted: str) -> None:
        self.name = SKLEARN_PREFIX + dotted
        self.dotted = dotted
        module_name, _, class_name = dotted.rpartition(".")
        try:
            module = importlib.import_module(module_name)
            self.cls = getattr(module, class_name)
        except (ImportError, AttributeError, ValueError):
            raise TrainingError(
                f"cannot import the estimator '{dotted}'",
                hint="Give its full dotted path, e.g. "
                "sklearn:sklearn.linear_model.LogisticRegression.",
            ) from None
        if not hasattr(self.cls, "fit"):
            raise TrainingError(f"'{dotted}' has no fit method; it is not an estimator")

    def fit(
        self,
        data: FitData,
        *,
        task: str,
        params: dict[str, Any],
        model: str,
        progress: Progress | None = None,
    ) -> Any:
        try:
            estimator = self.cls(**params)
        except TypeError as exc:
            raise TrainingError(
                f"model '{model}': {self.dotted} rejected the parameters: {exc}",
                model=model,
                hint=f"Fix models.{model}.params.",
            ) from None
        try:
            estimator.fit(data.X, data.y)
        except (ValueError, TypeError) as exc:
            raise TrainingError(
                f"model '{model}': {self.dotted} could not fit: {str(exc).splitlines()[0]}",
                model=model,
                hint=f"Check models.{model}.params.",
            ) from None
        return estimator

    def predict(self, fitted: Any, X: np.ndarray, *, task: str) -> np.ndarray:
        if task == "clustering":
            return np.asarray(fitted.predict(X))
        if task == "binary_classification":
            return np.asarray(fitted.predict_proba(X))[:, 1]
        if task == "multiclass":
            return np.asarray(fitted.predict_proba(X))
        return np.asarray(fitted.predict(X))


ALGORITHMS: Plugins[Algorithm] = Plugins(
    "algorithms",
    hint="Or use any scikit-learn estimator as sklearn:<dotted.path.Estimator>.",
)
ALGORITHMS.register("lightgbm", LightGBMAlgorithm)
ALGORITHMS.register("kmeans", lambda: SklearnAlgorithm("sklearn.cluster.KMeans"))


def _torch_mlp() -> Algorithm:
    from boite.training.deep import TorchMLP

    return TorchMLP()


ALGORITHMS.register("torch_mlp", _torch_mlp)


def get_algorithm(name: str, *, model: str) -> Algorithm:
    if name.startswith(SKLEARN_PREFIX):
        return SklearnAlgorithm(name[len(SKLEARN_PREFIX) :])
    try:
        return ALGORITHMS.get(name)
    except UnknownPluginError as exc:
        exc.message = f"model '{model}': {exc.message}"
        raise
