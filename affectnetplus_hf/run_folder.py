"""One contract for every folder the package writes (README "Reliability").

A command that writes a folder (``label``, ``train``, ``build``, ``baseline``, ``calibrate``, ``demo``,
``sample``, ``metrics export``) goes through :class:`RunFolder`:

* an **exclusive lock**, held for the whole run (:class:`FolderLock`, the ``filelock`` package, on
  ``.NAME.lock`` beside the folder), so a second run on the same folder stops at once naming the process
  that holds it; a lock left by a killed process is taken over and said so;
* **one marker**, :data:`MARKER_FILE` (kind, format version, identity of the settings and inputs, complete):
  a folder without it (or of another kind) is never resumed, replaced or deleted;
* **one resume check**: a resume whose identity differs is refused, naming each differing field;
* **one staged publish** (:meth:`RunFolder.publish`) for folders written whole;
* **one exception**, :class:`RunFolderError`, and the fingerprint helpers :func:`files_fingerprint` /
  :func:`records_fingerprint`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectnetplus_hf.fileio import atomic_directory, check_writable_dir, write_json_atomic

logger = logging.getLogger(__name__)

MARKER_FILE = ".affectnetplus-run.json"
MARKER_FORMAT = "affectnetplus-run"
#: What each kind of folder is written by (named in messages).
COMMANDS: dict[str, str] = {
    "labels": "affectnetplus label",
    "hf-labels": "affectnetplus label --hf-dataset",
    "soft-labeler": "affectnetplus train softlabeler",
    "dataset": "affectnetplus build",
    "baselines": "affectnetplus baseline",
    "baseline-model": "affectnetplus train baseline",
    "demo": "affectnetplus demo",
    "sample": "affectnetplus sample",
    "metric-module": "affectnetplus metrics export",
}


#: Marker files of folders written before this contract → their kind (read as format version 0, identity
#: unknown: a resume is refused naming the version, ``--overwrite`` replaces them).
LEGACY_MARKERS: dict[str, str] = {".affectnetplus-demo": "demo", ".affectnetplus-dataset": "dataset"}


class RunFolderError(ValueError):
    """A folder that may not be written, resumed or replaced (the message names it and says why)."""


# ---------------------------------------------------------------------------------------------- fingerprints
def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def files_fingerprint(root: str | os.PathLike) -> str:
    """sha256 over the files of a folder (relative names and contents, sorted; hidden files left out)."""
    root = Path(root)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise FileNotFoundError(f"folder {os.fspath(root)!r} holds no files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode() + b"\n")
    return digest.hexdigest()


def records_fingerprint(rows: Iterable[Iterable[Any]]) -> str:
    """sha256 over records given as rows of fields (tab-separated, one line each, in order)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(("\t".join(str(value) for value in row) + "\n").encode())
    return digest.hexdigest()


def differing_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The names of the fields whose values differ, sorted."""
    return [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"seed: was 0, now 5; ..."``: each differing field, long values shortened."""
    return "; ".join(
        f"{key}: was {_short(old.get(key))}, now {_short(new.get(key))}" for key in differing_fields(old, new)
    )


