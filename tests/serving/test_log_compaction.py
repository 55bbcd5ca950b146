"""`boite log compact`: a model's small prediction log partitions merged into one per
model version and day, on the real ledger, store and DuckDB; readers see the same rows
before and after, and the merge is on record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from retail_copy import copy_retail
from typer.testing import CliRunner

from boite.cli.main import app
from boite.core.ledger import ArtifactRecord
from boite.errors import RegistryError, UserError
from boite.pipeline.compaction import COMPACT, Compaction, compact_log, current_partitions
from boite.pipeline.live import live_comparison
from boite.pipeline.project import Project, open_project
from boite.pipeline.scoring import log_partitions, record_feedback
from boite.serving.logsink import LOG_DIR, LedgerSink
from boite.serving.model import ServedModel
from boite.serving.predlog import PREDICTION_LOG, Entry, PredictionLog

LATER = datetime.now(UTC) + timedelta(days=2)  # every partition is then two days old
ENV = "compaction"  # the copy may hold partitions of other tests' servers: ours are apart


@pytest.fixture
def retail(retail_root: Path, tmp_path: Path) -> Project:
    root = tmp_path / "retail"
    copy_retail(retail_root, root)
    project = open_project(root)
    yield project
    project.close()


def _serve_log(project: Project, flushes: int, day: int = 0) -> list[str]:
    """``flushes`` partitions per version (@1 champion, @2 shadow) through the real sink,
    each published at once, of rows logged on 1998-06-01 + ``day``; returns the request
    ids in order."""
    features = tuple(project.models.registry.get("repurchase@1").meta["features"])
    sink = LedgerSink(
        project.ledger,
        project.store,
        env=ENV,
        directory=project.state_dir / LOG_DIR,
        publish_seconds=0.0,
    )
    log = PredictionLog(sink)
    ids = []
    for i in range(flushes):
        for version, role in ((1, "champion"), (2, "shadow")):
            model = ServedModel(
                "repurchase",
                version,
                "binary_classification",
                features,
                {},
                lambda r: [],
                (),
                entity_keys=("customer_id",),
            )
            entities = [{"customer_id": f"{i + 1:05d}"}]
            logged = datetime(1998, 6, 1, tzinfo=UTC) + timedelta(days=day)
            at = int(logged.timestamp() * 1e6) + i
            log.record(
                model,
                Entry(
                    f"q-{day}-{i}",
                    at,
                    role,
                    role == "champion",
                    entities,
                    [[i] * len(features)],
                    [i / 10],
                    1.0,
                ),
            )
        ids.append(f"q-{day}-{i}")
        log.flush()
    log.close()
    return ids


def _request_ids(files: list[Path]) -> list[tuple[str, str]]:
    paths = [str(f) for f in files]
    return duckdb.sql(
        f"SELECT request_id, role FROM read_parquet({paths!r}, union_by_name = true) "
        "WHERE request_id LIKE 'q-%' ORDER BY time, role"
    ).fetchall()


def _ours(result: Compaction) -> list[tuple[str, int]]:
    return sorted((m.model_version, m.partitions) for m in result.merged if m.env == ENV)


def _our_days(result: Compaction) -> list[tuple[str, str, int]]:
    return sorted(
        (m.model_version, str(m.day), m.partitions) for m in result.merged if m.env == ENV
    )


def _current(project: Project) -> list[ArtifactRecord]:
    return [r for r in current_partitions(project, "repurchase") if r.meta.get("env") == ENV]


def test_partitions_merge_per_version_and_readers_see_the_same_rows(retail: Project) -> None:
    total = len(retail.ledger.versions(PREDICTION_LOG, "repurchase"))
    ids = _serve_log(retail, 4)
    assert len(_current(retail)) == 8
    _, files = log_partitions(retail, "repurchase")
    before_rows = _request_ids(files)
    before_live = live_comparison(retail, "repurchase")[["version", "role", "rows"]]
    result = compact_log(retail, "repurchase", now=LATER)
    assert _ours(result) == [("repurchase@1", 4), ("repurchase@2", 4)]
    assert result.bytes_out > 0
    records, files = log_partitions(retail, "repurchase")
    ours = _current(retail)
    assert len(ours) == 2 and all(r.meta["compacted"]["partitions"] == 4 for r in ours)
    assert _request_ids(files) == before_rows and len(before_rows) == 2 * len(ids)
    after_live = live_comparison(retail, "repurchase")[["version", "role", "rows"]]
    assert after_live.equals(before_live)
    # on record: one compact run consumed the small partitions and produced the merged
    (run,) = retail.ledger.runs(step="compact:repurchase")
    assert run.kind == COMPACT and run.status == "succeeded"
    assert len(retail.ledger.inputs_of(run.id)) == result.partitions_in
    merged = {r.id for r in records if r.meta.get("compacted")}
    assert {a.id for a in retail.ledger.outputs_of(run.id)} == merged
    # the small ones stay in the ledger, merely superseded
    assert len(retail.ledger.versions(PREDICTION_LOG, "repurchase")) == (
        total + 8 + len(result.merged)
    )
    # labels still join, now to a merged partition
    summary = record_feedback(
        retail, "repurchase", [{"request_id": "q-0-1", "row": 0, "bought_again_90d": 1}]
    )
    assert summary.matched_by_id == 1
    assert {a.id for a in retail.ledger.inputs_of(summary.run_id)} <= merged


def test_compacting_again_merges_only_what_came_since(retail: Project) -> None:
    _serve_log(retail, 2)
    assert _ours(compact_log(retail, "repurchase", now=LATER)) == [
        ("repurchase@1", 2),
        ("repurchase@2", 2),
    ]
    assert compact_log(retail, "repurchase", now=LATER).merged == []  # one per group now
    _serve_log(retail, 1)
    again = compact_log(retail, "repurchase", now=LATER)
    # each merged partition with the new one of its version
    assert _ours(again) == [("repurchase@1", 2), ("repurchase@2", 2)]
    assert len(_current(retail)) == 2
    _, files = log_partitions(retail, "repurchase")
    assert len(_request_ids(files)) == 6


def test_each_day_is_merged_once(retail: Project) -> None:
    """Grouped by the day the rows were logged: compacting again does not fold the merged
    days into one another; a late partition of a day joins that day's merged one."""
    _serve_log(retail, 2, day=0)
    _serve_log(retail, 2, day=1)
    first = compact_log(retail, "repurchase", now=LATER)
    assert _our_days(first) == [
        ("repurchase@1", "1998-06-01", 2),
        ("repurchase@1", "1998-06-02", 2),
        ("repurchase@2", "1998-06-01", 2),
        ("repurchase@2", "1998-06-02", 2),
    ]
    day_one = {r.id for r in _current(retail) if r.meta["compacted"]["day"] == "1998-06-01"}
    assert len(day_one) == 2
    assert _ours(compact_log(retail, "repurchase", now=LATER)) == []
    _serve_log(retail, 1, day=1)  # late rows of the second day
    late = compact_log(retail, "repurchase", now=LATER)
    assert _our_days(late) == [
        ("repurchase@1", "1998-06-02", 2),
        ("repurchase@2", "1998-06-02", 2),
    ]
    assert day_one <= {r.id for r in _current(retail)}  # the first day untouched
    _, files = log_partitions(retail, "repurchase")
    assert len(_request_ids(files)) == 2 * (2 + 2 + 1)


