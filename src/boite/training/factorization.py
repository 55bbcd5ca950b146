"""A factorization machine for implicit feedback, with side features (PyTorch, `deep` extra).

Each user is a set of one-hot fields: its id and its *user features* (a country, an
age band); each item likewise: its id and its *item features* (a price band, a
product type). Every field value f has a weight w_f and a vector v_f, and the
machine scores a (user, item) pair with user fields U and item fields I as

    w0 + Σ_{U∪I} w_f + Σ_{pairs in U} v_f·v_g + Σ_{pairs in I} v_f·v_g + (Σ_U v_f)·(Σ_I v_f)

An item that few people bought shares its feature vectors with the items like it,
so it is placed by what they have in common; that is what side features are for.

It learns from which (user, item) pairs occurred, each against an item drawn at
random from those anyone bought, taken as one the user does not want: BPR (the
default) maximises log σ(score(u, i) - score(u, j)); 'logistic' treats the drawn
item as a 0 and the bought one as a 1. Epochs are bounded and every draw comes from the seed, so a
fit on CPU with the same threads is repeatable to the bit.

Serving: w0, the user's weights and the pairs within U are the same for all of a
user's items, so they cannot change that user's ranking. The fitted machine is
therefore exported as the arrays a matrix-factorization `Recommender` serves:

    user_factors[u] = [Σ_U v, 1]        item_factors[i] = [Σ_I v, Σ_I w + pairs within I]

and a user's top k is one matrix product, the same as for ALS; unknown users
still get the best sellers. Numeric side columns are cut into quantile bands
(``bins``), so a price of 2.55 and one of 2.60 share a vector; cast a numeric code
to text in SQL to have each value kept apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from boite.core.suggest import did_you_mean
from boite.errors import TrainingError

NAME = "factorization_machine"
ALIASES = (NAME, "fm")

# name -> (default, kind, lowest allowed); kind "int"/"float" or a tuple of choices
_PARAMS: dict[str, tuple[Any, Any, float]] = {
    "factors": (32, "int", 1),
    "epochs": (20, "int", 1),
    "batch_size": (4096, "int", 1),
    "learning_rate": (0.02, "float", 0.0),
    "regularization": (0.01, "float", 0.0),
    "init_std": (0.05, "float", 0.0),
    "bins": (8, "int", 2),
    "loss": ("bpr", ("bpr", "logistic"), 0),
    "seed": (0, "int", 0),
    "num_threads": (1, "int", 1),
}
MAX_EPOCHS = 500


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainingError(
            "the factorization_machine algorithm needs PyTorch",
            hint="Install the extra: pip install 'boite[deep]' (or pip install torch).",
        ) from None
    return torch


def settings(params: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The FM's parameters with defaults filled in; an unknown or bad one is a TrainingError."""
    for key in params:
        if key not in _PARAMS:
            guess = did_you_mean(key, _PARAMS)
            raise TrainingError(
                f"model '{model}': {NAME} has no parameter '{key}'",
                model=model,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + f"It takes: {', '.join(_PARAMS)}; fix models.{model}.params.",
            )
    out: dict[str, Any] = {}
    for key, (default, kind, lowest) in _PARAMS.items():
        value = params.get(key, default)
        if isinstance(kind, tuple):
            ok = value in kind
            allowed = "one of " + ", ".join(repr(k) for k in kind)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= lowest
            ok = ok and not (key == "epochs" and value > MAX_EPOCHS)
            allowed = f"an integer >= {lowest:g}" + (
                f" and <= {MAX_EPOCHS}" if key == "epochs" else ""
            )
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and np.isfinite(value) and value >= lowest
            ok = ok and not (key == "learning_rate" and value == 0)
            allowed = "a number > 0" if key == "learning_rate" else f"a number >= {lowest:g}"
        if not ok:
            raise TrainingError(
                f"model '{model}': the '{key}' parameter of {NAME} must be {allowed}; "
                f"got {value!r} instead",
                model=model,
                hint=f"Fix models.{model}.params.{key}, or leave it out for {default!r}.",
            )
        out[key] = value
    return out


