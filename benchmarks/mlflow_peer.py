"""The MLflow side of benchmarks/tracking.py (a peer, not a benchmark of its own).

It runs in its own virtual environment (benchmarks/.venv-mlflow, see MLFLOW.md),
never in the project's: MLflow is not one of boite's dependencies. The driver
calls it once per measurement, in a fresh process, with the tracking store a
local SQLite file (``sqlite:///PATH``, MLflow's own SQLAlchemy store), and reads
one JSON object from the last line of its standard output:

    init     create the store (MLflow's migrations) and the experiment 'bench';
             the driver copies this file as the starting store of every
             measurement, so the ~10 s of migrations are paid once
    metrics  one run; --mode single: N x mlflow.log_metric('loss', v, step=i)
             inside `with mlflow.start_run()`; --mode batch: N values as
             MlflowClient.log_batch calls of at most 1,000 metrics each
    runs     N x (start_run, log_params (2), log_metrics (2), end_run), the
             fluent API as in MLflow's tutorials
    search   MlflowClient.search_runs(filter "metrics.auc > T") and the same
             through mlflow.search_runs (a pandas DataFrame); also the
             unfiltered listing

Timed figures exclude the interpreter start, the imports and opening the store
(one untimed call opens it first); every loop is checked against what the
store holds afterwards.

    benchmarks/.venv-mlflow/bin/python benchmarks/mlflow_peer.py metrics \
        --db store.db --n 10000 --mode single
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

EXPERIMENT = "bench"
BATCH_LIMIT = 1000  # MLflow refuses more metrics than this in one log_batch


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def metric_value(i: int) -> float:
    """The same deterministic values as the driver's (tracking.py)."""
    return ((i * 7919) % 10_007) / 10_007


def auc_of(i: int) -> float:
    return ((i * 7919) % 1000) / 1000


def emit(payload: dict) -> None:
    import mlflow

    payload.setdefault("mlflow_version", mlflow.__version__)
    sys.stdout.flush()
    print(json.dumps(payload))


def connect(db: str):  # type: ignore[no-untyped-def]
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(db)}")
    client = mlflow.MlflowClient()
    # Untimed: opens the store (engine, schema check) before any timed call.
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return mlflow, client, experiment


def init(args: argparse.Namespace) -> None:
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    start = time.perf_counter()
    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(args.db)}")
    client = mlflow.MlflowClient()
    client.create_experiment(EXPERIMENT, artifact_location=os.path.abspath(args.artifacts))
    emit({"seconds": time.perf_counter() - start})


def log_metrics(args: argparse.Namespace) -> None:
    mlflow, client, experiment = connect(args.db)
    from mlflow.entities import Metric

    n = args.n
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        run_id = run.info.run_id
        start, cpu = time.perf_counter(), cpu_seconds()
        if args.mode == "single":
            for i in range(n):
                mlflow.log_metric("loss", metric_value(i), step=i)
        else:
            now = int(time.time() * 1000)
            for first in range(0, n, BATCH_LIMIT):
                client.log_batch(
                    run_id,
                    metrics=[
                        Metric("loss", metric_value(i), now, i)
                        for i in range(first, min(n, first + BATCH_LIMIT))
                    ],
                )
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    stored = len(client.get_metric_history(run_id, "loss"))
    if stored != n:
        raise SystemExit(f"MLflow holds {stored} values of 'loss', expected {n}")
    emit(
        {
            "seconds": seconds,
            "cpu_s": cpu,
            "stored": stored,
            "calls": n if args.mode == "single" else -(-n // BATCH_LIMIT),
        }
    )


def create_runs(args: argparse.Namespace) -> None:
    mlflow, client, experiment = connect(args.db)
    start, cpu = time.perf_counter(), cpu_seconds()
    for i in range(args.n):
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"trial-{i}"):
            mlflow.log_params({"i": i, "learning_rate": 0.01 + (i % 10) / 100})
            mlflow.log_metrics({"auc": auc_of(i), "loss": 1 - auc_of(i)})
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    stored = len(client.search_runs([experiment.experiment_id], max_results=50_000))
    if stored != args.n:
        raise SystemExit(f"MLflow holds {stored} runs, expected {args.n}")
    emit({"seconds": seconds, "cpu_s": cpu, "stored": stored})


def search(args: argparse.Namespace) -> None:
    mlflow, client, experiment = connect(args.db)
    ids = [experiment.experiment_id]
    flt = f"metrics.auc > {args.threshold}"
    out: dict[str, object] = {"filter": flt}
    for name, call in (
        ("client", lambda: client.search_runs(ids, flt, max_results=50_000)),
        ("pandas", lambda: mlflow.search_runs(ids, flt, max_results=50_000)),
        ("list_all", lambda: client.search_runs(ids, max_results=50_000)),
    ):
        times = []
        for _ in range(args.inner):
            start = time.perf_counter()
            found = call()
            times.append(time.perf_counter() - start)
        out[f"{name}_s"] = statistics.median(times)
        out[f"{name}_first_s"] = times[0]
        out[f"{name}_count"] = len(found)
    emit(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("--db", required=True)
    p.add_argument("--artifacts", required=True)
    p = sub.add_parser("metrics")
    p.add_argument("--db", required=True)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--mode", choices=("single", "batch"), default="single")
    p = sub.add_parser("runs")
    p.add_argument("--db", required=True)
    p.add_argument("--n", type=int, default=1000)
    p = sub.add_parser("search")
    p.add_argument("--db", required=True)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--inner", type=int, default=3, help="searches per process (median)")
    args = parser.parse_args()
    {"init": init, "metrics": log_metrics, "runs": create_runs, "search": search}[args.command](
        args
    )


if __name__ == "__main__":
    main()
