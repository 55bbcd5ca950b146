"""Faults: a run killed with SIGKILL, two runs at once, a tampered artifact.

The killed run is a real process killed by the kernel at arbitrary moments; the
next run must end in the same state as a clean run, and no half-written
artifact may ever be current.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import boite
from boite.core.artifacts import sha256_file
from boite.errors import ArtifactIntegrityError, ProjectLockedError

YAML = """\
name: faults
sources:
  events: {path: data/events.csv}
transforms:
  per_user:
    checks: [{not_null: user_id}]
"""

PER_USER = (
    "SELECT user_id, count(*) AS n, sum(amount) AS total FROM events GROUP BY ALL ORDER BY 1\n"
)
BIG = "SELECT user_id, n * 2 AS n2 FROM per_user ORDER BY 1\n"
# A Python step that can be told to hang, so a kill can land inside a step.
SLOW = textwrap.dedent(
    """\
    import os, time
    import pandas as pd


    def slow(per_user: pd.DataFrame) -> pd.DataFrame:
        marker = os.environ.get("BOITE_TEST_MARKER")
        if marker:
            open(marker, "w").close()
            time.sleep(float(os.environ.get("BOITE_TEST_SLEEP", "0")))
        return per_user.assign(total_x2=per_user["total"] * 2)
    """
)

RUN = "import sys, boite; boite.open_project(sys.argv[1]).run(wait=len(sys.argv) > 2)"


def make(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    (root / "transforms").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "boite.yaml").write_text(YAML)
    rows = ["user_id,amount"] + [f"u{i % 97},{i % 13}.5" for i in range(5000)]
    (root / "data" / "events.csv").write_text("\n".join(rows) + "\n")
    (root / "transforms" / "per_user.sql").write_text(PER_USER)
    (root / "transforms" / "big.sql").write_text(BIG)
    (root / "transforms" / "slow.py").write_text(SLOW)
    return root


def state(root: Path) -> dict[str, str]:
    project = boite.open_project(root)
    try:
        return {d.name: d.content_hash for d in project.datasets()}
    finally:
        project.close()


def start(root: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(root), *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never reached the marker"
        time.sleep(0.02)


def assert_store_clean(root: Path) -> None:
    artifacts = root / ".boite" / "artifacts"
    assert not list(artifacts.rglob("*.tmp"))
    for f in artifacts.rglob("*.parquet"):
        assert f.name.startswith(sha256_file(f)), f"{f} does not match its hash"


@pytest.fixture(scope="module")
def clean_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = make(tmp_path_factory.mktemp("clean"), "p")
    boite.open_project(root).run()
    return state(root)


def test_sigkill_inside_a_step_then_resume(tmp_path: Path, clean_state: dict[str, str]) -> None:
    root = make(tmp_path, "p")
    marker = tmp_path / "inside"
    proc = start(root, {"BOITE_TEST_MARKER": str(marker), "BOITE_TEST_SLEEP": "60"})
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    project = boite.open_project(root)
    assert "slow" not in {d.name for d in project.datasets()}
    assert any(r.status == "running" for r in project.ledger.runs(step="slow"))
    report = project.run()
    assert report.ok
    assert report.outcome("slow").state == "built"
    # the steps that had finished before the kill are not run again
    assert report.outcome("per_user").state == "up to date"
    assert {r.status for r in project.ledger.runs(step="slow")} == {"interrupted", "succeeded"}
    assert state(root) == clean_state
    assert not (root / ".boite" / "tmp").exists() or not any((root / ".boite" / "tmp").iterdir())
    assert_store_clean(root)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_moments(tmp_path: Path, clean_state: dict[str, str], seed: int) -> None:
    rng = random.Random(seed)
    root = make(tmp_path, "p")
    proc = start(root, {})
    time.sleep(rng.uniform(0.3, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # whatever was current after the kill was complete and verified
    project = boite.open_project(root)
    for dataset in project.datasets():
        assert sha256_file(dataset.path) == dataset.content_hash
    assert project.run().ok
    assert state(root) == clean_state
    assert_store_clean(root)


def test_two_runs_at_once(tmp_path: Path) -> None:
    root = make(tmp_path, "p")
    marker = tmp_path / "holding"
    first = start(root, {"BOITE_TEST_MARKER": str(marker), "BOITE_TEST_SLEEP": "2"})
    try:
        wait_for(marker, first)
        with pytest.raises(ProjectLockedError) as info:
            boite.open_project(root).run()
        assert f"pid {first.pid}" in str(info.value)
        assert "--wait" in str(info.value)
        # a second run that waits goes after the first and finds nothing to do
        waiter = start(root, {}, "wait")
        assert waiter.wait(timeout=60) == 0, waiter.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        assert first.wait(timeout=60) == 0
    project = boite.open_project(root)
    runs = project.ledger.runs()
    assert {r.status for r in runs} == {"succeeded"}
    assert len([r for r in runs if r.step == "slow"]) == 1  # the waiter had nothing to do
    assert project.run().executed == []


def test_tampered_artifact_is_detected_on_read(tmp_path: Path) -> None:
    root = make(tmp_path, "p")
    project = boite.open_project(root)
    assert project.run().ok
    path = project.dataset("per_user").path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    fresh = boite.open_project(root)
    with pytest.raises(ArtifactIntegrityError) as info:
        fresh.dataset("per_user").to_pandas()
    assert "per_user@1" in str(info.value)
    # a step that reads it fails with the same error, and nothing is built on it
    (root / "transforms" / "big.sql").write_text(BIG.replace("* 2", "* 3"))
    report = fresh.run()
    assert report.outcome("big").state == "failed"
    assert isinstance(report.outcome("big").error, ArtifactIntegrityError)
    # following the advice (delete it, run again) rebuilds the same version
    path.unlink()
    assert "missing" in next(s.reason for s in fresh.status() if s.name == "per_user")
    report = boite.open_project(root).run()
    assert report.ok
    assert report.outcome("per_user").state == "unchanged"
    assert report.outcome("big").state == "built"
    assert boite.open_project(root).dataset("per_user").version == 1