def _short(value: Any, limit: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- marker
@dataclass(frozen=True)
class Marker:
    """The one marker file of a folder the package wrote: what wrote it and with which settings."""

    kind: str
    identity: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MARKER_FORMAT,
            "kind": self.kind,
            "version": self.version,
            "identity": self.identity,
            "complete": self.complete,
        }

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / MARKER_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> Marker | None:
        """The folder's marker; ``None`` when it has none. An unreadable marker is a :class:`RunFolderError`."""
        path = folder / MARKER_FILE
        if not path.is_file():
            legacy = [kind for name, kind in LEGACY_MARKERS.items() if (folder / name).is_file()]
            return cls(kind=legacy[0], version=0) if legacy else None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunFolderError(
                f"{os.fspath(path)}: unreadable marker ({error}); expected JSON written by affectnetplus"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != MARKER_FORMAT:
            raise RunFolderError(
                f"{os.fspath(path)}: not an affectnetplus marker (format {payload.get('format')!r})"
                if isinstance(payload, dict)
                else f"{os.fspath(path)}: not an affectnetplus marker"
            )
        return cls(
            kind=str(payload.get("kind")),
            identity=dict(payload.get("identity") or {}),
            version=int(payload.get("version", 1)),
            complete=bool(payload.get("complete")),
        )


# ---------------------------------------------------------------------------------------------- lock
class FolderLock:
    """Exclusive lock on a folder for one run: ``filelock`` on ``.NAME.lock`` beside it, holding the owner's
    pid and start time. A second holder fails at once (:class:`RunFolderError`); a lock file still naming
    an owner when it is taken was left by a killed process, and its take-over is logged."""

    def __init__(self, folder: str | os.PathLike):
        from filelock import FileLock

        self.folder = Path(folder)
        self.path = self.folder.parent / f".{self.folder.name}.lock"
        self._lock = FileLock(self.path, timeout=0, preserve_lock_file=True, on_acquired=self._take)
        self.taken_over: dict[str, Any] | None = None

    def _take(self, fd: int) -> None:
        """On acquiring: note a dead owner's record, then write ours (pid, start time)."""
        previous = os.pread(fd, 4096, 0)
        if previous.strip():
            self.taken_over = _owner(previous)
            logger.warning(
                "%s: took over the lock of process %s (started %s), which is no longer running",
                os.fspath(self.folder),
                self.taken_over.get("pid", "?"),
                self.taken_over.get("started", "?"),
            )
        record = json.dumps({"pid": os.getpid(), "started": _now()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)

    def acquire(self) -> FolderLock:
        from filelock import Timeout

        check_writable_dir(self.path.parent)
        try:
            self._lock.acquire()
        except Timeout:
            owner = _owner(self.path.read_bytes()) if self.path.is_file() else {}
            who = (
                f"process {owner['pid']} (started {owner.get('started', '?')})"
                if "pid" in owner
                else "another process"
            )
            raise RunFolderError(f"{os.fspath(self.folder)} is in use by {who}; wait for it to finish") from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                os.truncate(self.path, 0)  # an empty lock file: released cleanly
            self._lock.release()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _owner(data: bytes) -> dict[str, Any]:
    try:
        owner = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- the folder
class RunFolder:
    """A folder one run owns (module docstring). Use as ``with RunFolder(path, kind, identity) as run:``;
    then :meth:`start` decides, from the marker, whether the run is new, resumes or replaces.

    Args:
        path: the folder.
        kind: one of :data:`COMMANDS` (the marker's kind).
        identity: JSON values that decide what the run produces; a resume must match them.
        version: the format version of this kind of folder.
    """

    def __init__(self, path: str | os.PathLike, kind: str, identity: Mapping[str, Any], version: int = 1):
        if kind not in COMMANDS:
            raise ValueError(f"kind must be one of {sorted(COMMANDS)}, got {kind!r}")
        self.path = Path(path).expanduser()
        self.kind = kind
        self.identity = json.loads(json.dumps(dict(identity), sort_keys=True, default=str))
        self.version = version
        self.lock = FolderLock(self.path)
        self.marker: Marker | None = None

    def __enter__(self) -> RunFolder:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{os.fspath(self.path)} is a file; expected a folder")
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()

    # ---- checks --------------------------------------------------------------------------------
    def start(
        self, *, overwrite: bool = False, resume: bool = True, accept: Callable[[list[str]], bool] | None = None
    ) -> str:
        """Check the folder and return ``"new"`` (no marker, empty or absent), ``"resume"`` (a marker of this
        kind and identity) or ``"replace"`` (``overwrite`` over a folder of this kind).

        Refused (:class:`RunFolderError`): other files without a marker of this kind; another identity
        without ``overwrite`` (each differing field named) unless ``accept(field_names)`` allows it; a
        complete folder when the kind does not ``resume`` (a finished model or dataset needs ``overwrite``).
        """
        self.marker = Marker.read(self.path) if self.path.is_dir() else None
        if self.marker is None:
            self._check_empty()
            return "new"
        if self.marker.kind != self.kind:
            raise RunFolderError(
                f"{os.fspath(self.path)} holds a folder written by "
                f"`{COMMANDS.get(self.marker.kind, self.marker.kind)}`, "
                f"not by `{COMMANDS[self.kind]}`; use another folder"
            )
        if overwrite:
            return "replace"
        old = {**self.marker.identity, "format version": self.marker.version}
        new = {**self.identity, "format version": self.version}
        fields = differing_fields(old, new)
        if fields and not (accept and accept(fields)):
            raise RunFolderError(
                f"{os.fspath(self.path)} holds a run with other settings ({describe_differences(old, new)}); "
                f"{'resume with the same settings, ' if resume else ''}pass --overwrite (overwrite=True) "
                "to start over, or use another folder"
            )
        if self.marker.complete and not resume:
            raise RunFolderError(
                f"{os.fspath(self.path)} already holds a finished run of `{COMMANDS[self.kind]}`; "
                "pass --overwrite (overwrite=True) to replace it, or use another folder"
            )
        return "resume"

    def _check_empty(self) -> None:
        found = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
        if found:
            raise RunFolderError(
                f"{os.fspath(self.path)} is not empty and was not written by `{COMMANDS[self.kind]}` "
                f"(found {found[:5]}); use an empty or new folder"
            )

    # ---- writing -------------------------------------------------------------------------------
    def mark(self, complete: bool = False) -> None:
        """Create the folder (when absent) and write its marker."""
        check_writable_dir(self.path)
        self.marker = Marker(self.kind, self.identity, self.version, complete)
        self.marker.write(self.path)

    def clear(self) -> None:
        """Empty a folder of this kind (after :meth:`start` returned ``"replace"``), marker last."""
        if self.marker is None or self.marker.kind != self.kind:
            raise RunFolderError(f"{os.fspath(self.path)}: refusing to empty a folder this kind of run did not write")
        for child in sorted(self.path.iterdir(), key=lambda p: p.name == MARKER_FILE):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    @contextlib.contextmanager
    def publish(self) -> Iterator[Path]:
        """Yield a staging folder beside the target; on success it gets the (complete) marker and replaces the
        target in one rename, on error it is removed and the target left as it was. Staging folders a
        killed run left beside the target are removed first (the lock says no run of it is alive)."""
        self._remove_stale_staging()
        with atomic_directory(self.path) as staging:
            yield staging
            Marker(self.kind, self.identity, self.version, complete=True).write(staging)

    def _remove_stale_staging(self) -> None:
        pattern = re.compile(rf"^\.{re.escape(self.path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)$")
        parent = self.path.parent
        for stale in parent.iterdir() if parent.is_dir() else ():
            if pattern.match(stale.name) and stale.is_dir() and not stale.is_symlink():
                logger.info("removing %s, left by an interrupted run", stale)
                shutil.rmtree(stale, ignore_errors=True)


__all__ = [
    "COMMANDS",
    "MARKER_FILE",
    "FolderLock",
    "Marker",
    "RunFolder",
    "RunFolderError",
    "file_sha256",
    "files_fingerprint",
    "describe_differences",
    "differing_fields",
    "records_fingerprint",
]
