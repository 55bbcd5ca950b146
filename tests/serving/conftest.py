"""A trained, promoted retail project and a real HTTP server on 127.0.0.1 for it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from boite.pipeline.project import Project, open_project
from boite.serving.server import NoDelayHttpToolsProtocol

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Server:
    """The app of one environment under uvicorn in a thread: real HTTP on loopback."""

    def __init__(self, project: Project, env: str) -> None:
        from boite.pipeline.serving import create_app

        self.project = project
        self.app = create_app(project, env)
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


@pytest.fixture(scope="module")
def server(retail_root: Path) -> Iterator[Server]:
    """The retail project's production environment, served for a whole test module."""
    with serving(retail_root) as running:
        yield running
