"""Shared fixtures: small boite projects written to real folders."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RETAIL = REPO / "examples" / "retail"

MakeProject = Callable[..., Path]


def write_project(
    root: Path,
    yaml_text: str,
    transforms: Mapping[str, str] | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write boite.yaml, transforms/* and data files under ``root``; return ``root``.

    Texts are dedented, so tests can write them as indented triple-quoted strings;
    bytes are written as they are.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "boite.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    (root / "transforms").mkdir(exist_ok=True)
    for name, code in (transforms or {}).items():
        (root / "transforms" / name).write_text(textwrap.dedent(code), encoding="utf-8")
    for relpath, content in (files or {}).items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def make_project() -> MakeProject:
    """``make_project(root, yaml_text, transforms={"x.sql": ...}, files={"data/a.csv": ...})``.

    Returns ``root``, a real project folder (created if needed).
    """
    return write_project
