"""Raw files of a source: which files a pattern means, and the hash of each.

Hashing is the one cost of a no-op run that grows with the data, so hashes are
kept in a cache keyed by path, size and modification time (as make and git do);
a file is read again only when one of those changes.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from boite.core.config import SourceConfig
from boite.core.jsoncache import JsonCache
from boite.core.suggest import did_you_mean
from boite.errors import SourceError

HASH_CHUNK = 1 << 20
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    """One file a source reads, as it was when it was read."""

    path: Path
    relpath: str
    size: int
    sha256: str


# --- files -------------------------------------------------------------------


class HashCache(JsonCache):
    """sha256 of files, remembered by (path, size, mtime_ns) in a JSON file."""

    def lookup(self, path: Path, stat: os.stat_result) -> str | None:
        entry = self.get(str(path))
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return str(entry[2])
        return None

    def remember(self, path: Path, stat: os.stat_result, digest: str) -> None:
        self.put(str(path), [stat.st_size, stat.st_mtime_ns, digest])


def resolve_files(
    name: str, config: SourceConfig, root: Path, *, cache: HashCache | None = None
) -> list[InputFile]:
    """The files a source reads, in order, each hashed.

    Patterns are taken in the order declared; the matches of a glob are sorted;
    a file matched twice is read once, where it was first matched.
    """
    root = root.resolve()
    seen: dict[str, InputFile] = {}
    for pattern in config.paths:
        for path in _expand(name, pattern, root):
            key = str(path)
            if key not in seen:
                seen[key] = _input_file(name, path, root, cache)
    return list(seen.values())


def _expand(name: str, pattern: str, root: Path) -> list[Path]:
    # Relative paths must stay inside the project (checked on the path as
    # written, so a symlink the user placed in the project may point elsewhere,
    # say to a larger disk). An absolute path is an explicit choice and is
    # allowed wherever it is, as long as it names files that exist: the project
    # then depends on that machine, which the snapshot's relpath makes visible.
    absolute = os.path.isabs(pattern)
    full = os.path.normpath(pattern if absolute else os.path.join(root, pattern))
    if not absolute and not _inside(full, root):
        raise SourceError(
            f"the path '{pattern}' points outside the project folder {root}",
            source=name,
            hint="Paths are relative to the folder that holds boite.yaml and stay inside it. "
            "Move or link the data into the project, or give an absolute path if the "
            "file must stay where it is.",
        )
    is_glob = any(char in pattern for char in _GLOB_CHARS)
    if not is_glob:
        if os.path.isdir(full):
            raise SourceError(
                f"the path '{pattern}' is a folder, not a file",
                source=name,
                hint=f"To read the files in it, use a glob such as '{pattern.rstrip('/')}/*.csv'.",
            )
        if os.path.isfile(full):
            return [Path(full)]
        raise _no_match(name, pattern, full, root)
    matches = sorted(set(glob.glob(full, recursive=True)))
    files = [Path(m) for m in matches if os.path.isfile(m)]
    if not files:
        only_folders = f" (it matches only folders: {_listing(matches, root)})" if matches else ""
        raise _no_match(name, pattern, full, root, only_folders)
    return files


def _inside(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root) + os.sep)


def _no_match(name: str, pattern: str, full: str, root: Path, extra: str = "") -> SourceError:
    # Point at the deepest folder of the pattern that exists, and show what is there.
    folder = Path(full)
    while any(char in folder.name for char in _GLOB_CHARS) or not folder.is_dir():
        if folder.parent == folder:
            break
        folder = folder.parent
    try:
        present = sorted(str(p) for p in folder.iterdir() if p.is_file())
    except OSError:
        present = []
    where = _display_path(folder, root) + "/"
    wanted = Path(full).parent
    while any(char in wanted.name for char in _GLOB_CHARS) and wanted.parent != wanted:
        wanted = wanted.parent
    gone = (
        f"The folder {_display_path(wanted, root)}/ does not exist. " if not wanted.is_dir() else ""
    )
    if present:
        hint = f"{gone}Files in {where}: {_listing(present, root)}."
        guess = did_you_mean(Path(full).name, [Path(p).name for p in present])
        if guess and not any(char in Path(full).name for char in _GLOB_CHARS):
            hint = f"Did you mean '{_display_path(folder / guess, root)}'? " + hint
    else:
        hint = f"{gone}The folder {where} holds no files."
    return SourceError(
        f"no file matches '{pattern}' (relative to the project folder {root}){extra}",
        source=name,
        hint=hint,
    )


def _listing(paths: Sequence[str], root: Path, limit: int = 5) -> str:
    shown = ", ".join(_display_path(Path(p), root) for p in paths[:limit])
    more = len(paths) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _display_path(path: Path, root: Path) -> str:
    text = os.path.normpath(str(path))
    if _inside(text, root):
        rel = os.path.relpath(text, root)
        return "." if rel == "." else Path(rel).as_posix()
    return Path(text).as_posix()


def _input_file(name: str, path: Path, root: Path, cache: HashCache | None = None) -> InputFile:
    if cache is not None:
        try:
            stat = path.stat()
        except OSError:
            stat = None
        known = None if stat is None else cache.lookup(path, stat)
        if stat is not None and known is not None:
            return InputFile(path, _display_path(path, root), stat.st_size, known)
        found = _input_file(name, path, root)
        if stat is not None and path.stat().st_mtime_ns == stat.st_mtime_ns:
            cache.remember(path, stat, found.sha256)
        return found
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror or exc}",
            source=name,
            file=_display_path(path, root),
            hint="Check that the file exists and that boite may read it.",
        ) from None
    return InputFile(
        path=path, relpath=_display_path(path, root), size=size, sha256=digest.hexdigest()
    )
