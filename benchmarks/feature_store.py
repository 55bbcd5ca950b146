"""Feature store: training sets, materialization and online reads, boite against Feast.

Targets (the feature store issue), each measured against its peers in the same
run, on the same files:

1. Training set, end to end from Parquet files (1,000,000 feature rows of
   100,000 entities over a year, 10 float features; 100,000 and 1,000,000
   label rows): boite >= 5x faster than Feast's DuckDB offline store, >= 15x
   faster than Feast's file offline store, <= 1.3x a hand-written DuckDB
   ASOF LEFT JOIN (dedupe + ASOF + TTL, Parquet in, Parquet out, label order
   kept); boite's peak RSS below Feast's.
2. Materialization of the 1,000,000 rows into the online store: >= 6x faster
   than Feast (materialize into its SQLite online store), and a smaller store.
3. In-process online read: 1 entity p50 < 20 us, 100 entities p50 < 0.5 ms
   (`project.features.reader(["fv:*"]).get([...])`), beside Feast's
   get_online_features and a bare sqlite3 primary-key lookup (the floor).
4. Correctness: every joined value of boite's training set equals Feast's
   (DuckDB offline store) and the hand-written query's, rows aligned by a label
   id, NaN and null taken as equal; any difference fails the script (exit 1),
   with or without --check. The file store's lost rows are reported.

The data is generated deterministically (numpy, seed 20261129) under
benchmarks/.data/feature_store/ (git-ignored) and reused while its parameters
match. Every timed measurement runs in a fresh process (one per repetition,
alternating the implementations), so that its peak RSS (VmHWM of that
process) is its own; times exclude interpreter start and imports. The Feast
side runs in benchmarks/.venv-feast (see FEAST.md) through feast_peer.py.

    .venv/bin/python benchmarks/feature_store.py [--repeat 3] [--check]
    .venv/bin/python benchmarks/feature_store.py --only online --online-repeat 5
    .venv/bin/python benchmarks/feature_store.py --no-feast     # boite and DuckDB/SQLite only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    cpu_seconds,
    current_rss,
    machine,
    median,
    peak_rss,
    table,
    user_env,
)

SEED = 20261129
YEAR_START = "2025-01-01"
NOW = "2026-01-01T00:00:00Z"  # the boite project's clock: the day after the data ends
DEFAULT_DATA = HERE / ".data" / "feature_store"
FEAST_PYTHON = HERE / ".venv-feast" / "bin" / "python"
VIEW = "fv"

TARGETS = {
    "training_vs_feast_duckdb": 5.0,
    "training_vs_feast_file": 15.0,
    "training_vs_handwritten": 1.3,
    "materialize_vs_feast": 6.0,
    "online_1_p50_us": 20.0,
    "online_100_p50_us": 500.0,
}


# --- process measurements ------------------------------------------------------


def percentiles(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    n = len(ordered)
    return {
        "p50_us": ordered[n // 2] / 1000,
        "p99_us": ordered[min(n - 1, int(n * 0.99))] / 1000,
        "mean_us": sum(ordered) / n / 1000,
        "calls": n,
    }


CHILD_ENV: dict[str, str] = {}


def run_child(argv: list[str], *, timeout: float) -> dict[str, Any]:
    """Run one measurement process; its last stdout line is a JSON object."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=CHILD_ENV or None
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from None
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-5000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"no JSON from {' '.join(argv)}:\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def boite_child(spec: dict[str, Any], *, timeout: float = 900) -> dict[str, Any]:
    return run_child([sys.executable, __file__, "--child", json.dumps(spec)], timeout=timeout)


def feast_child(python: Path, args: list[str], *, timeout: float = 900) -> dict[str, Any]:
    return run_child([str(python), str(HERE / "feast_peer.py"), *args], timeout=timeout)


# --- data ------------------------------------------------------------------------


def generate(
    data: Path, entities: int, rows: int, labels: list[int], n_features: int, ttl_days: int
) -> dict[str, Path]:
    """Feature table and label files, deterministic; regenerated only when the parameters change.

    Features: `rows` rows, every entity (0..entities-1) about rows/entities times,
    event times uniform over 2025 (seconds), a created time 10 min to 70 min
    later; 1% of the rows repeat another row's (entity, event time) with another
    created time (the dedupe has to choose), 0.5% of f{n-1} are null. Written by
    DuckDB (zstd), sorted by event time, as a feature log would be.

    Labels: label_id 0..n-1 in random order, entity ids 2% beyond the known ones,
    times from mid-December 2024 to end of January 2026; 1% of the rows sit
    exactly on a feature row's event time, 0.5% exactly TTL after one (the edges
    of the join).
    """
    params = {
        "seed": SEED,
        "entities": entities,
        "rows": rows,
        "features": n_features,
        "ttl_days": ttl_days,
        "version": 5,
    }
    project = data / "boite"
    paths = {"features": project / "data" / "features.parquet"}
    for n in labels:
        paths[f"labels_{n}"] = project / "data" / f"labels_{n}.parquet"
    meta_file = data / "params.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("data") == params and paths["features"].exists():
        missing = [n for n in labels if not paths[f"labels_{n}"].exists()]
        if not missing:
            return paths
        # only new label files: the feature table (and what was built on it) stays
        t0 = time.perf_counter()
        arrays = _feature_arrays(entities, rows, n_features)
        _write_labels(paths, missing, arrays, entities, rows, ttl_days)
        meta["labels"] = sorted(set(meta.get("labels", [])) | set(missing))
        meta_file.write_text(json.dumps(meta))
        print(f"generated label files {missing} in {time.perf_counter() - t0:.1f} s")
        return paths
    # remove only what this script made there
    for made in [project, data / "out", *data.glob("feast_*")]:
        if made.is_dir():
            shutil.rmtree(made)
        else:
            made.unlink(missing_ok=True)
    paths["features"].parent.mkdir(parents=True)
    t0 = time.perf_counter()
    arrays = _feature_arrays(entities, rows, n_features)
    _write_features(paths["features"], arrays, n_features)
    _write_labels(paths, labels, arrays, entities, rows, ttl_days)
    meta_file.write_text(json.dumps({"data": params, "labels": sorted(labels)}))
    print(f"generated the data in {time.perf_counter() - t0:.1f} s under {data}")
    return paths


