"""What every source reader shares: the :class:`Source` base class, the skip report, row errors and
the checks of paths and text read from label files."""

from __future__ import annotations

import contextlib
import csv
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectnetplus_hf.records import SPLITS, FaceRecord


# ---------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class SkippedItem:
    """One row or image a reader did not yield (or yielded with a field left null, ``kept=True``)."""

    split: str | None
    location: str
    reason: str
    detail: str = ""
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "location": self.location,
            "reason": self.reason,
            "detail": self.detail,
            "kept": self.kept,
        }


class SkipReport:
    """Counts and lists what a source skipped and why (``source.skipped``).

    Entries found while opening a source (e.g. FER+ rows without a name, duplicated names) stay; entries
    found while reading a split are replaced when that split is read again, so iterating twice does not
    double the counts. Reasons are short keys (``"non_emotion:None"``, ``"empty_image_name"``,
    ``"duplicate_name"``, ``"bad_row"``, ``"missing_image"`` ...); ``detail`` says more. ``kept=True``
    marks a record that was yielded with a field left null (e.g. a missing ``_lnd.npy``).
    """

    def __init__(self) -> None:
        self._at_open: list[SkippedItem] = []
        self._by_split: dict[str | None, list[SkippedItem]] = {}

    def add(
        self,
        split: str | None,
        location: str,
        reason: str,
        detail: str = "",
        kept: bool = False,
        at_open: bool = False,
    ) -> None:
        item = SkippedItem(split, location, reason, detail, kept)
        if at_open:
            self._at_open.append(item)
        else:
            self._by_split.setdefault(split, []).append(item)

    def reset(self, split: str | None) -> None:
        """Forget the entries found while reading ``split`` (called when it is read again)."""
        self._by_split.pop(split, None)

    @property
    def items(self) -> list[SkippedItem]:
        return self._at_open + [item for items in self._by_split.values() for item in items]

    def counts(self, split: Any = ..., include_kept: bool = True) -> dict[str, int]:
        """Number of entries per reason (all splits by default, else those of ``split``)."""
        items = [i for i in self.items if split is ... or i.split == split]
        return dict(sorted(Counter(i.reason for i in items if include_kept or not i.kept).items()))

    @property
    def total(self) -> int:
        """Number of rows/images not yielded (``kept`` entries excluded)."""
        return sum(1 for item in self.items if not item.kept)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def as_dict(self, max_items: int | None = None) -> dict[str, Any]:
        items = self.items
        shown = items if max_items is None else items[:max_items]
        return {
            "counts": self.counts(),
            "total": self.total,
            "items": [item.as_dict() for item in shown],
            "items_left_out": len(items) - len(shown),
        }

    def __repr__(self) -> str:
        return f"SkipReport({self.counts()})"


class RowError(ValueError):
    """A malformed row; carries where it is so a reader can skip it when told to."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.detail = message


def relative_path_inside(text: str, where: str, what: str = "image path", base: str = "the data folder") -> str:
    """A path read from a label file, normalised (``/`` separators, no ``.``/``..`` steps), checked to
    stay inside ``base`` *lexically*: absolute paths and ``..`` steps that climb out of it raise
    :class:`RowError` naming ``where``. Symlinks are not resolved, so a link inside the folder that points
    elsewhere (e.g. an image folder on another disk) is still read."""
    raw = str(text).strip()
    value = raw.replace("\\", "/")
    if posixpath.isabs(value) or re.match(r"^[A-Za-z]:(/|$)" if os.name != "nt" else r"^[A-Za-z]:", value):
        raise RowError(where, f"{what} {raw!r} is absolute; expected a path relative to and inside {base}")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise RowError(
            where,
            f"{what} {raw!r} leads outside {base}; expected a path relative to and inside "
            f"{base} (no '..' steps out of it)",
        )
    if normal == ".":
        raise RowError(where, f"{what} {raw!r} names {base} itself; expected a file path inside it")
    return normal


def utf8_lines(handle: Iterator[str], path: str | os.PathLike) -> Iterator[str]:
    """The lines of a text file opened as UTF-8; a decoding error becomes a ``ValueError`` naming the file."""
    try:
        yield from handle
    except UnicodeDecodeError as error:
        raise ValueError(f"{os.fspath(path)}: not UTF-8 text ({error}); save the file as UTF-8") from None


@contextlib.contextmanager
def open_csv(path: str | os.PathLike, required: Sequence[str]) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
    """A UTF-8 CSV label file's stripped header and a reader over its data rows (line 2 on).

    An empty file or a missing required column is a ``ValueError`` naming the file and the columns expected.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(utf8_lines(handle, path))
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{os.fspath(path)}: empty file; expected a header with columns {list(required)}")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{os.fspath(path)}: missing columns {missing}; expected columns {list(required)}")
        yield header, reader


# ---------------------------------------------------------------------------------------------- base
class Source:
    """A dataset on disk that yields :class:`FaceRecord` s lazily.

    Attributes:
        kind: ``"affectnet"``, ``"ferplus"``, ``"folder"`` or ``"synthetic"``.
        layout: the on-disk layout detected (kind-specific, e.g. ``"csv"``/``"npy"``).
        root: the dataset folder.
        splits: the splits present, in ``train``, ``validation``, ``test`` order.
        has_votes: whether records carry per-emotion annotator counts (multi-annotated).
        skipped: :class:`SkipReport` of rows not yielded (filled while reading).
    """

    kind: str = ""
    layout: str = ""
    has_votes: bool = False

    def __init__(self, root: str | Path, splits: list[str]) -> None:
        self.root = Path(os.path.abspath(root))
        self.splits = [s for s in SPLITS if s in splits]
        self.skipped = SkipReport()

    def _check_split(self, split: str | None) -> list[str]:
        if split is None:
            return list(self.splits)
        if split not in self.splits:
            raise ValueError(f"{self.root}: no split {split!r}; this {self.kind} source has {self.splits}")
        return [split]

    def records(self, split: str | None = None) -> Iterator[FaceRecord]:
        """Yield the records of ``split`` (all splits when ``None``), lazily."""
        for name in self._check_split(split):
            self.skipped.reset(name)
            yield from self._records(name)

    def _records(self, split: str) -> Iterator[FaceRecord]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[FaceRecord]:
        return self.records()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, layout={self.layout!r}, root='{self.root}', "
            f"splits={self.splits})"
        )


__all__ = ["RowError", "SkipReport", "SkippedItem", "Source", "open_csv", "relative_path_inside", "utf8_lines"]
