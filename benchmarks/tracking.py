"""Experiment tracking: boite's ledger against MLflow with a local SQLite store.

Targets (issue: models), boite against MLflow in the same run on the same machine:

- logging 10,000 metric values one call at a time: at least 30x faster;
- creating 1,000 runs: at least 30x faster;
- searching them by a metric filter: at least 20x faster.

What is measured on boite's side is what a user of its Python API can write
today (boite.core.ledger.Ledger on SQLite, WAL, the project's default):

metrics   The Ledger has no call that logs one metric value (no log_metric, and
          no step: metrics are a dict per run, so one key holds one value). So
          the target's call cannot be made; the script measures instead
            - finish_run(run, metrics={10,000 keys}): one call, the closest API;
            - log_runs([RunEntry(metrics={1,000 keys})]) x 10: the batched API
              (it makes 10 runs, not one);
            - "no API": 10,000 one-row transactions through Ledger.engine with
              SQLAlchemy Core, i.e. what a log_metric written like start_run
              would cost. It is not boite's API; it says whether adding one in
              the Ledger's style could meet the target.
runs      1,000 x (start_run(params=2) + finish_run(metrics=2)), and the same
          1,000 runs as one log_runs call.
search    The Ledger has no search by metric (only runs(step, limit),
          latest_runs, metrics(run_id)). Measured: the public-API way (runs()
          then metrics(id) for each run, filtered in Python) and, as the closest
          thing to a search call, one SQLAlchemy query over the ledger's tables
          (runs whose 'auc' > T, with their metrics), returning RunRecords.

Peers in the same repetition, alternating which goes first:

- MLflow (benchmarks/.venv-mlflow, see MLFLOW.md) through mlflow_peer.py, one
  fresh process per measurement, store sqlite:///… in the same temporary folder;
  timings exclude start-up, imports and opening the store;
- bare sqlite3 in WAL mode (synchronous=NORMAL, as the ledger), the floor.

The disk's commit latency (sqlite3 with its default rollback journal, which is
what MLflow's SQLite store uses) is printed too: MLflow's times follow it.

    .venv/bin/python benchmarks/tracking.py [--metrics 10000] [--runs 1000] [--repeat 3] [--check]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine, median, spread, table

HERE = Path(__file__).resolve().parent
MLFLOW_PYTHON = HERE / ".venv-mlflow" / "bin" / "python"
PEER = HERE / "mlflow_peer.py"

TARGET_METRICS = 30.0
TARGET_RUNS = 30.0
TARGET_SEARCH = 20.0
BATCH = 1000  # values per batch call, as MLflow's log_batch limit


def metric_value(i: int) -> float:
    return ((i * 7919) % 10_007) / 10_007


def auc_of(i: int) -> float:
    return ((i * 7919) % 1000) / 1000


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


# --- MLflow --------------------------------------------------------------------

CHILD_ENV = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")


def mlflow_child(python: Path, args: list[str], cwd: Path, timeout: float = 1800) -> dict:
    argv = [str(python), str(PEER), *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=CHILD_ENV, cwd=cwd
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-5000:]}"
        )
    return json.loads(lines[-1])


# --- boite ---------------------------------------------------------------------


def open_ledger(folder: Path):  # type: ignore[no-untyped-def]
    from boite.core.ledger import Ledger

    folder.mkdir(parents=True, exist_ok=True)
    return Ledger("sqlite:///ledger.db", root=folder)


def boite_finish_many(folder: Path, n: int) -> tuple[float, float]:
    """One run; its n metrics through one finish_run call (the closest API)."""
    ledger = open_ledger(folder)
    run_id = ledger.start_run("train", "train")
    metrics = {f"loss_{i}": metric_value(i) for i in range(n)}
    wall, cpu, _ = timed(lambda: ledger.finish_run(run_id, status="succeeded", metrics=metrics))
    assert len(ledger.metrics(run_id)) == n
    ledger.close()
    return wall, cpu


def boite_log_runs_batches(folder: Path, n: int) -> tuple[float, float]:
    """n metric values as ceil(n/1000) log_runs calls of one RunEntry each (makes runs)."""
    from boite.core.ledger import RunEntry

    ledger = open_ledger(folder)
    now = datetime.now(UTC)
    entries = [
        RunEntry(
            step="train",
            kind="trial",
            status="succeeded",
            params={},
            started_at=now,
            wall_s=0.0,
            metrics={f"loss_{i}": metric_value(i) for i in range(first, min(n, first + BATCH))},
        )
        for first in range(0, n, BATCH)
    ]

    def go() -> list[str]:
        return [i for e in entries for i in ledger.log_runs([e])]

    wall, cpu, ids = timed(go)
    assert sum(len(ledger.metrics(i)) for i in ids) == n
    ledger.close()
    return wall, cpu


def boite_engine_rows(folder: Path, n: int) -> tuple[float, float]:
    """No API: n one-row transactions on Ledger.engine, as a log_metric in the Ledger's style."""
    import sqlalchemy as sa

    from boite.core import ledger_schema as t
    from boite.core.ledger import utcnow

    ledger = open_ledger(folder)
    run_id = ledger.start_run("train", "train")
    insert = t.metrics.insert()

    def go() -> None:
        for i in range(n):
            with ledger.engine.begin() as conn:
                conn.execute(
                    insert.values(
                        run_id=run_id,
                        key="loss",
                        value=metric_value(i),
                        step=i,
                        recorded_at=utcnow(),
                    )
                )

    wall, cpu, _ = timed(go)
    with ledger.engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count()).select_from(t.metrics).where(t.metrics.c.run_id == run_id)
        ).scalar()
    assert stored == n, stored
    ledger.close()
    return wall, cpu


