"""Running the app under uvicorn: one process or several workers, TCP_NODELAY on every
connection, structured access logs, graceful shutdown.

Why a protocol subclass: asyncio sets TCP_NODELAY on a new connection only when
the listening socket is recognised as TCP, and uvicorn issue #3149 reports its
``--workers`` mode losing the option, so that every keep-alive response waits
for the client's delayed ACK (about 40 ms a request). It did not reproduce with
uvicorn 0.54 here, but setting the option when each connection is made keeps it
on in every mode and version, at the cost of one system call per connection.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import os
import queue
import socket
import sys
import tempfile
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from boite.serving import accesslog


def _nodelay(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        _nodelay(transport)
        super().connection_made(transport)


_listener: logging.handlers.QueueListener | None = None


def configure_logging(*, access_log: bool) -> None:
    """Server messages as plain lines and access logs as JSON lines, on stderr.

    Both are written by threads, so a request never waits for the terminal or
    the file behind stderr.
    """
    global _listener
    if _listener is not None:
        _listener.stop()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, stream)
    _listener.start()
    atexit.register(_listener.stop)  # what is queued is written before the process ends
    handler = logging.handlers.QueueHandler(records)
    if access_log:
        accesslog.enable(sys.stderr)
    else:
        accesslog.disable()
    for name, level in (
        ("boite.serving", logging.INFO),
        ("boite.serving.log", logging.INFO),
    ):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def run(
    app: str | Any,
    *,
    host: str,
    port: int,
    workers: int = 1,
    access_log: bool = True,
    graceful_seconds: float = 10.0,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM: an ASGI app (one process), or the
    'module:function' that makes one in each worker process."""
    import uvicorn

    configure_logging(access_log=access_log)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # each worker writes its metrics here; /metrics sums them
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="boite-metrics-")
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        host=host,
        port=port,
        workers=workers,
        http=NoDelayHttpToolsProtocol,
        loop="auto",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(graceful_seconds),
        server_header=False,
        date_header=False,
    )
