from __future__ import annotations

import dataclasses
import math
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from boite.core import ledger_schema
from boite.core.ledger import (
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    Ledger,
    NewArtifact,
    Resources,
    RunEntry,
    RunRecord,
    current_revision,
    make_engine,
    migrate,
    render_insert,
)
from boite.errors import NotFoundError

MIGRATIONS = Path(ledger_schema.__file__).parent / "migrations" / "versions"


def _artifact(name: str, digest: str, **kw: object) -> NewArtifact:
    return NewArtifact(
        kind="dataset",
        name=name,
        content_hash=digest * 64,
        uri=f"x/{digest}",
        format="parquet",
        **kw,
    )  # type: ignore[arg-type]


def test_schema_revision_is_the_newest_migration() -> None:
    newest = max(p.name.split("_")[0] for p in MIGRATIONS.glob("[0-9]*.py"))
    assert newest == ledger_schema.SCHEMA_REVISION


def test_migrate_from_empty_matches_the_metadata(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}", tmp_path)
    assert current_revision(engine) is None
    Ledger(f"sqlite:///{tmp_path / 'l.db'}", root=tmp_path)
    assert current_revision(engine) == ledger_schema.SCHEMA_REVISION
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), ledger_schema.metadata)
    assert diff == []


def test_migrate_from_the_previous_version_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = make_engine(url, tmp_path)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, step, kind, status, params, started_at) "
                "VALUES ('r1', 'a', 'transform', 'succeeded', '{}', '2026-01-01 00:00:00')"
            )
        )
    ledger = Ledger(url, root=tmp_path)
    assert current_revision(engine) == ledger_schema.SCHEMA_REVISION
    assert ledger.run("r1").step == "a"
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("column_lineage")


