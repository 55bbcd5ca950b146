"""Batch scoring and feedback of a project's models, on record in the ledger.

This lives in the pipeline because scoring needs the training code (the model's
preprocessing) and the feature store (each view's offline history); the serving
package holds the parts that need neither (:mod:`boite.serving.batch`,
:mod:`boite.serving.feedback`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from boite.core.datasets import DATASET, new_dataset
from boite.core.engine import quote_ident, quote_literal
from boite.core.ledger import FAILED, SUCCEEDED, ArtifactRecord, NewArtifact, Resources
from boite.core.metering import Meter
from boite.core.suggest import did_you_mean
from boite.errors import BoiteError, NotFoundError, RegistryError, UserError
from boite.features.pit import ROW as PIT_ROW
from boite.features.pit import (
    ViewInput,
    feature_columns,
    history_sql,
    point_in_time_sql,
)
from boite.features.views import TIME_TYPES, TZ_TYPES
from boite.registry.registry import ModelVersion
from boite.serving.batch import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    PREDICTIONS,
    ROW,
    BatchModel,
    TableFile,
    format_of,
    rechunk,
    score_chunks,
)
from boite.serving.predlog import PREDICTION_LOG

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from boite.pipeline.project import Project

DEFAULT_CHUNK_ROWS = 100_000
AS_OF = "as_of"  # the column --as-of adds to the input


def resolve_version(
    project: Project, model: str, *, version: int | None = None, alias: str | None = None
) -> ModelVersion:
    """``model@version``, or the version ``alias`` (production by default) points at."""
    registry = project.models.registry
    if version is not None:
        return registry.get(f"{model}@{version}")
    alias = alias or "production"
    registry.get(model)  # an unknown model: its own error, with the models there are
    found = registry.alias(model, alias)
    if found is None:
        aliases = registry.aliases(model).get(model, {})
        raise RegistryError(
            f"the model '{model}' has no {alias} version",
            model_version=model,
            hint=(
                "Its aliases: " + ", ".join(f"{a} -> @{v}" for a, v in sorted(aliases.items()))
                if aliases
                else "It has no alias yet"
            )
            + f". Promote one (`boite promote {model}@N --to {alias}`) or pass --version N.",
        )
    return found


@dataclass(frozen=True)
class BatchResult:
    model_version: str
    rows: int
    chunks: int
    seconds: float
    output: Path | None
    predictions: ArtifactRecord
    log: ArtifactRecord | None
    run_id: str
    join_s: float = 0.0
    score_s: float = 0.0
    rows_without_features: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


@dataclass
class _Scorer:
    """A registered version loaded for scoring frames: its model and how it is fed."""

    model: BatchModel
    score: Callable[[pa.Table], Any]
    needs: tuple[str, ...]  # input columns the model reads directly
    view_inputs: list[ViewInput] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)


def _load(project: Project, mv: ModelVersion) -> _Scorer:
    record = mv.record
    model_file, predictor = project.models.load(mv)
    task = model_file.task
    if model_file.preprocessing.get("kind") == "recommender":
        user = str(model_file.preprocessing["user"])
        k = int(model_file.preprocessing.get("k", 10))
        recommender = predictor

        def recommend(table: pa.Table) -> Any:
            return recommender.recommend(table.column(user).cast("string").to_pylist(), k)

        model = BatchModel(mv.name, mv.version, task, (user,), (user,))
        return _Scorer(model, recommend, (user,), consumed=[record.id])
    inputs = tuple(predictor.features)
    refs = [r for r in mv.meta.get("feature_refs", []) if ":" in str(r)]
    view_inputs: list[ViewInput] = []
    consumed = [record.id]
    keys: list[str] = []
    from_views: set[str] = set()
    if refs:
        store = project.features
        found, wanted = store._views_for(refs)
        for name, features in wanted.items():
            used = tuple(f for f in features if f in inputs)
            if not used:
                continue
            view = found[name]
            paths, records = store.history(view)
            store._check_unique(view, paths, records)
            view_inputs.append(ViewInput(view, used, tuple(paths)))
            consumed += [r.id for r in records]
            keys += [k for k in view.entities if k not in keys]
            from_views.update(used)
    classes = None if predictor.classes is None else tuple(str(c) for c in predictor.classes)
    model = BatchModel(
        mv.name,
        mv.version,
        task,
        inputs,
        tuple(keys),
        {i.view.name: i.features for i in view_inputs},
        classes,
    )

    def scores(table: pa.Table) -> Any:
        return predictor.scores(table.select(list(inputs)).to_pandas())

    needs = tuple(keys) + tuple(i for i in inputs if i not in from_views)
    return _Scorer(model, scores, needs, view_inputs, consumed)


def _input_relation(
    project: Project, source: str | Path, text_keys: tuple[str, ...] = ()
) -> tuple[str, ArtifactRecord | None]:
    """A DuckDB relation over the input (a file or a dataset of the project).

    A CSV's ``text_keys`` are read as text: ids such as '00001' would otherwise be
    sniffed as numbers, lose their zeros, and match no feature row."""
    path = Path(source)
    if path.is_file():
        kind = format_of(path, INPUT_FORMATS, what="input")
        literal = quote_literal(str(path.resolve()))
        if kind == "parquet":
            return f"read_parquet({literal})", None
        if kind == "csv":
            plain = f"read_csv({literal}, header = true)"
            con = project.engine.connect()
            try:
                present = [k for k in text_keys if k in _types(con, plain, "input")]
            finally:
                con.close()
            if not present:
                return plain, None
            types = ", ".join(f"{quote_literal(k)}: 'VARCHAR'" for k in present)
            return f"read_csv({literal}, header = true, types = {{{types}}})", None
        return f"read_json({literal}, format = 'newline_delimited')", None
    if path.suffix.lower() in INPUT_FORMATS or path.parent != Path(".") or path.exists():
        raise UserError(
            f"the input file '{source}' does not exist"
            + (" (it is a folder)" if path.exists() else ""),
            hint="Give a Parquet, CSV or JSON lines file, or the name of a dataset of the "
            "project (`boite show dataset NAME`).",
        )
    name, _, version = str(source).partition("@")
    try:
        record = project.ledger.artifact(DATASET, name, int(version) if version.isdigit() else None)
    except NotFoundError as exc:
        raise UserError(
            f"there is no input file or dataset named '{source}'",
            hint=(exc.hint + " " if exc.hint else "")
            + "Give a path to a .parquet, .csv or .jsonl file, or a dataset name.",
        ) from None
    local = project.store.local_path(record.uri, record.content_hash, what=f"dataset {record.ref}")
    return f"read_parquet({quote_literal(str(local))})", record


def _types(con: duckdb.DuckDBPyConnection, relation: str, what: str) -> dict[str, str]:
    import duckdb

    try:
        rel = con.sql(f"SELECT * FROM {relation} LIMIT 0")
    except duckdb.Error as exc:
        raise UserError(
            f"the {what} cannot be read: {str(exc).splitlines()[0]}",
            hint="Check that the file is a valid Parquet, CSV (with a header) or JSON lines file.",
        ) from None
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _parse_time(value: str | date | datetime, *, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise UserError(
            f"{what} '{value}' is not a date or time",
            hint="Write an ISO 8601 date or time: 1998-06-30 or 1998-06-30T23:59:59Z.",
        ) from None


def _time_expression(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    types: dict[str, str],
    column: str,
    zoned: bool,
    what: str,
) -> str:
    """SQL for ``column`` as a time comparable with the views; text is parsed, and the
    first value that is not a time is named."""
    kind = types[column]
    target = "TIMESTAMPTZ" if zoned else "TIMESTAMP"
    if kind in TIME_TYPES + TZ_TYPES:
        if (kind in TZ_TYPES) == zoned:
            return quote_ident(column)
        if zoned:  # a naive time, taken as UTC
            return f"timezone('UTC', CAST({quote_ident(column)} AS TIMESTAMP))"
        return f"CAST(timezone('UTC', {quote_ident(column)}) AS TIMESTAMP)"
    if kind != "VARCHAR":
        raise UserError(
            f"the {what} column '{column}' is {kind}; it must be a date or time",
            hint="Give dates or times (1998-06-30), or name another column with --timestamp.",
        )
    bad = con.execute(
        f"SELECT {quote_ident(column)}, row_number() OVER () FROM {relation} "
        f"QUALIFY {quote_ident(column)} IS NOT NULL "
        f"AND TRY_CAST({quote_ident(column)} AS {target}) IS NULL LIMIT 1"
    ).fetchall()
    if bad:
        raise UserError(
            f"the {what} column '{column}' holds '{bad[0][0]}' (row {bad[0][1]}), which is not a "
            "date or time",
            hint="Write ISO 8601 dates or times (1998-06-30, 1998-06-30T12:00:00Z).",
        )
    return f"CAST({quote_ident(column)} AS {target})"


def score_batch(
    project: Project,
    model: str,
    source: str | Path,
    *,
    output: str | Path | None = None,
    as_of: str | date | datetime | None = None,
    timestamp: str | None = None,
    version: int | None = None,
    alias: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    log: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchResult:
    """Score every row of ``source`` (a file or a dataset name) with one model version.

    Features of feature views are joined point in time: at ``timestamp`` (a column of
    the input) or at ``as_of`` (one time for every row). The predictions are the
    input's columns and the prediction columns; they go to ``output`` (Parquet or CSV)
    and are stored as a ``predictions`` artifact, and the rows go to the prediction
    log (role ``batch``), all produced by one ``score`` run.
    """
    if chunk_rows < 1:
        raise UserError(
            f"The 'chunk_rows' parameter must be at least 1. Got {chunk_rows} instead.",
            hint="--chunk-rows 100000 keeps about that many rows in memory at once.",
        )
    out_path = None if output is None else Path(output)
    out_format = None
    if out_path is not None:
        out_format = format_of(out_path, OUTPUT_FORMATS, what="output")
        if not out_path.parent.is_dir():
            raise UserError(
                f"the output folder '{out_path.parent}' does not exist",
                hint="Create it first, or write the predictions elsewhere.",
            )
    if as_of is not None and timestamp is not None:
        raise UserError(
            "give either --as-of (one time for every row) or --timestamp (a column), not both"
        )
    mv = resolve_version(project, model, version=version, alias=alias)
    scorer = _load(project, mv)
    text_keys = tuple(
        dict.fromkeys(
            k for i in scorer.view_inputs for k in i.view.entities if i.view.types[k] == "VARCHAR"
        )
    )
    relation, input_record = _input_relation(project, source, text_keys)
    con = project.engine.connect()
    cursor = con.cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        types = _types(con, relation, "input")
        missing = [c for c in scorer.needs if c not in types]
        if missing:
            guesses = [did_you_mean(c, types) for c in missing]
            raise UserError(
                f"the input '{source}' lacks the column{'s' if len(missing) > 1 else ''} "
                + ", ".join(
                    repr(c) + (f" (did you mean '{g}'?)" if g else "")
                    for c, g in zip(missing, guesses, strict=True)
                )
                + f" that {mv.ref} needs",
                hint="It needs: "
                + ", ".join(scorer.needs)
                + ". Its columns: "
                + ", ".join(types)
                + ".",
            )
        inputs = scorer.view_inputs
        clash = [f for i in inputs for f in i.features if f in types]
        if clash:
            raise UserError(
                f"the input '{source}' has column(s) {', '.join(repr(c) for c in clash)}, which "
                f"{mv.ref} takes from feature views, point in time",
                hint="Drop them from the input: the features are joined as of each row's time.",
            )
        time_column: str | None = None
        select = "*"
        if inputs:
            zoned = any(i.view.timezone_aware for i in inputs)
            if timestamp is not None:
                if timestamp not in types:
                    guess = did_you_mean(timestamp, types)
                    raise UserError(
                        f"the input '{source}' has no column '{timestamp}' (--timestamp)",
                        hint=(f"Did you mean '{guess}'? " if guess else "")
                        + "Columns: "
                        + ", ".join(types)
                        + ".",
                    )
                expr = _time_expression(con, relation, types, timestamp, zoned, "timestamp")
                select = f"* REPLACE ({expr} AS {quote_ident(timestamp)})"
                time_column = timestamp
            elif as_of is not None:
                moment = _parse_time(as_of, what="--as-of")
                if moment.tzinfo is not None:
                    moment = moment.astimezone(UTC)
                    moment = moment if zoned else moment.replace(tzinfo=None)
                elif zoned:
                    moment = moment.replace(tzinfo=UTC)
                if AS_OF in types:
                    raise UserError(
                        f"the input '{source}' already has a column '{AS_OF}', which --as-of "
                        "would add",
                        hint=f"Use --timestamp {AS_OF} to take each row's time from it, or "
                        "rename it.",
                    )
                kind = "TIMESTAMPTZ" if zoned else "TIMESTAMP"
                select = f"*, CAST({quote_literal(moment.isoformat())} AS {kind}) AS {AS_OF}"
                time_column = AS_OF
            else:
                times = [c for c, t in types.items() if t in TIME_TYPES + TZ_TYPES]
                raise UserError(
                    f"{mv.ref} reads the feature view(s) "
                    + ", ".join(i.view.name for i in inputs)
                    + ", so each row needs the time its features are wanted at",
                    hint="Pass --as-of DATE for every row, or --timestamp COLUMN"
                    + (f" (candidates: {', '.join(times)})" if times else "")
                    + ".",
                )
        elif as_of is not None:
            _parse_time(as_of, what="--as-of")  # a typo is still an error
        elif timestamp is not None and timestamp not in types:
            raise UserError(
                f"the input '{source}' has no column '{timestamp}' (--timestamp)",
                hint="Columns: " + ", ".join(types) + ".",
            )
        query = f"SELECT {select} FROM {relation}"
        keep_types = _types(con, f"({query})", "input")
        keep = list(keep_types)
        join = None
        if inputs:
            assert time_column is not None
            join = _HistoryJoin(cursor, keep_types, time_column, inputs)

        return _run_batch(
            project,
            mv,
            scorer,
            con,
            query,
            join=join,
            keep=keep,
            time_column=time_column,
            chunk_rows=chunk_rows,
            out_path=out_path,
            out_format=out_format,
            log=log,
            input_record=input_record,
            params={
                "model_version": mv.ref,
                "input": str(source),
                "as_of": None if as_of is None else str(as_of),
                "timestamp": timestamp,
                "chunk_rows": chunk_rows,
                "output": None if out_path is None else str(out_path),
            },
            on_chunk=on_chunk,
        )
    finally:
        cursor.close()
        con.close()


class _HistoryJoin:
    """The point-in-time join of each chunk, against the views' history loaded once.

    Joining every chunk with ``point_in_time_sql`` read, cast and sorted each view's
    whole history again per chunk (an ASOF join sorts both sides), so small chunks
    were mostly that. Here the first chunk loads each view once (de-duplicated,
    cast, only the features the model reads): its features stay in an Arrow table;
    its keys and times, with a row id and the time the next row of the same entity
    takes over (``__until``, null for the latest), go to a DuckDB temporary table
    (which DuckDB may spill to its temp directory). A row's feature row is then the
    one whose [time, until) holds the row's time: a plain hash join on the keys, no
    sort of the history per chunk. Its id (null if none, or older than the TTL)
    takes the features from the Arrow table. Since a view's (keys, time) are unique
    (checked, or de-duplicated by the created time) this is exactly the ASOF join of
    ``point_in_time_sql``, which also checks the input (keys, time types) first.
    """

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        label_types: dict[str, str],
        time_column: str,
        inputs: list[ViewInput],
    ) -> None:
        columns = {**label_types, PIT_ROW: "BIGINT"}
        point_in_time_sql("__chunk", columns, time_column, inputs)  # its errors, up front
        self.cursor = cursor
        self.labels = list(label_types)
        self.time_type = "TIMESTAMPTZ" if label_types[time_column] in TZ_TYPES else "TIMESTAMP"
        self.time_column = time_column
        self.inputs = inputs
        index = {id(item): i for i, item in enumerate(inputs)}
        self.names = [  # (view index, feature, output column)
            (index[id(item)], feature, name)
            for item, feature, name in feature_columns(inputs, self.labels, full_names=False)
        ]
        self.features: list[pa.Table] = []  # per view: the features of its history rows
        self.sql = ""

    def _load(self) -> None:
        import numpy as np
        import pyarrow as pa

        cursor, time_type = self.cursor, self.time_type
        l_ts = f"CAST(l.{quote_ident(self.time_column)} AS {time_type})"
        selects, joins = [], []
        for i, item in enumerate(self.inputs):
            view = item.view
            history = cursor.sql(history_sql(item, time_type)).to_arrow_table()
            narrow = [f"__k{j}" for j in range(len(view.entities))] + ["__t"]
            ids = pa.array(np.arange(history.num_rows, dtype=np.int64))
            table = f"__history{i}"
            cursor.register("__history", history.select(narrow).append_column("__hid", ids))
            try:
                by = ", ".join(narrow[:-1])
                cursor.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, "
                    f"lead(__t) OVER (PARTITION BY {by} ORDER BY __t) AS __until FROM __history"
                )
            finally:
                cursor.unregister("__history")
            self.features.append(history.select(list(item.features)).combine_chunks())
            del history
            hid = f"{table}.__hid"
            if view.ttl is not None:
                seconds = int(view.ttl.total_seconds())
                hid = (
                    f"CASE WHEN {table}.__t >= {l_ts} - INTERVAL '{seconds} seconds' THEN {hid} END"
                )
            selects.append(f"{hid} AS __hid{i}")
            on = " AND ".join(
                f"l.{quote_ident(k)} = {table}.__k{j}" for j, k in enumerate(view.entities)
            )
            joins.append(
                f"LEFT JOIN {table} ON {on} AND {table}.__t <= {l_ts} "
                f"AND ({table}.__until IS NULL OR {l_ts} < {table}.__until)"
            )
        self.sql = (
            "SELECT "
            + ", ".join(selects)
            + " FROM __chunk AS l "
            + " ".join(joins)
            + f" ORDER BY l.{quote_ident(ROW)}"
        )

    def __call__(self, chunk: pa.Table) -> pa.Table:
        """``chunk`` (the input's columns and ROW), in its order, with the features added."""
        if not self.sql:
            self._load()
        self.cursor.register("__chunk", chunk)
        try:
            ids = self.cursor.sql(self.sql).to_arrow_table()
        finally:
            self.cursor.unregister("__chunk")
        if ids.num_rows != chunk.num_rows:  # two feature rows at one (keys, time)
            raise RuntimeError(
                f"the point-in-time join gave {ids.num_rows} rows for {chunk.num_rows}"
            )
        joined = chunk.select(self.labels)
        taken = [
            features.take(ids.column(i).combine_chunks())
            for i, features in enumerate(self.features)
        ]
        for i, feature, name in self.names:
            joined = joined.append_column(name, taken[i].column(feature))
        return joined.append_column(ROW, chunk.column(ROW))


def _run_batch(
    project: Project,
    mv: ModelVersion,
    scorer: _Scorer,
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    join: Any,
    keep: list[str],
    time_column: str | None,
    chunk_rows: int,
    out_path: Path | None,
    out_format: str | None,
    log: bool,
    input_record: ArtifactRecord | None,
    params: dict[str, Any],
    on_chunk: Callable[[int], None] | None,
) -> BatchResult:
    import duckdb

    ledger, store = project.ledger, project.store
    run_id = ledger.start_run(f"score:{mv.name}", "score", params=params)
    meter = Meter()
    stored_copy = TableFile(store.new_scratch_file(".parquet"), "parquet")
    log_file = TableFile(store.new_scratch_file(".parquet"), "parquet") if log else None
    user_file = None if out_path is None else TableFile(out_path, out_format or "parquet")
    files = [f for f in (stored_copy, log_file, user_file) if f is not None]
    now_us = int(project.clock.now().timestamp() * 1_000_000)
    try:
        with meter:
            try:
                reader = con.sql(query).to_arrow_reader(min(chunk_rows, 1_000_000))
                stats = score_chunks(
                    rechunk(reader, chunk_rows),
                    scorer.model,
                    join=join,
                    score=scorer.score,
                    outputs=[f for f in (stored_copy, user_file) if f is not None],
                    log=log_file,
                    request_id=run_id,
                    time_column=time_column,
                    now_us=now_us,
                    keep=keep,
                    on_chunk=on_chunk,
                )
            except duckdb.Error as exc:
                raise UserError(
                    f"the input '{params['input']}' cannot be read: {str(exc).splitlines()[0]}",
                    hint="Check the file (a CSV needs a header row and one type per column).",
                ) from None
            if stats.rows == 0:
                raise UserError(
                    f"the input '{params['input']}' has no rows", hint="Nothing to score."
                )
            stored_copy.commit()
            produced = [
                stored_parquet(
                    project, stored_copy.path, mv.name, PREDICTIONS, {**params, "run": run_id}
                )
            ]
            if log_file is not None:
                log_file.commit()
                meta = {"model_version": mv.ref, "env": "batch", "roles": ["batch"], "run": run_id}
                produced.append(
                    stored_parquet(project, log_file.path, mv.name, PREDICTION_LOG, meta)
                )
            if user_file is not None:
                user_file.commit()
    except BaseException as exc:
        for f in files:
            f.abort()
        ledger.finish_run(
            run_id,
            status=FAILED,
            error=str(exc) if isinstance(exc, BoiteError) else repr(exc),
            resources=Resources(wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s),
        )
        raise
    consumed = [*scorer.consumed, *([input_record.id] if input_record else [])]
    records = ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        resources=Resources(
            wall_s=meter.usage.wall_s,
            cpu_s=meter.usage.cpu_s,
            peak_rss_bytes=meter.usage.peak_rss_bytes,
            rows_in=stats.rows,
            rows_out=stats.rows,
            bytes_out=produced[0].bytes,
        ),
        consumed=consumed,
        produced=produced,
        metrics={
            "rows": float(stats.rows),
            "chunks": float(stats.chunks),
            "rows_per_second": stats.rows / meter.usage.wall_s if meter.usage.wall_s else 0.0,
            "rows_without_features": float(stats.rows_without_features),
        },
    )
    return BatchResult(
        mv.ref,
        stats.rows,
        stats.chunks,
        meter.usage.wall_s,
        out_path,
        records[0],
        records[1] if len(records) > 1 else None,
        run_id,
        stats.join_s,
        stats.score_s,
        stats.rows_without_features,
    )


