"""The plan: the project's steps as data, checked before anything runs.

Sources and transform files become steps; each step's inputs are the tables it
reads (parsed from SQL, or a Python function's parameters). Missing tables and
cycles are reported here, with files and lines, before a single step executes.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from boite.core.config import (
    NAME_RULE,
    FeatureViewConfig,
    ProjectConfig,
    SourceConfig,
    TransformConfig,
)
from boite.core.jsoncache import JsonCache
from boite.core.suggest import did_you_mean
from boite.errors import ConfigError, CycleError, MissingTableError, NotFoundError, TransformError
from boite.transforms.parsed import ParsedSQL
from boite.transforms.python import PythonTransform, parse_python

TRANSFORMS_DIR = "transforms"
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
StepKind = Literal["source", "sql", "python", "materialize"]
MATERIALIZE = "materialize."
# Settings that describe a step without changing what it makes.
_NOT_OUTPUT = {"description", "tags", "owner"}


@dataclass(frozen=True)
class Step:
    name: str
    kind: StepKind
    inputs: tuple[str, ...]
    code: str
    file: str | None = None
    source: SourceConfig | None = None
    transform: TransformConfig | None = None
    sql: ParsedSQL | None = None
    python: PythonTransform | None = None
    view: str | None = None
    view_config: FeatureViewConfig | None = None

    @property
    def code_fingerprint(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()

    @property
    def config_fingerprint(self) -> str:
        # Only settings that change the output count: a new description or tag
        # must not rebuild a table.
        settings = self.transform or self.source or self.view_config
        text = "" if settings is None else settings.model_dump_json(exclude=_NOT_OUTPUT)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    steps: dict[str, Step]
    order: tuple[str, ...]

    def downstream(self, names: Iterable[str]) -> set[str]:
        """All steps that read, directly or not, any of ``names``."""
        readers: dict[str, set[str]] = {n: set() for n in self.steps}
        for step in self.steps.values():
            for table in step.inputs:
                readers[table].add(step.name)
        out: set[str] = set()
        todo = list(names)
        while todo:
            for reader in readers[todo.pop()]:
                if reader not in out:
                    out.add(reader)
                    todo.append(reader)
        return out

    def upstream(self, names: Iterable[str]) -> set[str]:
        out: set[str] = set()
        todo = list(names)
        while todo:
            for table in self.steps[todo.pop()].inputs:
                if table not in out:
                    out.add(table)
                    todo.append(table)
        return out

    def select(self, names: Iterable[str] | None) -> list[str]:
        """The named steps and everything they need, in run order."""
        if not names:
            return list(self.order)
        wanted = set()
        for name in names:
            if name not in self.steps:
                raise NotFoundError(
                    "step", name, suggestion=did_you_mean(name, self.steps), known=list(self.steps)
                )
            wanted.add(name)
        wanted |= self.upstream(wanted)
        return [n for n in self.order if n in wanted]


def _source_step(name: str, config: SourceConfig) -> Step:
    code = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return Step(name=name, kind="source", inputs=(), code=code, source=config)


def discover_transform_files(root: Path) -> dict[str, Path]:
    """transforms/NAME.sql and NAME.py; files starting with '_' are helpers, not transforms."""
    folder = root / TRANSFORMS_DIR
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".sql", ".py") or path.name.startswith(("_", ".")):
            continue
        name = path.stem.lower()
        rel = path.relative_to(root).as_posix()
        if name in found:
            other = found[name].relative_to(root).as_posix()
            raise TransformError(
                f"two files define the table '{name}': {other} and {rel}",
                file=rel,
                hint="A table has one producer: remove or rename one of them.",
            )
        if not _TABLE_NAME.match(name):
            raise TransformError(f"'{path.stem}' cannot name a table: use {NAME_RULE}", file=rel)
        found[name] = path
    return found


class ParseCache(JsonCache):
    """The tables each SQL text reads, keyed by the text's hash.

    Parsing hundreds of transforms with sqlglot (and DuckDB's parser) costs more
    than everything else a no-op run does, and the answer only changes when the
    text does. Only what planning needs is kept; a run re-parses what it executes.
    """

    def parse(self, text: str, *, file: str) -> ParsedSQL:
        key = hashlib.sha256(f"{file}\0{text}".encode()).hexdigest()
        hit = self.get(key)
        if hit is not None:
            return ParsedSQL(
                sql=text, tables=tuple(hit["tables"]), table_lines=dict(hit["lines"]), file=file
            )
        from boite.transforms.sql import parse_sql

        parsed = parse_sql(text, file=file)
        self.put(key, {"tables": list(parsed.tables), "lines": parsed.table_lines})
        return parsed


def build_plan(
    root: Path,
    config: ProjectConfig,
    *,
    config_file: str = "boite.yaml",
    cache: ParseCache | None = None,
) -> Plan:
    cache = cache or ParseCache(None)
    steps: dict[str, Step] = {}
    for name, source in config.sources.items():
        steps[name.lower()] = _source_step(name.lower(), source)
    files = discover_transform_files(root)
    for name in config.transforms:
        if name.lower() not in files:
            guess = did_you_mean(name.lower(), files)
            raise ConfigError(
                f"transform '{name}' has settings here but no file "
                f"{TRANSFORMS_DIR}/{name}.sql or {TRANSFORMS_DIR}/{name}.py",
                file=config_file,
                key=f"transforms.{name}",
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Add the file, or remove these settings.",
            )
    settings = {k.lower(): v for k, v in config.transforms.items()}
    helpers = "".join(
        f"\0{p.name}\0{p.read_text(encoding='utf-8')}"
        for p in sorted((root / TRANSFORMS_DIR).glob("_*.py"))
    )
    for name, path in files.items():
        rel = path.relative_to(root).as_posix()
        if name in steps:
            raise TransformError(
                f"'{name}' is both a source in {config_file} and a transform file",
                file=rel,
                hint="A table has one producer: rename the transform or the source.",
            )
        text = path.read_text(encoding="utf-8")
        transform = settings.get(name, TransformConfig())
        if path.suffix == ".sql":
            parsed = cache.parse(text, file=rel)
            steps[name] = Step(
                name=name,
                kind="sql",
                inputs=parsed.tables,
                code=text,
                file=rel,
                transform=transform,
                sql=parsed,
            )
        else:
            py = parse_python(text, name=name, file=rel)
            steps[name] = Step(
                name=name,
                kind="python",
                inputs=py.tables,
                # helper modules (transforms/_*.py) are part of every Python
                # transform's code: editing one makes them stale
                code=text + helpers,
                file=rel,
                transform=transform,
                python=py,
            )
    for view_name, view in config.feature_views.items():
        source = view.source.lower()
        if source not in steps:
            guess = did_you_mean(source, steps)
            raise ConfigError(
                f"feature view '{view_name}' is defined on '{view.source}', which is neither a "
                "source nor a transform",
                file=config_file,
                key=f"feature_views.{view_name}.source",
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Tables: "
                + ", ".join(sorted(steps))
                + ".",
            )
        if view.online:
            name = MATERIALIZE + view_name
            code = json.dumps(view.model_dump(mode="json"), sort_keys=True)
            steps[name] = Step(
                name=name,
                kind="materialize",
                inputs=(source,),
                code=code,
                view=view_name,
                view_config=view,
            )
    for step in steps.values():
        for table in step.inputs:
            if table not in steps:
                lines = (
                    step.sql.table_lines
                    if step.sql
                    else (step.python.table_lines if step.python else {})
                )
                raise MissingTableError(
                    step.name,
                    table,
                    file=step.file,
                    line=lines.get(table),
                    known=[s for s in steps if s != step.name and not s.startswith(MATERIALIZE)],
                    suggestion=did_you_mean(table, [s for s in steps if s != step.name]),
                )
    cache.save()
    sorter = graphlib.TopologicalSorter({s.name: set(s.inputs) for s in steps.values()})
    try:
        order = tuple(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        raise CycleError(cycle) from None
    return Plan(steps={n: steps[n] for n in order}, order=order)