def boite_runs(folder: Path, n: int) -> tuple[float, float]:
    ledger = open_ledger(folder)

    def go() -> None:
        for i in range(n):
            run_id = ledger.start_run(
                "trial", "train", params={"i": i, "learning_rate": 0.01 + (i % 10) / 100}
            )
            ledger.finish_run(
                run_id, status="succeeded", metrics={"auc": auc_of(i), "loss": 1 - auc_of(i)}
            )

    wall, cpu, _ = timed(go)
    assert len(ledger.runs()) == n
    ledger.close()
    return wall, cpu


def boite_log_runs(folder: Path, n: int) -> tuple[float, float]:
    from boite.core.ledger import RunEntry

    ledger = open_ledger(folder)
    now = datetime.now(UTC)
    entries = [
        RunEntry(
            step="trial",
            kind="train",
            status="succeeded",
            params={"i": i, "learning_rate": 0.01 + (i % 10) / 100},
            started_at=now,
            wall_s=0.0,
            metrics={"auc": auc_of(i), "loss": 1 - auc_of(i)},
        )
        for i in range(n)
    ]
    wall, cpu, _ = timed(lambda: ledger.log_runs(entries))
    assert len(ledger.runs()) == n
    ledger.close()
    return wall, cpu


def boite_search_api(ledger, threshold: float) -> list:  # type: ignore[no-untyped-def]
    """What the public API allows: every run, then each run's metrics, filtered in Python."""
    out = []
    for run in ledger.runs():
        metrics = ledger.metrics(run.id)
        if metrics.get("auc", float("-inf")) > threshold:
            out.append((run, metrics))
    return out


def boite_search_query(ledger, threshold: float) -> list:  # type: ignore[no-untyped-def]
    """No API: one SQLAlchemy query over the ledger's tables, runs as RunRecords with metrics."""
    import sqlalchemy as sa

    from boite.core import ledger as ledger_module
    from boite.core import ledger_schema as t

    m = t.metrics
    matching = sa.select(m.c.run_id).where(m.c.key == "auc", m.c.value > threshold)
    runs_q = sa.select(t.runs).where(t.runs.c.id.in_(matching)).order_by(t.runs.c.started_at.desc())
    metrics_q = (
        sa.select(m.c.run_id, m.c.key, m.c.value).where(m.c.run_id.in_(matching)).order_by(m.c.id)
    )
    with ledger.engine.connect() as conn:
        runs = [ledger_module._run(r) for r in conn.execute(runs_q)]
        metrics: dict[str, dict[str, float]] = {}
        for run_id, key, value in conn.execute(metrics_q):
            metrics.setdefault(run_id, {})[key] = value
    return [(r, metrics.get(r.id, {})) for r in runs]


