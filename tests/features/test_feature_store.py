"""The feature store through the Project API, on small real projects.

Training sets, materialization, online reads, pushes and the feature library, with
what each leaves in the ledger; then every bad input the issue lists, each checked
for its error type and for what its message tells the user.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import boite
from boite.core.clock import Clock
from boite.errors import ConfigError, FeatureError, NotFoundError
from boite.features.online import OnlineTable, SQLiteOnlineStore
from boite.pipeline.project import Project

MakeProject = Callable[..., Path]

SHOP = """\
name: shop
now: 2024-01-10T00:00:00Z
sources:
  events:
    path: data/events.csv
    columns: {cid: VARCHAR, ts: TIMESTAMP, amount: DOUBLE, n: INTEGER}
  visits:
    path: data/visits.csv
    columns: {cid: VARCHAR, day: DATE, visits: INTEGER}
  labels:
    path: data/labels.csv
    columns: {cid: VARCHAR, t: TIMESTAMP, y: INTEGER}
feature_views:
  spend:
    entity: cid
    timestamp: ts
    source: events
    ttl: 3d
    freshness: 2d
    description: What a customer spends
    owner: growth
    tags: {team: growth, pii: "no"}
  activity:
    entity: cid
    timestamp: day
    source: visits
"""
EVENTS = """\
cid,ts,amount,n
a,2024-01-01 00:00:00,1.0,1
a,2024-01-03 00:00:00,3.0,3
a,2024-01-05 12:00:00,5.0,5
b,2024-01-02 00:00:00,20.0,2
007,2024-01-09 00:00:00,70.0,7
"""
VISITS = """\
cid,day,visits
a,2024-01-02,10
b,2024-01-01,20
b,2024-01-04,21
"""
# Each label row, and what it must see (spend has a 3 day TTL, activity none):
LABELS = """\
cid,t,y
a,2023-12-31 00:00:00,0
a,2024-01-03 00:00:00,1
a,2024-01-04 00:00:00,0
b,2024-01-06 00:00:00,1
zz,2024-01-05 00:00:00,0
a,2024-01-09 00:00:00,1
a,2024-01-03 00:00:00,1
b,2024-01-05 00:00:00,0
"""
AMOUNT = [None, 3.0, 3.0, None, None, None, 3.0, 20.0]  # before all; at an event; ...
N = [None, 3, 3, None, None, None, 3, 2]
VISITS_SEEN = [None, 10, 10, 21, None, 10, 10, 21]  # a DATE view, no TTL
FILES = {"data/events.csv": EVENTS, "data/visits.csv": VISITS, "data/labels.csv": LABELS}


def nulls_to_none(values: list[Any]) -> list[Any]:
    return [None if pd.isna(v) else v for v in values]


@pytest.fixture
def opened() -> Iterator[Callable[..., Project]]:
    """Open (and close at the end) projects; ``build=True`` runs them first."""
    projects: list[Project] = []

    def open_(root: Path, *, clock: Clock | None = None, build: bool = False) -> Project:
        project = boite.open_project(root, clock=clock)
        projects.append(project)
        if build:
            report = project.run()
            assert report.ok, [(o.name, str(o.error)) for o in report.failed]
        return project

    yield open_
    for project in projects:
        project.close()


def shop(
    root: Path,
    make_project: MakeProject,
    *,
    yaml: str = SHOP,
    files: dict[str, str] | None = None,
    transforms: dict[str, str] | None = None,
) -> Path:
    return make_project(root, yaml, transforms=transforms, files={**FILES, **(files or {})})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Iterator[Project]:
    """One shop, built once, for the tests that only read (training sets are additive)."""
    root = shop(tmp_path_factory.mktemp("shop") / "shop", make_project)
    project = boite.open_project(root)
    report = project.run()
    assert report.ok, [(o.name, str(o.error)) for o in report.failed]
    yield project
    project.close()


def label_frame() -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(LABELS), dtype={"cid": str})
    frame["t"] = pd.to_datetime(frame["t"])
    return frame


# --- training sets ---------------------------------------------------------------------


def test_training_set_from_a_dataset_name_is_point_in_time_correct(built: Project) -> None:
    ts = built.training_set("labels", ["spend:*"])
    frame = ts.to_pandas()
    assert list(frame.columns) == ["cid", "t", "y", "amount", "n"]
    labels = label_frame()
    assert frame["cid"].tolist() == labels["cid"].tolist()  # every row, in order
    assert frame["t"].tolist() == labels["t"].tolist()
    assert nulls_to_none(frame["amount"].tolist()) == AMOUNT
    assert nulls_to_none(frame["n"].tolist()) == N
    assert ts.record.kind == "training_set"
    assert ts.name == "labels"
    assert ts.record.meta["features"] == ["spend:amount", "spend:n"]
    assert ts.record.meta["timestamp"] == "t"  # found by itself: the only time column


def test_training_set_lineage_names_the_exact_dataset_versions(built: Project) -> None:
    ts = built.training_set("labels", ["spend:amount", "activity:visits"], name="lineage")
    run = ts.run
    assert run is not None and run.kind == "training_set" and run.status == "succeeded"
    consumed = {(a.kind, a.ref) for a in ts.inputs}
    assert consumed == {
        ("dataset", built.dataset("events").ref),
        ("dataset", built.dataset("visits").ref),
        ("dataset", built.dataset("labels").ref),
    }
    assert [r.id for r in built.ledger.producers_of(ts.record.id)] == [run.id]
    # the training set is an artifact like any other, downstream of its inputs
    downstream = {r.id for r in built.ledger.consumers_of(built.dataset("events").record.id)}
    assert run.id in downstream


def test_several_views_in_one_call(built: Project) -> None:
    frame = built.training_set("labels", ["spend:amount", "activity:*"], name="both").to_pandas()
    assert list(frame.columns) == ["cid", "t", "y", "amount", "visits"]
    assert nulls_to_none(frame["amount"].tolist()) == AMOUNT
    assert nulls_to_none(frame["visits"].tolist()) == VISITS_SEEN


def test_full_names_prefix_every_feature_with_its_view(built: Project) -> None:
    labels = label_frame().rename(columns={"y": "amount"})  # a label column named like a feature
    with pytest.raises(FeatureError) as info:
        built.training_set(labels, ["spend:*"])
    assert "'amount'" in str(info.value) and "full_names=True" in str(info.value)
    frame = built.training_set(labels, ["spend:*", "activity:*"], full_names=True).to_pandas()
    assert list(frame.columns) == [
        "cid",
        "t",
        "amount",
        "spend__amount",
        "spend__n",
        "activity__visits",
    ]
    assert nulls_to_none(frame["spend__amount"].tolist()) == AMOUNT
    assert frame["amount"].tolist() == labels["amount"].tolist()


def test_labels_given_as_a_dataframe_are_recorded_as_a_labels_artifact(built: Project) -> None:
    ts = built.training_set(label_frame(), ["spend:*"], name="from_frame")
    assert nulls_to_none(ts.to_pandas()["amount"].tolist()) == AMOUNT
    kinds = sorted((a.kind, a.name) for a in ts.inputs)
    assert kinds == [("dataset", "events"), ("labels", "from_frame")]
    labels_artifact = next(a for a in ts.inputs if a.kind == "labels")
    assert labels_artifact.rows == len(AMOUNT)
    assert ts.record.meta["labels"] is None  # not a dataset on record


def test_labels_given_as_a_dataset_or_a_versioned_name(built: Project) -> None:
    for labels in (built.dataset("labels"), "labels@1"):
        ts = built.training_set(labels, ["spend:amount"], name="versioned")
        assert nulls_to_none(ts.to_pandas()["amount"].tolist()) == AMOUNT
        assert ("dataset", "labels@1") in {(a.kind, a.ref) for a in ts.inputs}
    with pytest.raises(NotFoundError) as info:
        built.training_set("labels@9", ["spend:amount"])
    assert "v1" in str(info.value)


def test_labels_given_as_a_list_of_dicts(built: Project) -> None:
    rows = [
        {"cid": "a", "t": datetime(2024, 1, 3), "y": 1},
        {"cid": "b", "t": datetime(2024, 1, 5), "y": 0},
        {"cid": "nobody", "t": datetime(2024, 1, 5), "y": 0},
    ]
    frame = built.training_set(rows, ["spend:amount"], name="from_dicts").to_pandas()
    assert frame["cid"].tolist() == ["a", "b", "nobody"]
    assert nulls_to_none(frame["amount"].tolist()) == [3.0, 20.0, None]


def test_the_timestamp_is_inferred_or_must_be_named_when_ambiguous(built: Project) -> None:
    labels = label_frame()
    labels["signup"] = pd.Timestamp("2020-01-01")
    with pytest.raises(FeatureError) as info:
        built.training_set(labels, ["spend:*"])
    message = str(info.value)
    assert "candidates are t, signup" in message and "timestamp=" in message
    frame = built.training_set(labels, ["spend:amount"], timestamp="t").to_pandas()
    assert nulls_to_none(frame["amount"].tolist()) == AMOUNT
    with pytest.raises(FeatureError) as info:
        built.training_set(labels, ["spend:amount"], timestamp="tt")
    assert "no column 'tt'" in str(info.value) and "Did you mean 't'" in str(info.value)


def test_a_new_source_version_is_what_the_next_training_set_reads(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(tmp_path, make_project)
    project = opened(root, build=True)
    first = project.training_set("labels", ["spend:amount"], name="v")
    (root / "data/events.csv").write_text(EVENTS.replace("3.0,3", "33.0,3"))
    assert project.run().ok
    second = project.training_set("labels", ["spend:amount"], name="v")
    assert (first.version, second.version) == (1, 2)
    assert {a.ref for a in first.inputs if a.name == "events"} == {"events@1"}
    assert {a.ref for a in second.inputs if a.name == "events"} == {"events@2"}
    assert nulls_to_none(second.to_pandas()["amount"].tolist()) == [
        33.0 if v == 3.0 else v for v in AMOUNT
    ]
    assert second.run is not None and second.run.params["views"] == {"spend": "events@2"}


# --- composite keys, created timestamps, time zones ---------------------------------


SALES = """\
name: sales
now: 2024-01-10T00:00:00Z
sources:
  sales:
    path: data/sales.csv
    columns: {cid: VARCHAR, store: INTEGER, ts: TIMESTAMP, qty: INTEGER}
