"""Where the prediction log goes: segments on local disk, then partitions in the ledger.

Two bounds, because they answer two different needs:

- every flush (``log.flush_seconds``) appends the rows to an open *segment* of
  the model version, an Arrow IPC stream under ``.boite/log/<session>/``,
  written and fsynced: that is what a crash can lose, at most one flush;
- every ``log.publish_seconds`` (or ``log.publish_rows``) a segment becomes one
  zstd Parquet *partition* in the artifact store, registered in the ledger as a
  ``prediction_log`` artifact produced by a ``log`` run that consumed the model
  version: that is what readers (feedback, live comparison, monitoring) see.

A partition per flush would put 86,400 artifacts a day per model version in the
ledger and as many small files in the store; a partition per minute puts 1,440.
A server publishes everything when it stops; segments left by a server that
died are published by the next sink that opens on the project (a lock file held
for the life of each session tells the dead from the living), each once: a
partition records the segment it came from, so a crash between registering and
deleting does not publish it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from boite.core.artifacts import ArtifactStore, fsync_path
from boite.core.datasets import new_dataset
from boite.core.ledger import SUCCEEDED, Ledger, Resources
from boite.serving.model import ServedModel
from boite.serving.predlog import PREDICTION_LOG

logger = logging.getLogger("boite.serving.log")

LOG_DIR = "log"  # the segments' folder, under the project's .boite
LOCK = "session.lock"
REQUEST = "publish.request"  # a reader's token: every live session publishes, then acks it
ACK = "publish.ack"
SEGMENT = ".arrows"


@dataclass(frozen=True)
class Owner:
    """The model version a segment belongs to (what its partition's lineage names), and
    the server session that wrote it."""

    name: str
    version: int
    artifact_id: str | None
    env: str
    session: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Segment:
    owner: Owner
    path: Path
    file: pa.OSFile  # unbuffered: what write_table returned from is in the OS
    writer: pa.ipc.RecordBatchStreamWriter
    schema: pa.Schema
    opened: float
    rows: int = 0


class LedgerSink:
    """Appends each flush to a segment; publishes segments as ledger partitions."""

    def __init__(
        self,
        ledger: Ledger,
        store: ArtifactStore,
        *,
        env: str,
        directory: Path,
        session: str | None = None,
        publish_seconds: float = 60.0,
        publish_rows: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.env = env
        self.session = session or str(os.getpid())
        self.publish_seconds = publish_seconds
        self.publish_rows = publish_rows
        self.clock = clock
        self._lock = threading.Lock()  # one writer per process: partitions stay in order
        self._open: dict[tuple[str, int], Segment] = {}
        self._unpublished: list[tuple[Owner, Path]] = []  # closed, waiting for a retry
        self._count = 0
        self._closed = False
        self._failed_in_a_row = 0  # publishing: a failing ledger is retried less and less
        self._retry_at = 0.0
        self._request_seen = _read(directory / REQUEST)  # one from before this session: done
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{env}-{self.session}-{os.urandom(4).hex()}"
        # Made under a hidden name and renamed once locked, so that another process's
        # recovery never sees it unlocked and takes it for a dead session's. The lock is
        # held while this process lives: its segments are never taken for orphans.
        making = directory / f".{name}"
        making.mkdir()
        self._lock_file = (making / LOCK).open("w")
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self.dir = directory / name
        making.rename(self.dir)
        fsync_path(directory)  # the rename survives a power loss: recovery will find it
        self.recovered = recover_segments(ledger, store, directory)

    # --- writing ------------------------------------------------------------------------

    def write(self, model: ServedModel, table: pa.Table) -> None:
        """Append ``table`` to the model version's segment, on disk when this returns; if
        it raises, none of ``table`` is kept (the caller keeps the rows)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the prediction log sink of {self.dir} is closed")
            key = (model.name, model.version)
            segment = self._open.get(key)
            if segment is not None and table.schema != segment.schema:
                widened = _widened(table, segment.schema)
                if widened is None:
                    # a type the segment cannot take without changing a value (a feature
                    # now sent as text, a float where integers came): a segment of its own
                    self._close(segment)
                    segment = None
                else:
                    table = widened
            if segment is None:
                owner = Owner(model.name, model.version, model.artifact_id, self.env, self.session)
                segment = self._new_segment(owner, table.schema)
                self._open[key] = segment
            start = segment.file.tell()
            try:
                segment.writer.write_table(table)
                os.fsync(segment.file.fileno())
            except BaseException:
                # cut what reached the file, so that the rows the caller keeps for the next
                # try are not logged twice; the next write starts a new segment
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.file.fileno(), start)
                self._close(segment, torn=True)
                raise
            segment.rows += table.num_rows
            if segment.rows >= self.publish_rows:
                self._close(segment)
                self._publish_closed(retry=True)

    def publish(self, *, force: bool = False) -> int:
        """Publish the segments older than ``publish_seconds`` (all with ``force``, or when
        a reader asked since the last call: :func:`request_publish`), and any that failed
        to publish before (after a back-off while publishing fails); returns the
        partitions published."""
        with self._lock:
            if self._closed:
                return 0
            request = _read(self.directory / REQUEST)
            asked = request is not None and request != self._request_seen
            now = self.clock()
            for segment in list(self._open.values()):
                if force or asked or now - segment.opened >= self.publish_seconds:
                    self._close(segment)
            done = self._publish_closed(retry=force or asked)
            if asked:
                self._request_seen = request
                _write_atomically(self.dir / ACK, request or "")
            return done

    def close(self) -> None:
        """Publish everything, then give the session's directory back; later writes are
        refused."""
        with self._lock:
            self._closed = True
            for segment in list(self._open.values()):
                self._close(segment)
            self._publish_closed(retry=True)
            self._lock_file.close()
            if self._unpublished:
                # kept on disk, unlocked: the next server or reader publishes them
                logger.error(
                    "%d prediction log segment(s) in %s could not be published; the next "
                    "server or reader of the log on this project will",
                    len(self._unpublished),
                    self.dir,
                )
                return
            shutil.rmtree(self.dir, ignore_errors=True)

    def _new_segment(self, owner: Owner, schema: pa.Schema) -> Segment:
        self._count += 1
        path = self.dir / f"{owner.name}@{owner.version}-{self._count:06d}{SEGMENT}"
        # the owner first: a segment is never on disk without the lineage it needs
        with path.with_suffix(".json").open("w") as sidecar:
            sidecar.write(json.dumps(dataclasses.asdict(owner)))
            sidecar.flush()
            os.fsync(sidecar.fileno())
        file = pa.OSFile(str(path), mode="w")
        return Segment(owner, path, file, pa.ipc.new_stream(file, schema), schema, self.clock())

    def _close(self, segment: Segment, *, torn: bool = False) -> None:
        self._open.pop((segment.owner.name, segment.owner.version), None)
        if not torn:  # after a failed write, no end marker: the stream reads to its last batch
            with contextlib.suppress(OSError, pa.ArrowException):
                segment.writer.close()
        with contextlib.suppress(OSError, pa.ArrowException):
            segment.file.close()
        self._unpublished.append((segment.owner, segment.path))

    def _publish_closed(self, *, retry: bool) -> int:
        if not self._unpublished or (not retry and self.clock() < self._retry_at):
            return 0
        done = 0
        waiting, self._unpublished = self._unpublished, []
        for owner, path in waiting:
            try:
                _register(self.ledger, self.store, owner, path, read_segment(path))
            except Exception:
                # the rows stay on disk: tried again later, or by the next server
                logger.exception("could not publish the prediction log segment %s", path)
                self._unpublished.append((owner, path))
                continue
            _remove(path)
            done += 1
        if self._unpublished:
            self._failed_in_a_row += 1
            self._retry_at = self.clock() + min(60.0, 2.0**self._failed_in_a_row)
        else:
            self._failed_in_a_row = 0
        return done


