"""Compaction of the prediction log: the small partitions of a model version merged into
one per day, so that its readers open a few files instead of thousands.

A running server publishes one partition per model version every
``log.publish_seconds`` (1,440 a day at the default minute, per worker).
``compact_log`` merges the partitions published before a bound, per model
version, environment and UTC day, with DuckDB (streamed: a day of
traffic need not fit in memory), into one zstd Parquet partition each. The day
is that of a partition's first logged row, so a merged partition stays in its
day's group: compacting every night merges each day once, not the whole history
again, and a group of one (a day already merged) is left alone. One
``compact`` run consumes the small partitions and produces the merged ones in
one ledger transaction, so a reader (feedback, the live comparison) sees either
the small ones or the merged ones, never both and never neither. The small ones
stay on record (lineage recorded against them still resolves) and in the
artifact store.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boite.core.engine import quote_literal
from boite.core.ledger import FAILED, SUCCEEDED, ArtifactRecord, NewArtifact, Resources
from boite.core.lock import ProjectLock
from boite.core.metering import Meter
from boite.errors import BoiteError, UserError
from boite.pipeline.scoring import stored_parquet
from boite.serving.predlog import PREDICTION_LOG

if TYPE_CHECKING:
    from boite.pipeline.project import Project

COMPACT = "compact"  # the run kind whose consumed partitions readers skip
logger = logging.getLogger("boite.pipeline.compaction")


@dataclass(frozen=True)
class Merged:
    model_version: str
    env: str
    day: date
    partitions: int
    rows: int


@dataclass
class Compaction:
    model: str
    merged: list[Merged] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # groups that could not be merged, why
    bytes_in: int = 0
    bytes_out: int = 0
    run_id: str | None = None

    @property
    def partitions_in(self) -> int:
        return sum(m.partitions for m in self.merged)

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.merged)


def current_partitions(project: Project, model: str) -> list[ArtifactRecord]:
    """The prediction log partitions of ``model`` that readers use: all but those that a
    compaction merged into a larger one."""
    return project.ledger.versions(PREDICTION_LOG, model, superseded_by=COMPACT)


def compact_log(
    project: Project,
    model: str,
    *,
    older_than: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> Compaction:
    """Merge the partitions of ``model``'s log published more than ``older_than`` ago
    (wall time, as the ledger records it); a group of one is left as it is."""
    project.models.registry.get(model)  # an unknown model: a clear error, did-you-mean
    if older_than < timedelta(0):
        raise UserError(
            f"--older-than must not be negative (got {older_than})",
            hint="e.g. --older-than 1d merges the partitions published before yesterday.",
        )
    cutoff = (now or datetime.now(UTC)) - older_than
    out = Compaction(model)
    # two compactions of one log at once would both merge the same partitions
    with ProjectLock(project.state_dir / "log-compact.lock", wait=True):
        groups: dict[tuple[str, str, date], list[ArtifactRecord]] = {}
        for record in current_partitions(project, model):
            if record.created_at >= cutoff:
                continue
            meta = record.meta or {}
            key = (str(meta.get("model_version", "?")), str(meta.get("env", "")), _day(record))
            groups.setdefault(key, []).append(record)
        groups = {k: v for k, v in groups.items() if len(v) > 1}
        if not groups:
            return out
        ledger = project.ledger
        out.run_id = ledger.start_run(
            f"compact:{model}",
            COMPACT,
            params={"model": model, "older_than_s": older_than.total_seconds()},
        )
        meter = Meter()
        try:
            produced: list[NewArtifact] = []
            consumed: list[ArtifactRecord] = []
            with meter:
                for (version, env, day), records in sorted(groups.items()):
                    try:
                        new, rows = _merge(project, model, records, version, env, day)
                    except Exception as exc:  # one bad group does not stop the others
                        why = f"{version} {env or '-'} {day}: {type(exc).__name__}: {exc}"
                        logger.warning("could not merge the log partitions of %s", why)
                        out.skipped.append(why)
                        continue
                    produced.append(new)
                    consumed += records
                    out.merged.append(Merged(version, env, day, len(records), rows))
                    out.bytes_out += new.bytes or 0
            if not produced:
                raise BoiteError(
                    "none of the log's partition groups could be merged: " + "; ".join(out.skipped),
                    hint="The partitions are unchanged; the reason is above.",
                )
            out.bytes_in = sum(r.bytes or 0 for r in consumed)
            ledger.finish_run(
                out.run_id,
                status=SUCCEEDED,
                resources=Resources(
                    wall_s=meter.usage.wall_s,
                    cpu_s=meter.usage.cpu_s,
                    peak_rss_bytes=meter.usage.peak_rss_bytes,
                    rows_in=out.rows,
                    rows_out=out.rows,
                    bytes_in=out.bytes_in,
                    bytes_out=out.bytes_out,
                ),
                consumed=[r.id for r in consumed],
                produced=produced,
                metrics={
                    "partitions_in": float(len(consumed)),
                    "partitions_out": float(len(produced)),
                },
            )
        except BaseException as exc:
            ledger.finish_run(out.run_id, status=FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
    return out


def _day(record: ArtifactRecord) -> date:
    """The UTC day of a partition's first logged row (its publication day if unknown)."""
    first = (record.time_context or {}).get("data_from")
    if first:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(str(first)).astimezone(UTC).date()
    return record.created_at.astimezone(UTC).date()


def _merge(
    project: Project,
    model: str,
    records: list[ArtifactRecord],
    version: str,
    env: str,
    day: date,
) -> tuple[NewArtifact, int]:
    store = project.store
    paths = [
        store.local_path(r.uri, r.content_hash, what=f"prediction log {r.ref}") for r in records
    ]
    files = "[" + ", ".join(quote_literal(str(p)) for p in paths) + "]"
    scratch = store.new_scratch_file(".parquet")
    con = project.engine.connect()
    try:
        # the partitions in the order they were published (DuckDB keeps insertion order);
        # columns matched by name, since a later partition may carry a column more
        con.execute(
            f"COPY (SELECT * FROM read_parquet({files}, union_by_name = true)) "
            f"TO {quote_literal(str(scratch))} (FORMAT parquet, COMPRESSION zstd)"
        )
        roles = sorted(
            str(r[0])
            for r in con.execute(
                f"SELECT DISTINCT role FROM read_parquet({quote_literal(str(scratch))})"
            ).fetchall()
        )
    finally:
        con.close()
    meta: dict[str, Any] = {
        "model_version": version,
        "env": env,
        "roles": roles,
        "compacted": {"day": day.isoformat(), "partitions": len(records)},
    }
    new = stored_parquet(project, scratch, model, PREDICTION_LOG, meta)
    expected = sum(r.rows or 0 for r in records)
    if new.rows != expected:
        raise BoiteError(
            f"merging {len(records)} partitions of the {model} log gave {new.rows} rows, "
            f"not {expected}; the ledger was not changed"
        )
    return new, expected