def stored_parquet(
    project: Project, scratch: Path, name: str, kind: str, meta: dict[str, Any]
) -> NewArtifact:
    """A finished Parquet file moved into the artifact store under its hash, described as
    a ``kind`` artifact named ``name`` (schema as DuckDB reads it, footer statistics)."""
    store = project.store
    stored = store.put_file(scratch, suffix=".parquet")
    path = store.local_path(stored.uri, stored.sha256)
    con = project.engine.connect()
    try:
        rel = con.sql(f"SELECT * FROM read_parquet({quote_literal(str(path))}) LIMIT 0")
        schema = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    finally:
        con.close()
    new = new_dataset(name, stored, path, schema, meta=meta)
    new.kind = kind
    return new


def booster_matrix(project: Project, mv: ModelVersion, frame: Any) -> tuple[Any, np.ndarray]:
    """(the fitted estimator, the prepared matrix of ``frame``): to time bare predict."""
    predictor = project.models.predictor(mv)
    return predictor.model, predictor.preprocessor.transform(frame)


# --- feedback ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveMetrics:
    """A version's metrics in one role (champion, challenger, shadow, batch) on the
    predictions that labels matched."""

    version: str
    role: str
    rows: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class FeedbackSummary:
    model: str
    rows: int  # label rows given
    duplicates: int  # dropped: a later label for the same prediction won
    matched_by_id: int  # label rows that matched a logged request row
    matched_by_entity: int  # label rows that matched an entity's prediction in time
    unmatched: int
    live: list[LiveMetrics]
    feedback: ArtifactRecord
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what an API answers)."""
        return {
            "model": self.model,
            "rows": self.rows,
            "duplicates": self.duplicates,
            "matched_by_id": self.matched_by_id,
            "matched_by_entity": self.matched_by_entity,
            "unmatched": self.unmatched,
            "feedback": self.feedback.ref,
            "run_id": self.run_id,
            "live": [
                {"version": m.version, "role": m.role, "rows": m.rows, "metrics": m.metrics}
                for m in self.live
            ],
        }


def _model_keys(project: Project, mv: ModelVersion) -> tuple[str, ...]:
    """The entity keys a label may name the model's predictions by."""
    meta = mv.meta
    if meta.get("task") == "recommendation":
        return (str(meta["features"][0]),)
    refs = [r for r in meta.get("feature_refs", []) if ":" in str(r)]
    if not refs:
        return ()
    found, wanted = project.features._views_for(refs)
    keys: list[str] = []
    for view in wanted:
        keys += [k for k in found[view].entities if k not in keys]
    return tuple(keys)


