"""A small JSON file of derived facts that are costly to recompute (hashes, parses).

A cache is never the truth: a missing, damaged or old-format file only means the
facts are computed again. Saving writes a temporary file and renames it, so a
killed process never leaves a half-written cache.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any


class JsonCache:
    VERSION = 1

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.dirty = False
        self._lock = threading.Lock()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("version") == self.VERSION:
                    self.entries = data["entries"]
            except (OSError, ValueError, KeyError):
                self.entries = {}

    def get(self, key: str) -> Any:
        with self._lock:
            return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self.entries[key] = value
            self.dirty = True

    def save(self) -> None:
        with self._lock:
            if self.path is None or not self.dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.entries}))
            os.replace(tmp, self.path)
            self.dirty = False
