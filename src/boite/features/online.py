"""The online store: the latest feature values of every entity, for reads in microseconds.

``OnlineStore`` is the interface; ``SQLiteOnlineStore`` the embedded default (a
Redis implementation fills the same interface at scale). One table per feature
view, keyed by the entity columns (``WITHOUT ROWID``: the row lives in the key's
B-tree, one lookup per entity). Event times are kept so that an older event
never overwrites a newer one, and a TTL can be applied at read time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from boite.core.engine import quote_ident
from boite.errors import ConfigError, FeatureError

EVENT, CREATED = "__event_us", "__created_us"

_SQLITE_TYPES = {
    "BOOLEAN": "INTEGER",
    "TINYINT": "INTEGER",
    "SMALLINT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "INTEGER",
    "UTINYINT": "INTEGER",
    "USMALLINT": "INTEGER",
    "UINTEGER": "INTEGER",
    # wider than SQLite's 64-bit integers: materialization casts them to BIGINT
    # (exact, and a value that does not fit is an error rather than a rounding)
    "UBIGINT": "INTEGER",
    "HUGEINT": "INTEGER",
    "UHUGEINT": "INTEGER",
    "FLOAT": "REAL",
    "DOUBLE": "REAL",
    "VARCHAR": "TEXT",
}


def sqlite_type(duckdb_type: str) -> str:
    if duckdb_type in _SQLITE_TYPES:
        return _SQLITE_TYPES[duckdb_type]
    if duckdb_type.startswith("DECIMAL"):
        return "REAL"
    return "TEXT"  # dates, timestamps and anything else are kept as ISO text


@dataclass(frozen=True)
class OnlineTable:
    """How one view is laid out in the store."""

    view: str
    entities: tuple[str, ...]
    features: tuple[str, ...]
    types: dict[str, str]  # duckdb types of keys and features

    def to_json(self) -> str:
        return json.dumps(
            {"entities": self.entities, "features": self.features, "types": self.types}
        )


@dataclass(frozen=True)
class ViewState:
    table: OnlineTable
    watermark_us: int | None  # the newest event time materialized
    source_hash: str | None  # the dataset version materialized last
    rows: int


class OnlineStore(Protocol):
    def ensure(self, table: OnlineTable) -> None: ...
    def write(self, view: str, rows: Iterable[Sequence[Any]]) -> int: ...
    def read(
        self,
        view: str,
        keys: Sequence[tuple[Any, ...]],
        features: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...] | None]: ...
    def state(self, view: str) -> ViewState | None: ...
    def mark(self, view: str, *, watermark_us: int | None, source_hash: str | None) -> None: ...
    def drop(self, view: str) -> None: ...
    def close(self) -> None: ...


def to_micros(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class SQLiteOnlineStore:
    """The embedded online store: one SQLite file (WAL), one table per view."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._read_sql: dict[tuple[Any, ...], str] = {}
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS boite_views (view TEXT PRIMARY KEY, layout TEXT NOT "
                "NULL, watermark_us INTEGER, source_hash TEXT, updated_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # One connection per thread: sqlite3 connections must not be shared
            # across threads, and a cached one keeps prepared statements warm.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _table(self, view: str) -> str:
        return quote_ident(f"fv_{view}")

    def ensure(self, table: OnlineTable) -> None:
        conn = self._connect()
        row = conn.execute(
            "SELECT layout FROM boite_views WHERE view = ?", (table.view,)
        ).fetchone()
        if row is not None:
            old = json.loads(row[0])
            changed = [
                f"'{c}' from {old['types'][c]} to {table.types[c]}"
                for c in table.types
                if c in old["types"] and old["types"][c] != table.types[c]
            ]
            if changed:
                raise FeatureError(
                    f"feature view '{table.view}': the type of "
                    + ", ".join(changed)
                    + " changed since the online store was filled",
                    view=table.view,
                    hint="Cast the column back to its old type in the transform, or rebuild "
                    f"the online view with `boite features materialize {table.view} --full`.",
                )
            if list(old["entities"]) == list(table.entities) and list(old["features"]) == list(
                table.features
            ):
                return
            self.drop(table.view)  # new columns: rebuild the table from the offline data
        keys = [f"{quote_ident(k)} {sqlite_type(table.types[k])} NOT NULL" for k in table.entities]
        feats = [f"{quote_ident(f)} {sqlite_type(table.types[f])}" for f in table.features]
        pk = ", ".join(quote_ident(k) for k in table.entities)
        conn.execute("BEGIN")
        conn.execute(
            f"CREATE TABLE {self._table(table.view)} ({', '.join(keys)}, {EVENT} INTEGER NOT NULL, "
            f"{CREATED} INTEGER, {', '.join(feats)}, PRIMARY KEY ({pk})) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO boite_views (view, layout, updated_at) VALUES (?, ?, ?)",
            (table.view, table.to_json(), datetime.now(UTC).isoformat()),
        )
        conn.execute("COMMIT")

    def layout(self, view: str) -> OnlineTable | None:
        row = (
            self._connect()
            .execute("SELECT layout FROM boite_views WHERE view = ?", (view,))
            .fetchone()
        )
        if row is None:
            return None
        data = json.loads(row[0])
        return OnlineTable(view, tuple(data["entities"]), tuple(data["features"]), data["types"])

    def write(self, view: str, rows: Iterable[Sequence[Any]]) -> int:
        """Upsert rows laid out as (keys..., event_us, created_us, features...).

        A row replaces the stored one only if its event is newer (or equally new
        and created later): late or replayed data never rolls a value back.
        """
        layout = self.layout(view)
        if layout is None:
            raise FeatureError(f"the online store has no view '{view}'", view=view)
        names = [*layout.entities, EVENT, CREATED, *layout.features]
        cols = ", ".join(quote_ident(n) if n not in (EVENT, CREATED) else n for n in names)
        marks = ", ".join("?" for _ in names)
        pk = ", ".join(quote_ident(k) for k in layout.entities)
        table = self._table(view)
        updates = ", ".join(
            f"{quote_ident(n) if n not in (EVENT, CREATED) else n} = excluded."
            f"{quote_ident(n) if n not in (EVENT, CREATED) else n}"
            for n in names[len(layout.entities) :]
        )
        sql = (
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({pk}) DO UPDATE SET "
            f"{updates} WHERE excluded.{EVENT} > {table}.{EVENT} OR (excluded.{EVENT} = "
            f"{table}.{EVENT} AND coalesce(excluded.{CREATED}, 0) >= "
            f"coalesce({table}.{CREATED}, 0))"
        )
        conn = self._connect()
        conn.execute("BEGIN")
        try:
            cursor = conn.executemany(sql, rows)
            count = cursor.rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return count

    def read(
        self,
        view: str,
        keys: Sequence[tuple[Any, ...]],
        features: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...] | None]:
        """For each key, (event_us, *features) or None; one query for all keys.

        Features are selected by name, so a reader never depends on the order in
        which the table happens to keep them.
        """
        if not keys:
            return []
        conn = self._connect()
        width = len(keys[0])
        wanted = None if features is None else tuple(features)
        cache_key = (view, wanted, len(keys))
        args = keys[0] if len(keys) == 1 else [v for k in keys for v in k]
        sql = self._read_sql.get(cache_key) or self._statement(view, wanted, len(keys), width)
        if sql is None:
            return [None] * len(keys)
        try:
            fetched = conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            # the table changed under a cached statement (rebuilt elsewhere): once more
            self._read_sql.pop(cache_key, None)
            sql = self._statement(view, wanted, len(keys), width)
            if sql is None:
                return [None] * len(keys)
            fetched = conn.execute(sql, args).fetchall()
        self._read_sql[cache_key] = sql
        if len(keys) == 1:
            return [fetched[0][width:] if fetched else None]
        if width == 1:
            found = {r[0]: r[1:] for r in fetched}
            return [found.get(k[0]) for k in keys]
        found = {r[:width]: r[width:] for r in fetched}
        return [found.get(tuple(k)) for k in keys]

    def _statement(
        self, view: str, wanted: tuple[str, ...] | None, count: int, width: int
    ) -> str | None:
        """The SELECT for ``count`` keys, checked against the stored layout."""
        layout = self.layout(view)
        if layout is None:
            return None
        names = layout.features if wanted is None else wanted
        absent = [f for f in names if f not in layout.features]
        if absent:
            raise FeatureError(
                f"the online store does not hold {', '.join(repr(f) for f in absent)} of "
                f"feature view '{view}' yet",
                view=view,
                hint="Run `boite run` (or `boite features materialize`) to fill it.",
            )
        feats = ", ".join(quote_ident(f) for f in names)
        key_cols = ", ".join(quote_ident(k) for k in layout.entities)
        if count == 1:
            where = " AND ".join(f"{quote_ident(k)} = ?" for k in layout.entities)
        elif width == 1:
            where = f"{key_cols} IN ({', '.join('?' for _ in range(count))})"
        else:
            row = "(" + ", ".join("?" for _ in range(width)) + ")"
            where = f"({key_cols}) IN (VALUES {', '.join(row for _ in range(count))})"
        if len(self._read_sql) > 256:
            self._read_sql.clear()
        return f"SELECT {key_cols}, {EVENT}, {feats} FROM {self._table(view)} WHERE {where}"

    def state(self, view: str) -> ViewState | None:
        conn = self._connect()
        row = conn.execute(
            "SELECT layout, watermark_us, source_hash FROM boite_views WHERE view = ?", (view,)
        ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        table = OnlineTable(view, tuple(data["entities"]), tuple(data["features"]), data["types"])
        count = conn.execute(f"SELECT count(*) FROM {self._table(view)}").fetchone()[0]
        return ViewState(table, row[1], row[2], count)

    def mark(self, view: str, *, watermark_us: int | None, source_hash: str | None) -> None:
        self._connect().execute(
            "UPDATE boite_views SET watermark_us = ?, source_hash = ?, updated_at = ? "
            "WHERE view = ?",
            (watermark_us, source_hash, datetime.now(UTC).isoformat(), view),
        )

    def drop(self, view: str) -> None:
        conn = self._connect()
        conn.execute("BEGIN")
        conn.execute(f"DROP TABLE IF EXISTS {self._table(view)}")
        conn.execute("DELETE FROM boite_views WHERE view = ?", (view,))
        conn.execute("COMMIT")
        self._read_sql = {k: v for k, v in self._read_sql.items() if k[0] != view}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_online_store(url: str, root: Path) -> SQLiteOnlineStore:
    """The store a URL names: ``sqlite:///path`` (relative to the project) for now."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = Path(url[len(prefix) :])
        return SQLiteOnlineStore(path if path.is_absolute() else root / path)
    raise ConfigError(
        f"the online store URL {url!r} is not supported yet",
        key="stores.online",
        hint="Use sqlite:///PATH (the default is sqlite:///.boite/online.db); "
        "redis:// arrives with the scale-out stores.",
    )
