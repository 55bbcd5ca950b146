"""A no-op `boite run` on a project of 200 transforms takes under 1 second.

In a temporary folder it generates a project: one small CSV source (`orders`)
and 200 SQL transforms forming a layered DAG (each reads 1–3 tables of earlier
layers, with joins, CTEs, UNION ALL and GROUP BY; the graph is drawn from a
seeded random generator, so it is the same on every run). It builds the project
once (`boite run`, timed), then times, alternating in each repetition:

- `boite run -p DIR` as a subprocess, with nothing to do: what a user waits for,
  interpreter start-up included (the target);
- `boite status -p DIR` as a subprocess;
- `open_project(DIR).run()` in this process (no interpreter start-up or imports);
- the floor: `boite --help` as a subprocess (interpreter start-up and the CLI's
  imports, no project);
- the modules `boite run` imports, imported by a bare interpreter (a subprocess
  doing nothing else): how much of the no-op is import time.

When the target is missed (or with --profile), it profiles one in-process no-op
run with cProfile and lists the top costs.

    .venv/bin/python benchmarks/noop_run.py [--transforms 200] [--repeat 7] [--check]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    BOITE,
    env_note,
    load,
    machine,
    median,
    spread,
    table,
    timed_subprocess,
    user_env,
    verdict,
)

TARGET_S = 1.0
# What `boite run` imports before it does any work (typer._adapters, and with it
# pydantic, comes in when typer converts the options' values).
IMPORTS = "import boite.cli.main, boite.cli.render, boite.pipeline.project, typer._adapters"
CATEGORIES = ["books", "music", "toys", "food", "garden", "sports", "beauty", "tools"]


def write_orders(path: Path, rows: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["order_id,customer_id,day,amount,category"]
    for i in range(rows):
        day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        lines.append(
            f"{i + 1},{rng.randint(1, 300)},{day},{rng.randint(100, 50000) / 100:.2f},"
            f"{rng.choice(CATEGORIES)}"
        )
    path.write_text("\n".join(lines) + "\n")


# Every transform outputs (customer_id INTEGER, day DATE, v DOUBLE), so any table
# can be joined with any other; the SQL varies with the number of inputs.


def staging_sql(category: str) -> str:
    return f"""\
-- Orders of the category '{category}', per customer and day.
SELECT
    customer_id,
    CAST(day AS DATE) AS day,
    sum(amount) AS v
FROM orders
WHERE category = '{category}'
GROUP BY customer_id, day
"""


def one_input_sql(a: str, k: int) -> str:
    return f"""\
WITH base AS (
    SELECT customer_id, day, v
    FROM {a}
    WHERE v > {k}
),
ranked AS (
    SELECT
        customer_id,
        day,
        v,
        row_number() OVER (PARTITION BY customer_id ORDER BY day) AS n
    FROM base
)
SELECT customer_id, day, round(sum(v) * {1 + k / 100:.2f}, 2) AS v
FROM ranked
WHERE n <= {5 + k}
GROUP BY customer_id, day
"""


def two_inputs_sql(a: str, b: str, k: int) -> str:
    return f"""\
SELECT
    x.customer_id,
    x.day,
    round(x.v + coalesce(y.v, 0) * {k % 3 + 1}, 2) AS v
FROM {a} AS x
LEFT JOIN {b} AS y
    ON x.customer_id = y.customer_id AND x.day = y.day
WHERE x.v >= {k}
"""


def three_inputs_sql(a: str, b: str, c: str, k: int) -> str:
    return f"""\
WITH unioned AS (
    SELECT customer_id, day, v FROM {a}
    UNION ALL
    SELECT customer_id, day, v FROM {b}
),
peaks AS (
    SELECT customer_id, max(v) AS peak, count(*) AS days
    FROM {c}
    GROUP BY customer_id
)
SELECT
    u.customer_id,
    u.day,
    round(sum(u.v) + coalesce(max(p.peak), 0) / greatest(max(p.days), 1) + {k}, 2) AS v
