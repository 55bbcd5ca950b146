"""The ledger on a real PostgreSQL server (started by the tests with pgserver): the
migrations, the API, concurrent writers, and a whole project recorded there.

DESIGN: nothing may assume SQLite; this is where that is checked.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from boite.core import ledger_schema
from boite.core.ledger import (
    INTERRUPTED,
    SUCCEEDED,
    Ledger,
    NewArtifact,
    current_revision,
    make_engine,
    migrate,
)
from boite.errors import NotFoundError

pgserver = pytest.importorskip("pgserver")  # in the dev extra: present in CI
REPO = Path(__file__).resolve().parents[2]
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A fresh database on the server; a plain postgresql:// URL, as a user writes it."""
    name = f"ledger_{next(_databases)}"
    postgres.psql(f"CREATE DATABASE {name};")
    return postgres.get_uri().replace("/postgres?", f"/{name}?", 1)


def _artifact(name: str, content: str, meta: dict[str, Any] | None = None) -> NewArtifact:
    # a real sha256: PostgreSQL, unlike SQLite, holds VARCHAR(64) to its length
    digest = hashlib.sha256(content.encode()).hexdigest()
    return NewArtifact(
        kind="dataset",
        name=name,
        content_hash=digest,
        uri=f"x/{digest}",
        format="parquet",
        meta=meta,
    )


def test_migrations_from_empty_and_from_0001_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_url, tmp_path)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, step, kind, status, params, started_at) "
                "VALUES ('r1', 'a', 'transform', 'succeeded', '{}', '2026-01-01 00:00:00')"
            )
        )
    ledger = Ledger(pg_url, root=tmp_path)
    assert current_revision(engine) == ledger_schema.SCHEMA_REVISION
    assert ledger.run("r1").step == "a"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), ledger_schema.metadata)
    assert diff == []
    ledger.close()
    engine.dispose()


def test_the_ledger_api_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    ledger = Ledger(pg_url, root=tmp_path)
    first = ledger.start_run("daily", "transform", params={"a": 1})
    (record,) = ledger.finish_run(
        first, status=SUCCEEDED, produced=[_artifact("daily", "a")], metrics={"auc": 0.7}
    )
    assert record.ref == "daily@1"
    second = ledger.start_run("daily", "transform")
    (same,) = ledger.finish_run(second, status=SUCCEEDED, produced=[_artifact("daily", "a")])
    assert same.version == 1  # the same content is not a new version
    consumer = ledger.start_run("weekly", "transform")
    ledger.finish_run(
        consumer, status=SUCCEEDED, consumed=[record.id], produced=[_artifact("weekly", "b")]
    )
    assert [a.ref for a in ledger.inputs_of(consumer)] == ["daily@1"]
    tagged = ledger.start_run("log", "log")
    ledger.finish_run(
        tagged, status=SUCCEEDED, produced=[_artifact("log", "c", meta={"segment": "s/1"})]
    )
    assert [a.ref for a in ledger.versions_where("dataset", "log", "segment", "s/1")] == ["log@1"]
    assert ledger.versions_where("dataset", "log", "segment", "s/2") == []
    assert [r.id for r in ledger.consumers_of(record.id)] == [consumer]

    for step, value in enumerate((0.9, 0.5, 0.4)):
        ledger.log_metric(first, "loss", value, step=step)
    assert ledger.metric_history(first, "loss") == [(0, 0.9), (1, 0.5), (2, 0.4)]
    found = ledger.search_runs(metric="auc", op=">", value=0.6)
    assert [(r.id, v) for r, v in found] == [(first, 0.7)]
    assert ledger.metrics_of([first])[first] == {"auc": 0.7, "loss": 0.4}
    with pytest.raises(NotFoundError):
        ledger.log_metric("no-such-run", "loss", 1.0)
    ledger.log_metric(first, "loss", 0.3, step=3)  # the connection survived the refusal
    ledger.set_tag("run", first, "owner", "ann")
    assert ledger.tags("run", first) == {"owner": "ann"}

    stale = ledger.start_run("killed", "transform")
    assert ledger.interrupt_stale_runs() >= 1
    assert ledger.run(stale).status == INTERRUPTED
    ledger.close()


def test_concurrent_writers_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    ledgers = [Ledger(pg_url, root=tmp_path) for _ in range(4)]
    errors: list[BaseException] = []

    def write(ledger: Ledger, n: int) -> None:
        try:
            for i in range(10):
                run = ledger.start_run(f"w{n}", "transform")
                ledger.finish_run(run, status=SUCCEEDED, produced=[_artifact("shared", f"{n}{i}")])
                ledger.log_metric(run, "x", float(i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(led, n)) for n, led in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = [a.version for a in ledgers[0].versions("dataset", "shared")]
    assert sorted(versions) == list(range(1, 41))  # no version number given twice
    for led in ledgers:
        led.close()


@pytest.mark.slow
def test_a_whole_project_on_a_postgresql_ledger(pg_url: str, tmp_path: Path, serve: Any) -> None:
    """The retail example with stores.ledger on PostgreSQL: build, train, promote, serve,
    score a batch; lineage and history come back from PostgreSQL."""
    import httpx

    import boite
    from boite.pipeline.scoring import score_batch

    root = tmp_path / "retail"
    shutil.copytree(REPO / "examples" / "retail", root, ignore=shutil.ignore_patterns(".boite"))
    text = (root / "boite.yaml").read_text()
    (root / "boite.yaml").write_text(
        text.replace("\nsources:", f"\nstores:\n  ledger: '{pg_url}'\n\nsources:", 1)
    )
    project = boite.open_project(root)
    assert project.ledger.engine.dialect.name == "postgresql"
    assert project.run().ok
    version = project.train("repurchase", trials=0).version
    project.promote(version.ref, to="production", reason="on postgresql")
    assert project.models.registry.alias("repurchase", "production").ref == version.ref
    assert "transactions" in project.lineage("repurchase_labels").to_text()
    batch = score_batch(project, "repurchase", "repurchase_labels", timestamp="as_of")
    assert batch.rows == project.dataset("repurchase_labels").rows
    project.close()
    with serve(root) as server:
        answer = httpx.post(
            f"{server.url}/v1/models/repurchase/predict",
            json={"entities": [{"customer_id": "00042"}]},
        )
        assert answer.status_code == 200, answer.text
    project = boite.open_project(root)
    logged = project.ledger.versions("prediction_log", "repurchase")
    assert sum(r.rows or 0 for r in logged) >= batch.rows + 1
    # compaction, and the readers' query that skips what it merged, on PostgreSQL
    from boite.pipeline.compaction import compact_log, current_partitions

    merged = compact_log(project, "repurchase", older_than=timedelta(0))
    current = current_partitions(project, "repurchase")
    assert len(current) == len(logged) - merged.partitions_in + len(merged.merged)
    assert sum(r.rows or 0 for r in current) == sum(r.rows or 0 for r in logged)
    project.close()
