"""Readers of raw FER datasets → one stream of :class:`~affectnetplus_hf.records.FaceRecord` (issue 3).

Kinds and layouts (auto-detected by :func:`detect_source`):

==========  ==============================================================================================
kind        layouts
==========  ==============================================================================================
affectnet   ``csv``: ``Manually_Annotated_file_lists/{training,validation}.csv`` + ``Manually_Annotated_Images/``;
            ``npy``: ``{train_set,val_set}/images/N.jpg`` + ``annotations/N_{exp,val,aro,lnd}.npy``
ferplus     ``fer2013new+folders``, ``fer2013new+fer2013csv``, ``label_csv+folders`` (see :mod:`.ferplus`)
folder      ``votes`` (per-image vote counts) or ``annotations`` (one row per annotation), see :mod:`.folder`
synthetic   the embedded sample (``sample_info.json``): its AffectNet part (``csv``/``npy``) with the ground
            truth joined into ``record.extra``; its multi-annotated part via :func:`open_multi_annotated`
==========  ==============================================================================================

Every source reads lazily (records are yielded one by one; images are never decoded by a reader) and
keeps a :class:`SkipReport` (``source.skipped``, alias ``source.bad``) of every row it did not yield and
why, so nothing is dropped silently. Rows that are wrong (bad codes, values out of range, malformed
landmarks, negative or non-integer votes, image paths that are absolute or lead out of the data folder)
raise :class:`ValueError` naming the file and line, unless the source was opened with
``skip_bad_rows=True``, in which case they are skipped and listed in the report. Label files must be
UTF-8 text; another encoding is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import AFFECTNET_NON_EMOTION_CODES, EMOTIONS
from affectnetplus_hf.records import SPLITS, FaceRecord
from affectnetplus_hf.votes import hard_label_from_votes

logger = logging.getLogger(__name__)

SYNTHETIC_SAMPLE_KIND = "affectnetplus-synthetic-sample"
KINDS: tuple[str, ...] = ("affectnet", "ferplus", "folder", "synthetic")

#: What :func:`detect_source` looks for, in order (used in error messages).
LOOKED_FOR: tuple[str, ...] = (
    "synthetic sample: sample_info.json with kind 'affectnetplus-synthetic-sample'",
    "affectnet csv: Manually_Annotated_file_lists/{training,validation}.csv",
    "affectnet npy: {train_set,val_set}/images/*.jpg + annotations/*_exp.npy",
    "ferplus: fer2013new.csv, or FER2013{Train,Valid,Test}/label.csv",
    "folder: votes.csv, annotations.csv or labels.csv (image column + votes or annotator labels)",
)


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
        return {"split": self.split, "location": self.location, "reason": self.reason,
                "detail": self.detail, "kept": self.kept}


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

    def add(self, split: str | None, location: str, reason: str, detail: str = "", kept: bool = False,
            at_open: bool = False) -> None:
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


def relative_path_inside(text: str, where: str, what: str = "image path",
                         base: str = "the data folder") -> str:
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
        raise RowError(where, f"{what} {raw!r} leads outside {base}; expected a path relative to and inside "
                              f"{base} (no '..' steps out of it)")
    if normal == ".":
        raise RowError(where, f"{what} {raw!r} names {base} itself; expected a file path inside it")
    return normal


def utf8_lines(handle: Iterator[str], path: str | os.PathLike) -> Iterator[str]:
    """The lines of a text file opened as UTF-8; a decoding error becomes a ``ValueError`` naming the file."""
    try:
        yield from handle
    except UnicodeDecodeError as error:
        raise ValueError(f"{os.fspath(path)}: not UTF-8 text ({error}); save the file as UTF-8") from None


# ---------------------------------------------------------------------------------------------- base
class Source:
    """A dataset on disk that yields :class:`FaceRecord` s lazily.

    Attributes:
        kind: ``"affectnet"``, ``"ferplus"``, ``"folder"`` or ``"synthetic"``.
        layout: the on-disk layout detected (kind-specific, e.g. ``"csv"``/``"npy"``).
        root: the dataset folder.
        splits: the splits present, in ``train``, ``validation``, ``test`` order.
        has_votes: whether records carry per-emotion annotator counts (multi-annotated).
        skipped: :class:`SkipReport` of rows not yielded (filled while reading; ``bad`` is an alias).
    """

    kind: str = ""
    layout: str = ""
    has_votes: bool = False

    def __init__(self, root: str | Path, splits: list[str]) -> None:
        self.root = Path(os.path.abspath(root))
        self.splits = [s for s in SPLITS if s in splits]
        self.skipped = SkipReport()

    @property
    def bad(self) -> SkipReport:
        return self.skipped

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
        return f"{type(self).__name__}(kind={self.kind!r}, layout={self.layout!r}, root='{self.root}', splits={self.splits})"


# ---------------------------------------------------------------------------------------------- detection
def _is_synthetic(root: Path) -> bool:
    info = root / "sample_info.json"
    if not info.is_file():
        return False
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{info}: not valid JSON ({error})") from error
    return isinstance(data, dict) and data.get("kind") == SYNTHETIC_SAMPLE_KIND


def detect_source(path: str | Path) -> tuple[str, str]:
    """Detect ``(kind, layout)`` of a dataset folder.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: no known layout was found (the message lists what was looked for).
    """
    from affectnetplus_hf.sources import affectnet, ferplus, folder

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder; expected a dataset folder")
    if _is_synthetic(root):
        data = json.loads((root / "sample_info.json").read_text(encoding="utf-8"))
        layout = data.get("layout") or affectnet.detect_layout(root)
        return "synthetic", str(layout)
    layout = affectnet.detect_layout(root)
    if layout is not None:
        return "affectnet", layout
    layout = ferplus.detect_layout(root)
    if layout is not None:
        return "ferplus", layout
    layout = folder.detect_layout(root)
    if layout is not None:
        return "folder", layout
    empty = not any(root.iterdir())
    looked = "\n  - ".join(LOOKED_FOR)
    raise ValueError(
        f"{root}: {'folder is empty' if empty else 'unknown dataset layout'}; looked for:\n  - {looked}"
    )


def open_source(path: str | Path, kind: str | None = None, **options: Any) -> Source:
    """Open a dataset folder as a :class:`Source` (kind auto-detected unless given).

    ``options`` go to the kind's reader: ``keep_non_emotion`` (all kinds), ``skip_bad_rows``,
    ``check_files``; AffectNet: ``layout``; FER+: ``labels``, ``images``; folder: ``csv_path``,
    ``allow_missing_emotions``. See :class:`~.affectnet.AffectNetSource`, :class:`~.ferplus.FerPlusSource`,
    :class:`~.folder.FolderSource`.
    """
    from affectnetplus_hf.sources import affectnet, ferplus, folder

    root = Path(path)
    if kind is None:
        kind, _ = detect_source(root)
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {KINDS}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    if kind == "synthetic":
        return open_synthetic(root, **options)
    if kind == "affectnet":
        return affectnet.AffectNetSource(root, **options)
    if kind == "ferplus":
        return ferplus.FerPlusSource(root, **options)
    return folder.FolderSource(root, **options)


# ---------------------------------------------------------------------------------------------- synthetic
def read_sample_info(root: str | Path) -> dict[str, Any]:
    """``sample_info.json`` of a synthetic sample, checked."""
    path = Path(root) / "sample_info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected a synthetic sample folder")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != SYNTHETIC_SAMPLE_KIND:
        raise ValueError(f"{path}: kind must be {SYNTHETIC_SAMPLE_KIND!r}, got {data.get('kind') if isinstance(data, dict) else data!r}")
    return data


GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("image_id", "part", "split", *EMOTIONS, "yaw", "pitch", "roll")


def read_ground_truth(root: str | Path) -> dict[str, dict[str, Any]]:
    """Parse a synthetic sample's ``ground_truth.csv`` → ``{image_id: extra}``.

    ``extra`` holds ``soft_label_true`` ((8,) float32, SPEC order), ``head_pose`` ((yaw, pitch, roll)
    degrees), ``part``, and when present ``primary``, ``secondary`` (emotion names), ``blend_weight``,
    ``intensity``.
    """
    path = Path(root) / "ground_truth.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a synthetic sample needs its ground truth file")
    out: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(utf8_lines(handle, path))
        missing = [c for c in GROUND_TRUTH_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(GROUND_TRUTH_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                soft = np.asarray([float(row[name]) for name in EMOTIONS], dtype=np.float32)
                pose = tuple(float(row[k]) for k in ("yaw", "pitch", "roll"))
            except ValueError as error:
                raise ValueError(f"{where}: soft label and head pose must be numbers ({error})") from error
            if not np.all(np.isfinite(soft)) or np.any(soft < 0) or np.any(soft > 1):
                raise ValueError(f"{where}: soft label values must be in [0, 1], got {soft.tolist()}")
            extra: dict[str, Any] = {"soft_label_true": soft, "head_pose": pose, "part": row["part"]}
            for key in ("primary", "secondary"):
                if row.get(key):
                    extra[key] = row[key]
            for key in ("blend_weight", "intensity"):
                if row.get(key):
                    extra[key] = float(row[key])
            out[row["image_id"]] = extra
    return out


def open_synthetic(root: str | Path, **options: Any) -> Source:
    """The AffectNet part of a synthetic sample, ground truth joined into ``record.extra`` (kind ``synthetic``)."""
    from affectnetplus_hf.sources.affectnet import AffectNetSource

    root = Path(root)
    info = read_sample_info(root)
    truth = read_ground_truth(root)
    options.setdefault("layout", info.get("layout"))
    source = AffectNetSource(root, extra_by_id=truth, **options)
    source.kind = "synthetic"
    source.sample_info = info  # type: ignore[attr-defined]
    return source


def open_multi_annotated(path: str | Path, **options: Any) -> Source:
    """The multi-annotated (votes) source of a folder, for training soft-labelers (SPEC §3).

    * synthetic sample → the folder source of ``DIR/multi_annotated/`` (``votes.csv``), with the
      ground truth joined into ``record.extra`` as for the AffectNet part;
    * FER+ or a folder with votes → that source itself.

    Raises:
        ValueError: the folder holds no multi-annotated source.
    """
    from affectnetplus_hf.sources.folder import FolderSource

    root = Path(path)
    kind, _ = detect_source(root)
    if kind == "synthetic":
        truth = read_ground_truth(root)
        prefix = "multi_annotated/"
        extra = {key[len(prefix):]: value for key, value in truth.items() if key.startswith(prefix)}
        return FolderSource(root / "multi_annotated", extra_by_id=extra, **options)
    source = open_source(root, kind=kind, **options)
    if not source.has_votes:
        raise ValueError(
            f"{root}: is a {source.kind} source ({source.layout}) with one label per image; a multi-annotated "
            "source is needed (FER+, a folder with votes or per-annotator labels, or a synthetic sample)"
        )
    return source


# ---------------------------------------------------------------------------------------------- summary
def summarize_source(source: Source, check_images: bool = False) -> dict[str, Any]:
    """Per-split counts by hard label (the ``affectnetplus info`` output).

    Each split maps emotion name → count, plus ``non_emotion`` (AffectNet codes 8–10 by name, FER+/folder
    images without a majority emotion as ``no_majority``) and ``total``. With ``check_images`` every image
    is decoded and failures are listed under ``bad``.
    """
    from affectnetplus_hf.image_processing import BadImageError, load_image

    splits: dict[str, Any] = {}
    bad: list[dict[str, str]] = []
    for split in source.splits:
        counts = Counter()
        non_emotion = Counter()
        total = 0
        for record in source.records(split):
            total += 1
            if record.hard_label is not None:
                counts[EMOTIONS[record.hard_label]] += 1
            elif record.raw_label is not None and record.raw_label in AFFECTNET_NON_EMOTION_CODES:
                non_emotion[AFFECTNET_NON_EMOTION_CODES[record.raw_label]] += 1
            else:
                non_emotion["no_majority" if record.votes is not None else "unlabelled"] += 1
            if check_images:
                try:
                    load_image(record)
                except BadImageError as error:
                    bad.append({"image_id": record.image_id, "reason": str(error)})
        entry: dict[str, Any] = {name: counts.get(name, 0) for name in EMOTIONS}
        entry["non_emotion"] = dict(sorted(non_emotion.items()))
        entry["total"] = total
        splits[split] = entry
    return {
        "kind": source.kind,
        "layout": source.layout,
        "root": str(source.root),
        "has_votes": source.has_votes,
        "splits": splits,
        "skipped": source.skipped.as_dict(max_items=100),
        "bad": bad,
    }


def _check_options(name: str, options: Mapping[str, Any]) -> None:
    if options:
        raise TypeError(f"{name} got unexpected options: {sorted(options)}")


__all__ = [
    "KINDS",
    "LOOKED_FOR",
    "RowError",
    "SkipReport",
    "SkippedItem",
    "Source",
    "detect_source",
    "hard_label_from_votes",
    "open_multi_annotated",
    "open_source",
    "open_synthetic",
    "read_ground_truth",
    "relative_path_inside",
    "utf8_lines",
    "read_sample_info",
    "summarize_source",
]
