"""Helpers shared by the benchmark scripts (not a benchmark itself).

Benchmarks are plain scripts: they generate their data in a temporary folder,
time boite and its peer alternately in the same process (so both share the
machine's noise), and report medians.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BOITE = VENV_BIN / "boite"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min–max, to show how noisy the runs were."""
    return f"{min(values):.3f}–{max(values):.3f}"


def machine() -> str:
    import duckdb

    cores = os.cpu_count()
    return (
        f"{cores} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"{platform.system()} {platform.machine()}"
    )


def load() -> str:
    """The 1-minute load average: above the number of cores, expect noisy figures."""
    return f"{os.getloadavg()[0]:.2f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def user_env(tmp: Path, *, as_is: bool = False) -> dict[str, str]:
    """The environment for timed subprocesses: Python caching bytecode, as on a user's machine.

    Sandboxes often set PYTHONDONTWRITEBYTECODE=1, which makes every start
    recompile boite's own modules (~50 ms for all of them here). Bytecode goes
    to ``tmp`` (PYTHONPYCACHEPREFIX), never into the repository. ``as_is``
    keeps the environment untouched.
    """
    env = dict(os.environ)
    if not as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def env_note(env: dict[str, str]) -> str:
    if env.get("PYTHONDONTWRITEBYTECODE"):
        return "bytecode not cached (PYTHONDONTWRITEBYTECODE set)"
    if env.get("PYTHONPYCACHEPREFIX"):
        return "bytecode cached in the temporary folder (PYTHONPYCACHEPREFIX)"
    return "bytecode cached"


def timed_subprocess(argv: list[str], *, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one subprocess, output discarded; raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(map(str, argv))} exited {done.returncode}:\n"
            f"{done.stdout.decode(errors='replace')}\n{done.stderr.decode(errors='replace')}"
        )
    return elapsed


def verdict(name: str, ok: bool, check: bool) -> int:
    print(f"\n{name}: {'PASS' if ok else 'MISS'}")
    return 1 if (check and not ok) else 0


# --- process measurements (stdlib only: the peers' own venvs import these too) -------


def peak_rss() -> int:
    """This process's own peak resident set since it started (VmHWM).

    Not getrusage's ru_maxrss: on Linux that also keeps the high-water mark of
    the memory the process had before its exec, i.e. the launching (driver)
    process's peak, which would put a floor under every measurement.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def current_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
