"""The ledger: every run and every artifact, with the edges between them.

SQLAlchemy Core over SQLite (WAL, busy timeout) by default; the same code runs on
PostgreSQL (no SQLite-only SQL here). A run's outputs are committed in one
transaction, after their files are durable, so a killed process never leaves a
half-registered artifact.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import math
import operator
import os
import random
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boite.core import ledger_schema as t
from boite.errors import LedgerError, NotFoundError

RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"
CONSUMED, PRODUCED = "consumed", "produced"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything in the ledger is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class ArtifactRecord:
    id: str
    kind: str
    name: str
    version: int
    content_hash: str
    uri: str
    format: str
    schema: dict[str, str] | None
    stats: dict[str, Any] | None
    rows: int | None
    bytes: int | None
    time_context: dict[str, Any] | None
    meta: dict[str, Any] | None
    created_at: datetime
    run_id: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class RunRecord:
    id: str
    step: str
    kind: str
    status: str
    params: dict[str, Any]
    code_fingerprint: str | None
    fingerprint: str | None
    started_at: datetime
    ended_at: datetime | None
    wall_s: float | None
    cpu_s: float | None
    peak_rss_bytes: int | None
    bytes_in: int | None
    bytes_out: int | None
    rows_in: int | None
    rows_out: int | None
    error: str | None
    pid: int | None
    host: str | None
    user: str | None


@dataclass
class NewArtifact:
    """An artifact to register when its run finishes."""

    kind: str
    name: str
    content_hash: str
    uri: str
    format: str
    schema: dict[str, str] | None = None
    stats: dict[str, Any] | None = None
    rows: int | None = None
    bytes: int | None = None
    time_context: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    column_lineage: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_bytes: int | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    rows_in: int | None = None
    rows_out: int | None = None


@dataclass
class RunEntry:
    """A finished run to record in a batch (search trials, for instance)."""

    step: str
    kind: str
    status: str
    params: dict[str, Any]
    started_at: datetime
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    parent: str | None = None


# Built once and executed with parameters: constructing a statement with
# .values() costs more than SQLite's work on one row (coercions, a new cache key).
_RUN_INSERT = t.runs.insert()
_RUN_FINISH = t.runs.update().where(t.runs.c.id == sa.bindparam("run_id_"))
_EDGE_INSERT = t.edges.insert()
_METRIC_INSERT = t.metrics.insert()
_METRIC_KEYS = ("run_id", "key", "value", "step", "recorded_at")
_SEARCH_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__"}
_METRICS_OF = (
    sa.select(t.metrics.c.run_id, t.metrics.c.key, t.metrics.c.value)
    .where(t.metrics.c.run_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(t.metrics.c.id)
)
# IN lists are cut to this many ids: far below every backend's limit on parameters.
_IN_CHUNK = 500


def render_insert(
    table: sa.Table, keys: Sequence[str], dialect: sa.engine.Dialect
) -> tuple[str, tuple[str, ...] | None]:
    """An INSERT of ``keys`` into ``table`` as the dialect's SQL, and the order of its
    parameters when the dialect's paramstyle is positional (``None`` when named)."""
    # inline(): no implicit RETURNING of the new id (PostgreSQL would add one), as
    # nothing reads it and a DBAPI executemany cannot return it.
    compiled = table.insert().inline().compile(dialect=dialect, column_keys=list(keys))
    if compiled.positional:
        # Bind names are the column keys (an INSERT without literal values).
        return str(compiled), tuple(compiled.positiontup or keys)
    return str(compiled), None


