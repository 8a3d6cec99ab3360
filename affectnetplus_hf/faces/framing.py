"""The framing of training faces, measured with a detector, and where a model keeps it
(`docs/method.md#face-framing`).

A model's image processor may carry ``face_framing``: ``{detector name: {"scale", "dx", "dy"}}``
(saved in ``preprocessor_config.json``). A processor without it (every model saved before the face
stage) uses :data:`DEFAULT_FRAMINGS`, measured on FER+ training faces by :func:`measure_framing`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from affectnetplus_hf.faces.types import FaceFraming

logger = logging.getLogger(__name__)

#: Framing of FER+ training faces per detector (``benchmarks/bench_faces.py --measure-framing``: 1,000
#: seeded FER2013Train faces, upscaled ×3–×5, 25 % border repeated; dlib found 777, haar 750). The
#: MediaPipe entry is not measured (mediapipe does not install next to numpy 2): 1.2 × its box.
DEFAULT_FRAMINGS: dict[str, FaceFraming] = {
    "dlib": FaceFraming(scale=1.194, dx=0.006, dy=-0.075),
    "haar": FaceFraming(scale=1.03, dx=-0.002, dy=0.003),
    "mediapipe": FaceFraming(scale=1.2, dx=0.0, dy=0.0),
}
#: Border added around a training face before detection (fraction of its side, edge pixels repeated):
#: tight crops cut chin and forehead, and a detector needs its window to fit.
MEASURE_PAD = 0.25


def framing_for(processor: Any, detector: str) -> FaceFraming:
    """The framing ``processor`` (an image processor, or ``None``) stores for ``detector``, else the default."""
    stored = getattr(processor, "face_framing", None) or {}
    if detector in stored:
        value = stored[detector]
        return (
            value
            if isinstance(value, FaceFraming)
            else FaceFraming.from_dict(dict(value), f"face_framing[{detector!r}]")
        )
    if detector in DEFAULT_FRAMINGS:
        return DEFAULT_FRAMINGS[detector]
    raise ValueError(f"no face framing for detector {detector!r}; expected one of {sorted(DEFAULT_FRAMINGS)}")


def _padded(face: Image.Image, scale: float, pad: float) -> tuple[np.ndarray, int, int]:
    """The face upscaled to ``scale`` × its side (bicubic), with a repeated border of ``pad`` × the new side."""
    import cv2

    side = max(8, int(round(face.size[0] * scale)))
    big = np.asarray(face.convert("RGB").resize((side, side), Image.Resampling.BICUBIC))
    border = int(round(pad * side))
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE), border, side


def measure_framing(
    detector,
    faces: Iterable[Image.Image],
    seed: int = 0,
    upscale: tuple[float, float] = (3.0, 5.0),
    pad: float = MEASURE_PAD,
) -> tuple[FaceFraming, dict[str, float]]:
    """The framing of training face crops relative to ``detector``'s boxes.

    Each face is upscaled by a seeded random factor in ``upscale`` (so the detector's box-size steps
    average out), given a repeated border, and detected; the largest detection's box against the crop
    gives ``scale = crop side / box width`` and the offset of the crop centre in box widths. Returns the
    medians and ``{"faces", "found"}`` counts.
    """
    rng = np.random.default_rng(seed)
    ratios = []
    n = 0
    for face in faces:
        n += 1
        array, border, side = _padded(face, float(rng.uniform(*upscale)), pad)
        found = detector(array)
        if not found:
            continue
        box = max(found, key=lambda f: f.area).box
        width = box[2] - box[0]
        centre = border + side / 2
        ratios.append(
            (side / width, (centre - (box[0] + box[2]) / 2) / width, (centre - (box[1] + box[3]) / 2) / width)
        )
    if not ratios:
        raise ValueError(f"the detector found no face in any of the {n} training faces; cannot measure a framing")
    scale, dx, dy = (float(np.round(v, 3)) for v in np.median(np.asarray(ratios), axis=0))
    logger.info("framing over %d of %d faces: scale %.3f, dx %.3f, dy %.3f", len(ratios), n, scale, dx, dy)
    return FaceFraming(scale=scale, dx=dx, dy=dy), {"faces": n, "found": len(ratios)}


def framing_config(framings: dict[str, FaceFraming]) -> dict[str, dict[str, float]]:
    """``{detector: framing}`` as stored in a processor's ``face_framing`` (plain JSON values)."""
    return {name: framing.to_dict() for name, framing in framings.items()}


__all__ = ["DEFAULT_FRAMINGS", "MEASURE_PAD", "framing_config", "framing_for", "measure_framing"]
