"""The artifact store: content-addressed files behind an fsspec URL.

A file is written under a temporary name and renamed to its hash, so a reader
never sees half of it; every read checks the hash, so a file changed on disk is
caught before it is used. The default store is a folder of the project; an
``s3://`` or ``gs://`` URL puts the same layout in object storage.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boite.errors import ArtifactIntegrityError, UserError

_CHUNK = 1 << 20


class ArtifactStoreMovedError(UserError):
    def __init__(self, uri: str, url: str) -> None:
        super().__init__(
            f"the artifact {uri} was written to another artifact store than the one "
            f"configured now ({url})",
            hint="Set stores.artifacts in boite.yaml back to where it was, or copy the files "
            "to the new store and keep the same layout (HASH[:2]/HASH.ext).",
        )


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalFiles:
    """The few file-system calls the store makes, for a local folder."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str, exist_ok: bool = True) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def open(self, path: str, mode: str = "rb") -> Any:
        return open(path, mode)


@dataclass(frozen=True)
class StoredFile:
    uri: str
    sha256: str
    size: int


class ArtifactStore:
    """Content-addressed files under ``url`` (a folder relative to ``root``, or an fsspec URL)."""

    def __init__(self, url: str, *, root: Path, scratch: Path) -> None:
        self.url = url.rstrip("/")
        self.root = root
        self.scratch = scratch
        protocol, _, rest = self.url.partition("://")
        if rest and protocol != "file":
            # fsspec is imported only for object storage: the local default
            # needs nothing but the file system.
            import fsspec

            self.fs, self._base = fsspec.core.url_to_fs(self.url)
            self.is_local = False
        else:
            local = Path(rest if rest else self.url)
            self._base = str(local if local.is_absolute() else root / local)
            self.fs = _LocalFiles()
            self.is_local = True
        self._verified: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    # URIs are recorded as the configured URL plus the key, so that a project
    # folder can move (relative default) and object storage keeps full URLs.
    def uri_for(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _key(self, uri: str) -> str:
        prefix = self.url + "/"
        if not uri.startswith(prefix):
            raise ArtifactStoreMovedError(uri, self.url)
        return uri[len(prefix) :]

    def _full(self, key: str) -> str:
        return f"{self._base}/{key}"

    def new_scratch_file(self, suffix: str) -> Path:
        """A fresh path in the scratch folder; cleared by :meth:`clear_scratch`."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch / f"{uuid.uuid4().hex}{suffix}"

    def clear_scratch(self) -> None:
        """Remove leftovers of a killed run; call only while holding the project lock."""
        if self.scratch.exists():
            shutil.rmtree(self.scratch, ignore_errors=True)

    def put_file(self, local: Path, *, suffix: str, sha256: str | None = None) -> StoredFile:
        """Store ``local`` under its hash and return where it went; ``local`` is consumed."""
        digest = sha256 or sha256_file(local)
        size = local.stat().st_size
        key = f"{digest[:2]}/{digest}{suffix}"
        target = self._full(key)
        if self.fs.exists(target) and self._matches(target, digest):
            local.unlink(missing_ok=True)
            return StoredFile(self.uri_for(key), digest, size)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self.is_local:
            fsync_path(local)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            shutil.move(str(local), tmp)
            os.replace(tmp, target)
            fsync_path(Path(parent))
        else:
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, target)
            local.unlink(missing_ok=True)
        return StoredFile(self.uri_for(key), digest, size)

    def _matches(self, target: str, digest: str) -> bool:
        with self.fs.open(target, "rb") as handle:
            hasher = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    def exists(self, uri: str) -> bool:
        return self.fs.exists(self._full(self._key(uri)))

    def local_path(self, uri: str, sha256: str, *, what: str | None = None) -> Path:
        """A local path to the verified content of ``uri``; raises if it was tampered with."""
        key = self._key(uri)
        full = self._full(key)
        if self.is_local:
            path = Path(full)
        else:
            path = self.scratch.parent / "cache" / key
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(full, str(path))
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ArtifactIntegrityError(uri, sha256, "(file missing)", what=what) from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if self._verified.get(str(path)) == stamp:
                return path
        found = sha256_file(path)
        if found != sha256:
            raise ArtifactIntegrityError(uri, sha256, found, what=what)
        with self._lock:
            self._verified[str(path)] = stamp
        return path

    def read_bytes(self, uri: str, sha256: str, *, what: str | None = None) -> bytes:
        return self.local_path(uri, sha256, what=what).read_bytes()
