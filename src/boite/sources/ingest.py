"""Ingest: the fingerprint of a source's raw input, and the raw files as artifacts.

Raw files are recorded in the ledger (kind ``file``, versioned by content) but
not copied: lineage reaches back to the exact bytes that were read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from boite.core.ledger import NewArtifact
from boite.sources.files import InputFile

RAW_FILE = "file"


def files_fingerprint(config_code: str, files: Sequence[InputFile]) -> str:
    digest = hashlib.sha256(config_code.encode())
    for f in files:
        digest.update(f"\0{f.relpath}\0{f.sha256}".encode())
    return digest.hexdigest()


def raw_file_artifacts(files: Sequence[InputFile]) -> list[NewArtifact]:
    return [
        NewArtifact(
            kind=RAW_FILE,
            name=f.relpath,
            content_hash=f.sha256,
            uri=f.relpath,
            format=_format_of(f.relpath),
            bytes=f.size,
        )
        for f in files
    ]


def _format_of(relpath: str) -> str:
    parts = relpath.lower().rsplit("/", 1)[-1].split(".")
    return ".".join(parts[1:]) if len(parts) > 1 else "raw"
