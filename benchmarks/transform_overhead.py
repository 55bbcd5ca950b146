"""Overhead of a boite SQL transform step over DuckDB running the same SQL to Parquet.

Target: boite's step (end to end, `project.run(["daily"])`) takes at most 1.2× the
time of a fresh DuckDB connection running

    COPY (<the same SELECT over read_parquet(input)>) TO 'out.parquet'
        (FORMAT parquet, COMPRESSION zstd)

on the same 1,000,000-row input.

In a temporary folder it generates a deterministic Parquet file of purchase
events (customer_id, day, amount, category; DuckDB's range() and hash()), makes a
boite project that declares it as the source `events` and a transform
`transforms/daily.sql` (per customer and day: counts, sums, averages), and runs
the project once to ingest it. Each repetition then rewrites daily.sql with a
new trailing comment (the code changes, the source does not), times
`project.run(["daily"])`, and times the DuckDB peer; the two alternate so they
share the machine's noise. The peer reads the very file the step reads (the
ingested snapshot of `events` in the artifact store).

Reported per repetition:

- boite end to end: `project.run(["daily"])` on a project opened once (the
  notebook case): plan, lock, freshness of `events` (which re-hashes the raw
  file), the step, the ledger.
- boite fresh: `open_project(dir).run(["daily"])` (the CLI case, without the
  interpreter start-up): also verifies the input snapshot's hash again.
- ledger wall_s: the step's own wall time as recorded in the ledger.
- duckdb: the peer.

    .venv/bin/python benchmarks/transform_overhead.py [--rows 1000000] [--repeat 9] [--check]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import machine, median, spread, table, verdict

TARGET_RATIO = 1.2

DAILY_SQL = """\
-- Purchases per customer and day.
SELECT
    customer_id,
    day,
    count(*) AS purchases,
    round(sum(amount), 2) AS spend,
    round(avg(amount), 2) AS avg_amount,
    max(amount) AS max_amount,
    count(DISTINCT category) AS categories,
    round(sum(CASE WHEN category = 'books' THEN amount ELSE 0 END), 2) AS books_spend
FROM events
WHERE amount > 0
GROUP BY customer_id, day
ORDER BY customer_id, day
"""


def generate_events(path: Path, rows: int, customers: int, days: int) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
            SELECT
                (hash(i) % {customers})::INTEGER + 1 AS customer_id,
                DATE '2025-01-01' + (hash(i + 1000003) % {days})::INTEGER AS day,
                round((hash(i + 2000003) % 50000) / 100.0, 2)::DOUBLE AS amount,
                (['books', 'music', 'toys', 'food', 'garden'])[(hash(i + 3000017) % 5)::INTEGER + 1]
                    AS category
            FROM range({rows}) AS t(i)
            ORDER BY i
        ) TO '{path}' (FORMAT parquet, COMPRESSION zstd)
        """
    )
    con.close()


def make_project(root: Path, rows: int) -> None:
    (root / "transforms").mkdir(parents=True)
    (root / "boite.yaml").write_text(
        "name: bench-transform\nsources:\n  events:\n    path: data/events.parquet\n"
    )
    (root / "transforms" / "daily.sql").write_text(DAILY_SQL)
    generate_events(root / "data" / "events.parquet", rows, customers=10_000, days=30)


