"""The ledger's tables, as SQLAlchemy Core metadata (the schema at the newest migration).

Portable types only: the same tables run on SQLite and PostgreSQL. Migrations in
``boite/core/migrations`` create them; a test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Bump together with a new file in migrations/versions; a test checks they agree.
SCHEMA_REVISION = "0003"

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("step", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("code_fingerprint", String(64)),
    Column("fingerprint", String(64)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("wall_s", Float),
    Column("cpu_s", Float),
    Column("peak_rss_bytes", BigInteger),
    Column("bytes_in", BigInteger),
    Column("bytes_out", BigInteger),
    Column("rows_in", BigInteger),
    Column("rows_out", BigInteger),
    Column("error", Text),
    Column("pid", Integer),
    Column("host", String(255)),
    Column("user", String(255)),
    Index("ix_runs_step_started", "step", "started_at"),
    Index("ix_runs_status", "status"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("uri", Text, nullable=False),
    Column("format", String(32), nullable=False),
    Column("schema", JSON),
    Column("stats", JSON),
    Column("rows", BigInteger),
    Column("bytes", BigInteger),
    Column("time_context", JSON),
    Column("meta", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    UniqueConstraint("kind", "name", "version", name="uq_artifacts_kind_name_version"),
    Index("ix_artifacts_hash", "content_hash"),
)

edges = Table(
    "edges",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("artifact_id", String(32), ForeignKey("artifacts.id"), primary_key=True),
    # 'consumed' or 'produced'
    Column("direction", String(16), primary_key=True),
    Index("ix_edges_artifact", "artifact_id"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", Integer),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_metrics_run_key", "run_id", "key"),
)

tags = Table(
    "tags",
    metadata,
    # 'run' or 'artifact'
    Column("entity_type", String(16), primary_key=True),
    Column("entity_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

# Added in revision 0002: which input columns each output column derives from.
column_lineage = Table(
    "column_lineage",
    metadata,
    Column("artifact_id", String(32), ForeignKey("artifacts.id"), primary_key=True),
    Column("column", String(255), primary_key=True),
    Column("source_table", String(255), primary_key=True),
    Column("source_column", String(255), primary_key=True),
)

# Added in revision 0003: where each alias points now, and every move.
aliases = Table(
    "aliases",
    metadata,
    Column("model", String(255), primary_key=True),
    Column("alias", String(32), primary_key=True),
    Column("artifact_id", String(32), ForeignKey("artifacts.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(255), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("version", Integer),
    Column("previous_version", Integer),
    Column("actor", String(255), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("details", JSON),
    Index("ix_alias_events_model_at", "model", "at"),
)
