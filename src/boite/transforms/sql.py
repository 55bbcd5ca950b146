"""Read the SQL of a transform: check it, find the tables it reads, trace its columns.

A SQL transform is the file ``transforms/NAME.sql`` holding one DuckDB ``SELECT``
whose result becomes the table ``NAME``. Its dependencies are the tables it reads,
found by parsing the SQL (sqlglot, DuckDB dialect), never by templating.

DuckDB's own parser has the last word on syntax: sqlglot accepts some SQL that DuckDB
rejects (``SELECT a,, b``, an empty ``GROUP BY``), and a transform that passes the plan
must not fail later on a syntax error.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
from pathlib import PurePath
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope
from sqlglot.schema import ensure_schema
from sqlglot.tokens import Token, TokenType

from boite.errors import SQLSyntaxError, TransformError
from boite.transforms.parsed import ParsedSQL

__all__ = ["ParsedSQL", "column_lineage", "parse_sql"]

DIALECT = "duckdb"

_WHAT_IS_ALLOWED = (
    "A transform is one SELECT statement (WITH … SELECT and UNION are fine) in DuckDB's "
    "SQL dialect; its result becomes the table named after the file."
)


def parse_sql(sql: str, *, file: str) -> ParsedSQL:
    """Check the SQL of a transform and find the tables it reads.

    Raises :class:`SQLSyntaxError` when the SQL does not parse, and
    :class:`TransformError` when it is not exactly one ``SELECT`` or reads a table by a
    qualified name.
    """
    tokens: list[Token] = []
    statements: list[exp.Expr | None] = []
    sqlglot_error: ParseError | TokenError | None = None
    try:
        dialect = Dialect.get_or_raise(DIALECT)
        tokens = dialect.tokenize(sql)
        statements = dialect.parser().parse(tokens, sql)
    except (ParseError, TokenError) as exc:
        sqlglot_error = exc

    checked, duckdb_error = _duckdb_verdict(sql)
    if duckdb_error is not None and duckdb_error.get("error_type") == "parser":
        raise _from_duckdb(sql, file, duckdb_error, sqlglot_error, tokens)
    if sqlglot_error is not None:
        if duckdb_error is not None:
            # DuckDB parsed it, but as something json_serialize_sql refuses: not a SELECT.
            raise _not_a_select(file, None, None)
        raise _from_sqlglot(sql, file, sqlglot_error, duckdb_accepts=checked)

    starts = _statement_starts(tokens)
    # sqlglot turns a comment after the last ';' into a statement of its own, Semicolon.
    found = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not found:
        raise TransformError(
            "the file holds no SQL statement",
            file=file,
            hint=_WHAT_IS_ALLOWED,
        )
    if len(found) > 1:
        line, column = _line_col(sql, starts[1].start) if len(starts) > 1 else (None, None)
        raise TransformError(
            f"the file holds {len(found)} SQL statements; a transform holds exactly one",
            file=file,
            line=line,
            column=column,
            hint=_WHAT_IS_ALLOWED + " Move the other statements to transforms of their own.",
        )
    statement = found[0]
    if not isinstance(statement, exp.Query):
        line, column = _line_col(sql, starts[0].start) if starts else (None, None)
        raise _not_a_select(file, _statement_kind(statement), line, column)

    tables, table_lines = _read_tables(statement, sql, file)
    return ParsedSQL(
        sql=sql, tables=tables, table_lines=table_lines, file=file, expression=statement
    )


def column_lineage(
    parsed: ParsedSQL, schemas: dict[str, dict[str, str]]
) -> dict[str, list[tuple[str, str]]]:
    """Map each output column to the ``(table, column)`` pairs of the inputs it derives from.

    ``schemas`` is ``{table: {column: duckdb_type}}`` for the tables the query reads; with
    it ``SELECT *`` expands. Names come out lower-cased, as DuckDB compares them. Columns
    built from literals only map to ``[]``.

    Lineage is recorded on a best-effort basis, so this never raises: a column sqlglot
    cannot trace maps to ``[]``, and a query it cannot qualify gives ``{}``. An output
    column left as an unexpanded ``*`` (a table missing from ``schemas``) is left out.
    """
    query: exp.Expr | None = parsed.expression
    # sqlglot traces nothing through a parenthesised top-level query; what is inside is
    # the same query as far as lineage goes (ORDER BY or LIMIT outside move no column).
    while isinstance(query, exp.Subquery):
        query = query.this
    if query is None:
        return {}
    try:
        mapping: dict[str, object] = dict(schemas)
        schema = ensure_schema(mapping, dialect=DIALECT)
        # Qualify once: every column's trace below reuses this tree and its scope.
        qualified = qualify(
            query.copy(),
            dialect=DIALECT,
            schema=schema,
            validate_qualify_columns=False,
            identify=False,
        )
        _unions_by_position(qualified)
        scope = build_scope(qualified)
        if scope is None or not isinstance(scope.expression, exp.Query):
            return {}
        names = [s.alias_or_name for s in scope.expression.selects]
    except Exception:
        # sqlglot raises many kinds of errors on SQL it cannot follow; lineage is optional.
        return {}

    reads = set(parsed.tables)
    nodes: dict[str, Node | None]
    try:
        # Trimming (the default) copies the whole SELECT at every step, for labels unused here.
        everything = lineage(
            None, qualified, schema, dialect=DIALECT, scope=scope, copy=False, trim_selects=False
        )
        nodes = dict(everything)
    except Exception:
        # One column sqlglot cannot follow must not cost the others their lineage.
        nodes = {}
        for name in names:
            if not name or name == "*" or name in nodes:
                continue
            try:
                nodes[name] = lineage(
                    name,
                    qualified,
                    schema,
                    dialect=DIALECT,
                    scope=scope,
                    copy=False,
                    trim_selects=False,
                )
            except Exception:
                nodes[name] = None

    result: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        if not name or name == "*" or name in result or name not in nodes:
            continue
        node = nodes[name]
        try:
            result[name] = _input_columns(node, reads) if node is not None else []
        except Exception:
            result[name] = []
    return result


# --- syntax errors ------------------------------------------------------------------------


@functools.cache
def _duckdb_parser() -> tuple[duckdb.DuckDBPyConnection, threading.Lock]:
    # Opening a connection costs ~10 ms, far more than parsing; one is kept per process.
    # DuckDB connections are not safe to share between threads, hence the lock.
    return duckdb.connect(":memory:"), threading.Lock()


def _duckdb_verdict(sql: str) -> tuple[bool, dict[str, Any] | None]:
    """Whether DuckDB could check ``sql``, and its error object if it rejects it.

    ``json_serialize_sql`` only parses (it binds nothing), so unknown tables are fine.
    If the check itself cannot run, sqlglot's verdict stands alone.
    """
    try:
        connection, lock = _duckdb_parser()
        with lock:
            row = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        answer = json.loads(row[0]) if row else None
    except (duckdb.Error, ValueError, TypeError):
        return False, None
    if not isinstance(answer, dict):
        return False, None
    return True, answer if answer.get("error") else None


def _from_duckdb(
    sql: str,
    file: str,
    error: dict[str, Any],
    sqlglot_error: ParseError | TokenError | None,
    tokens: list[Token],
) -> SQLSyntaxError:
    message = str(error.get("error_message") or "syntax error")
    offset: int | None = None
    try:
        # DuckDB counts bytes of UTF-8; Python strings count characters.
        byte_offset = int(error["position"])
        offset = len(sql.encode()[:byte_offset].decode(errors="ignore"))
    except (KeyError, TypeError, ValueError):
        # Some parser errors ("SELECT clause without selection list") carry no position.
        if isinstance(sqlglot_error, ParseError):
            offset = _sqlglot_offset(sql, sqlglot_error)
        elif tokens:
            offset = tokens[0].start
    return _syntax_error(sql, file, message, offset)


def _from_sqlglot(
    sql: str, file: str, error: ParseError | TokenError, *, duckdb_accepts: bool
) -> SQLSyntaxError:
    offset = _sqlglot_offset(sql, error) if isinstance(error, ParseError) else None
    near = ""
    description = str(error)
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        description = str(first.get("description") or "syntax error")
        if first.get("highlight"):
            near = f' at or near "{first["highlight"]}"'
    if duckdb_accepts:
        # DuckDB accepts it: the fault is in the analyser, and saying so saves a hunt.
        return _syntax_error(
            sql,
            file,
            f"boite cannot analyse the SQL{near} ({description})",
            offset,
            hint=(
                f"DuckDB accepts this SQL, but sqlglot {sqlglot.__version__}, which boite "
                "uses to find the tables a transform reads, does not. Write this part of "
                "the query another way, or report it."
            ),
        )
    return _syntax_error(sql, file, f"syntax error{near} ({description})", offset)


def _sqlglot_offset(sql: str, error: ParseError) -> int | None:
    if not error.errors:
        return None
    first = error.errors[0]
    line, col, highlight = first.get("line"), first.get("col"), first.get("highlight") or ""
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    # sqlglot reports where the offending token ends; the start is what a person looks for.
    line_starts = _line_starts(sql)
    if not 1 <= line <= len(line_starts):
        return None
    end = line_starts[line - 1] + col - 1
    start = end - len(highlight) + 1
    if highlight and start >= 0 and sql[start : end + 1] == highlight:
        return start
    return min(max(end, 0), max(len(sql) - 1, 0))


def _syntax_error(
    sql: str, file: str, message: str, offset: int | None, *, hint: str | None = None
) -> SQLSyntaxError:
    if offset is None:
        return SQLSyntaxError(message, file=file, hint=hint or _WHAT_IS_ALLOWED)
    line, column = _line_col(sql, offset)
    excerpt = _excerpt(sql, line, column)
    return SQLSyntaxError(
        message,
        file=file,
        line=line,
        column=column,
        hint=excerpt + "\n" + (hint or _WHAT_IS_ALLOWED),
    )


def _excerpt(sql: str, line: int, column: int) -> str:
    lines = sql.split("\n")
    # Lines are counted on "\n" alone, as in _line_starts, whatever else splitlines() knows.
    text = lines[line - 1].rstrip("\r") if line <= len(lines) else ""
    # Keep tabs under tabs so the caret lines up however the terminal renders them.
    pad = "".join(c if c == "\t" else " " for c in text[: column - 1])
    gutter = str(line)
    return f"  {gutter} | {text}\n  {' ' * len(gutter)} | {pad}^"


def _not_a_select(
    file: str, kind: str | None, line: int | None, column: int | None = None
) -> TransformError:
    name = PurePath(file).stem if file else "NAME"
    what = f"{_article(kind)} {kind} statement" if kind else "a statement"
    return TransformError(
        f"the file holds {what}, not a SELECT",
        file=file,
        line=line,
        column=column,
        hint=(
            f"{_WHAT_IS_ALLOWED} Keep only the query: boite itself writes its result "
            f"to the table '{name}'."
        ),
    )


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" else "a"


def _statement_kind(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    if isinstance(statement, exp.Create):
        return f"CREATE {statement.args.get('kind') or ''}".strip()
    return type(statement).__name__.upper()


def _statement_starts(tokens: list[Token]) -> list[Token]:
    """The first token of each statement; comments are no tokens, so empty ones drop out."""
    starts: list[Token] = []
    at_start = True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            at_start = True
        elif at_start:
            starts.append(token)
            at_start = False
    return starts


def _line_starts(sql: str) -> list[int]:
    starts = [0]
    starts.extend(i + 1 for i, c in enumerate(sql) if c == "\n")
    return starts


def _line_col(sql: str, offset: int) -> tuple[int, int]:
    starts = _line_starts(sql)
    line = bisect.bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


# --- tables read ---------------------------------------------------------------------------


def _read_tables(
    statement: exp.Query, sql: str, file: str
) -> tuple[tuple[str, ...], dict[str, int]]:
    found: list[tuple[int, str, int]] = []
    for table in statement.find_all(exp.Table):
        name_part = table.this
        # Table functions (read_csv(...), range(...)) have a call where the name would be.
        if not isinstance(name_part, exp.Identifier):
            continue
        start = _start_offset(table)
        # FROM 'file.csv' reads a file, not a table; only the token tells it from "file.csv".
        if start is not None and sql[start : start + 1] == "'":
            continue
        if table.args.get("db") or table.args.get("catalog"):
            raise _qualified(table, sql, file, start)
        name = table.name.lower()
        if name in _ctes_in_sight(table):
            continue
        line, _ = _line_col(sql, start) if start is not None else (0, 0)
        found.append((start if start is not None else len(sql), name, line))

    # find_all walks breadth first; the reader expects the order of the text.
    found.sort(key=lambda item: item[0])
    tables: list[str] = []
    lines: dict[str, int] = {}
    for _, name, line in found:
        if name not in lines:
            tables.append(name)
            lines[name] = line
    return tuple(tables), lines


def _start_offset(table: exp.Table) -> int | None:
    starts = [
        part.meta["start"]
        for part in table.parts
        if isinstance(part, exp.Identifier) and "start" in part.meta
    ]
    return min(starts) if starts else None


def _qualified(table: exp.Table, sql: str, file: str, start: int | None) -> TransformError:
    written = ".".join(part.sql(dialect=DIALECT) for part in table.parts)
    line, column = _line_col(sql, start) if start is not None else (None, None)
    return TransformError(
        f"table '{written}' is read by a qualified name",
        file=file,
        line=line,
        column=column,
        hint=(
            f"Read project tables by their bare name, as in FROM {table.name}: boite "
            "finds the source or transform of that name and loads it for the query."
        ),
    )


def _ctes_in_sight(table: exp.Table) -> set[str]:
    """The names of the CTEs a table reference can see, so it is not taken for a table.

    A CTE sees the CTEs defined before it in the same WITH (and itself when RECURSIVE);
    the body of a query sees all of its own; inner queries also see the outer ones.
    """
    names: set[str] = set()
    child: exp.Expr = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With) and isinstance(child, exp.CTE):
            ctes = node.expressions
            index = next(i for i, cte in enumerate(ctes) if cte is child)
            visible = ctes[: index + 1] if node.args.get("recursive") else ctes[:index]
            names.update(cte.alias.lower() for cte in visible)
        elif not isinstance(child, exp.With):
            with_ = next((c for c in node.iter_expressions() if isinstance(c, exp.With)), None)
            if with_ is not None:
                names.update(cte.alias.lower() for cte in with_.expressions)
        child, node = node, node.parent
    return names


# --- lineage -------------------------------------------------------------------------------


def _unions_by_position(query: exp.Expr) -> None:
    """Rewrite ``UNION BY NAME`` so its branches line up by position.

    sqlglot's lineage pairs the columns of a set operation by position; DuckDB's
    ``BY NAME`` pairs them by name, the result holding every name in order of first
    appearance and NULL where a branch lacks one.
    """
    # find_all walks breadth first, so the reverse handles inner unions before outer ones.
    for union in reversed(list(query.find_all(exp.SetOperation))):
        if not union.args.get("by_name"):
            continue
        branches = [union.this, union.expression]
        per_branch = [b.named_selects for b in branches]
        if any(not names or "*" in names for names in per_branch):
            raise ValueError("UNION BY NAME over columns that could not be expanded")
        output: list[str] = []
        for names in per_branch:
            output.extend(n for n in names if n not in output)
        for key, branch, names in zip(("this", "expression"), branches, per_branch, strict=True):
            union.set(key, _project(branch, names, output))
        union.set("by_name", None)


def _project(branch: exp.Expr, names: list[str], output: list[str]) -> exp.Expr:
    if isinstance(branch, exp.Select):
        by_name: dict[str, exp.Expr] = {}
        for select in branch.selects:
            by_name.setdefault(select.alias_or_name, select)
        branch.set(
            "expressions",
            [by_name.get(n) or exp.alias_(exp.null(), n) for n in output],
        )
        return branch
    inner = branch.this if isinstance(branch, exp.Subquery) else branch
    return exp.select(
        *[
            exp.column(n, table="_by_name") if n in names else exp.alias_(exp.null(), n)
            for n in output
        ]
    ).from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("_by_name"))))


def _input_columns(node: Node, reads: set[str]) -> list[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for leaf in node.walk():
        if leaf.downstream:
            continue
        source = leaf.expression
        # Leaves that are no table of the project: literals, table functions, files.
        if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
            continue
        table = source.name.lower()
        if table not in reads:
            continue
        column = _column_name(leaf.name)
        if column in ("", "*"):
            continue
        pairs.add((table, column.lower()))
    return sorted(pairs)


def _column_name(written: str) -> str:
    """The column part of a leaf's name such as ``o.amount`` or ``o."odd.name"``."""
    if '"' not in written:
        # Parsing costs more than the rest of the walk; plain names need none.
        return written.rsplit(".", 1)[-1]
    column = exp.to_column(written, dialect=DIALECT)
    return "*" if isinstance(column.this, exp.Star) else column.name
