"""Permission bits for files and folders written atomically.

``tempfile.mkstemp`` creates files ``0600`` and ``tempfile.mkdtemp`` folders ``0700``, and ``os.replace``
keeps those modes, so outputs written through a temporary name would be private to their owner. The
writers call :func:`chmod_like_new` on the temporary before the rename, which gives it the mode a plain
``open(..., "w")`` / ``mkdir`` would have: ``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders
(``0644`` / ``0755`` under the usual umask ``022``).
"""

from __future__ import annotations

import os
import threading

_UMASK_LOCK = threading.Lock()


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


__all__ = ["chmod_like_new", "current_umask", "default_mode"]
