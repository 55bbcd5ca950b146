"""Batch scoring: predictions for a file or dataset of entities, one chunk at a time.

The pipeline gives this module two callables, a point-in-time feature join and a
scorer, because both need code the serving layer must not import (the feature
store's history, the training code's preprocessing). What lives here is the
plumbing that keeps memory bounded by the chunk rather than the input (the input
streams from DuckDB and is cut into chunks of exactly ``chunk_rows``), the
prediction columns per task, the prediction log's table layout for batch rows
(built column by column, not row by row), and writers that never leave a
half-written file under the name a user asked for.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from boite.errors import UserError

PREDICTIONS = "predictions"  # the artifact kind of a batch's predictions
BATCH_ROLE = "batch"  # the prediction log's role for rows scored in a batch
ROW = "__boite_row"  # the input row number, carried through the join

INPUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".ndjson": "json"}
OUTPUT_FORMATS = {".parquet": "parquet", ".csv": "csv"}

# a joined chunk (input columns, ROW, features) -> the model's raw scores for it
Score = Callable[[pa.Table], Any]
# an input chunk (with ROW) -> the same rows, in the same order, with the features added
Join = Callable[[pa.Table], pa.Table]


@dataclass(frozen=True)
class BatchModel:
    """What batch scoring needs to know of one model version."""

    name: str
    version: int
    task: str
    inputs: tuple[str, ...]  # the model's features, in its order
    entity_keys: tuple[str, ...] = ()
    views: dict[str, tuple[str, ...]] = field(default_factory=dict)  # view -> features read
    classes: tuple[str, ...] | None = None  # multiclass

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def format_of(path: Path, formats: dict[str, str], *, what: str) -> str:
    """The format a file's suffix names, or an error listing the ones allowed."""
    kind = formats.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"the {what} '{path}' has the suffix '{path.suffix}', which boite cannot "
            f"{'read' if what == 'input' else 'write'}",
            hint="Use one of: " + ", ".join(formats) + ".",
        )
    return kind


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one fewer), whatever size the batches
    come in: DuckDB streams vectors of its own size, and chunks should not depend on it."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches()
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def prediction_columns(model: BatchModel, raw: Any) -> dict[str, pa.Array]:
    """The prediction columns of one chunk, named per task as the server names outputs."""
    task = model.task
    if task == "recommendation":
        return {"items": pa.array(raw, pa.list_(pa.string()))}
    if task == "multiclass":
        classes = list(model.classes or [])
        probabilities = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        label = pa.array(np.asarray(classes, dtype=object)[np.argmax(probabilities, axis=1)])
        fields = [pa.array(probabilities[:, i]) for i in range(len(classes))]
        return {
            "label": label.cast(pa.string()),
            "probabilities": pa.StructArray.from_arrays(fields, names=classes),
        }
    values = np.asarray(raw)
    if task == "clustering":
        return {"segment": pa.array(values.astype(np.int64))}
    if task == "binary_classification":
        return {"score": pa.array(values.astype(np.float64))}
    return {"prediction": pa.array(values.astype(np.float64))}