feature_views:
  basket: {entity: [cid, store], timestamp: ts, source: sales}
"""
SALES_CSV = """\
cid,store,ts,qty
a,1,2024-01-01 00:00:00,1
a,2,2024-01-02 00:00:00,2
b,1,2024-01-03 00:00:00,3
a,1,2024-01-04 00:00:00,4
"""


def test_composite_entity_keys(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = make_project(tmp_path, SALES, files={"data/sales.csv": SALES_CSV})
    project = opened(root, build=True)
    labels = pd.DataFrame(
        {
            "cid": ["a", "a", "a", "b", "b", "a"],
            "store": [1, 2, 1, 1, 2, 3],
            "t": pd.to_datetime(["2024-01-03"] * 4 + ["2024-01-05"] * 2),
        }
    )
    frame = project.training_set(labels, ["basket:qty"]).to_pandas()
    assert nulls_to_none(frame["qty"].tolist()) == [1, 2, 1, 3, None, None]
    online = project.online_features(
        ["basket:qty"],
        [{"cid": "a", "store": 1}, {"cid": "a", "store": 2}, {"cid": "b", "store": 2}],
    )
    assert online.rows == [(4,), (2,), (None,)]
    assert online.missing == {"basket": [2]}
    with pytest.raises(FeatureError) as info:
        project.training_set(labels.drop(columns="store"), ["basket:qty"])
    assert "'store'" in str(info.value) and "basket" in str(info.value)


PRICES = """\
name: prices
now: 2024-01-03T00:00:00Z
sources:
  prices:
    path: data/prices.csv
    columns: {item: VARCHAR, ts: TIMESTAMP, created: TIMESTAMP, price: DOUBLE}
