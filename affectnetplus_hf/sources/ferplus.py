"""FER+ reader: FER2013 images with the FER+ crowd votes (10 taggers per image), a real multi-annotated set.

Votes come from ``fer2013new.csv`` (``Usage`` Training / PublicTest / PrivateTest → split train / validation /
test) or ``FER2013{Train,Valid,Test}/label.csv`` (the folder gives the split); images from the FERPlus folders
``FER2013{Train,Valid,Test}/fer%07d.png`` (in ROOT or ROOT/data) or from the original ``fer2013.csv``, joined
with ``fer2013new.csv`` by row position (48×48 greyscale PNG bytes in ``record.image_bytes``). Layouts:
``fer2013new+folders``, ``fer2013new+fer2013csv``, ``label_csv+folders``. Rows without a name are skipped and
a duplicated name keeps its last row (both listed in ``source.skipped``); ``hard_label`` is the
``docs/method.md#mas-split`` majority, else ``None``; every named image is yielded. The rules for the real
files (``tests/fixtures/ferplus``): ``docs/architecture.md#ferplus``.

:func:`ferplus_target` reproduces the FERPlus project's own training targets (:data:`FERPLUS_KINDS`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import (
    FERPLUS_EMOTION_COLUMNS,
    FERPLUS_NON_EMOTION_COLUMNS,
    NUM_EMOTIONS,
    ferplus_votes_to_spec,
    spec_votes_to_ferplus,
)
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.sources.base import (
    RowError,
    SkipReport,
    Source,
    open_csv,
    relative_path_inside,
    utf8_lines,
)
from affectnetplus_hf.votes import hard_label_from_votes

logger = logging.getLogger(__name__)

VOTE_COLUMNS: tuple[str, ...] = (*FERPLUS_EMOTION_COLUMNS, *FERPLUS_NON_EMOTION_COLUMNS)
FER2013NEW_COLUMNS: tuple[str, ...] = ("Usage", "Image name", *VOTE_COLUMNS)
FER2013_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")
USAGE_TO_SPLIT: dict[str, str] = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
SPLIT_FOLDERS: dict[str, str] = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
FER_IMAGE_SIDE = 48
#: FER+'s training modes (Barsoum et al. 2016): the targets of :func:`ferplus_target`, trained as baseline kinds.
FERPLUS_KINDS: tuple[str, ...] = ("majority", "probability", "crossentropy", "multi_target")
#: Every baseline kind: Hard-FER and Soft-FER (paper Sec. 4.3), then FER+'s training modes. Defined here, with
#: the modes, so that the trainer, the evaluation and :mod:`affectnetplus_hf.baselines` share it without cycles.
BASELINE_KINDS: tuple[str, ...] = ("hard", "soft", *FERPLUS_KINDS)
#: Largest vote count accepted (FER+ has 10 taggers per image; larger values are typos or overflow).
MAX_VOTES = 2**31 - 1


def _image_base(root: Path) -> Path | None:
    for base in (root, root / "data"):
        if any((base / folder).is_dir() for folder in SPLIT_FOLDERS.values()):
            return base
    return None


def _fer2013_csv(root: Path) -> Path | None:
    for path in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if path.is_file():
            return path
    return None


def _label_csvs(root: Path) -> dict[str, Path]:
    base = _image_base(root)
    if base is None:
        return {}
    return {
        split: base / folder / "label.csv"
        for split, folder in SPLIT_FOLDERS.items()
        if (base / folder / "label.csv").is_file()
    }


def detect_layout(root: str | Path) -> str | None:
    """``"fer2013new+folders"``, ``"fer2013new+fer2013csv"``, ``"label_csv+folders"`` or ``None``."""
    root = Path(root)
    if (root / "fer2013new.csv").is_file():
        if _image_base(root) is None and _fer2013_csv(root) is not None:
            return "fer2013new+fer2013csv"
        return "fer2013new+folders"
    if _label_csvs(root):
        return "label_csv+folders"
    return None


def parse_vote_counts(values: list[str], where: str, columns: tuple[str, ...] = VOTE_COLUMNS) -> np.ndarray:
    """Vote count strings → int64 array; non-integers and negative counts raise naming the column."""
    if len(values) != len(columns):
        raise RowError(where, f"expected {len(columns)} vote counts ({', '.join(columns)}), got {len(values)}")
    counts = np.zeros(len(columns), dtype=np.int64)
    for i, (name, text) in enumerate(zip(columns, values)):
        text = text.strip()
        try:
            number = float(text)
        except ValueError:
            raise RowError(where, f"vote count {name}={text!r} is not a number; expected a count >= 0") from None
        if not math.isfinite(number) or number != int(number):
            raise RowError(where, f"vote count {name}={text!r} is not an integer; expected a count >= 0")
        if number < 0:
            raise RowError(where, f"vote count {name}={text} is negative; expected a count >= 0")
        if number > MAX_VOTES:
            raise RowError(where, f"vote count {name}={text} is too large; expected a count 0-{MAX_VOTES}")
        counts[i] = int(number)
    return counts


def _parse_box(text: str, where: str) -> tuple[float, float, float, float]:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    if len(numbers) != 4:
        raise RowError(where, f"face box {text!r} must be '(x0, y0, x1, y1)'")
    x0, y0, x1, y1 = (float(v) for v in numbers)
    if x1 <= x0 or y1 <= y0:
        raise RowError(where, f"face box {text!r} is empty; expected x1 > x0 and y1 > y0")
    return (x0, y0, x1, y1)


def pixels_to_png(pixels: str, where: str = "pixels") -> bytes:
    """A ``fer2013.csv`` pixel string (2304 space-separated values 0–255) → 48×48 greyscale PNG bytes."""
    from PIL import Image

    try:
        values = np.asarray(pixels.split(), dtype=np.int64)
    except ValueError:
        raise RowError(where, "pixels must be integers 0-255 separated by spaces") from None
    expected = FER_IMAGE_SIDE * FER_IMAGE_SIDE
    if values.size != expected:
        raise RowError(where, f"pixels has {values.size} values; expected {expected} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise RowError(where, "pixel values must be in 0-255")
    buffer = io.BytesIO()
    pixels_2d = values.reshape(FER_IMAGE_SIDE, FER_IMAGE_SIDE).astype(np.uint8)
    Image.fromarray(pixels_2d, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class _Entry:
    name: str
    split: str
    votes: np.ndarray  # (10,) FER+ order
    where: str
    row_index: int  # 0-based data row of fer2013new.csv (the fer2013.csv join key); -1 for label.csv
    face_box: tuple[float, float, float, float] | None = None


class FerPlusSource(Source):
    """FER+ (votes + FER2013 images), see the module docstring.

    Args:
        root: folder holding ``fer2013new.csv`` and/or the ``FER2013*`` folders and/or ``fer2013.csv``.
        labels: ``"fer2013new"`` or ``"label_csv"``; ``None`` prefers ``fer2013new.csv`` when present.
        images: ``"folders"`` or ``"fer2013csv"``; ``None`` prefers the folders when present.
        skip_bad_rows: skip malformed rows (``bad_row`` in ``skipped``) instead of raising.
        check_files: check that each image file exists while reading (folders only).
        keep_non_emotion: accepted for symmetry; every named image is yielded anyway.
    """

    kind = "ferplus"
    has_votes = True

    def __init__(
        self,
        root: str | Path,
        labels: str | None = None,
        images: str | None = None,
        skip_bad_rows: bool = False,
        check_files: bool = False,
        keep_non_emotion: bool = True,
        extra_by_id: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        root = Path(os.path.abspath(root))
        self.skip_bad_rows = bool(skip_bad_rows)
        self.check_files = bool(check_files)
        self.keep_non_emotion = bool(keep_non_emotion)
        self.extra_by_id = extra_by_id
        if labels is None:
            labels = "fer2013new" if (root / "fer2013new.csv").is_file() else "label_csv"
        if labels not in ("fer2013new", "label_csv"):
            raise ValueError(f"labels must be 'fer2013new' or 'label_csv', got {labels!r}")
        self.image_base = _image_base(root)
        self.fer2013_csv = _fer2013_csv(root)
        self.labels, self.images = labels, self._image_choice(root, images, labels)
        self.layout = f"{self.labels}+{self.images}"
        self._pending = SkipReport()
        self._entries = self._deduplicate(self._read_entries(root))
        super().__init__(root, sorted({e.split for e in self._entries}))
        self.skipped = self._pending  # open-time entries (empty names, duplicates) stay across reads

    def _image_choice(self, root: Path, images: str | None, labels: str) -> str:
        """``"folders"`` or ``"fer2013csv"`` (``None``: the folders when present), checked to be there."""
        if images is None:
            images = "folders" if self.image_base is not None or self.fer2013_csv is None else "fer2013csv"
        if images not in ("folders", "fer2013csv"):
            raise ValueError(f"images must be 'folders' or 'fer2013csv', got {images!r}")
        if images == "folders" and self.image_base is None:
            raise FileNotFoundError(
                f"{root}: no FER+ image folders; expected {', '.join(SPLIT_FOLDERS.values())} in {root} or "
                f"{root / 'data'}, or fer2013.csv (images='fer2013csv')"
            )
        if images == "fer2013csv":
            if labels != "fer2013new":
                raise ValueError("fer2013.csv images are joined by row with fer2013new.csv; use labels='fer2013new'")
            if self.fer2013_csv is None:
                raise FileNotFoundError(f"{root}: fer2013.csv not found (looked in {root} and {root / 'fer2013'})")
        return images

    def _read_entries(self, root: Path) -> list[_Entry]:
        """The rows of the vote file(s) (duplicates included); sets :attr:`n_label_rows`."""
        if self.labels == "fer2013new":
            new_csv = root / "fer2013new.csv"
            if not new_csv.is_file():
                raise FileNotFoundError(f"{new_csv}: missing; expected the FER+ vote file")
            entries, self.n_label_rows = self._read_fer2013new(new_csv)
            return entries
        files = _label_csvs(root)
        if not files:
            raise FileNotFoundError(f"{root}: no FER2013*/label.csv found")
        entries = []
        for split, path in files.items():
            entries.extend(self._read_label_csv(path, split))
        self.n_label_rows = len(entries)
        return entries

    # ------------------------------------------------------------------ label files
    def _bad(self, split: str | None, error: RowError) -> None:
        if not self.skip_bad_rows:
            raise error
        logger.warning("skipping %s", error)
        self._pending.add(split, error.location, "bad_row", error.detail, at_open=True)

    def _read_fer2013new(self, path: Path) -> tuple[list[_Entry], int]:
        entries: list[_Entry] = []
        with open_csv(path, FER2013NEW_COLUMNS) as (header, reader):
            usage_col, name_col = header.index("Usage"), header.index("Image name")
            vote_cols = [header.index(c) for c in VOTE_COLUMNS]
            row_index = -1
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                row_index += 1
                where = f"{path}:{line}"
                try:
                    if len(row) < len(header):
                        raise RowError(where, f"row has {len(row)} fields; expected {len(header)}")
                    usage = row[usage_col].strip()
                    if usage not in USAGE_TO_SPLIT:
                        raise RowError(where, f"Usage {usage!r} unknown; expected one of {list(USAGE_TO_SPLIT)}")
                    split = USAGE_TO_SPLIT[usage]
                    votes = parse_vote_counts([row[c] for c in vote_cols], where)
                except RowError as error:
                    self._bad(None, error)
                    continue
                name = row[name_col].strip()
                if not name:
                    self._pending.add(
                        split,
                        where,
                        "empty_image_name",
                        "row without an image name (image dropped by FER+)",
                        at_open=True,
                    )
                    continue
                try:
                    name = relative_path_inside(name, where, "Image name", "the split's image folder")
                except RowError as error:
                    self._bad(None, error)
                    continue
                entries.append(_Entry(name, split, votes, where, row_index))
        return entries, row_index + 1

    def _read_label_csv(self, path: Path, split: str) -> list[_Entry]:
        entries: list[_Entry] = []
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(utf8_lines(handle, path)), start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{path}:{line}"
                try:
                    if len(row) != 2 + len(VOTE_COLUMNS):
                        raise RowError(
                            where,
                            f"row has {len(row)} fields; expected {2 + len(VOTE_COLUMNS)} "
                            '(image name, "(x0, y0, x1, y1)", 10 vote counts)',
                        )
                    box = _parse_box(row[1], where)
                    votes = parse_vote_counts(row[2:], where)
                except RowError as error:
                    self._bad(split, error)
                    continue
                name = row[0].strip()
                if not name:
                    self._pending.add(split, where, "empty_image_name", "row without an image name", at_open=True)
                    continue
                try:
                    name = relative_path_inside(name, where, "image name", f"the image folder {path.parent}")
                except RowError as error:
                    self._bad(split, error)
                    continue
                entries.append(_Entry(name, split, votes, where, -1, box))
        return entries

    def _deduplicate(self, entries: list[_Entry]) -> list[_Entry]:
        """Keep the last row of a duplicated name (FER+'s on-disk image matches it); report the others."""
        last: dict[str, int] = {}
        for i, entry in enumerate(entries):
            last[entry.name] = i
        kept = []
        for i, entry in enumerate(entries):
            if last[entry.name] != i:
                later = entries[last[entry.name]]
                differ = "votes differ" if not np.array_equal(entry.votes, later.votes) else "same votes"
                self._pending.add(
                    entry.split,
                    entry.where,
                    "duplicate_name",
                    f"{entry.name} also on {later.where} ({differ}); kept the later row",
                    at_open=True,
                )
                continue
            kept.append(entry)
        return kept

    @property
    def duplicates(self) -> list[str]:
        """Locations of rows dropped because their name occurs again later."""
        return [i.location for i in self.skipped.items if i.reason == "duplicate_name"]

    # ------------------------------------------------------------------ records
    def _record(self, entry: _Entry, image_path: str | None, image_bytes: bytes | None, image_id: str) -> FaceRecord:
        raw = entry.votes
        votes = ferplus_votes_to_spec(raw[:NUM_EMOTIONS]).astype(np.int64)
        non_emotion = int(raw[NUM_EMOTIONS:].sum())
        extra: dict[str, Any] = {"ferplus_votes": raw.copy(), "ferplus_name": entry.name}
        if self.extra_by_id is not None and image_id in self.extra_by_id:
            extra.update(self.extra_by_id[image_id])
        return FaceRecord(
            image_id=image_id,
            image_path=image_path,
            image_bytes=image_bytes,
            face_box=entry.face_box,
            hard_label=hard_label_from_votes(votes, non_emotion),
            raw_label=None,
            votes=votes,
            non_emotion_votes=non_emotion,
            split=entry.split,
            source=self.kind,
            extra=extra,
        )

    def _records(self, split: str) -> Iterator[FaceRecord]:
        entries = [e for e in self._entries if e.split == split]
        if self.images == "folders":
            folder = SPLIT_FOLDERS[split]
            assert self.image_base is not None
            for entry in entries:
                path = self.image_base / folder / entry.name
                if self.check_files and not path.is_file():
                    if not self.skip_bad_rows:
                        raise FileNotFoundError(f"{entry.where}: image file {path} missing")
                    self.skipped.add(split, entry.where, "missing_image", f"image file {path} missing")
                    continue
                inside = path.is_relative_to(self.root)
                image_id = path.relative_to(self.root).as_posix() if inside else f"{folder}/{entry.name}"
                yield self._record(entry, str(path), None, image_id)
            return
        yield from self._fer2013_records(split, entries)

    def _fer2013_records(self, split: str, entries: list[_Entry]) -> Iterator[FaceRecord]:
        """Join ``fer2013.csv`` row *i* with ``fer2013new.csv`` row *i* (same order; names are not indices)."""
        assert self.fer2013_csv is not None
        path = self.fer2013_csv
        by_row = {e.row_index: e for e in entries}
        if not by_row:
            return
        last_needed = max(by_row)
        with open_csv(path, FER2013_COLUMNS) as (header, reader):
            pixels_col, usage_col = header.index("pixels"), header.index("Usage")
            row_index = -1
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                row_index += 1
                entry = by_row.get(row_index)
                if entry is None:
                    if row_index >= last_needed:
                        break
                    continue
                where = f"{path}:{line}"
                try:
                    if len(row) < len(header):
                        raise RowError(where, f"row has {len(row)} fields; expected {len(header)}")
                    usage = row[usage_col].strip()
                    if USAGE_TO_SPLIT.get(usage) != entry.split:
                        raise RowError(
                            where,
                            f"Usage {usage!r} differs from {entry.where} ({entry.split}); the two "
                            "files must list the same images in the same order",
                        )
                    png = pixels_to_png(row[pixels_col], where)
                except RowError as error:
                    if not self.skip_bad_rows:
                        raise
                    self.skipped.add(split, error.location, "bad_image_row", error.detail)
                    if row_index >= last_needed:
                        break
                    continue
                yield self._record(entry, None, png, entry.name)
                if row_index >= last_needed:
                    break
        if row_index < last_needed:
            raise ValueError(
                f"{path}: has {row_index + 1} data rows but fer2013new.csv needs row {last_needed + 1}; expected "
                f"the same number of rows ({self.n_label_rows}) in the same order"
            )


# ---------------------------------------------------------------------------------------------- targets
def record_raw_votes(record: FaceRecord) -> np.ndarray | None:
    """A record's annotator votes as the 10 FER+ counts (8 emotions in FER+ column order, unknown, NF).

    FER+ records give their raw counts (``extra["ferplus_votes"]``); a record of another multi-annotated
    source maps its per-emotion ``votes`` into FER+ column order and counts its ``non_emotion_votes`` as
    unknown, with 0 NF. ``None`` when the record carries no votes. This is the ``votes`` column of an
    exported dataset and the input of :func:`ferplus_target` (Barsoum et al. 2016).
    """
    raw = record.extra.get("ferplus_votes") if record.extra else None
    if raw is not None:
        counts = np.asarray(raw)
        if counts.shape != (len(VOTE_COLUMNS),):
            raise ValueError(
                f"{record.image_id}: extra['ferplus_votes'] must hold {len(VOTE_COLUMNS)} counts "
                f"{VOTE_COLUMNS}, got shape {counts.shape}"
            )
    elif record.votes is not None:
        counts = np.concatenate(
            [spec_votes_to_ferplus(np.asarray(record.votes).reshape(-1)), [int(record.non_emotion_votes or 0), 0]]
        )
    else:
        return None
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"{record.image_id}: votes must be counts >= 0, got {np.asarray(counts).tolist()}")
    return counts.astype(np.int64)


