"""Train one model spec: split, preprocess, search (Optuna), fit, evaluate.

The trainer works on a pandas frame that already holds the label and the
feature columns (the pipeline builds it, point-in-time correct); it knows
nothing of the ledger: trials and results come back as data to be recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from boite.core.config import ModelConfig, SplitConfig, describe_space
from boite.core.suggest import did_you_mean
from boite.errors import TrainingError
from boite.training.algorithms import Algorithm, FitData, get_algorithm
from boite.training.metrics import (
    DEFAULT_METRIC,
    DIRECTIONS,
    business_value,
    calibration,
    clustering_metrics,
    ranking_metrics,
    slice_metrics,
    task_metrics,
)
from boite.training.preprocess import Preprocessor
from boite.training.split import split_frame

CLASSIFICATION = ("binary_classification", "multiclass")
_LGB_DIRECTION = {
    "ranking": "maximize",
    "binary_classification": "maximize",
    "multiclass": "minimize",
    "regression": "minimize",
}


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # 'complete', 'pruned', 'failed'
    seconds: float
    error: str | None = None


@dataclass
class Trained:
    name: str
    task: str
    algorithm: Algorithm
    fitted: Any
    preprocessor: Preprocessor
    classes: list[Any] | None
    params: dict[str, Any]
    metrics: dict[str, float]
    split: dict[str, Any]
    label: str
    features: list[str]
    test_index: np.ndarray
    test_scores: np.ndarray
    test_y: np.ndarray
    calibration: dict[str, Any] | None = None
    business: dict[str, Any] | None = None
    slices: dict[str, Any] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    search_metric: str | None = None
    fit_seconds: float = 0.0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.algorithm.predict(
            self.fitted, self.preprocessor.transform(frame), task=self.task
        )


def encode_labels(
    task: str, values: pd.Series, *, model: str, column: str, positive: Any = None
) -> tuple[np.ndarray, list[Any] | None]:
    """The label as numbers: 0/1, class indexes, or floats; with the class list."""
    distinct = values.dropna().unique().tolist()
    if len(distinct) <= 1:
        raise TrainingError(
            f"model '{model}': the label column '{column}' is constant "
            f"({distinct[0] if distinct else 'all missing'!r}); there is nothing to learn",
            model=model,
            hint="Check the label dataset, or the rows the features and split keep.",
        )
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(values):
            raise TrainingError(
                f"model '{model}': a regression label must be numeric; '{column}' is "
                f"{values.dtype}",
                model=model,
            )
        return values.to_numpy(dtype=np.float64), None
    classes = sorted(distinct, key=lambda v: (str(type(v)), v))
    if task == "binary_classification" and len(classes) != 2:
        raise TrainingError(
            f"model '{model}': a binary label has two values; '{column}' has {len(classes)} "
            f"({', '.join(map(str, classes[:6]))}{', ...' if len(classes) > 6 else ''})",
            model=model,
            hint="Use task: multiclass, or map the label to two values in its transform.",
        )
    if task == "binary_classification" and positive is not None:
        # the positive class is the one business value and fairness speak of
        match = [c for c in classes if c == positive or str(c) == str(positive)]
        if not match:
            raise TrainingError(
                f"model '{model}': label.positive is {positive!r}, but '{column}' holds "
                f"{', '.join(map(repr, classes))}",
                model=model,
                hint="Set label.positive to one of those values.",
            )
        classes = [c for c in classes if c is not match[0]] + [match[0]]
    index = {c: i for i, c in enumerate(classes)}
    return values.map(index).to_numpy(dtype=np.int64), classes


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name, spec in space.items():
        kind, args = describe_space(name, spec)
        if kind == "choice":
            params[name] = trial.suggest_categorical(name, args)
        elif kind == "int":
            params[name] = trial.suggest_int(name, args[0], args[1], log=args[2])
        else:
            params[name] = trial.suggest_float(name, args[0], args[1], log=args[2])
    return params


@dataclass(frozen=True)
class HeldOut:
    """The labelled rows of a frame, their labels as numbers, and the train/test split."""

    labelled: pd.DataFrame  # the labelled rows, in the order the model sees them
    positions: np.ndarray  # each labelled row's position in the frame
    y: np.ndarray
    classes: list[Any] | None
    train_mask: np.ndarray
    test_mask: np.ndarray
    split: dict[str, Any]

    @property
    def test_index(self) -> np.ndarray:
        """Positions of the test rows in the frame, in evaluation order."""
        return self.positions[self.test_mask]


def test_rows_fingerprint(test_index: np.ndarray) -> str:
    """A hash of which rows of the training data were held out, and in which order."""
    return hashlib.sha256(np.asarray(test_index, dtype="<i8").tobytes()).hexdigest()


def hold_out(
    name: str, cfg: ModelConfig, frame: pd.DataFrame, *, label: str, time_column: str | None
) -> HeldOut:
    """Split ``frame`` as training does: deterministic for a given frame and spec, so the
    test rows of a version can be rebuilt later from its recorded training data."""
    task = cfg.task
    keep = frame[label].notna().to_numpy()
    positions = np.flatnonzero(keep)
    labelled = frame[keep]
    split_cfg = cfg.split
    if task == "ranking":
        assert cfg.group is not None
        if cfg.group not in frame:
            raise TrainingError(
                f"model '{name}': the group column '{cfg.group}' does not exist", model=name
            )
        # LightGBM ranks contiguous groups; a query's rows must also stay on one side
        order = np.argsort(labelled[cfg.group].astype("string").to_numpy(), kind="stable")
        labelled, positions = labelled.iloc[order], positions[order]
        if split_cfg.by == "random":
            split_cfg = SplitConfig(
                by="group", column=cfg.group, test_size=split_cfg.test_size, seed=split_cfg.seed
            )
    labelled = labelled.reset_index(drop=True)
    positive = cfg.label.positive if cfg.label is not None else None
    y_all, classes = encode_labels(
        task, labelled[label], model=name, column=label, positive=positive
    )
    train_mask, test_mask, split_info = split_frame(
        labelled,
        split_cfg,
        model=name,
        label=label,
        time_column=time_column,
        classification=task in CLASSIFICATION,
    )
    split_info["unlabelled_rows_dropped"] = int(len(frame) - len(labelled))
    # lets a promotion check that re-splitting the recorded data gives the same rows
    split_info["test_rows_sha256"] = test_rows_fingerprint(positions[test_mask])
    return HeldOut(labelled, positions, y_all, classes, train_mask, test_mask, split_info)


def train_model(
    name: str,
    cfg: ModelConfig,
    frame: pd.DataFrame,
    *,
    label: str | None,
    features: list[str],
    time_column: str | None,
    trials: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> Trained:
    task = cfg.task
    if task == "clustering":
        return _train_clustering(name, cfg, frame, features=features)
    if task not in DEFAULT_METRIC:
        raise TrainingError(
            f"model '{name}': the task '{task}' is not trained by this version of boite yet",
            model=name,
            hint="Tasks trained today: " + ", ".join(DEFAULT_METRIC) + ".",
        )
    if label is None or label not in frame:
        guess = did_you_mean(label or "", frame.columns)
        raise TrainingError(
            f"model '{name}': the label column '{label}' does not exist",
            model=name,
            hint=(f"Did you mean '{guess}'? " if guess else "")
            + "Columns: "
            + ", ".join(map(str, frame.columns))
            + ".",
        )
    if not features:
        raise TrainingError(f"model '{name}': its feature list resolves to no column", model=name)
    algorithm = get_algorithm(cfg.algorithm, model=name)
    held = hold_out(name, cfg, frame, label=label, time_column=time_column)
    labelled, positions, y_all, classes = held.labelled, held.positions, held.y, held.classes
    train_mask, test_mask, split_info = held.train_mask, held.test_mask, held.split
    if task in CLASSIFICATION and classes is not None:
        unseen = [classes[c] for c in range(len(classes)) if not (y_all[train_mask] == c).any()]
        if unseen:
            raise TrainingError(
                f"model '{name}': the class(es) {', '.join(map(repr, unseen))} have no example "
                "in the training split, so the model could never predict them",
                model=name,
                hint="Move split.test_from later, lower split.test_size, or drop those rows.",
            )
        absent = [classes[c] for c in range(len(classes)) if not (y_all[test_mask] == c).any()]
        if absent:
            raise TrainingError(
                f"model '{name}': the class(es) {', '.join(map(repr, absent))} have no example "
                "in the test split, so the model cannot be judged on them",
                model=name,
                hint="Move split.test_from earlier, raise split.test_size, or use a random split.",
            )
    train_frame = labelled[train_mask].reset_index(drop=True)
    y_train = y_all[train_mask]
    pre = Preprocessor.fit(train_frame, features, impute=not algorithm.handles_missing)
    X_train = pre.transform(train_frame)
    num_class = len(classes) if task == "multiclass" and classes else None
    groups = _group_sizes(train_frame, cfg.group) if task == "ranking" else None
    params = dict(cfg.params)
    done: list[Trial] = []
    metric = None
    n_trials = trials if trials is not None else (cfg.search.trials if cfg.search else 0)
    if cfg.search is not None and n_trials > 0:
        metric = cfg.search.metric or DEFAULT_METRIC[task]
        params.update(
            _search(
                name,
                cfg,
                algorithm,
                train_frame,
                X_train,
                y_train,
                pre,
                num_class,
                metric=metric,
                n_trials=n_trials,
                on_trial=on_trial,
                done=done,
            )
        )
    started = time.perf_counter()
    fitted = algorithm.fit(
        FitData(X_train, y_train, list(features), pre.categorical, num_class, groups=groups),
        task=task,
        params=params,
        model=name,
    )
    fit_seconds = time.perf_counter() - started
    test_frame = labelled[test_mask].reset_index(drop=True)
    scores = algorithm.predict(fitted, pre.transform(test_frame), task=task)
    y_test = y_all[test_mask]
    if task == "ranking":
        metrics = ranking_metrics(y_test, scores, _group_sizes(test_frame, cfg.group), k=cfg.k)
    else:
        metrics = task_metrics(task, y_test, scores)
    result = Trained(
        name=name,
        task=task,
        algorithm=algorithm,
        fitted=fitted,
        preprocessor=pre,
        classes=classes,
        params=params,
        metrics=metrics,
        split=split_info,
        label=label,
        features=list(features),
        test_index=positions[test_mask],
        test_scores=scores,
        test_y=y_test,
        trials=done,
        search_metric=metric,
        fit_seconds=fit_seconds,
    )
    if task == "binary_classification":
        result.calibration = calibration(y_test, scores)
        if cfg.business is not None:
            result.business = business_value(y_test, scores, cfg.business)
            metrics["business_value"] = result.business["best_value"]
    for column in cfg.slices:
        if column not in test_frame:
            guess = did_you_mean(column, test_frame.columns)
            raise TrainingError(
                f"model '{name}': the slice column '{column}' is not in its data",
                model=name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Columns: "
                + ", ".join(map(str, test_frame.columns))
                + ".",
            )
    slices = list(cfg.slices)
    if slices and task != "ranking":
        result.slices = slice_metrics(task, test_frame, y_test, scores, slices)
    return result


def _search(
    name: str,
    cfg: ModelConfig,
    algorithm: Algorithm,
    train_frame: pd.DataFrame,
    X: np.ndarray,
    y: np.ndarray,
    pre: Preprocessor,
    num_class: int | None,
    *,
    metric: str,
    n_trials: int,
    on_trial: Callable[[Trial], None] | None,
    done: list[Trial],
) -> dict[str, Any]:
    import optuna

    assert cfg.search is not None
    task = cfg.task
    if metric not in DIRECTIONS:
        guess = did_you_mean(metric, DIRECTIONS)
        raise TrainingError(
            f"model '{name}': cannot search on the metric '{metric}'",
            model=name,
            hint=(f"Did you mean '{guess}'? " if guess else "")
            + "Metrics: "
            + ", ".join(sorted(DIRECTIONS))
            + ".",
        )
    direction = cfg.search.direction or DIRECTIONS[metric]
    # the search judges trials on a validation part of the training rows: the
    # test rows stay unseen until the final evaluation
    rng = np.random.default_rng(cfg.search.seed)
    valid = np.zeros(len(y), dtype=bool)
    groups_train = groups_valid = None
    if task == "ranking":
        keys = train_frame[cfg.group].astype("string").to_numpy()
        unique = np.unique(keys)
        chosen = rng.choice(unique, size=max(1, len(unique) // 5), replace=False)
        valid = np.isin(keys, chosen)
        groups_train = _group_sizes(train_frame[~valid], cfg.group)
        groups_valid = _group_sizes(train_frame[valid], cfg.group)
    else:
        valid[rng.choice(len(y), size=max(1, len(y) // 5), replace=False)] = True
    fit = FitData(
        X[~valid],
        y[~valid],
        list(pre.features),
        pre.categorical,
        num_class,
        X_valid=X[valid],
        y_valid=y[valid],
        groups=groups_train,
        groups_valid=groups_valid,
    )
    prune = cfg.search.pruning and _LGB_DIRECTION.get(task) == direction
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=cfg.search.seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=20)
        if prune
        else optuna.pruners.NopPruner(),
    )

    def objective(trial: Any) -> float:
        params = {**cfg.params, **_suggest(trial, cfg.search.space)}  # type: ignore[union-attr]
        started = time.perf_counter()

        def progress(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            fitted = algorithm.fit(
                fit, task=task, params=params, model=name, progress=progress if prune else None
            )
            scores = algorithm.predict(fitted, fit.X_valid, task=task)  # type: ignore[arg-type]
            if task == "ranking":
                metrics = ranking_metrics(fit.y_valid, scores, groups_valid, k=cfg.k)  # type: ignore[arg-type]
            else:
                metrics = task_metrics(task, fit.y_valid, scores)  # type: ignore[arg-type]
            if metric == "business_value" and cfg.business is not None:
                metrics["business_value"] = business_value(
                    fit.y_valid,
                    scores,
                    cfg.business,  # type: ignore[arg-type]
                )["best_value"]
            if metric not in metrics:
                raise TrainingError(
                    f"model '{name}': the metric '{metric}' does not apply to {task}",
                    model=name,
                    hint="Metrics for this task: " + ", ".join(sorted(metrics)) + ".",
                )
            value = float(metrics[metric])
        except optuna.TrialPruned:
            record = Trial(trial.number, params, None, "pruned", time.perf_counter() - started)
            done.append(record)
            if on_trial:
                on_trial(record)
            raise
        record = Trial(trial.number, params, value, "complete", time.perf_counter() - started)
        done.append(record)
        if on_trial:
            on_trial(record)
        return value

    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=cfg.search.timeout_s,
        n_jobs=cfg.search.parallel,
        catch=(),
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise TrainingError(f"model '{name}': no search trial completed", model=name)
    return dict(study.best_params)


def _group_sizes(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    """Sizes of the runs of equal group values, in order (rows are sorted by group)."""
    assert column is not None
    keys = frame[column].astype("string").fillna("<missing>").to_numpy()
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, keys[1:] != keys[:-1]]
    edges = np.r_[np.flatnonzero(starts), len(keys)]
    return np.diff(edges)


def _train_clustering(
    name: str, cfg: ModelConfig, frame: pd.DataFrame, *, features: list[str]
) -> Trained:
    """k-means (or any clusterer): every row gets a segment; silhouette on held-out rows."""
    if not features:
        raise TrainingError(f"model '{name}': its feature list resolves to no column", model=name)
    algorithm = get_algorithm(cfg.algorithm, model=name)
    if algorithm.name == "lightgbm":
        raise TrainingError(
            f"model '{name}': clustering needs a clusterer, not lightgbm",
            model=name,
            hint="Use algorithm: kmeans (or sklearn:sklearn.cluster.MiniBatchKMeans).",
        )
    rng = np.random.default_rng(cfg.split.seed)
    test = np.zeros(len(frame), dtype=bool)
    test[
        rng.choice(len(frame), size=max(1, round(len(frame) * cfg.split.test_size)), replace=False)
    ] = True
    train_frame = frame[~test].reset_index(drop=True)
    pre = Preprocessor.fit(train_frame, features, impute=True)
    X_train = pre.transform(train_frame)
    started = time.perf_counter()
    fitted = algorithm.fit(
        FitData(X_train, np.zeros(len(X_train)), list(features), pre.categorical),
        task="clustering",
        params=dict(cfg.params),
        model=name,
    )
    fit_seconds = time.perf_counter() - started
    X_test = pre.transform(frame[test].reset_index(drop=True))
    segments = algorithm.predict(fitted, X_test, task="clustering")
    metrics = clustering_metrics(X_test, segments, seed=cfg.split.seed)
    return Trained(
        name=name,
        task="clustering",
        algorithm=algorithm,
        fitted=fitted,
        preprocessor=pre,
        classes=None,
        params=dict(cfg.params),
        metrics=metrics,
        split={"by": "random", "train_rows": int((~test).sum()), "test_rows": int(test.sum())},
        label="segment",
        features=list(features),
        test_index=np.flatnonzero(test),
        test_scores=segments,
        test_y=segments,
        fit_seconds=fit_seconds,
    )
