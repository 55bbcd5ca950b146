"""Read a source, as declared in ``boite.yaml``, into one Parquet file.

All data work runs in DuckDB: files are scanned by ``read_csv``, ``read_parquet``
and ``read_json`` and streamed to Parquet by ``COPY``; databases are attached
read-only (DuckDB files, and SQLite when DuckDB's sqlite extension is installed)
or read through SQLAlchemy in chunks. The output is byte-for-byte the same for
the same input, so the content hash of a snapshot tells whether a source
changed.

DuckDB's errors are turned into :class:`~boite.errors.SourceError` naming the
source, the file (relative to the project root), the line, what was expected
and found, and what to do. The messages this relies on (DuckDB 1.1 to 2.0)::

    CSV Error on Line: 40001                       <- 1-based line of the file
    Original Line: 7,8
    Expected Number of Columns: 3 Found: 2         <- a ragged row
    Error when converting column "a". Could not convert string "abc" to 'INTEGER'
      file = /abs/path/to/file.csv                 <- the path as it was passed
    Error when sniffing file "/abs/path.csv".      <- no line: found by a second scan
    Schema mismatch between globbed files.
    Malformed JSON in file "/abs/f.jsonl", at byte 38 in line 40002: unexpected character.
    JSON transform error in file "/abs/f.jsonl", in line 40001: Failed to cast value ...
    No magic bytes found at end of file '/abs/f.parquet'
    Type with name INTEGR does not exist!\\nDid you mean "main.INTEGER"?
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import duckdb

from boite.core.config import SourceConfig
from boite.core.suggest import did_you_mean
from boite.errors import SourceError
from boite.sources.files import (
    InputFile,
    _display_path,
    _inside,
    _listing,
    _no_match,
    resolve_files,
)

__all__ = ["InputFile", "SourceSnapshot", "read_source", "resolve_files"]

DB_CHUNK_ROWS = 100_000

_COMPRESSION_SUFFIXES = (".gz", ".zst")
_FORMAT_OF_SUFFIX = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_GLOB_CHARS = frozenset("*?[")
# A byte that does not occur in text files: reading with it as the delimiter
# (and no quoting) gives each line whole, as one value.
_NO_DELIMITER = "\x01"
# DuckDB accepts these as column types; anything else in a type would be SQL.
_TYPE_TEXT = re.compile(r"^[A-Za-z][A-Za-z0-9_ ,()\[\]]*$")


@dataclass(frozen=True)
class SourceSnapshot:
    """What :func:`read_source` read and wrote."""

    rows: int
    bytes_in: int
    files: list[InputFile]
    origin: str


def read_source(
    con: duckdb.DuckDBPyConnection,
    name: str,
    config: SourceConfig,
    root: Path,
    out_path: Path,
    files: list[InputFile] | None = None,
) -> SourceSnapshot:
    """Read source ``name`` and write it to ``out_path`` as one Parquet file (zstd).

    ``files`` is what :func:`resolve_files` returned, when the caller already
    has it. ``out_path`` appears only once it is complete; every temporary file
    is removed, on success and on error.
    """
    root = root.resolve()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Temporaries live next to out_path: same disk, so the final rename is atomic.
    work = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        part = work / "out.parquet"
        with _insertion_order(con):
            if config.url is not None:
                reader = _DatabaseReader(con, name, config, root, work)
                rows = reader.copy_to(part)
                snapshot = SourceSnapshot(rows=rows, bytes_in=0, files=[], origin=reader.origin)
                if rows == 0:
                    raise SourceError(
                        f"it has no rows: {reader.what} is empty",
                        source=name,
                        hint="A source must hold data; check the table, or the query's WHERE.",
                    )
            else:
                if files is None:
                    files = resolve_files(name, config, root)
                rows = _FileReader(con, name, config, files, work).copy_to(part)
                snapshot = SourceSnapshot(
                    rows=rows,
                    bytes_in=sum(f.size for f in files),
                    files=list(files),
                    origin=", ".join(config.paths),
                )
                if rows == 0:
                    raise SourceError(
                        "it has no rows (read " + _listing([f.relpath for f in files], root) + ")",
                        source=name,
                        hint="Check that the files hold data: with 'header: true' the first line "
                        "holds the column names and the rows follow it.",
                    )
        os.replace(part, out_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return snapshot


@contextmanager
def _insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    # Row order, and with it the bytes of the Parquet file, must not depend on
    # thread timing; the caller's setting is put back afterwards.
    (before,) = _one(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if before else 'false'}")


def _copy(con: duckdb.DuckDBPyConnection, select: str, out: Path) -> int:
    (rows,) = _one(con, f"COPY ({select}) TO {_lit(str(out))} (FORMAT parquet, COMPRESSION zstd)")
    return int(rows)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _FileReader:
    """Reads the files of one source; one instance per read."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        config: SourceConfig,
        files: list[InputFile],
        work: Path,
    ) -> None:
        self.con = con
        self.name = name
        self.config = config
        self.files = files
        self.work = work
        # What DuckDB is given to scan (a normalised copy for whitespace files),
        # by the path string DuckDB repeats in its messages.
        self.scanned: dict[str, InputFile] = {str(f.path): f for f in files}

    def copy_to(self, out: Path) -> int:
        if not self.files:
            raise SourceError(
                "the source lists no files", source=self.name, hint="Set 'path' to a file or glob."
            )
        fmt = self._format()
        _check_types(self.con, self.name, self.config.columns or {})
        if fmt == "csv":
            select = self._csv()
        elif fmt == "parquet":
            select = self._other("parquet")
        else:
            select = self._other("json")
        try:
            return _copy(self.con, select, out)
        except duckdb.Error as exc:
            raise self._error(exc, fmt) from None

    # -- format ---------------------------------------------------------------

    def _format(self) -> str:
        fmt: str
        if self.config.format is not None:
            fmt = self.config.format
        else:
            found = {f.relpath: _infer_format(f.path) for f in self.files}
            unknown = [path for path, fmt in found.items() if fmt is None]
            if unknown:
                raise SourceError(
                    "cannot tell the format of the file from its name",
                    source=self.name,
                    file=unknown[0],
                    hint="Name it .csv, .tsv, .txt, .parquet, .pq, .json, .jsonl or .ndjson "
                    "(optionally with .gz or .zst), or set 'format: csv', 'parquet' or 'json' "
                    "on the source.",
                )
            kinds = sorted({fmt for fmt in found.values() if fmt is not None})
            if len(kinds) > 1:
                example = {fmt: path for path, fmt in found.items()}
                raise SourceError(
                    "the files are of different formats: "
                    + ", ".join(f"{example[k]} is {k}" for k in kinds),
                    source=self.name,
                    hint="A source reads files of one format; declare one source per format.",
                )
            fmt = kinds[0]
        if fmt == "parquet":
            for f in self.files:
                if f.path.name.endswith(_COMPRESSION_SUFFIXES):
                    raise SourceError(
                        "a Parquet file cannot be read through .gz or .zst compression",
                        source=self.name,
                        file=f.relpath,
                        hint="Parquet compresses its columns itself; decompress the file.",
                    )
        return fmt

    # -- csv ------------------------------------------------------------------

    def _csv(self) -> str:
        config = self.config
        whitespace = config.delimiter == "whitespace"
        if whitespace:
            delimiter = "\t"
            self.scanned = self._normalise_whitespace()
        elif config.delimiter is not None:
            delimiter = config.delimiter
        elif all(_plain_suffix(f.path) == ".tsv" for f in self.files):
            delimiter = "\t"
        else:
            # A fixed default rather than DuckDB's sniffing: a sniffer faced
            # with a ragged row picks another delimiter and reads one column
            # silently; with a fixed one the ragged row is an error with its line.
            delimiter = ","
        self.csv_options = {
            "header": "true" if config.header else "false",
            "delim": _lit(delimiter),
            # DuckDB's sniffer may otherwise decide that the first lines are a
            # preamble to skip, or that '#' starts a comment, and drop rows silently.
            "skip": "0",
            "comment": "''",
            "strict_mode": "true",
            "null_padding": "false",
            "filename": "false",
        }
        if whitespace:
            # Quotes mean nothing in whitespace-separated files (like pandas' sep=r"\s+"
            # with quoting off): a value is whatever lies between the blanks.
            self.csv_options |= {"quote": "''", "escape": "''"}
        paths = list(self.scanned)
        columns = self._schemas(
            [(path, self._csv_scan([path], types=False)) for path in paths], "csv"
        )
        if config.delimiter is None and len(columns) == 1 and config.header:
            self._guess_delimiter(columns[0])
        self._check_columns(columns)
        return f"SELECT * FROM {self._csv_scan(paths, types=True)}"

    def _csv_scan(self, paths: list[str], *, types: bool, extra: str = "") -> str:
        options = dict(self.csv_options)
        if types and self.config.columns:
            options["types"] = (
                "{"
                + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in self.config.columns.items())
                + "}"
            )
        if len(paths) > 1 and not getattr(self, "same_layout", False):
            # Files are checked to have the same columns first (_schemas); by name
            # lets their order differ and each file's types widen to a common one.
            options["union_by_name"] = "true"
        listed = ", ".join(_lit(p) for p in paths)
        args = ", ".join(f"{k}={v}" for k, v in options.items())
        return f"read_csv([{listed}], {args}{extra})"

    def _normalise_whitespace(self) -> dict[str, InputFile]:
        # DuckDB has no regular-expression delimiter: read each line whole,
        # collapse runs of blanks into one tab and trim them (and a CR) at the
        # ends, write that as a temporary tab-separated file with as many lines
        # as the original (blank lines stay blank), so DuckDB's line numbers
        # still point into the original file.
        scanned: dict[str, InputFile] = {}
        for index, f in enumerate(self.files):
            out = self.work / f"whitespace-{index}.tsv"
            lines = (
                f"read_csv([{_lit(str(f.path))}], columns={{'line': 'VARCHAR'}}, "
                f"delim={_lit(_NO_DELIMITER)}, quote='', escape='', header=false, "
                "auto_detect=false, strict_mode=false, filename=false)"
            )
            select = f"SELECT regexp_replace(trim(line, ' \t\r'), '[ \t]+', '\t', 'g') FROM {lines}"
            try:
                self.con.execute(
                    f"COPY ({select}) TO {_lit(str(out))} "
                    f"(FORMAT csv, HEADER false, QUOTE '', DELIMITER {_lit(_NO_DELIMITER)})"
                )
            except duckdb.Error as exc:
                raise SourceError(
                    f"cannot read the file as text: {_first_line(exc)}",
                    source=self.name,
                    file=f.relpath,
                    hint="A whitespace-delimited source must be a text file "
                    "(optionally .gz or .zst).",
                ) from None
            scanned[str(out)] = f
        return scanned

    def _guess_delimiter(self, column: str) -> None:
        for char, word in ((";", "';'"), ("\t", "'\\t'"), ("|", "'|'")):
            if char in column:
                raise SourceError(
                    f"the file reads as a single column named {column[:60]!r}: it looks "
                    f"delimited by {word}, not by commas",
                    source=self.name,
                    file=self.files[0].relpath,
                    hint=f"Set delimiter: {word} on the source.",
                )

    # -- parquet and json lines ----------------------------------------------

    def _other(self, fmt: str) -> str:
        paths = list(self.scanned)
        columns = self._schemas([(p, self._scan(fmt, [p])) for p in paths], fmt)
        self._check_columns(columns)
        scan = self._scan(fmt, paths)
        overrides = self.config.columns or {}
        if not overrides:
            return f"SELECT * FROM {scan}"
        # read_parquet has no types= and read_json's columns= drops detection
        # for the others: cast the declared columns in place instead.
        casts = ", ".join(f"CAST({_ident(k)} AS {v}) AS {_ident(k)}" for k, v in overrides.items())
        return f"SELECT * REPLACE ({casts}) FROM {scan}"

    def _scan(self, fmt: str, paths: list[str]) -> str:
        listed = ", ".join(_lit(p) for p in paths)
        if fmt == "parquet":
            return f"read_parquet([{listed}], union_by_name=true)"
        union = ", union_by_name=true" if len(paths) > 1 else ""
        return f"read_json([{listed}], format='newline_delimited'{union})"

    # -- schemas --------------------------------------------------------------

    def _schemas(self, scans: list[tuple[str, str]], fmt: str) -> list[str]:
        """The column names of the first file, after checking that all files have them."""
        first: tuple[InputFile, list[str]] | None = None
        layouts: set[tuple[tuple[str, str], ...]] = set()
        for path, scan in scans:
            try:
                described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            except duckdb.Error as exc:
                raise self._error(exc, fmt, fallback=path) from None
            names = [row[0] for row in described]
            layouts.add(tuple((row[0], str(row[1])) for row in described))
            current = self.scanned[path]
            if first is None:
                first = (current, names)
                continue
            base, base_names = first
            missing = [c for c in base_names if c not in names]
            extra = [c for c in names if c not in base_names]
            if missing or extra:
                column, has, lacks = (
                    (missing[0], base, current) if missing else (extra[0], current, base)
                )
                raise SourceError(
                    f"the files have different columns: column '{column}' is in "
                    f"{has.relpath} but not in {lacks.relpath}",
                    source=self.name,
                    hint=f"{base.relpath} has: {', '.join(base_names)}; {current.relpath} has: "
                    f"{', '.join(names)}. The files of a source must have the same columns; "
                    "fix the file, or declare the files as separate sources.",
                )
        assert first is not None
        # Files alike to the column and type can be read as one: DuckDB then sniffs
        # once instead of once per file (union_by_name), many times faster.
        self.same_layout = len(layouts) == 1
        return first[1]

    def _check_columns(self, columns: list[str]) -> None:
        for column in self.config.columns or {}:
            if column not in columns:
                guess = did_you_mean(column, columns)
                raise SourceError(
                    f"'columns:' names the column '{column}', which the files do not have",
                    source=self.name,
                    file=self.files[0].relpath,
                    hint=(f"Did you mean '{guess}'? " if guess else "")
                    + f"The columns are: {', '.join(columns)}."
                    + (
                        ""
                        if self.config.header
                        else " With 'header: false' they are named column0, column1, ..."
                    ),
                )

    # -- errors ---------------------------------------------------------------

    def _error(self, exc: duckdb.Error, fmt: str, fallback: str | None = None) -> SourceError:
        message = str(exc)
        path = _path_in(message, self.scanned) or fallback
        if path is None and len(self.scanned) == 1:
            (path,) = self.scanned
        file = self.scanned[path] if path else None
        relpath = file.relpath if file else None
        if fmt == "csv" and "Error when sniffing file" in message and path is not None:
            # The sniffer gives no line; scan again keeping the rejected rows to find it.
            found = self._first_rejected(path)
            if found is not None:
                message = found
        if fmt == "csv" and (line := _int(r"CSV Error on Line: (\d+)", message)) is not None:
            return self._csv_line_error(message, line, relpath)
        if fmt == "csv" and "Error when sniffing file" in message:
            return SourceError(
                "DuckDB cannot tell how this CSV file is laid out",
                source=self.name,
                file=relpath,
                hint="Check 'delimiter' and 'header' on the source, and that the file is "
                "text in UTF-8.",
            )
        if fmt == "json":
            match = re.search(r"in line (\d+): (.+)", message)
            if match:
                line, reason = int(match.group(1)), match.group(2).strip().rstrip(".")
                if "Malformed JSON" in message:
                    return SourceError(
                        f"line {line} is not valid JSON ({reason})",
                        source=self.name,
                        file=relpath,
                        line=line,
                        hint="Each line must hold one whole JSON object (JSON lines); a record "
                        "cut short on the line before shows up here too.",
                    )
                return SourceError(
                    f"line {line} does not fit the types detected from the first records "
                    f"({reason})",
                    source=self.name,
                    file=relpath,
                    line=line,
                    hint="Declare the column's type under 'columns:' (for example VARCHAR), "
                    "or fix the record.",
                )
        if any(
            sign in message.lower()
            for sign in ("no magic bytes found", "to be a parquet file", "not a parquet file")
        ):
            return SourceError(
                "the file is not a Parquet file, or it is cut short",
                source=self.name,
                file=relpath,
                hint="Write the file again, or set 'format:' if it is not Parquet.",
            )
        reason = self._relative(_first_line(exc))
        if isinstance(exc, duckdb.ConversionException) and self.config.columns:
            column = re.search(r"when casting from source column (\S+)", reason)
            which = f"the column '{column.group(1)}'" if column else "a column"
            return SourceError(
                f"{which}, declared under 'columns:', does not convert: {reason}",
                source=self.name,
                file=relpath,
                hint="Declare the column as VARCHAR under 'columns:', or fix the data.",
            )
        return SourceError(
            f"cannot read the {fmt} data: {reason}",
            source=self.name,
            file=relpath,
            hint=f"Check that the files are {fmt} and that 'format' and 'delimiter' are right.",
        )

    def _relative(self, text: str) -> str:
        # DuckDB repeats the absolute paths it was given; show the project's own.
        for path in sorted(self.scanned, key=len, reverse=True):
            text = text.replace(path, self.scanned[path].relpath)
        return text

    def _csv_line_error(self, message: str, line: int, relpath: str | None) -> SourceError:
        counts = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
        if counts:
            expected, found = int(counts.group(1)), int(counts.group(2))
            blanks = self.config.delimiter == "whitespace"
            return SourceError(
                f"line {line} has {found} fields where {expected} were expected "
                f"(as many as {'in the header' if self.config.header else 'on the first line'})",
                source=self.name,
                file=relpath,
                line=line,
                hint=(
                    "Fix that row: in a whitespace-delimited file a value cannot hold blanks, "
                    "and every row needs a value in every column."
                    if blanks
                    else "Fix that row (a missing or extra delimiter, a delimiter inside a "
                    "value that is not quoted, or a quote that is not closed), or check "
                    "'delimiter' on the source."
                ),
            )
        cast = re.search(
            r'Error when converting column "(.+?)"\. Could not convert string "(.*?)" to \'(.+?)\'',
            message,
        )
        if cast:
            column, value, type_ = cast.groups()
            declared = column in (self.config.columns or {})
            origin = "declared under 'columns:'" if declared else "detected from the first rows"
            return SourceError(
                f"line {line}, column '{column}': the value {value!r} cannot be read as {type_} "
                f"(the type {origin})",
                source=self.name,
                file=relpath,
                line=line,
                hint=(
                    f"Fix the row or declare the column as VARCHAR under columns: "
                    f"({column}: VARCHAR)."
                    if declared
                    else f"Fix the row, or declare the column's type under columns: "
                    f"(for example {column}: VARCHAR)."
                ),
            )
        reason = next(
            (
                text.strip()
                for text in message.splitlines()[1:]
                if text.strip() and not text.startswith("Original Line:")
            ),
            "the line cannot be read",
        )
        return SourceError(
            f"line {line} cannot be read: {reason}",
            source=self.name,
            file=relpath,
            line=line,
            hint="Fix that row, or check 'delimiter' and 'header' on the source.",
        )

    def _first_rejected(self, path: str) -> str | None:
        """DuckDB's own description of the first bad row of one file, or None."""
        # A connection of its own, so the rejects tables never reach the caller's.
        probe = duckdb.connect()
        try:
            # Without the declared types: only the layout is in question here, and
            # a type name would not bind if the file lacks that column.
            scan = self._csv_scan(
                [path],
                types=False,
                extra=", store_rejects=true, rejects_table='rejects', rejects_scan='scans'",
            )
            probe.execute(
                f"COPY (SELECT * FROM {scan}) TO {_lit(str(self.work / 'probe.parquet'))}"
            )
            row = probe.execute(
                "SELECT line, error_message FROM rejects ORDER BY line, column_idx LIMIT 1"
            ).fetchone()
        except duckdb.Error:
            return None
        finally:
            probe.close()
        if row is None:
            return None
        return f"CSV Error on Line: {row[0]}\n{row[1]}\n  file = {path}"