feature_views:
  price: {entity: item, timestamp: ts, created_timestamp: created, source: prices}
"""
PRICES_CSV = """\
item,ts,created,price
x,2024-01-01 00:00:00,2024-01-01 08:00:00,1.0
x,2024-01-01 00:00:00,2024-01-03 08:00:00,3.0
x,2024-01-01 00:00:00,2024-01-02 08:00:00,2.0
x,2024-01-02 00:00:00,2024-01-01 09:00:00,4.0
y,2024-01-01 00:00:00,2024-01-01 08:00:00,7.0
y,2024-01-01 00:00:00,2024-01-01 09:00:00,8.0
"""


def test_the_latest_created_row_wins_for_equal_event_times(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = make_project(tmp_path, PRICES, files={"data/prices.csv": PRICES_CSV})
    project = opened(root, build=True)
    labels = pd.DataFrame(
        {
            "item": ["x", "x", "y"],
            "t": pd.to_datetime(["2024-01-01 12:00", "2024-01-02 00:00", "2024-01-02 00:00"]),
        }
    )
    frame = project.training_set(labels, ["price:price"]).to_pandas()
    assert frame["price"].tolist() == [3.0, 4.0, 8.0]
    # online: the newest event wins even though it was created earlier
    online = project.online_features(["price:price"], [{"item": "x"}, {"item": "y"}])
    assert online.rows == [(4.0,), (8.0,)]


def test_dropping_the_created_timestamp_brings_back_the_duplicate_check(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = make_project(tmp_path, PRICES, files={"data/prices.csv": PRICES_CSV})
    project = opened(root, build=True)
    labels = pd.DataFrame({"item": ["x"], "t": pd.to_datetime(["2024-01-01 12:00"])})
    assert project.training_set(labels, ["price:price"]).to_pandas()["price"].tolist() == [3.0]
    # without a created time the three x rows of 2024-01-01 are ambiguous again
    (root / "boite.yaml").write_text(
        PRICES.replace("created_timestamp: created, ", "features: [price], ")
    )
    project = opened(root)
    with pytest.raises(FeatureError) as info:
        project.training_set(labels, ["price:price"])
    assert "feature view 'price'" in str(info.value) and "item=x" in str(info.value)


def test_rows_without_an_event_time_are_not_ambiguous_events(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    # the join and materialization skip rows with no event time; two of them for one
    # entity are not "several rows at one event time"
    csv = EVENTS + "b,,30.0,3\nb,,31.0,3\n"
    project = opened(shop(tmp_path, make_project, files={"data/events.csv": csv}))
    report = project.run()
    try:
        frame = project.training_set("labels", ["spend:amount"]).to_pandas()
    except FeatureError as exc:
        assert "ts=None" not in str(exc), str(exc)
    else:
        assert nulls_to_none(frame["amount"].tolist()) == AMOUNT
        assert report.outcome("materialize.spend").state == "built"


def test_time_zone_aware_features_compare_instants(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    yaml = """\
    name: tz
    sources:
      events:
        path: data/events.csv
        columns: {cid: VARCHAR, ts: TIMESTAMPTZ, amount: DOUBLE}
    feature_views:
      ev: {entity: cid, timestamp: ts, source: events}
    """
    csv = "cid,ts,amount\na,2024-01-02 00:00:00+00,1.0\na,2024-01-03 00:00:00+00,2.0\n"
    project = opened(make_project(tmp_path, yaml, files={"data/events.csv": csv}), build=True)
    paris = pd.to_datetime(["2024-01-02 00:30", "2024-01-02 01:30", "2024-01-03 01:00"])
    labels = pd.DataFrame({"cid": ["a"] * 3, "t": paris.tz_localize("Europe/Paris")})
    frame = project.training_set(labels, ["ev:amount"]).to_pandas()
    # 00:30 in Paris is 23:30 UTC the day before: the 00:00 UTC event had not happened
    assert nulls_to_none(frame["amount"].tolist()) == [None, 1.0, 2.0]
    assert frame["t"].tolist() == labels["t"].tolist()


# --- TTL --------------------------------------------------------------------------------


def test_ttl_applies_offline_and_online_relative_to_the_clock(
    built: Project, opened: Callable[..., Project]
) -> None:
    # offline: b's 2024-01-02 value is exactly 3 days old on 01-05 (kept), 4 on 01-06 (not)
    frame = built.training_set("labels", ["spend:amount"], name="ttl").to_pandas()
    assert nulls_to_none(frame["amount"].tolist()) == AMOUNT
    assert (AMOUNT[3], AMOUNT[7]) == (None, 20.0)
    refs, who = ["spend:amount", "activity:visits"], [{"cid": "a"}, {"cid": "b"}, {"cid": "007"}]
    # the project's clock (now: 2024-01-10): a's 01-05 12:00 value is past the 3 day TTL
    online = built.online_features(refs, who)
    assert online.rows == [(None, 10), (None, 21), (70.0, None)]
    assert online.missing == {"spend": [0, 1], "activity": [2]}
    at = {
        datetime(2024, 1, 8, 12, tzinfo=UTC): [(5.0, 10), (None, 21), (70.0, None)],  # exactly 3d
        datetime(2024, 1, 8, 12, 0, 1, tzinfo=UTC): [(None, 10), (None, 21), (70.0, None)],
        datetime(2024, 1, 9, tzinfo=UTC): [(None, 10), (None, 21), (70.0, None)],
    }
    for moment, rows in at.items():
        project = opened(built.root, clock=Clock(moment))
        assert project.online_features(refs, who).rows == rows, moment
    # a naive clock is taken as UTC
    project = opened(built.root, clock=Clock(datetime(2024, 1, 8)))
    assert project.online_features(["spend:amount"], [{"cid": "a"}]).rows == [(5.0,)]


# --- materialization --------------------------------------------------------------------


def materialize_runs(project: Project, view: str) -> list[Any]:
    """The materialize runs of a view, oldest first."""
    return list(reversed(project.ledger.runs(step=f"materialize.{view}")))


def test_boite_run_materializes_once_and_status_says_up_to_date(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    project = opened(shop(tmp_path, make_project))
    first = project.run()
    assert first.outcome("materialize.spend").state == "built"
    assert first.outcome("materialize.activity").state == "built"
    runs = materialize_runs(project, "spend")
    assert [(r.kind, r.status, r.rows_in) for r in runs] == [("materialize", "succeeded", 3)]
    assert {(a.kind, a.ref) for a in project.ledger.inputs_of(runs[0].id)} == {
        ("dataset", "events@1")
    }
    second = project.run()
    assert second.outcome("materialize.spend").state == "up to date"
    assert second.executed == []
    assert len(materialize_runs(project, "spend")) == 1
    status = {s.name: s.state for s in project.status()}
    assert status["materialize.spend"] == "up to date"
    assert status["materialize.activity"] == "up to date"
    reopened = opened(tmp_path)  # a fresh process sees the same
    assert {s.name: s.state for s in reopened.status()}["materialize.spend"] == "up to date"


def test_materialization_is_incremental(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(tmp_path, make_project)
    project = opened(root, build=True)
    newer = "a,2024-01-09 12:00:00,9.5,9\nb,2024-01-09 13:00:00,21.0,21\n"
    (root / "data/events.csv").write_text(EVENTS + newer)
    status = {s.name: s.state for s in project.status()}
    assert status["materialize.spend"] != "up to date"
    report = project.run()
    assert report.outcome("materialize.spend").state == "built"
    runs = materialize_runs(project, "spend")
    assert [r.rows_in for r in runs] == [3, 2]  # the second read only a's and b's new rows
    assert project.ledger.metrics(runs[1].id)["rows_read"] == 2
    online = project.online_features(["spend:amount", "spend:n"], [{"cid": c} for c in "ab"])
    assert online.rows == [(9.5, 9), (21.0, 21)]
    assert project.online_features(["spend:n"], [{"cid": "007"}]).rows == [(7,)]


def test_full_materialization_rebuilds_from_the_whole_history(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    project = opened(shop(tmp_path, make_project), build=True)
    results = {r.view: r for r in project.materialize(full=True)}
    assert set(results) == {"spend", "activity"}
    assert (results["spend"].rows_read, results["spend"].full) == (3, True)
    again = project.materialize(["spend"])
    assert [(r.view, r.rows_read, r.full) for r in again] == [("spend", 0, False)]
    clock = Clock(datetime(2024, 1, 6))
    values = opened(project.root, clock=clock).online_features(["spend:amount"], [{"cid": "a"}])
    assert values.rows == [(5.0,)]


def test_the_online_store_never_rolls_a_value_back(tmp_path: Path) -> None:
    store = SQLiteOnlineStore(tmp_path / "online.db")
    try:
        layout = OnlineTable("v", ("k",), ("x",), {"k": "VARCHAR", "x": "DOUBLE"})
        store.ensure(layout)
        day = 86_400_000_000
        assert store.write("v", [("a", 10 * day, None, 1.0), ("b", 10 * day, 5, 1.0)]) == 2
        store.write("v", [("a", 9 * day, None, 0.9)])  # an older event: ignored
        store.write("v", [("b", 10 * day, 4, 0.4)])  # same event, created earlier: ignored
        assert store.read("v", [("a",), ("b",)]) == [(10 * day, 1.0), (10 * day, 1.0)]
        store.write("v", [("b", 10 * day, 6, 1.6), ("a", 11 * day, None, 1.1)])
        assert store.read("v", [("a",), ("b",), ("c",)]) == [(11 * day, 1.1), (10 * day, 1.6), None]
    finally:
        store.close()


def test_materialization_outside_boite_run_is_on_record(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    # DESIGN.md 1-2: every step, materialize included, is a run in the ledger
    project = opened(shop(tmp_path, make_project), build=True)

    def on_record() -> list[Any]:
        return [r for r in project.ledger.runs() if r.kind == "materialize" and "spend" in r.step]

    before = on_record()
    result = project.materialize(["spend"], full=True)
    after = on_record()
    assert len(after) == len(before) + 1, [(r.step, r.kind) for r in project.ledger.runs()]
    assert (after[0].status, after[0].rows_in) == ("succeeded", result[0].rows_read)


def test_a_type_change_in_the_source_fails_materialization_naming_both_types(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(tmp_path, make_project)
    opened(root, build=True)
    yaml = SHOP.replace("amount: DOUBLE", "amount: VARCHAR")
    (root / "boite.yaml").write_text(yaml)
    project = opened(root)
    report = project.run()
    outcome = report.outcome("materialize.spend")
    assert outcome.state == "failed"
    assert isinstance(outcome.error, FeatureError)
    message = str(outcome.error)
    assert "'amount'" in message and "DOUBLE" in message and "VARCHAR" in message
    assert "--full" in message  # what to do next
    assert materialize_runs(project, "spend")[-1].status == "failed"
    with pytest.raises(FeatureError, match="DOUBLE to VARCHAR"):
        project.materialize(["spend"])


def test_unsigned_bigint_features_read_back_as_numbers_online(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    yaml = SHOP + "  wide: {entity: cid, timestamp: ts, source: wide}\n"
    transform = "SELECT cid, ts, CAST(n AS UBIGINT) AS big, n > 2 AS flag FROM events\n"
    root = shop(tmp_path, make_project, yaml=yaml, transforms={"wide.sql": transform})
    project = opened(root, build=True)
    assert project.feature_views()["wide"].types["big"] == "UBIGINT"
    offline = project.dataset("wide").to_pandas().set_index("cid").loc["007"]
    online = project.online_features(["wide:big", "wide:flag"], [{"cid": "007"}])
    assert online.to_records() == [{"big": 7, "flag": True}]
    assert online.to_records()[0]["big"] == offline["big"]
    assert isinstance(online.to_records()[0]["big"], int), online.to_records()


def test_online_reads_follow_the_view_after_its_features_are_reordered(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(tmp_path, make_project)
    opened(root, build=True)
    (root / "boite.yaml").write_text(SHOP.replace("ttl: 3d", "ttl: 3d\n    features: [n, amount]"))
    project = opened(root)  # not run yet: the online table still has the old layout
    try:
        records = project.online_features(["spend:*"], [{"cid": "007"}]).to_records()
    except FeatureError as exc:  # refusing until it is rebuilt would be fine too
        assert "materialize" in str(exc) or "boite run" in str(exc)
    else:
        assert records == [{"n": 7, "amount": 70.0}]


def test_online_reads_of_a_view_that_gained_a_feature_before_it_is_rebuilt(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(
        tmp_path, make_project, yaml=SHOP.replace("ttl: 3d", "ttl: 3d\n    features: [amount]")
    )
    opened(root, build=True)
    (root / "boite.yaml").write_text(SHOP)  # now every column: amount and n
    project = opened(root)
    try:
        online = project.online_features(["spend:*"], [{"cid": "007"}])
    except FeatureError as exc:
        assert "materialize" in str(exc) or "boite run" in str(exc)
    else:
        assert online.to_records()[0]["amount"] == 70.0
        assert online.to_records()[0]["n"] in (7, None)


# --- online reads -----------------------------------------------------------------------


def test_many_entities_are_read_in_one_query_per_view(
    built: Project, opened: Callable[..., Project]
) -> None:
    project = opened(built.root, clock=Clock(datetime(2024, 1, 9, 12, tzinfo=UTC)))
    refs = ["spend:*", "activity:visits"]
    who = [{"cid": c} for c in ["007", "a", "nobody", "b", "007", *map(str, range(300))]]
    statements: list[str] = []
    conn = project.features.online._connect()  # the connection of this thread
    conn.set_trace_callback(statements.append)
    try:
        online = project.online_features(refs, who)
    finally:
        conn.set_trace_callback(None)
    reads = [s for s in statements if '"fv_' in s]
    assert len(reads) == 2, reads  # one per view, whatever the number of entities
    assert len(online.rows) == len(who)
    assert online.rows[:5] == [
        (70.0, 7, None),
        (None, None, 10),  # a's value is past the TTL on 01-09 12:00
        (None, None, None),
        (None, None, 21),
        (70.0, 7, None),
    ]
    assert online.missing["spend"] == [1, 2, 3, *range(5, len(who))]
    assert online.missing["activity"] == [0, 2, 4, *range(5, len(who))]


def test_an_entity_never_seen_reads_as_nulls_and_is_listed_missing(built: Project) -> None:
    online = built.online_features(["spend:*"], [{"cid": "nobody"}, {"cid": "007"}])
    assert online.columns == ["amount", "n"]
    assert online.rows == [(None, None), (70.0, 7)]
    assert online.missing == {"spend": [0]}
    assert online.event_times["spend"] == [None, datetime(2024, 1, 9, tzinfo=UTC)]
    assert online.to_pandas().shape == (2, 2)


def test_entity_keys_are_coerced_to_the_key_type(
    built: Project, tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    # a text key: 7 is '7' (not '007': leading zeros are the caller's business)
    assert built.online_features(["spend:n"], [{"cid": 7}]).rows == [(None,)]
    text_root = shop(
        tmp_path / "text",
        make_project,
        files={"data/events.csv": EVENTS + "42,2024-01-09 00:00:00,1.0,42\n"},
    )
    text = opened(text_root, build=True)
    assert text.online_features(["spend:n"], [{"cid": 42}, {"cid": "42"}]).rows == [(42,), (42,)]
    # an integer key: '1' is 1
    root = make_project(tmp_path / "int", SALES, files={"data/sales.csv": SALES_CSV})
    project = opened(root, build=True)
    online = project.online_features(["basket:qty"], [{"cid": "a", "store": "1"}])
    assert online.rows == [(4,)]
    with pytest.raises(FeatureError) as info:
        project.online_features(["basket:qty"], [{"cid": "a", "store": "one"}])
    assert "basket" in str(info.value)
    with pytest.raises(FeatureError) as info:
        project.online_features(["basket:qty"], [{"cid": "a"}])
    assert "'store'" in str(info.value)


# --- push -------------------------------------------------------------------------------


def test_pushed_rows_are_online_at_once_and_in_the_offline_history(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    project = opened(shop(tmp_path, make_project), build=True)
    pushed = project.push(
        "spend", [{"cid": "a", "ts": datetime(2024, 1, 9, 12), "amount": 99.0, "n": 99}]
    )
    assert (pushed.rows, pushed.online_rows_written) == (1, 1)
    assert project.online_features(["spend:amount"], [{"cid": "a"}]).rows == [(99.0,)]
    # on record: a run of kind 'push' that produced an artifact of kind 'push'
    (run,) = project.ledger.runs(step="push:spend")
    assert (run.kind, run.status, run.rows_in) == ("push", "succeeded", 1)
    assert [(a.kind, a.ref) for a in project.ledger.outputs_of(run.id)] == [("push", "spend@1")]
    # an older event pushed later lands offline but does not roll the online value back
    older = pd.DataFrame(
        {"cid": ["a"], "ts": [pd.Timestamp("2024-01-08")], "amount": [50.0], "n": [50]}
    )
    assert project.push("spend", older).online_rows_written == 0
    assert project.online_features(["spend:amount"], [{"cid": "a"}]).rows == [(99.0,)]
    labels = pd.DataFrame(
        {
            "cid": ["a", "a", "a"],
            "t": pd.to_datetime(["2024-01-07 00:00", "2024-01-08 06:00", "2024-01-10 00:00"]),
        }
    )
    ts = project.training_set(labels, ["spend:amount"])
    assert ts.to_pandas()["amount"].tolist() == [5.0, 50.0, 99.0]
    assert {(a.kind, a.ref) for a in ts.inputs} >= {("push", "spend@1"), ("push", "spend@2")}
    # a full rebuild from history (source and pushes) keeps the newest event
    project.materialize(["spend"], full=True)
    assert project.online_features(["spend:amount"], [{"cid": "a"}]).rows == [(99.0,)]
    newest = {f.feature: f.newest for f in project.features.library() if f.view == "spend"}
    assert newest["amount"] == datetime(2024, 1, 9, 12)


def test_pushing_rows_with_the_wrong_columns_is_refused(built: Project) -> None:
    with pytest.raises(FeatureError) as info:
        built.push("spend", [{"cid": "a", "ts": datetime(2024, 1, 9), "amout": 1.0, "n": 1}])
    message = str(info.value)
    assert "'amount'" in message and "'amout'" in message and "did you mean" in message
    zoned = datetime(2024, 1, 9, tzinfo=UTC)
    with pytest.raises(FeatureError) as info:
        built.push("spend", [{"cid": "a", "ts": zoned, "amount": 1.0, "n": 1}])
    assert "time zone" in str(info.value) and "'spend'" in str(info.value)
    with pytest.raises(FeatureError, match="no entity key or no timestamp"):
        built.push("spend", [{"cid": None, "ts": datetime(2024, 1, 9), "amount": 1.0, "n": 1}])
    with pytest.raises(NotFoundError):
        built.push("spnd", [{"cid": "a"}])
    assert built.ledger.versions("push", "spend") == []


# --- the library ------------------------------------------------------------------------


def test_the_library_lists_types_owners_freshness_and_users(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    project = opened(shop(tmp_path, make_project), build=True)
    library = {(f.view, f.feature): f for f in project.features.library()}
    assert set(library) == {("spend", "amount"), ("spend", "n"), ("activity", "visits")}
    amount = library["spend", "amount"]
    assert (amount.type, amount.owner, amount.entities) == ("DOUBLE", "growth", ("cid",))
    assert amount.description == "What a customer spends"
    assert library["spend", "n"].type == "INTEGER"
    # newest row 2024-01-09, clock 2024-01-10, SLA 2 days: met
    assert amount.newest == datetime(2024, 1, 9)
    assert (amount.age, amount.freshness_sla, amount.fresh) == (
        timedelta(days=1),
        timedelta(days=2),
        True,
    )
    assert library["activity", "visits"].fresh is None  # no SLA declared
    assert all(f.used_by == [] for f in library.values())
    late = opened(project.root, clock=Clock(datetime(2024, 1, 12, 1)))
    stale = {(f.view, f.feature): f for f in late.features.library()}["spend", "amount"]
    assert (stale.age, stale.fresh) == (timedelta(days=3, hours=1), False)
    project.training_set("labels", ["spend:amount"], name="churn")
    used = {(f.view, f.feature): f.used_by for f in project.features.library()}
    assert used["spend", "amount"] == ["training set churn@1"]
    assert used["spend", "n"] == [] and used["activity", "visits"] == []


def test_feature_views_carry_their_declared_metadata(built: Project) -> None:
    views = built.feature_views()
    spend = views["spend"]
    assert spend.entities == ("cid",) and spend.timestamp == "ts"
    assert spend.ttl == timedelta(days=3) and spend.freshness == timedelta(days=2)
    assert spend.tags == {"team": "growth", "pii": "no"}
    assert spend.features == ("amount", "n")
    assert views["activity"].ttl is None and views["activity"].types["day"] == "DATE"


# --- bad inputs -------------------------------------------------------------------------


def test_labels_missing_the_entity_or_the_timestamp_column(built: Project) -> None:
    labels = label_frame()
    with pytest.raises(FeatureError) as info:
        built.training_set(labels.drop(columns="cid"), ["spend:*"])
    message = str(info.value)
    assert "entity column 'cid'" in message and "'spend'" in message
    with pytest.raises(FeatureError) as info:
        built.training_set(labels.drop(columns="t"), ["spend:*"])
    assert "none is a DATE or TIMESTAMP" in str(info.value) and "timestamp=" in str(info.value)
    text = labels.assign(t=labels["t"].astype(str))
    with pytest.raises(FeatureError) as info:
        built.training_set(text, ["spend:*"], timestamp="t")
    assert "'t' is VARCHAR" in str(info.value) and "pd.to_datetime" in str(info.value)
    numbers = labels.assign(cid=range(len(labels)))
    with pytest.raises(FeatureError) as info:
        built.training_set(numbers, ["spend:*"])
    assert "'cid' is BIGINT" in str(info.value) and "VARCHAR" in str(info.value)


def test_time_zones_mixed_between_labels_and_features(built: Project) -> None:
    labels = label_frame()
    labels["t"] = labels["t"].dt.tz_localize("UTC")
    with pytest.raises(FeatureError) as info:
        built.training_set(labels, ["spend:*"])
    message = str(info.value)
    assert "time zone" in message and "'spend'" in message and "tz_localize" in message


def test_time_zones_mixed_within_one_label_column(built: Project) -> None:
    labels = pd.DataFrame(
        {
            "cid": ["a", "b"],
            "t": [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-03", tz="UTC")],
        }
    )
    with pytest.raises(FeatureError) as info:
        built.training_set(labels, ["spend:*"])
    message = str(info.value)
    assert "'t'" in message and "mixes timestamps with and without a time zone" in message
    with pytest.raises(FeatureError, match="mixes"):
        built.training_set(labels.to_dict("records"), ["spend:*"])


def test_duplicate_events_without_a_created_timestamp(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    dupes = EVENTS + "b,2024-01-02 00:00:00,22.0,22\n"
    root = shop(tmp_path, make_project, files={"data/events.csv": dupes})
    project = opened(root)
    report = project.run()
    outcome = report.outcome("materialize.spend")
    assert outcome.state == "failed" and isinstance(outcome.error, FeatureError)
    assert report.outcome("materialize.activity").state == "built"
    with pytest.raises(FeatureError) as info:
        project.training_set("labels", ["spend:*"])
    message = str(info.value)
    assert "feature view 'spend'" in message
    assert "cid=b" in message and "2024-01-02" in message and "(2 rows)" in message
    assert "created_timestamp" in message
    # a training set of another view is not blocked by it
    assert project.training_set("labels", ["activity:*"]).rows == len(AMOUNT)


def test_unknown_views_and_features_suggest_the_right_name(built: Project) -> None:
    with pytest.raises(FeatureError) as info:
        built.training_set("labels", ["spnd:*"])
    assert "'spnd'" in str(info.value) and "Did you mean 'spend'" in str(info.value)
    with pytest.raises(FeatureError) as info:
        built.training_set("labels", ["spend:amout"])
    assert "no feature 'amout'" in str(info.value) and "Did you mean 'amount'" in str(info.value)
    with pytest.raises(FeatureError) as info:
        built.online_features(["activty:visits"], [{"cid": "a"}])
    assert "Did you mean 'activity'" in str(info.value)
    with pytest.raises(FeatureError, match="not a feature reference"):
        built.training_set("labels", ["spend"])
    with pytest.raises(NotFoundError) as nf:
        built.features.view("spnd")
    assert "Did you mean 'spend'" in str(nf.value)
    with pytest.raises(NotFoundError) as nf:
        built.training_set("labls", ["spend:*"])
    assert "Did you mean 'labels'" in str(nf.value)


@pytest.mark.parametrize("ttl", ["10 days", "5x", "-1d", "soon"])
def test_a_ttl_in_a_wrong_format(ttl: str, tmp_path: Path, make_project: MakeProject) -> None:
    root = shop(tmp_path, make_project, yaml=SHOP.replace("ttl: 3d", f"ttl: {ttl}"))
    with pytest.raises(ConfigError) as info:
        boite.open_project(root)
    message = str(info.value)
    assert "boite.yaml:" in message and "feature_views.spend.ttl" in message
    assert "7d" in message and repr(ttl) in message


def test_a_view_on_a_table_that_does_not_exist(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    root = shop(tmp_path, make_project, yaml=SHOP.replace("source: events", "source: event"))
    project = opened(root)
    with pytest.raises(ConfigError) as info:
        project.run()
    message = str(info.value)
    assert "feature_views.spend.source" in message
    assert "'event'" in message and "Did you mean 'events'" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("features: [amont]", ["feature column 'amont'", "Did you mean 'amount'"]),
        ("created_timestamp: createdd", ["created timestamp column 'createdd'", "Columns there"]),
    ],
)
def test_a_view_column_that_does_not_exist(
    change: str,
    expected: list[str],
    tmp_path: Path,
    make_project: MakeProject,
    opened: Callable[..., Project],
) -> None:
    root = shop(tmp_path, make_project, yaml=SHOP.replace("ttl: 3d", f"ttl: 3d\n    {change}"))
    project = opened(root)
    report = project.run()
    outcome = report.outcome("materialize.spend")
    assert outcome.state == "failed" and isinstance(outcome.error, FeatureError)
    for text in expected:
        assert text in str(outcome.error)
    assert "events@1" in str(outcome.error)
    with pytest.raises(FeatureError) as info:
        project.training_set("labels", ["spend:*"])
    for text in expected:
        assert text in str(info.value)


def test_a_view_entity_that_does_not_exist_or_a_timestamp_that_is_not_a_time(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    yaml = SHOP.replace("entity: cid\n    timestamp: ts", "entity: [cid, shop]\n    timestamp: ts")
    project = opened(shop(tmp_path / "entity", make_project, yaml=yaml))
    error = project.run().outcome("materialize.spend").error
    assert isinstance(error, FeatureError) and "entity column 'shop'" in str(error)
    yaml = SHOP.replace("timestamp: ts", "timestamp: amount")
    project = opened(shop(tmp_path / "time", make_project, yaml=yaml))
    error = project.run().outcome("materialize.spend").error
    assert isinstance(error, FeatureError)
    message = str(error)
    assert "'amount' is DOUBLE" in message and "DATE or a TIMESTAMP" in message
    assert "timestamp timestamp" not in message  # says its role once


def test_a_view_whose_data_was_never_built(
    tmp_path: Path, make_project: MakeProject, opened: Callable[..., Project]
) -> None:
    project = opened(shop(tmp_path, make_project))
    with pytest.raises(FeatureError) as info:
        project.training_set(label_frame(), ["spend:*"])
    assert "never been built" in str(info.value) and "boite run" in str(info.value)


def test_online_store_file_is_sqlite_under_the_project(built: Project) -> None:
    path = built.root / ".boite" / "online.db"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"fv_spend", "fv_activity"} <= tables
