"""Recommendation from implicit feedback: matrix factorization (implicit's ALS), a
factorization machine with side features (PyTorch; see `boite.training.factorization`)
and a popularity baseline, judged by precision, recall and NDCG at k on held-out
interactions.

A recommender's state is plain arrays (ids, factor matrices, what each user has
already seen), so it is saved in the 'arrays' model format: no pickle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from boite.core.config import ModelConfig
from boite.core.suggest import did_you_mean
from boite.errors import TrainingError
from boite.training.factorization import ALIASES as FM_ALIASES

RECOMMENDERS = ("als", "popularity", "factorization_machine")


@dataclass(frozen=True)
class Recommender:
    """Top-k items per user: from factors when there are any, else by popularity."""

    state: dict[str, np.ndarray]

    @property
    def users(self) -> np.ndarray:
        return self.state["users"]

    @property
    def items(self) -> np.ndarray:
        return self.state["items"]

    def _seen(self, row: int) -> np.ndarray:
        indptr, indices = self.state["seen_indptr"], self.state["seen_indices"]
        return indices[indptr[row] : indptr[row + 1]]

    def recommend_rows(self, rows: np.ndarray, k: int, *, exclude_seen: bool = True) -> np.ndarray:
        """Item indexes, shape (len(rows), k); rows are user indexes (-1: an unknown user)."""
        popularity = self.state["popularity"].astype(np.float64)
        if "user_factors" in self.state:
            known = np.clip(rows, 0, None)
            scores = self.state["user_factors"][known] @ self.state["item_factors"].T
            scores[rows < 0] = popularity  # a new user gets the popular items
        else:
            scores = np.tile(popularity, (len(rows), 1))
        if exclude_seen:
            for i, row in enumerate(rows):
                if row >= 0:
                    scores[i, self._seen(row)] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    def recommend(self, users: list[Any], k: int = 10) -> list[list[str]]:
        index = {u: i for i, u in enumerate(self.users.tolist())}
        rows = np.array([index.get(str(u), -1) for u in users], dtype=np.int64)
        out = []
        for row, top in zip(rows, self.recommend_rows(rows, k), strict=True):
            # fewer unseen items than k: the seen ones fill the tail; drop them
            seen = set(self._seen(row).tolist()) if row >= 0 else set()
            out.append([str(self.items[j]) for j in top if j not in seen])
        return out


def _matrix(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix((weights.astype(np.float32), (users, items)), shape=shape)


def fit_recommender(
    algorithm: str,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    weights: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    params: dict[str, Any],
    *,
    model: str,
    user_side: pd.DataFrame | None = None,
    item_side: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The state a `Recommender` serves; side tables (a row per user / item) are for the FM."""
    matrix = _matrix(user_idx, item_idx, weights, (len(users), len(items)))
    seen = matrix.tocsr()
    seen.sort_indices()
    state: dict[str, np.ndarray] = {
        "users": users.astype(str),
        "items": items.astype(str),
        "popularity": np.asarray((matrix > 0).sum(axis=0)).ravel().astype(np.float64),
        "seen_indptr": seen.indptr.astype(np.int64),
        "seen_indices": seen.indices.astype(np.int64),
    }
    if algorithm == "popularity":
        return state
    if algorithm in FM_ALIASES:
        from boite.training.factorization import FactorizationMachine

        fm = FactorizationMachine(params, model=model).fit(
            user_idx, item_idx, len(users), len(items), user_side=user_side, item_side=item_side
        )
        state["user_factors"], state["item_factors"] = fm.factors()
        return state
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    settings: dict[str, Any] = {
        "factors": 64,
        "regularization": 0.05,
        "iterations": 15,
        "alpha": 10.0,
        "random_state": 0,
    }
    unknown = set(params) - set(settings) - {"num_threads"}
    if unknown:
        raise TrainingError(
            f"model '{model}': als has no parameter(s) {', '.join(sorted(unknown))}",
            model=model,
            hint="ALS takes: factors, regularization, iterations, alpha, random_state.",
        )
    settings.update(params)
    alpha = float(settings.pop("alpha"))
    threads = int(settings.pop("num_threads", 1))
    # BLAS threads fight implicit's own threads on a small machine
    with threadpool_limits(1, "blas"):
        try:
            als = AlternatingLeastSquares(**settings, num_threads=threads)
        except (TypeError, ValueError) as exc:
            raise TrainingError(
                f"model '{model}': als rejected its parameters: {exc}", model=model
            ) from None
        als.fit(matrix * alpha, show_progress=False)
    state["user_factors"] = np.asarray(als.user_factors, dtype=np.float32)
    state["item_factors"] = np.asarray(als.item_factors, dtype=np.float32)
    return state


