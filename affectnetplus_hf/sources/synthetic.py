"""Reader of the embedded synthetic sample (written by :func:`affectnetplus_hf.synthetic.write_sample`).

A sample folder holds ``sample_info.json`` (kind :data:`SAMPLE_KIND`), an AffectNet part in AffectNet's
``csv`` or ``npy`` layout, a ``multi_annotated/`` part in the folder reader's ``votes`` layout, and
``ground_truth.csv``: one row per image with what the renderer drew (:data:`GROUND_TRUTH_COLUMNS`).
``sample_info.json`` is how a sample is recognised (:func:`detect_layout`); the writer's hidden run-folder
marker (``.affectnetplus-run.json``, :mod:`affectnetplus_hf.run_folder`) only guards the folder and is not read.

:func:`read_ground_truth` parses that file into one schema, :class:`GroundTruth` dicts, which both parts
join into ``record.extra``: :func:`open_synthetic` (the AffectNet part, kind ``synthetic``) and
:func:`open_multi_annotated_part` (the votes).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS
from affectnetplus_hf.sources.affectnet import AffectNetSource
from affectnetplus_hf.sources.affectnet import detect_layout as detect_affectnet_layout
from affectnetplus_hf.sources.base import utf8_lines
from affectnetplus_hf.sources.folder import FolderSource

SAMPLE_KIND = "affectnetplus-synthetic-sample"
SAMPLE_INFO = "sample_info.json"
GROUND_TRUTH = "ground_truth.csv"
MULTI_ANNOTATED_DIR = "multi_annotated"

#: Columns of ``ground_truth.csv``: the soft label in label-space order, the blend it was drawn from, the
#: head pose in degrees and the 68 landmarks (136 numbers ``x0;y0;x1;...`` in image pixels).
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "image_id",
    "part",
    "split",
    *EMOTIONS,
    "primary",
    "secondary",
    "blend_weight",
    "intensity",
    "yaw",
    "pitch",
    "roll",
    "landmarks",
)
#: Columns a reader accepts as missing (``intensity``: samples of version 2 and older).
OPTIONAL_GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("intensity",)
NUM_LANDMARK_VALUES = 136


class GroundTruth(TypedDict):
    """One row of ``ground_truth.csv``, as :func:`read_ground_truth` returns it and ``record.extra`` holds it.

    ``soft_label_true``: (8,) float32 in label-space order; ``primary``/``secondary``: emotion names
    (``secondary`` ``None`` for a pure emotion); ``blend_weight``: the secondary's weight;
    ``intensity``: the expression intensity (``None`` in samples without the column); ``head_pose``:
    ``(yaw, pitch, roll)`` in degrees; ``landmarks``: (68, 2) float32 in image pixels.
    """

    part: str
    split: str
    soft_label_true: np.ndarray
    primary: str
    secondary: str | None
    blend_weight: float
    intensity: float | None
    head_pose: tuple[float, float, float]
    landmarks: np.ndarray


def detect_layout(root: str | Path) -> str | None:
    """The AffectNet layout (``"csv"``/``"npy"``) of the synthetic sample in ``root``, ``None`` when ``root``
    holds no synthetic sample; a ``sample_info.json`` that is not JSON is a ``ValueError``."""
    path = Path(root) / SAMPLE_INFO
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or data.get("kind") != SAMPLE_KIND:
        return None
    return str(data.get("layout") or detect_affectnet_layout(root))


def read_sample_info(root: str | Path) -> dict[str, Any]:
    """``sample_info.json`` of a synthetic sample, checked."""
    path = Path(root) / SAMPLE_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected a synthetic sample folder")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != SAMPLE_KIND:
        found = data.get("kind") if isinstance(data, dict) else data
        raise ValueError(f"{path}: kind must be {SAMPLE_KIND!r}, got {found!r}")
    return data


def _parse_row(row: dict[str, str], where: str) -> GroundTruth:
    try:
        soft = np.asarray([float(row[name]) for name in EMOTIONS], dtype=np.float32)
        landmarks = np.array([float(v) for v in row["landmarks"].split(";")], dtype=np.float32)
        truth = GroundTruth(
            part=row["part"],
            split=row["split"],
            soft_label_true=soft,
            primary=row["primary"],
            secondary=row["secondary"] or None,
            blend_weight=float(row["blend_weight"]),
            intensity=float(row["intensity"]) if row.get("intensity") else None,
            head_pose=(float(row["yaw"]), float(row["pitch"]), float(row["roll"])),
            landmarks=landmarks,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: malformed value ({error})") from None
    if not np.isfinite(soft).all() or (soft < 0).any() or (soft > 1).any():
        raise ValueError(f"{where}: soft label values must be in [0, 1], got {soft.tolist()}")
    if landmarks.size != NUM_LANDMARK_VALUES:
        raise ValueError(f"{where}: landmarks must hold 136 numbers (68 x,y pairs), got {landmarks.size}")
    if not np.isfinite(landmarks).all():
        raise ValueError(f"{where}: landmarks must be finite numbers")
    for key in ("primary", "secondary"):
        if truth[key] is not None and truth[key] not in EMOTION_TO_INDEX:
            raise ValueError(f"{where}: {key} {truth[key]!r} is not one of {list(EMOTIONS)}")
    truth["landmarks"] = landmarks.reshape(68, 2)
    return truth


def read_ground_truth(root: str | Path) -> dict[str, GroundTruth]:
    """Parse a synthetic sample's ``ground_truth.csv`` → ``{image_id: GroundTruth}``.

    Raises:
        FileNotFoundError: no ``ground_truth.csv``.
        ValueError: missing columns, a malformed row or a duplicated image id (the message names the
            file and line).
    """
    path = Path(root) / GROUND_TRUTH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a synthetic sample needs its ground truth file")
    out: dict[str, GroundTruth] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(utf8_lines(handle, path))
        missing = [
            c
            for c in GROUND_TRUTH_COLUMNS
            if c not in (reader.fieldnames or []) and c not in OPTIONAL_GROUND_TRUTH_COLUMNS
        ]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(GROUND_TRUTH_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if row["image_id"] in out:
                raise ValueError(f"{where}: duplicate image_id {row['image_id']!r}")
            out[row["image_id"]] = _parse_row(row, where)
    return out


class SyntheticSource(AffectNetSource):
    """The AffectNet part of a synthetic sample, its ground truth joined into ``record.extra``.

    ``sample_info`` holds the sample's ``sample_info.json``.
    """

    kind = "synthetic"

    def __init__(self, root: str | Path, layout: str | None = None, **options: Any) -> None:
        self.sample_info = read_sample_info(root)
        super().__init__(
            root, layout=layout or self.sample_info.get("layout"), extra_by_id=read_ground_truth(root), **options
        )


def open_synthetic(root: str | Path, **options: Any) -> SyntheticSource:
    """The AffectNet part of a synthetic sample (kind ``synthetic``); ``options`` go to
    :class:`~affectnetplus_hf.sources.affectnet.AffectNetSource`."""
    return SyntheticSource(root, **options)


def open_multi_annotated_part(root: str | Path, **options: Any) -> FolderSource:
    """The multi-annotated part of a synthetic sample: the folder source of ``DIR/multi_annotated/``
    (``votes.csv``) with the ground truth joined into ``record.extra``."""
    root = Path(root)
    prefix = f"{MULTI_ANNOTATED_DIR}/"
    truth = read_ground_truth(root)
    extra = {key[len(prefix) :]: value for key, value in truth.items() if key.startswith(prefix)}
    return FolderSource(root / MULTI_ANNOTATED_DIR, extra_by_id=extra, **options)


__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "SAMPLE_KIND",
    "GroundTruth",
    "SyntheticSource",
    "detect_layout",
    "open_multi_annotated_part",
    "open_synthetic",
    "read_ground_truth",
    "read_sample_info",
]
