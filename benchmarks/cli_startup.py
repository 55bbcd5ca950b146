"""`boite --help` starts in under 0.3 s.

Times `boite --help` as a user runs it (a subprocess, interpreter start-up
included) against the floor, `python -c pass`, alternating the two so they share
the machine's noise; reports medians and the ratio. When the target is missed
(or with --importtime), lists the slowest imports of `boite.cli.main`
(`python -X importtime`).

    .venv/bin/python benchmarks/cli_startup.py [--repeat 15] [--check]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
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

TARGET_S = 0.3


def importtime(top: int, env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) of `import boite.cli.main`, slowest cumulative first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import boite.cli.main"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(3)[1:] + m.group(4)))
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each (default 15, min 10)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--importtime", action="store_true", help="always list the slow imports")
    parser.add_argument(
        "--env-as-is",
        action="store_true",
        help="time with the environment untouched (default: bytecode cached, as for a user)",
    )
    args = parser.parse_args()
    repeat = max(args.repeat, 10)
    tmp = Path(tempfile.mkdtemp(prefix="boite-bench-cli-"))
    try:
        return measure(args, repeat, user_env(tmp, as_is=args.env_as_is))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, repeat: int, env: dict[str, str]) -> int:

    commands = {
        "boite --help": [str(BOITE), "--help"],
        "boite --version": [str(BOITE), "--version"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import boite.cli.main'": [sys.executable, "-c", "import boite.cli.main"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    load_before = load()
    for argv in commands.values():  # warm the page cache and the bytecode cache
        timed_subprocess(argv, env=env)
    for rep in range(repeat):
        order = list(commands.items())
        if rep % 2:
            order.reverse()
        for name, argv in order:
            times[name].append(timed_subprocess(argv, env=env))

    med = {k: median(v) for k, v in times.items()}
    print(
        f"cli_startup: {repeat} runs each, alternating; {machine()}; {env_note(env)}; "
        f"load average {load_before} -> {load()}\n"
    )
    print(
        table(
            [[k, f"{med[k]:.3f}", spread(v)] for k, v in times.items()],
            ["command", "median s", "min–max s"],
        )
    )
    help_s, floor_s = med["boite --help"], med["python -c pass"]
    print(f"\nboite --help / python -c pass: {help_s / floor_s:.1f}×")
    print(f"boite --help above the floor: {help_s - floor_s:.3f} s")
    print(f"target: boite --help median < {TARGET_S} s -> {help_s:.3f} s")
    ok = help_s < TARGET_S
    if not ok or args.importtime:
        print("\nslowest imports of boite.cli.main (python -X importtime, cumulative):")
        print(
            table(
                [
                    [name, f"{cum / 1000:.1f}", f"{own / 1000:.1f}"]
                    for own, cum, name in importtime(15, env)
                ],
                ["module", "cumulative ms", "self ms"],
            )
        )
    return verdict("cli_startup", ok, args.check)


if __name__ == "__main__":
    sys.exit(main())