def test_a_run_and_its_outputs_are_committed_together(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///.boite/ledger.db", root=tmp_path)
    assert (tmp_path / ".boite" / "ledger.db").exists()
    run = ledger.start_run("a", "transform", params={"p": 1}, fingerprint="f")
    assert ledger.run(run).status == "running"
    out = ledger.finish_run(
        run,
        status=SUCCEEDED,
        resources=Resources(wall_s=1.5, rows_out=3),
        produced=[_artifact("a", "1", column_lineage={"x": [("t", "y")]})],
        metrics={"rows": 3},
    )
    assert [r.ref for r in out] == ["a@1"]
    record = ledger.run(run[:8])
    assert (record.status, record.wall_s, record.rows_out) == (SUCCEEDED, 1.5, 3)
    assert ledger.outputs_of(run)[0].id == out[0].id
    assert ledger.metrics(run) == {"rows": 3.0}
    assert ledger.column_lineage(out[0].id) == {"x": [("t", "y")]}


def test_same_content_is_not_a_new_version(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    versions = []
    for digest in ("1", "1", "2", "1"):
        run = ledger.start_run("a", "transform")
        versions.append(
            ledger.finish_run(run, status=SUCCEEDED, produced=[_artifact("a", digest)])[0].version
        )
    # the same content as the newest version is that version; going back to an
    # older content is a new version (history is never rewritten)
    assert versions == [1, 1, 2, 3]
    assert [v.version for v in ledger.versions("dataset", "a")] == [1, 2, 3]
    assert ledger.artifact("dataset", "a").version == 3
    assert ledger.artifact("dataset", "a", 2).content_hash == "2" * 64


def test_consumed_and_observed_edges(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    r1 = ledger.start_run("src", "ingest")
    raw = NewArtifact(
        kind="file", name="data/a.csv", content_hash="f" * 64, uri="data/a.csv", format="csv"
    )
    (ds,) = ledger.finish_run(
        r1, status=SUCCEEDED, observed=[raw], produced=[_artifact("src", "1")]
    )
    assert [a.kind for a in ledger.inputs_of(r1)] == ["file"]
    r2 = ledger.start_run("t", "transform")
    ledger.finish_run(r2, status=SUCCEEDED, consumed=[ds.id], produced=[_artifact("t", "2")])
    assert [r.id for r in ledger.consumers_of(ds.id)] == [r2]
    assert [r.id for r in ledger.producers_of(ds.id)] == [r1]


def test_latest_runs_per_step(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    ok = ledger.start_run("a", "transform")
    ledger.finish_run(ok, status=SUCCEEDED)
    bad = ledger.start_run("a", "transform")
    ledger.finish_run(bad, status=FAILED, error="boom")
    assert ledger.latest_runs()["a"].id == bad
    assert ledger.latest_runs(status=SUCCEEDED)["a"].id == ok


def test_stale_running_runs_are_marked_interrupted(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("a", "transform")
    assert ledger.interrupt_stale_runs() == 1
    assert ledger.run(run).status == INTERRUPTED


def test_unknown_names_suggest(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("a", "transform")
    ledger.finish_run(run, status=SUCCEEDED, produced=[_artifact("customer_daily", "1")])
    with pytest.raises(NotFoundError, match="customer_daily"):
        ledger.artifact("dataset", "custmer_daily")
    with pytest.raises(NotFoundError, match="customer_daily@7"):
        ledger.artifact("dataset", "customer_daily", 7)
    with pytest.raises(NotFoundError):
        ledger.run("nope")


def test_tags(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    ledger.set_tag("run", "r", "owner", "a")
    ledger.set_tag("run", "r", "owner", "b")
    assert ledger.tags("run", "r") == {"owner": "b"}


def test_concurrent_writers_keep_the_ledger_consistent(tmp_path: Path) -> None:
    # Two processes' worth of writers on one SQLite file: WAL and the busy
    # timeout make them wait for each other instead of failing.
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger(url, root=tmp_path)
    errors: list[BaseException] = []

    def write(step: str) -> None:
        try:
            ledger = Ledger(url, root=tmp_path)
            for i in range(25):
                run = ledger.start_run(step, "transform")
                ledger.finish_run(run, status=SUCCEEDED, produced=[_artifact(step, f"{i % 10}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ledger = Ledger(url, root=tmp_path)
    assert len(ledger.runs()) == 100
    assert all(v.version == 25 for v in ledger.latest_artifacts("dataset").values())


def test_log_metric_and_its_history(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("train:m", "train")
    for step, value in enumerate([0.5, 0.6, 0.7]):
        ledger.log_metric(run, "auc", value, step=step)
    assert ledger.metric_history(run, "auc") == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert ledger.metrics(run) == {"auc": 0.7}


def test_search_runs_by_a_metric(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    ids = []
    for value in (0.55, 0.8, 0.7):
        run = ledger.start_run("train:m", "trial")
        ledger.finish_run(run, status=SUCCEEDED, metrics={"auc": value})
        ids.append(run)
    other = ledger.start_run("train:n", "trial")
    ledger.finish_run(other, status=SUCCEEDED, metrics={"auc": 0.99})
    found = ledger.search_runs(metric="auc", op=">", value=0.6, step="train:m")
    assert [(r.id, v) for r, v in found] == [(ids[1], 0.8), (ids[2], 0.7)]
    # the latest value counts
    ledger.log_metric(ids[0], "auc", 0.9)
    assert ledger.search_runs(metric="auc", op=">=", value=0.9, step="train:m")[0][0].id == ids[0]
    with pytest.raises(ValueError, match="op must be"):
        ledger.search_runs(metric="auc", op="~", value=1)


def test_run_records_follow_the_runs_table() -> None:
    # Ledger._run builds RunRecord positionally from a runs row: the two must agree.
    assert [f.name for f in dataclasses.fields(RunRecord)] == [
        c.name for c in ledger_schema.runs.columns
    ]


def test_finish_run_sets_params_only_when_given(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    kept = ledger.start_run("a", "train", params={"p": 1})
    ledger.finish_run(kept, status=SUCCEEDED, resources=Resources(wall_s=2.0))
    replaced = ledger.start_run("a", "train", params={"p": 1})
    ledger.finish_run(replaced, status=FAILED, error="boom", params={"p": 2})
    first, second = ledger.run(kept), ledger.run(replaced)
    assert (first.params, first.status, first.wall_s) == ({"p": 1}, SUCCEEDED, 2.0)
    assert (second.params, second.status, second.error) == ({"p": 2}, FAILED, "boom")
    assert first.ended_at is not None and first.ended_at.tzinfo is not None


def test_a_logged_metric_is_committed_at_once(tmp_path: Path) -> None:
    # Nothing is buffered: another connection sees the value as soon as the call returns.
    url = f"sqlite:///{tmp_path / 'l.db'}"
    writer = Ledger(url, root=tmp_path)
    run = writer.start_run("train:m", "train")
    before = datetime.now(UTC)
    writer.log_metric(run, "loss", 0.25, step=np.int64(3))  # type: ignore[arg-type]
    reader = Ledger(url, root=tmp_path)
    assert reader.metric_history(run, "loss") == [(3, 0.25)]
    with reader.engine.connect() as conn:
        recorded = conn.execute(sa.select(ledger_schema.metrics.c.recorded_at)).scalar_one()
    # written on the DBAPI connection, read back by SQLAlchemy: the same timestamp format
    assert abs(recorded.replace(tzinfo=UTC) - before).total_seconds() < 60


def test_metric_history_keeps_the_order_recorded(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("train:m", "train")
    ledger.log_metric(run, "loss", 0.9, step=2)
    ledger.log_metric(run, "loss", 0.8, step=1)
    ledger.log_metric(run, "auc", 0.6)
    ledger.log_metrics(run, [("loss", 0.7, 3), ("auc", 0.65, 3), ("loss", 0.6, None)])
    assert ledger.metric_history(run, "loss") == [(2, 0.9), (1, 0.8), (3, 0.7), (None, 0.6)]
    assert ledger.metric_history(run, "auc") == [(None, 0.6), (3, 0.65)]
    assert ledger.metric_history(run, "f1") == []
    assert ledger.metrics(run) == {"loss": 0.6, "auc": 0.65}
    ledger.log_metrics(run, [])
    assert len(ledger.metric_history(run, "loss")) == 4


@pytest.mark.parametrize(
    ("key", "value", "step", "message"),
    [
        ("loss", float("nan"), None, "must be finite. Got nan"),
        ("loss", float("inf"), None, "must be finite. Got inf"),
        ("loss", -math.inf, 1, "must be finite"),
        ("loss", "0.5", None, "must be a real number. Got '0.5'"),
        ("loss", None, None, "must be a real number. Got None"),
        ("", 0.5, None, "must be a non-empty string"),
        (3, 0.5, None, "must be a non-empty string. Got 3"),
        ("loss", 0.5, 1.5, "must be an integer or None. Got 1.5"),
        ("loss", 0.5, "2", "must be an integer or None"),
    ],
)
def test_bad_metric_values_are_refused(
    tmp_path: Path, key: object, value: object, step: object, message: str
) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("train:m", "train")
    with pytest.raises(ValueError, match=re.escape(message)):
        ledger.log_metric(run, key, value, step=step)  # type: ignore[arg-type]
    # a batch with one bad point records none of it
    with pytest.raises(ValueError, match=re.escape(message)):
        ledger.log_metrics(run, [("ok", 0.1, 0), (key, value, step)])  # type: ignore[list-item]
    assert ledger.metrics(run) == {}


def test_metrics_of_an_unknown_run_are_refused(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    with pytest.raises(NotFoundError, match="no run named 'nope'"):
        ledger.log_metric("nope", "loss", 0.5)
    with pytest.raises(NotFoundError, match="no run named 'nope'"):
        ledger.log_metrics("nope", [("loss", 0.5, 0), ("loss", 0.4, 1)])
    with ledger.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(ledger_schema.metrics))
        assert count.scalar() == 0
    # the pool's connection is usable after the failure
    run = ledger.start_run("train:m", "train")
    ledger.log_metric(run, "loss", 0.5)
    assert ledger.metrics(run) == {"loss": 0.5}


def test_log_metric_from_threads(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    run = ledger.start_run("train:m", "train")
    errors: list[BaseException] = []

    def write(key: str) -> None:
        try:
            for i in range(50):
                ledger.log_metric(run, key, i / 50, step=i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"k{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for i in range(4):
        assert [s for s, _ in ledger.metric_history(run, f"k{i}")] == list(range(50))


def _trials(ledger: Ledger, values: list[float], step: str = "train:m") -> list[str]:
    ids = []
    for value in values:
        run = ledger.start_run(step, "trial")
        ledger.finish_run(run, status=SUCCEEDED, metrics={"auc": value, "loss": 1 - value})
        ids.append(run)
    return ids


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        (">", 0.6, [0.8, 0.7]),
        (">=", 0.7, [0.8, 0.7]),
        ("<", 0.7, [0.6, 0.55]),
        ("<=", 0.6, [0.6, 0.55]),
        ("=", 0.7, [0.7]),
        (">", 0.9, []),
    ],
)
def test_search_runs_operators(tmp_path: Path, op: str, value: float, expected: list) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    _trials(ledger, [0.55, 0.8, 0.7, 0.6])
    found = ledger.search_runs(metric="auc", op=op, value=value)
    assert [v for _, v in found] == expected
    assert all(isinstance(r, RunRecord) and r.started_at.tzinfo for r, _ in found)


def test_search_runs_kind_limit_and_bad_input(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    _trials(ledger, [0.55, 0.8, 0.7])
    train = ledger.start_run("train:m", "train")
    ledger.finish_run(train, status=SUCCEEDED, metrics={"auc": 0.75})
    assert [v for _, v in ledger.search_runs(metric="auc", op=">", value=0, kind="train")] == [0.75]
    assert [v for _, v in ledger.search_runs(metric="auc", op=">", value=0, limit=2)] == [0.8, 0.75]
    assert ledger.search_runs(metric="f1", op=">", value=0) == []
    with pytest.raises(ValueError, match="op must be one of >, >=, <, <=, =; got '=='"):
        ledger.search_runs(metric="auc", op="==", value=0.5)
    with pytest.raises(ValueError, match="must be finite"):
        ledger.search_runs(metric="auc", op=">", value=float("nan"))


def test_metrics_of_many_runs_in_one_call(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///l.db", root=tmp_path)
    entries = [
        RunEntry(
            step="search",
            kind="trial",
            status=SUCCEEDED,
            params={"i": i},
            started_at=datetime.now(UTC),
            wall_s=0.0,
            metrics={"auc": i / 1200} if i % 2 else {},
        )
        for i in range(1200)  # more than one IN list's worth of ids
    ]
    ids = ledger.log_runs(entries)
    ledger.log_metric(ids[1], "auc", 0.99)  # the latest value counts, as in metrics()
    found = ledger.metrics_of(ids)
    assert list(found) == ids
    assert found[ids[0]] == {} and found[ids[1]] == {"auc": 0.99}
    assert found[ids[3]] == ledger.metrics(ids[3]) == {"auc": 3 / 1200}
    assert ledger.metrics_of([]) == {}
    assert ledger.metrics_of(["nope"]) == {"nope": {}}
    matched = ledger.search_runs(metric="auc", op=">", value=0.9, step="search")
    assert len(matched) == sum(1 for i in range(1, 1200, 2) if i / 1200 > 0.9) + 1


def test_the_prepared_metric_insert_is_portable() -> None:
    # log_metric runs SQLAlchemy's own rendering of the INSERT on the DBAPI cursor:
    # named parameters and no RETURNING on PostgreSQL, positional on SQLite.
    from sqlalchemy.dialects import postgresql, sqlite

    keys = ("run_id", "key", "value", "step", "recorded_at")
    for dialect in (postgresql.psycopg2.dialect(), postgresql.psycopg.dialect()):
        sql, order = render_insert(ledger_schema.metrics, keys, dialect)
        assert order is None
        assert "%(run_id)s" in sql and "%(recorded_at)s" in sql and "RETURNING" not in sql
    sql, order = render_insert(ledger_schema.metrics, keys, sqlite.pysqlite.dialect())
    assert order == keys and sql.count("?") == 5 and "RETURNING" not in sql


def test_versions_superseded_by_a_run_kind(tmp_path: Path) -> None:
    """Versions that a succeeded run of the named kind consumed drop out (a compaction's
    inputs); a failed run of that kind, or a consumer of another kind, changes nothing."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", root=tmp_path)
    made = ledger.start_run("log", "log")
    first, second = ledger.finish_run(
        made, status=SUCCEEDED, produced=[_artifact("p", "a"), _artifact("p", "b")]
    )
    reader = ledger.start_run("feedback", "feedback")
    ledger.finish_run(reader, status=SUCCEEDED, consumed=[first.id, second.id])
    failed = ledger.start_run("compact", "compact")
    ledger.finish_run(failed, status="failed", consumed=[first.id, second.id], error="x")
    assert [v.id for v in ledger.versions("dataset", "p", superseded_by="compact")] == [
        first.id,
        second.id,
    ]
    merge = ledger.start_run("compact", "compact")
    (merged,) = ledger.finish_run(
        merge, status=SUCCEEDED, consumed=[first.id, second.id], produced=[_artifact("p", "c")]
    )
    assert [v.id for v in ledger.versions("dataset", "p", superseded_by="compact")] == [merged.id]
    assert len(ledger.versions("dataset", "p")) == 3


def test_versions_where_a_meta_key_has_a_value(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", root=tmp_path)
    run = ledger.start_run("log", "log")
    ledger.finish_run(
        run,
        status=SUCCEEDED,
        produced=[
            _artifact("p", "a", meta={"segment": "s/1"}),
            _artifact("p", "b", meta={"segment": "s/2", "other": 1}),
            _artifact("p", "c"),
        ],
    )
    assert [v.version for v in ledger.versions_where("dataset", "p", "segment", "s/2")] == [2]
    assert ledger.versions_where("dataset", "p", "segment", "s/3") == []
    assert ledger.versions_where("dataset", "q", "segment", "s/1") == []
