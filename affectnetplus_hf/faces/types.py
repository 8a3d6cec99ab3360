"""The face stage's values: a detected face, the framing of a crop, a face ready for the network
(`docs/method.md#face-stage`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class DetectedFace:
    """One face found by a detector, in the upright image's pixels.

    Attributes:
        box: ``(x0, y0, x1, y1)``.
        score: the detector's confidence (its own scale: dlib's SVM margin, Haar's level weight, ...).
        landmarks: ``(K, 2)`` float32 points (K = 5 or 68 for dlib, 6 for MediaPipe), or ``None``.
        eyes: ``((x, y) of the eye on the image's left, (x, y) of the other)`` from the landmarks, or ``None``.
    """

    box: Box
    score: float
    landmarks: np.ndarray | None = None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(frozen=True)
class FaceFraming:
    """Where the network's square crop lies relative to a detector's box (`docs/method.md#face-framing`).

    The crop's side is ``scale × box width``; its centre is the box centre moved by ``(dx, dy) × box
    width`` along the face's own axes (after the eyes are levelled).
    """

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def __post_init__(self) -> None:
        if not (0.2 <= float(self.scale) <= 5.0) or not all(abs(float(v)) <= 2.0 for v in (self.dx, self.dy)):
            raise ValueError(
                f"face framing {self.to_dict()} is out of range; expected scale in [0.2, 5] and |dx|, |dy| <= 2"
            )

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "face_framing") -> FaceFraming:
        unknown = set(values) - {"scale", "dx", "dy"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected scale, dx, dy")
        return cls(**{k: float(v) for k, v in values.items()})


@dataclass
class FaceCrop:
    """A detected face made ready for the network: the aligned, framed crop and where it came from.

    Attributes:
        index: position of the face among the image's faces, left to right (0 = leftmost).
        face: the detection.
        image: the aligned square crop (RGB), before the image processor's resize.
        angle: degrees the image was rotated by to level the eyes (0 without landmarks).
    """

    index: int
    face: DetectedFace
    image: Image.Image = field(repr=False)
    angle: float = 0.0


__all__ = ["Box", "DetectedFace", "FaceCrop", "FaceFraming"]
