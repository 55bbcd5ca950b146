"""Access logs: one JSON line per request, written in batches by a thread.

The ``logging`` module costs tens of microseconds a record (a LogRecord, locks,
formatting), as much as scoring a row; a request here only appends a string to
a list. Lines reach the stream within ``interval`` seconds, and at exit.
"""

from __future__ import annotations

import atexit
import threading
from typing import TextIO


class AccessLog:
    def __init__(self, stream: TextIO, *, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="boite-access", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, line: str) -> None:
        self._lines.append(line)  # atomic under the GIL: no lock on the request path

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not take the server down

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.flush()


_current: AccessLog | None = None


def enable(stream: TextIO) -> AccessLog:
    global _current
    disable()
    _current = AccessLog(stream)
    return _current


def disable() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None


def current() -> AccessLog | None:
    return _current
