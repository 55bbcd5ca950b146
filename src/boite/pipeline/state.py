"""Is a step up to date? Its fingerprint is its code, its settings and its inputs' versions.

The parts of the fingerprint are kept on the run, so "stale" always comes with a
reason: which part changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from boite.core.ledger import ArtifactRecord, RunRecord
from boite.pipeline.plan import Step

# Bump when boite changes how a step's output is computed, to rebuild everything.
FORMAT_VERSION = 1


def fingerprint(
    step: Step, inputs: dict[str, str], files: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """The fingerprint of ``step`` given its inputs' content hashes (and raw files')."""
    parts: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "code": step.code_fingerprint,
        "config": step.config_fingerprint,
        "inputs": dict(sorted(inputs.items())),
    }
    if files is not None:
        parts["files"] = dict(sorted(files.items()))
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), parts


@dataclass(frozen=True)
class Freshness:
    up_to_date: bool
    reason: str


def freshness(
    step: Step,
    fp: str,
    parts: dict[str, Any],
    last_ok: RunRecord | None,
    current: ArtifactRecord | None,
    *,
    output_exists: bool,
    versions: dict[str, ArtifactRecord] | None = None,
) -> Freshness:
    if last_ok is None or current is None:
        return Freshness(False, "never built")
    if last_ok.fingerprint == fp and last_ok.params.get("output") == current.content_hash:
        if not output_exists:
            return Freshness(False, "its file is missing from the artifact store")
        return Freshness(True, "")
    old = last_ok.params.get("fingerprint_parts", {})
    if old.get("format") != parts["format"]:
        return Freshness(False, "built by an older boite")
    if old.get("code") != parts["code"]:
        what = step.file or "the source settings"
        return Freshness(False, f"code changed ({what})")
    if old.get("config") != parts["config"]:
        return Freshness(False, "settings changed in boite.yaml")
    changed = [
        name
        for name, digest in parts["inputs"].items()
        if old.get("inputs", {}).get(name) != digest
    ]
    if changed:
        labels = []
        for name in changed:
            record = (versions or {}).get(name)
            labels.append(f"{name} ({record.ref})" if record else name)
        return Freshness(False, "new input version: " + ", ".join(labels))
    if parts.get("files") != old.get("files"):
        new_files = parts.get("files") or {}
        old_files = old.get("files") or {}
        diff = sorted(
            {f for f in new_files if new_files.get(f) != old_files.get(f)}
            | {f for f in old_files if f not in new_files}
        )
        return Freshness(False, "raw files changed: " + ", ".join(diff[:5]))
    if last_ok.params.get("output") != current.content_hash:
        return Freshness(False, f"its current version {current.ref} was made by another run")
    return Freshness(False, "fingerprint changed")