def _infer_format(path: Path) -> str | None:
    return _FORMAT_OF_SUFFIX.get(_plain_suffix(path))


def _plain_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).suffix


def _path_in(message: str, known: dict[str, Any]) -> str | None:
    hits = [path for path in known if path in message]
    return max(hits, key=len) if hits else None


def _int(pattern: str, text: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None


def _check_types(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str]) -> None:
    for column, type_ in columns.items():
        hint = "Use a DuckDB type such as VARCHAR, INTEGER, BIGINT, DOUBLE, DATE or TIMESTAMP."
        if not _TYPE_TEXT.match(type_):
            raise SourceError(
                f"columns: '{column}' has the type {type_!r}, which is not a type name",
                source=name,
                hint=hint,
            )
        try:
            con.execute(f"SELECT CAST(NULL AS {type_})")
        except duckdb.Error as exc:
            guess = re.search(r'Did you mean "(?:main\.)?([^"]+)"', str(exc))
            raise SourceError(
                f"columns: '{column}' has the type {type_!r}, which DuckDB does not know",
                source=name,
                hint=(f"Did you mean '{guess.group(1)}'? " if guess else "") + hint,
            ) from None


# --- databases ---------------------------------------------------------------


class _DatabaseReader:
    """Reads the table or query of a database source."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        config: SourceConfig,
        root: Path,
        work: Path,
    ) -> None:
        assert config.url is not None
        self.con = con
        self.name = name
        self.config = config
        self.root = root
        self.work = work
        self.url = config.url
        self.display_url, self.password = _redact(config.url)
        if config.table is not None:
            self.what = f"the table '{config.table}'"
            self.origin = f"{self.display_url} (table {config.table})"
        else:
            query = " ".join((config.query or "").split())
            self.what = "the query's result"
            self.origin = f"{self.display_url} (query: {query})"

    def copy_to(self, out: Path) -> int:
        scheme = self.url.split(":", 1)[0].lower()
        if scheme == "duckdb":
            return self._attached(out, self._file_path(), kind=None)
        if scheme == "sqlite" and self.url.startswith("sqlite:///"):
            path = self._file_path()
            if _sqlite_extension(self.con):
                return self._attached(out, path, kind="sqlite")
            return self._sqlalchemy(out, sqlite_file=path)
        return self._sqlalchemy(out, sqlite_file=None)

    def _file_path(self) -> Path:
        raw = self.url.split(":///", 1)[1] if ":///" in self.url else ""
        raw = raw.split("?", 1)[0]
        if not raw or raw == ":memory:":
            raise SourceError(
                f"the url '{self.display_url}' names no database file",
                source=self.name,
                hint="Write duckdb:///data/shop.duckdb or sqlite:///data/shop.db "
                "(relative to the project folder; four slashes for an absolute path).",
            )
        absolute = os.path.isabs(raw)
        full = os.path.normpath(raw if absolute else os.path.join(self.root, raw))
        if not absolute and not _inside(full, self.root):
            raise SourceError(
                f"the database file '{raw}' is outside the project folder {self.root}",
                source=self.name,
                hint="Paths are relative to the folder that holds boite.yaml and stay inside "
                "it; use an absolute path (four slashes) if the file must stay where it is.",
            )
        if not os.path.isfile(full):
            raise _no_match(self.name, raw, full, self.root)
        return Path(full)

    # -- attached with DuckDB --------------------------------------------------

    def _attached(self, out: Path, path: Path, kind: str | None) -> int:
        alias = f"boite_source_{uuid.uuid4().hex[:12]}"
        options = "READ_ONLY" + (f", TYPE {kind}" if kind else "")
        try:
            self.con.execute(f"ATTACH {_lit(str(path))} AS {_ident(alias)} ({options})")
        except duckdb.Error as exc:
            raise SourceError(
                f"cannot open the database: {_first_line(exc)}",
                source=self.name,
                file=_display_path(path, self.root),
                hint="Check that it is a "
                + ("SQLite" if kind else "DuckDB")
                + " database file that no other program holds open for writing.",
            ) from None
        try:
            if self.config.table is not None:
                select = f"SELECT * FROM {self._attached_table(alias)}"
                return self._copy_attached(select, out, path)
            # The query is written against the database itself: make it the
            # default catalog while it runs, then restore the caller's.
            database, schema = _one(self.con, "SELECT current_database(), current_schema()")
            self.con.execute(f"USE {_ident(alias)}")
            try:
                return self._copy_attached(_strip_query(self.config.query or ""), out, path)
            finally:
                self.con.execute(f"USE {_ident(database)}.{_ident(schema)}")
        finally:
            with suppress(duckdb.Error):
                self.con.execute(f"DETACH {_ident(alias)}")

    def _attached_table(self, alias: str) -> str:
        rows = self.con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = ? ORDER BY table_schema, table_name",
            [alias],
        ).fetchall()
        names = {(f"{t}" if s == "main" else f"{s}.{t}"): (s, t) for s, t in rows}
        wanted = self.config.table or ""
        found = names.get(wanted) or next(
            (v for k, v in names.items() if k.lower() == wanted.lower()), None
        )
        if found is None:
            raise self._missing_table(list(names))
        schema, table = found
        return f"{_ident(alias)}.{_ident(schema)}.{_ident(table)}"

    def _copy_attached(self, select: str, out: Path, path: Path) -> int:
        try:
            return _copy(self.con, select, out)
        except duckdb.Error as exc:
            raise SourceError(
                f"cannot read {self.what}: {self._scrub(_first_line(exc))}",
                source=self.name,
                file=_display_path(path, self.root),
                hint=self._query_hint(),
            ) from None

    # -- SQLAlchemy -------------------------------------------------------------

    def _sqlalchemy(self, out: Path, sqlite_file: Path | None) -> int:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
        import sqlalchemy as sa

        try:
            if sqlite_file is not None:
                # Opened read-only through a URI, so a mistyped path is an
                # error, not a new empty database.
                uri = f"file:{url_quote(str(sqlite_file))}?mode=ro"
                engine = sa.create_engine(
                    "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True)
                )
            else:
                engine = sa.create_engine(self.url)
        except Exception as exc:  # the driver's own errors, whatever their class
            raise SourceError(
                f"cannot open the database {self.display_url}: {self._scrub(_first_line(exc))}",
                source=self.name,
                hint="Check the url; a database other than DuckDB or SQLite needs its "
                "SQLAlchemy driver installed (for example psycopg for postgresql://).",
            ) from None
        parts: list[Path] = []
        try:
            with engine.connect() as connection:
                if self.config.table is not None:
                    sql = f"SELECT * FROM {self._sqlalchemy_table(sa.inspect(connection), engine)}"
                else:
                    sql = _strip_query(self.config.query or "")
                # stream_results asks for a server-side cursor where the driver
                # has one, so a large table is never held whole in memory.
                streaming = connection.execution_options(stream_results=True)
                chunks = pd.read_sql_query(
                    sql, streaming, chunksize=DB_CHUNK_ROWS, dtype_backend="pyarrow"
                )
                for chunk in chunks:
                    if chunk.empty:
                        continue
                    part = self.work / f"part-{len(parts):06d}.parquet"
                    pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), part)
                    parts.append(part)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"cannot read {self.what}: {self._scrub(_driver_message(exc))} "
                f"(from {self.display_url})",
                source=self.name,
                hint=self._query_hint(),
            ) from None
        finally:
            engine.dispose()
        if not parts:
            return 0
        # Chunks may disagree on types (a column that is all NULL in one chunk);
        # DuckDB unifies them by name and writes the one file, as for any source.
        listed = ", ".join(_lit(str(p)) for p in parts)
        return _copy(self.con, f"SELECT * FROM read_parquet([{listed}], union_by_name=true)", out)

    def _sqlalchemy_table(self, inspector: Any, engine: Any) -> str:
        wanted = self.config.table or ""
        schema, _, table = wanted.rpartition(".")
        tables = sorted(
            inspector.get_table_names(schema=schema or None)
            + inspector.get_view_names(schema=schema or None)
        )
        prefix = f"{schema}." if schema else ""
        if table not in tables:
            raise self._missing_table([prefix + t for t in tables])
        quote = engine.dialect.identifier_preparer.quote
        return (quote(schema) + "." if schema else "") + quote(table)

    # -- shared -----------------------------------------------------------------

    def _missing_table(self, known: list[str]) -> SourceError:
        wanted = self.config.table or ""
        guess = did_you_mean(wanted, known)
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        return SourceError(
            f"the database {self.display_url} has no table '{wanted}'",
            source=self.name,
            hint=(f"Did you mean '{guess}'? " if guess else "")
            + (f"Tables there: {listed}." if known else "The database holds no tables."),
        )

    def _query_hint(self) -> str:
        if self.config.table is not None:
            return "Check that the table can be read with the url's credentials."
        return f"The query runs as written against {self.display_url}; check it there."

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


def _driver_message(exc: BaseException) -> str:
    # pandas wraps SQLAlchemy's error, which wraps the driver's: the driver's
    # own words are the useful part ("no such column: x").
    while exc.__cause__ is not None:
        exc = exc.__cause__
    original = getattr(exc, "orig", None)
    return _first_line(original if isinstance(original, BaseException) else exc)


def _redact(url: str) -> tuple[str, str | None]:
    """The url without its password, for display, and the password itself (to scrub)."""
    try:
        import sqlalchemy as sa

        parsed = sa.engine.make_url(url)
    except Exception:
        # Not a URL SQLAlchemy can parse: hide anything between ':' and '@' after '//'.
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url), None
    if parsed.password is None:
        return url, None
    return parsed.render_as_string(hide_password=True), str(parsed.password)


def _strip_query(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _sqlite_extension(con: duckdb.DuckDBPyConnection) -> bool:
    # Only an installed extension is loaded: LOAD would otherwise try to
    # download it, which stalls, then fails, on a machine without internet.
    row = con.execute(
        "SELECT installed, loaded FROM duckdb_extensions() WHERE extension_name = 'sqlite_scanner'"
    ).fetchone()
    if row is None or not (row[0] or row[1]):
        return False
    try:
        con.execute("LOAD sqlite_scanner")
    except duckdb.Error:
        return False
    return True
