"""Pass-through annotators: metadata that already exists (paper Sec. 3.5.4).

- :class:`RecordLandmarksAnnotator` (``passthrough``): AffectNet's own 68 landmarks, carried by the
  readers in ``FaceRecord.landmarks``.
- :class:`SyntheticGroundTruthAnnotator` (``synthetic``): the embedded synthetic sample's
  ground truth (``ground_truth.csv``: 68 landmarks and yaw/pitch/roll), e.g. to test the pipeline
  or to score other backends against it.
- :class:`CsvMetadataAnnotator` (``csv:PATH``): any metadata column from a CSV keyed by
  ``image_id`` (e.g. official AffectNet+ annotation files, if they are ever released, converted to
  these column names), validated row by row.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..records import FaceRecord
from ..sources.synthetic import GROUND_TRUTH, SAMPLE_INFO, read_ground_truth
from .base import (
    HEAD_POSE_COLUMNS,
    LANDMARKS_68_COLUMN,
    METADATA_COLUMNS,
    Annotator,
    parse_landmarks,
    validate_value,
)

logger = logging.getLogger(__name__)


class RecordLandmarksAnnotator(Annotator):
    """``landmarks_68`` from ``FaceRecord.landmarks`` (AffectNet ships 68 points per image)."""

    name = "passthrough"
    columns = (LANDMARKS_68_COLUMN,)

    def annotate_batch(self, records, images, known):
        values = []
        for record in records:
            if record.landmarks is None:
                values.append(None)
            else:
                values.append(parse_landmarks(record.landmarks, 68, where=record.location))
        return {LANDMARKS_68_COLUMN: values}


# --------------------------------------------------------------------------------------------
# synthetic sample


def read_synthetic_ground_truth(sample_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The synthetic sample's landmarks and head pose as metadata cells:
    ``{image_id: {"landmarks_68": (68, 2) float32, "head_pose_yaw": ..., ...}}``.

    Read by the sample's reader (:func:`affectnetplus_hf.sources.synthetic.read_ground_truth`, whose errors
    name the file and line); pose angles in degrees, the conventions of :mod:`affectnetplus_hf.metadata.headpose`.
    """
    table: dict[str, dict[str, Any]] = {}
    for image_id, truth in read_ground_truth(sample_dir).items():
        where = f"{Path(sample_dir) / GROUND_TRUTH} (image_id {image_id!r})"
        entry: dict[str, Any] = {
            LANDMARKS_68_COLUMN: validate_value(LANDMARKS_68_COLUMN, truth["landmarks"], where=where)
        }
        for column, angle in zip(HEAD_POSE_COLUMNS, truth["head_pose"]):
            entry[column] = validate_value(column, angle, where=where)
        table[image_id] = entry
    return table


def find_synthetic_sample_dir(record: FaceRecord) -> Path | None:
    """The synthetic sample folder holding ``record``'s image: the nearest parent of
    ``record.image_path`` with both ``ground_truth.csv`` and ``sample_info.json``."""
    if record.image_path is None:
        return None
    for parent in Path(record.image_path).resolve().parents:
        if (parent / GROUND_TRUTH).is_file() and (parent / SAMPLE_INFO).is_file():
            return parent
    return None


class SyntheticGroundTruthAnnotator(Annotator):
    """Landmarks and head pose from the synthetic sample's ``ground_truth.csv``.

    Records are matched by their image file's path relative to the sample folder (so records from
    the AffectNet-layout reader and from the folder reader over ``multi_annotated/`` both match),
    falling back to ``image_id``. A record of a sample whose ground truth lacks it is an error.

    Args:
        sample_dir: the sample folder; ``None`` finds it from each record's ``image_path``.
    """

    name = "synthetic"
    columns = (LANDMARKS_68_COLUMN, *HEAD_POSE_COLUMNS)

    def __init__(self, sample_dir: str | os.PathLike | None = None) -> None:
        self.sample_dir = Path(sample_dir).resolve() if sample_dir else None
        self._tables: dict[Path, dict[str, dict[str, Any]]] = {}
        if self.sample_dir is not None:
            self._table(self.sample_dir)  # fail early on a wrong folder

    def _table(self, sample_dir: Path) -> dict[str, dict[str, Any]]:
        if sample_dir not in self._tables:
            self._tables[sample_dir] = read_synthetic_ground_truth(sample_dir)
        return self._tables[sample_dir]

    def _lookup(self, record: FaceRecord) -> dict[str, Any]:
        sample_dir = self.sample_dir or find_synthetic_sample_dir(record)
        if sample_dir is None:
            raise ValueError(
                f"{record.location}: not inside a synthetic sample folder (no parent with "
                f"{GROUND_TRUTH} and {SAMPLE_INFO}); pass 'synthetic:DIR'"
            )
        table = self._table(sample_dir)
        keys = []
        if record.image_path is not None:
            try:
                keys.append(Path(record.image_path).resolve().relative_to(sample_dir).as_posix())
            except ValueError:
                pass
        keys.append(record.image_id)
        for key in keys:
            if key in table:
                return table[key]
        raise ValueError(f"{record.location}: no row in {sample_dir / GROUND_TRUTH} (looked up {keys})")

    def annotate_batch(self, records, images, known):
        out: dict[str, list[Any]] = {c: [] for c in self.columns}
        for record in records:
            entry = self._lookup(record)
            for column in self.columns:
                out[column].append(entry[column])
        return out


