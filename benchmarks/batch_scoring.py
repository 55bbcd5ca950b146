"""Batch scoring with point-in-time features: boite against a bare Booster and a hand pipeline.

Target (issue: serving): batch scoring of 1,000,000 rows with point-in-time
features; rows per second against bare ``Booster.predict`` on the prepared
matrix; memory bounded by the chunk size.

The data is serving.py's synthetic project (benchmarks/.data/serving/, built
or reused by ``serving.prepare``): N entities (100,000) with 20 float features
in a feature view, and a LightGBM model of 100 trees trained and promoted to
production by boite. On top of it this script writes (and reuses) an input of
--rows (entity_id, ts) rows drawn with NumPy default_rng(7): entities uniform,
times uniform over the half year after the features' first day (so about 0.3 %
of the rows come before their entity's features and score on nulls).

Every measurement runs in a fresh process (alternating the implementations,
in an order that rotates each repetition), so that its peak RSS (VmHWM) is
its own; the times exclude interpreter start and imports:

    boite C         score_batch(project, "bench", input, timestamp="ts",
                    chunk_rows=C, output=...): the model loaded from the
                    registry, the point-in-time join, scoring, the predictions
                    written (the user's file and the stored copy) and the
                    prediction log (every row with its features), on record
    bare Booster    Booster.predict on the already prepared float matrix of the
                    same rows (the registry's model file); nothing read, joined
                    or written: the floor
    hand pipeline   DuckDB ASOF LEFT JOIN of the input and the view's history
                    (Parquet in, input order kept), the matrix, Booster.predict,
                    the scores written to Parquet: what one would write by hand

The runs score a temporary copy of the project (so the serving project does
not collect 1M-row prediction logs); it is removed at the end unless --keep.
After the first repetition the scores of every boite run are checked equal to
the bare Booster's and the hand pipeline's (any difference: exit 1).

    .venv/bin/python benchmarks/batch_scoring.py [--rows 1000000] [--repeat 3]
        [--chunks 50000,200000,1000000] [--entities 100000] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import current_rss, machine, median, peak_rss, table, user_env  # noqa: E402

SEED = 7
TS = "ts"
START = "2024-01-01"
SPAN_S = 182 * 86_400
MB = 1024 * 1024


# --- process measurements ------------------------------------------------------


# --- data --------------------------------------------------------------------------


def write_input(path: Path, rows: int, entities: int) -> None:
    """--rows (entity_id, ts) rows, deterministic (default_rng(SEED))."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, entities, rows)
    seconds = rng.integers(0, SPAN_S, rows)
    ids = pa.array([f"e{i:07d}" for i in range(entities)], pa.string()).take(pa.array(picks))
    ts = (np.datetime64(START, "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table({"entity_id": ids, TS: pa.array(ts)}), tmp, compression="zstd")
    tmp.replace(path)


def prepared_matrix(spec: dict[str, Any]) -> Any:
    """The float matrix of the input's rows as the model sees them (NaN before an
    entity's features exist), built from serving.py's generator, not timed."""
    import numpy as np
    import pyarrow.parquet as pq

    from serving import generate

    _, X, _ = generate(spec["entities"])
    table = pq.read_table(spec["input"])
    picks = np.array([int(v[1:]) for v in table.column("entity_id").to_pylist()])
    ts = table.column(TS).to_numpy().astype("datetime64[s]")
    # serving.py's features: entity i has one row at START + (i % 86,400) s
    event = np.datetime64(START, "s") + (picks % 86_400).astype("timedelta64[s]")
    matrix = X[picks]
    matrix[ts < event] = np.nan
    return np.ascontiguousarray(matrix)


def booster_of(spec: dict[str, Any]) -> Any:
    from boite.registry.modelfile import read_model

    return read_model(spec["model_file"], expected_sha256=spec["model_sha256"]).model


# --- workers (one fresh process per measurement) -------------------------------------


def worker(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "boite":
        import lightgbm  # noqa: F401

        import boite.training.predictor  # noqa: F401  (imports out of the timing, as below)
        from boite.pipeline.project import open_project
        from boite.pipeline.scoring import score_batch

        project = open_project(spec["project"])
        base = current_rss()
        profile = None
        if spec.get("profile"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        start = time.perf_counter()
        result = score_batch(
            project,
            spec["model"],
            spec["input"],
            timestamp=TS,
            chunk_rows=spec["chunk"],
            output=spec["output"],
        )
        seconds = time.perf_counter() - start
        if profile is not None:
            import io
            import pstats

            profile.disable()
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
            print(text.getvalue(), file=sys.stderr)
        project.close()
        return {
            "seconds": seconds,
            "rows": result.rows,
            "chunks": result.chunks,
            "join_s": result.join_s,
            "score_s": result.score_s,
            "peak_rss": peak_rss(),
            "base_rss": base,
        }
    if kind == "bare":
        import numpy as np

        booster = booster_of(spec)
        matrix = prepared_matrix(spec)
        base = current_rss()
        start = time.perf_counter()
        scores = booster.predict(matrix)
        seconds = time.perf_counter() - start
        np.save(spec["output"], scores)
        return {
            "seconds": seconds,
            "rows": len(scores),
            "score_s": seconds,
            "peak_rss": peak_rss(),
            "base_rss": base,
        }
    if kind == "hand":
        import duckdb
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        booster = booster_of(spec)
        base = current_rss()
        start = time.perf_counter()
        con = duckdb.connect()
        features = ", ".join(f"h.{c}" for c in spec["columns"])
        sql = (
            f"SELECT i.entity_id, i.{TS}, {features} "
            f"FROM read_parquet('{spec['input']}', file_row_number = true) AS i "
            f"ASOF LEFT JOIN read_parquet('{spec['history']}') AS h "
            f"ON i.entity_id = h.entity_id AND i.{TS} >= h.event_ts "
            "ORDER BY i.file_row_number"
        )
        joined = con.sql(sql).to_arrow_table()
        joined_at = time.perf_counter()
        matrix = np.column_stack(
            [joined.column(c).to_numpy(zero_copy_only=False) for c in spec["columns"]]
        )
        scores = booster.predict(matrix)
        scored_at = time.perf_counter()
        out = joined.select(["entity_id", TS]).append_column("score", pa.array(scores))
        pq.write_table(out, spec["output"], compression="zstd")
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "rows": joined.num_rows,
            "join_s": joined_at - start,
            "score_s": scored_at - joined_at,
            "peak_rss": peak_rss(),
            "base_rss": base,
        }
    raise SystemExit(f"unknown worker {kind!r}")


def run_worker(kind: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", kind, "--spec", json.dumps(spec)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stdout}\n{done.stderr}")
    if spec.get("profile") and done.stderr:
        print(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main --------------------------------------------------------------------------


def check_scores(outputs: dict[str, Path]) -> list[str]:
    """Every run's scores against the bare Booster's (same rows, same order)."""
    import numpy as np
    import pyarrow.parquet as pq

    expected = np.load(outputs["bare Booster"])
    problems = []
    for name, path in outputs.items():
        if name == "bare Booster":
            continue
        got = pq.read_table(path, columns=["score"]).column("score").to_numpy()
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=1e-12):
            diff = np.abs(got - expected).max() if got.shape == expected.shape else "shape"
            problems.append(f"{name}: scores differ from the bare Booster's ({diff})")
    return problems


def fmt_rate(values: list[float]) -> str:
    return f"{median(values):,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (1,000,000)")
    parser.add_argument("--entities", type=int, default=100_000, help="entities (100,000)")
    parser.add_argument(
        "--chunks", default="50000,200000,1000000", help="boite's chunk sizes (rows)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile one boite run per chunk")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project copy")
    parser.add_argument("--env-as-is", action="store_true", help="no bytecode cache tweak")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.spec))))
        return 0

    from serving import COLUMNS, DATA, MODEL, N_FEATURES, N_TREES, VIEW, prepare

    chunks = [int(c) for c in args.chunks.split(",") if c]
    print(
        f"batch scoring: {args.rows:,} rows, {args.entities:,} entities x {N_FEATURES} features, "
        f"LightGBM {N_TREES} trees; chunks {', '.join(f'{c:,}' for c in chunks)}; "
        f"{args.repeat} repetitions; {machine()}",
        flush=True,
    )
    load_before = os.getloadavg()
    print(f"load average {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)
    paths = prepare(args.entities, mlflow=False, boite=True)
    source = DATA / f"batch-input-{args.rows}-{args.entities}-{SEED}.parquet"
    if not source.exists():
        start = time.perf_counter()
        write_input(source, args.rows, args.entities)
        print(f"  input written: {time.perf_counter() - start:.1f} s")

    tmp = Path(tempfile.mkdtemp(prefix="boite-batch-"))
    try:
        project_dir = tmp / "project"
        shutil.copytree(paths["project"], project_dir)
        from boite.pipeline.project import open_project

        project = open_project(project_dir)
        mv = project.models.registry.alias(MODEL, "production")
        assert mv is not None
        model_file = project.store.local_path(mv.record.uri, mv.record.content_hash)
        view = project.features._views_for([f"{VIEW}:*"])[0][VIEW]
        history = project.features.history(view)[0]
        project.close()
        assert len(history) == 1
        base = {
            "entities": args.entities,
            "input": str(source),
            "model": MODEL,
            "model_file": str(model_file),
            "model_sha256": mv.record.content_hash,
            "history": str(history[0]),
            "columns": COLUMNS,
        }
        runs: list[tuple[str, str, dict[str, Any]]] = [
            (f"boite, chunk {c:,}", "boite", {"chunk": c, "project": str(project_dir)})
            for c in chunks
        ]
        runs += [("bare Booster", "bare", {}), ("hand pipeline", "hand", {})]
        outputs = {
            name: tmp / f"out-{i}.{'npy' if kind == 'bare' else 'parquet'}"
            for i, (name, kind, _) in enumerate(runs)
        }
        env = user_env(tmp, as_is=args.env_as_is)
        if args.profile:
            for name, kind, extra in runs:
                if kind == "boite":
                    print(f"--- cProfile: {name}")
                    spec = base | extra | {"output": str(outputs[name]), "profile": True}
                    run_worker(kind, spec, env)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in runs}
        for rep in range(args.repeat):
            order = runs[rep % len(runs) :] + runs[: rep % len(runs)]
            for name, kind, extra in order:
                spec = base | extra | {"output": str(outputs[name])}
                got = run_worker(kind, spec, env)
                results[name].append(got)
                print(
                    f"  rep {rep + 1} {name}: {got['seconds']:.2f} s, "
                    f"peak RSS {got['peak_rss'] / MB:,.0f} MB, "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            if rep == 0:
                problems = check_scores(outputs)
                if problems:
                    print("\n".join(problems))
                    return 1
                print("  scores: every run equals the bare Booster's (atol 1e-12)", flush=True)

        bare = median([r["seconds"] for r in results["bare Booster"]])
        hand = median([r["seconds"] for r in results["hand pipeline"]])
        rows_out = []
        for name, kind, _ in runs:
            rs = results[name]
            seconds = [r["seconds"] for r in rs]
            rate = [r["rows"] / r["seconds"] for r in rs]
            join = median([r.get("join_s", 0.0) for r in rs]) if kind != "bare" else None
            score = median([r["score_s"] for r in rs])
            other = median([r["seconds"] - r.get("join_s", 0.0) - r["score_s"] for r in rs])
            rows_out.append(
                [
                    name,
                    fmt_rate(rate),
                    f"{median(seconds):.2f}",
                    f"{min(seconds):.2f}–{max(seconds):.2f}",
                    "-" if join is None else f"{join:.2f}",
                    f"{score:.2f}",
                    f"{other:.2f}",
                    f"{median(seconds) / bare:.1f}×",
                    f"{median(seconds) / hand:.2f}×",
                    f"{median([r['peak_rss'] for r in rs]) / MB:,.0f}",
                    f"{median([r['peak_rss'] - r['base_rss'] for r in rs]) / MB:,.0f}",
                ]
            )
        print()
        print(
            table(
                rows_out,
                [
                    f"{args.rows:,} rows",
                    "rows/s",
                    "s",
                    "min–max",
                    "join s",
                    "score s",
                    "write+other s",
                    "÷ bare",
                    "÷ hand",
                    "peak RSS MB",
                    "over base MB",
                ],
            )
        )
        print(
            "\nmedians of the repetitions; 's' is the whole call, 'write+other' the rest of it "
            "(model load, writing, ledger); 'over base' is the peak RSS less the RSS before "
            "the call (after imports, project and model loaded)"
        )
        load_after = os.getloadavg()
        print(
            f"load average before {' '.join(f'{v:.2f}' for v in load_before)}, "
            f"after {' '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} cores)"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