def _unknown(size: int = 10) -> np.ndarray:
    target = np.zeros(size, dtype=np.float64)
    target[-2] = 1.0
    return target


def ferplus_label_distribution(raw_votes: np.ndarray, mode: str = "majority") -> np.ndarray | None:
    """FERPlus's label processing (``src/ferplus.py`` ``_process_data`` + the reader's discard rule).

    Re-implemented from the FERPlus project (Barsoum et al. 2016, arXiv:1608.01041; MIT):

    1. outlier removal: emotions with a single vote (count <= 1) are set to 0;
    2. ``majority``: the top count if it is more than half of the remaining votes, else "unknown";
       ``probability`` / ``crossentropy``: take the largest counts (all tied ones at once) until they hold
       >= 75 % of the votes or 3 emotions are taken, stopping at unknown/NF; "unknown" if the taken
       votes are <= 50 % or more than 3 emotions were taken; ``multi_target``: every count >= 30 % of
       the votes, "unknown" if those are <= 50 %;
    3. normalise; an image whose largest entry is unknown/NF (first index wins ties) is discarded
       (``None``); otherwise the 8 emotion entries are renormalised.

    Args:
        raw_votes: the 10 FER+ counts in FER+ column order (8 emotions, unknown, NF), e.g.
            ``record.extra["ferplus_votes"]``.
        mode: one of :data:`FERPLUS_KINDS`.

    Returns:
        ``(8,)`` float64 distribution in **label-space order**, or ``None`` when FERPlus would discard the image.
    """
    if mode not in FERPLUS_KINDS:
        raise ValueError(f"mode must be one of {FERPLUS_KINDS}, got {mode!r}")
    raw = np.asarray(raw_votes, dtype=np.float64).copy()
    if raw.shape != (len(VOTE_COLUMNS),):
        raise ValueError(
            f"raw_votes must have {len(VOTE_COLUMNS)} counts in FER+ order {VOTE_COLUMNS}, got {raw.shape}"
        )
    if np.any(raw < 0) or not np.all(np.isfinite(raw)):
        raise ValueError(f"raw_votes must be non-negative counts, got {raw.tolist()}")
    raw[raw < 1.0 + np.finfo(float).eps] = 0.0  # outlier removal
    if mode == "majority":
        picked = _pick_majority(raw)
    elif mode in ("probability", "crossentropy"):
        picked = _pick_top_counts(raw)
    else:
        picked = _pick_multi_target(raw)
    distribution = picked / picked.sum()
    if int(np.argmax(distribution)) >= NUM_EMOTIONS:
        return None
    emotions = distribution[:NUM_EMOTIONS]
    emotions = emotions / emotions.sum()
    return ferplus_votes_to_spec(emotions)


