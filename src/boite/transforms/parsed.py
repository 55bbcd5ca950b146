"""The result of reading a SQL transform, kept apart from the parser so that
planning from cache never imports sqlglot or DuckDB."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp


@dataclass(frozen=True)
class ParsedSQL:
    """The SQL of one transform, checked, with the tables it reads."""

    sql: str
    tables: tuple[str, ...]
    table_lines: dict[str, int] = field(hash=False)
    file: str = field(default="", compare=False)
    expression: exp.Query | None = field(default=None, compare=False, repr=False)
