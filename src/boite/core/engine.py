"""The engine that runs SQL: DuckDB in process (Spark replaces it at scale).

Each step gets its own connection, so steps can run in parallel threads (DuckDB
releases the GIL while it works).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


def quote_ident(name: str) -> str:
    """A SQL identifier, quoted so any name (spaces, quotes, keywords) is safe."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class DuckDBEngine:
    """Opens configured in-memory DuckDB connections that spill to ``temp_dir``."""

    def __init__(self, *, temp_dir: Path, threads: int | None = None) -> None:
        self.temp_dir = temp_dir
        self.threads = threads

    def connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        self.temp_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | int | bool] = {"temp_directory": str(self.temp_dir)}
        if self.threads:
            config["threads"] = self.threads
        con = duckdb.connect(":memory:", config=config)
        return con
