"""Copying the served retail project for a test of its own."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_retail(retail_root: Path, root: Path) -> Path:
    """A copy of the built project, without the log segments of a server that may be
    running on the original (they come and go while it publishes)."""

    def live_files(folder: str, names: list[str]) -> set[str]:
        return {"log"} & set(names) if Path(folder).name == ".boite" else set()

    shutil.copytree(retail_root, root, ignore=live_files)
    return root