def _pick_majority(raw: np.ndarray) -> np.ndarray:
    """``majority``: the top count if it is more than half of the votes, else "unknown"."""
    total = raw.sum()
    picked = np.zeros(raw.size, dtype=np.float64)
    top = raw.max()
    if top > 0.5 * total:
        picked[int(np.argmax(raw))] = top
        return picked
    return _unknown(raw.size)


def _pick_top_counts(raw: np.ndarray) -> np.ndarray:
    """``probability`` / ``crossentropy``: the largest counts (ties at once) until they hold >= 75 % of the
    votes or 3 emotions are taken, stopping at unknown/NF; "unknown" if they hold <= 50 % or more than 3
    emotions were taken. ``raw`` is consumed."""
    total = raw.sum()
    picked = np.zeros(raw.size, dtype=np.float64)
    taken, count, valid = 0.0, 0, True
    while taken < 0.75 * total and count < 3 and valid:
        top = raw.max()
        for i in range(raw.size):
            if raw[i] == top:
                picked[i] = top
                raw[i] = 0.0
                taken += top
                count += 1
                if i >= NUM_EMOTIONS:  # unknown/NF among the top counts: stop here
                    valid = False
                    if picked.sum() > top:  # emotions were taken before: drop unknown/NF
                        picked[i] = 0.0
                        count -= 1
                    break
    if picked.sum() <= 0.5 * total or count > 3:
        return _unknown(raw.size)
    return picked


