"""The one record type every source reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass
class FaceRecord:
    """One face image of any source.

    Attributes:
        image_id: stable id, unique within a source: the image path relative to the source root,
            with forward slashes (e.g. ``Manually_Annotated_Images/101/a.jpg``, ``train_set/images/7.jpg``,
            ``FER2013Train/fer0000000.png``). For images without a file (``fer2013.csv`` pixels) the
            FER+ image name.
        image_path: absolute path of the image file, or ``None`` when ``image_bytes`` holds it.
        image_bytes: encoded image bytes (PNG/JPEG) when there is no file.
        face_box: ``(x0, y0, x1, y1)`` in image pixels, or ``None`` for the whole image.
        hard_label: label-space index 0–7 (``docs/method.md#label-space``), or ``None`` (AffectNet codes 8–10, no
            label).
        raw_label: the source's own code (AffectNet 0–10), ``None`` when absent.
        votes: ``(8,)`` int64 annotator counts per emotion in label-space order, ``None`` when not annotated so.
        non_emotion_votes: votes for nothing (FER+ unknown/NF, AffectNet 8–10).
        valence, arousal: in [-1, 1], ``None`` when not annotated (AffectNet's -2).
        landmarks: ``(68, 2)`` float32 (x, y) in image pixels, or ``None``.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        source: reader kind (``"affectnet"``, ``"ferplus"``, ``"folder"``, ``"synthetic"``).
        extra: reader-specific fields (e.g. the synthetic sample's ground truth).
    """

    image_id: str
    image_path: str | None = None
    image_bytes: bytes | None = None
    face_box: tuple[float, float, float, float] | None = None
    hard_label: int | None = None
    raw_label: int | None = None
    votes: np.ndarray | None = None
    non_emotion_votes: int = 0
    valence: float | None = None
    arousal: float | None = None
    landmarks: np.ndarray | None = None
    split: str = "train"
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Where the record came from, for error messages."""
        return self.image_path or self.image_id
