"""The feature store on the retail example: the CDNOW data, checked against pandas.

The point-in-time training set is compared with an independent ``merge_asof`` per
customer, and the online values with each customer's last row of history.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import boite
from boite.pipeline.project import Project

RETAIL = Path(__file__).parents[2] / "examples/retail"
FEATURES = [
    "orders_30d",
    "spend_30d",
    "orders_90d",
    "spend_90d",
    "orders_365d",
    "spend_365d",
    "orders_total",
    "purchase_days_total",
    "days_since_last",
]
SAMPLE = 200


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("retail-features") / "retail"
    shutil.copytree(RETAIL, root, ignore=shutil.ignore_patterns(".boite", "__pycache__"))
    project = boite.open_project(root)
    report = project.run()
    assert report.ok, [(o.name, str(o.error)) for o in report.failed]
    yield project
    project.close()


@pytest.fixture(scope="module")
def activity(retail: Project) -> pd.DataFrame:
    frame = retail.dataset("customer_activity").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    return frame


@pytest.fixture(scope="module")
def labels(retail: Project) -> pd.DataFrame:
    frame = retail.dataset("repurchase_labels").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    return frame


@pytest.fixture(scope="module")
def training(retail: Project) -> tuple[pd.DataFrame, object]:
    ts = retail.training_set("repurchase_labels", ["customer_activity:*"])
    frame = ts.to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    return frame, ts


def test_the_view_covers_every_feature_column(retail: Project) -> None:
    view = retail.feature_views()["customer_activity"]
    assert view.features == tuple(FEATURES)
    assert view.entities == ("customer_id",) and view.timestamp == "as_of"
    assert view.ttl == pd.Timedelta(days=365).to_pytimedelta()


def test_training_set_keeps_exactly_the_label_rows_in_order(
    training: tuple[pd.DataFrame, object], labels: pd.DataFrame, retail: Project
) -> None:
    frame, ts = training
    assert list(frame.columns) == [*labels.columns, *FEATURES]
    assert len(frame) == len(labels)
    pd.testing.assert_frame_equal(
        frame[list(labels.columns)].reset_index(drop=True), labels.reset_index(drop=True)
    )
    consumed = {(a.kind, a.ref) for a in ts.inputs}  # type: ignore[attr-defined]
    assert consumed == {
        ("dataset", retail.dataset("customer_activity").ref),
        ("dataset", retail.dataset("repurchase_labels").ref),
    }


def test_training_set_equals_merge_asof_on_a_sample(
    training: tuple[pd.DataFrame, object], labels: pd.DataFrame, activity: pd.DataFrame
) -> None:
    frame, _ = training
    rows = np.random.default_rng(7).choice(len(labels), size=SAMPLE, replace=False)
    sample = labels.iloc[np.sort(rows)].copy()
    sample["__row"] = np.sort(rows)
    want = pd.merge_asof(
        sample.sort_values("as_of"),
        activity.sort_values("as_of"),
        on="as_of",
        by="customer_id",
        direction="backward",
        tolerance=pd.Timedelta(days=365),
    ).sort_values("__row")
    got = frame.iloc[sample["__row"]].reset_index(drop=True)
    want = want.reset_index(drop=True)
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    for feature in FEATURES:
        np.testing.assert_allclose(
            got[feature].to_numpy(dtype=float),
            want[feature].to_numpy(dtype=float),
            err_msg=feature,
        )


def test_training_set_between_snapshot_days_equals_merge_asof(
    retail: Project, labels: pd.DataFrame, activity: pd.DataFrame
) -> None:
    rng = np.random.default_rng(11)
    sample = labels.iloc[np.sort(rng.choice(len(labels), size=SAMPLE, replace=False))].copy()
    days = pd.to_timedelta(rng.integers(1, 40, size=SAMPLE), "D")
    sample["as_of"] = (sample["as_of"] - days).astype("datetime64[ns]")
    sample = sample.reset_index(drop=True)
    sample["__row"] = range(len(sample))
    got = retail.training_set(sample, ["customer_activity:*"], name="shifted").to_pandas()
    want = pd.merge_asof(
        sample.sort_values("as_of"),
        activity.sort_values("as_of"),
        on="as_of",
        by="customer_id",
        direction="backward",
        tolerance=pd.Timedelta(days=365),
    ).sort_values("__row")
    assert got["__row"].tolist() == list(range(len(sample)))
    for feature in FEATURES:
        np.testing.assert_allclose(
            got[feature].to_numpy(dtype=float),
            want[feature].to_numpy(dtype=float),
            err_msg=feature,
        )


def test_online_features_are_each_customers_last_row(
    retail: Project, activity: pd.DataFrame
) -> None:
    known = activity[activity["as_of"] <= pd.Timestamp("1998-07-01")]
    last = known.sort_values("as_of").groupby("customer_id").tail(1).set_index("customer_id")
    customers = ["00001", "00002", "00057", "01000", "23570", *last.sample(5, random_state=3).index]
    online = retail.online_features(
        ["customer_activity:*"], [{"customer_id": c} for c in customers]
    )
    assert online.columns == FEATURES
    assert online.missing == {"customer_activity": []}
    for customer, row, when in zip(
        customers, online.rows, online.event_times["customer_activity"], strict=True
    ):
        expected = last.loc[customer]
        assert when is not None and when.replace(tzinfo=None) == expected["as_of"], customer
        for feature, value in zip(FEATURES, row, strict=True):
            assert value == pytest.approx(expected[feature]), (customer, feature)
    unknown = retail.online_features(["customer_activity:orders_total"], [{"customer_id": "99999"}])
    assert unknown.rows == [(None,)] and unknown.missing == {"customer_activity": [0]}