def _pick_multi_target(raw: np.ndarray) -> np.ndarray:
    """``multi_target``: every count >= 30 % of the votes, "unknown" if those hold <= 50 %."""
    total = raw.sum()
    picked = np.where(raw >= 0.3 * total, raw, 0.0)
    if picked.sum() <= 0.5 * total:
        return _unknown(raw.size)
    return picked


def ferplus_target(
    raw_votes: np.ndarray, mode: str = "majority", rng: np.random.Generator | None = None
) -> np.ndarray | None:
    """FERPlus's training target for one image (``_process_data`` then ``_process_target``), label-space order.

    * ``majority`` — one-hot of the majority emotion;
    * ``crossentropy`` — the distribution of :func:`ferplus_label_distribution` (soft target);
    * ``probability`` — a one-hot emotion drawn from that distribution with ``rng`` (a fresh draw per
      call, as FERPlus draws per mini-batch; pass a seeded generator for reproducibility);
    * ``multi_target`` — 1 for every emotion in the distribution, 0 elsewhere, smoothed as
      ``(1 - 0.001) * t + 0.001``.

    Returns ``None`` when FERPlus discards the image (majority unknown/NF or too little agreement).
    """
    distribution = ferplus_label_distribution(raw_votes, mode)
    if distribution is None or mode in ("majority", "crossentropy"):
        return distribution
    if mode == "probability":
        if rng is None:
            raise ValueError("mode='probability' draws a label: pass rng=np.random.default_rng(seed)")
        target = np.zeros_like(distribution)
        target[int(rng.choice(distribution.size, p=distribution))] = 1.0
        return target
    epsilon = 0.001
    return (1.0 - epsilon) * (distribution > 0).astype(np.float64) + epsilon


__all__ = [
    "BASELINE_KINDS",
    "FER2013NEW_COLUMNS",
    "FER2013_COLUMNS",
    "FERPLUS_KINDS",
    "FerPlusSource",
    "detect_layout",
    "ferplus_label_distribution",
    "ferplus_target",
    "parse_vote_counts",
    "pixels_to_png",
    "record_raw_votes",
]
