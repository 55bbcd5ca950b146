"""Online serving: boite's server against MLflow, BentoML and bare uvicorn, over HTTP.

Targets (issue: serving), for a LightGBM model of 100 trees on 20 features,
loaded from a client on 127.0.0.1:

- concurrency 1, one row per request, boite reading the features from its
  online store and logging the prediction: p50 at least 8× lower than
  `mlflow models serve` (which gets the features inline), at most 2× the p50
  of a bare uvicorn endpoint returning a constant, and p99 under 2 ms;
- concurrency 8, the same requests: at least 10× MLflow's requests/s, 4×
  BentoML's, half of the bare constant endpoint's, with no error.

The data is generated deterministically (NumPy default_rng(0)) under
benchmarks/.data/serving/ (git-ignored) and reused by later runs: N entities
with 20 float features and a binary label; a LightGBM Booster (100 rounds,
LightGBM's defaults otherwise) trained on all of them and saved as text; an
MLflow model folder of that Booster (mlflow.lightgbm.save_model, in
benchmarks/.venv-mlflow); and a boite project of the same data (a source of
the features with an event time, a feature view kept online, a model spec
trained with `boite run`, `boite train`, promoted to production).

The servers, each one process (one worker) on a free port of 127.0.0.1,
started before the first measurement and killed (their whole process group)
at the end, even on failure:

    uvicorn constant   a bare ASGI app under uvicorn answering a constant (the floor)
    FastAPI constant   a FastAPI route answering a constant (a framework's floor)
    uvicorn + Booster  the bare ASGI app predicting the inline row with the Booster
    MLflow             mlflow models serve --env-manager local (inline row, dataframe_split)
    BentoML            bentoml serve of benchmarks/serving_bento.py (inline row)
    boite v1 / v2      boite serve --env production: POST /v1/models/bench/predict
                       {"entities": [{"entity_id": ...}]} and the Open Inference
                       Protocol POST /v2/models/bench/infer (an entity_id BYTES tensor);
                       skipped while `boite serve --help` fails

Every request carries another entity (1,000 drawn, sent in turn). The load
client is benchmarks/loadgen.py (raw asyncio, keep-alive; `wrk` is not
installed), a separate process. It prints its own CPU share: near 100 % would
mean the client, not the server, set the pace (it stays under a third of a
core here). The processes are not pinned by default: on a machine shared with
other jobs, pinning the client to the last CPU and the servers to the others
(--pin) made every server slower and noisier (each request then needs a
cross-CPU wake-up, and the server cannot move off a CPU another job holds).
Each scenario opens its connections, warms up, then
measures at most --requests requests in at most --seconds. Every repetition
runs each server at concurrency 1, then each at concurrency 8, in an order
that rotates from one repetition to the next; the tables show medians over
the repetitions and their min–max.

The tables also show each server's CPU time (user + system, all the processes
of its session, read from /proc) per request it answered: at concurrency 8 a
one-process server is busy all the time, so this is what bounds its rate.

Also timed in process for reference: Booster.predict on one row, and MLflow's
pyfunc predict on a one-row DataFrame (in MLflow's environment).

    .venv/bin/python benchmarks/serving.py [--repeat 3] [--requests 20000] [--seconds 5]
        [--no-mlflow] [--no-bentoml] [--no-boite] [--entities 100000] [--pin] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import REPO, VENV_BIN, machine, median, table

HERE = REPO / "benchmarks"
DATA = HERE / ".data" / "serving"
MLFLOW_PYTHON = HERE / ".venv-mlflow" / "bin" / "python"
BENTO_BIN = HERE / ".venv-bentoml" / "bin"
BOITE = VENV_BIN / "boite"
N_FEATURES = 20
N_TREES = 100
MODEL = "bench"
VIEW = "bench_features"
ENTITY = "entity_id"
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]

# The issue's figures on this kind of machine (ms at concurrency 1, requests/s at 8).
ISSUE = {
    "uvicorn constant": (0.28, 6000),
    "uvicorn + Booster": (0.50, 3300),
    "MLflow": (5.3, 150),
    "BentoML": (1.5, 540),
}
TARGETS = {"mlflow_p50": 8.0, "const_p50": 2.0, "p99_ms": 2.0, "mlflow_rps": 10.0}
TARGETS |= {"bento_rps": 4.0, "const_rps": 0.5}


# ---------------------------------------------------------------- data and models


def generate(n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, N_FEATURES))
    weights = rng.uniform(-1, 1, N_FEATURES)
    score = X @ weights + 0.8 * X[:, 0] * X[:, 1] - 0.5 * np.abs(X[:, 2])
    y = (score + rng.normal(0, 1.0, n) > 0).astype(np.int64)
    ids = [f"e{i:07d}" for i in range(n)]
    return ids, X, y


PROJECT_YAML = f"""\
# Generated by benchmarks/serving.py: the same data as the peers' Booster.
name: bench-serving
now: 2024-07-01T00:00:00Z
sources:
  entity_features: {{path: data/features.parquet}}
  labels: {{path: data/labels.parquet}}
