"""Point-in-time joins against a brute-force reference, on random feature histories.

Each example draws a small feature history (a few entities, event times in a
narrow range so that equal times are common, optional created times, a TTL or
none) and a label frame (known and unknown entities, times before every event,
exactly at events and between them, null times, duplicated rows), runs the real
join and compares every value with a pure-Python reference. The invariants of
DESIGN.md section 6 are checked on their own as well: no joined value has an event
time after its label row's time or older than the TTL, and the label rows come out
all of them, in their order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import boite
from boite.errors import FeatureError
from boite.features.pit import ViewInput, check_unique_events, run_point_in_time
from boite.features.views import FeatureView

BASE = datetime(2024, 1, 1)
KEY_VALUES: dict[str, list[Any]] = {"cid": ["a", "b", "c"], "region": [1, 2]}
UNKNOWN: dict[str, list[Any]] = {"cid": ["zz", None], "region": [3, None]}
KEY_TYPES = {"cid": ("VARCHAR", pa.string()), "region": ("BIGINT", pa.int64())}
FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Row:
    key: tuple[Any, ...]
    t: datetime  # the event time (midnight for DATE views)
    created: datetime | None
    value: float | None
    row_id: int


@dataclass(frozen=True)
class History:
    name: str
    keys: tuple[str, ...]
    kind: str  # 'TIMESTAMP' (steps of minutes) or 'DATE' (steps of days)
    created: bool
    ttl: timedelta | None
    rows: tuple[Row, ...]

    @property
    def step(self) -> timedelta:
        return timedelta(days=1) if self.kind == "DATE" else timedelta(minutes=1)

    def view(self) -> FeatureView:
        types = {k: KEY_TYPES[k][0] for k in self.keys}
        types |= {"ts": self.kind, "value": "DOUBLE", "row_id": "BIGINT", "seen": self.kind}
        if self.created:
            types["created"] = "TIMESTAMP"
        return FeatureView(
            name=self.name,
            source=self.name,
            entities=self.keys,
            timestamp="ts",
            created_timestamp="created" if self.created else None,
            ttl=self.ttl,
            features=("value", "row_id", "seen"),
            types=types,
        )

    def table(self) -> pa.Table:
        def when(t: datetime) -> Any:
            return t.date() if self.kind == "DATE" else t

        time_type = pa.date32() if self.kind == "DATE" else pa.timestamp("us")
        columns: dict[str, pa.Array] = {}
        for i, key in enumerate(self.keys):
            columns[key] = pa.array([r.key[i] for r in self.rows], KEY_TYPES[key][1])
        columns["ts"] = pa.array([when(r.t) for r in self.rows], time_type)
        if self.created:
            columns["created"] = pa.array([r.created for r in self.rows], pa.timestamp("us"))
        columns["value"] = pa.array([r.value for r in self.rows], pa.float64())
        columns["row_id"] = pa.array([r.row_id for r in self.rows], pa.int64())
        columns["seen"] = pa.array([when(r.t) for r in self.rows], time_type)
        return pa.table(columns)


@dataclass(frozen=True)
class Labels:
    keys: tuple[str, ...]
    rows: tuple[tuple[tuple[Any, ...], datetime | None], ...]
    unit: str  # how the label times are stored in Parquet: us, ms or ns

    def table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {"row": pa.array(range(len(self.rows)), pa.int64())}
        for i, key in enumerate(self.keys):
            columns[key] = pa.array([k[i] for k, _ in self.rows], KEY_TYPES[key][1])
        columns["t"] = pa.array([t for _, t in self.rows], pa.timestamp(self.unit))
        columns["y"] = pa.array([i % 2 for i in range(len(self.rows))], pa.int64())
        return pa.table(columns)

    def frame(self) -> pd.DataFrame:
        return self.table().to_pandas()


# --- strategies -----------------------------------------------------------------------


@st.composite
def histories(
    draw: st.DrawFn,
    name: str = "fv",
    keys: tuple[str, ...] = ("cid",),
    kinds: tuple[str, ...] = ("TIMESTAMP", "DATE"),
    created: bool | None = None,
    max_size: int = 20,
    min_size: int = 0,
) -> History:
    kind = draw(st.sampled_from(kinds))
    with_created = draw(st.booleans()) if created is None else created
    key = st.tuples(*(st.sampled_from(KEY_VALUES[k]) for k in keys))
    value = st.one_of(
        st.none(),
        st.just(math.nan),
        st.floats(-1000, 1000, allow_nan=False, allow_infinity=False),
    )
    drawn = draw(
        st.lists(st.tuples(key, st.integers(0, 10), value), min_size=min_size, max_size=max_size)
    )
    if not with_created:
        # without a created time, two rows of one entity at one time are an error
        drawn = list({(k, t): (k, t, v) for k, t, v in drawn}.values())
    # created times are distinct, so that "the latest created wins" always decides
    order = draw(st.permutations(range(len(drawn))))
    ttl_steps = draw(st.one_of(st.none(), st.integers(0, 6)))
    step = timedelta(days=1) if kind == "DATE" else timedelta(minutes=1)
    rows = tuple(
        Row(
            key=k,
            t=BASE + t * step,
            created=BASE + timedelta(hours=order[i]) if with_created else None,
            value=v,
            row_id=i,
        )
        for i, (k, t, v) in enumerate(drawn)
    )
    ttl = None if ttl_steps is None else ttl_steps * step
    return History(name, keys, kind, with_created, ttl, rows)


@st.composite
def label_sets(
    draw: st.DrawFn, histories_: tuple[History, ...], keys: tuple[str, ...] = ("cid",)
) -> Labels:
    step = max(h.step for h in histories_)
    events = sorted({r.t for h in histories_ for r in h.rows})
    key = st.tuples(*(st.sampled_from(KEY_VALUES[k] + UNKNOWN[k]) for k in keys))
    # half steps: exactly at an event, between events, before all of them, after all
    half = st.integers(-4, 24).map(lambda n: BASE + n * step / 2)
    at_event = st.sampled_from(events) if events else half
    when = st.one_of(half, at_event, st.just(BASE - step * 5), st.none())
    rows = draw(st.lists(st.tuples(key, when), min_size=1, max_size=15))
    copies = draw(st.lists(st.integers(0, len(rows) - 1), max_size=4))
    for i in copies:  # duplicated label rows stay, each of them
        rows.insert(draw(st.integers(0, len(rows))), rows[i])
    unit = draw(st.sampled_from(["us", "ms", "ns"]))
    return Labels(keys, tuple(rows), unit)


# --- the reference ---------------------------------------------------------------------


def reference(history: History, key: tuple[Any, ...], at: datetime | None) -> Row | None:
    """The feature row a label row must see, found by looking at every row."""
    if at is None or any(k is None for k in key):
        return None
    seen = [r for r in history.rows if r.key == key and r.t <= at]
    if not seen:
        return None
    best = max(seen, key=lambda r: (r.t, r.created or BASE))
    if history.ttl is not None and best.t < at - history.ttl:
        return None
    return best


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise AssertionError(f"not a time: {value!r}")


def check(
    out: list[dict[str, Any]], labels: Labels, hists: tuple[History, ...], *, full: bool
) -> None:
    """Every row in order, every value as the reference says, and point-in-time correct."""
    assert [r["row"] for r in out] == list(range(len(labels.rows)))
    for got, (key, at) in zip(out, labels.rows, strict=True):
        assert tuple(got[k] for k in labels.keys) == key
        assert as_datetime(got["t"]) == at
        for history in hists:
            prefix = f"{history.name}__" if full else ""
            want = reference(history, key[: len(history.keys)], at)
            row_id, value = got[prefix + "row_id"], got[prefix + "value"]
            seen = as_datetime(got[prefix + "seen"])
            context = f"label {key} at {at}, view {history.name}: {got}, wanted {want}"
            if want is None:
                assert row_id is None and seen is None and value is None, context
                continue
            assert row_id == want.row_id, context
            assert same(value, want.value), context
            assert seen == want.t, context
            # the invariants, independent of the reference
            assert at is not None and seen <= at, context
            if history.ttl is not None:
                assert seen >= at - history.ttl, context


# --- the direct join -------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("pit")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


_counter = itertools.count()


def join(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    labels: Labels,
    hists: tuple[History, ...],
    *,
    full: bool,
) -> list[dict[str, Any]]:
    n = next(_counter)
    labels_path = folder / f"labels-{n}.parquet"
    pq.write_table(labels.table(), labels_path)
    inputs = []
    for history in hists:
        path = folder / f"{history.name}-{n}.parquet"
        pq.write_table(history.table(), path)
        view = history.view()
        check_unique_events(con, view, [path])  # our histories are never ambiguous
        inputs.append(ViewInput(view, view.features, (path,)))
    out = folder / f"out-{n}.parquet"
    run_point_in_time(con, labels_path, "t", inputs, out, full_names=full)
    return pq.read_table(out).to_pylist()


@st.composite
def one_view(draw: st.DrawFn) -> tuple[tuple[History, ...], Labels, bool]:
    history = draw(histories())
    return (history,), draw(label_sets((history,))), draw(st.booleans())


@FAST
@given(case=one_view())
def test_one_view_matches_the_reference(
    case: tuple[tuple[History, ...], Labels, bool], scratch: Path, con: duckdb.DuckDBPyConnection
) -> None:
    hists, labels, full = case
    check(join(con, scratch, labels, hists, full=full), labels, hists, full=full)


@st.composite
def two_views(draw: st.DrawFn) -> tuple[tuple[History, ...], Labels]:
    first = draw(histories(name="fv", max_size=12))
    second = draw(histories(name="gv", max_size=12))
    return (first, second), draw(label_sets((first, second)))


@FAST
@given(case=two_views())
def test_two_views_in_one_query_match_the_reference(
    case: tuple[tuple[History, ...], Labels], scratch: Path, con: duckdb.DuckDBPyConnection
) -> None:
    hists, labels = case
    check(join(con, scratch, labels, hists, full=True), labels, hists, full=True)


@st.composite
def composite_keys(draw: st.DrawFn) -> tuple[tuple[History, ...], Labels]:
    keys = ("cid", "region")
    history = draw(histories(keys=keys, kinds=("TIMESTAMP",)))
    return (history,), draw(label_sets((history,), keys=keys))


@FAST
@given(case=composite_keys())
def test_composite_keys_match_the_reference(
    case: tuple[tuple[History, ...], Labels], scratch: Path, con: duckdb.DuckDBPyConnection
) -> None:
    hists, labels = case
    check(join(con, scratch, labels, hists, full=False), labels, hists, full=False)


@st.composite
def ambiguous(draw: st.DrawFn) -> History:
    history = draw(histories(created=False, max_size=8))
    twin = draw(st.sampled_from(history.rows)) if history.rows else None
    if twin is None:
        twin = Row(("a",), BASE, None, 1.0, 0)
        history = History(history.name, history.keys, history.kind, False, None, (twin,))
    copy = Row(twin.key, twin.t, None, 99.0, len(history.rows))
    return History(
        history.name, history.keys, history.kind, False, history.ttl, (*history.rows, copy)
    )


@settings(FAST, max_examples=25)
@given(history=ambiguous())
def test_duplicate_events_without_created_time_are_refused(
    history: History, scratch: Path, con: duckdb.DuckDBPyConnection
) -> None:
    path = scratch / f"dupes-{next(_counter)}.parquet"
    pq.write_table(history.table(), path)
    with pytest.raises(FeatureError) as info:
        check_unique_events(con, history.view(), [path])
    message = str(info.value)
    assert "feature view 'fv'" in message
    assert "cid=" in message and "ts=" in message
    assert "created_timestamp" in message  # what to do about it


# --- through project.training_set ---------------------------------------------------


PROJECT = """\
name: pit
feature_views:
  fv:
    entity: cid
    timestamp: ts
    source: history
    {extra}
    online: false
