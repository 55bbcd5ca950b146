"""The factorization machine recommender on planted structure: three groups of customers,
each buying from its own shelf of products, and a product kind that names the shelf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from boite.core.config import ModelConfig, parse_config
from boite.errors import ConfigError, TrainingError
from boite.registry.modelfile import read_model, write_model
from boite.training.factorization import FactorizationMachine, encode_fields
from boite.training.predictor import Predictor
from boite.training.recommend import Recommender, fit_recommender, train_recommendation

GROUPS, USERS, ITEMS = 3, 150, 45  # items 3g, 3g+1.. are not used: shelf = item % GROUPS
FAST = "{factors: 8, epochs: 15, batch_size: 256, learning_rate: 0.05, regularization: 0.001}"

SPEC = """
name: t
models:
  rec:
    task: recommendation
    label: {dataset: purchases, column: quantity, timestamp: day}
    user: customer
    item: product
    features: [customer, product]
    k: 5
    split: {by: time, test_from: "2024-02-01"}
    algorithm: ALGO
    params: PARAMS
EXTRA
"""


def _cfg(algorithm: str = "factorization_machine", params: str = FAST, extra: str = "") -> Any:
    text = SPEC.replace("ALGO", algorithm).replace("PARAMS", params).replace("EXTRA", extra)
    return parse_config(text).models["rec"]


def _planted(seed: int = 0) -> pd.DataFrame:
    """Each customer buys 6 products of their group's shelf in January and 3 more in
    February; 1 in 5 purchases is of a product of any shelf. Group 0 is the biggest,
    so the best sellers are its shelf's: popularity is right only for group 0."""
    rng = np.random.default_rng(seed)
    group = rng.choice(GROUPS, size=USERS, p=[0.5, 0.3, 0.2])
    rows = []
    for user in range(USERS):
        shelf = np.arange(group[user], ITEMS, GROUPS)
        bought = rng.choice(shelf, size=9, replace=False)
        noise = rng.random(9) < 0.2
        bought[noise] = rng.integers(0, ITEMS, noise.sum())
        for n, item in enumerate(bought):
            day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(n * 3 + (n >= 6) * 20))
            rows.append((f"u{user:03d}", f"p{item:02d}", day, 1, f"c{group[user]}", item % GROUPS))
    frame = pd.DataFrame(
        rows, columns=["customer", "product", "day", "quantity", "country", "shelf"]
    )
    frame["kind"] = "k" + frame["shelf"].astype(str)
    # a shelf's prices lie apart from the others': three quantile bands, one per shelf
    product = frame["product"].str[1:].astype(int)
    frame["price"] = frame["shelf"] * 10.0 + (product // GROUPS) * 0.1
    return frame


def _train(frame: pd.DataFrame, cfg: Any) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    state, metrics, _, _ = train_recommendation(
        "rec", cfg, frame, weight="quantity", time_column="day"
    )
    return state, metrics


def test_learns_the_shelves_and_beats_popularity() -> None:
    state, metrics = _train(_planted(), _cfg())
    assert metrics["precision_at_5"] > 2 * metrics["popularity_precision_at_5"]
    assert metrics["precision_lift_over_popularity"] > 2
    assert metrics["coverage"] > metrics["popularity_coverage"]
    # served as rank-(factors + 1) arrays: [Σ user v, 1] and [Σ item v, item bias]
    assert state["user_factors"].shape == (USERS, 9) and state["user_factors"].dtype == np.float32
    assert np.all(state["user_factors"][:, -1] == 1)
    assert state["item_factors"].shape == (ITEMS, 9)


def test_the_fm_alias_and_did_you_mean() -> None:
    frame = _planted()
    _, short = _train(frame, _cfg("fm"))
    _, full = _train(frame, _cfg())
    assert short == full
    with pytest.raises(TrainingError, match="one of als, popularity, factorization_machine") as e:
        _train(frame, _cfg("factorisation_machine"))
    assert e.value.hint == "Did you mean 'factorization_machine'?"


def test_same_seed_same_model_other_seed_other_model() -> None:
    frame = _planted()
    first, _ = _train(frame, _cfg(extra="    item_features: [kind]"))
    again, _ = _train(frame, _cfg(extra="    item_features: [kind]"))
    seeded = FAST.replace("}", ", seed: 7}")
    other, _ = _train(frame, _cfg(params=seeded, extra="    item_features: [kind]"))
    for key in ("user_factors", "item_factors"):
        assert np.array_equal(first[key], again[key])
        assert not np.array_equal(first[key], other[key])


def _cold(frame: pd.DataFrame, item: str) -> pd.DataFrame:
    """``item`` removed from January: nobody had bought it when the model learnt."""
    return frame[~((frame["product"] == item) & (frame["day"] < "2024-02-01"))]


def _rank_percentile(state: dict[str, np.ndarray], users: np.ndarray, item: int) -> float:
    scores = state["user_factors"][users] @ state["item_factors"].T
    return float((scores > scores[:, [item]]).mean())  # 0: at the top; 1: at the bottom


@pytest.mark.parametrize("column", ["kind", "price"])
def test_item_features_place_a_product_nobody_has_bought(column: str) -> None:
    frame = _planted()
    cold = "p03"  # on group 0's shelf
    frame = _cold(frame, cold).reset_index(drop=True)
    banded = FAST.replace("}", ", bins: 3}")
    with_side, _ = _train(frame, _cfg(params=banded, extra=f"    item_features: [{column}]"))
    without, _ = _train(frame, _cfg(params=banded))
    item = list(with_side["items"]).index(cold)
    group = frame.drop_duplicates("customer").set_index("customer")["country"]
    own = np.flatnonzero(group.reindex(with_side["users"]).to_numpy() == "c0")
    others = np.flatnonzero(group.reindex(with_side["users"]).to_numpy() != "c0")
    # with its kind (or price band) known it ranks higher for its shelf's customers
    # than for the others; without, it is where its random start left it, alike for all.
    # (It stays below the bought products of its shelf: their own weights carry
    # what was learnt of them, and it has none.)
    gap_with = _rank_percentile(with_side, others, item) - _rank_percentile(with_side, own, item)
    gap_without = _rank_percentile(without, others, item) - _rank_percentile(without, own, item)
    assert gap_with > 0.25 and abs(gap_without) < 0.1
    assert _rank_percentile(with_side, own, item) < _rank_percentile(without, own, item)


def test_user_features_place_a_customer_seen_once() -> None:
    """A customer with one January purchase (a noisy one) is placed by their country."""
    frame = _planted()
    users = frame.drop_duplicates("customer").set_index("customer")["country"]
    newcomer = users[users == "c1"].index[0]
    january = frame[(frame["customer"] == newcomer) & (frame["day"] < "2024-02-01")]
    keep = january[january["shelf"] == 0].index[:1]  # one purchase from another shelf
    keep = keep if len(keep) else frame.index[:0]
    drop = january.index.difference(keep)
    frame = frame.drop(drop).reset_index(drop=True)
    with_side, _ = _train(frame, _cfg(extra="    user_features: [country]"))
    without, _ = _train(frame, _cfg())
    row = list(with_side["users"]).index(newcomer)
    shelf = np.array([int(i[1:]) % GROUPS == 1 for i in with_side["items"]])

    def shelf_share(state: dict[str, np.ndarray]) -> float:
        top = Recommender(state).recommend_rows(np.array([row]), 5)[0]
        return float(shelf[top].mean())

    assert shelf_share(with_side) >= 0.8
    assert shelf_share(with_side) > shelf_share(without)


def test_exported_factors_rank_as_the_machine_does() -> None:
    frame = _planted()
    users, user_codes = np.unique(frame["customer"], return_inverse=True)
    items, item_codes = np.unique(frame["product"], return_inverse=True)
    side_u = frame.drop_duplicates("customer").set_index("customer").loc[users, ["country"]]
    side_i = frame.drop_duplicates("product").set_index("product").loc[items, ["kind", "price"]]
    # logistic loss learns w0 and the user's own terms too: the export must drop them
    fm = FactorizationMachine({"factors": 6, "epochs": 5, "loss": "logistic"}, model="m").fit(
        user_codes,
        item_codes,
        len(users),
        len(items),
        user_side=side_u.reset_index(drop=True),
        item_side=side_i.reset_index(drop=True),
    )
    assert fm.w0_ != 0
    some = np.array([0, 7, 42, 99])
    direct = fm.score(some)
    user_factors, item_factors = fm.factors()
    exported = user_factors[some].astype(np.float64) @ item_factors.T.astype(np.float64)
    # the same scores up to a per-user constant (w0, the user's weights and pairs)
    shift = direct - exported
    assert np.allclose(shift, shift[:, :1], atol=1e-4)
    assert not np.allclose(shift[:, 0], shift[0, 0])  # that constant differs by user
    for d, e in zip(direct, exported, strict=True):
        assert list(np.argsort(-d, kind="stable")[:10]) == list(np.argsort(-e, kind="stable")[:10])


def test_encoding_of_side_columns() -> None:
    table = pd.DataFrame(
        {
            "country": ["UK", "FR", None, "UK"],
            "price": [1.0, 2.0, np.nan, 100.0],
            "vip": [True, False, True, True],
        }
    )
    country, price, vip = encode_fields(table, bins=2)
    assert country.tolist() == [0, 1, 2, 0]  # missing: a value of its own
    assert price.tolist() == [0, 0, 2, 1]  # two bands and a missing one
    assert vip.tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{factor: 8}", "factorization_machine has no parameter 'factor'"),
        ("{factors: 0}", "'factors' parameter of factorization_machine must be an integer >= 1"),
        ("{epochs: 100000}", "'epochs' parameter .* must be an integer >= 1 and <= 500"),
        ("{epochs: true}", "'epochs' parameter"),
        ("{learning_rate: 0}", "'learning_rate' parameter .* must be a number > 0; got 0"),
        ("{regularization: -1}", "'regularization' parameter .* must be a number >= 0"),
        ("{loss: hinge}", "'loss' parameter .* must be one of 'bpr', 'logistic'; got 'hinge'"),
    ],
)
def test_bad_parameters(params: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message) as e:
        _train(_planted(), _cfg(params=params))
    assert e.value.model == "rec"
    if "factor:" in params:
        assert e.value.hint is not None and e.value.hint.startswith("Did you mean 'factors'?")


