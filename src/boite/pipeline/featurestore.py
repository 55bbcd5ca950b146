"""The feature store of a project: views resolved on their datasets, training sets,
online reads, pushes, materialization and the feature library, all on record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boite.core.config import ProjectConfig
from boite.core.datasets import DATASET, Dataset, new_dataset
from boite.core.engine import quote_literal
from boite.core.ledger import FAILED, SUCCEEDED, ArtifactRecord, NewArtifact, Resources
from boite.core.metering import Meter
from boite.core.suggest import did_you_mean
from boite.errors import BoiteError, FeatureError, NotFoundError
from boite.features.materialize import Materialized, latest_rows_sql, materialize
from boite.features.online import SQLiteOnlineStore, open_online_store
from boite.features.pit import ViewInput, check_unique_events, parquet_relation, run_point_in_time
from boite.features.reader import OnlineFeatures, OnlineReader
from boite.features.views import TIME_TYPES, TZ_TYPES, FeatureView, parse_refs, resolve_view

if TYPE_CHECKING:
    from boite.pipeline.runner import Workspace

TRAINING_SET, LABELS, PUSH = "training_set", "labels", "push"
_UNIQUE_TAG = "unique_events"


@dataclass(frozen=True)
class FeatureInfo:
    """One feature in the library."""

    view: str
    feature: str
    type: str
    entities: tuple[str, ...]
    owner: str | None
    description: str | None
    dataset: str | None
    newest: Any
    age: timedelta | None
    freshness_sla: timedelta | None
    used_by: list[str] = field(default_factory=list)

    @property
    def fresh(self) -> bool | None:
        if self.freshness_sla is None or self.age is None:
            return None
        return self.age <= self.freshness_sla


@dataclass(frozen=True)
class PushResult:
    view: str
    rows: int
    online_rows_written: int
    batch: ArtifactRecord


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return None


class FeatureStore:
    def __init__(self, ws: Workspace, config: ProjectConfig) -> None:
        self.ws = ws
        self.config = config
        self._readers: dict[tuple[str, ...], OnlineReader] = {}

    @cached_property
    def online(self) -> SQLiteOnlineStore:
        return open_online_store(self.config.stores.online, self.ws.root)

    # --- views -------------------------------------------------------------

    def views(self, wanted: Sequence[str] | None = None) -> dict[str, FeatureView]:
        """Feature views resolved on the current version of their datasets.

        Views whose dataset was never built are left out, unless ``wanted`` names
        them: then that is an error saying so.
        """
        current = self.ws.ledger.latest_artifacts(DATASET)
        out = {}
        for name, cfg in self.config.feature_views.items():
            record = current.get(cfg.source.lower())
            if record is None:
                if wanted is not None and name in wanted:
                    raise FeatureError(
                        f"feature view '{name}' has no data yet: '{cfg.source}' has never "
                        "been built",
                        view=name,
                        hint="Run `boite run` first.",
                    )
                continue
            out[name] = resolve_view(name, cfg, dict(record.schema or {}), dataset=record.ref)
        return out

    def _views_for(
        self, refs: Sequence[str]
    ) -> tuple[dict[str, FeatureView], dict[str, list[str]]]:
        names = [str(r).partition(":")[0] for r in ([refs] if isinstance(refs, str) else refs)]
        views = self.views(wanted=names)
        return views, parse_refs(list(refs) if not isinstance(refs, str) else [refs], views)

    def view(self, name: str) -> FeatureView:
        if name not in self.config.feature_views:
            known = list(self.config.feature_views)
            raise NotFoundError(
                "feature view", name, suggestion=did_you_mean(name, known), known=known
            )
        return self.views(wanted=[name])[name]

    def history_records(self, view_name: str, source: str) -> list[ArtifactRecord]:
        """A view's offline history on record: its dataset, then every pushed batch."""
        ledger = self.ws.ledger
        return [ledger.artifact(DATASET, source.lower()), *ledger.versions(PUSH, view_name)]

    def history(self, view: FeatureView) -> tuple[list[Path], list[ArtifactRecord]]:
        """The verified files of a view's offline history."""
        store = self.ws.store
        records = self.history_records(view.name, view.source)
        paths = [store.local_path(r.uri, r.content_hash, what=f"{r.kind} {r.ref}") for r in records]
        return paths, records

    def _check_unique(
        self, view: FeatureView, paths: list[Path], records: list[ArtifactRecord]
    ) -> None:
        # Checked once per (view layout, data version): the answer cannot change.
        key = hashlib.sha256(
            (
                repr(view.entities)
                + view.timestamp
                + str(view.created_timestamp)
                + "".join(r.content_hash for r in records)
            ).encode()
        ).hexdigest()[:16]
        tag = f"{_UNIQUE_TAG}:{view.name}:{key}"
        if self.ws.ledger.tags("artifact", records[0].id).get(tag) == "ok":
            return
        con = self.ws.engine.connect()
        try:
            check_unique_events(con, view, paths)
        finally:
            con.close()
        self.ws.ledger.set_tag("artifact", records[0].id, tag, "ok")

    # --- training sets -----------------------------------------------------

    def training_set(
        self,
        labels: Any,
        features: Sequence[str],
        *,
        timestamp: str | None = None,
        name: str | None = None,
        full_names: bool = False,
    ) -> Dataset:
        views, wanted = self._views_for(features)
        ledger, store = self.ws.ledger, self.ws.store
        label_record, label_path, observed = self._labels(labels, name)
        set_name = name or (label_record.name if label_record else "training_set")
        inputs: list[ViewInput] = []
        consumed: list[str] = [] if label_record is None else [label_record.id]
        refs: list[str] = []
        for view_name, feats in wanted.items():
            view = views[view_name]
            paths, records = self.history(view)
            self._check_unique(view, paths, records)
            inputs.append(ViewInput(view, tuple(feats), tuple(paths)))
            consumed += [r.id for r in records]
            refs += [f"{view_name}:{f}" for f in feats]
        con = self.ws.engine.connect()
        try:
            schema_rel = con.sql(
                f"SELECT * FROM read_parquet({quote_literal(str(label_path))}) LIMIT 0"
            )
            label_types = {
                c: str(t) for c, t in zip(schema_rel.columns, schema_rel.types, strict=True)
            }
            ts = timestamp or _infer_timestamp(label_types)
            if ts not in label_types:
                guess = did_you_mean(ts, label_types)
                raise FeatureError(
                    f"the labels have no column '{ts}' to take the time of each row from",
                    hint=(f"Did you mean '{guess}'? " if guess else "")
                    + "Columns: "
                    + ", ".join(label_types)
                    + ".",
                )
            params = {
                "features": refs,
                "timestamp": ts,
                "full_names": full_names,
                "views": {i.view.name: records_ref(ledger, i.view) for i in inputs},
            }
            run_id = ledger.start_run(f"training_set:{set_name}", TRAINING_SET, params=params)
            out_path = store.new_scratch_file(".parquet")
            meter = Meter()
            try:
                with meter:
                    schema = run_point_in_time(
                        con, label_path, ts, inputs, out_path, full_names=full_names
                    )
                    stored = store.put_file(out_path, suffix=".parquet")
                    path = store.local_path(stored.uri, stored.sha256)
                    new = new_dataset(set_name, stored, path, schema, as_of=self.ws.clock.fixed)
                    new.kind = TRAINING_SET
                    new.meta = {"features": refs, "timestamp": ts, "labels": _ref(label_record)}
            except BaseException as exc:
                ledger.finish_run(
                    run_id,
                    status=FAILED,
                    error=str(exc) if isinstance(exc, BoiteError) else repr(exc),
                    resources=Resources(wall_s=meter.usage.wall_s),
                )
                raise
            finally:
                out_path.unlink(missing_ok=True)
        finally:
            con.close()
        (record,) = ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            resources=Resources(
                wall_s=meter.usage.wall_s,
                cpu_s=meter.usage.cpu_s,
                peak_rss_bytes=meter.usage.peak_rss_bytes,
                rows_out=new.rows,
                bytes_out=new.bytes,
            ),
            consumed=consumed,
            observed=observed,
            produced=[new],
            metrics={"rows": float(new.rows or 0)},
        )
        return Dataset(record, store, ledger)

    def _labels(
        self, labels: Any, name: str | None
    ) -> tuple[ArtifactRecord | None, Path, list[NewArtifact]]:
        """A label dataset on record, or a frame snapshotted as a 'labels' artifact."""
        ledger, store = self.ws.ledger, self.ws.store
        if isinstance(labels, Dataset):
            return labels.record, labels.path, []
        if isinstance(labels, str):
            base, _, version = labels.partition("@")
            record = ledger.artifact(DATASET, base, int(version) if version.isdigit() else None)
            return record, store.local_path(record.uri, record.content_hash, what=record.ref), []
        table = _to_arrow(labels, what="labels")
        import pyarrow.parquet as pq

        scratch = store.new_scratch_file(".parquet")
        pq.write_table(table, scratch, compression="zstd")
        stored = store.put_file(scratch, suffix=".parquet")
        path = store.local_path(stored.uri, stored.sha256)
        schema = {f.name: str(f.type) for f in table.schema}
        new = new_dataset(name or "labels", stored, path, schema)
        new.kind = LABELS
        return None, path, [new]

    # --- online ------------------------------------------------------------

    def reader(self, features: Sequence[str]) -> OnlineReader:
        key = tuple(features)
        reader = self._readers.get(key)
        if reader is None:
            views, wanted = self._views_for(features)
            reader = OnlineReader(self.online, views, wanted, self.ws.clock.now)
            self._readers[key] = reader
        return reader

    def online_features(
        self, features: Sequence[str], entities: Sequence[Mapping[str, Any]]
    ) -> OnlineFeatures:
        return self.reader(features).get(entities)

    def materialize(self, view: FeatureView, *, full: bool = False) -> Materialized:
        paths, records = self.history(view)
        self._check_unique(view, paths, records)
        con = self.ws.engine.connect()
        try:
            return materialize(
                con, self.online, view, paths, source_hash=history_hash(records), full=full
            )
        finally:
            con.close()
            self._readers.clear()

    def materialize_on_record(
        self,
        view_name: str,
        *,
        full: bool = False,
        step: str | None = None,
        fingerprint: str | None = None,
        params: dict[str, Any] | None = None,
        code_fingerprint: str | None = None,
    ) -> tuple[Materialized, str]:
        """Materialize one view as a run in the ledger (what it read, what it wrote)."""
        ledger = self.ws.ledger
        records = self.history_records(view_name, self.config.feature_views[view_name].source)
        run_id = ledger.start_run(
            step or f"materialize.{view_name}",
            "materialize",
            params={**(params or {}), "view": view_name, "full": full},
            code_fingerprint=code_fingerprint,
            fingerprint=fingerprint,
        )
        meter = Meter()
        try:
            with meter:
                result = self.materialize(self.view(view_name), full=full)
        except BaseException as exc:
            ledger.finish_run(
                run_id,
                status=FAILED,
                error=str(exc) if isinstance(exc, BoiteError) else repr(exc),
                resources=Resources(wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s),
            )
            raise
        ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            resources=Resources(
                wall_s=meter.usage.wall_s,
                cpu_s=meter.usage.cpu_s,
                peak_rss_bytes=meter.usage.peak_rss_bytes,
                rows_in=result.rows_read,
                rows_out=result.rows_written,
            ),
            consumed=[r.id for r in records],
            metrics={"rows_read": result.rows_read, "rows_written": result.rows_written},
        )
        return result, run_id

    # --- push --------------------------------------------------------------

    def push(self, view_name: str, rows: Any) -> PushResult:
        view = self.view(view_name)
        table = _to_arrow(rows, what=f"rows pushed to '{view_name}'")
        given = list(table.column_names)
        needed = [*view.entities, view.timestamp, *view.features]
        optional = [view.created_timestamp] if view.created_timestamp else []
        missing = [c for c in needed if c not in given]
        extra = [c for c in given if c not in needed and c not in optional]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(repr(c) for c in missing))
            if extra:
                guesses = [did_you_mean(c, needed) for c in extra]
                parts.append(
                    "unknown "
                    + ", ".join(
                        repr(c) + (f" (did you mean '{g}'?)" if g else "")
                        for c, g in zip(extra, guesses, strict=True)
                    )
                )
            raise FeatureError(
                f"rows pushed to feature view '{view_name}' have the wrong columns: "
                + "; ".join(parts),
                view=view_name,
                hint="Push every key, the timestamp and every feature: " + ", ".join(needed) + ".",
            )
        if table.num_rows == 0:
            raise FeatureError(f"no rows were pushed to '{view_name}'", view=view_name)
        import duckdb

        ledger, store = self.ws.ledger, self.ws.store
        con = self.ws.engine.connect()
        scratch = store.new_scratch_file(".parquet")
        run_id = ledger.start_run(f"push:{view_name}", PUSH, params={"rows": table.num_rows})
        try:
            con.register("__pushed", table)
            columns = list(view.columns)
            casts = []
            for column in columns:
                kind = view.types[column]
                # an optional created time left out is NULL: the row counts as oldest
                value = f'"{column}"' if column in given else "NULL"
                casts.append(f'CAST({value} AS {kind}) AS "{column}"')
            _check_push_times(con, view, table)
            nulls = con.execute(
                "SELECT count(*) FROM __pushed WHERE "
                + " OR ".join(f'"{c}" IS NULL' for c in (*view.entities, view.timestamp))
            ).fetchall()[0][0]
            if nulls:
                raise FeatureError(
                    f"{nulls} pushed row(s) have no entity key or no timestamp",
                    view=view_name,
                    hint="Every row needs " + ", ".join((*view.entities, view.timestamp)) + ".",
                )
            if not view.created_timestamp:
                self._refuse_ambiguous_push(con, view)
            try:
                con.sql(f"SELECT {', '.join(casts)} FROM __pushed").write_parquet(
                    str(scratch), compression="zstd"
                )
            except duckdb.Error as exc:
                raise FeatureError(
                    f"rows pushed to '{view_name}' do not fit the view's types: "
                    f"{str(exc).splitlines()[0]}",
                    view=view_name,
                    hint="Types: " + ", ".join(f"{c} {view.types[c]}" for c in columns) + ".",
                ) from None
            stored = store.put_file(scratch, suffix=".parquet")
            path = store.local_path(stored.uri, stored.sha256)
            schema = {c: view.types[c] for c in columns}
            new = new_dataset(view_name, stored, path, schema)
            new.kind = PUSH
            written = 0
            if view.online:
                self.online.ensure(_online_layout(view))
                cursor = con.execute(latest_rows_sql(view, parquet_relation([path]), after_us=None))
                written = self.online.write(view_name, cursor.fetchall())
        except BaseException as exc:
            ledger.finish_run(
                run_id, status=FAILED, error=str(exc) if isinstance(exc, BoiteError) else repr(exc)
            )
            raise
        finally:
            con.close()
            scratch.unlink(missing_ok=True)
        (record,) = ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            produced=[new],
            resources=Resources(rows_in=table.num_rows, rows_out=new.rows),
            metrics={"rows": float(table.num_rows), "online_rows_written": float(written)},
        )
        self._readers.clear()
        return PushResult(view_name, table.num_rows, written, record)

    def _refuse_ambiguous_push(self, con: Any, view: FeatureView) -> None:
        """Without a created time, a second row at one entity and event time is ambiguous."""
        keys = [*view.entities, view.timestamp]
        cols = ", ".join(f'"{k}"' for k in keys)
        inside = con.execute(
            f"SELECT {cols} FROM __pushed GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        paths, _ = self.history(view)
        casts = ", ".join(f'CAST("{k}" AS {view.types[k]}) AS "{k}"' for k in keys)
        clash = (
            inside
            or con.execute(
                f"SELECT {cols} FROM (SELECT {casts} FROM __pushed) "
                f"SEMI JOIN (SELECT {cols} FROM {parquet_relation(paths)}) USING ({cols}) LIMIT 1"
            ).fetchall()
        )
        if clash:
            shown = ", ".join(f"{k}={v}" for k, v in zip(keys, clash[0], strict=True))
            raise FeatureError(
                f"feature view '{view.name}' already has a row at {shown} (or the push holds "
                "two); with no created timestamp, which value held then would be ambiguous",
                view=view.name,
                hint="Push a later event time, or declare 'created_timestamp' on the view so "
                "the latest created row wins.",
            )

    # --- the library -------------------------------------------------------

    def library(self) -> list[FeatureInfo]:
        ledger = self.ws.ledger
        current = ledger.latest_artifacts(DATASET)
        used: dict[str, set[str]] = {}
        for record in ledger.latest_artifacts(TRAINING_SET).values():
            for ref in (record.meta or {}).get("features", []):
                used.setdefault(ref, set()).add(f"training set {record.ref}")
        now = self.ws.clock.now()
        out = []
        for name, cfg in self.config.feature_views.items():
            record = current.get(cfg.source.lower())
            if record is None:
                features = cfg.features or []
                for f in features:
                    out.append(
                        FeatureInfo(
                            name,
                            f,
                            "?",
                            tuple(cfg.entities),
                            cfg.owner,
                            cfg.description,
                            None,
                            None,
                            None,
                            cfg.freshness,
                            sorted(used.get(f"{name}:{f}", [])),
                        )
                    )
                continue
            view = resolve_view(name, cfg, dict(record.schema or {}), dataset=record.ref)
            newest = self.newest_event(view, record)
            age = None
            if newest is not None:
                moment = newest if newest.tzinfo else newest.replace(tzinfo=now.tzinfo)
                age = now - moment
            for f in view.features:
                out.append(
                    FeatureInfo(
                        name,
                        f,
                        view.types[f],
                        view.entities,
                        view.owner,
                        view.description,
                        record.ref,
                        newest,
                        age,
                        view.freshness,
                        sorted(used.get(f"{name}:{f}", [])),
                    )
                )
        return out

    def newest_event(self, view: FeatureView, record: ArtifactRecord) -> datetime | None:
        values = [(record.stats or {}).get(view.timestamp, {}).get("max")]
        for push in self.ws.ledger.versions(PUSH, view.name):
            values.append((push.stats or {}).get(view.timestamp, {}).get("max"))
        times = [t for t in (_as_datetime(v) for v in values) if t is not None]
        if not times:
            return None
        naive = [t.replace(tzinfo=None) if t.tzinfo else t for t in times]
        return times[naive.index(max(naive))]


def history_hash(records: Sequence[ArtifactRecord]) -> str:
    return hashlib.sha256("".join(r.content_hash for r in records).encode()).hexdigest()


def records_ref(ledger: Any, view: FeatureView) -> str:
    return ledger.artifact(DATASET, view.source.lower()).ref


def _ref(record: ArtifactRecord | None) -> str | None:
    return None if record is None else record.ref


def _online_layout(view: FeatureView) -> Any:
    from boite.features.materialize import online_table

    return online_table(view)


def _infer_timestamp(types: dict[str, str]) -> str:
    times = [c for c, t in types.items() if t in TIME_TYPES + TZ_TYPES]
    if len(times) == 1:
        return times[0]
    raise FeatureError(
        "cannot tell which column of the labels holds each row's time: "
        + (f"candidates are {', '.join(times)}" if times else "none is a DATE or TIMESTAMP"),
        hint="Pass timestamp='column' (the time at which each label row's features are wanted).",
    )


def _to_arrow(data: Any, *, what: str) -> Any:
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, list):
        data = pd.DataFrame.from_records(data)
    if isinstance(data, pd.DataFrame):
        for column in data.columns:
            if data[column].dtype == object:
                _refuse_mixed_zones(data[column], str(column), what)
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise FeatureError(f"the {what} cannot be converted to a table: {exc}") from None
    raise FeatureError(
        f"the {what} must be a pandas DataFrame, a pyarrow Table, a list of dicts or a dataset "
        f"name; got {type(data).__name__}"
    )


def _refuse_mixed_zones(series: Any, column: str, what: str) -> None:
    kinds = set()
    for value in series.head(10_000):
        if isinstance(value, datetime):
            kinds.add(value.tzinfo is not None)
    if kinds == {True, False}:
        raise FeatureError(
            f"the column '{column}' of the {what} mixes timestamps with and without a time zone",
            hint="Make them all one kind: pd.to_datetime(df[col], utc=True) gives UTC everywhere.",
        )


def _check_push_times(con: Any, view: FeatureView, table: Any) -> None:
    import pyarrow as pa

    field_type = table.schema.field(view.timestamp).type
    zoned = pa.types.is_timestamp(field_type) and field_type.tz is not None
    if zoned != view.timezone_aware and pa.types.is_timestamp(field_type):
        raise FeatureError(
            f"pushed '{view.timestamp}' values {'have' if zoned else 'lack'} a time zone but "
            f"feature view '{view.name}' keeps {view.types[view.timestamp]}",
            view=view.name,
            hint="Convert them to match before pushing.",
        )