def peer(sql_over_file: str, out: Path) -> tuple[float, float]:
    """(wall s, process CPU s) of the peer: a fresh connection running the COPY."""
    import duckdb

    start, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    con.execute(f"COPY ({sql_over_file}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return time.perf_counter() - start, time.process_time() - cpu


def boite_step(project, root: Path, rep: int) -> tuple[float, float, float, str]:  # type: ignore[no-untyped-def]
    """(end-to-end s, process CPU s, ledger wall_s, outcome) of one forced rerun of `daily`."""
    (root / "transforms" / "daily.sql").write_text(DAILY_SQL + f"-- repetition {rep}\n")
    start, cpu = time.perf_counter(), time.process_time()
    report = project.run(["daily"])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    daily, events = report.outcome("daily"), report.outcome("events")
    if daily.state not in ("built", "unchanged") or events.state != "up to date":
        raise SystemExit(
            f"unexpected run: events {events.state}, daily {daily.state} {daily.detail}"
        )
    run = project.ledger.runs(step="daily", limit=1)[0]
    assert run.id == daily.run_id, (run.id, daily.run_id)
    return elapsed, cpu, float(run.wall_s or 0.0), daily.state


def profile_once(project, root: Path) -> None:  # type: ignore[no-untyped-def]
    """cProfile one forced rerun: the caller's thread, and the step in its worker thread."""
    import cProfile
    import pstats

    from boite.pipeline import runner

    main_prof, step_prof = cProfile.Profile(), cProfile.Profile()
    original = runner.Runner._step

    def profiled_step(self, step, *args, **kwargs):  # type: ignore[no-untyped-def]
        if step.name != "daily":
            return original(self, step, *args, **kwargs)
        step_prof.enable()
        try:
            return original(self, step, *args, **kwargs)
        finally:
            step_prof.disable()

    runner.Runner._step = profiled_step  # type: ignore[method-assign]
    try:
        (root / "transforms" / "daily.sql").write_text(DAILY_SQL + "-- profiled\n")
        main_prof.enable()
        project.run(["daily"])
        main_prof.disable()
    finally:
        runner.Runner._step = original  # type: ignore[method-assign]
    print("cProfile of one repetition, caller's thread (top 15 by cumulative time):")
    pstats.Stats(main_prof).sort_stats("cumulative").print_stats(15)
    print("cProfile of the step 'daily' in its worker thread (top 30 by cumulative time):")
    pstats.Stats(step_prof).sort_stats("cumulative").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (default 1e6)")
    parser.add_argument("--repeat", type=int, default=9, help="repetitions (default 9)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more boite repetition at the end"
    )
    args = parser.parse_args()

    import boite

    tmp = Path(tempfile.mkdtemp(prefix="boite-bench-transform-"))
    try:
        root = tmp / "project"
        t0 = time.perf_counter()
        make_project(root, args.rows)
        gen_s = time.perf_counter() - t0
        project = boite.open_project(root)
        t0 = time.perf_counter()
        first = project.run()
        ingest_s = time.perf_counter() - t0
        if not first.ok:
            raise SystemExit(f"the first run failed: {[o.detail for o in first.failed]}")
        snapshot = project.dataset("events").path
        daily_rows = project.dataset("daily").rows
        sql_over_file = DAILY_SQL.replace("FROM events", f"FROM read_parquet('{snapshot}')")
        out = tmp / "peer.parquet"

        # One untimed round of each: the first query of a process pays for warm-up.
        peer(sql_over_file, out)
        boite_step(project, root, -1)

        e2e: list[float] = []
        e2e_cpu: list[float] = []
        fresh: list[float] = []
        ledger: list[float] = []
        direct: list[float] = []
        direct_cpu: list[float] = []
        states: Counter[str] = Counter()
        load_before = os.getloadavg()[0]
        for rep in range(args.repeat):
            gc.collect()
            # Alternate which goes first, so neither always runs on a warmer machine.
            if rep % 2:
                wall, cpu = peer(sql_over_file, out)
                direct.append(wall)
                direct_cpu.append(cpu)
            seconds, cpu, wall, state = boite_step(project, root, 2 * rep)
            e2e.append(seconds)
            e2e_cpu.append(cpu)
            ledger.append(wall)
            states[state] += 1
            t0 = time.perf_counter()
            fresh_project = boite.open_project(root)
            open_s = time.perf_counter() - t0
            seconds, _, _, state = boite_step(fresh_project, root, 2 * rep + 1)
            fresh.append(open_s + seconds)
            states[state] += 1
            fresh_project.close()
            if not rep % 2:
                wall, cpu = peer(sql_over_file, out)
                direct.append(wall)
                direct_cpu.append(cpu)
        load_after = os.getloadavg()[0]

        if args.profile:
            profile_once(project, root)

        peer_med = median(direct)

        def row(name: str, values: list[float], peer_values: list[float]) -> list[str]:
            paired = median([b / p for b, p in zip(values, peer_values, strict=True)])
            return [
                name,
                f"{median(values):.3f}",
                spread(values),
                f"{median(values) / median(peer_values):.2f}×",
                f"{paired:.2f}×",
            ]

        rows = [
            row("duckdb COPY (peer)", direct, direct),
            row("boite project.run (end to end)", e2e, direct),
            row("boite open_project().run (fresh)", fresh, direct),
            row("boite step, ledger wall_s", ledger, direct),
            row("duckdb COPY, process CPU s", direct_cpu, direct_cpu),
            row("boite end to end, process CPU s", e2e_cpu, direct_cpu),
        ]
        print(
            f"transform_overhead: {args.rows:,} input rows -> {daily_rows:,} output rows, "
            f"{args.repeat} repetitions, alternating; {machine()}"
        )
        print(
            f"(input generated in {gen_s:.2f} s, first run with ingest {ingest_s:.2f} s; "
            f"step outcomes: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}; "
            f"load average {load_before:.2f} -> {load_after:.2f})\n"
        )
        print(
            table(
                rows,
                ["what", "median s", "min–max s", "vs duckdb (medians)", "median of paired ratios"],
            )
        )
        ratio = median(e2e) / peer_med
        print(
            f"\ntarget: boite end to end <= {TARGET_RATIO}× duckdb -> {ratio:.2f}× "
            f"(overhead {median(e2e) - peer_med:+.3f} s)"
        )
        project.close()
        return verdict("transform_overhead", ratio <= TARGET_RATIO, args.check)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
