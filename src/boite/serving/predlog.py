"""The prediction log: every row scored, written off the hot path.

A request only appends a tuple to an in-memory buffer (one ``list.append``
under the GIL). A background thread turns the buffer into one Arrow table per
model version every ``flush_seconds`` or ``flush_rows`` rows, whichever comes
first, and hands it to a :class:`LogSink`, which has it on disk when ``write``
returns; the sink publishes what it holds (``publish``) on its own schedule.
The default sink (:mod:`boite.serving.logsink`) appends to local segments and
publishes them as ``prediction_log`` partitions in the ledger.

Durability: a clean shutdown flushes and publishes everything. A crash
(SIGKILL, power loss) loses at most the rows of the last ``flush_seconds`` or
``flush_rows``; what was flushed is published by the next server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyarrow as pa

from boite.serving.model import ServedModel

PREDICTION_LOG = "prediction_log"
logger = logging.getLogger("boite.serving.log")

# The rows kept when the sink keeps failing: beyond this, the oldest are dropped
# (and counted) rather than exhausting the server's memory.
MAX_PENDING_ROWS = 1_000_000


@dataclass(frozen=True)
class Entry:
    request_id: str
    at_us: int
    role: str  # champion | challenger | shadow
    served: bool  # did this answer reach the client
    entities: Sequence[dict[str, Any]] | None
    rows: Sequence[Sequence[Any]]
    outputs: Sequence[Any]
    latency_ms: float
    missing: Sequence[str | None] | None = None  # per row: views with no online value


class LogSink(Protocol):
    def write(self, model: ServedModel, table: pa.Table) -> None:
        """Keep ``table`` durably (or raise: the log keeps the rows for the next try)."""

    def publish(self, *, force: bool = False) -> int:
        """Make what is kept visible to readers when due (now, with ``force``)."""

    def close(self) -> None: ...


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # a feature given with mixed kinds across requests, or an integer beyond 64
        # bits (JSON allows it): kept, as text
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def to_table(model: ServedModel, entries: Sequence[Entry]) -> pa.Table:
    """One row per scored row, with the features as they were used.

    Built column-wise with comprehensions and one transposition: this runs on the
    log's thread, but it holds the interpreter while it does, so its cost per row
    is taken from the requests.
    """
    counts = [len(e.rows) for e in entries]
    n = sum(counts)

    def per_row(values: list[Any]) -> list[Any]:
        if n == len(entries):  # one row per request: the common case
            return values
        return [v for v, c in zip(values, counts, strict=True) for _ in range(c)]

    outputs = [o for e in entries for o in e.outputs]
    numeric = [not isinstance(o, bool) and isinstance(o, int | float) for o in outputs]
    all_rows = [r for e in entries for r in e.rows]
    features = list(zip(*all_rows, strict=True)) if all_rows else [() for _ in model.inputs]
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(per_row([e.request_id for e in entries]), pa.string()),
        "time": pa.array(per_row([e.at_us for e in entries]), pa.timestamp("us", tz="UTC")),
        "model": pa.array([model.name] * n, pa.string()),
        "version": pa.array([model.version] * n, pa.int64()),
        "role": pa.array(per_row([e.role for e in entries]), pa.string()),
        "served": pa.array(per_row([e.served for e in entries]), pa.bool_()),
        "row": pa.array([i for c in counts for i in range(c)], pa.int32()),
    }
    for key in (k for k in model.entity_keys if k not in model.inputs):
        values = [
            entity.get(key) if entity is not None else None
            for e, c in zip(entries, counts, strict=True)
            for entity in (e.entities if e.entities else [None] * c)
        ]
        columns[key] = pa.array([None if v is None else str(v) for v in values], pa.string())
    for name, values in zip(model.inputs, features, strict=True):
        if name in columns:
            continue
        if model.kinds.get(name) in ("category", "text"):
            # one type across partitions, whatever JSON type a client sent (42 or "42")
            columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            columns[name] = _column(list(values))
    columns["prediction"] = pa.array(
        [float(o) if ok else None for o, ok in zip(outputs, numeric, strict=True)], pa.float64()
    )
    columns["output"] = pa.array(
        [None if ok else orjson.dumps(o).decode() for o, ok in zip(outputs, numeric, strict=True)],
        pa.string(),
    )
    columns["missing_views"] = pa.array(
        [
            m
            for e, c in zip(entries, counts, strict=True)
            for m in (e.missing if e.missing else [None] * c)
        ],
        pa.string(),
    )
    columns["latency_ms"] = pa.array(per_row([e.latency_ms for e in entries]), pa.float64())
    return pa.table(columns)


class PredictionLog:
    """Buffers entries per model version and flushes them from a background thread."""

    def __init__(self, sink: LogSink, *, flush_rows: int = 5000, flush_seconds: float = 1.0):
        self.sink = sink
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffers: dict[tuple[str, int], tuple[ServedModel, list[Entry]]] = {}
        self._rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.dropped_rows = 0
        self.failures = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="boite-log", daemon=True)
            self._thread.start()

    def record(self, model: ServedModel, entry: Entry) -> None:
        key = (model.name, model.version)
        with self._lock:
            slot = self._buffers.get(key)
            if slot is None:
                self._buffers[key] = (model, [entry])
            else:
                slot[1].append(entry)
            self._rows += len(entry.rows)
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        return self._rows

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # whatever went wrong, the thread lives on: the next rows are logged
                self.failures += 1
                logger.exception("the prediction log's flush failed")

    def flush(self, *, publish: bool = False) -> int:
        """Write what is buffered now, and publish what the sink holds if it is due (or at
        once with ``publish``, for a reader that needs the latest rows); returns the rows
        written."""
        written = self._write()
        try:
            self.sink.publish(force=publish)
        except Exception:
            # the rows are on disk: the next publish (or the next server) tries again
            self.failures += 1
            logger.exception("could not publish the prediction log")
        return written

    def _write(self) -> int:
        with self._flush_lock:
            with self._lock:
                buffers, self._buffers, self._rows = self._buffers, {}, 0
            written = 0
            for key, (model, entries) in buffers.items():
                try:
                    table = to_table(model, entries)
                except Exception:
                    # values no column type can hold: writing them again would fail again
                    rows = sum(len(e.rows) for e in entries)
                    self.failures += 1
                    self.dropped_rows += rows
                    logger.exception("dropped %d logged rows of %s: not tabular", rows, key)
                    continue
                try:
                    self.sink.write(model, table)
                except Exception:
                    self.failures += 1
                    logger.exception("could not write %d logged rows of %s", table.num_rows, key)
                    self._requeue(model, entries)
                    continue
                written += table.num_rows
            self.written_rows += written
            return written

    def _requeue(self, model: ServedModel, entries: list[Entry]) -> None:
        key = (model.name, model.version)
        rows = sum(len(e.rows) for e in entries)
        with self._lock:
            if self._rows + rows > MAX_PENDING_ROWS:
                self.dropped_rows += rows
                logger.error("dropped %d logged rows of %s: the log sink keeps failing", rows, key)
                return
            slot = self._buffers.get(key)
            self._buffers[key] = (model, entries + (slot[1] if slot else []))
            self._rows += rows

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and write everything still buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        # a failing sink gets a few more tries, bounded in time
        while self._rows and time.monotonic() < deadline:
            failures = self.failures
            self._write()
            if self.failures != failures:
                time.sleep(0.2)
        try:
            self.sink.close()  # publishes what it holds
        except Exception:
            self.failures += 1
            logger.exception("could not publish the prediction log at shutdown")
