"""The public data sets the model-file tests read, shipped with the repository (each with
its SOURCE.txt beside it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA_FILES = {
    "adult/adult.csv.gz": REPO / "examples/income/data/adult/adult.csv.gz",
    "bike_sharing/day.csv": REPO / "tests/data/bike_sharing/day.csv",
    "movietweetings_sample/train_data.csv.gz": (
        REPO / "tests/data/movietweetings_sample/train_data.csv.gz"
    ),
}


def data_file(relpath: str) -> Path:
    return DATA_FILES[relpath]
