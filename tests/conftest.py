"""Shared fixtures: small boite projects written to real folders, and a real HTTP server
for a project's environment."""

from __future__ import annotations

import contextlib
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from boite.pipeline.project import Project

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


class Server:
    """The app of one environment under uvicorn in a thread: real HTTP on loopback."""

    def __init__(self, project: Project, env: str) -> None:
        import uvicorn

        from boite.pipeline.serving import create_app
        from boite.serving.server import NoDelayHttpToolsProtocol

        self.project = project
        self.app = create_app(project, env)
        from boite.serving.traffic import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            http=NoDelayHttpToolsProtocol,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextlib.contextmanager
def serving(root: Path, env: str = "production") -> Iterator[Server]:
    from boite.pipeline.project import open_project

    project = open_project(root)
    try:
        with Server(project, env) as server:
            yield server
    finally:
        project.close()


@pytest.fixture(scope="session")
def serve() -> object:
    """``with serve(root, env) as server:`` a real server for the project at ``root``."""
    return serving