def _utc_times(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A date or timestamp column as UTC microseconds (a naive time is taken as UTC)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if pa.types.is_date(kind):
        array = array.cast(pa.timestamp("us"))
        kind = array.type
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return pc.assume_timezone(array.cast(pa.timestamp("us")), "UTC")
    return array.cast(pa.timestamp("us", tz="UTC"))


def log_table(
    model: BatchModel,
    joined: pa.Table,
    predictions: dict[str, pa.Array],
    *,
    request_id: str,
    time_column: str | None,
    now_us: int,
    latency_ms: float,
) -> pa.Table:
    """The rows of one chunk in the prediction log's layout (``predlog.to_table``).

    ``request_id`` is the score run's id and ``row`` the input row number, so a
    label can name a batch row exactly as it names a served one. ``time`` is the
    time the prediction speaks for (the row's timestamp or the as-of time), which
    is what a label arriving later is joined on; without one, the scoring time.
    """
    n = joined.num_rows
    if time_column is not None:
        times = _utc_times(joined.column(time_column))
    else:
        times = pa.array(np.full(n, now_us, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))
    columns: dict[str, Any] = {
        "request_id": pa.array(np.full(n, request_id, dtype=object), pa.string()),
        "time": times,
        "model": pa.array(np.full(n, model.name, dtype=object), pa.string()),
        "version": pa.array(np.full(n, model.version, dtype=np.int64)),
        "role": pa.array(np.full(n, BATCH_ROLE, dtype=object), pa.string()),
        "served": pa.array(np.ones(n, dtype=bool)),
        "row": joined.column(ROW).cast(pa.int32()),
    }
    for key in model.entity_keys:
        if key not in model.inputs:
            columns[key] = joined.column(key).cast(pa.string())
    for name in model.inputs:
        if name not in columns:
            columns[name] = joined.column(name)
    values = next(iter(predictions.values()))
    if model.task in ("multiclass", "recommendation"):
        columns["prediction"] = pa.nulls(n, pa.float64())
        columns["output"] = pa.array(_json_outputs(model, predictions), pa.string())
    else:
        columns["prediction"] = values.cast(pa.float64())
        columns["output"] = pa.nulls(n, pa.string())
    columns["missing_views"] = _missing_views(model, joined)
    columns["latency_ms"] = pa.array(np.full(n, latency_ms, dtype=np.float64))
    return pa.table(columns)


def _json_outputs(model: BatchModel, predictions: dict[str, pa.Array]) -> list[str]:
    # what the server logs for these tasks: the JSON answer of each row
    if model.task == "recommendation":
        return [orjson.dumps(items).decode() for items in predictions["items"].to_pylist()]
    labels = predictions["label"].to_pylist()
    probabilities = predictions["probabilities"].to_pylist()
    return [
        orjson.dumps({"label": label, "probabilities": p}).decode()
        for label, p in zip(labels, probabilities, strict=True)
    ]


def _missing_views(model: BatchModel, joined: pa.Table) -> pa.Array:
    """Per row, the views (comma-separated) of which no feature had a value in time."""
    out = pa.nulls(joined.num_rows, pa.string())
    for view, features in model.views.items():
        present = [f for f in features if f in joined.column_names]
        if not present:
            continue
        missing = pc.is_null(joined.column(present[0]))
        for feature in present[1:]:
            missing = pc.and_(missing, pc.is_null(joined.column(feature)))
        name = pa.scalar(view, pa.string())
        joined_name = pc.binary_join_element_wise(out, name, ",", null_handling="skip")
        out = pc.if_else(missing, joined_name, out)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _for_csv(table: pa.Table) -> pa.Table:
    """CSV has no nested values: lists and structs become JSON text."""
    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type) or pa.types.is_struct(f.type):
            text = [None if v is None else orjson.dumps(v).decode() for v in table[i].to_pylist()]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
    return table


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a Parquet dictionary: not floats, where the features and
    scores of a batch are mostly distinct values; trying a dictionary on each page
    before falling back to plain tripled the time to write a 1M-row log (and made
    it larger). zstd still compresses repeated floats."""
    return [
        f.name
        for f in schema
        if not pa.types.is_floating(f.type) and not pa.types.is_nested(f.type)
    ]


class TableFile:
    """A Parquet or CSV file written chunk by chunk under a temporary name next to
    its target, and renamed onto it only by :meth:`commit`: a run that fails leaves
    no partial file where the user looks for one (nor replaces an older one)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.format = fmt
        self.temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        self.rows = 0
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self.format == "csv":
            table = _for_csv(table)
        if self._writer is None:
            self._schema = table.schema
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(
                    self.temp,
                    table.schema,
                    compression="zstd",
                    use_dictionary=_dictionary_columns(table.schema),
                )
            else:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self.temp, table.schema)
        else:
            table = table.cast(self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> Path:
        """Make the file durable, then give it its name in one rename."""
        self.close()
        with open(self.temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.close()
        finally:
            self.temp.unlink(missing_ok=True)


@dataclass
class BatchStats:
    rows: int = 0
    chunks: int = 0
    join_s: float = 0.0
    score_s: float = 0.0
    rows_without_features: int = 0


def score_chunks(
    chunks: Iterable[pa.Table],
    model: BatchModel,
    *,
    join: Join | None,
    score: Score,
    outputs: Sequence[TableFile],
    log: TableFile | None,
    request_id: str,
    time_column: str | None,
    now_us: int,
    keep: Sequence[str],
    on_chunk: Callable[[int], None] | None = None,
) -> BatchStats:
    """Join, score and write each chunk: the predictions (the ``keep`` input columns
    and the prediction columns) to every output, the log rows to ``log``."""
    import time

    stats = BatchStats()
    for chunk in chunks:
        start = time.perf_counter()
        numbered = chunk.append_column(
            ROW, pa.array(np.arange(stats.rows, stats.rows + chunk.num_rows, dtype=np.int64))
        )
        joined = numbered if join is None else join(numbered)
        joined_at = time.perf_counter()
        raw = score(joined)
        predictions = prediction_columns(model, raw)
        scored_at = time.perf_counter()
        out = chunk.select(list(keep))
        for name, values in predictions.items():
            out = out.append_column(name, values)
        for target in outputs:
            target.write(out)
        if log is not None:
            latency = (scored_at - start) * 1000.0 / max(chunk.num_rows, 1)
            rows = log_table(
                model,
                joined,
                predictions,
                request_id=request_id,
                time_column=time_column,
                now_us=now_us,
                latency_ms=latency,
            )
            stats.rows_without_features += rows.num_rows - rows.column("missing_views").null_count
            log.write(rows)
        stats.rows += chunk.num_rows
        stats.chunks += 1
        stats.join_s += joined_at - start
        stats.score_s += scored_at - joined_at
        if on_chunk is not None:
            on_chunk(stats.rows)
    return stats
