"""The prediction log's sink on a real ledger and artifact store: flushes go to
segments on disk, segments become ledger partitions when due, and what a killed
server left is published once by the next reader; and the log's own flushing (by rows,
by time, on close) against a sink kept in memory."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from boite.core.artifacts import ArtifactStore
from boite.core.ledger import Ledger
from boite.serving.logsink import (
    LedgerSink,
    read_segment,
    recover_segments,
    request_publish,
    unpublished_rows,
)
from boite.serving.model import Output, ServedModel
from boite.serving.predlog import PREDICTION_LOG, Entry, PredictionLog, to_table

MODEL = ServedModel(
    name="m",
    version=1,
    task="regression",
    inputs=("f", "g"),
    kinds={"f": "number", "g": "category"},
    predict=lambda rows: [0.0] * len(rows),
    outputs=(Output("prediction", "FP64"),),
    entity_keys=("k",),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Ledger, ArtifactStore, Path]:
    ledger = Ledger("sqlite:///ledger.db", root=tmp_path)
    store = ArtifactStore(".boite/artifacts", root=tmp_path, scratch=tmp_path / ".boite" / "tmp")
    return ledger, store, tmp_path / ".boite" / "log"


def _entry(i: int, key: str | None = None) -> Entry:
    """Row ``i`` as the server logs it: request r<i>, entity k = ``key`` (e<i> unless given)."""
    return Entry(
        f"r{i}", i, "champion", True, [{"k": key or f"e{i}"}], [[float(i), "x"]], [0.5], 0.1
    )


def _table(first: int, count: int) -> pa.Table:
    return to_table(MODEL, [_entry(i) for i in range(first, first + count)])


def _logged(ledger: Ledger, store: ArtifactStore) -> list[str]:
    records = ledger.versions(PREDICTION_LOG, "m")
    if not records:
        return []
    files = [str(store.local_path(r.uri, r.content_hash)) for r in records]
    return [
        r[0]
        for r in duckdb.sql(
            f"SELECT request_id FROM read_parquet({files!r}) ORDER BY time"
        ).fetchall()
    ]


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.arrows"))


def test_flushes_are_on_disk_at_once_and_in_the_ledger_when_published(parts: Any) -> None:
    ledger, store, directory = parts
    clock = Clock()
    sink = LedgerSink(ledger, store, env="production", directory=directory, clock=clock)
    for i in range(3):
        sink.write(MODEL, _table(2 * i, 2))
    assert ledger.versions(PREDICTION_LOG, "m") == []  # not published yet
    (segment,) = _segments(directory)
    assert read_segment(segment).column("request_id").to_pylist() == [f"r{i}" for i in range(6)]
    assert sink.publish() == 0  # not due
    clock.now += 60.0
    assert sink.publish() == 1
    (record,) = ledger.versions(PREDICTION_LOG, "m")
    assert record.rows == 6 and record.meta["model_version"] == "m@1"
    assert record.meta["segment"] == f"{segment.parent.name}/{segment.name}"
    assert "recovered" not in record.meta
    assert _logged(ledger, store) == [f"r{i}" for i in range(6)]
    assert _segments(directory) == []
    (run,) = ledger.runs(step="log:m")
    assert run.params["env"] == "production" and run.status == "succeeded"
    sink.write(MODEL, _table(6, 1))
    sink.close()  # publishes the rest and gives its folder back
    assert _logged(ledger, store) == [f"r{i}" for i in range(7)]
    assert list(directory.iterdir()) == []


def test_a_segment_is_published_when_it_holds_publish_rows(parts: Any) -> None:
    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory, publish_rows=5)
    sink.write(MODEL, _table(0, 3))
    assert ledger.versions(PREDICTION_LOG, "m") == []
    sink.write(MODEL, _table(3, 3))
    assert [r.rows for r in ledger.versions(PREDICTION_LOG, "m")] == [6]
    sink.close()


def test_a_new_type_in_a_column_starts_a_new_segment(parts: Any) -> None:
    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory)
    sink.write(MODEL, _table(0, 1))
    base = _table(1, 1)
    nulls = base.set_column(base.schema.get_field_index("g"), "g", pa.array([None], pa.null()))
    sink.write(MODEL, nulls)  # a flush where 'g' was always missing: cast to the segment's type
    assert len(_segments(directory)) == 1
    text = _table(2, 1)
    text = text.set_column(text.schema.get_field_index("f"), "f", pa.array(["n/a"]))
    sink.write(MODEL, text)  # 'f' as text where it was a number: a segment of its own
    assert len(_segments(directory)) == 2
    sink.close()
    assert [r.rows for r in ledger.versions(PREDICTION_LOG, "m")] == [2, 1]
    assert _logged(ledger, store) == ["r0", "r1", "r2"]


def test_a_failing_publish_keeps_the_segment_and_tries_again(parts: Any, tmp_path: Path) -> None:
    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory)
    log = PredictionLog(sink)
    log.record(MODEL, _entry(0))
    scratch = tmp_path / ".boite" / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.write_text("not a folder")  # the store cannot write its scratch file: a real OSError
    log.flush(publish=True)
    assert log.failures == 0  # the rows are on disk; publishing is what failed
    assert ledger.versions(PREDICTION_LOG, "m") == [] and len(_segments(directory)) == 1
    scratch.unlink()
    log.close()
    assert _logged(ledger, store) == ["r0"] and _segments(directory) == []


KILLED = """
import os, signal, sys
from pathlib import Path
from boite.core.artifacts import ArtifactStore
from boite.core.ledger import Ledger
from boite.serving.logsink import LedgerSink
sys.path.insert(0, {tests!r})
from test_logsink import MODEL, _table