def _widened(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` in ``schema``'s types where that changes no value: a column that was all
    null in this flush, or integers where the segment holds floats; None otherwise."""
    if table.schema.names != schema.names:
        return None
    for have, want in zip(table.schema, schema, strict=True):
        if have.type == want.type or pa.types.is_null(have.type):
            continue
        if pa.types.is_integer(have.type) and pa.types.is_floating(want.type):
            continue
        return None
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _register(
    ledger: Ledger,
    store: ArtifactStore,
    owner: Owner,
    path: Path,
    table: pa.Table,
    *,
    recovered: bool = False,
) -> None:
    """One partition in the store and the ledger, with lineage to the model version."""
    if table.num_rows == 0:
        return
    scratch = store.new_scratch_file(".parquet")
    pq.write_table(table, scratch, compression="zstd")
    stored = store.put_file(scratch, suffix=".parquet")
    local = store.local_path(stored.uri, stored.sha256)
    schema = {f.name: _duck_type(f.type) for f in table.schema}
    meta: dict[str, Any] = {
        "model_version": owner.ref,
        "env": owner.env,
        "roles": sorted(set(table.column("role").to_pylist())),
        "segment": f"{path.parent.name}/{path.name}",
    }
    if recovered:
        meta["recovered"] = True
    new = new_dataset(owner.name, stored, local, schema, meta=meta)
    new.kind = PREDICTION_LOG
    run_id = ledger.start_run(
        f"log:{owner.name}",
        "log",
        params={"env": owner.env, "model_version": owner.ref, "session": owner.session},
    )
    ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        resources=Resources(rows_out=table.num_rows, bytes_out=stored.size),
        consumed=[owner.artifact_id] if owner.artifact_id else [],
        produced=[new],
    )


def recover_segments(ledger: Ledger, store: ArtifactStore, directory: Path) -> int:
    """Publish the segments of sessions that ended without publishing them (a crash, a
    kill); returns the segments published. Sessions whose process lives are left alone,
    and a segment already published (a crash after registering it) is not published again.
    """
    if not directory.is_dir():
        return 0
    done = 0
    for session in sorted(p for p in directory.iterdir() if p.is_dir()):
        if session.name.startswith(".") and not any(session.glob(f"*{SEGMENT}")):
            continue  # a session being made (or one killed before it wrote anything)
        with _orphan(session) as orphan:
            if not orphan:
                continue  # its server is alive
            for path in sorted(session.glob(f"*{SEGMENT}")):
                try:
                    owner = _owner(path)
                    segment = f"{session.name}/{path.name}"
                    # published already when the crash came between registering and deleting
                    if not ledger.versions_where(PREDICTION_LOG, owner.name, "segment", segment):
                        _register(ledger, store, owner, path, read_segment(path), recovered=True)
                        done += 1
                except Exception:
                    logger.exception("could not recover the prediction log segment %s", path)
                    continue
                _remove(path)
            if not any(session.glob(f"*{SEGMENT}")):
                shutil.rmtree(session, ignore_errors=True)
    if done:
        logger.warning("published %d prediction log segment(s) left by a stopped server", done)
    return done


def request_publish(directory: Path, *, wait_s: float) -> bool:
    """Ask every running server of the project to publish its log now, and wait (at most
    ``wait_s``) until each has: a reader that needs the latest rows (feedback, the live
    comparison) calls this. True when all answered in time (or none runs).

    Servers look for the request at each flush (``log.flush_seconds``), write what they
    buffer, publish, and acknowledge it in their session folder; rows logged after the
    request may wait for the next publish. Dead servers are not waited for (recovery
    publishes what they left).
    """
    token = ask_to_publish(directory)
    return token is None or wait_for_publish(directory, token, wait_s=wait_s)


def ask_to_publish(directory: Path) -> str | None:
    """Post a publish request; its token, or None when no server is running."""
    if not _live_sessions(directory):
        return None
    token = f"{time.time_ns()}-{os.urandom(4).hex()}"
    _write_atomically(directory / REQUEST, token)
    return token


def wait_for_publish(directory: Path, token: str, *, wait_s: float) -> bool:
    """Wait (at most ``wait_s``) until every running server acknowledged ``token``."""
    deadline = time.monotonic() + wait_s
    while True:
        waiting = [s for s in _live_sessions(directory) if _read(s / ACK) != token]
        if not waiting:
            return True
        if time.monotonic() >= deadline:
            logger.warning(
                "%d running server(s) did not publish their prediction log within %.1f s",
                len(waiting),
                wait_s,
            )
            return False
        time.sleep(0.05)


def _live_sessions(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        s for s in directory.iterdir() if s.is_dir() and not s.name.startswith(".") and _alive(s)
    ]


def unpublished_rows(directory: Path, model: str) -> int:
    """The rows of ``model`` that running servers hold in segments, not yet published."""
    rows = 0
    for path in directory.glob(f"*/{model}@*{SEGMENT}") if directory.is_dir() else ():
        with contextlib.suppress(OSError, ValueError, KeyError):
            if _owner(path).name == model:  # not a model whose name starts the same way
                rows += read_segment(path).num_rows
    return rows


def read_segment(path: Path) -> pa.Table:
    """The complete batches of a segment; a batch cut short by a crash is left out."""
    batches: list[pa.RecordBatch] = []
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError):
        return pa.table({})  # the crash came before the first batch
    schema = reader.schema
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break
    return pa.Table.from_batches(batches, schema=schema)


def _owner(path: Path) -> Owner:
    data = json.loads(path.with_suffix(".json").read_text())
    return Owner(
        str(data["name"]),
        int(data["version"]),
        data.get("artifact_id"),
        str(data.get("env", "")),
        str(data.get("session", "")),
    )


@contextlib.contextmanager
def _orphan(session: Path):  # type: ignore[no-untyped-def]
    """Yields True, holding the session's lock, when no live process holds it."""
    try:
        handle = (session / LOCK).open("a")
    except OSError:
        yield False
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        yield False
        return
    try:
        yield True
    finally:
        handle.close()


def _alive(session: Path) -> bool:
    with _orphan(session) as orphan:
        return not orphan


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    scratch.write_text(text)
    scratch.replace(path)


def _remove(path: Path) -> None:
    # published: a segment that cannot be deleted is found published by the next recovery
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)


def _duck_type(arrow_type: Any) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_integer(arrow_type):
        return "BIGINT" if arrow_type.bit_width > 32 else "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_null(arrow_type):
        return "NULL"
    return "VARCHAR"
