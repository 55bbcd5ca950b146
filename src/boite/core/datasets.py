"""Datasets: immutable, content-hashed Parquet versions of a table, and how to read them.

Schema and column statistics come from the Parquet footer (min, max, nulls per
row group), which the writer computed anyway: describing a dataset costs no
extra scan of its data.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boite.core.artifacts import ArtifactStore, StoredFile
from boite.core.ledger import ArtifactRecord, Ledger, NewArtifact, RunRecord

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

DATASET = "dataset"
PARQUET = "parquet"


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def describe_parquet(path: Path, duckdb_types: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Row count and per-column statistics read from the Parquet footer."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    stats: dict[str, dict[str, Any]] = {
        name: {"type": duckdb_types.get(name), "nulls": 0, "min": None, "max": None}
        for name in duckdb_types
    }
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name = column.path_in_schema
            if name not in stats or column.statistics is None:
                continue
            s = column.statistics
            entry = stats[name]
            if s.null_count is not None:
                entry["nulls"] += s.null_count
            if s.has_min_max:
                lo, hi = s.min, s.max
                try:
                    entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
                    entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)
                except TypeError:
                    pass
    out = {name: {k: _json_value(v) for k, v in entry.items()} for name, entry in stats.items()}
    return meta.num_rows, out


def time_range(schema: dict[str, str], stats: dict[str, Any]) -> dict[str, Any]:
    """The span of the first date or timestamp column: the data's own time context."""
    for name, kind in schema.items():
        if kind.startswith(("DATE", "TIMESTAMP")):
            entry = stats.get(name, {})
            if entry.get("min") is not None:
                return {"time_column": name, "data_from": entry["min"], "data_to": entry["max"]}
    return {}


def new_dataset(
    name: str,
    stored: StoredFile,
    path: Path,
    schema: dict[str, str],
    *,
    as_of: dt.datetime | None = None,
    column_lineage: dict[str, list[tuple[str, str]]] | None = None,
    meta: dict[str, Any] | None = None,
) -> NewArtifact:
    rows, stats = describe_parquet(path, schema)
    context = time_range(schema, stats)
    if as_of is not None:
        context["as_of"] = as_of.isoformat()
    return NewArtifact(
        kind=DATASET,
        name=name,
        content_hash=stored.sha256,
        uri=stored.uri,
        format=PARQUET,
        schema=schema,
        stats=stats,
        rows=rows,
        bytes=stored.size,
        time_context=context,
        meta=meta,
        column_lineage=column_lineage or {},
    )


@dataclass(frozen=True)
class Dataset:
    """One version of a dataset; reads verify the file against its hash first."""

    record: ArtifactRecord
    store: ArtifactStore
    ledger: Ledger

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def schema(self) -> dict[str, str]:
        return dict(self.record.schema or {})

    @property
    def stats(self) -> dict[str, Any]:
        return dict(self.record.stats or {})

    @property
    def rows(self) -> int:
        return int(self.record.rows or 0)

    @property
    def content_hash(self) -> str:
        return self.record.content_hash

    @property
    def path(self) -> Path:
        """A local path to the verified Parquet file."""
        return self.store.local_path(
            self.record.uri, self.record.content_hash, what=f"dataset {self.ref}"
        )

    @property
    def run(self) -> RunRecord | None:
        return None if self.record.run_id is None else self.ledger.run(self.record.run_id)

    @property
    def inputs(self) -> list[ArtifactRecord]:
        return [] if self.record.run_id is None else self.ledger.inputs_of(self.record.run_id)

    @property
    def column_lineage(self) -> dict[str, list[tuple[str, str]]]:
        return self.ledger.column_lineage(self.record.id)

    def to_arrow(self) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.path)

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def to_duckdb(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
        import duckdb

        return (con or duckdb.connect()).read_parquet(str(self.path))

    def __repr__(self) -> str:
        kind = "Dataset" if self.record.kind == DATASET else self.record.kind
        return f"<{kind} {self.ref} rows={self.rows} columns={len(self.schema)}>"
