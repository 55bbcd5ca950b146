"""Experiment tracking: boite's ledger against MLflow with a local SQLite store.

Targets (issue: models), boite against MLflow in the same run on the same machine:

- logging 10,000 metric values one call at a time: at least 30x faster;
- creating 1,000 runs: at least 30x faster;
- searching them by a metric filter: at least 20x faster.

boite is measured through its public Python API, boite.core.ledger.Ledger on
SQLite (WAL, synchronous=NORMAL: the project's default store), in process, the
ledger opened before the clock starts:

metrics   10,000 x Ledger.log_metric(run, "loss", v, step=i) on one run: the
          unbuffered mode, the only one there is: each call is committed
          before it returns (as every ledger write). Also the batched call,
          10 x Ledger.log_metrics(run, [1,000 (key, value, step)]), one
          transaction each, shown against MLflow's log_batch.
runs      1,000 x (start_run(params=2) + finish_run(metrics=2)): two
          transactions per run, as MLflow's fluent API makes; and the same
          1,000 runs as one log_runs call (the batched API for search trials).
search    Ledger.search_runs(metric="auc", op=">", value=T) (one query), then
          Ledger.metrics_of(the runs found) (one query per 500 runs): the runs
          with their params and all their metrics, as MLflow's search returns
          them. And the unfiltered listing, Ledger.runs().

Peers in the same repetition, alternating which goes first:

- MLflow (benchmarks/.venv-mlflow, see MLFLOW.md) through mlflow_peer.py, one
  fresh process per measurement, store sqlite:///... in the same temporary folder:
  10,000 x mlflow.log_metric, 10 x MlflowClient.log_batch of 1,000,
  1,000 x start_run/log_params/log_metrics/end_run, and
  MlflowClient.search_runs(filter_string="metrics.auc > T"); timings exclude
  start-up, imports and opening the store;
- bare sqlite3 in WAL mode (synchronous=NORMAL, as the ledger), the floor.

The disk's commit latency (sqlite3 with its default rollback journal, which is
what MLflow's SQLite store uses) is printed too: MLflow's times follow it. The
ratios against the issue's reference figures for MLflow on this kind of machine
(34.5 s, 19.6 s, 0.43 s) are printed as well; the verdicts use the peer measured
in the same run.

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
# The MLflow figures on this kind of machine (medians): 10,000 single
# log_metric calls, 1,000 runs, listing them all.
REFERENCE = {"metrics": 34.5, "runs": 19.6, "list": 0.43}


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


def boite_log_metric(folder: Path, n: int) -> tuple[float, float]:
    """n x log_metric on one run, one call (and one commit) per value."""
    ledger = open_ledger(folder)
    run_id = ledger.start_run("train", "train")
    log = ledger.log_metric

    def go() -> None:
        for i in range(n):
            log(run_id, "loss", metric_value(i), step=i)

    wall, cpu, _ = timed(go)
    history = ledger.metric_history(run_id, "loss")
    assert len(history) == n and history[-1] == (n - 1, metric_value(n - 1)), len(history)
    ledger.close()
    return wall, cpu


def boite_log_metrics(folder: Path, n: int) -> tuple[float, float]:
    """n values as ceil(n/1000) log_metrics calls of 1,000 (key, value, step) each."""
    ledger = open_ledger(folder)
    run_id = ledger.start_run("train", "train")
    batches = [
        [("loss", metric_value(i), i) for i in range(first, min(n, first + BATCH))]
        for first in range(0, n, BATCH)
    ]

    def go() -> None:
        for batch in batches:
            ledger.log_metrics(run_id, batch)

    wall, cpu, _ = timed(go)
    assert len(ledger.metric_history(run_id, "loss")) == n
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


def boite_search(ledger, threshold: float) -> list:  # type: ignore[no-untyped-def]
    """The runs whose auc > threshold, with their params and all their metrics: two queries."""
    found = ledger.search_runs(metric="auc", op=">", value=threshold)
    metrics = ledger.metrics_of(run.id for run, _ in found)
    return [(run, metrics[run.id]) for run, _ in found]


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


def profile(tmp: Path, threshold: float) -> None:
    import cProfile
    import pstats

    def search() -> None:
        boite_runs(tmp / "prof-search", 1000)
        ledger = open_ledger(tmp / "prof-search")
        for _ in range(10):
            boite_search(ledger, threshold)
        ledger.close()

    for name, fn in (
        ("2,000 x log_metric", lambda: boite_log_metric(tmp / "prof-metrics", 2000)),
        ("200 x (start_run + finish_run)", lambda: boite_runs(tmp / "prof-runs", 200)),
        ("1,000 runs, then 10 x (search_runs + metrics_of)", search),
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
    parser.add_argument("--profile", action="store_true", help="cProfile boite's calls")
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
                    wall, cpu = boite_log_metric(d / "boite-metric", args.metrics)
                    add("boite log_metric", wall)
                    add("boite log_metric cpu", cpu)
                    wall, cpu = boite_log_metrics(d / "boite-metrics", args.metrics)
                    add("boite log_metrics", wall)
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
                        ("boite search", lambda: boite_search(ledger, args.threshold)),
                        ("boite list runs()", lambda: ledger.runs()),
                    ):
                        seconds, count = inner_median(fn, args.inner)
                        add(key, seconds)
                        if key == "boite search" and count != expected:
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
                f"boite log_metric ×{n:,}",
                "boite log_metric",
                single,
                api="API, 1 commit per call",
            ),
            row(
                f"boite log_metrics ×{-(-n // BATCH)} (1,000 each)",
                "boite log_metrics",
                single,
                api="API, batched",
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
                "boite search_runs + metrics_of",
                "boite search",
                "mlflow search client",
                api="API, 2 queries",
            ),
            row("sqlite3 same result", "sqlite3 search", "mlflow search client", api="floor"),
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
            profile(tmp, args.threshold)

        ref = (
            f"against the issue's reference MLflow figures: {n:,} log_metric "
            f"{REFERENCE['metrics'] / med('boite log_metric'):.0f}×, {r:,} runs "
            f"{REFERENCE['runs'] / med('boite runs'):.0f}×, listing all "
            f"{REFERENCE['list'] / med('boite list runs()'):.0f}× (valid at the default sizes)"
        )
        print(f"\n{ref}")
        verdicts: list[tuple[str, bool]] = []
        if use_mlflow:
            print()
            for number, name, target, ours, peer, what in (
                (
                    1,
                    f"{n:,} values one call at a time",
                    TARGET_METRICS,
                    "boite log_metric",
                    single,
                    "log_metric, unbuffered, a commit per call",
                ),
                (
                    2,
                    f"{r:,} runs",
                    TARGET_RUNS,
                    "boite runs",
                    "mlflow runs",
                    "start_run + finish_run",
                ),
                (
                    3,
                    "search by a metric filter",
                    TARGET_SEARCH,
                    "boite search",
                    "mlflow search client",
                    "search_runs + metrics_of",
                ),
            ):
                ratio = med(peer) / med(ours)
                paired = median([p / v for p, v in zip(res[peer], res[ours], strict=True)])
                ok = ratio >= target
                print(
                    f"target {number}, {name} >= {target:.0f}× faster: {what} {ratio:.1f}× "
                    f"(paired {paired:.1f}×, slowest MLflow ÷ slowest boite "
                    f"{max(res[peer]) / max(res[ours]):.1f}×) -> {'PASS' if ok else 'FAIL'}"
                )
                verdicts.append((name, ok))
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
            f"\ntracking: {'PASS' if not missed else 'FAIL (' + ', '.join(missed) + ')'}"
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
