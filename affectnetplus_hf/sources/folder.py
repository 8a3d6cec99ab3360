"""Generic folder reader: images + one CSV of labels.

The CSV (``votes.csv``, ``annotations.csv`` or ``labels.csv`` in the folder, looked for in that order, or
``csv_path``; UTF-8) has an ``image`` column (a path inside the folder) and, by layout: ``votes`` — one row per
image, one count column per emotion (label-space names, common synonyms accepted) plus optional non-emotion
columns summed into ``non_emotion_votes``; ``annotations`` — one row per ``(image, annotator, label)``;
``labels`` — ``image,label``, one hard label per image (no votes). An optional ``split`` column takes
``train``/``validation``/``test`` (and common aliases); without it every image is ``train``.

``hard_label`` is the ``docs/method.md#mas-split`` majority, else ``None``; every image is yielded. A duplicated
image row (votes) or ``(image, annotator)`` pair keeps the last row and reports the earlier one in
``source.skipped``. The layouts in full: ``docs/architecture.md#folder-source``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.sources.base import (
    RowError,
    SkipReport,
    Source,
    relative_path_inside,
    utf8_lines,
)
from affectnetplus_hf.votes import hard_label_from_votes

logger = logging.getLogger(__name__)

CSV_NAMES: tuple[str, ...] = ("votes.csv", "annotations.csv", "labels.csv")
#: Largest vote count accepted in a cell (annotator counts; larger values are typos or overflow).
MAX_VOTES = 2**31 - 1
EMOTION_ALIASES: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(EMOTIONS)},
    "happiness": 1,
    "sadness": 2,
    "surprised": 3,
    "fearful": 4,
    "disgusted": 5,
    "angry": 6,
    "contemptuous": 7,
}
NON_EMOTION_LABELS: tuple[str, ...] = ("none", "uncertain", "non-face", "nonface", "non_face", "unknown", "nf")
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "publictest": "validation",
    "test": "test",
    "privatetest": "test",
}


def parse_emotion_label(text: str, where: str) -> int | None:
    """An annotation label → label-space index, or ``None`` for a non-emotion label; anything else raises."""
    value = str(text).strip()
    key = value.lower()
    if key in EMOTION_ALIASES:
        return EMOTION_ALIASES[key]
    if key in NON_EMOTION_LABELS:
        return None
    if key.isdigit() and 0 <= int(key) < NUM_EMOTIONS:
        return int(key)
    raise RowError(
        where,
        f"label {value!r} unknown; expected an emotion name ({', '.join(EMOTIONS)}, any case), "
        f"an index 0-{NUM_EMOTIONS - 1}, or a non-emotion label (None, Uncertain, Non-Face, "
        "unknown, NF)",
    )


def parse_split(text: str, where: str) -> str:
    key = str(text).strip().lower()
    if key not in SPLIT_ALIASES:
        raise RowError(where, f"split {text!r} unknown; expected train, validation or test")
    return SPLIT_ALIASES[key]


def _columns(header: list[str]) -> tuple[dict[int, int], list[int]]:
    """Emotion column positions (label-space index → column) and non-emotion column positions of a header."""
    emotions: dict[int, int] = {}
    non_emotion: list[int] = []
    for position, name in enumerate(header):
        key = name.strip().lower()
        if key in EMOTION_ALIASES and EMOTION_ALIASES[key] not in emotions:
            emotions[EMOTION_ALIASES[key]] = position
        elif key in NON_EMOTION_LABELS:
            non_emotion.append(position)
    return emotions, non_emotion


def _read_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [h.strip() for h in next(csv.reader(utf8_lines(handle, path)), [])]


def _layout_of(header: list[str]) -> str | None:
    lower = [h.lower() for h in header]
    if "image" not in lower:
        return None
    if "label" in lower:
        return "annotations" if "annotator" in lower else "labels"
    emotions, _ = _columns(header)
    return "votes" if emotions else None


def detect_layout(root: str | Path, csv_path: str | Path | None = None) -> str | None:
    """``"votes"``, ``"annotations"``, ``"labels"`` or ``None`` (no label CSV with a known header)."""
    root = Path(root)
    candidates = [Path(csv_path)] if csv_path is not None else [root / name for name in CSV_NAMES]
    for path in candidates:
        if path.is_file():
            layout = _layout_of(_read_header(path))
            if layout is not None:
                return layout
    return None


@dataclass
class _Image:
    image: str
    split: str
    where: str
    votes: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EMOTIONS, dtype=np.int64))
    non_emotion: int = 0
    label: int | None = None
    annotators: dict[str, str] = field(default_factory=dict)


class FolderSource(Source):
    """A folder of images with a label CSV (see the module docstring for the three CSV layouts).

    Args:
        root: the folder (image paths in the CSV are relative to it).
        csv_path: the label CSV; ``None`` looks for ``votes.csv``, ``annotations.csv``, ``labels.csv``.
        allow_missing_emotions: in the ``votes`` layout, treat absent emotion columns as zero counts
            instead of raising (e.g. a 7-emotion dataset without Contempt).
        skip_bad_rows: skip malformed rows (``bad_row``) instead of raising.
        check_files: check that each image file exists while reading.
        keep_non_emotion: accepted for symmetry; every image is yielded.
        extra_by_id: ``{image_id: dict}`` joined into ``record.extra`` (the synthetic sample's ground truth).
    """

    kind = "folder"

    def __init__(
        self,
        root: str | Path,
        csv_path: str | Path | None = None,
        allow_missing_emotions: bool = False,
        skip_bad_rows: bool = False,
        check_files: bool = False,
        keep_non_emotion: bool = True,
        extra_by_id: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        root = Path(os.path.abspath(root))
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: folder does not exist")
        if csv_path is None:
            found = [root / name for name in CSV_NAMES if (root / name).is_file()]
            if not found:
                raise FileNotFoundError(f"{root}: no label CSV; expected one of {', '.join(CSV_NAMES)}")
            csv_path = found[0]
        self.csv_path = Path(csv_path) if Path(csv_path).is_absolute() else root / csv_path
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"{self.csv_path}: label CSV missing")
        header = _read_header(self.csv_path)
        layout = _layout_of(header)
        if layout is None:
            raise ValueError(
                f"{self.csv_path}: unknown columns {header}; expected 'image' plus either vote-count columns named "
                f"after the emotions ({', '.join(EMOTIONS)}), or 'annotator' and 'label' (one row per annotation), "
                "or 'label' alone (one label per image)"
            )
        self.layout = layout
        self.has_votes = layout in ("votes", "annotations")
        self.allow_missing_emotions = bool(allow_missing_emotions)
        self.skip_bad_rows = bool(skip_bad_rows)
        self.check_files = bool(check_files)
        self.keep_non_emotion = bool(keep_non_emotion)
        self.extra_by_id = extra_by_id
        self._report = SkipReport()
        self._root_for_ids = root
        self._images = self._read(header)
        super().__init__(root, sorted({image.split for image in self._images.values()}) or ["train"])
        self.skipped = self._report

    # ------------------------------------------------------------------ reading
    def _bad(self, error: RowError) -> None:
        if not self.skip_bad_rows:
            raise error
        logger.warning("skipping %s", error)
        self._report.add(None, error.location, "bad_row", error.detail, at_open=True)

    def _image_id(self, text: str, where: str) -> str:
        value = text.strip()
        if not value:
            raise RowError(where, "image is empty; expected an image path relative to the folder")
        return relative_path_inside(value, where, "image", f"the data folder {self._root_for_ids}")

    def _read(self, header: list[str]) -> dict[str, _Image]:
        lower = [h.lower() for h in header]
        image_col = lower.index("image")
        split_col = lower.index("split") if "split" in lower else None
        images: dict[str, _Image] = {}
        if self.layout == "votes":
            emotions, non_emotion_cols = _columns(header)
            missing = [EMOTIONS[i] for i in range(NUM_EMOTIONS) if i not in emotions]
            if missing and not self.allow_missing_emotions:
                raise ValueError(
                    f"{self.csv_path}: missing vote columns {missing}; expected one column per emotion "
                    f"({', '.join(EMOTIONS)}) or allow_missing_emotions=True"
                )
        with open(self.csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(utf8_lines(handle, self.csv_path))
            next(reader, None)
            for line, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{self.csv_path}:{line}"
                try:
                    if len(row) < len(header):
                        raise RowError(
                            where, f"row has {len(row)} fields; expected {len(header)} ({', '.join(header)})"
                        )
                    image_id = self._image_id(row[image_col], where)
                    split = parse_split(row[split_col], where) if split_col is not None else "train"
                    if self.layout == "votes":
                        self._add_votes(images, image_id, split, row, emotions, non_emotion_cols, header, where)
                    else:
                        self._add_annotation(images, image_id, split, row, lower, where)
                except RowError as error:
                    self._bad(error)
        return images

    def _add_votes(
        self,
        images: dict[str, _Image],
        image_id: str,
        split: str,
        row: list[str],
        emotions: dict[int, int],
        non_emotion_cols: list[int],
        header: list[str],
        where: str,
    ) -> None:
        votes = np.zeros(NUM_EMOTIONS, dtype=np.int64)
        non_emotion = 0
        for index, position in [*emotions.items(), *((None, p) for p in non_emotion_cols)]:
            text = row[position].strip()
            if not text:
                raise RowError(
                    where,
                    f"{header[position]} is empty; expected a vote count: an integer "
                    f"0-{MAX_VOTES} (write 0 for no votes)",
                )
            try:
                number = float(text)
            except ValueError:
                raise RowError(
                    where,
                    f"{header[position]}={text!r} is not a number; expected a vote count: an integer 0-{MAX_VOTES}",
                ) from None
            if not math.isfinite(number) or number != int(number) or not 0 <= number <= MAX_VOTES:
                raise RowError(
                    where,
                    f"{header[position]}={text} invalid; expected a vote count >= 0 (votes "
                    f"must be finite non-negative integers, at most {MAX_VOTES})",
                )
            if index is None:
                non_emotion += int(number)
            else:
                votes[index] = int(number)
        if image_id in images:
            earlier = images[image_id]
            self._report.add(
                earlier.split,
                earlier.where,
                "duplicate_image",
                f"{image_id} also on {where}; kept the later row",
                at_open=True,
            )
            del images[image_id]
        images[image_id] = _Image(image_id, split, where, votes, non_emotion)

    def _add_annotation(
        self, images: dict[str, _Image], image_id: str, split: str, row: list[str], lower: list[str], where: str
    ) -> None:
        label_text = row[lower.index("label")]
        label = parse_emotion_label(label_text, where)
        entry = images.get(image_id)
        if entry is None:
            entry = images[image_id] = _Image(image_id, split, where)
        elif entry.split != split:
            raise RowError(
                where,
                f"image {image_id} has split {split!r} here but {entry.split!r} on {entry.where}; "
                "expected one split per image",
            )
        if self.layout == "labels":
            if entry.where != where:
                raise RowError(
                    where,
                    f"image {image_id} labelled again (first on {entry.where}); a labels CSV has "
                    "one row per image — add an 'annotator' column for several annotations",
                )
            entry.label = label
            return
        annotator = row[lower.index("annotator")].strip()
        if not annotator:
            raise RowError(where, "annotator is empty; expected an annotator id")
        if annotator in entry.annotators:
            previous = entry.annotators[annotator]
            self._report.add(
                split,
                where,
                "duplicate_annotation",
                f"annotator {annotator} labelled {image_id} again ({previous!r} -> "
                f"{label_text.strip()!r}); kept the later label",
                at_open=True,
            )
            old = parse_emotion_label(previous, where)
            if old is None:
                entry.non_emotion -= 1
            else:
                entry.votes[old] -= 1
        entry.annotators[annotator] = label_text.strip()
        if label is None:
            entry.non_emotion += 1
        else:
            entry.votes[label] += 1

    # ------------------------------------------------------------------ records
    def _records(self, split: str) -> Iterator[FaceRecord]:
        for image in self._images.values():
            if image.split != split:
                continue
            path = self.root / image.image
            if self.check_files and not path.is_file():
                if not self.skip_bad_rows:
                    raise FileNotFoundError(f"{image.where}: image file {path} missing")
                self.skipped.add(split, image.where, "missing_image", f"image file {path} missing")
                continue
            extra: dict[str, Any] = {}
            if self.extra_by_id is not None:
                if image.image not in self.extra_by_id:
                    raise ValueError(f"{image.where}: image {image.image!r} has no ground-truth row")
                extra.update(self.extra_by_id[image.image])
            if image.annotators:
                extra["annotator_labels"] = dict(image.annotators)
            if self.layout == "labels":
                yield FaceRecord(
                    image_id=image.image,
                    image_path=str(path),
                    hard_label=image.label,
                    split=split,
                    source=self.kind,
                    extra=extra,
                )
                continue
            yield FaceRecord(
                image_id=image.image,
                image_path=str(path),
                hard_label=hard_label_from_votes(image.votes, image.non_emotion),
                votes=image.votes.copy(),
                non_emotion_votes=image.non_emotion,
                split=split,
                source=self.kind,
                extra=extra,
            )


__all__ = ["CSV_NAMES", "FolderSource", "detect_layout", "parse_emotion_label", "parse_split"]
