"""The layers of DESIGN.md section 3 are a rule: imports point upstream only."""

from __future__ import annotations

import ast
from pathlib import Path

import boite

PACKAGE = Path(boite.__file__).parent

# package -> the boite packages it may import (besides itself and boite.errors)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": set(),
    "sources": {"core"},
    "transforms": {"core", "sources"},
    "features": {"core", "transforms"},
    "fairness": {"core"},
    "training": {"core", "features", "fairness"},
    "registry": {"core", "fairness"},
    "serving": {"core", "features", "registry"},
    "monitoring": {"core", "features", "registry", "fairness"},
    "lineage": {"core"},
    "cost": {"core"},
}
EVERYTHING_ABOVE = set(ALLOWED)
ALLOWED["pipeline"] = EVERYTHING_ABOVE
ALLOWED["cli"] = EVERYTHING_ABOVE | {"pipeline"}
ALLOWED["ui"] = EVERYTHING_ABOVE | {"pipeline"}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_package_has_a_rule() -> None:
    layers = {_layer(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "_examples"}
    assert layers <= set(ALLOWED), f"add a layering rule for {layers - set(ALLOWED)}"


def test_imports_point_upstream() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer in ("__init__", "_examples"):
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "boite" or len(parts) < 2:
                continue
            target = parts[1]
            if target in (layer, "errors"):
                continue
            if target not in ALLOWED[layer]:
                rel = path.relative_to(PACKAGE.parent)
                violations.append(f"{rel}:{line} ({layer}) imports boite.{target}")
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a checker that can never fail: a downstream import is found.
    bad = tmp_path / "x.py"
    bad.write_text("from boite.pipeline.project import Project\n")
    assert _imports(bad) == [(1, "boite.pipeline.project")]
    assert "pipeline" not in ALLOWED["core"]