def encode_fields(table: pd.DataFrame, *, bins: int) -> list[np.ndarray]:
    """Per column of ``table`` (one row per entity), a code per row from 0 up.

    Text and booleans: one code per value. Numbers: one code per quantile band.
    A missing value has a code of its own, as 'unknown' is itself informative.
    """
    fields = []
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(np.float64)
            bands = pd.qcut(numbers, q=bins, labels=False, duplicates="drop")
            codes = np.where(numbers.isna(), -1, bands.fillna(-1)).astype(np.int64)
        else:
            codes = pd.factorize(values.astype("string"), use_na_sentinel=True)[0]
        # -1 (missing) becomes the last code
        codes = np.where(codes < 0, codes.max(initial=-1) + 1, codes).astype(np.int64)
        fields.append(codes)
    return fields


def _layout(ids: int, fields: list[np.ndarray], start: int) -> tuple[np.ndarray, int]:
    """(rows x fields) indexes into one shared feature space, and the next free index."""
    columns = [start + np.arange(ids, dtype=np.int64)]
    offset = start + ids
    for codes in fields:
        columns.append(offset + codes)
        offset += int(codes.max(initial=-1)) + 1
    return np.stack(columns, axis=1), offset


class FactorizationMachine:
    """A factorization machine over users, items and their side fields.

    ``fit`` learns ``w0_``, ``w_`` (one weight per feature value), ``V_`` (one vector
    per feature value), and keeps ``user_x_`` and ``item_x_``: each user's and
    item's feature indexes.
    """

    def __init__(self, params: dict[str, Any] | None = None, *, model: str = "model") -> None:
        self.params = dict(params or {})
        self.model = model

    def fit(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        user_side: pd.DataFrame | None = None,
        item_side: pd.DataFrame | None = None,
    ) -> FactorizationMachine:
        """Learn from the pairs (user_idx[k], item_idx[k]); side tables have a row per entity."""
        torch = _torch()
        cfg = settings(self.params, model=self.model)
        user_side = user_side if user_side is not None else pd.DataFrame(index=range(n_users))
        item_side = item_side if item_side is not None else pd.DataFrame(index=range(n_items))
        user_x, offset = _layout(n_users, encode_fields(user_side, bins=cfg["bins"]), 0)
        item_x, n_features = _layout(n_items, encode_fields(item_side, bins=cfg["bins"]), offset)
        # a pair bought on several days is one positive: which, not how much
        pairs = np.unique(
            np.stack([user_idx.astype(np.int64), item_idx.astype(np.int64)], axis=1), axis=0
        )
        if len(pairs) == 0:
            raise TrainingError(f"model '{self.model}': no interactions to learn from")

        previous = torch.get_num_threads()
        torch.set_num_threads(int(cfg["num_threads"]))
        try:
            w0, w, V = self._train(torch, cfg, pairs, user_x, item_x, n_features)
        finally:
            torch.set_num_threads(previous)
        self.w0_, self.w_, self.V_ = w0, w, V
        self.user_x_, self.item_x_ = user_x, item_x
        self.settings_ = cfg
        return self

    @staticmethod
    def _train(
        torch: Any,
        cfg: dict[str, Any],
        pairs: np.ndarray,
        user_x: np.ndarray,
        item_x: np.ndarray,
        n_features: int,
    ) -> tuple[float, np.ndarray, np.ndarray]:
        generator = torch.Generator().manual_seed(int(cfg["seed"]))
        rng = np.random.default_rng(int(cfg["seed"]))
        d = int(cfg["factors"])
        # one table, v_f beside w_f: one gather and one gradient per step, not six
        table = torch.nn.Parameter(
            torch.cat(
                [
                    torch.randn(n_features, d, generator=generator) * cfg["init_std"],
                    torch.zeros(n_features, 1),
                ],
                dim=1,
            )
        )
        w0 = torch.nn.Parameter(torch.zeros(()))
        optimiser = torch.optim.Adam([w0, table], lr=float(cfg["learning_rate"]))
        ux, ix = torch.from_numpy(user_x), torch.from_numpy(item_x)
        users, items = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
        # an item nobody bought in training (new in the catalogue) is no evidence of
        # dislike: drawn as a negative it would sink, whatever its side features say
        bought = np.unique(pairs[:, 1])
        logistic = cfg["loss"] == "logistic"
        reg, batch = float(cfg["regularization"]), int(cfg["batch_size"])
        F = torch.nn.functional

        def side(rows: Any) -> tuple[Any, Any, Any]:
            """Σ v, the weights plus the pairs within the fields, and Σ |v|² (for the penalty)."""
            vectors = rows[..., :d]
            total = vectors.sum(dim=1)
            squares = (vectors * vectors).sum(dim=(1, 2))
            within = 0.5 * ((total * total).sum(dim=1) - squares)
            return total, rows[..., d].sum(dim=1) + within, squares

        for _ in range(int(cfg["epochs"])):
            order = torch.from_numpy(rng.permutation(len(pairs)))
            negatives = torch.from_numpy(bought[rng.integers(0, len(bought), len(pairs))])
            for start in range(0, len(pairs), batch):
                index = order[start : start + batch]
                x = [ux[users[index]], ix[items[index]], ix[negatives[index]]]
                rows = F.embedding(torch.cat([part.reshape(-1) for part in x]), table)
                sizes = [part.numel() for part in x]
                u_rows, i_rows, j_rows = (
                    r.view(len(index), -1, d + 1) for r in torch.split(rows, sizes)
                )
                u_sum, u_bias, u_sq = side(u_rows)
                i_sum, i_bias, i_sq = side(i_rows)
                j_sum, j_bias, j_sq = side(j_rows)
                positive = i_bias + (u_sum * i_sum).sum(dim=1)
                negative = j_bias + (u_sum * j_sum).sum(dim=1)
                if logistic:
                    # the user's own terms shift both scores alike; here they matter
                    base = w0 + u_bias
                    loss = -(
                        F.logsigmoid(base + positive) + F.logsigmoid(-(base + negative))
                    ).mean()
                else:
                    loss = -F.logsigmoid(positive - negative).mean()
                loss = loss + reg * (u_sq + i_sq + j_sq).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        learned = table.detach().numpy().astype(np.float64)
        return float(w0.detach()), learned[:, d].copy(), learned[:, :d].copy()

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """The full FM score of each (user, item): shape (len(users), len(items)).

        Computed from the joined feature set of each pair, as the model is defined,
        not from the exported factors: the two must rank a user's items alike.
        """
        items = np.arange(len(self.item_x_)) if items is None else items
        ux, ix = self.user_x_[users], self.item_x_[items]
        out = np.empty((len(users), len(items)))
        for row, x_user in enumerate(ux):
            x = np.concatenate([np.repeat(x_user[None, :], len(items), axis=0), ix], axis=1)
            vectors = self.V_[x]
            total = vectors.sum(axis=1)
            pairs = 0.5 * ((total * total).sum(axis=1) - (vectors * vectors).sum(axis=(1, 2)))
            out[row] = self.w0_ + self.w_[x].sum(axis=1) + pairs
        return out

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_factors, item_factors), float32: user·item ranks as the FM does."""
        user_v = self.V_[self.user_x_].sum(axis=1)
        item_vectors = self.V_[self.item_x_]
        item_v = item_vectors.sum(axis=1)
        within = 0.5 * ((item_v * item_v).sum(axis=1) - (item_vectors**2).sum(axis=(1, 2)))
        item_bias = self.w_[self.item_x_].sum(axis=1) + within
        users = np.hstack([user_v, np.ones((len(user_v), 1))])
        items = np.hstack([item_v, item_bias[:, None]])
        return users.astype(np.float32), items.astype(np.float32)


def side_table(
    frame: pd.DataFrame,
    codes: np.ndarray,
    names: np.ndarray,
    columns: list[str],
    *,
    model: str,
    of: str,
) -> pd.DataFrame:
    """One row per entity (user or item, by code) with its side columns; each must be constant.

    A value that changes over time (a customer who moved) is refused rather than
    picked: which value to keep is the project's decision, made in its transform.
    """
    table = frame[columns].copy()
    table.insert(0, "_code", codes)
    distinct = table.drop_duplicates()
    clash = distinct["_code"].duplicated(keep=False)
    if clash.any():
        example = distinct[clash]
        code = int(example["_code"].iloc[0])
        rows = example[example["_code"] == code]
        varying = [c for c in columns if rows[c].nunique(dropna=False) > 1]
        shown = ", ".join(repr(v) for v in rows[varying[0]].head(3).tolist())
        raise TrainingError(
            f"model '{model}': the {of} feature '{varying[0]}' must be constant per {of}, but "
            f"{of} {names[code]!r} has several values ({shown})",
            model=model,
            hint=f"Give each {of} one value in the transform, e.g. "
            f"mode({varying[0]}) OVER (PARTITION BY the {of} column).",
        )
    ordered = distinct.set_index("_code").reindex(range(len(names)))
    return ordered.reset_index(drop=True)