feature_views:
  {VIEW}:
    entity: {ENTITY}
    timestamp: event_ts
    source: entity_features
    online: true
models:
  {MODEL}:
    task: binary_classification
    label: {{dataset: labels, column: label, timestamp: as_of}}
    features: ["{VIEW}:*"]
    algorithm: lightgbm
    params: {{n_estimators: {N_TREES}}}
environments:
  production:
    serve: {{{MODEL}: production}}
"""


def step(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 900) -> str:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(
            f"{what} failed ({' '.join(map(str, argv))}):\n{done.stdout}\n{done.stderr}"
        )
    print(f"  {what}: {time.perf_counter() - start:.1f} s", flush=True)
    return done.stdout


def prepare(n: int, *, mlflow: bool, boite: bool) -> dict[str, Path]:
    """Write (or reuse) the data, the Booster, the MLflow model and the boite project."""
    import lightgbm as lgb
    import pandas as pd

    DATA.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256(f"{n}|{N_TREES}|{PROJECT_YAML}|v1".encode()).hexdigest()[:16]
    paths = {
        "model": DATA / f"model-{stamp}.txt",
        "mlflow": DATA / f"mlflow-model-{stamp}",
        "project": DATA / f"project-{stamp}",
    }
    ids, X, y = generate(n)
    if not paths["model"].exists():
        print(f"writing the Booster ({n:,} rows x {N_FEATURES} features, {N_TREES} rounds)")
        params = {
            "objective": "binary",
            "verbosity": -1,
            "seed": 0,
            "deterministic": True,
            "force_col_wise": True,
        }
        booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=N_TREES)
        tmp = paths["model"].with_suffix(".tmp")
        booster.save_model(str(tmp))
        tmp.replace(paths["model"])
    if mlflow and not paths["mlflow"].exists():
        tmp = paths["mlflow"].with_name(paths["mlflow"].name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        step(
            [
                str(MLFLOW_PYTHON),
                str(HERE / "serving_peers.py"),
                "mlflow-save",
                "--model",
                str(paths["model"]),
                "--out",
                str(tmp),
                "--columns",
                ",".join(COLUMNS),
            ],
            "MLflow model folder (mlflow.lightgbm.save_model)",
        )
        tmp.rename(paths["mlflow"])
    project = paths["project"]
    if boite and not (project / ".bench-ready").exists():
        print(f"building the boite project {project.relative_to(REPO)}")
        shutil.rmtree(project, ignore_errors=True)
        (project / "data").mkdir(parents=True)
        (project / "boite.yaml").write_text(PROJECT_YAML)
        event = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 86_400, unit="s")
        features = pd.DataFrame(X, columns=COLUMNS)
        features.insert(0, "event_ts", event)
        features.insert(0, ENTITY, ids)
        features.to_parquet(project / "data" / "features.parquet", index=False)
        labels = pd.DataFrame(
            {ENTITY: ids, "as_of": pd.Timestamp("2024-06-01"), "label": y.astype(np.int64)}
        )
        labels.to_parquet(project / "data" / "labels.parquet", index=False)
        step([str(BOITE), "run", "-p", str(project)], "boite run (ingest, materialize online)")
        step([str(BOITE), "train", MODEL, "-p", str(project)], f"boite train {MODEL}")
        step(
            [
                str(BOITE),
                "models",
                "promote",
                f"{MODEL}@1",
                "--to",
                "production",
                "--reason",
                "bench",
                "-p",
                str(project),
            ],
            f"boite models promote {MODEL}@1 --to production",
        )
        (project / ".bench-ready").write_text(stamp)
    return paths


def write_bodies(n: int) -> dict[str, Path]:
    """Request bodies (JSON lines), 1,000 entities drawn once, the same ones for every server."""
    ids, X, _ = generate(n)
    picks = np.random.default_rng(1).choice(n, size=min(1000, n), replace=False)
    rows = [[float(v) for v in X[i]] for i in picks]
    keys = [ids[i] for i in picks]
    bodies: dict[str, list[dict[str, object]]] = {
        "inline": [{"inputs": [row]} for row in rows],
        "mlflow": [{"dataframe_split": {"columns": COLUMNS, "data": [row]}} for row in rows],
        "boite_v1": [{"entities": [{ENTITY: key}]} for key in keys],
        "boite_v2": [
            {"inputs": [{"name": ENTITY, "shape": [1], "datatype": "BYTES", "data": [key]}]}
            for key in keys
        ],
    }
    out = {}
    for kind, items in bodies.items():
        path = DATA / f"bodies-{kind}-{n}.jsonl"
        path.write_text("".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items))
        out[kind] = path
    return out


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    argv: list[str]
    path: str
    bodies: Path
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    ready_s: float = 60.0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    sample: str = ""

    def start(self, cpus: set[int] | None) -> None:
        slug = "".join(c if c.isalnum() else "_" for c in self.name)
        self.log = DATA / "logs" / f"{slug}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        env = dict(os.environ) | self.env

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=pin,
            )

    def wait_ready(self) -> None:
        """Poll with a real request until it answers 2xx (bounded by ready_s)."""
        body = self.bodies.read_text().splitlines()[0].encode()
        deadline = time.perf_counter() + self.ready_s
        last = "no answer"
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                text = answer.read().decode(errors="replace")
                conn.close()
                if 200 <= answer.status < 300:
                    self.sample = text[:200]
                    return
                last = f"HTTP {answer.status}: {text[:300]}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise RuntimeError(
            f"not ready within {self.ready_s:.0f} s ({last}); log:\n{self.log_tail()}"
        )

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of every live process in the server's session.

        Read from /proc, so that workers and helper processes a server forks
        (MLflow's and BentoML's) count too; 0 where /proc is missing.
        """
        if self.proc is None:
            return 0.0
        root = self.proc.pid
        procs: dict[int, tuple[int, int, int]] = {}  # pid: (parent, session, ticks)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            # after the command: state ppid pgrp session ... utime(12) stime(13)
            pid = int(stat.parent.name)
            procs[pid] = (int(fields[1]), int(fields[3]), int(fields[11]) + int(fields[12]))

        def ours(pid: int) -> bool:
            # in the server's session, or forked below it (BentoML's workers start their own)
            for _ in range(64):
                if pid == root or procs[pid][1] == root:
                    return True
                pid = procs[pid][0]
                if pid not in procs:
                    return False
            return False

        return sum(ticks for pid, (_, _, ticks) in procs.items() if ours(pid)) / os.sysconf(
            "SC_CLK_TCK"
        )

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def stop(self) -> None:
        """Kill the server's whole process group (it runs in a session of its own)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Workers a server forked may outlive their parent in the same group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def boite_serve_available() -> tuple[bool, str]:
    done = subprocess.run([str(BOITE), "serve", "--help"], capture_output=True, text=True)
    if done.returncode == 0:
        return True, ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return False, lines[-1] if lines else f"exit {done.returncode}"


def servers(
    args: argparse.Namespace, paths: dict[str, Path], bodies: dict[str, Path]
) -> list[Server]:
    py = sys.executable
    peers = str(HERE / "serving_peers.py")
    model = str(paths["model"])
    out = [
        Server(
            "uvicorn constant",
            [py, peers, "const", "--port", "{port}"],
            "/predict",
            bodies["inline"],
        ),
        Server(
            "FastAPI constant",
            [py, peers, "const-fastapi", "--port", "{port}"],
            "/predict",
            bodies["inline"],
        ),
        Server(
            "uvicorn + Booster",
            [py, peers, "booster", "--model", model, "--port", "{port}"],
            "/predict",
            bodies["inline"],
        ),
    ]
    quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    if args.mlflow:
        mlflow_bin = MLFLOW_PYTHON.parent
        out.append(
            Server(
                "MLflow",
                [
                    str(mlflow_bin / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(paths["mlflow"]),
                    "--env-manager",
                    "local",
                    "-p",
                    "{port}",
                    "-h",
                    "127.0.0.1",
                ],
                "/invocations",
                bodies["mlflow"],
                env=quiet | {"PATH": f"{mlflow_bin}:{os.environ.get('PATH', '')}"},
                ready_s=120,
            )
        )
    if args.bentoml:
        out.append(
            Server(
                "BentoML",
                [
                    str(BENTO_BIN / "bentoml"),
                    "serve",
                    "serving_bento:LightGBMService",
                    "--working-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                ],
                "/predict",
                bodies["inline"],
                env=quiet
                | {
                    "BENCH_MODEL": model,
                    "BENTOML_HOME": str(DATA / "bentoml-home"),
                    "BENTOML_DO_NOT_TRACK": "true",
                    "PATH": f"{BENTO_BIN}:{os.environ.get('PATH', '')}",
                },
                ready_s=120,
            )
        )
    if args.boite:
        argv = [
            str(BOITE),
            "serve",
            "--env",
            "production",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]
        for name, path, kind in (
            ("boite v1", f"/v1/models/{MODEL}/predict", "boite_v1"),
            ("boite v2", f"/v2/models/{MODEL}/infer", "boite_v2"),
        ):
            # One server answers both paths; the second entry shares its process.
            out.append(Server(name, argv, path, bodies[kind], cwd=paths["project"], ready_s=120))
    return out


# ---------------------------------------------------------------- measuring


def load_run(server: Server, concurrency: int, args: argparse.Namespace, cpu: int | None) -> dict:
    argv = [sys.executable, str(HERE / "loadgen.py"), "--port", str(server.port)]
    argv += ["--path", server.path, "--bodies", str(server.bodies)]
    argv += ["--concurrency", str(concurrency), "--requests", str(args.requests)]
    argv += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    cpu0 = server.cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.seconds + 60)
    cpu = server.cpu_seconds() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed on {server.name}:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the server's CPU over everything it answered (warm-up included): at concurrency 8,
    # where a one-process server is busy all the time, this is what bounds its rate
    answered = result["completed"] + result["warmup_sent"]
    result["server_cpu_us"] = cpu / answered * 1e6 if answered and cpu > 0 else None
    return result


def in_process_booster(model: Path, n: int) -> dict[str, float]:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(model))
    row = generate(10)[1][:1]
    out = {}
    for label, kwargs in (("default threads", {}), ("num_threads=1", {"num_threads": 1})):
        booster.predict(row, **kwargs)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            booster.predict(row, **kwargs)
            times.append(time.perf_counter() - start)
        out[label] = median(times) * 1e6
    return out


def in_process_pyfunc(paths: dict[str, Path]) -> dict:
    row = [float(v) for v in generate(10)[1][0]]
    text = step(
        [
            str(MLFLOW_PYTHON),
            str(HERE / "serving_peers.py"),
            "pyfunc-bench",
            "--model-dir",
            str(paths["mlflow"]),
            "--columns",
            ",".join(COLUMNS),
            "--row",
            json.dumps(row),
            "--n",
            "500",
        ],
        "MLflow pyfunc predict in process",
    )
    return json.loads(text.strip().splitlines()[-1])


def versions(args: argparse.Namespace) -> str:
    import fastapi
    import lightgbm as lgb
    import uvicorn

    import boite

    parts = [
        f"boite {boite.__version__}",
        f"LightGBM {lgb.__version__}",
        f"NumPy {np.__version__}",
        f"uvicorn {uvicorn.__version__}",
        f"FastAPI {fastapi.__version__}",
    ]
    for flag, python, pkgs in (
        (args.mlflow, MLFLOW_PYTHON, "mlflow lightgbm uvicorn"),
        (args.bentoml, BENTO_BIN / "python", "bentoml lightgbm uvicorn"),
    ):
        if not flag:
            continue
        code = (
            "import importlib.metadata as m, sys; "
            "print(', '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))"
        )
        done = subprocess.run(
            [str(python), "-c", code, *pkgs.split()], capture_output=True, text=True
        )
        parts.append(f"[{python.parent.parent.name}: {done.stdout.strip()}]")
    return ", ".join(parts)


# ---------------------------------------------------------------- report


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000, help="entities (100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (3)")
    parser.add_argument(
        "--requests", type=int, default=20_000, help="requests per scenario, at most"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per scenario, at most")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests (<= 2 s)")
    parser.add_argument("--no-mlflow", dest="mlflow", action="store_false", help="skip MLflow")
    parser.add_argument("--no-bentoml", dest="bentoml", action="store_false", help="skip BentoML")
    parser.add_argument("--no-boite", dest="boite", action="store_false", help="skip boite")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the client to the last CPU, the servers to the others",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    for flag, python, doc in (
        ("mlflow", MLFLOW_PYTHON, "MLFLOW.md"),
        ("bentoml", BENTO_BIN / "python", "BENTOML.md"),
    ):
        if getattr(args, flag) and not python.exists():
            print(f"{python.relative_to(REPO)} is missing (see benchmarks/{doc}): {flag} skipped")
            setattr(args, flag, False)
    boite_note = ""
    build_project = args.boite  # built even while `boite serve` is missing: ready when it lands
    if args.boite:
        available, why = boite_serve_available()
        if not available:
            boite_note = f"boite serve not available yet (`boite serve --help`: {why}): skipped"
            print(boite_note)
            args.boite = False

    cpus = sorted(os.sched_getaffinity(0))
    client_cpu: int | None = None
    server_cpus: set[int] | None = None
    if args.pin and len(cpus) >= 2:
        client_cpu, server_cpus = cpus[-1], set(cpus[:-1])
    load_before = os.getloadavg()
    print(
        f"serving: {args.entities:,} entities x {N_FEATURES} features, LightGBM {N_TREES} trees; "
        f"{args.repeat} repetitions, <= {args.requests:,} requests and <= {args.seconds:g} s per "
        f"scenario after {args.warmup} warm-up requests; {machine()}",
        flush=True,
    )
    print(f"versions: {versions(args)}")
    print(
        "CPUs: "
        + (
            f"client pinned to {client_cpu}, servers to {sorted(server_cpus or [])}"
            if client_cpu is not None
            else "not pinned"
        )
        + f"; load average {' '.join(f'{v:.2f}' for v in load_before)}",
        flush=True,
    )
    paths = prepare(args.entities, mlflow=args.mlflow, boite=build_project)
    bodies = write_bodies(args.entities)

    booster_us = in_process_booster(paths["model"], 2000)
    pyfunc = in_process_pyfunc(paths) if args.mlflow else None

    targets = servers(args, paths, bodies)
    results: dict[tuple[str, int], list[dict]] = {}
    failed: dict[str, str] = {}
    started: list[Server] = []
    try:
        by_argv: dict[str, Server] = {}
        for server in targets:
            key = " ".join(server.argv)
            start = time.perf_counter()
            if key in by_argv:  # boite v1 and v2: one process
                twin = by_argv[key]
                server.port, server.proc = twin.port, twin.proc
                if twin.name in failed:
                    failed[server.name] = failed[twin.name]
                    continue
            else:
                server.port = free_port()
                server.start(server_cpus)
                started.append(server)
                by_argv[key] = server
            try:
                server.wait_ready()
                print(
                    f"  {server.name}: ready on port {server.port} "
                    f"({time.perf_counter() - start:.1f} s); answers {server.sample!r}",
                    flush=True,
                )
            except RuntimeError as exc:
                failed[server.name] = str(exc)
                print(f"  {server.name}: FAILED, skipped: {exc}", flush=True)
        live = [s for s in targets if s.name not in failed]
        for rep in range(args.repeat):
            shift = rep % max(1, len(live))
            order = live[shift:] + live[:shift]
            for concurrency in (1, 8):
                for server in order:
                    if server.name in failed:
                        continue
                    try:
                        assert server.proc is not None
                        if server.proc.poll() is not None:
                            raise RuntimeError(
                                f"the server exited ({server.proc.returncode}) during the run; "
                                f"log:\n{server.log_tail()}"
                            )
                        result = load_run(server, concurrency, args, client_cpu)
                    except RuntimeError as exc:  # a dead server: keep measuring the others
                        failed[server.name] = str(exc)
                        print(f"  {server.name}: FAILED, dropped: {exc}", flush=True)
                        continue
                    results.setdefault((server.name, concurrency), []).append(result)
            print(
                f"  repetition {rep + 1}/{args.repeat} done (load {os.getloadavg()[0]:.2f}): "
                + ", ".join(
                    f"{s.name} {results[(s.name, 1)][-1]['p50_ms']:.3f} ms / "
                    f"{results[(s.name, 8)][-1]['rps']:.0f} req/s"
                    for s in live
                    if s.name not in failed
                ),
                flush=True,
            )
    finally:
        for server in started:
            server.stop()
    load_after = os.getloadavg()

    def med(name: str, c: int, key: str) -> float:
        return median([r[key] for r in results[(name, c)]])

    def span(name: str, c: int, key: str, fmt: str) -> str:
        values = [r[key] for r in results[(name, c)]]
        return f"{min(values):{fmt}}–{max(values):{fmt}}"

    def server_cpu(name: str, c: int) -> str:
        values = [r["server_cpu_us"] for r in results[(name, c)] if r.get("server_cpu_us")]
        return f"{median(values):.0f}" if values else "-"

    live_names = [s.name for s in targets if (s.name, 1) in results and (s.name, 8) in results]
    print(
        f"\n(load average {' '.join(f'{v:.2f}' for v in load_before)} -> "
        f"{' '.join(f'{v:.2f}' for v in load_after)}; medians of {args.repeat} repetitions)"
    )
    print("\nin process, one row (medians: Booster of 2,000 calls, pyfunc of <= 500 or 8 s):")
    print(
        "  Booster.predict: "
        + ", ".join(f"{k} {v:.1f} µs" for k, v in booster_us.items())
        + " (issue: 17 µs)"
    )
    if pyfunc:
        print(
            f"  MLflow pyfunc predict (one-row DataFrame): {pyfunc['median_us']:.0f} µs as "
            f"shipped, {pyfunc['median_us_omp1']:.0f} µs with OpenMP at one thread "
            "(issue: 1.6 ms)"
        )
    print("\nconcurrency 1 (latency, ms):")
    rows1 = []
    for name in live_names:
        rows1.append(
            [
                name,
                ms(med(name, 1, "p50_ms")),
                span(name, 1, "p50_ms", ".3f"),
                ms(med(name, 1, "p90_ms")),
                ms(med(name, 1, "p99_ms")),
                f"{med(name, 1, 'completed'):.0f}",
                f"{sum(r['errors'] for r in results[(name, 1)])}",
                server_cpu(name, 1),
                f"{ISSUE[name][0]:.2f}" if name in ISSUE else "",
            ]
        )
    header1 = ["server", "p50", "p50 min–max", "p90", "p99", "requests", "errors"]
    print(table(rows1, [*header1, "server CPU µs/req", "issue p50"]))
    print("\nconcurrency 8 (throughput):")
    rows8 = []
    for name in live_names:
        rows8.append(
            [
                name,
                f"{med(name, 8, 'rps'):,.0f}",
                span(name, 8, "rps", ",.0f"),
                ms(med(name, 8, "p50_ms")),
                ms(med(name, 8, "p99_ms")),
                f"{sum(r['errors'] for r in results[(name, 8)])}",
                f"{100 * med(name, 8, 'client_cpu'):.0f} %",
                server_cpu(name, 8),
                f"{ISSUE[name][1]:,}" if name in ISSUE else "",
            ]
        )
    print(
        table(
            rows8,
            [
                "server",
                "req/s",
                "req/s min–max",
                "p50 ms",
                "p99 ms",
                "errors",
                "client CPU",
                "server CPU µs/req",
                "issue req/s",
            ],
        )
    )
    for name, why in failed.items():
        print(f"\n{name} did not start: {why.splitlines()[0]}")

    def have(name: str) -> bool:
        return name in live_names

    print("\nratios (of the medians):")
    const, mlflow, bento, booster = "uvicorn constant", "MLflow", "BentoML", "uvicorn + Booster"
    for name in (booster, mlflow, bento, "FastAPI constant"):
        if have(name) and have(const):
            p50 = med(name, 1, "p50_ms") / med(const, 1, "p50_ms")
            rps = med(name, 8, "rps") / med(const, 8, "rps")
            print(f"  {name}: p50 {p50:.2f}× the constant's, req/s {rps:.2f}× the constant's")

    if not args.boite or not have("boite v1"):
        print(f"\nboite: pending ({boite_note or 'not measured'}); no target checked")
        return 0
    ok_all = True
    for name in ("boite v1", "boite v2"):
        if not have(name):
            print(f"\n{name}: not measured ({failed.get(name, 'skipped').splitlines()[0]})")
            if name == "boite v1":
                ok_all = False
            continue
        p50, p99 = med(name, 1, "p50_ms"), med(name, 1, "p99_ms")
        rps = med(name, 8, "rps")
        errors = sum(r["errors"] for c in (1, 8) for r in results[(name, c)])
        lines: list[tuple[str, float, str, bool]] = []
        if have(mlflow):
            ratio = med(mlflow, 1, "p50_ms") / p50
            lines.append(
                (
                    "p50 lower than MLflow's",
                    ratio,
                    f">= {TARGETS['mlflow_p50']:g}×",
                    ratio >= TARGETS["mlflow_p50"],
                )
            )
        if have(const):
            ratio = p50 / med(const, 1, "p50_ms")
            lines.append(
                (
                    "p50 over the constant's",
                    ratio,
                    f"<= {TARGETS['const_p50']:g}×",
                    ratio <= TARGETS["const_p50"],
                )
            )
        lines.append(("p99 (ms)", p99, f"< {TARGETS['p99_ms']:g}", p99 < TARGETS["p99_ms"]))
        if have(mlflow):
            ratio = rps / med(mlflow, 8, "rps")
            lines.append(
                (
                    "req/s over MLflow's",
                    ratio,
                    f">= {TARGETS['mlflow_rps']:g}×",
                    ratio >= TARGETS["mlflow_rps"],
                )
            )
        if have(bento):
            ratio = rps / med(bento, 8, "rps")
            lines.append(
                (
                    "req/s over BentoML's",
                    ratio,
                    f">= {TARGETS['bento_rps']:g}×",
                    ratio >= TARGETS["bento_rps"],
                )
            )
        if have(const):
            ratio = rps / med(const, 8, "rps")
            lines.append(
                (
                    "req/s over the constant's",
                    ratio,
                    f">= {TARGETS['const_rps']:g}×",
                    ratio >= TARGETS["const_rps"],
                )
            )
        lines.append(("errors", errors, "= 0", errors == 0))
        print(f"\ntargets, {name}:")
        print(
            table(
                [
                    [what, f"{value:.3f}", want, "PASS" if ok else "FAIL"]
                    for what, value, want, ok in lines
                ],
                ["target", "measured", "wanted", "verdict"],
            )
        )
        if name == "boite v1":
            ok_all = ok_all and all(ok for *_, ok in lines)
    print(f"\nserving: {'PASS' if ok_all else 'FAIL'} (the targets are judged on boite v1)")
    return 1 if (args.check and not ok_all) else 0


if __name__ == "__main__":
    sys.exit(main())