# --------------------------------------------------------------------------------------------
# CSV import


def read_metadata_csv(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read and validate a metadata CSV: column ``image_id`` plus any of the metadata columns
    (:data:`~affectnetplus_hf.metadata.base.METADATA_COLUMNS`).

    Cell formats: age a number >= 0; gender one of ``GENDERS``; ethnicity one of ``ETHNICITIES``;
    ``landmarks_68`` / ``landmarks_28`` 136 / 56 numbers ``"x0;y0;x1;y1;..."``; head pose degrees.
    An empty cell (or ``null``/``None``/``NaN`` text) is null. Unknown columns, duplicate
    ``image_id`` and invalid cells raise ``ValueError`` naming the file, line and image_id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "image_id" not in fields:
            raise ValueError(f"{path}: missing column 'image_id'; columns are {fields}")
        unknown = [f for f in fields if f != "image_id" and f not in METADATA_COLUMNS]
        if unknown:
            raise ValueError(
                f"{path}: unknown columns {unknown}; expected image_id and any of {list(METADATA_COLUMNS)}"
            )
        columns = [f for f in fields if f in METADATA_COLUMNS]
        if not columns:
            raise ValueError(f"{path}: no metadata column; expected any of {list(METADATA_COLUMNS)}")
        table: dict[str, dict[str, Any]] = {}
        first_line: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            image_id = (row.get("image_id") or "").strip()
            if not image_id:
                raise ValueError(f"{path} line {line}: empty image_id")
            if image_id in table:
                raise ValueError(
                    f"{path} line {line}: duplicate image_id {image_id!r} (first on line {first_line[image_id]})"
                )
            if None in row:  # more cells than header fields
                raise ValueError(f"{path} line {line} (image_id {image_id!r}): more cells than columns")
            where = f"{path} line {line} (image_id {image_id!r})"
            entry = {}
            for column in columns:
                cell = row[column]
                if cell is None:
                    raise ValueError(f"{where}: missing cell for column {column!r}")
                cell = cell.strip()
                value = None if cell.lower() in ("", "null", "none", "nan") else cell
                entry[column] = validate_value(column, value, where=where)
            table[image_id] = entry
            first_line[image_id] = line
    return table


class CsvMetadataAnnotator(Annotator):
    """Any metadata column from a validated CSV keyed by ``image_id`` (:func:`read_metadata_csv`).
    Records absent from the CSV get nulls (counted in :attr:`n_missing` and logged)."""

    name = "csv"
    columns = METADATA_COLUMNS

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.table = read_metadata_csv(self.path)
        self.n_missing = 0

    def annotate_batch(self, records: Sequence[FaceRecord], images, known):
        out: dict[str, list[Any]] = {c: [] for c in self.columns}
        missing = []
        for record in records:
            entry = self.table.get(record.image_id)
            if entry is None:
                missing.append(record.image_id)
                entry = {}
            for column in self.columns:
                value = entry.get(column)
                out[column].append(np.array(value, copy=True) if isinstance(value, np.ndarray) else value)
        if missing:
            self.n_missing += len(missing)
            logger.warning(
                "%s: %d record(s) not in the CSV, left null: %s", self.path, len(missing), ", ".join(missing[:20])
            )
        return out
