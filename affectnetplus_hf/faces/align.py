"""Eye levelling and framing: a detected face → the square crop the network sees
(`docs/method.md#face-framing`)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from affectnetplus_hf.faces.types import DetectedFace, FaceFraming

#: Largest crop side warped at full resolution; a larger face is first reduced by an integer factor
#: (box filter), so the crop is never aliased.
MAX_CROP_SIDE = 512


def eye_angle(face: DetectedFace) -> float:
    """Degrees of the line from the image-left eye to the other (0 without landmarks): rotating the
    image by it levels the eyes."""
    if face.eyes is None:
        return 0.0
    (x0, y0), (x1, y1) = face.eyes
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def crop_geometry(face: DetectedFace, framing: FaceFraming, angle: float) -> tuple[float, float, float]:
    """``(centre x, centre y, side)`` of the crop in image pixels: the box centre moved by the framing
    offset along the face's axes (rotated by ``angle``)."""
    width = face.width
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ox, oy = framing.dx * width, framing.dy * width
    return cx + c * ox - s * oy, cy + s * ox + c * oy, framing.scale * width


def _reduced(image: Image.Image, side: float) -> tuple[Image.Image, int]:
    factor = max(1, math.ceil(side / MAX_CROP_SIDE))
    return (image.reduce(factor) if factor > 1 else image), factor


def aligned_crop(
    image: Image.Image, face: DetectedFace, framing: FaceFraming, level_eyes: bool = True
) -> tuple[Image.Image, float]:
    """``(square RGB crop, rotation angle)``: the image rotated about the crop centre so the eyes are
    level (when the face has landmarks and ``level_eyes``), cut to the framing's square; pixels beyond
    the image border repeat the border (as a training crop has no black margins)."""
    import cv2

    angle = eye_angle(face) if level_eyes else 0.0
    cx, cy, side = crop_geometry(face, framing, angle)
    source, factor = _reduced(image, side)
    cx, cy, side = cx / factor, cy / factor, side / factor
    out = max(1, int(round(side)))
    step = side / out
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rotation = np.array([[c, -s], [s, c]]) * step
    # output pixel centre (u + 0.5) -> input position, in continuous (pixel-edge) coordinates
    offset = np.array([cx, cy]) + rotation @ np.array([0.5 - out / 2, 0.5 - out / 2]) - 0.5
    matrix = np.hstack([rotation, offset[:, None]])
    pixels = cv2.warpAffine(
        np.asarray(source),
        matrix,
        (out, out),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return Image.fromarray(pixels, mode="RGB"), angle


__all__ = ["MAX_CROP_SIDE", "aligned_crop", "crop_geometry", "eye_angle"]
