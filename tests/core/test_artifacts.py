from __future__ import annotations

from pathlib import Path

import pytest

from boite.core.artifacts import ArtifactStore, sha256_file
from boite.errors import ArtifactIntegrityError


def _store(tmp_path: Path, url: str = ".boite/artifacts") -> ArtifactStore:
    return ArtifactStore(url, root=tmp_path, scratch=tmp_path / ".boite" / "tmp")


def _scratch(store: ArtifactStore, data: bytes) -> Path:
    path = store.new_scratch_file(".bin")
    path.write_bytes(data)
    return path


def test_put_is_content_addressed_and_relative(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put_file(_scratch(store, b"hello"), suffix=".bin")
    assert stored.uri.startswith(".boite/artifacts/")
    assert stored.sha256 in stored.uri
    path = store.local_path(stored.uri, stored.sha256)
    assert path.read_bytes() == b"hello"
    assert path.is_relative_to(tmp_path)
    # the same content again is the same file; the scratch copy is consumed
    again = _scratch(store, b"hello")
    assert store.put_file(again, suffix=".bin") == stored
    assert not again.exists()
    assert not list(path.parent.glob("*.tmp"))


def test_tampered_file_is_detected(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put_file(_scratch(store, b"hello"), suffix=".bin")
    path = Path(tmp_path / stored.uri)
    path.write_bytes(b"hellO")
    fresh = _store(tmp_path)
    with pytest.raises(ArtifactIntegrityError) as info:
        fresh.local_path(stored.uri, stored.sha256, what="dataset a@1")
    assert "dataset a@1" in str(info.value)
    assert "boite run" in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put_file(_scratch(store, b"x"), suffix=".bin")
    (tmp_path / stored.uri).unlink()
    assert not store.exists(stored.uri)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        _store(tmp_path).local_path(stored.uri, stored.sha256)


def test_a_corrupt_existing_target_is_rewritten(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put_file(_scratch(store, b"data"), suffix=".bin")
    (tmp_path / stored.uri).write_bytes(b"junk")
    store2 = _store(tmp_path)
    assert store2.put_file(_scratch(store2, b"data"), suffix=".bin") == stored
    assert sha256_file(tmp_path / stored.uri) == stored.sha256


def test_an_fsspec_url_store(tmp_path: Path) -> None:
    # Object storage goes through fsspec; its in-memory filesystem stands in for
    # S3 here and exercises the same non-local code path.
    store = _store(tmp_path, "memory://boite-test/artifacts")
    assert not store.is_local
    stored = store.put_file(_scratch(store, b"remote bytes"), suffix=".bin")
    assert stored.uri.startswith("memory://boite-test/artifacts/")
    assert store.exists(stored.uri)
    assert store.read_bytes(stored.uri, stored.sha256) == b"remote bytes"
    store.fs.pipe(store._full(store._key(stored.uri)), b"changed")
    fresh = _store(tmp_path, "memory://boite-test/artifacts")
    fresh.scratch = tmp_path / "other" / "tmp"  # a cold cache must download and verify
    with pytest.raises(ArtifactIntegrityError):
        fresh.local_path(stored.uri, stored.sha256)


def test_clear_scratch(tmp_path: Path) -> None:
    store = _store(tmp_path)
    leftover = _scratch(store, b"half")
    store.clear_scratch()
    assert not leftover.exists()