class _PreparedInsert:
    """An INSERT rendered once for the engine's dialect, run straight on a DBAPI cursor.

    For one metric value, SQLAlchemy's per-execute work (execution context, cache
    lookup, result object, transaction bookkeeping) is about four times SQLite's own
    insert and commit. The SQL is still SQLAlchemy's, compiled for the dialect in
    use, with its paramstyle and each column type's bind conversion, so it runs
    unchanged on PostgreSQL. Each call checks a connection out of the engine's pool
    and commits before returning it: as durable as any other ledger write.
    """

    def __init__(self, engine: Engine, table: sa.Table, keys: Sequence[str]) -> None:
        dialect = engine.dialect
        self.engine = engine
        self.sql, positions = render_insert(table, keys, dialect)
        self.positional = positions is not None
        self.order = positions if positions is not None else tuple(keys)
        self.convert = [
            (i, name, fn)
            for i, name in enumerate(self.order)
            if (fn := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        self.errors = dialect.loaded_dbapi.Error
        self.integrity_errors = dialect.loaded_dbapi.IntegrityError

    def _params(self, row: Mapping[str, Any]) -> Any:
        if self.positional:
            values = [row[name] for name in self.order]
            for i, _name, fn in self.convert:
                values[i] = fn(values[i])
            return tuple(values)
        named = {name: row[name] for name in self.order}
        for _, name, fn in self.convert:
            named[name] = fn(named[name])
        return named

    def run(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` in one transaction; the DBAPI's errors propagate as they are."""
        params = [self._params(r) for r in rows]
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                if len(params) == 1:
                    cursor.execute(self.sql, params[0])
                else:
                    cursor.executemany(self.sql, params)
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()


def _artifact(row: Any) -> ArtifactRecord:
    m = row._mapping
    return ArtifactRecord(
        id=m["id"],
        kind=m["kind"],
        name=m["name"],
        version=m["version"],
        content_hash=m["content_hash"],
        uri=m["uri"],
        format=m["format"],
        schema=m["schema"],
        stats=m["stats"],
        rows=m["rows"],
        bytes=m["bytes"],
        time_context=m["time_context"],
        meta=m["meta"],
        created_at=_aware(m["created_at"]),  # type: ignore[arg-type]
        run_id=m["run_id"],
    )


_RUN_FIELDS = tuple(f.name for f in fields(RunRecord))


def _run(row: Any) -> RunRecord:
    # Built from the row's positions (the runs table's columns are RunRecord's
    # fields, in order; a test guards it) and without the frozen dataclass's
    # __init__, which sets each of the 20 fields through object.__setattr__: for
    # a search or a listing, building records cost as much as the query itself.
    values = list(row[:20])
    values[7] = _aware(values[7])
    values[8] = _aware(values[8])
    record = object.__new__(RunRecord)
    record.__dict__.update(zip(_RUN_FIELDS, values, strict=True))
    return record


def _search_query(op: str, step: bool, kind: bool, limit: bool) -> sa.Select[Any]:
    """The search statement for one shape of filter, its values left as parameters."""
    m = t.metrics
    newer = t.metrics.alias("newer")
    # The latest value is the one with no later row of the same run and key: an
    # index seek per candidate on ix_metrics_run_key, where grouping all of the
    # key's rows (a whole training curve per run) would read every one.
    query = (
        sa.select(t.runs, m.c.value)
        .join(m, m.c.run_id == t.runs.c.id)
        .where(
            m.c.key == sa.bindparam("metric"),
            getattr(m.c.value, _SEARCH_OPS[op])(sa.bindparam("bound", type_=sa.Float)),
            ~sa.exists().where(
                newer.c.run_id == m.c.run_id, newer.c.key == m.c.key, newer.c.id > m.c.id
            ),
        )
        .order_by(m.c.value.desc())
    )
    if step:
        query = query.where(t.runs.c.step == sa.bindparam("step"))
    if kind:
        query = query.where(t.runs.c.kind == sa.bindparam("kind"))
    if limit:
        query = query.limit(sa.bindparam("limit", type_=sa.Integer))
    return query


# Built once per shape and reused: building the statement and its cache key took
# longer than SQLite's whole search over 1,000 runs.
_SEARCHES: dict[tuple[str, bool, bool, bool], sa.Select[Any]] = {}


def _finite(value: Any, key: str, where: str) -> float:
    number: float | None = None
    # A string would convert; a metric given as text is a mistake, not a number.
    if not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            number = float(value)
    if number is None:
        raise ValueError(
            f"The value of metric {key!r} given to Ledger.{where} must be a real number. "
            f"Got {value!r} instead."
        )
    # SQLite stores NaN as NULL (the column refuses it) and a comparison with
    # NaN or infinity makes searches meaningless: refuse them at the call.
    if not math.isfinite(number):
        raise ValueError(
            f"The value of metric {key!r} given to Ledger.{where} must be finite. "
            f"Got {value!r} instead; log a finite value, or leave the point out."
        )
    return number


def _metric_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(
            f"A metric name given to Ledger.{where} must be a non-empty string. "
            f"Got {key!r} instead."
        )
    return key


def _step(step: Any, key: str, where: str) -> int | None:
    if step is None:
        return None
    try:
        # operator.index accepts int and NumPy integers, and refuses 1.5 or "3".
        return operator.index(step)
    except TypeError:
        raise ValueError(
            f"The step of metric {key!r} given to Ledger.{where} must be an integer or None. "
            f"Got {step!r} instead."
        ) from None


_VERSION_RETRIES = 8
_NAME_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def _version_clash(exc: sa.exc.IntegrityError) -> bool:
    """Did the insert collide on an artifact's (kind, name, version)?"""
    text = str(exc.orig)
    return "uq_artifacts_kind_name_version" in text or (
        "artifacts.kind, artifacts.name, artifacts.version" in text
    )


def make_engine(url: str, root: Path) -> Engine:
    """An engine for ``url``; a relative SQLite path is taken from the project root."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not os.path.isabs(database):
            path = root / database
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers go on while a run writes; the busy timeout makes
            # two writers wait for each other instead of failing at once.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; boite's `postgres` extra
        # installs psycopg 3, so a plain postgresql:// URL means that one
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, pool_pre_ping=True)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the ledger schema to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


class Ledger:
    """Read and write the record of runs and artifacts."""

    def __init__(self, url: str, *, root: Path) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, root)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            from boite.errors import ConfigError

            raise ConfigError(
                f"the ledger URL {url!r} cannot be used: {exc}",
                key="stores.ledger",
                hint="Use a SQLAlchemy URL such as sqlite:///.boite/ledger.db (the default) or "
                "postgresql://user@host/db.",
            ) from None
        try:
            # Reading the revision is cheap; Alembic is only imported to migrate.
            if current_revision(self.engine) != t.SCHEMA_REVISION:
                migrate(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger at {url}: {exc}") from exc
        self._metric_insert = _PreparedInsert(self.engine, t.metrics, _METRIC_KEYS)

    def close(self) -> None:
        self.engine.dispose()

    # --- runs ------------------------------------------------------------

    def start_run(
        self,
        step: str,
        kind: str,
        *,
        params: dict[str, Any] | None = None,
        code_fingerprint: str | None = None,
        fingerprint: str | None = None,
    ) -> str:
        run_id = new_id()
        with self.engine.begin() as conn:
            conn.execute(
                _RUN_INSERT,
                {
                    "id": run_id,
                    "step": step,
                    "kind": kind,
                    "status": RUNNING,
                    "params": params or {},
                    "code_fingerprint": code_fingerprint,
                    "fingerprint": fingerprint,
                    "started_at": utcnow(),
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "user": _user(),
                },
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        resources: Resources = Resources(),
        error: str | None = None,
        consumed: Iterable[str] = (),
        observed: Sequence[NewArtifact] = (),
        produced: Sequence[NewArtifact] = (),
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[ArtifactRecord]:
        """Close a run and register what it consumed and produced, in one transaction.

        ``observed`` are inputs seen for the first time (raw files): they are
        registered, versioned by content, and recorded as consumed. An output whose
        content equals the newest version of the same artifact is not a new
        version: the run is recorded as producing that version again.
        """
        consumed = list(consumed)  # read again if the transaction is retried
        for attempt in range(_VERSION_RETRIES):
            try:
                return self._finish(
                    run_id, status, resources, error, consumed, observed, produced, metrics, params
                )
            except sa.exc.IntegrityError as exc:
                # Two writers took the same next version number of one artifact (on a
                # database where neither queueing, as on SQLite, nor the lock taken on
                # PostgreSQL prevents it): the loser's transaction rolled back whole,
                # so it simply goes again.
                if not _version_clash(exc) or attempt == _VERSION_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.0, 0.01 * (attempt + 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish(
        self,
        run_id: str,
        status: str,
        resources: Resources,
        error: str | None,
        consumed: Iterable[str],
        observed: Sequence[NewArtifact],
        produced: Sequence[NewArtifact],
        metrics: dict[str, float] | None,
        params: dict[str, Any] | None,
    ) -> list[ArtifactRecord]:
        now = utcnow()
        out: list[ArtifactRecord] = []
        with self.engine.begin() as conn:
            seen = [self._register(conn, new, None, now).id for new in observed]
            for new in produced:
                out.append(self._register(conn, new, run_id, now))
            edges = [
                {"run_id": run_id, "artifact_id": artifact_id, "direction": CONSUMED}
                for artifact_id in dict.fromkeys([*consumed, *seen])
            ] + [
                {"run_id": run_id, "artifact_id": record.id, "direction": PRODUCED}
                for record in out
            ]
            if edges:
                conn.execute(_EDGE_INSERT, edges)
            if metrics:
                conn.execute(
                    _METRIC_INSERT,
                    [
                        {"run_id": run_id, "key": k, "value": float(v), "recorded_at": now}
                        for k, v in metrics.items()
                    ],
                )
            values: dict[str, Any] = {
                "status": status,
                "ended_at": now,
                "error": error,
                "wall_s": resources.wall_s,
                "cpu_s": resources.cpu_s,
                "peak_rss_bytes": resources.peak_rss_bytes,
                "bytes_in": resources.bytes_in,
                "bytes_out": resources.bytes_out,
                "rows_in": resources.rows_in,
                "rows_out": resources.rows_out,
            }
            if params is not None:
                values["params"] = params
            # The SET clause follows the keys given: two cached variants (with and
            # without params), never a statement built per call.
            conn.execute(_RUN_FINISH, {"run_id_": run_id, **values})
        return out

    def _register(
        self, conn: Connection, new: NewArtifact, run_id: str | None, now: datetime
    ) -> ArtifactRecord:
        if conn.dialect.name == "postgresql":
            # Writers do not queue on PostgreSQL as they do on SQLite: hold this
            # artifact's name until the transaction ends, so that two of them never
            # read the same newest version and both take the next number.
            conn.execute(_NAME_LOCK, {"key": f"{new.kind}/{new.name}"})  # kinds hold no "/"
        latest = conn.execute(
            sa.select(t.artifacts)
            .where(t.artifacts.c.kind == new.kind, t.artifacts.c.name == new.name)
            .order_by(t.artifacts.c.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest._mapping["content_hash"] == new.content_hash:
            return _artifact(latest)
        version = 1 if latest is None else latest._mapping["version"] + 1
        artifact_id = new_id()
        conn.execute(
            t.artifacts.insert().values(
                id=artifact_id,
                kind=new.kind,
                name=new.name,
                version=version,
                content_hash=new.content_hash,
                uri=new.uri,
                format=new.format,
                schema=new.schema,
                stats=new.stats,
                rows=new.rows,
                bytes=new.bytes,
                time_context=new.time_context,
                meta=new.meta,
                created_at=now,
                run_id=run_id,
            )
        )
        rows = [
            {"artifact_id": artifact_id, "column": col, "source_table": tbl, "source_column": src}
            for col, sources in new.column_lineage.items()
            for tbl, src in sorted(set(sources))
        ]
        if rows:
            conn.execute(t.column_lineage.insert(), rows)
        record = conn.execute(sa.select(t.artifacts).where(t.artifacts.c.id == artifact_id)).one()
        return _artifact(record)

    def log_runs(self, entries: Sequence[RunEntry]) -> list[str]:
        """Record many finished runs and their metrics in one transaction.

        One commit per trial would cost more than many a trial itself; tracking
        writes are batched.
        """
        ids = [new_id() for _ in entries]
        if not entries:
            return ids
        host, user, pid = socket.gethostname(), _user(), os.getpid()
        runs = []
        metrics = []
        for run_id, e in zip(ids, entries, strict=True):
            params = dict(e.params)
            if e.parent:
                params["parent_run"] = e.parent
            runs.append(
                {
                    "id": run_id,
                    "step": e.step,
                    "kind": e.kind,
                    "status": e.status,
                    "params": params,
                    "code_fingerprint": None,
                    "fingerprint": None,
                    "started_at": e.started_at,
                    "ended_at": e.started_at + timedelta(seconds=e.wall_s),
                    "wall_s": e.wall_s,
                    "cpu_s": None,
                    "peak_rss_bytes": None,
                    "bytes_in": None,
                    "bytes_out": None,
                    "rows_in": None,
                    "rows_out": None,
                    "error": e.error,
                    "pid": pid,
                    "host": host,
                    "user": user,
                }
            )
            metrics += [
                {
                    "run_id": run_id,
                    "key": k,
                    "value": float(v),
                    "step": None,
                    "recorded_at": e.started_at,
                }
                for k, v in e.metrics.items()
            ]
        with self.engine.begin() as conn:
            conn.execute(t.runs.insert(), runs)
            if metrics:
                conn.execute(t.metrics.insert(), metrics)
        return ids

    def log_metric(self, run_id: str, key: str, value: float, *, step: int | None = None) -> None:
        """Record one metric value (a training curve point, say) on a run.

        Committed before it returns, like every ledger write (on SQLite: WAL with
        ``synchronous=NORMAL``, so a crashed process loses nothing; a power cut may
        lose the last commits). Nothing is buffered. To log many values at once,
        :meth:`log_metrics` does it in one transaction.

        Raises :class:`NotFoundError` for an unknown run and ``ValueError`` for a
        value that is not a finite number or a step that is not an integer.
        """
        where = "log_metric"
        row = {
            "run_id": run_id,
            "key": _metric_key(key, where),
            "value": _finite(value, key, where),
            "step": _step(step, key, where),
            "recorded_at": utcnow(),
        }
        self._insert_metrics(run_id, [row])

    def log_metrics(self, run_id: str, points: Iterable[tuple[str, float, int | None]]) -> None:
        """Record many metric values on a run in one transaction: ``(key, value, step)``.

        A whole training curve, or every metric of an epoch, costs one commit
        instead of one per value; all are recorded or none. Values keep the order
        given (:meth:`metric_history` returns them in that order).
        """
        where = "log_metrics"
        now = utcnow()
        rows = []
        for point in points:
            key, value, step = point
            rows.append(
                {
                    "run_id": run_id,
                    "key": _metric_key(key, where),
                    "value": _finite(value, key, where),
                    "step": _step(step, key, where),
                    "recorded_at": now,
                }
            )
        if rows:
            self._insert_metrics(run_id, rows)

    def _insert_metrics(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        prepared = self._metric_insert
        try:
            prepared.run(rows)
        except prepared.integrity_errors as exc:
            # The only constraint a checked value can break is the run's foreign
            # key; asking only after the failure keeps the common path to one
            # statement.
            if not self._run_exists(run_id):
                raise NotFoundError("run", run_id) from None
            raise LedgerError(f"cannot record metrics of run {run_id}: {exc}") from exc
        except prepared.errors as exc:
            raise LedgerError(f"cannot record metrics of run {run_id}: {exc}") from exc

    def _run_exists(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
        return found is not None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int | None, float]]:
        """Every value of one metric of a run, in the order recorded, with its step."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.metrics.c.step, t.metrics.c.value)
                .where(t.metrics.c.run_id == run_id, t.metrics.c.key == key)
                .order_by(t.metrics.c.id)
            ).all()
        return [(s, v) for s, v in rows]

    def search_runs(
        self,
        *,
        metric: str,
        op: str,
        value: float,
        step: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[RunRecord, float]]:
        """Runs whose latest value of ``metric`` satisfies ``op value``, best first.

        One query: the filter runs in the database, not over fetched runs. Each run
        comes with the value that matched; :meth:`metrics_of` fetches all the
        metrics of the runs found in one more query.
        """
        if op not in _SEARCH_OPS:
            raise ValueError(
                f"op must be one of {', '.join(_SEARCH_OPS)}; got {op!r}. "
                "For example search_runs(metric='auc', op='>', value=0.7)."
            )
        bound = _finite(value, metric, "search_runs")
        shape = (op, step is not None, kind is not None, limit is not None)
        query = _SEARCHES.get(shape)
        if query is None:
            query = _SEARCHES[shape] = _search_query(*shape)
        params: dict[str, Any] = {"metric": metric, "bound": bound}
        if step is not None:
            params["step"] = step
        if kind is not None:
            params["kind"] = kind
        if limit is not None:
            params["limit"] = limit
        with self.engine.connect() as conn:
            rows = conn.execute(query, params).all()
        return [(_run(row), float(row[20])) for row in rows]

    def interrupt_stale_runs(self) -> int:
        """Mark runs left 'running' by a killed process; call while holding the project lock."""
        with self.engine.begin() as conn:
            result = conn.execute(
                t.runs.update()
                .where(t.runs.c.status == RUNNING)
                .values(
                    status=INTERRUPTED,
                    ended_at=utcnow(),
                    error="the process running this step stopped before it finished",
                )
            )
            return result.rowcount or 0

    def run(self, run_id: str) -> RunRecord:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.runs).where(t.runs.c.id.like(f"{run_id}%")).limit(2)
            ).all()
        if len(rows) != 1:
            raise NotFoundError("run", run_id)
        return _run(rows[0])

    def runs(self, *, step: str | None = None, limit: int | None = None) -> list[RunRecord]:
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc())
        if step is not None:
            query = query.where(t.runs.c.step == step)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query).all()]

    def latest_runs(self, *, status: str | None = None) -> dict[str, RunRecord]:
        """The newest run of each step (optionally only those with ``status``), in one query."""
        ranked = sa.select(
            t.runs,
            sa.func.row_number()
            .over(partition_by=t.runs.c.step, order_by=t.runs.c.started_at.desc())
            .label("rank"),
        )
        if status is not None:
            ranked = ranked.where(t.runs.c.status == status)
        sub = ranked.subquery()
        query = sa.select(*[sub.c[c.name] for c in t.runs.columns]).where(sub.c.rank == 1)
        with self.engine.connect() as conn:
            return {r.step: r for r in map(_run, conn.execute(query).all())}

    def metrics(self, run_id: str) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.metrics.c.key, t.metrics.c.value)
                .where(t.metrics.c.run_id == run_id)
                .order_by(t.metrics.c.id)
            )
            return {k: v for k, v in rows}

    def metrics_of(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """The latest value of every metric of many runs, in one query per 500 runs.

        What :meth:`metrics` gives for one run, without a query per run (reading
        the metrics of a search's runs one by one cost more than the search).
        Runs without metrics map to ``{}``.
        """
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
        with self.engine.connect() as conn:
            for first in range(0, len(ids), _IN_CHUNK):
                rows = conn.execute(_METRICS_OF, {"ids": ids[first : first + _IN_CHUNK]}).all()
                for run_id, key, value in rows:
                    out[run_id][key] = value
        return out

    # --- artifacts -------------------------------------------------------

    def artifact(self, kind: str, name: str, version: int | None = None) -> ArtifactRecord:
        query = sa.select(t.artifacts).where(t.artifacts.c.kind == kind, t.artifacts.c.name == name)
        if version is None:
            query = query.order_by(t.artifacts.c.version.desc()).limit(1)
        else:
            query = query.where(t.artifacts.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            existing = self.versions(kind, name) if version is not None else []
            if existing:
                error = NotFoundError(f"version of {kind} {name}", f"{name}@{version}")
                error.hint = "It has " + ", ".join(f"v{v.version}" for v in existing) + "."
                raise error
            from boite.core.suggest import did_you_mean

            known = list(self.latest_artifacts(kind))
            raise NotFoundError(kind, name, suggestion=did_you_mean(name, known), known=known)
        return _artifact(row)

    def artifact_by_id(self, artifact_id: str) -> ArtifactRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.artifacts).where(t.artifacts.c.id == artifact_id)
            ).first()
        if row is None:
            raise NotFoundError("artifact", artifact_id)
        return _artifact(row)

    def latest_artifacts(self, kind: str) -> dict[str, ArtifactRecord]:
        """The newest version of every artifact of one kind, by name, in one query."""
        ranked = sa.select(
            t.artifacts,
            sa.func.row_number()
            .over(
                partition_by=(t.artifacts.c.kind, t.artifacts.c.name),
                order_by=t.artifacts.c.version.desc(),
            )
            .label("rank"),
        )
        ranked = ranked.where(t.artifacts.c.kind == kind)
        sub = ranked.subquery()
        query = sa.select(*[sub.c[c.name] for c in t.artifacts.columns]).where(sub.c.rank == 1)
        with self.engine.connect() as conn:
            return {r._mapping["name"]: _artifact(r) for r in conn.execute(query)}

    def versions(
        self, kind: str, name: str, *, superseded_by: str | None = None
    ) -> list[ArtifactRecord]:
        """Every version of an artifact, oldest first; with ``superseded_by`` (a run kind),
        only those that no succeeded run of that kind consumed (e.g. log partitions that
        a compaction merged into a larger one)."""
        query = sa.select(t.artifacts).where(t.artifacts.c.kind == kind, t.artifacts.c.name == name)
        if superseded_by is not None:
            replaced = (
                sa.select(t.edges.c.artifact_id)
                .join(t.runs, t.runs.c.id == t.edges.c.run_id)
                .where(
                    t.edges.c.artifact_id == t.artifacts.c.id,
                    t.edges.c.direction == CONSUMED,
                    t.runs.c.kind == superseded_by,
                    t.runs.c.status == SUCCEEDED,
                )
            )
            query = query.where(~replaced.exists())
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.artifacts.c.version))
            return [_artifact(r) for r in rows]

    def versions_where(self, kind: str, name: str, key: str, value: str) -> list[ArtifactRecord]:
        """The versions whose ``meta[key]`` is the text ``value``, found by the database
        (JSON extraction on SQLite and PostgreSQL) rather than by reading every version."""
        query = (
            sa.select(t.artifacts)
            .where(
                t.artifacts.c.kind == kind,
                t.artifacts.c.name == name,
                t.artifacts.c.meta[key].as_string() == value,
            )
            .order_by(t.artifacts.c.version)
        )
        with self.engine.connect() as conn:
            return [_artifact(r) for r in conn.execute(query)]

    def inputs_of(self, run_id: str) -> list[ArtifactRecord]:
        return self._edge_artifacts(run_id, CONSUMED)

    def outputs_of(self, run_id: str) -> list[ArtifactRecord]:
        return self._edge_artifacts(run_id, PRODUCED)

    def _edge_artifacts(self, run_id: str, direction: str) -> list[ArtifactRecord]:
        query = (
            sa.select(t.artifacts)
            .join(t.edges, t.edges.c.artifact_id == t.artifacts.c.id)
            .where(t.edges.c.run_id == run_id, t.edges.c.direction == direction)
            .order_by(t.artifacts.c.kind, t.artifacts.c.name)
        )
        with self.engine.connect() as conn:
            return [_artifact(r) for r in conn.execute(query)]

    def consumers_of(self, artifact_id: str) -> list[RunRecord]:
        query = (
            sa.select(t.runs)
            .join(t.edges, t.edges.c.run_id == t.runs.c.id)
            .where(t.edges.c.artifact_id == artifact_id, t.edges.c.direction == CONSUMED)
            .order_by(t.runs.c.started_at)
        )
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query).all()]

    def producers_of(self, artifact_id: str) -> list[RunRecord]:
        """Runs that produced this artifact, newest first (a rerun may reproduce it)."""
        query = (
            sa.select(t.runs)
            .join(t.edges, t.edges.c.run_id == t.runs.c.id)
            .where(t.edges.c.artifact_id == artifact_id, t.edges.c.direction == PRODUCED)
            .order_by(t.runs.c.started_at.desc())
        )
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query).all()]

    def column_lineage(self, artifact_id: str) -> dict[str, list[tuple[str, str]]]:
        query = (
            sa.select(t.column_lineage)
            .where(t.column_lineage.c.artifact_id == artifact_id)
            .order_by(t.column_lineage.c.column)
        )
        out: dict[str, list[tuple[str, str]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                m = row._mapping
                out.setdefault(m["column"], []).append((m["source_table"], m["source_column"]))
        return out

    # --- tags ------------------------------------------------------------

    def set_tag(self, entity_type: str, entity_id: str, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.tags.delete().where(
                    t.tags.c.entity_type == entity_type,
                    t.tags.c.entity_id == entity_id,
                    t.tags.c.key == key,
                )
            )
            conn.execute(
                t.tags.insert().values(
                    entity_type=entity_type, entity_id=entity_id, key=key, value=value
                )
            )

    def tags(self, entity_type: str, entity_id: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.tags.c.key, t.tags.c.value).where(
                    t.tags.c.entity_type == entity_type, t.tags.c.entity_id == entity_id
                )
            )
            return {k: v for k, v in rows}


@functools.cache
def _user() -> str:
    # Once per process: getpass reads four environment variables and the passwd
    # database, a tenth of what recording a whole run costs.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