# --- bare sqlite3 (the floor) ----------------------------------------------------

FLOOR_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, step TEXT, kind TEXT, status TEXT, params TEXT,
                   started_at TEXT, ended_at TEXT, host TEXT, pid INTEGER);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id TEXT, key TEXT, value REAL,
                      step INTEGER, recorded_at TEXT);
CREATE INDEX ix_metrics_run_key ON metrics (run_id, key);
"""


def floor_connect(path: Path, *, wal: bool = True) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(FLOOR_SCHEMA)
    return con


def floor_metrics(path: Path, n: int) -> tuple[float, float]:
    con = floor_connect(path)

    def go() -> None:
        for i in range(n):
            con.execute("BEGIN")
            con.execute(
                "INSERT INTO metrics (run_id, key, value, step, recorded_at) VALUES (?,?,?,?,?)",
                ("r", "loss", metric_value(i), i, datetime.now(UTC).isoformat()),
            )
            con.execute("COMMIT")

    wall, cpu, _ = timed(go)
    con.close()
    return wall, cpu


def disk_commit_ms(path: Path, n: int = 100) -> float:
    """ms per one-row commit with sqlite3's default rollback journal (fsyncs, as MLflow's)."""
    con = floor_connect(path, wal=False)
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO metrics (run_id, key, value) VALUES ('r', 'loss', ?)", (i,))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed / n * 1000


def floor_runs(path: Path, n: int) -> tuple[float, float]:
    con = floor_connect(path)
    host = socket.gethostname()

    def go() -> None:
        for i in range(n):
            run_id = os.urandom(16).hex()
            now = datetime.now(UTC).isoformat()
            con.execute("BEGIN")
            con.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    "trial",
                    "train",
                    "running",
                    json.dumps({"i": i, "learning_rate": 0.01 + (i % 10) / 100}),
                    now,
                    None,
                    host,
                    os.getpid(),
                ),
            )
            con.execute("COMMIT")
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO metrics (run_id, key, value, recorded_at) VALUES (?,?,?,?)",
                [(run_id, "auc", auc_of(i), now), (run_id, "loss", 1 - auc_of(i), now)],
            )
            con.execute("UPDATE runs SET status='succeeded', ended_at=? WHERE id=?", (now, run_id))
            con.execute("COMMIT")

    wall, cpu, _ = timed(go)
    con.close()
    return wall, cpu


def floor_search(path: Path, threshold: float) -> list:
    con = sqlite3.connect(path)
    matching = "SELECT run_id FROM metrics WHERE key = 'auc' AND value > ?"
    runs = con.execute(
        f"SELECT * FROM runs WHERE id IN ({matching}) ORDER BY started_at DESC", (threshold,)
    ).fetchall()
    metrics: dict[str, dict[str, float]] = {}
    for run_id, key, value in con.execute(
        f"SELECT run_id, key, value FROM metrics WHERE run_id IN ({matching}) ORDER BY id",
        (threshold,),
    ):
        metrics.setdefault(run_id, {})[key] = value
    con.close()
    return [(r, metrics.get(r[0], {})) for r in runs]


def inner_median(fn: Callable[[], list], inner: int) -> tuple[float, int]:
    times = []
    count = -1
    for _ in range(inner):
        gc.collect()
        start = time.perf_counter()
        found = fn()
        times.append(time.perf_counter() - start)
        count = len(found)
    return median(times), count


# --- profile ---------------------------------------------------------------------


def profile(tmp: Path) -> None:
    import cProfile
    import pstats

    for name, fn in (
        ("200 x (start_run + finish_run)", lambda: boite_runs(tmp / "prof-runs", 200)),
        (
            "2,000 one-row transactions on Ledger.engine",
            lambda: boite_engine_rows(tmp / "prof-rows", 2000),
        ),
    ):
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
        print(f"\ncProfile of {name} (ledger opening included; top 25 by internal time):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


# --- main ------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000, help="metric values (1e4)")
    parser.add_argument("--runs", type=int, default=1000, help="runs to create (1000)")
    parser.add_argument("--threshold", type=float, default=0.5, help="search: auc > T")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--inner", type=int, default=3, help="searches per repetition (median)")
    parser.add_argument("--mlflow-python", type=Path, default=MLFLOW_PYTHON)
    parser.add_argument("--no-mlflow", action="store_true", help="boite and sqlite3 only")
    parser.add_argument("--tmpdir", type=Path, help="where the stores go (default: the system's)")
    parser.add_argument("--json", type=Path, help="write every measurement there")
    parser.add_argument("--profile", action="store_true", help="cProfile boite's write paths")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    import sqlalchemy

    import boite

    use_mlflow = not args.no_mlflow and args.mlflow_python.exists()
    if not args.no_mlflow and not use_mlflow:
        print(
            f"no MLflow environment at {args.mlflow_python} (see benchmarks/MLFLOW.md): "
            "running without the MLflow peer"
        )
    tmp = Path(tempfile.mkdtemp(prefix="boite-bench-tracking-", dir=args.tmpdir))
    expected = sum(auc_of(i) > args.threshold for i in range(args.runs))
    res: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        res.setdefault(key, []).append(value)

    try:
        template = tmp / "mlflow-template.db"
        mlflow_version = "-"
        if use_mlflow:
            info = mlflow_child(
                args.mlflow_python,
                ["init", "--db", str(template), "--artifacts", str(tmp / "mlartifacts")],
                tmp,
            )
            mlflow_version = info["mlflow_version"]
        print(
            f"tracking: {args.metrics:,} metric values, {args.runs:,} runs, search auc > "
            f"{args.threshold} ({expected} match), {args.repeat} repetitions; {machine()}; "
            f"boite {boite.__version__}, SQLAlchemy {sqlalchemy.__version__}, sqlite "
            f"{sqlite3.sqlite_version}, MLflow {mlflow_version}; stores in {tmp.parent}"
        )
        load_before = os.getloadavg()[0]
        for rep in range(args.repeat):
            d = tmp / f"rep{rep}"
            d.mkdir()
            started = time.perf_counter()

            def mlflow_part(kind: str, d: Path = d) -> None:
                if not use_mlflow:
                    return
                if kind == "metrics":
                    for mode in ("single", "batch"):
                        db = d / f"mlflow-{mode}.db"
                        shutil.copy(template, db)
                        out = mlflow_child(
                            args.mlflow_python,
                            ["metrics", "--db", str(db), "--n", str(args.metrics), "--mode", mode],
                            tmp,
                        )
                        add(f"mlflow metrics {mode}", out["seconds"])
                        add(f"mlflow metrics {mode} cpu", out["cpu_s"])
                elif kind == "runs":
                    db = d / "mlflow-runs.db"
                    shutil.copy(template, db)
                    out = mlflow_child(
                        args.mlflow_python, ["runs", "--db", str(db), "--n", str(args.runs)], tmp
                    )
                    add("mlflow runs", out["seconds"])
                    add("mlflow runs cpu", out["cpu_s"])
                else:
                    out = mlflow_child(
                        args.mlflow_python,
                        [
                            "search",
                            "--db",
                            str(d / "mlflow-runs.db"),
                            "--threshold",
                            str(args.threshold),
                            "--inner",
                            str(args.inner),
                        ],
                        tmp,
                    )
                    for k in ("client", "pandas", "list_all"):
                        add(f"mlflow search {k}", out[f"{k}_s"])
                    if out["client_count"] != expected or out["pandas_count"] != expected:
                        raise SystemExit(
                            f"MLflow found {out['client_count']} runs, expected {expected}"
                        )

            def boite_part(kind: str, d: Path = d) -> None:
                if kind == "metrics":
                    wall, cpu = boite_finish_many(d / "boite-finish", args.metrics)
                    add("boite finish_run", wall)
                    add("boite finish_run cpu", cpu)
                    wall, cpu = boite_log_runs_batches(d / "boite-logruns", args.metrics)
                    add("boite log_runs batches", wall)
                    wall, cpu = boite_engine_rows(d / "boite-rows", args.metrics)
                    add("boite engine rows", wall)
                    add("boite engine rows cpu", cpu)
                    wall, cpu = floor_metrics(d / "floor-metrics.db", args.metrics)
                    add("sqlite3 metrics", wall)
                    add("disk commit ms", disk_commit_ms(d / "fsync.db"))
                elif kind == "runs":
                    wall, cpu = boite_runs(d / "boite-runs", args.runs)
                    add("boite runs", wall)
                    add("boite runs cpu", cpu)
                    wall, cpu = boite_log_runs(d / "boite-batch", args.runs)
                    add("boite log_runs", wall)
                    wall, cpu = floor_runs(d / "floor-runs.db", args.runs)
                    add("sqlite3 runs", wall)
                else:
                    ledger = open_ledger(d / "boite-runs")
                    for key, fn in (
                        ("boite search api", lambda: boite_search_api(ledger, args.threshold)),
                        ("boite search query", lambda: boite_search_query(ledger, args.threshold)),
                        ("boite list runs()", lambda: ledger.runs()),
                    ):
                        seconds, count = inner_median(fn, args.inner)
                        add(key, seconds)
                        if key != "boite list runs()" and count != expected:
                            raise SystemExit(f"{key} found {count} runs, expected {expected}")
                    ledger.close()
                    seconds, count = inner_median(
                        lambda: floor_search(d / "floor-runs.db", args.threshold), args.inner
                    )
                    add("sqlite3 search", seconds)
                    assert count == expected, count

            for kind in ("metrics", "runs", "search"):
                # alternate which side goes first, so neither always meets a warmer machine
                first, second = (mlflow_part, boite_part) if rep % 2 else (boite_part, mlflow_part)
                first(kind)
                second(kind)
            last = ", ".join(f"{k} {v[-1]:.3f}" for k, v in res.items() if not k.endswith("cpu"))
            print(
                f"  repetition {rep + 1}/{args.repeat}: {time.perf_counter() - started:.0f} s, "
                f"load {os.getloadavg()[0]:.2f}: {last}",
                flush=True,
            )
            shutil.rmtree(d, ignore_errors=True)
        load_after = os.getloadavg()[0]

        def med(key: str) -> float:
            return median(res[key]) if key in res else float("nan")

        def row(label: str, key: str, peer: str | None, *, api: str) -> list[str] | None:
            if key not in res:
                return None
            values = res[key]
            ratio = "-"
            paired = "-"
            if peer and peer in res:
                ratio = f"{med(peer) / med(key):.1f}×"
                paired = f"{median([p / v for p, v in zip(res[peer], values, strict=True)]):.1f}×"
            return [label, api, f"{med(key):.4f}", spread(values), ratio, paired]

        n, r = args.metrics, args.runs
        single, batch = "mlflow metrics single", "mlflow metrics batch"
        rows: list[list[str] | None] = [
            [f"— {n:,} metric values —", "", "", "", "", ""],
            row(f"MLflow mlflow.log_metric ×{n:,}", single, single, api="API"),
            row(f"MLflow log_batch ×{-(-n // BATCH)} (1,000 each)", batch, single, api="API"),
            row(
                f"boite finish_run(metrics={{{n:,} keys}}) ×1",
                "boite finish_run",
                single,
                api="API, 1 call",
            ),
            row(
                f"boite log_runs ×{-(-n // BATCH)} (1 RunEntry of 1,000)",
                "boite log_runs batches",
                single,
                api=f"API, makes {-(-n // BATCH)} runs",
            ),
            row(
                f"boite 1-row txn on Ledger.engine ×{n:,}",
                "boite engine rows",
                single,
                api="NO API (projection)",
            ),
            row(f"sqlite3 WAL 1-row commit ×{n:,}", "sqlite3 metrics", single, api="floor"),
            [f"— {r:,} runs (2 params, 2 metrics) —", "", "", "", "", ""],
            row(
                f"MLflow start_run/log_params/log_metrics/end_run ×{r:,}",
                "mlflow runs",
                "mlflow runs",
                api="API",
            ),
            row(f"boite start_run + finish_run ×{r:,}", "boite runs", "mlflow runs", api="API"),
            row(
                f"boite log_runs([{r:,} RunEntry]) ×1",
                "boite log_runs",
                "mlflow runs",
                api="API, batched",
            ),
            row(
                f"sqlite3 WAL 2 commits per run ×{r:,}", "sqlite3 runs", "mlflow runs", api="floor"
            ),
            [f"— search auc > {args.threshold} ({expected} of {r:,} runs) —", "", "", "", "", ""],
            row(
                "MLflow MlflowClient.search_runs",
                "mlflow search client",
                "mlflow search client",
                api="API",
            ),
            row(
                "MLflow mlflow.search_runs (pandas)",
                "mlflow search pandas",
                "mlflow search client",
                api="API",
            ),
            row(
                "boite runs() + metrics(id) per run",
                "boite search api",
                "mlflow search client",
                api="API (no filter)",
            ),
            row(
                "boite SQLAlchemy query (runs + metrics)",
                "boite search query",
                "mlflow search client",
                api="NO API (query)",
            ),
            row("sqlite3 same SQL", "sqlite3 search", "mlflow search client", api="floor"),
            row(
                "MLflow search_runs, no filter (list all)",
                "mlflow search list_all",
                "mlflow search list_all",
                api="API",
            ),
            row(
                "boite Ledger.runs() (list all)",
                "boite list runs()",
                "mlflow search list_all",
                api="API",
            ),
        ]
        print(
            f"(load average {load_before:.2f} -> {load_after:.2f}; disk commit with a rollback "
            f"journal, as MLflow's store: median {med('disk commit ms'):.2f} ms, "
            f"{spread(res['disk commit ms'])} ms)\n"
        )
        header = ["what", "kind", "median s", "min–max s", "MLflow ÷ this (medians)", "paired"]
        print(table([x for x in rows if x is not None], header))
        print(
            "\nprocess CPU s (medians): "
            + ", ".join(
                f"{k.removesuffix(' cpu')} {med(k):.3f}" for k in sorted(res) if k.endswith(" cpu")
            )
        )
        if args.profile:
            profile(tmp)

        verdicts: list[tuple[str, bool]] = []
        if use_mlflow:
            print()
            closest = med(single) / med("boite finish_run")
            projection = med(single) / med("boite engine rows")
            print(
                f"target 1, {n:,} values one call at a time >= {TARGET_METRICS:.0f}× faster: "
                f"MISS — the Ledger has no call that logs one value (closest API, one "
                f"finish_run with {n:,} keys: {closest:.0f}×; a one-row transaction per value "
                f"on Ledger.engine, no API: {projection:.1f}×)"
            )
            verdicts.append(("metrics one at a time", False))
            ratio = med("mlflow runs") / med("boite runs")
            batched = med("mlflow runs") / med("boite log_runs")
            ok = ratio >= TARGET_RUNS
            print(
                f"target 2, {r:,} runs >= {TARGET_RUNS:.0f}× faster: start_run + finish_run "
                f"{ratio:.1f}× -> {'PASS' if ok else 'MISS'} (log_runs batch: {batched:.0f}×)"
            )
            verdicts.append(("runs", ok))
            ratio = med("mlflow search client") / med("boite search query")
            api_ratio = med("mlflow search client") / med("boite search api")
            ok = ratio >= TARGET_SEARCH
            print(
                f"target 3, search by metric >= {TARGET_SEARCH:.0f}× faster: no Ledger API; "
                f"SQLAlchemy query {ratio:.1f}× -> {'PASS' if ok else 'MISS'} (as a query, "
                f"not an API); the public-API way (runs() + metrics(id)) {api_ratio:.1f}×"
            )
            verdicts.append(("search (query, no API)", ok))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "machine": machine(),
                        "boite": boite.__version__,
                        "mlflow": mlflow_version,
                        "sqlalchemy": sqlalchemy.__version__,
                        "sqlite": sqlite3.sqlite_version,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "load": [load_before, load_after],
                        "measurements": res,
                    },
                    indent=1,
                )
            )
        missed = [name for name, ok in verdicts if not ok]
        print(
            f"\ntracking: {'PASS' if not missed else 'MISS (' + ', '.join(missed) + ')'}"
            if verdicts
            else "\ntracking: no verdict without the MLflow peer"
        )
        return 1 if args.check and (missed or not verdicts) else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
