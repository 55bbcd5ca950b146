"""The retail example end to end: every dataset checked against pandas on the raw CDNOW file.

The project is copied and built once per module; tests that change it work on a
copy of the built folder (ledger and artifacts included), so they start from the
same state and leave the shared one alone.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import boite
from boite.pipeline.project import Project
from boite.pipeline.runner import RunReport

RETAIL = Path(__file__).parents[2] / "examples/retail"
RAW = "data/cdnow/CDNOW_master.txt.gz"
# The data steps, in run order; the project may add others (feature views) after them.
STEPS = ["transactions", "customer_daily", "customer_activity", "repurchase_labels"]
DATA_END = pd.Timestamp("1998-06-30")
SAMPLE = 200


@dataclass
class Built:
    root: Path
    project: Project
    first: RunReport


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("retail") / "retail"
    shutil.copytree(RETAIL, root, ignore=shutil.ignore_patterns(".boite", "__pycache__"))
    project = boite.open_project(root)
    report = project.run()
    yield Built(root, project, report)
    project.close()


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    frame = pd.read_csv(RETAIL / RAW, sep=r"\s+", dtype={"customer_id": str})
    frame["day"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
    return frame


@pytest.fixture(scope="module")
def daily(raw: pd.DataFrame) -> pd.DataFrame:
    """customer_daily as pandas computes it from the raw file."""
    out = (
        raw.groupby(["customer_id", "day"])
        .agg(orders=("date", "size"), cds=("number_of_cds", "sum"), spend=("dollar_value", "sum"))
        .reset_index()
    )
    out["spend"] = out["spend"].round(2)
    return out


@pytest.fixture(scope="module")
def activity(built: Built) -> pd.DataFrame:
    frame = built.project.dataset("customer_activity").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame


@pytest.fixture(scope="module")
def labels(built: Built) -> pd.DataFrame:
    frame = built.project.dataset("repurchase_labels").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame


def month_ends(days: pd.Series) -> list[pd.Timestamp]:
    """The last day of every month in which the data has a purchase."""
    return sorted({d + pd.offsets.MonthEnd(0) for d in days.unique()})


def assert_same_keys(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """The two frames hold the same set of ``keys`` rows, each once."""
    assert not got.duplicated(keys).any()
    assert not expected.duplicated(keys).any()
    both = got[keys].merge(expected[keys], on=keys, how="outer", indicator=True)
    extra = both[both["_merge"] == "left_only"]
    missing = both[both["_merge"] == "right_only"]
    assert extra.empty and missing.empty, (extra.head(), missing.head())
    assert len(got) == len(expected)


def history(daily: pd.DataFrame, customers: pd.Series) -> dict[str, pd.DataFrame]:
    """The daily rows of each of ``customers``."""
    wanted = daily[daily["customer_id"].isin(set(customers))]
    return {c: g for c, g in wanted.groupby("customer_id")}


def copy_built(built: Built, dest: Path) -> Project:
    """An independent copy of the built project (its ledger and artifacts too)."""
    built.project.close()  # checkpoint the ledger's WAL before copying its files
    shutil.copytree(built.root, dest)
    return boite.open_project(dest)


def states(report: RunReport) -> dict[str, str]:
    return {o.name: o.state for o in report.outcomes}


# --- the first run -------------------------------------------------------------------


def test_first_run_builds_every_step(built: Built) -> None:
    assert built.first.ok, [(o.name, o.detail) for o in built.first.outcomes]
    names = [o.name for o in built.first.outcomes]
    assert [n for n in names if n in STEPS] == STEPS
    got = states(built.first)
    assert {n: got[n] for n in STEPS} == dict.fromkeys(STEPS, "built")
    assert all(built.first.outcome(n).version == 1 for n in STEPS)


def test_transactions_holds_every_raw_row(built: Built, raw: pd.DataFrame) -> None:
    ds = built.project.dataset("transactions")
    assert ds.rows == 69_659 == len(raw)
    frame = ds.to_pandas()
    assert len(frame) == 69_659
    assert frame["customer_id"].nunique() == 23_570
    # Leading zeros of the ids survive (the columns: declaration keeps them VARCHAR).
    assert frame["customer_id"].str.len().eq(5).all()
    assert frame["dollar_value"].sum() == pytest.approx(raw["dollar_value"].sum())
    assert frame["number_of_cds"].sum() == raw["number_of_cds"].sum()


def test_customer_daily_equals_pandas_groupby(built: Built, daily: pd.DataFrame) -> None:
    got = built.project.dataset("customer_daily").to_pandas()
    assert list(got.columns) == ["customer_id", "day", "orders", "cds", "spend"]
    got["day"] = pd.to_datetime(got["day"])
    assert len(got) == len(daily) == 67_591
    merged = daily.merge(
        got, on=["customer_id", "day"], how="outer", suffixes=("_pd", "_boite"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert (merged["orders_pd"] == merged["orders_boite"]).all()
    assert (merged["cds_pd"] == merged["cds_boite"]).all()
    np.testing.assert_allclose(merged["spend_boite"], merged["spend_pd"], rtol=0, atol=1e-9)


def test_counts_stay_integers(built: Built) -> None:
    # A count of CDs is a whole number; it must not come back as a float.
    got = built.project.dataset("customer_daily").to_pandas()
    assert pd.api.types.is_integer_dtype(got["cds"]), got["cds"].dtype
    assert pd.api.types.is_integer_dtype(got["orders"]), got["orders"].dtype


@pytest.mark.parametrize("name", STEPS)
def test_recorded_schema_is_the_stored_files_schema(built: Built, name: str) -> None:
    ds = built.project.dataset(name)
    con = duckdb.connect()
    try:
        rel = ds.to_duckdb(con)
        in_file = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    finally:
        con.close()
    assert ds.schema == in_file


def test_activity_has_a_row_per_purchase_day_and_month_end(
    activity: pd.DataFrame, daily: pd.DataFrame
) -> None:
    ends = pd.DataFrame({"as_of": month_ends(daily["day"])})
    first = daily.groupby("customer_id")["day"].min().rename("first_day").reset_index()
    at_month_ends = first.merge(ends, how="cross")
    at_month_ends = at_month_ends[at_month_ends["as_of"] >= at_month_ends["first_day"]]
    expected = pd.concat(
        [
            daily[["customer_id", "day"]].rename(columns={"day": "as_of"}),
            at_month_ends[["customer_id", "as_of"]],
        ]
    ).drop_duplicates()
    assert_same_keys(activity, expected, ["customer_id", "as_of"])


def _windows(history: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, float]:
    """Activity of one customer as of the end of ``as_of``, from its daily rows."""
    seen = history[history["day"] <= as_of]
    out: dict[str, float] = {}
    for days in (30, 90, 365):
        window = seen[seen["day"] > as_of - pd.Timedelta(days=days)]
        out[f"spend_{days}d"] = float(window["spend"].sum())
        out[f"purchase_days_{days}d"] = len(window)
        out[f"orders_{days}d"] = int(window["orders"].sum())
    out["days_since_last"] = (as_of - seen["day"].max()).days
    out["purchase_days_total"] = len(seen)
    out["orders_total"] = int(seen["orders"].sum())
    return out


@pytest.fixture(scope="module")
def activity_sample(activity: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """~200 rows of customer_activity with what pandas expects for each."""
    sample = activity.sample(n=SAMPLE, random_state=7)
    by_customer = history(daily, sample["customer_id"])
    expected = [_windows(by_customer[r.customer_id], r.as_of) for r in sample.itertuples()]
    return sample.reset_index(drop=True).join(pd.DataFrame(expected).add_prefix("want_"))


def test_activity_spend_windows_and_recency_match_pandas(activity_sample: pd.DataFrame) -> None:
    s = activity_sample
    for days in (30, 90, 365):
        np.testing.assert_allclose(s[f"spend_{days}d"], s[f"want_spend_{days}d"], rtol=0, atol=1e-6)
    assert (s["days_since_last"] == s["want_days_since_last"]).all()
    assert (s["days_since_last"] >= 0).all()


def test_activity_windows_count_purchases(activity_sample: pd.DataFrame) -> None:
    # Whatever the unit, a window counts at least one per purchase day in it.
    s = activity_sample
    for days in (30, 90, 365):
        assert (s[f"orders_{days}d"] >= s[f"want_purchase_days_{days}d"]).all()
    assert (s["orders_30d"] <= s["orders_90d"]).all()
    assert (s["orders_90d"] <= s["orders_365d"]).all()
    assert (s["orders_365d"] <= s["orders_total"]).all()


def test_activity_orders_count_orders_like_customer_daily(activity_sample: pd.DataFrame) -> None:
    # customer_daily.orders counts transactions; orders_Nd and orders_total downstream
    # must count the same unit (sum of orders), not the number of purchase days.
    s = activity_sample
    for column in ("orders_30d", "orders_90d", "orders_365d", "orders_total"):
        wrong = s[s[column] != s[f"want_{column}"]]
        assert wrong.empty, wrong[["customer_id", "as_of", column, f"want_{column}"]].head()


def test_repurchase_labels_cover_observable_month_ends(
    labels: pd.DataFrame, daily: pd.DataFrame
) -> None:
    ends = [e for e in month_ends(daily["day"]) if e + pd.Timedelta(days=90) <= DATA_END]
    assert ends[-1] == pd.Timestamp("1998-03-31")
    assert sorted(labels["as_of"].unique()) == ends
    first = daily.groupby("customer_id")["day"].min().rename("first_day").reset_index()
    expected = first.merge(pd.DataFrame({"as_of": ends}), how="cross")
    expected = expected[expected["as_of"] >= expected["first_day"]]
    assert_same_keys(labels, expected, ["customer_id", "as_of"])
    assert set(labels["bought_again_90d"].unique()) == {0, 1}


def test_repurchase_labels_match_pandas(labels: pd.DataFrame, daily: pd.DataFrame) -> None:
    sample = labels.sample(n=SAMPLE, random_state=11)
    by_customer = history(daily, sample["customer_id"])
    for row in sample.itertuples():
        days = by_customer[row.customer_id]["day"]
        later = days[(days > row.as_of) & (days <= row.as_of + pd.Timedelta(days=90))]
        assert row.bought_again_90d == int(len(later) > 0), (row.customer_id, row.as_of)
    # Both labels occur in the sample of a real purchase log.
    assert sample["bought_again_90d"].nunique() == 2


# --- incremental runs, versions, lineage --------------------------------------------------


def test_second_run_executes_nothing(built: Built) -> None:
    runs_before = len(built.project.runs())
    report = built.project.run()
    assert report.ok
    assert set(states(report).values()) == {"up to date"}
    assert report.executed == []
    assert [report.outcome(n).version for n in STEPS] == [1, 1, 1, 1]
    assert len(built.project.runs()) == runs_before
    # status agrees with run: every step, whatever its kind, is up to date.
    status = {s.name: (s.state, s.reason) for s in built.project.status()}
    assert set(status) == set(states(report))
    assert {name: state for name, (state, _) in status.items()} == dict.fromkeys(
        status, "up to date"
    ), status


def test_dataset_to_pandas(built: Built) -> None:
    ds = built.project.dataset("customer_daily")
    frame = ds.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == ds.rows == 67_591
    assert ds.ref == "customer_daily@1"
    assert built.project.dataset("customer_daily@1").content_hash == ds.content_hash


def test_lineage_upstream_reaches_the_raw_file(built: Built) -> None:
    graph = built.project.lineage("customer_activity", direction="upstream")
    nodes = graph.to_dict()["nodes"]
    files = [n for n in nodes if n["kind"] == "file"]
    assert [n["name"] for n in files] == [RAW]
    digest = hashlib.sha256((built.root / RAW).read_bytes()).hexdigest()
    assert files[0]["hash"] == digest
    datasets = {n["name"] for n in nodes if n["kind"] == "dataset"}
    assert datasets == {"transactions", "customer_daily", "customer_activity"}
    runs = {n["step"] for n in nodes if n["kind"] == "run"}
    assert runs == {"transactions", "customer_daily", "customer_activity"}
    assert RAW in graph.to_text()
    # The chain is connected: file -> ingest run -> ... -> customer_activity.
    ids = {n["id"]: n for n in nodes}
    edges = graph.to_dict()["edges"]
    assert {(ids[e["from"]]["kind"], ids[e["to"]]["kind"]) for e in edges} == {
        ("file", "run"),
        ("run", "dataset"),
        ("dataset", "run"),
    }


def test_column_lineage_of_customer_daily(built: Built) -> None:
    lineage = built.project.dataset("customer_daily").column_lineage
    assert lineage["spend"] == [("transactions", "dollar_value")]
    assert lineage["cds"] == [("transactions", "number_of_cds")]
    assert lineage["customer_id"] == [("transactions", "customer_id")]
    assert lineage["day"] == [("transactions", "date")]


def test_editing_a_transform_rebuilds_it_and_its_downstream_only(
    built: Built, tmp_path: Path
) -> None:
    project = copy_built(built, tmp_path / "retail")
    sql = project.root / "transforms/customer_daily.sql"
    text = sql.read_text()
    assert "round(sum(dollar_value), 2)" in text
    sql.write_text(text.replace("round(sum(dollar_value), 2)", "round(sum(dollar_value), 1)"))

    status = {s.name: s for s in project.status()}
    assert status["transactions"].state == "up to date"
    assert status["customer_daily"].state == "stale"
    assert "code changed" in status["customer_daily"].reason
    assert "transforms/customer_daily.sql" in status["customer_daily"].reason
    for name in ("customer_activity", "repurchase_labels"):
        assert status[name].state == "stale"
        assert "customer_daily" in status[name].reason

    runs_before = len(project.runs())
    report = project.run()
    assert report.ok
    got = states(report)
    assert got["transactions"] == "up to date"
    assert got["customer_daily"] == "built"
    assert got["customer_activity"] == "built"
    # The labels only look at purchase days: rebuilt, the same content, no new version.
    assert got["repurchase_labels"] == "unchanged"
    executed = {o.name for o in report.executed}
    assert set(STEPS[1:]) <= executed
    assert "transactions" not in executed
    # Only the edited step and what reads it, directly or not.
    assert executed == {"customer_daily"} | project.plan().downstream(["customer_daily"])
    assert len(project.runs()) == runs_before + len(executed)

    versions = {n: report.outcome(n).version for n in STEPS}
    assert versions == {
        "transactions": 1,
        "customer_daily": 2,
        "customer_activity": 2,
        "repurchase_labels": 1,
    }
    assert [v.version for v in project.ledger.versions("dataset", "customer_daily")] == [1, 2]
    old = project.dataset("customer_daily@1").to_pandas()
    new = project.dataset("customer_daily").to_pandas()
    assert project.dataset("customer_daily").version == 2
    # Rounded to one decimal from the same sums: within half a cent of a dime of the old.
    assert ((new["spend"] - old["spend"]).abs() <= 0.05 + 1e-9).all()
    np.testing.assert_allclose(new["spend"] * 10, (new["spend"] * 10).round(), atol=1e-6)
    assert (new["spend"] != old["spend"]).any()
    # The new version's lineage goes through customer_daily@2.
    labels = {n["label"] for n in project.lineage("customer_activity").to_dict()["nodes"]}
    assert "customer_daily@2" in labels
    assert "customer_activity@2" in labels

    again = project.run()
    assert again.executed == []
    project.close()


def test_editing_a_leaf_transform_runs_only_that_step(built: Built, tmp_path: Path) -> None:
    project = copy_built(built, tmp_path / "retail")
    sql = project.root / "transforms/customer_activity.sql"
    sql.write_text("-- a comment changes the code, not the result\n" + sql.read_text())
    report = project.run()
    assert report.ok
    assert [o.name for o in report.executed] == ["customer_activity"]
    outcome = report.outcome("customer_activity")
    assert outcome.state == "unchanged"
    assert outcome.version == 1
    assert [v.version for v in project.ledger.versions("dataset", "customer_activity")] == [1]
    assert project.run().executed == []
    project.close()
