"""A server in the background and bounded traffic to it: for the quickstart, demos and
smoke tests. Only ever 127.0.0.1; every loop is bounded in count and in time."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from boite.errors import InternalError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_background(
    root: Path, env: str, *, port: int | None = None, startup_seconds: float = 120.0
) -> Iterator[str]:
    """``boite serve`` for the project at ``root`` until the block ends (then SIGTERM,
    so that the prediction log is flushed); yields its base URL."""
    port = port or free_port()
    command = [
        sys.executable,
        "-c",
        "from boite.cli.main import main; main()",
        "serve",
        "--env",
        env,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_seconds
        while not _ready(port):
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise InternalError(f"the server stopped while starting: {err.strip()[-2000:]}")
            if time.monotonic() > deadline:
                raise InternalError(f"the server did not become ready in {startup_seconds:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/v2/health/ready")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@dataclass(frozen=True)
class TrafficReport:
    ok: int
    errors: int
    drifted: int
    p50_ms: float
    p99_ms: float
    mean_score: float
    mean_drifted: float


def send_traffic(
    url: str,
    model: str,
    entities: Sequence[str],
    *,
    requests: int,
    entity_key: str = "customer_id",
    drifted_share: float = 0.0,
    drift: Mapping[str, Any] | None = None,
    seconds: float = 60.0,
    seed: int = 0,
) -> TrafficReport:
    """``requests`` one-entity predict calls on one keep-alive connection (stopping
    early after ``seconds``); a ``drifted_share`` of them sends inline ``drift``
    values over the online features, as a shift in the population would."""
    host, _, port = url.removeprefix("http://").partition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise InternalError("traffic is only ever sent to the loopback address")
    drift = dict(drift or {"days_since_last": 1, "orders_30d": 6, "spend_30d": 450.0})
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies: list[float] = []
    usual: list[float] = []
    shifted: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    path = f"/v1/models/{model}/predict"
    try:
        for i in range(requests):
            if time.monotonic() > deadline:
                break
            drifted = rng.random() < drifted_share
            body: dict[str, Any] = {"entities": [{entity_key: rng.choice(entities)}]}
            if drifted:
                body["features"] = [drift]
            started = time.perf_counter()
            conn.request(
                "POST",
                path,
                orjson.dumps(body),
                {"content-type": "application/json", "x-request-id": f"traffic-{seed}-{i}"},
            )
            response = conn.getresponse()
            payload = response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors += 1
                continue
            score = orjson.loads(payload)["predictions"][0]
            (shifted if drifted else usual).append(float(score))
    finally:
        conn.close()
    latencies.sort()

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    return TrafficReport(
        ok=len(latencies) - errors,
        errors=errors,
        drifted=len(shifted),
        p50_ms=latencies[len(latencies) // 2] if latencies else float("nan"),
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
        mean_score=mean(usual),
        mean_drifted=mean(shifted),
    )
