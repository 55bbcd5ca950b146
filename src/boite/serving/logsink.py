"""Where the prediction log goes: Parquet partitions in the artifact store, each one
registered in the ledger with its lineage (the model version that made it)."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from boite.core.artifacts import ArtifactStore
from boite.core.datasets import new_dataset
from boite.core.ledger import SUCCEEDED, Ledger, Resources
from boite.serving.model import ServedModel
from boite.serving.predlog import PREDICTION_LOG


class LedgerSink:
    """Each flush of one model version: a file, and a ``log`` run that produced it."""

    def __init__(
        self, ledger: Ledger, store: ArtifactStore, *, env: str, session: str | None = None
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.env = env
        self.session = session
        self._lock = threading.Lock()  # one writer per process: partitions stay in order

    def write(self, model: ServedModel, table: pa.Table) -> None:
        with self._lock:
            scratch = self.store.new_scratch_file(".parquet")
            pq.write_table(table, scratch, compression="zstd")
            stored = self.store.put_file(scratch, suffix=".parquet")
            path = self.store.local_path(stored.uri, stored.sha256)
            schema = {f.name: _duck_type(f.type) for f in table.schema}
            roles = sorted(set(table.column("role").to_pylist()))
            new = new_dataset(
                model.name,
                stored,
                path,
                schema,
                meta={"model_version": model.ref, "env": self.env, "roles": roles},
            )
            new.kind = PREDICTION_LOG
            run_id = self.ledger.start_run(
                f"log:{model.name}",
                "log",
                params={"env": self.env, "model_version": model.ref, "session": self.session},
            )
            self.ledger.finish_run(
                run_id,
                status=SUCCEEDED,
                resources=Resources(rows_out=table.num_rows, bytes_out=stored.size),
                consumed=[model.artifact_id] if model.artifact_id else [],
                produced=[new],
            )


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