sources:
  history:
    path: data/history.parquet
"""


@settings(FAST, max_examples=12)
@given(data=st.data())
def test_training_sets_of_a_project_match_the_reference(
    data: st.DataObject, scratch: Path, make_project: Any
) -> None:
    # a source with no rows is refused by ingestion: the direct tests cover empty histories
    history = data.draw(histories(kinds=("TIMESTAMP",), max_size=15, min_size=1))
    labels = data.draw(label_sets((history,)))
    extra = [f"ttl: {int(history.ttl.total_seconds())}s" if history.ttl is not None else ""]
    if history.created:
        extra.append("created_timestamp: created")
    root = make_project(
        scratch / f"project-{next(_counter)}",
        PROJECT.format(extra="\n    ".join(e for e in extra if e) or "description: random"),
    )
    (root / "data").mkdir(exist_ok=True)
    pq.write_table(history.table(), root / "data" / "history.parquet")
    project = boite.open_project(root)
    try:
        report = project.run()
        assert report.ok, [(o.name, o.error) for o in report.outcomes]
        frame = labels.frame()
        result = project.training_set(frame, ["fv:*"], timestamp="t")
        table = pq.read_table(result.path)
        assert table.column_names == [*frame.columns, "value", "row_id", "seen"]
        assert result.record.kind == "training_set"
        check(table.to_pylist(), labels, (history,), full=False)
    finally:
        project.close()
