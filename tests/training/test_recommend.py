"""Recommendation on real implicit feedback (UCI Online Retail, shipped in examples/shop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boite.core.config import parse_config
from boite.errors import TrainingError
from boite.training.recommend import (
    Recommender,
    fit_recommender,
    ranking_quality,
    train_recommendation,
)

DATA = Path(__file__).parents[2] / "examples" / "shop" / "data" / "online_retail" / "by-day"

SPEC = """
name: t
models:
  rec:
    task: recommendation
    label: {dataset: purchases, column: quantity, timestamp: day}
    user: customer_id
    item: stock_code
    features: [customer_id, stock_code]
    k: 10
    split: {by: time, test_from: "2011-11-15"}
    algorithm: ALGO
    params: PARAMS
"""


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    files = sorted(DATA.glob("2011-1[01]-*.csv.gz")) + sorted(DATA.glob("2011-12-*.csv.gz"))
    raw = pd.concat(
        [pd.read_csv(f, dtype={"InvoiceNo": str, "StockCode": str}) for f in files],
        ignore_index=True,
    )
    raw = raw[raw["CustomerID"].notna() & (raw["Quantity"] > 0)]
    raw = raw[~raw["InvoiceNo"].str.startswith("C")]
    frame = pd.DataFrame(
        {
            "customer_id": raw["CustomerID"].astype(int).astype(str),
            "stock_code": raw["StockCode"],
            "day": pd.to_datetime(raw["InvoiceDate"]).dt.normalize(),
            "quantity": raw["Quantity"],
        }
    )
    return frame.groupby(["customer_id", "stock_code", "day"], as_index=False)["quantity"].sum()


def _cfg(algorithm: str, params: str = "{}") -> object:
    text = SPEC.replace("ALGO", algorithm).replace("PARAMS", params)
    return parse_config(text).models["rec"]


def test_als_beats_popularity_on_held_out_purchases(purchases: pd.DataFrame) -> None:
    cfg = _cfg("als", "{factors: 32, iterations: 10}")
    state, metrics, split, _ = train_recommendation(
        "rec",
        cfg,
        purchases,
        weight="quantity",
        time_column="day",  # type: ignore[arg-type]
    )
    assert split["by"] == "time" and split["test_rows"] > 0
    assert metrics["precision_at_10"] > metrics["popularity_precision_at_10"]
    assert metrics["precision_lift_over_popularity"] > 1.0
    assert 0 < metrics["coverage"] <= 1
    assert metrics["coverage"] > metrics["popularity_coverage"]
    assert state["user_factors"].shape[1] == 32


def test_recommendations_exclude_what_was_bought() -> None:
    users = np.array(["u1", "u2"])
    items = np.array(["a", "b", "c"])
    state = fit_recommender(
        "popularity",
        np.array([0, 0, 1]),
        np.array([0, 1, 0]),
        np.ones(3),
        users,
        items,
        {},
        model="m",
    )
    model = Recommender(state)
    # u1 bought a and b, u2 bought a: u1 is offered only c; u2 b then c; a newcomer
    # gets the best sellers
    assert model.recommend(["u1", "u2", "nobody"], k=2) == [["c"], ["b", "c"], ["a", "b"]]


def test_ranking_quality_against_a_hand_count() -> None:
    recommended = np.array([[0, 1, 2], [3, 4, 5]])
    truth = [{1}, {9, 3}]
    got = ranking_quality(recommended, truth, 3, n_items=10)
    assert got["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert got["recall_at_3"] == pytest.approx((1 + 0.5) / 2)
    ndcg_first = (1 / np.log2(3)) / 1.0
    ndcg_second = 1.0 / (1 + 1 / np.log2(3))
    assert got["ndcg_at_3"] == pytest.approx((ndcg_first + ndcg_second) / 2)
    assert got["coverage"] == pytest.approx(0.6)


def test_bad_recommender_settings(purchases: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="als has no parameter"):
        train_recommendation(
            "rec",
            _cfg("als", "{factorz: 8}"),
            purchases,
            weight="quantity",
            time_column="day",  # type: ignore[arg-type]
        )
    with pytest.raises(TrainingError, match="one of als, popularity"):
        train_recommendation(
            "rec",
            _cfg("lightgbm"),
            purchases,
            weight="quantity",
            time_column="day",  # type: ignore[arg-type]
        )


def test_a_recommendation_spec_needs_user_and_item() -> None:
    from boite.errors import ConfigError

    with pytest.raises(ConfigError, match="'user' and 'item'"):
        parse_config(
            SPEC.replace("    user: customer_id\n", "")
            .replace("ALGO", "als")
            .replace("PARAMS", "{}")
        )