def log_partitions(
    project: Project, model: str, *, wait_s: float = 3.0
) -> tuple[list[ArtifactRecord], list[Path]]:
    """The prediction log of ``model`` as registered partitions and their local files:
    running servers that hold rows of it are asked to publish them first (waiting at most
    ``wait_s``), and what a stopped server left unpublished is published."""
    from boite.pipeline.compaction import current_partitions
    from boite.serving.logsink import LOG_DIR, recover_segments, request_publish

    directory = project.state_dir / LOG_DIR
    if wait_s > 0:
        request_publish(directory, wait_s=wait_s)
    recover_segments(project.ledger, project.store, directory)
    records = current_partitions(project, model)
    store = project.store
    paths = [
        store.local_path(r.uri, r.content_hash, what=f"prediction log {r.ref}") for r in records
    ]
    return records, paths


def record_feedback(
    project: Project,
    model: str,
    labels: Any,
    *,
    label_column: str | None = None,
    timestamp: str | None = None,
    publish_wait_s: float = 3.0,
) -> FeedbackSummary:
    """Join labels (a file, a list of dicts, a frame) to ``model``'s prediction log, store
    them as a ``feedback`` artifact (lineage: the log partitions they matched), and say
    how many matched and how each version did on them, by role. Running servers are
    asked to publish their log first (waiting at most ``publish_wait_s``).

    This is what an API endpoint calls with the request's body (a list of dicts).
    """
    from boite.serving.feedback import FEEDBACK, read_labels

    latest = project.models.registry.get(model)
    label_column = label_column or latest.meta.get("label")
    if not label_column:
        raise UserError(
            f"the model '{model}' has no label column on record",
            hint="Name the column of the labels with --label-column.",
        )
    keys = _model_keys(project, latest)
    where = "given" if isinstance(labels, list) else f"'{labels}'"
    table = read_labels(labels, text_columns=keys)
    records, paths = log_partitions(project, model, wait_s=publish_wait_s)
    if not records:
        raise UserError(
            f"the model '{model}' has no prediction log yet, so there is nothing to join labels to",
            hint="Serve it (`boite serve`) or score a batch (`boite predict`) first.",
        )
    con = project.engine.connect()
    run_id: str | None = None
    meter = Meter()
    try:
        with meter:
            con.execute("SET TimeZone = 'UTC'")
            matches, normal = _match(con, table, paths, keys, label_column, timestamp, where)
            con.register("__matches", matches)
            counts = dict(
                con.execute(
                    "SELECT matched_by, count(DISTINCT __label_row) FROM __matches GROUP BY ALL"
                ).fetchall()
            )
            by_id, by_entity = counts.get("request_id", 0), counts.get("entity", 0)
            unmatched = normal.table.num_rows - by_id - by_entity
            if by_id + by_entity == 0:
                raise UserError(
                    f"none of the {normal.table.num_rows} label(s) {where} matches a prediction "
                    f"of '{model}' in its log ({len(records)} partition(s))",
                    hint="Check the request ids (as the server answered them) or the entity "
                    "keys and times: a label joins the latest prediction at or before its time.",
                )
            used = sorted(
                {int(p) for (p,) in con.execute("SELECT DISTINCT __part FROM __matches").fetchall()}
            )
            live = _live_metrics(con, latest.meta.get("task", ""), model)
            run_id = project.ledger.start_run(
                f"feedback:{model}",
                FEEDBACK,
                params={"label_column": label_column, "timestamp": timestamp, "keys": list(keys)},
            )
            scratch = project.store.new_scratch_file(".parquet")
            import pyarrow.parquet as pq

            pq.write_table(normal.table.drop(["__label_row"]), scratch, compression="zstd")
            summary_meta = {
                "label_column": label_column,
                "rows": normal.rows_given,
                "duplicates": normal.duplicates,
                "matched_by_id": by_id,
                "matched_by_entity": by_entity,
                "unmatched": unmatched,
                "live": [m.__dict__ for m in live],
            }
            new = stored_parquet(
                project, scratch, latest.name, FEEDBACK, {**summary_meta, "run": run_id}
            )
    except BaseException as exc:
        if run_id is not None:
            project.ledger.finish_run(
                run_id,
                status=FAILED,
                error=str(exc) if isinstance(exc, BoiteError) else repr(exc),
            )
        raise
    finally:
        con.close()
    (record,) = project.ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        resources=Resources(
            wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s, rows_in=normal.rows_given
        ),
        consumed=[records[i].id for i in used],
        produced=[new],
        metrics={
            "rows": float(normal.rows_given),
            "matched_by_id": float(by_id),
            "matched_by_entity": float(by_entity),
            "unmatched": float(unmatched),
        },
    )
    return FeedbackSummary(
        model,
        normal.rows_given,
        normal.duplicates,
        by_id,
        by_entity,
        unmatched,
        live,
        record,
        run_id,
    )