def ranking_quality(
    recommended: np.ndarray, truth: list[set[int]], k: int, n_items: int
) -> dict[str, float]:
    hits = np.array(
        [[j in t for j in row] for row, t in zip(recommended, truth, strict=True)], dtype=float
    )
    relevant = np.array([len(t) for t in truth], dtype=float)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    ideal = np.array([discounts[: int(min(r, k))].sum() for r in relevant])
    return {
        f"precision_at_{k}": float(hits.sum(axis=1).mean() / k),
        f"recall_at_{k}": float((hits.sum(axis=1) / relevant).mean()),
        f"ndcg_at_{k}": float((dcg / ideal).mean()),
        "coverage": float(len(np.unique(recommended)) / n_items),
    }


def train_recommendation(
    name: str,
    cfg: ModelConfig,
    frame: pd.DataFrame,
    *,
    weight: str | None,
    time_column: str | None,
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, Any], float]:
    """(state, metrics, split description, fit seconds) on the frame's interactions."""
    from boite.training.factorization import side_table
    from boite.training.split import split_frame

    if cfg.algorithm not in RECOMMENDERS and cfg.algorithm not in FM_ALIASES:
        guess = did_you_mean(cfg.algorithm, RECOMMENDERS + FM_ALIASES)
        raise TrainingError(
            f"model '{name}': a recommendation model uses one of {', '.join(RECOMMENDERS)}; "
            f"got '{cfg.algorithm}'",
            model=name,
            hint=f"Did you mean '{guess}'?" if guess else None,
        )
    assert cfg.user and cfg.item
    side = cfg.user_features + cfg.item_features
    if side and cfg.algorithm not in FM_ALIASES:
        raise TrainingError(
            f"model '{name}': {cfg.algorithm} cannot use user_features or item_features",
            model=name,
            hint="Side features need algorithm: factorization_machine; or remove them.",
        )
    for column in (cfg.user, cfg.item, *side):
        if column not in frame:
            guess = did_you_mean(column, [str(c) for c in frame.columns])
            raise TrainingError(
                f"model '{name}': the column '{column}' does not exist in its interactions",
                model=name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Columns: "
                + ", ".join(frame.columns)
                + ".",
            )
    data = frame.dropna(subset=[cfg.user, cfg.item]).reset_index(drop=True)
    values = (
        pd.to_numeric(data[weight], errors="coerce").fillna(0).to_numpy(np.float64)
        if weight
        else np.ones(len(data))
    )
    data = data[values > 0].reset_index(drop=True)
    values = values[values > 0]
    train, test, split = split_frame(
        data, cfg.split, model=name, label=None, time_column=time_column, classification=False
    )
    user_codes, users = pd.factorize(data[cfg.user].astype(str), sort=True)
    item_codes, items = pd.factorize(data[cfg.item].astype(str), sort=True)
    sides: dict[str, pd.DataFrame | None] = {"user_side": None, "item_side": None}
    if cfg.user_features:
        sides["user_side"] = side_table(
            data, user_codes, np.asarray(users), cfg.user_features, model=name, of="user"
        )
    if cfg.item_features:
        sides["item_side"] = side_table(
            data, item_codes, np.asarray(items), cfg.item_features, model=name, of="item"
        )
    started = time.perf_counter()
    state = fit_recommender(
        cfg.algorithm,
        user_codes[train],
        item_codes[train],
        np.log1p(values[train]),
        np.asarray(users),
        np.asarray(items),
        dict(cfg.params),
        model=name,
        **sides,
    )
    fit_seconds = time.perf_counter() - started
    # judged on users seen in training who bought something new in the test part
    seen_pairs = set(zip(user_codes[train].tolist(), item_codes[train].tolist(), strict=True))
    truth: dict[int, set[int]] = {}
    trained_users = set(user_codes[train].tolist())
    for u, i in zip(user_codes[test].tolist(), item_codes[test].tolist(), strict=True):
        if u in trained_users and (u, i) not in seen_pairs:
            truth.setdefault(u, set()).add(i)
    if not truth:
        raise TrainingError(
            f"model '{name}': no user of the training part has new items in the test part",
            model=name,
            hint="Move split.test_from, or check the user and item columns.",
        )
    rows = np.array(sorted(truth), dtype=np.int64)
    expected = [truth[int(r)] for r in rows]
    k = cfg.k
    model = Recommender(state)
    metrics = ranking_quality(model.recommend_rows(rows, k), expected, k, len(items))
    baseline = Recommender(
        {key: v for key, v in state.items() if key not in ("user_factors", "item_factors")}
    )
    base = ranking_quality(baseline.recommend_rows(rows, k), expected, k, len(items))
    metrics.update({f"popularity_{key}": v for key, v in base.items()})
    p, pb = metrics[f"precision_at_{k}"], base[f"precision_at_{k}"]
    metrics["precision_lift_over_popularity"] = p / pb if pb > 0 else float("inf")
    metrics["test_users"] = float(len(rows))
    split.update(users=len(users), items=len(items))
    return state, metrics, split, fit_seconds
