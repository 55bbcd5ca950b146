"""A trained, promoted retail project, and its production environment served over real
HTTP on 127.0.0.1 (``serve`` comes from tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boite.pipeline.project import open_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def retail_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/retail built, repurchase@1 in production and @2 (another search) challenger."""
    root = tmp_path_factory.mktemp("serving") / "retail"
    shutil.copytree(REPO / "examples" / "retail", root, ignore=shutil.ignore_patterns(".boite"))
    project = open_project(root)
    project.run()
    first = project.train("repurchase", trials=0).version
    project.promote(first.ref, to="production", reason="first")
    second = project.train("repurchase", trials=2).version
    assert second.version != first.version
    project.promote(second.ref, to="challenger", reason="try it", force=True)
    project.close()
    return root


@pytest.fixture(scope="module")
def server(retail_root: Path, serve: Any) -> Iterator[Any]:
    """The retail project's production environment, served for a whole test module."""
    with serve(retail_root) as running:
        yield running