def test_recent_partitions_are_left_alone(retail: Project) -> None:
    _serve_log(retail, 2)
    assert compact_log(retail, "repurchase").merged == []  # published just now: not a day old
    assert _ours(compact_log(retail, "repurchase", older_than=timedelta(0))) == [
        ("repurchase@1", 2),
        ("repurchase@2", 2),
    ]


def test_bad_requests_are_refused(retail: Project) -> None:
    with pytest.raises(RegistryError, match=r"(?i)did you mean 'repurchase'"):
        compact_log(retail, "repurchse")
    with pytest.raises(UserError, match="negative"):
        compact_log(retail, "repurchase", older_than=timedelta(hours=-1))


def test_the_cli(retail: Project) -> None:
    _serve_log(retail, 2)
    runner = CliRunner()
    root = str(retail.root)
    nothing = runner.invoke(app, ["log", "compact", "repurchase", "-p", root])
    assert nothing.exit_code == 0 and "Nothing to compact" in nothing.output
    done = runner.invoke(app, ["log", "compact", "repurchase", "--older-than", "0s", "-p", root])
    assert done.exit_code == 0, done.output
    assert "Merged" in done.output and f"repurchase@2 {ENV}" in done.output
    assert ": 2 partitions, 2 rows" in done.output
    bad = runner.invoke(app, ["log", "compact", "repurchase", "--older-than", "soon", "-p", root])
    assert bad.exit_code == 2 and "--older-than" in bad.output and "7d" in bad.output
