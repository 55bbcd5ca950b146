"""Metering: the wall time, CPU time and peak memory of a step.

Peak memory is sampled from a background thread, because the engine allocates
outside Python where ``tracemalloc`` cannot see. CPU time is the process's: when
steps run in parallel their CPU seconds overlap, and the ledger says so.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import psutil

_INTERVAL_S = 0.02


@dataclass
class Usage:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0


class Meter:
    """Measure the block it wraps: ``with Meter() as m: ...; m.usage``."""

    def __init__(self) -> None:
        self.usage = Usage()
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(_INTERVAL_S):
            rss = self._process.memory_info().rss
            if rss > self.usage.peak_rss_bytes:
                self.usage.peak_rss_bytes = rss

    def __enter__(self) -> Meter:
        self._wall = time.perf_counter()
        times = self._process.cpu_times()
        self._cpu = times.user + times.system
        self.usage.peak_rss_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, name="boite-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        times = self._process.cpu_times()
        self.usage.cpu_s = times.user + times.system - self._cpu
        self.usage.wall_s = time.perf_counter() - self._wall
        rss = self._process.memory_info().rss
        self.usage.peak_rss_bytes = max(self.usage.peak_rss_bytes, rss)