def _match(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    paths: list[Path],
    keys: tuple[str, ...],
    label_column: str,
    timestamp: str | None,
    where: str,
    *,
    columns: str = 'g.request_id, g."row", g.time, g.version, g.role, g.prediction, g.output',
) -> tuple[pa.Table, Any]:
    from boite.serving.feedback import match_sql, normalize

    normal = normalize(
        con, table, label_column=label_column, keys=keys, timestamp=timestamp, where=where
    )
    con.register("__labels", normal.table)
    try:
        matches = con.sql(match_sql(paths, keys, columns=columns)).to_arrow_table()
    finally:
        con.unregister("__labels")
    return matches, normal


def _live_metrics(con: duckdb.DuckDBPyConnection, task: str, model: str) -> list[LiveMetrics]:
    """Each version's metrics, by role, on the matched rows in ``__matches``."""
    from boite.training.metrics import task_metrics

    out = []
    groups = con.execute(
        "SELECT DISTINCT version, role FROM __matches ORDER BY version, role"
    ).fetchall()
    for version, role in groups:
        rows = con.execute(
            "SELECT prediction, output ->> '$.label' AS predicted, CAST(label AS VARCHAR), "
            "TRY_CAST(label AS DOUBLE) FROM __matches WHERE version = ? AND role = ?",
            [version, role],
        ).fetchall()
        metrics: dict[str, float] = {}
        if task in ("binary_classification", "regression"):
            pairs = [(p, y) for p, _, _, y in rows if p is not None and y is not None]
            if pairs:
                scores = np.array([p for p, _ in pairs], dtype=np.float64)
                y = np.array([v for _, v in pairs], dtype=np.float64)
                if task == "regression" or set(np.unique(y)) <= {0.0, 1.0}:
                    metrics = task_metrics(
                        task, y.astype(int) if task != "regression" else y, scores
                    )
        elif task == "multiclass":
            hits = [d == t for _, d, t, _ in rows if d is not None and t is not None]
            if hits:
                metrics = {"accuracy": float(np.mean(hits)), "rows": float(len(hits))}
        out.append(
            LiveMetrics(
                f"{model}@{version}",
                str(role),
                len(rows),
                {k: float(v) for k, v in metrics.items() if np.isfinite(v)},
            )
        )
    return out