def test_bad_side_features() -> None:
    frame = _planted()
    with pytest.raises(TrainingError, match="column 'kinds' does not exist") as e:
        _train(frame, _cfg(extra="    item_features: [kinds]"))
    assert e.value.hint is not None and e.value.hint.startswith("Did you mean 'kind'?")
    with pytest.raises(TrainingError, match="als cannot use user_features or item_features"):
        _train(frame, _cfg("als", "{}", "    user_features: [country]"))
    moved = frame.copy()
    moved.loc[moved["customer"] == "u000", "country"] = ["c0", "c9"] * 4 + ["c0"]
    with pytest.raises(TrainingError, match="'country' must be constant per user, but user 'u000'"):
        _train(moved, _cfg(extra="    user_features: [country]"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    user_features: [customer]", "lists 'customer' twice or as the user/item column"),
        ("    item_features: [kind, kind]", "lists 'kind' twice"),
        ("    user_features: [kind]\n    item_features: [kind]", "in both 'user_features'"),
    ],
)
def test_bad_side_feature_specs(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(extra=extra)


def test_side_features_are_for_recommenders() -> None:
    text = SPEC.replace("task: recommendation", "task: regression").replace(
        "EXTRA", "    item_features: [kind]"
    )
    with pytest.raises(ConfigError, match="'item_features' describes the users or items"):
        parse_config(text.replace("ALGO", "lightgbm").replace("PARAMS", "{}"))


def test_the_model_file_round_trips_and_serves(tmp_path: Path) -> None:
    frame = _planted()
    cfg: ModelConfig = _cfg(extra="    user_features: [country]\n    item_features: [kind]")
    state, _ = _train(frame, cfg)
    preprocessing = {"kind": "recommender", "user": "customer", "item": "product", "k": 5}
    signature = {
        "inputs": [{"name": "customer", "type": "text"}],
        "outputs": [{"name": "items", "type": "list[text]"}],
    }
    path = tmp_path / "fm.model.zip"
    digest = write_model(
        path,
        flavor="arrays",
        task="recommendation",
        model=state,
        signature=signature,
        preprocessing=preprocessing,
    )
    read = read_model(path, expected_sha256=digest)
    served = Predictor.from_parts(read.flavor, read.task, read.model, read.preprocessing)
    asked = ["u000", "u077", "nobody"]
    assert served.recommend(asked, k=5) == Recommender(state).recommend(asked, k=5)
    # a customer the model never saw gets the best sellers
    assert served.recommend(["nobody"], k=3) == Recommender(
        {k: v for k, v in state.items() if not k.endswith("_factors")}
    ).recommend(["nobody"], k=3)


def test_fit_recommender_takes_side_tables() -> None:
    users, items = np.array(["a", "b"]), np.array(["x", "y", "z"])
    state = fit_recommender(
        "fm",
        np.array([0, 1, 1]),
        np.array([0, 1, 2]),
        np.ones(3),
        users,
        items,
        {"factors": 4, "epochs": 2},
        model="m",
        item_side=pd.DataFrame({"kind": ["k1", "k2", "k2"]}),
    )
    assert state["user_factors"].shape == (2, 5) and state["item_factors"].shape == (3, 5)
