"""The package's one way to write files: atomically, deterministically, with the modes the umask gives.

Every output goes through a temporary name in the target's own folder and ``os.replace``, so a killed
job leaves the old file or the new one, never half of one:

* :func:`atomic_path` — a context manager yielding the temporary path, for writers that need a path
  (``pyarrow``, ``safetensors``, ``matplotlib``); :func:`write_bytes_atomic`, :func:`write_text_atomic`,
  :func:`write_json_atomic` (sorted keys, 2-space indent) and :func:`write_parquet_deterministic`
  (fixed options, no timestamps) are built on it;
* :func:`atomic_directory` — the same for a whole folder (staged beside the target, swapped in at the end).

``tempfile.mkstemp`` creates files ``0600`` and ``tempfile.mkdtemp`` folders ``0700``, and ``os.replace``
keeps those modes, so the temporary gets the mode a plain ``open(..., "w")`` / ``mkdir`` would have
(:func:`chmod_like_new`: ``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders) before the rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()

#: ``pyarrow.parquet.write_table`` options for byte-identical files from identical tables.
PARQUET_OPTIONS: dict[str, Any] = dict(
    compression="zstd",
    compression_level=3,
    use_dictionary=True,
    write_statistics=True,
    version="2.6",
    data_page_version="1.0",
    store_schema=True,
)


# ---------------------------------------------------------------------------------------------- modes
def current_umask() -> int:
    """The process umask, read without leaving it changed.

    On Linux it is read from ``/proc/self/status`` (no global state touched); elsewhere it is read the
    only portable way, ``os.umask(0)`` then ``os.umask(old)`` at once, under a lock.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0)
        os.umask(old)
    return old


def default_mode(directory: bool = False) -> int:
    """``0o777 & ~umask`` for a folder, ``0o666 & ~umask`` for a file."""
    return (0o777 if directory else 0o666) & ~current_umask()


def chmod_like_new(path: str | os.PathLike | int, directory: bool = False) -> None:
    """Give ``path`` (or an open file descriptor) the mode a newly created file/folder gets from the umask."""
    mode = default_mode(directory)
    if isinstance(path, int):
        os.fchmod(path, mode)
    else:
        os.chmod(path, mode)


# ---------------------------------------------------------------------------------------------- folders
def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (parents too) and check that files can be written in it.

    Raises ``NotADirectoryError`` when ``path`` or a parent is a file, and ``PermissionError`` naming the
    folder when it is not writable (``os.access``; note that root passes that check everywhere).
    """
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"output folder {os.fspath(path)!r}: {os.fspath(parent)!r} is a file, not a folder"
            )
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError as error:
        raise PermissionError(f"output folder {os.fspath(path)!r} cannot be created: {error.strerror}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {os.fspath(path)!r} is not writable")
    return path


# ---------------------------------------------------------------------------------------------- files
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is given the umask's mode and renamed onto
    ``path``, on any error (or ``KeyboardInterrupt``) it is removed and ``path`` is left as it was."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temp)
        chmod_like_new(temp)  # mkstemp's 0600 would survive the rename
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline), written atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_parquet_deterministic(table, path: str | os.PathLike, row_group_size: int | None = None, **options) -> None:
    """``pyarrow.parquet.write_table`` with :data:`PARQUET_OPTIONS` (overridable by ``options``), atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as temp:
        pq.write_table(table, temp, row_group_size=row_group_size, **{**PARQUET_OPTIONS, **options})


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it replaces ``path`` (an existing folder
    there is moved aside, then removed), on error it is removed and ``path`` is left as it was.

    The caller decides whether ``path`` may be replaced; this only makes the swap atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        chmod_like_new(staging, directory=True)  # mkdtemp's 0700 would survive the rename
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "PARQUET_OPTIONS",
    "atomic_directory",
    "atomic_path",
    "check_writable_dir",
    "chmod_like_new",
    "current_umask",
    "default_mode",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_parquet_deterministic",
    "write_text_atomic",
]