FROM unioned AS u
LEFT JOIN peaks AS p ON u.customer_id = p.customer_id
GROUP BY u.customer_id, u.day
"""


def make_project(root: Path, transforms: int, rows: int, seed: int = 20261129) -> int:
    """Write the project; return the number of layers."""
    rng = random.Random(seed)
    (root / "transforms").mkdir(parents=True)
    (root / "boite.yaml").write_text(
        "name: bench-noop\n"
        "description: 200 generated transforms over one CSV\n"
        "sources:\n"
        "  orders:\n"
        "    path: data/orders.csv\n"
    )
    write_orders(root / "data" / "orders.csv", rows, rng)
    layers: list[list[str]] = [[f"stg_{c}" for c in CATEGORIES]]
    for name, category in zip(layers[0], CATEGORIES, strict=True):
        (root / "transforms" / f"{name}.sql").write_text(staging_sql(category))
    made = len(layers[0])
    width = 24
    while made < transforms:
        level = len(layers)
        names = [f"l{level:02d}_t{i:02d}" for i in range(min(width, transforms - made))]
        earlier = [t for layer in layers[:-1] for t in layer]
        for name in names:
            # At least one input from the previous layer, so the graph is deep.
            picks = [rng.choice(layers[-1])]
            for _ in range(rng.choice([0, 1, 1, 2])):
                pool = [t for t in earlier + layers[-1] if t not in picks]
                picks.append(rng.choice(pool))
            k = rng.randint(0, 20)
            if len(picks) == 1:
                sql = one_input_sql(picks[0], k)
            elif len(picks) == 2:
                sql = two_inputs_sql(picks[0], picks[1], k)
            else:
                sql = three_inputs_sql(picks[0], picks[1], picks[2], k)
            (root / "transforms" / f"{name}.sql").write_text(sql)
        layers.append(names)
        made += len(names)
    return len(layers)


def cli(*args: str) -> list[str]:
    return [str(BOITE), *args]


def in_process_noop(root: Path) -> float:
    import boite

    start = time.perf_counter()
    project = boite.open_project(root)
    report = project.run()
    elapsed = time.perf_counter() - start
    project.close()
    if report.executed or not report.ok:
        raise SystemExit(f"the in-process run was not a no-op: {len(report.executed)} executed")
    return elapsed


def profile_noop(root: Path, top: int) -> None:
    import cProfile
    import pstats

    import boite

    prof = cProfile.Profile()
    prof.enable()
    project = boite.open_project(root)
    project.run()
    prof.disable()
    project.close()
    print(f"\ncProfile of one in-process no-op (open_project + run), top {top} by cumulative:")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    print(f"top {top} by own time:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transforms", type=int, default=200, help="SQL transforms (200)")
    parser.add_argument("--rows", type=int, default=5000, help="rows of the CSV source (5000)")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--profile", action="store_true", help="always profile the no-op")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    parser.add_argument(
        "--env-as-is",
        action="store_true",
        help="time with the environment untouched (default: bytecode cached, as for a user)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="boite-bench-noop-"))
    try:
        root = tmp / "project"
        n_layers = make_project(root, args.transforms, args.rows)
        env = {**user_env(tmp, as_is=args.env_as_is), "COLUMNS": "160"}

        # Fill the bytecode cache first, so the full build is not charged for it.
        timed_subprocess([sys.executable, "-c", IMPORTS], env=env)
        start = time.perf_counter()
        full = subprocess.run(cli("run", "-p", str(root)), capture_output=True, text=True, env=env)
        full_s = time.perf_counter() - start
        if full.returncode != 0:
            raise SystemExit(f"the full build failed:\n{full.stdout}\n{full.stderr}")
        noop = subprocess.run(cli("run", "-p", str(root)), capture_output=True, text=True, env=env)
        if "Nothing to do" not in noop.stdout:
            raise SystemExit(f"the second run was not a no-op:\n{noop.stdout}\n{noop.stderr}")
        print(f"no-op says: {noop.stdout.strip()}")

        commands = {
            "boite run (no-op, CLI)": cli("run", "-p", str(root)),
            "boite status (CLI)": cli("status", "-p", str(root)),
            "boite --help (floor)": cli("--help"),
            "imports of `boite run`, nothing else": [sys.executable, "-c", IMPORTS],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        times["open_project().run() (in process)"] = []
        load_before = load()
        in_process_noop(root)  # warm-up: first imports of this process
        for argv in commands.values():  # warm-up: the bytecode cache
            timed_subprocess(argv, env=env)
        for rep in range(args.repeat):
            order = list(commands.items())
            if rep % 2:
                order.reverse()
            for name, argv in order:
                times[name].append(timed_subprocess(argv, env=env))
            times["open_project().run() (in process)"].append(in_process_noop(root))

        floor = median(times["boite --help (floor)"])
        print(
            f"\nnoop_run: {args.transforms} transforms in {n_layers} layers + 1 CSV source "
            f"({args.rows:,} rows), {args.repeat} repetitions, alternating; {machine()}; "
            f"{env_note(env)}"
        )
        print(
            f"full build (boite run, CLI, first time): {full_s:.2f} s; "
            f"load average {load_before} -> {load()}\n"
        )
        print(
            table(
                [
                    [k, f"{median(v):.3f}", spread(v), f"{median(v) / floor:.1f}×"]
                    for k, v in times.items()
                ],
                ["what", "median s", "min–max s", "vs boite --help"],
            )
        )
        noop_s = median(times["boite run (no-op, CLI)"])
        print(
            f"\ntarget: no-op `boite run` (CLI) median < {TARGET_S} s -> {noop_s:.3f} s "
            f"({noop_s / TARGET_S:.2f}× the budget; {noop_s - floor:.3f} s above `boite --help`)"
        )
        ok = noop_s < TARGET_S
        if not ok or args.profile:
            profile_noop(root, 30)
        return verdict("noop_run", ok, args.check)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
