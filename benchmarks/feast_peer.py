"""The Feast side of benchmarks/feature_store.py (a peer, not a benchmark of its own).

It runs in its own virtual environment (benchmarks/.venv-feast, see FEAST.md),
never in the project's: Feast is not one of boite's dependencies. The driver
calls it once per measurement, in a fresh process, and reads one JSON object
from the last line of its standard output:

    setup        write a Feast repository (feature_store.yaml + apply) over the
                 feature table, with the DuckDB or the file (Dask) offline store
                 and the SQLite online store
    training     get_historical_features for a label file -> Parquet output
    materialize  materialize the whole history into a fresh SQLite online store
    online       get_online_features latencies for 1 and for 100 entities
    dump-online  the online values of some entities (for the cross-check)

Every timed figure excludes the interpreter start and the imports; peak_rss is
the process's own peak resident set (VmHWM), imports included,
with rss_after_imports beside it.

    benchmarks/.venv-feast/bin/python benchmarks/feast_peer.py training \
        --repo DIR --labels labels.parquet --out out.parquet
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path

# run as a script from benchmarks/, in the Feast venv: _common is stdlib only
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, current_rss, peak_rss

warnings.filterwarnings("ignore")

VIEW = "fv"
ENTITY_KEY = "entity_id"


def emit(payload: dict) -> None:
    import feast

    payload.setdefault("feast_version", feast.__version__)
    sys.stdout.flush()
    print(json.dumps(payload))


def feature_names(n: int) -> list[str]:
    return [f"f{i}" for i in range(n)]


# --- setup ---------------------------------------------------------------------


def setup(args: argparse.Namespace) -> None:
    repo = Path(args.repo).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    offline = "duckdb" if args.offline == "duckdb" else "file"
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n  type: {offline}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online_store.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Float64

    features = Path(args.features).resolve()  # the DuckDB store needs an absolute path
    source = FileSource(
        name="features",
        path=str(features),
        file_format=ParquetFormat(),  # without it the DuckDB store silently finds no features
        timestamp_field="event_ts",
        created_timestamp_column="created_ts",
    )
    entity = Entity(name="entity", join_keys=[ENTITY_KEY], value_type=ValueType.INT64)
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=timedelta(days=args.ttl_days),
        schema=[Field(name=f, dtype=Float64) for f in feature_names(args.n_features)],
        source=source,
        online=True,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([entity, view])
    # apply creates the online tables; materialize starts each time from this empty store
    shutil.copyfile(repo / "online_store.db", repo / "online_store.empty")
    emit({"repo": str(repo), "offline_store": offline})


# --- training sets ---------------------------------------------------------------


def training(args: argparse.Namespace) -> None:
    import pandas as pd
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet as pq
    from feast import FeatureStore

    rss_imports = current_rss()
    start, cpu = time.perf_counter(), cpu_seconds()
    store = FeatureStore(repo_path=args.repo)
    entity_df = pd.read_parquet(args.labels)
    refs = [f"{VIEW}:{f}" for f in feature_names(args.n_features)]
    job = store.get_historical_features(entity_df=entity_df, features=refs)
    table = job.to_arrow()
    pq.write_table(table, args.out, compression="zstd")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    emit(
        {
            "seconds": seconds,
            "cpu_s": cpu,
            "rows": table.num_rows,
            "labels": len(entity_df),
            "peak_rss": peak_rss(),
            "rss_after_imports": rss_imports,
            "out": args.out,
        }
    )


# --- materialization ---------------------------------------------------------------


def materialize(args: argparse.Namespace) -> None:
    import sqlite3

    from feast import FeatureStore

    repo = Path(args.repo)
    db = repo / "online_store.db"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")):
        leftover.unlink(missing_ok=True)
    (repo / "materialized").unlink(missing_ok=True)
    shutil.copyfile(repo / "online_store.empty", db)  # the empty tables apply made
    empty_bytes = db.stat().st_size
    rss_imports = current_rss()
    start, cpu = time.perf_counter(), cpu_seconds()
    store = FeatureStore(repo_path=str(repo))
    store.materialize(
        start_date=datetime.fromisoformat(args.start), end_date=datetime.fromisoformat(args.end)
    )
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    files = {p.name: p.stat().st_size for p in repo.glob("online_store.db*")}
    conn = sqlite3.connect(db)
    table = next(
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name.endswith(VIEW)
    )
    cells = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    keys = conn.execute(f'SELECT count(DISTINCT entity_key) FROM "{table}"').fetchone()[0]
    conn.close()
    (repo / "materialized").write_text(args.end)  # the online store holds the whole history
    emit(
        {
            "seconds": seconds,
            "cpu_s": cpu,
            "store_bytes": sum(files.values()),
            "empty_store_bytes": empty_bytes,
            "files": files,
            "entities": keys,
            "rows": cells,
            "peak_rss": peak_rss(),
            "rss_after_imports": rss_imports,
        }
    )


# --- online reads ----------------------------------------------------------------


def _percentiles(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    n = len(ordered)
    return {
        "p50_us": ordered[n // 2] / 1000,
        "p99_us": ordered[min(n - 1, int(n * 0.99))] / 1000,
        "mean_us": sum(ordered) / n / 1000,
        "calls": n,
    }


def online(args: argparse.Namespace) -> None:
    import random

    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    refs = [f"{VIEW}:{f}" for f in feature_names(args.n_features)]
    rng = random.Random(args.seed)
    keys = rng.sample(range(args.entities), k=min(args.entities, 10_000))

    def rows(k: int, i: int) -> list[dict]:
        return [{ENTITY_KEY: keys[(i * k + j) % len(keys)]} for j in range(k)]

    out: dict[str, dict] = {}
    for label, width, calls in (("1", 1, args.calls_1), ("100", 100, args.calls_100)):
        batches = [rows(width, i) for i in range(calls)]
        for b in batches[: max(1, calls // 20)]:  # warm-up
            store.get_online_features(features=refs, entity_rows=b).to_dict()
        call_ns, dict_ns = [], []
        clock = time.perf_counter_ns
        for b in batches:
            t0 = clock()
            response = store.get_online_features(features=refs, entity_rows=b)
            t1 = clock()
            response.to_dict()
            t2 = clock()
            call_ns.append(t1 - t0)
            dict_ns.append(t2 - t0)
        out[label] = {"call": _percentiles(call_ns), "call+to_dict": _percentiles(dict_ns)}
    emit({"online": out, "peak_rss": peak_rss()})


def dump_online(args: argparse.Namespace) -> None:
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    keys = json.loads(Path(args.keys).read_text())
    refs = [f"{VIEW}:{f}" for f in feature_names(args.n_features)]
    values = store.get_online_features(
        features=refs, entity_rows=[{ENTITY_KEY: k} for k in keys]
    ).to_dict()
    Path(args.out).write_text(json.dumps(values))
    emit({"out": args.out, "entities": len(keys)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.add_argument("--repo", required=True)
        p.add_argument("--n-features", type=int, default=10)
        return p

    p = add("setup")
    p.add_argument("--offline", choices=["duckdb", "file"], required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--ttl-days", type=int, required=True)
    p = add("training")
    p.add_argument("--labels", required=True)
    p.add_argument("--out", required=True)
    p = add("materialize")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p = add("online")
    p.add_argument("--entities", type=int, required=True)
    p.add_argument("--calls-1", type=int, default=20_000)
    p.add_argument("--calls-100", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=0)
    p = add("dump-online")
    p.add_argument("--keys", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args()
    {
        "setup": setup,
        "training": training,
        "materialize": materialize,
        "online": online,
        "dump-online": dump_online,
    }[args.command](args)


if __name__ == "__main__":
    main()
