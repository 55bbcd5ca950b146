"""The HTTP load client of benchmarks/serving.py (not a benchmark of its own).

`wrk` is not installed here, so this is a small client on raw asyncio
protocols (uvloop when importable), HTTP/1.1 with keep-alive: each of the
``--concurrency`` connections sends one request, waits for the whole response
and sends the next one (a closed loop, as wrk does). No HTTP library sits in
the way: a request is a prebuilt byte string, and a response is parsed only as
far as its status line, ``Content-Length`` or chunked framing.

It is bounded in every direction: at most ``--requests`` measured requests and
at most ``--seconds`` of measuring (whichever comes first), the warm-up
likewise (``--warmup`` requests, at most 2 s), every request at most
``--timeout`` seconds; a connection that fails is reopened for the next
request, and a failed or non-2xx request counts as an error.

The bodies are JSON lines in ``--bodies``, sent in turn (a different entity or
row on each request). It prints one JSON object on its last line: the count,
errors, wall seconds, requests/s, latency percentiles in milliseconds (from
per-request ``perf_counter_ns`` timings) and the client's own CPU use over the
measured wall time. A client CPU share near 100 % means the client, not the
server, set the pace (`--cpu N` pins it to one CPU; serving.py does so with `--pin`).

    .venv/bin/python benchmarks/loadgen.py --port 8000 --path /predict \
        --bodies bodies.jsonl --concurrency 8 --requests 20000 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` sends bytes and returns the response's status."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None  # uvloop's is not a subclass
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse_response(self.buf)
        except ValueError as exc:
            waiter.set_exception(exc)
            return
        if parsed is not None:
            status, used, close = parsed
            del self.buf[:used]
            if close:
                self.closed = True
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, data: bytes, timeout: float) -> int:
        assert self.transport is not None
        waiter = self.loop.create_future()
        self.waiter = waiter

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(TimeoutError(f"no response within {timeout} s"))

        handle = self.loop.call_later(timeout, expire)
        self.transport.write(data)
        try:
            return await waiter
        finally:
            handle.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def parse_response(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes used, server closes) of the first complete response in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1."):
        raise ValueError(f"not an HTTP/1.x response: {bytes(buf[:40])!r}")
    status = int(head[9:12])
    close = b"\r\nconnection: close" in head
    start = end + 4
    pos = head.find(b"\r\ncontent-length:")
    if pos >= 0:
        stop = head.find(b"\r\n", pos + 2)
        length = int(head[pos + 17 : stop if stop >= 0 else len(head)])
        return (status, start + length, close) if len(buf) >= start + length else None
    if b"\r\ntransfer-encoding: chunked" in head:
        pos = start
        while True:  # bounded by the buffer: each turn moves pos forward or returns
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if buf[line_end : line_end + 4] == b"\r\n\r\n":
                    return status, line_end + 4, close
                return (status, trailer_end + 4, close) if trailer_end >= 0 else None
            pos = line_end + 2 + size + 2
            if pos > len(buf):
                return None
    if status in (204, 304) or 100 <= status < 200:
        return status, start, close
    raise ValueError("a response without Content-Length or chunked framing is not supported")


def build_requests(host: str, port: int, path: str, bodies: list[bytes]) -> list[bytes]:
    return [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


async def run(args: argparse.Namespace, requests: list[bytes]) -> dict[str, object]:
    loop = asyncio.get_running_loop()

    async def connect() -> Connection:
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: Connection(loop), args.host, args.port), args.timeout
        )
        return protocol

    conns = [await connect() for _ in range(args.concurrency)]
    latencies: list[int] = []
    errors: list[str] = []
    state = {"next": 0, "limit": 0, "deadline": 0.0, "record": False}

    async def worker(slot: int) -> None:
        while True:  # bounded: by the request count and the deadline
            i = state["next"]
            if i >= state["limit"] or time.perf_counter() >= state["deadline"]:
                return
            state["next"] = i + 1
            conn = conns[slot]
            if conn.closed:
                try:
                    conn = conns[slot] = await connect()
                except (OSError, TimeoutError) as exc:
                    errors.append(f"connect: {exc}")
                    await asyncio.sleep(0.01)
                    continue
            start = time.perf_counter_ns()
            try:
                status = await conn.request(requests[i % len(requests)], args.timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn.closed = True
                continue
            elapsed = time.perf_counter_ns() - start
            if state["record"]:
                latencies.append(elapsed)
            if not 200 <= status < 300:
                errors.append(f"HTTP {status}")

    async def phase(count: int, seconds: float, record: bool) -> float:
        state.update(next=0, limit=count, deadline=time.perf_counter() + seconds, record=record)
        start = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in range(args.concurrency)))
        return time.perf_counter() - start

    await phase(args.warmup, min(2.0, args.seconds), record=False)
    warmup_sent = min(state["next"], args.warmup)
    warmup_errors = list(errors)
    errors.clear()
    cpu0 = time.process_time()
    wall = await phase(args.requests, args.seconds, record=True)
    cpu = time.process_time() - cpu0
    for conn in conns:
        conn.close()
    ms = sorted(v / 1e6 for v in latencies)

    def pct(p: float) -> float | None:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else None

    return {
        "concurrency": args.concurrency,
        "completed": len(ms),
        "errors": len(errors),
        "error_sample": sorted(set(errors))[:3],
        "warmup_sent": warmup_sent,
        "warmup_errors": len(warmup_errors),
        "wall_s": wall,
        "rps": len(ms) / wall if wall > 0 else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": ms[-1] if ms else None,
        "mean_ms": sum(ms) / len(ms) if ms else None,
        "client_cpu": cpu / wall if wall > 0 else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="the URL path to POST to")
    parser.add_argument("--bodies", type=Path, required=True, help="JSON lines, one body each")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests at most")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time at most")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests (<= 2 s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen only loads 127.0.0.1")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line.strip()]
    if not bodies:
        raise SystemExit(f"{args.bodies} holds no request body")
    requests = build_requests(args.host, args.port, args.path, bodies)
    try:
        import uvloop

        runner = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner = asyncio.run
        loop_name = "asyncio"
    result = runner(run(args, requests))
    result["loop"] = loop_name
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