def _feature_arrays(entities: int, rows: int, n_features: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    year_s = 365 * 86_400
    ent = rng.permutation(np.arange(rows, dtype=np.int64) % entities)
    sec = rng.integers(0, year_s, rows, dtype=np.int64)
    perm = rng.permutation(rows)
    n_dup = rows // 100
    dup, src = perm[:n_dup], perm[n_dup : 2 * n_dup]
    ent[dup], sec[dup] = ent[src], sec[src]
    created_off = rng.integers(600, 4_200, rows, dtype=np.int64)
    created_off[dup] = created_off[src] + rng.choice([-1, 1], n_dup) * (
        1 + rng.integers(0, 500, n_dup)
    )
    values = rng.standard_normal((rows, n_features))
    nulls = rng.random(rows) < 0.005
    return {"ent": ent, "sec": sec, "created_off": created_off, "values": values, "nulls": nulls}


def _write_features(path: Path, arrays: dict[str, Any], n_features: int) -> None:
    import duckdb
    import numpy as np
    import pyarrow as pa

    base = np.datetime64(YEAR_START, "us")
    event = base + arrays["sec"].astype("timedelta64[s]")
    created = event + arrays["created_off"].astype("timedelta64[s]")
    cols: dict[str, Any] = {
        "entity_id": pa.array(arrays["ent"]),
        "event_ts": pa.array(event),
        "created_ts": pa.array(created),
    }
    for i in range(n_features):
        mask = arrays["nulls"] if i == n_features - 1 else None
        cols[f"f{i}"] = pa.array(arrays["values"][:, i], mask=mask)
    features = pa.table(cols)
    con = duckdb.connect()
    con.register("features_arrow", features)
    con.execute(
        f"COPY (SELECT * FROM features_arrow ORDER BY event_ts, entity_id, created_ts) "
        f"TO '{path}' (FORMAT parquet, COMPRESSION zstd)"
    )
    con.close()


def _write_labels(
    paths: dict[str, Path],
    labels: list[int],
    arrays: dict[str, Any],
    entities: int,
    rows: int,
    ttl_days: int,
) -> None:
    import duckdb
    import numpy as np
    import pyarrow as pa

    ent, sec = arrays["ent"], arrays["sec"]
    base = np.datetime64(YEAR_START, "us")
    year_s = 365 * 86_400
    con = duckdb.connect()
    for n in labels:
        lrng = np.random.default_rng(SEED + n)
        l_ent = lrng.integers(0, int(entities * 1.02), n, dtype=np.int64)
        l_sec = lrng.integers(-15 * 86_400, year_s + 30 * 86_400, n, dtype=np.int64)
        k = n // 100
        chosen = lrng.choice(n, k + k // 2, replace=False)
        exact, edge = chosen[:k], chosen[k:]
        pick = lrng.integers(0, rows, k + k // 2)
        l_ent[exact], l_sec[exact] = ent[pick[:k]], sec[pick[:k]]
        l_ent[edge] = ent[pick[k:]]
        l_sec[edge] = sec[pick[k:]] + ttl_days * 86_400
        label_tbl = pa.table(
            {
                "label_id": pa.array(np.arange(n, dtype=np.int64)),
                "entity_id": pa.array(l_ent),
                "ts": pa.array(base + l_sec.astype("timedelta64[s]")),
                "label": pa.array(lrng.integers(0, 2, n, dtype=np.int64)),
            }
        )
        # label_id stays 0..n-1 but the rows go in a random order: the order must be kept
        label_tbl = label_tbl.take(pa.array(lrng.permutation(n)))
        con.register("labels_arrow", label_tbl)
        con.execute(
            f"COPY (SELECT * FROM labels_arrow) TO '{paths[f'labels_{n}']}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        con.unregister("labels_arrow")
    con.close()


def make_project(data: Path, ttl_days: int, labels: list[int]) -> Path:
    """The boite project: the feature table and the label files as sources, one feature view."""
    import boite

    root = data / "boite"
    # every label file there, not only those asked for: the project stays the same
    present = sorted(
        {int(p.stem.split("_")[1]) for p in (root / "data").glob("labels_*.parquet")} | set(labels)
    )
    config = (
        "name: bench-feature-store\n"
        f"now: {NOW}\n"
        "sources:\n"
        "  features:\n"
        "    path: data/features.parquet\n"
        + "".join(f"  labels_{n}:\n    path: data/labels_{n}.parquet\n" for n in present)
        + "feature_views:\n"
        f"  {VIEW}:\n"
        "    entity: entity_id\n"
        "    timestamp: event_ts\n"
        "    created_timestamp: created_ts\n"
        "    source: features\n"
        f"    ttl: {ttl_days}d\n"
    )
    path = root / "boite.yaml"
    if path.exists() and path.read_text() == config and (root / ".boite").exists():
        return root
    shutil.rmtree(root / ".boite", ignore_errors=True)
    path.write_text(config)
    t0 = time.perf_counter()
    project = boite.open_project(root)
    report = project.run()
    if not report.ok:
        raise SystemExit(f"the first boite run failed: {[o.detail for o in report.failed]}")
    project.close()
    print(
        f"boite project built (ingest + first materialization) in {time.perf_counter() - t0:.1f} s"
    )
    return root


def git_state() -> str:
    """The commit boite's source is at, and whether src/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (src/ modified)" if dirty else "")


def purge_training_sets(root: Path) -> int:
    """Remove every file of the artifact store but the current sources' snapshots.

    Training sets and label snapshots of earlier runs would otherwise be found in
    the store (content addressed) and change which path the next run takes.
    """
    import boite
    from boite.core.datasets import DATASET

    project = boite.open_project(root)
    keep = {r.content_hash for r in project.ledger.latest_artifacts(DATASET).values()}
    project.close()
    removed = 0
    for path in (root / ".boite" / "artifacts").rglob("*"):
        if path.is_file() and path.name.split(".")[0] not in keep:
            path.unlink()
            removed += 1
    return removed


def setup_feast(
    python: Path, data: Path, features: Path, ttl_days: int, n_features: int, stores: list[str]
) -> dict[str, Path]:
    repos = {}
    for store in stores:
        repo = data / f"feast_{store}"
        marker = repo / "applied.json"
        want = json.dumps([str(features), ttl_days, n_features, store])
        if not (marker.exists() and marker.read_text() == want):
            shutil.rmtree(repo, ignore_errors=True)
            feast_child(
                python,
                [
                    "setup",
                    "--repo",
                    str(repo),
                    "--offline",
                    store,
                    "--features",
                    str(features),
                    "--ttl-days",
                    str(ttl_days),
                    "--n-features",
                    str(n_features),
                ],
                timeout=300,
            )
            marker.write_text(want)
        repos[store] = repo
    return repos


# --- the children (one measurement each, in a fresh process) -----------------------


def child(spec: dict[str, Any]) -> None:
    kind = spec["kind"]
    out: dict[str, Any]
    if kind == "training-boite":
        import duckdb
        import pandas  # noqa: F401  (training_set imports it even for an Arrow table; Feast's
        import pyarrow.dataset  # noqa: F401  (pq.read_table imports it on first use)
        import pyarrow.parquet as pq

        import boite
        import boite.pipeline.project
        # side imports it with feast, before its clock starts too)

        rss_imports = current_rss()
        profiler = None
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started_at = time.time() - 1
        start, cpu = time.perf_counter(), cpu_seconds()
        project = boite.open_project(spec["root"])
        # labels already on record (a source or a transform), or a file boite snapshots
        labels = spec["dataset"] if spec.get("dataset") else pq.read_table(spec["labels"])
        dataset = project.training_set(labels, [f"{VIEW}:*"], timestamp="ts", name=spec["name"])
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if profiler is not None:
            import io
            import pstats

            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
            print(text.getvalue())
        run = project.ledger.runs(limit=1)[0]
        result_path = str(dataset.path)
        if spec.get("keep_as"):  # for the cross-check
            shutil.copyfile(dataset.path, spec["keep_as"])
            result_path = spec["keep_as"]
        if spec.get("forget"):
            # Remove what this run added to the artifact store (the training set, the label
            # snapshot), so that the next repetition stores them anew, as a first training set
            # would (the store skips the fsync and re-hashes instead when a file is there).
            store_dir = Path(spec["root"]) / ".boite" / "artifacts"
            for path in store_dir.rglob("*"):
                if path.is_file() and path.stat().st_mtime >= started_at:
                    path.unlink()
        out = {
            "seconds": seconds,
            "cpu_s": cpu,
            "rows": dataset.rows,
            "out": result_path,
            "ledger_wall_s": run.wall_s,
            "peak_rss": peak_rss(),
            "rss_after_imports": rss_imports,
        }
        project.close()
    elif kind == "training-duckdb":
        import duckdb

        rss_imports = current_rss()
        start, cpu = time.perf_counter(), cpu_seconds()
        con = duckdb.connect()
        ttl = int(spec["ttl_days"]) * 86_400
        feats = ", ".join(f"f{i}" for i in range(spec["n_features"]))
        ttl_feats = ", ".join(
            f"CASE WHEN f.event_ts >= l.ts - INTERVAL '{ttl} seconds' THEN f.f{i} END AS f{i}"
            for i in range(spec["n_features"])
        )
        (rows,) = con.execute(
            f"""
            COPY (
                WITH feats AS (
                    SELECT entity_id, event_ts, {feats}
                    FROM read_parquet('{spec["features"]}')
                    QUALIFY row_number() OVER (
                        PARTITION BY entity_id, event_ts ORDER BY created_ts DESC) = 1
                )
                SELECT l.label_id, l.entity_id, l.ts, l.label, {ttl_feats}
                FROM read_parquet('{spec["labels"]}', file_row_number = true) AS l
                ASOF LEFT JOIN feats AS f ON l.entity_id = f.entity_id AND l.ts >= f.event_ts
                ORDER BY l.file_row_number
            ) TO '{spec["out"]}' (FORMAT parquet, COMPRESSION zstd)
            """
        ).fetchone()
        con.close()
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        out = {
            "seconds": seconds,
            "cpu_s": cpu,
            "rows": rows,
            "out": spec["out"],
            "peak_rss": peak_rss(),
            "rss_after_imports": rss_imports,
        }
    elif kind == "materialize-boite":
        import duckdb

        import boite
        import boite.pipeline.project

        root = Path(spec["root"])
        db = root / ".boite" / "online.db"
        for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            leftover.unlink(missing_ok=True)
        rss_imports = current_rss()
        profiler = None
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start, cpu = time.perf_counter(), cpu_seconds()
        project = boite.open_project(root)
        (result,) = project.materialize([VIEW], full=True)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if profiler is not None:
            import io
            import pstats

            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
            print(text.getvalue())
        state = project.features.online.state(VIEW)
        open_files = {p.name: p.stat().st_size for p in db.parent.glob("online.db*")}
        project.close()
        closed_files = {p.name: p.stat().st_size for p in db.parent.glob("online.db*")}
        out = {
            "seconds": seconds,
            "cpu_s": cpu,
            "entities": state.rows if state else None,
            "rows_read": result.rows_read,
            "rows_written": result.rows_written,
            "files_open": open_files,
            "store_bytes": sum(closed_files.values()),
            "files": closed_files,
            "peak_rss": peak_rss(),
            "rss_after_imports": rss_imports,
        }
    elif kind == "online-boite":
        import random

        import boite

        project = boite.open_project(spec["root"])
        reader = project.features.reader([f"{VIEW}:*"])
        rng = random.Random(spec["seed"])
        keys = rng.sample(range(spec["entities"]), k=min(spec["entities"], 10_000))
        result: dict[str, Any] = {}
        found = {}
        clock = time.perf_counter_ns
        # The floor, measured in the same process, block by block in turn with boite: a bare
        # sqlite3 query of the same columns from the same table (boite's store file).
        import sqlite3

        conn = sqlite3.connect(Path(spec["root"]) / ".boite" / "online.db")
        cols = ", ".join(
            ['"entity_id"', "__event_us"] + [f'"f{i}"' for i in range(spec["n_features"])]
        )
        floor: dict[str, Any] = {}
        for label, width, calls in (("1", 1, spec["calls_1"]), ("100", 100, spec["calls_100"])):
            batches = [
                [{"entity_id": keys[(i * width + j) % len(keys)]} for j in range(width)]
                for i in range(calls)
            ]
            raw = [tuple(e["entity_id"] for e in b) for b in batches]
            where = (
                '"entity_id" = ?'
                if width == 1
                else ('"entity_id" IN (' + ", ".join("?" * width) + ")")
            )
            sql = f'SELECT {cols} FROM "fv_{VIEW}" WHERE {where}'
            for b, r in zip(batches[: max(1, calls // 20)], raw, strict=False):  # warm-up
                reader.get(b)
                conn.execute(sql, r).fetchall()
            ns, floor_ns = [], []
            present = 0
            blocks = 4
            size = -(-calls // blocks)
            for start_i in range(0, calls, size):
                for b in batches[start_i : start_i + size]:
                    t0 = clock()
                    answer = reader.get(b)
                    ns.append(clock() - t0)
                    present += len(b) - len(answer.missing[VIEW])
                for r in raw[start_i : start_i + size]:
                    t0 = clock()
                    conn.execute(sql, r).fetchall()
                    floor_ns.append(clock() - t0)
            result[label] = percentiles(ns)
            floor[label] = percentiles(floor_ns)
            found[label] = present / (calls * width)
        conn.close()
        project.close()
        out = {"online": result, "floor": floor, "present": found, "peak_rss": peak_rss()}
    elif kind == "online-sqlite":
        import random
        import sqlite3

        conn = sqlite3.connect(spec["db"])
        cols = ", ".join(
            ['"entity_id"', "__event_us"] + [f'"f{i}"' for i in range(spec["n_features"])]
        )
        rng = random.Random(spec["seed"])
        keys = rng.sample(range(spec["entities"]), k=min(spec["entities"], 10_000))
        table_name = f'"fv_{VIEW}"'
        result = {}
        clock = time.perf_counter_ns
        for label, width, calls in (("1", 1, spec["calls_1"]), ("100", 100, spec["calls_100"])):
            where = (
                '"entity_id" = ?'
                if width == 1
                else ('"entity_id" IN (' + ", ".join("?" * width) + ")")
            )
            sql = f"SELECT {cols} FROM {table_name} WHERE {where}"
            batches = [
                tuple(keys[(i * width + j) % len(keys)] for j in range(width)) for i in range(calls)
            ]
            for b in batches[: max(1, calls // 20)]:
                conn.execute(sql, b).fetchall()
            ns = []
            for b in batches:
                t0 = clock()
                conn.execute(sql, b).fetchall()
                ns.append(clock() - t0)
            result[label] = percentiles(ns)
        conn.close()
        out = {"online": result, "peak_rss": peak_rss()}
    else:
        raise SystemExit(f"unknown child kind {kind!r}")
    sys.stdout.flush()
    print(json.dumps(out))


# --- cross-checks ------------------------------------------------------------------------


def compare_outputs(reference: str, other: str, n_features: int) -> dict[str, Any]:
    """Every joined value of `other` against `reference`, rows matched by label_id.

    Nulls and NaNs count as equal; so do label pass-through columns compared on
    their values (timestamps in microseconds since the epoch, zone or not).
    """
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # zoned label times (Feast's) compare in UTC
    feats = [f"f{i}" for i in range(n_features)]
    diff = [
        f"count(*) FILTER (WHERE a.{c} IS DISTINCT FROM b.{c} AND NOT ("
        f"(a.{c} IS NULL OR isnan(a.{c})) AND (b.{c} IS NULL OR isnan(b.{c})))) AS {c}"
        for c in feats
    ]
    row = con.execute(
        f"""
        SELECT
            (SELECT count(*) FROM read_parquet('{reference}')) AS ref_rows,
            (SELECT count(*) FROM read_parquet('{other}')) AS other_rows,
            (SELECT count(*) - count(DISTINCT label_id) FROM read_parquet('{other}')) AS dup_ids,
            count(*) FILTER (WHERE b.label_id IS NULL) AS missing,
            count(*) FILTER (WHERE a.label_id IS NULL) AS extra,
            count(*) FILTER (WHERE a.label_id IS NOT NULL AND b.label_id IS NOT NULL) AS compared,
            count(*) FILTER (WHERE a.entity_id IS DISTINCT FROM b.entity_id
                OR CAST(a.ts AS TIMESTAMP) IS DISTINCT FROM CAST(b.ts AS TIMESTAMP)
                OR a.label IS DISTINCT FROM b.label) AS label_cols,
            count(*) FILTER (WHERE a.{feats[0]} IS NULL OR isnan(a.{feats[0]})) AS ref_null_f0,
            {", ".join(diff)}
        FROM read_parquet('{reference}') AS a
        FULL OUTER JOIN read_parquet('{other}') AS b USING (label_id)
        """
    ).fetchone()
    names = [
        "ref_rows",
        "other_rows",
        "dup_ids",
        "missing",
        "extra",
        "compared",
        "label_cols",
        "ref_null_f0",
        *feats,
    ]
    got = dict(zip(names, row, strict=True))
    # `missing` rows count once in the full join with nulls on b's side; they are not value
    # mismatches, so take value mismatches only over rows present on both sides.
    value_diffs = con.execute(
        f"""
        SELECT count(*) FROM read_parquet('{reference}') AS a
        JOIN read_parquet('{other}') AS b USING (label_id)
        WHERE {
            " OR ".join(
                f"(a.{c} IS DISTINCT FROM b.{c} AND NOT ((a.{c} IS NULL OR isnan(a.{c})) "
                f"AND (b.{c} IS NULL OR isnan(b.{c}))))"
                for c in feats
            )
        }
        """
    ).fetchone()[0]
    got["rows_with_value_diffs"] = value_diffs
    got["values_compared"] = got["compared"] * n_features
    con.close()
    return got


def order_kept(labels: str, output: str) -> bool:
    import duckdb

    con = duckdb.connect()
    bad = con.execute(
        f"""
        SELECT (SELECT count(*) FROM read_parquet('{labels}'))
                 <> (SELECT count(*) FROM read_parquet('{output}'))
            OR EXISTS (
                SELECT 1 FROM read_parquet('{labels}', file_row_number = true) AS l
                JOIN read_parquet('{output}', file_row_number = true) AS o
                USING (file_row_number) WHERE l.label_id <> o.label_id)
        """
    ).fetchone()[0]
    con.close()
    return not bad


# --- the benchmark ---------------------------------------------------------------------------


def fmt_s(values: list[float]) -> str:
    return f"{median(values):.3f}"


def fmt_spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def load_note(runs: dict[str, list[dict[str, Any]]]) -> str:
    loads = [r["load"] for rs in runs.values() for r in rs if "load" in r]
    return (
        f"(1-minute load average when these runs started: median {median(loads):.2f}, "
        f"{min(loads):.2f}–{max(loads):.2f}, on {os.cpu_count()} cores)"
    )


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def bench_training(
    args: argparse.Namespace,
    paths: dict[str, Path],
    root: Path,
    repos: dict[str, Path],
    results: dict[str, Any],
) -> list[tuple[str, bool]]:
    out_dir = args.data / "out"
    out_dir.mkdir(exist_ok=True)
    verdicts: list[tuple[str, bool]] = []
    for n in args.labels:
        labels = str(paths[f"labels_{n}"])
        impls: dict[str, Any] = {
            "boite": lambda rep, n=n, labels=labels: boite_child(
                {
                    "kind": "training-boite",
                    "root": str(root),
                    "labels": labels,
                    "name": f"bench_{n}",
                    "forget": not args.keep_artifacts,
                    "keep_as": str(out_dir / f"boite_{n}.parquet"),
                }
            ),
            "boite, labels on record": lambda rep, n=n: boite_child(
                {
                    "kind": "training-boite",
                    "root": str(root),
                    "dataset": f"labels_{n}",
                    "name": f"bench_{n}_ds",
                    "forget": not args.keep_artifacts,
                    "keep_as": str(out_dir / f"boite_ds_{n}.parquet"),
                }
            ),
            "duckdb ASOF (hand-written)": lambda rep, n=n, labels=labels: boite_child(
                {
                    "kind": "training-duckdb",
                    "features": str(paths["features"]),
                    "labels": labels,
                    "out": str(out_dir / f"duckdb_{n}.parquet"),
                    "ttl_days": args.ttl_days,
                    "n_features": args.n_features,
                }
            ),
        }
        for store in repos:
            name = f"feast {store} offline store"
            impls[name] = lambda rep, n=n, labels=labels, store=store: feast_child(
                args.feast_python,
                [
                    "training",
                    "--repo",
                    str(repos[store]),
                    "--labels",
                    labels,
                    "--out",
                    str(out_dir / f"feast_{store}_{n}.parquet"),
                    "--n-features",
                    str(args.n_features),
                ],
            )
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in impls}
        names = list(impls)
        for rep in range(args.repeat):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                if name.startswith("feast file") and rep >= args.feast_file_repeat:
                    continue
                load = os.getloadavg()[0]
                got = impls[name](rep)
                got["load"] = load
                runs[name].append(got)
                print(
                    f"  training {n:>9,} labels  rep {rep + 1}/{args.repeat}  {name:<28} "
                    f"{got['seconds']:7.2f} s  peak {mib(got['peak_rss']):>6} MiB  "
                    f"rows {got['rows']:,}",
                    flush=True,
                )
        base = median([r["seconds"] for r in runs["boite"]])
        base_rss = median([r["peak_rss"] for r in runs["boite"]])
        rows = []
        for name, rs in runs.items():
            secs = [r["seconds"] for r in rs]
            rss = [r["peak_rss"] for r in rs]
            rows.append(
                [
                    name,
                    str(len(rs)),
                    fmt_s(secs),
                    fmt_spread(secs),
                    f"{median([r['cpu_s'] for r in rs]):.2f}",
                    f"{median(secs) / base:.2f}×",
                    mib(median(rss)),
                    f"{median(rss) / base_rss:.2f}×",
                    f"{rs[-1]['rows']:,}",
                ]
            )
        print(
            f"\ntraining set, {n:,} labels x {args.rows:,} feature rows "
            f"({args.entities:,} entities, {args.n_features} features, TTL {args.ttl_days} d)"
        )
        print(
            table(
                rows,
                [
                    "implementation",
                    "runs",
                    "median s",
                    "min–max s",
                    "cpu s",
                    "÷ boite",
                    "peak RSS MiB",
                    "÷ boite",
                    "rows out",
                ],
            )
        )
        print(load_note(runs))
        boite_ledger = [r["ledger_wall_s"] for r in runs["boite"]]
        print(
            "(boite: pq.read_table of the label file + training_set(table); 'labels on record': "
            "training_set('labels_N'), the same file ingested beforehand as a source. "
            f"boite's own ledger wall_s for the join + store: median {median(boite_ledger):.3f} s)"
        )

        # cross-checks
        boite_out = runs["boite"][-1]["out"]
        checks: dict[str, Any] = {"boite_order_kept": order_kept(labels, boite_out)}
        hand_out = runs["duckdb ASOF (hand-written)"][-1]["out"]
        checks["handwritten_order_kept"] = order_kept(labels, hand_out)
        checks["vs_handwritten"] = compare_outputs(boite_out, hand_out, args.n_features)
        for store in repos:
            checks[f"vs_feast_{store}"] = compare_outputs(
                boite_out, runs[f"feast {store} offline store"][-1]["out"], args.n_features
            )
        results.setdefault("training", {})[str(n)] = {
            "runs": runs,
            "checks": checks,
        }
        print(f"\ncross-check, {n:,} labels (reference: boite's training set):")
        print(
            f"  label order kept: boite {checks['boite_order_kept']}, "
            f"hand-written {checks['handwritten_order_kept']}"
        )
        for key, c in checks.items():
            if not key.startswith("vs_"):
                continue
            print(
                f"  {key[3:]:<14} rows {c['other_rows']:,}/{c['ref_rows']:,} "
                f"(missing {c['missing']:,}, extra {c['extra']:,}, duplicate ids "
                f"{c['dup_ids']:,}); values compared {c['values_compared']:,}; rows with a "
                f"differing value {c['rows_with_value_diffs']:,}; label columns differing "
                f"{c['label_cols'] - c['missing'] - c['extra']:,}"
            )
        ok_hand = (
            checks["boite_order_kept"]
            and checks["vs_handwritten"]["missing"] == 0
            and checks["vs_handwritten"]["extra"] == 0
            and checks["vs_handwritten"]["rows_with_value_diffs"] == 0
        )
        verdicts.append(
            (f"training {n:,}: identical to the hand-written join (order kept)", ok_hand)
        )
        if "duckdb" in repos:
            c = checks["vs_feast_duckdb"]
            ok = (
                c["missing"] == 0
                and c["extra"] == 0
                and c["dup_ids"] == 0
                and c["rows_with_value_diffs"] == 0
                and c["label_cols"] == 0
            )
            verdicts.append((f"training {n:,}: every value equals Feast (DuckDB store)", ok))
        # targets
        hand = median([r["seconds"] for r in runs["duckdb ASOF (hand-written)"]])
        print()
        ratio = base / hand
        on_record = median([r["seconds"] for r in runs["boite, labels on record"]]) / hand
        paired = median(
            [
                b["seconds"] / h["seconds"]
                for b, h in zip(runs["boite"], runs["duckdb ASOF (hand-written)"], strict=True)
            ]
        )
        cpu_ratio = median([r["cpu_s"] for r in runs["boite"]]) / median(
            [r["cpu_s"] for r in runs["duckdb ASOF (hand-written)"]]
        )
        print(
            f"  target boite <= {TARGETS['training_vs_handwritten']}× hand-written: {ratio:.2f}× "
            f"(median of paired ratios {paired:.2f}×, CPU {cpu_ratio:.2f}×; labels on record "
            f"{on_record:.2f}×)"
        )
        verdicts.append(
            (
                f"training {n:,}: ≤ {TARGETS['training_vs_handwritten']}× hand-written "
                f"({ratio:.2f}×)",
                ratio <= TARGETS["training_vs_handwritten"],
            )
        )
        for store, key in (
            ("duckdb", "training_vs_feast_duckdb"),
            ("file", "training_vs_feast_file"),
        ):
            if store not in repos:
                continue
            rs = runs[f"feast {store} offline store"]
            speedup = median([r["seconds"] for r in rs]) / base
            rss_ratio = median([r["peak_rss"] for r in rs]) / base_rss
            print(
                f"  target boite >= {TARGETS[key]}× faster than Feast {store}: {speedup:.1f}×; "
                f"peak RSS Feast/boite {rss_ratio:.2f}×"
            )
            verdicts.append(
                (
                    f"training {n:,}: ≥ {TARGETS[key]}× faster than Feast {store} ({speedup:.1f}×)",
                    speedup >= TARGETS[key],
                )
            )
            verdicts.append(
                (
                    f"training {n:,}: peak RSS below Feast {store} "
                    f"({mib(base_rss)} vs {mib(median([r['peak_rss'] for r in rs]))} MiB)",
                    rss_ratio > 1,
                )
            )
        print()
    return verdicts


def bench_materialize(
    args: argparse.Namespace, root: Path, repos: dict[str, Path], results: dict[str, Any]
) -> list[tuple[str, bool]]:
    runs: dict[str, list[dict[str, Any]]] = {"boite": []}
    feast_repo = repos.get("duckdb")
    if feast_repo:
        runs["feast (DuckDB offline -> SQLite online)"] = []
    for rep in range(args.repeat):
        order = list(runs)
        if rep % 2:
            order.reverse()
        for name in order:
            load = os.getloadavg()[0]
            if name == "boite":
                got = boite_child(
                    {
                        "kind": "materialize-boite",
                        "root": str(root),
                        "profile": bool(args.profile and rep == 0),
                    }
                )
            else:
                got = feast_child(
                    args.feast_python,
                    [
                        "materialize",
                        "--repo",
                        str(feast_repo),
                        "--start",
                        "2024-12-01T00:00:00",
                        "--end",
                        "2026-01-01T00:00:00",
                        "--n-features",
                        str(args.n_features),
                    ],
                )
            got["load"] = load
            runs[name].append(got)
            print(
                f"  materialize rep {rep + 1}/{args.repeat}  {name:<40} {got['seconds']:7.2f} s  "
                f"store {mib(got['store_bytes'])} MiB  peak {mib(got['peak_rss'])} MiB",
                flush=True,
            )
    base = median([r["seconds"] for r in runs["boite"]])
    base_size = median([r["store_bytes"] for r in runs["boite"]])
    rows = []
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        size = median([r["store_bytes"] for r in rs])
        rows.append(
            [
                name,
                str(len(rs)),
                fmt_s(secs),
                fmt_spread(secs),
                f"{median(secs) / base:.2f}×",
                f"{size / 1e6:,.1f}",
                f"{size / base_size:.2f}×",
                mib(median([r["peak_rss"] for r in rs])),
                f"{rs[-1].get('entities'):,}",
            ]
        )
    print(
        f"\nmaterialization of {args.rows:,} feature rows ({args.entities:,} entities) into a "
        f"fresh online store"
    )
    print(
        table(
            rows,
            [
                "implementation",
                "runs",
                "median s",
                "min–max s",
                "÷ boite",
                "store MB",
                "÷ boite",
                "peak RSS MiB",
                "entities",
            ],
        )
    )
    print(load_note(runs))
    b = runs["boite"][-1]
    print(
        f"(boite: {b['rows_read']:,} rows read, {b['rows_written']:,} written; files while "
        f"open {b['files_open']}, after close {b['files']})"
    )
    verdicts = []
    if feast_repo:
        f = runs["feast (DuckDB offline -> SQLite online)"]
        speedup = median([r["seconds"] for r in f]) / base
        fsize = median([r["store_bytes"] for r in f])
        print(f"(Feast: files {f[-1]['files']}, {f[-1]['rows']:,} rows (entity, feature))")
        print(
            f"  target boite >= {TARGETS['materialize_vs_feast']}× faster than Feast: "
            f"{speedup:.1f}×; store {base_size / 1e6:.1f} MB vs {fsize / 1e6:.1f} MB"
        )
        verdicts.append(
            (
                f"materialize: ≥ {TARGETS['materialize_vs_feast']}× faster than Feast "
                f"({speedup:.1f}×)",
                speedup >= TARGETS["materialize_vs_feast"],
            )
        )
        verdicts.append(
            (
                f"materialize: smaller store than Feast ({base_size / 1e6:.1f} vs "
                f"{fsize / 1e6:.1f} MB)",
                base_size < fsize,
            )
        )
    results["materialize"] = runs
    print()
    return verdicts


def bench_online(
    args: argparse.Namespace, root: Path, repos: dict[str, Path], results: dict[str, Any]
) -> list[tuple[str, bool]]:
    db = root / ".boite" / "online.db"
    feast_repo = repos.get("duckdb")
    if not db.exists():
        boite_child({"kind": "materialize-boite", "root": str(root)})
    if feast_repo and not (feast_repo / "materialized").exists():
        feast_child(
            args.feast_python,
            [
                "materialize",
                "--repo",
                str(feast_repo),
                "--start",
                "2024-12-01T00:00:00",
                "--end",
                "2026-01-01T00:00:00",
                "--n-features",
                str(args.n_features),
            ],
        )
    runs: dict[str, list[dict[str, Any]]] = {"boite reader.get": [], "bare sqlite3 PK lookup": []}
    if feast_repo:
        runs["feast get_online_features"] = []
    for rep in range(args.online_repeat):
        common = {
            "entities": args.entities,
            "calls_1": args.calls_1,
            "calls_100": args.calls_100,
            "seed": rep,
            "n_features": args.n_features,
        }
        order = list(runs)
        order = order[rep % len(order) :] + order[: rep % len(order)]
        for name in order:
            load = os.getloadavg()[0]
            if name == "boite reader.get":
                got = boite_child({"kind": "online-boite", "root": str(root), **common})
            elif name == "bare sqlite3 PK lookup":
                got = boite_child({"kind": "online-sqlite", "db": str(db), **common})
            else:
                got = feast_child(
                    args.feast_python,
                    [
                        "online",
                        "--repo",
                        str(feast_repo),
                        "--entities",
                        str(args.entities),
                        "--calls-1",
                        str(args.feast_calls_1),
                        "--calls-100",
                        str(args.feast_calls_100),
                        "--seed",
                        str(rep),
                        "--n-features",
                        str(args.n_features),
                    ],
                )
            got["load"] = load
            runs[name].append(got)
            o = got["online"]
            one = o["1"]["call"] if "call" in o["1"] else o["1"]
            hundred = o["100"]["call"] if "call" in o["100"] else o["100"]
            print(
                f"  online rep {rep + 1}/{args.online_repeat}  {name:<28} 1: p50 "
                f"{one['p50_us']:8.1f} µs   100: p50 {hundred['p50_us']:9.1f} µs",
                flush=True,
            )

    def stat(rs: list[dict[str, Any]], width: str, key: str, sub: str | None = None) -> float:
        vals = []
        for r in rs:
            o = r["online"][width]
            vals.append((o[sub] if sub else o)[key])
        return median(vals)

    rows = []
    series = []
    for name, rs in runs.items():
        if name.startswith("feast"):
            series.append((name + " (call)", rs, "call"))
            series.append((name + " (+ to_dict)", rs, "call+to_dict"))
        else:
            series.append((name, rs, None))
    b1 = stat(runs["boite reader.get"], "1", "p50_us")
    b100 = stat(runs["boite reader.get"], "100", "p50_us")
    for name, rs, sub in series:
        p1, p100 = stat(rs, "1", "p50_us", sub), stat(rs, "100", "p50_us", sub)
        rows.append(
            [
                name,
                str(len(rs)),
                f"{p1:,.1f}",
                f"{stat(rs, '1', 'p99_us', sub):,.1f}",
                f"{p1 / b1:.2f}×",
                f"{p100:,.1f}",
                f"{stat(rs, '100', 'p99_us', sub):,.1f}",
                f"{p100 / b100:.2f}×",
                f"{_calls(rs, '1', sub):,}/{_calls(rs, '100', sub):,}",
            ]
        )
    print(
        f"\nonline read, in process, random existing entities ({args.entities:,} in the store); "
        "medians over processes of each process's p50/p99"
    )
    print(
        table(
            rows,
            [
                "implementation",
                "runs",
                "1: p50 µs",
                "1: p99 µs",
                "÷ boite",
                "100: p50 µs",
                "100: p99 µs",
                "÷ boite",
                "calls 1/100",
            ],
        )
    )
    print(load_note(runs))
    paired = {
        w: median(
            [r["online"][w]["p50_us"] / r["floor"][w]["p50_us"] for r in runs["boite reader.get"]]
        )
        for w in ("1", "100")
    }
    floor_p50 = {
        w: median([r["floor"][w]["p50_us"] for r in runs["boite reader.get"]]) for w in ("1", "100")
    }
    print(
        f"(in boite's own processes, blocks alternating with a bare sqlite3 query of the same "
        f"rows: floor p50 {floor_p50['1']:.1f} µs and {floor_p50['100']:.1f} µs; boite ÷ floor, "
        f"median of the processes: {paired['1']:.2f}× for 1 entity, {paired['100']:.2f}× for "
        "100)"
    )
    results["online_paired"] = {"floor_p50_us": floor_p50, "boite_over_floor": paired}
    present = median([r["present"]["100"] for r in runs["boite reader.get"]])
    print(
        f"(boite: {present:.1%} of the entities read had a value within the TTL "
        f"at the project's clock {NOW}; the others come back as missing)"
    )
    results["online"] = runs
    verdicts = [
        (
            f"online 1 entity p50 < {TARGETS['online_1_p50_us']:.0f} µs ({b1:.1f} µs)",
            b1 < TARGETS["online_1_p50_us"],
        ),
        (
            f"online 100 entities p50 < {TARGETS['online_100_p50_us']:.0f} µs ({b100:.1f} µs)",
            b100 < TARGETS["online_100_p50_us"],
        ),
    ]
    if feast_repo:
        verdicts += online_crosscheck(args, db, feast_repo, results)
    print()
    return verdicts


def online_crosscheck(
    args: argparse.Namespace, db: Path, feast_repo: Path, results: dict[str, Any]
) -> list[tuple[str, bool]]:
    """Both online stores hold the same latest values (before any TTL at read time)."""
    import math
    import random
    import sqlite3

    keys = random.Random(99).sample(range(args.entities), k=min(args.entities, 2_000))
    keys_file = args.data / "out" / "online_keys.json"
    keys_file.parent.mkdir(exist_ok=True)
    keys_file.write_text(json.dumps(keys))
    dump = args.data / "out" / "feast_online.json"
    feast_child(
        args.feast_python,
        [
            "dump-online",
            "--repo",
            str(feast_repo),
            "--keys",
            str(keys_file),
            "--out",
            str(dump),
            "--n-features",
            str(args.n_features),
        ],
    )
    feast = json.loads(dump.read_text())
    conn = sqlite3.connect(db)
    feats = [f"f{i}" for i in range(args.n_features)]
    stored = {
        r[0]: r[1:]
        for r in conn.execute(
            f'SELECT entity_id, {", ".join(feats)} FROM "fv_{VIEW}" WHERE entity_id IN '
            f"({', '.join('?' * len(keys))})",
            keys,
        )
    }
    conn.close()
    diffs = compared = 0
    for i, k in enumerate(keys):
        mine = stored.get(k, (None,) * len(feats))
        for j, f in enumerate(feats):
            a, b = mine[j], feast[f][i]
            a_null = a is None or (isinstance(a, float) and math.isnan(a))
            b_null = b is None or (isinstance(b, float) and math.isnan(b))
            compared += 1
            if not (a_null and b_null) and a != b:
                diffs += 1
    feast_null = sum(1 for v in feast["f0"] if v is None)
    print(
        f"online cross-check: {len(keys):,} entities, {compared:,} values, boite store vs Feast "
        f"store: {diffs} differ (Feast returned no f0 for {feast_null} of them)"
    )
    results["online_crosscheck"] = {
        "entities": len(keys),
        "values": compared,
        "diffs": diffs,
        "feast_null_f0": feast_null,
    }
    return [(f"online: both stores hold the same values ({diffs} differ)", diffs == 0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000, help="feature rows")
    parser.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="label frame sizes (default 100000 1000000)",
    )
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--ttl-days", type=int, default=90)
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="processes per implementation for training and materialization",
    )
    parser.add_argument(
        "--feast-file-repeat",
        type=int,
        default=3,
        help="repetitions of Feast's file store (default 3; it is slow)",
    )
    parser.add_argument(
        "--online-repeat", type=int, default=5, help="processes per implementation for online reads"
    )
    parser.add_argument("--calls-1", type=int, default=20_000)
    parser.add_argument("--calls-100", type=int, default=2_000)
    parser.add_argument("--feast-calls-1", type=int, default=5_000)
    parser.add_argument("--feast-calls-100", type=int, default=500)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["training", "materialize", "online"],
        default=["training", "materialize", "online"],
    )
    parser.add_argument("--no-feast", action="store_true", help="skip every Feast peer")
    parser.add_argument(
        "--no-feast-file",
        action="store_true",
        help="skip Feast's file offline store (the slowest peer)",
    )
    parser.add_argument("--feast-python", type=Path, default=FEAST_PYTHON)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, help="write every measurement there")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile boite's first materialization and one training set",
    )
    parser.add_argument(
        "--keep-artifacts",
        action="store_true",
        help="keep each boite training set in the store between repetitions "
        "(later ones then find an identical file there: re-hash, no fsync)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    args.data = args.data.resolve()
    args.data.mkdir(parents=True, exist_ok=True)
    CHILD_ENV.update(user_env(args.data))  # bytecode cached, as on a user's machine

    import duckdb

    import boite

    feast_ok = not args.no_feast and args.feast_python.exists()
    if not args.no_feast and not feast_ok:
        print(
            f"no Feast environment at {args.feast_python} (see benchmarks/FEAST.md): "
            "running without the Feast peers"
        )
    paths = generate(
        args.data, args.entities, args.rows, args.labels, args.n_features, args.ttl_days
    )
    root = make_project(args.data, args.ttl_days, args.labels)
    stores = [] if not feast_ok else (["duckdb"] if args.no_feast_file else ["duckdb", "file"])
    repos = (
        setup_feast(
            args.feast_python, args.data, paths["features"], args.ttl_days, args.n_features, stores
        )
        if feast_ok
        else {}
    )
    feast_version = None
    if feast_ok:
        feast_version = subprocess.run(
            [str(args.feast_python), "-c", "import feast; print(feast.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    print(
        f"feature_store: {machine()}; boite {boite.__version__}, duckdb {duckdb.__version__}, "
        f"feast {feast_version or '-'}; load average {os.getloadavg()[0]:.2f}\n"
    )

    results: dict[str, Any] = {
        "git": git_state(),
        "machine": machine(),
        "boite": boite.__version__,
        "duckdb": duckdb.__version__,
        "feast": feast_version,
        "args": {k: str(v) for k, v in vars(args).items()},
        "load_before": os.getloadavg()[0],
    }
    verdicts: list[tuple[str, bool]] = []
    if not args.keep_artifacts:
        purge_training_sets(root)
    if args.profile:
        n = args.labels[-1]
        print(f"cProfile of one boite training set ({n:,} labels):")
        boite_child(
            {
                "kind": "training-boite",
                "root": str(root),
                "labels": str(paths[f"labels_{n}"]),
                "name": f"bench_{n}",
                "profile": True,
            }
        )
    if "training" in args.only:
        verdicts += bench_training(args, paths, root, repos, results)
    if "materialize" in args.only:
        verdicts += bench_materialize(args, root, repos, results)
    if "online" in args.only:
        verdicts += bench_online(args, root, repos, results)
    results["load_after"] = os.getloadavg()[0]
    results["git_after"] = git_state()
    print(f"boite source: {results['git']} at the start, {results['git_after']} at the end")
    results["verdicts"] = verdicts
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print("verdicts:")
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    correctness = [
        ok
        for name, ok in verdicts
        if "equal" in name or "identical" in name or "same values" in name
    ]
    if not all(correctness):
        print("\nCORRECTNESS FAILURE: see the cross-checks above")
        return 1
    missed = [name for name, ok in verdicts if not ok]
    if args.check and missed:
        return 1
    return 0


def _calls(rs: list[dict[str, Any]], size: str, sub: str | None) -> int:
    online = rs[0]["online"][size]
    return int(online[sub]["calls"] if sub else online["calls"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