root = Path({root!r})
ledger = Ledger("sqlite:///ledger.db", root=root)
store = ArtifactStore(".boite/artifacts", root=root, scratch=root / ".boite" / "tmp")
sink = LedgerSink(ledger, store, env="production", directory=root / ".boite" / "log")
sink.write(MODEL, _table(0, 2))
sink.write(MODEL, _table(2, 3))
print("written", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_session(root: Path) -> None:
    script = KILLED.format(tests=str(Path(__file__).parent), root=str(root))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL and "written" in done.stdout, done.stderr


def test_a_killed_session_is_published_once_by_the_next_reader(parts: Any, tmp_path: Path) -> None:
    ledger, store, directory = parts
    _killed_session(tmp_path)
    (segment,) = _segments(directory)
    kept = segment.read_bytes(), segment.with_suffix(".json").read_bytes()
    assert recover_segments(ledger, store, directory) == 1
    (record,) = ledger.versions(PREDICTION_LOG, "m")
    assert record.meta["recovered"] is True and record.meta["env"] == "production"
    assert _logged(ledger, store) == [f"r{i}" for i in range(5)]
    assert list(directory.iterdir()) == []
    # a crash between registering and deleting leaves the segment behind: not published twice
    segment.parent.mkdir()
    segment.write_bytes(kept[0])
    segment.with_suffix(".json").write_bytes(kept[1])
    assert recover_segments(ledger, store, directory) == 0
    assert len(ledger.versions(PREDICTION_LOG, "m")) == 1 and _segments(directory) == []


def test_a_batch_cut_short_by_the_crash_is_left_out(parts: Any, tmp_path: Path) -> None:
    ledger, store, directory = parts
    _killed_session(tmp_path)
    (segment,) = _segments(directory)
    data = segment.read_bytes()
    segment.write_bytes(data[:-40])  # the second flush torn
    assert recover_segments(ledger, store, directory) == 1
    assert _logged(ledger, store) == ["r0", "r1"]


def test_the_segments_of_a_live_server_are_left_alone(parts: Any) -> None:
    ledger, store, directory = parts
    alive = LedgerSink(ledger, store, env="e", directory=directory)
    alive.write(MODEL, _table(0, 2))
    other = LedgerSink(ledger, store, env="e", directory=directory)
    assert other.recovered == 0 and recover_segments(ledger, store, directory) == 0
    assert len(_segments(directory)) == 1 and ledger.versions(PREDICTION_LOG, "m") == []
    assert unpublished_rows(directory, "m") == 2 and unpublished_rows(directory, "n") == 0
    alive.close()
    other.close()
    assert _logged(ledger, store) == ["r0", "r1"]


def test_a_write_that_fails_keeps_nothing_so_the_retry_logs_each_row_once(
    parts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch reached the file but its fsync failed (EIO): it is cut from the segment,
    the log keeps the rows, and the next flush writes them once."""
    import boite.serving.logsink as logsink

    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory)
    log = PredictionLog(sink)
    log.record(MODEL, _entry(0))
    log.flush()
    real_fsync, calls = logsink.os.fsync, []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(logsink.os, "fsync", failing_once)
    log.record(MODEL, _entry(1))
    log.flush()
    assert log.failures == 1 and log.pending_rows == 1
    log.flush()
    assert log.pending_rows == 0
    log.close()
    assert _logged(ledger, store) == ["r0", "r1"]


def test_a_closed_sink_refuses_writes(parts: Any) -> None:
    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory)
    sink.write(MODEL, _table(0, 1))
    sink.close()
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(MODEL, _table(1, 1))
    assert _logged(ledger, store) == ["r0"] and list(directory.iterdir()) == []


def test_a_segment_takes_a_new_type_only_where_no_value_changes(parts: Any) -> None:
    ledger, store, directory = parts
    sink = LedgerSink(ledger, store, env="e", directory=directory)
    floats = _table(0, 1)
    sink.write(MODEL, floats)
    ints = _table(1, 1)
    ints = ints.set_column(ints.schema.get_field_index("f"), "f", pa.array([2], pa.int64()))
    sink.write(MODEL, ints)  # integers into a float column: the same values
    assert len(_segments(directory)) == 1
    text = _table(2, 1)
    text = text.set_column(text.schema.get_field_index("f"), "f", pa.array(["007"]))
    sink.write(MODEL, text)  # Arrow would parse '007' to 7.0: a segment of its own instead
    assert len(_segments(directory)) == 2
    sink.close()
    records = ledger.versions(PREDICTION_LOG, "m")
    files = [str(store.local_path(r.uri, r.content_hash)) for r in records]
    values = [pq_column(f, "f") for f in files]
    assert values == [[0.0, 2.0], ["007"]]


def pq_column(path: str, name: str) -> list[Any]:
    import pyarrow.parquet as pq

    return pq.read_table(path).column(name).to_pylist()


def test_rows_that_cannot_be_tabled_are_dropped_and_counted_the_rest_logged(
    parts: Any,
) -> None:
    ledger, store, directory = parts
    log = PredictionLog(LedgerSink(ledger, store, env="e", directory=directory))
    other = dataclasses.replace(MODEL, version=2)
    # two rows, one output: no table can be made of it (a fault of the caller's)
    log.record(other, Entry("bad", 0, "champion", True, None, [[1.0, "x"], [2.0, "y"]], [0.5], 0.1))
    log.record(MODEL, _entry(0))
    # an integer beyond 64 bits (JSON allows it) is kept as text
    huge = Entry("r1", 1, "champion", True, [{"k": "e"}], [[2**64, "x"]], [0.5], 0.1)
    log.record(MODEL, huge)
    log.flush()
    assert log.dropped_rows == 2 and log.pending_rows == 0
    log.close()
    assert _logged(ledger, store) == ["r0", "r1"]


def test_a_reader_asks_running_servers_to_publish_and_waits_for_them(parts: Any) -> None:
    import threading

    ledger, store, directory = parts
    server = LedgerSink(ledger, store, env="e", directory=directory)  # another worker, say
    server.write(MODEL, _table(0, 2))
    # nobody flushes: the reader gives up after its wait, the rows stay held
    assert request_publish(directory, wait_s=0.3) is False
    assert unpublished_rows(directory, "m") == 2
    # the server's next flush sees the request, publishes and acknowledges it
    tick = threading.Timer(0.2, server.publish)
    tick.start()
    try:
        assert request_publish(directory, wait_s=10) is True
    finally:
        tick.join()
    assert unpublished_rows(directory, "m") == 0 and _logged(ledger, store) == ["r0", "r1"]
    assert server.publish() == 0  # a request answered once is not answered again
    server.write(MODEL, _table(2, 1))
    server.close()
    assert _logged(ledger, store) == ["r0", "r1", "r2"]


class ListSink:
    """A sink that keeps tables in memory, failing on demand (the log's own logic is
    under test here; the ledger sink everywhere else)."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.fail = False
        self.closed = False

    def write(self, model: Any, table: pa.Table) -> None:
        if self.fail:
            raise OSError("disk full")
        self.tables.append(table)

    def publish(self, *, force: bool = False) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def test_the_log_flushes_by_rows_by_time_and_on_close() -> None:
    sink = ListSink()
    log = PredictionLog(sink, flush_rows=3, flush_seconds=0.2)
    log.start()
    for i in range(3):
        log.record(MODEL, _entry(i, "a"))
    deadline = time.monotonic() + 10
    while not sink.tables and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.tables and sink.tables[0].num_rows == 3
    log.record(MODEL, _entry(3, "a"))
    deadline = time.monotonic() + 10
    while sum(t.num_rows for t in sink.tables) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(t.num_rows for t in sink.tables) == 4  # by time, under flush_rows
    sink.fail = True
    log.record(MODEL, _entry(4, "a"))
    log.flush()
    assert log.failures == 1 and log.pending_rows == 1  # kept for the next try
    sink.fail = False
    log.close()
    assert sink.closed
    table = pa.concat_tables(sink.tables)
    assert table.column("request_id").to_pylist() == [f"r{i}" for i in range(5)]
    assert table.column_names[:7] == [
        "request_id",
        "time",
        "model",
        "version",
        "role",
        "served",
        "row",
    ]
    assert table.column("k").to_pylist() == ["a"] * 5 and table.column("g").to_pylist() == ["x"] * 5