def joined(project: Project, model: str, *, publish_wait_s: float = 3.0) -> pa.Table:
    """The prediction log of ``model`` joined with every label it has received: one row
    per (label, prediction), with the log's columns, ``label``, ``label_time`` and
    ``matched_by``. For monitoring (performance on live traffic, by version and role).
    Running servers are asked to publish first (waiting at most ``publish_wait_s``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from boite.serving.feedback import FEEDBACK, match_sql

    latest = project.models.registry.get(model)
    keys = _model_keys(project, latest)
    records, paths = log_partitions(project, model, wait_s=publish_wait_s)
    feedback = project.ledger.versions(FEEDBACK, model)
    if not records or not feedback:
        return pa.table({})
    store = project.store
    tables = [
        pq.read_table(store.local_path(r.uri, r.content_hash, what=f"feedback {r.ref}"))
        for r in feedback
    ]
    labels = pa.concat_tables(tables, promote_options="permissive")
    labels = labels.append_column(
        "__label_row", pa.array(np.arange(labels.num_rows, dtype=np.int64))
    )
    con = project.engine.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__labels", labels)
        sql = match_sql(paths, keys, columns="g.* EXCLUDE (filename, __part)")
        result = con.sql(f"SELECT * EXCLUDE (__label_row, __part) FROM ({sql})")
        return result.to_arrow_table()
    finally:
        con.close()
