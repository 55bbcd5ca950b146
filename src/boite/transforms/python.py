"""Python transforms: ``transforms/NAME.py`` holds a typed function that makes table NAME.

The function's parameters name the tables it reads, and their annotations say
what it receives: a pandas DataFrame (the default), a pyarrow Table, or a DuckDB
relation. It returns any of the three. Dependencies are read from the source
with ``ast``, so planning never executes user code.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boite.errors import TransformError

_HINT = (
    "A Python transform defines a function named after its file (or exactly one public "
    "function) whose parameters are the tables it reads, e.g.\n"
    "    def customer_segments(customer_activity: pd.DataFrame) -> pd.DataFrame: ..."
)


@dataclass(frozen=True)
class PythonTransform:
    name: str
    file: str
    function: str
    tables: tuple[str, ...]
    table_lines: dict[str, int]


def parse_python(source: str, *, name: str, file: str) -> PythonTransform:
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        raise TransformError(
            f"Python syntax error: {exc.msg}", file=file, line=exc.lineno, column=exc.offset
        ) from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    chosen = next((f for f in functions if f.name == name), None)
    if chosen is None:
        public = [f for f in functions if not f.name.startswith("_")]
        if len(public) != 1:
            found = ", ".join(f.name for f in public) or "none"
            raise TransformError(
                f"no function named '{name}' and not exactly one public function (found: {found})",
                file=file,
                hint=_HINT,
            )
        chosen = public[0]
    if isinstance(chosen, ast.AsyncFunctionDef):
        raise TransformError(
            f"'{chosen.name}' is async; a transform is a plain function",
            file=file,
            line=chosen.lineno,
        )
    args = chosen.args
    if args.vararg or args.kwarg:
        raise TransformError(
            f"'{chosen.name}' takes *args or **kwargs; name each table it reads as a parameter",
            file=file,
            line=chosen.lineno,
            hint=_HINT,
        )
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    # Parameters with defaults are settings, not tables.
    n_defaults = len(args.defaults)
    positional = [*args.posonlyargs, *args.args]
    with_default = (
        {a.arg for a in positional[len(positional) - n_defaults :]} if n_defaults else set()
    )
    with_default |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d}
    tables = [p for p in params if p.arg not in with_default]
    if not tables:
        raise TransformError(
            f"'{chosen.name}' reads no table: give it one parameter per table it reads",
            file=file,
            line=chosen.lineno,
            hint=_HINT,
        )
    names = tuple(p.arg.lower() for p in tables)
    return PythonTransform(
        name=name,
        file=file,
        function=chosen.name,
        tables=names,
        table_lines={p.arg.lower(): p.lineno for p in tables},
    )


# Folders of transforms put on sys.path, so that helpers (transforms/_x.py) import.
_FOLDERS: set[str] = set()
_IMPORT_LOCK = threading.Lock()


def load_function(path: Path, transform: PythonTransform) -> Callable[..., Any]:
    """Import the transform's module from its file and return its function.

    Helper modules are imported afresh each time, from this project's folder only:
    an edited helper takes effect, and two projects' ``_helpers.py`` never mix.
    """
    module_name = f"boite_transform_{transform.name}"
    folder = str(path.parent.resolve())
    with _IMPORT_LOCK:
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            if origin and str(Path(origin).resolve().parent) in _FOLDERS:
                del sys.modules[name]
        sys.path[:] = [folder, *(p for p in sys.path if p not in _FOLDERS and p != folder)]
        _FOLDERS.add(folder)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise TransformError("cannot be imported", file=transform.file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise TransformError(
                f"importing the module failed: {type(exc).__name__}: {exc}", file=transform.file
            ) from exc
    return getattr(module, transform.function)


def argument_kinds(function: Callable[..., Any], tables: tuple[str, ...]) -> dict[str, str]:
    """For each table parameter, 'pandas', 'arrow' or 'duckdb' from its annotation."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        hints = getattr(function, "__annotations__", {})
    kinds: dict[str, str] = {}
    lowered = {k.lower(): v for k, v in hints.items()}
    for table in tables:
        kinds[table] = _kind_of(lowered.get(table))
    return kinds


def _kind_of(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__module__", "")
    qualname = "" if isinstance(annotation, str) else getattr(annotation, "__qualname__", "")
    spelled = f"{text}.{qualname}"
    if "pyarrow" in spelled or spelled.endswith(".Table") or "pa.Table" in spelled:
        return "arrow"
    if "duckdb" in spelled or "DuckDBPyRelation" in spelled:
        return "duckdb"
    return "pandas"
