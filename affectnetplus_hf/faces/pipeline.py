"""Photo → faces ready for the soft-labeler, the one path of ``predict``, ``label --detect-faces``,
``ds.map(detect_faces=True)`` and the web page (`docs/method.md#face-stage`).

:class:`FaceFinder` detects (on the EXIF-upright image, downscaled to at most ``max_side``; with
``retry_angles``, when nothing is found, on turned copies), orders the faces left to right, keeps the largest or
all, and cuts each one's aligned, framed crop.
:func:`photo_faces` adds the image processor and the no-face policy: one :class:`PhotoFace` per face,
or one ``no_face`` / ``whole_image`` entry.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from affectnetplus_hf.faces.align import aligned_crop
from affectnetplus_hf.faces.detectors import AUTO, create_detector, resolve_detector_name
from affectnetplus_hf.faces.framing import framing_for
from affectnetplus_hf.faces.types import Box, DetectedFace, FaceCrop, FaceFraming
from affectnetplus_hf.images import ImageSource, describe_source, load_image

logger = logging.getLogger(__name__)

FACES_CHOICES = ("largest", "all")
NO_FACE_CHOICES = ("skip", "whole", "error")
#: ``status`` of a row: a detected face, an image without one, the whole image labelled on request.
STATUS_FACE, STATUS_NO_FACE, STATUS_WHOLE = "face", "no_face", "whole_image"
#: Longest side detection runs at (larger photos are detected on a downscaled copy).
DEFAULT_MAX_SIDE = 1024
#: Images whose shorter side (after that downscaling) is below this hold no detectable face.
MIN_SIDE = 32
#: In-plane turns (degrees) of the copies searched when the upright image shows no face (a tilted head).
#: Off by default: on set (b) of ``benchmarks/bench_faces.py`` (±20 ° tilts) ``(20, -20)`` raised dlib's
#: recall from 0.73 to 0.78 but halved the photos/s (`docs/method.md#face-stage`).
DEFAULT_RETRY_ANGLES: tuple[float, ...] = ()


class NoFaceError(ValueError):
    """An image without a face where ``no_face="error"`` asks for one."""


class FaceFinder:
    """Detect, order, choose and crop faces (see the module docstring).

    Args:
        detector: a name of :data:`~affectnetplus_hf.faces.detectors.DETECTORS` or ``"auto"``.
        faces: ``"largest"`` (one face per image) or ``"all"`` (left to right).
        framing: the crop framing; default :func:`~affectnetplus_hf.faces.framing.framing_for` of
            ``processor`` for this detector.
        processor: an image processor that may carry ``face_framing``.
        max_side: longest side detection runs at.
        retry_angles: when the image shows no face, copies turned by these angles (e.g. ``(20, -20)``) are
            searched in turn and the faces found mapped back (default ``()``: no retry).
        detector_options: passed to the detector's constructor.

    The detector is built on first use, once per process (the finder pickles without it).
    """

    def __init__(
        self,
        detector: str = AUTO,
        faces: str = "largest",
        framing: FaceFraming | None = None,
        processor: Any = None,
        max_side: int = DEFAULT_MAX_SIDE,
        retry_angles: tuple[float, ...] = DEFAULT_RETRY_ANGLES,
        **detector_options: Any,
    ) -> None:
        if faces not in FACES_CHOICES:
            raise ValueError(f"faces must be one of {', '.join(FACES_CHOICES)}; got {faces!r}")
        self.detector_name = resolve_detector_name(detector)
        self.faces = faces
        self.framing = framing if framing is not None else framing_for(processor, self.detector_name)
        self.max_side = int(max_side)
        self.retry_angles = tuple(float(angle) for angle in retry_angles)
        self.detector_options = detector_options
        self._detector = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}

    @property
    def detector(self):
        if self._detector is None:
            self._detector = create_detector(self.detector_name, **self.detector_options)
        return self._detector

    def detect(self, image: Image.Image) -> list[DetectedFace]:
        """Every face in an upright RGB image, left to right, in its pixels."""
        factor = max(image.size) / self.max_side if max(image.size) > self.max_side else 1.0
        small = (
            image
            if factor == 1.0
            else image.resize(
                (max(1, round(image.size[0] / factor)), max(1, round(image.size[1] / factor))),
                Image.Resampling.BILINEAR,
            )
        )
        if min(small.size) < MIN_SIDE:
            return []
        pixels = np.asarray(small)
        found = self.detector(pixels)
        for angle in self.retry_angles if not found else ():
            found = _turned_detect(self.detector, pixels, angle)
            if found:
                break
        if factor != 1.0:
            found = [_scaled(face, factor) for face in found]
        return sorted(found, key=lambda face: ((face.box[0] + face.box[2]) / 2, face.box[1]))

    def chosen(self, found: list[DetectedFace]) -> list[tuple[int, DetectedFace]]:
        """``(left-to-right index, face)`` of the faces kept: the largest, or all."""
        if self.faces == "all" or not found:
            return list(enumerate(found))
        index = max(range(len(found)), key=lambda i: (found[i].area, -i))
        return [(index, found[index])]

    def crops(self, image: Image.Image) -> list[FaceCrop]:
        """The kept faces of an upright RGB image, each with its aligned, framed crop."""
        result = []
        for index, face in self.chosen(self.detect(image)):
            crop, angle = aligned_crop(image, face, self.framing)
            result.append(FaceCrop(index=index, face=face, image=crop, angle=angle))
        return result


def _turned_detect(detector, pixels: np.ndarray, angle: float) -> list[DetectedFace]:
    """Faces found in a copy of ``pixels`` turned by ``angle`` degrees (counter-clockwise, canvas grown to
    hold it, border repeated), mapped back: landmarks exactly, the box as its centre with its size."""
    import cv2

    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(round(height * sin + width * cos)), int(round(height * cos + width * sin)))
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    turned = cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(matrix)
    return [_mapped(face, back) for face in detector(turned)]


def _mapped(face: DetectedFace, affine: np.ndarray) -> DetectedFace:
    from affectnetplus_hf.faces.detectors import eye_centres

    x0, y0, x1, y1 = face.box
    cx, cy = affine @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
    box = (float(cx - (x1 - x0) / 2), float(cy - (y1 - y0) / 2), float(cx + (x1 - x0) / 2), float(cy + (y1 - y0) / 2))
    if face.landmarks is None:
        return DetectedFace(box=box, score=face.score)
    points = np.asarray(face.landmarks, dtype=np.float64)
    landmarks = (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)
    return DetectedFace(box=box, score=face.score, landmarks=landmarks, eyes=eye_centres(landmarks))


def _scaled(face: DetectedFace, factor: float) -> DetectedFace:
    landmarks = None if face.landmarks is None else face.landmarks * np.float32(factor)
    eyes = None if face.eyes is None else tuple((x * factor, y * factor) for x, y in face.eyes)
    return DetectedFace(box=tuple(v * factor for v in face.box), score=face.score, landmarks=landmarks, eyes=eyes)


@dataclass
class PhotoFace:
    """One row of a photo's result: a face (or the no-face / whole-image entry) with its network input.

    ``pixel_values`` is ``(3, S, S)`` float32, or ``None`` for ``no_face``; ``index``, ``score`` are
    ``None`` unless a face was detected; ``box`` is in the upright image's pixels.
    """

    status: str
    index: int | None = None
    box: Box | None = None
    score: float | None = None
    pixel_values: np.ndarray | None = None
    crop: Image.Image | None = None


def photo_faces(
    finder: FaceFinder,
    processor: Any,
    source: ImageSource,
    location: str | None = None,
    no_face: str = "skip",
    image: Image.Image | None = None,
) -> list[PhotoFace]:
    """The rows of one photo: its kept faces (``status="face"``) or, when none is found, by ``no_face``:
    ``skip`` → one ``no_face`` row without pixels, ``whole`` → the whole upright image (``whole_image``),
    ``error`` → :class:`NoFaceError`. ``image``: the already decoded upright image, if any."""
    if no_face not in NO_FACE_CHOICES:
        raise ValueError(f"no_face must be one of {', '.join(NO_FACE_CHOICES)}; got {no_face!r}")
    where = describe_source(source, location)
    if image is None:
        image = load_image(source, where, upright=True)
    crops = finder.crops(image)
    if crops:
        return [
            PhotoFace(
                STATUS_FACE,
                crop.index,
                _rounded(crop.face.box),
                crop.face.score,
                processor.process_one(crop.image, None, where),
                crop.image,
            )
            for crop in crops
        ]
    if no_face == "error":
        raise NoFaceError(
            f"{where}: no face found by the {finder.detector_name} detector; expected a photo with a "
            "face (no_face='whole' labels the whole image, 'skip' gives a no_face row)"
        )
    logger.info("%s: no face found by the %s detector", where, finder.detector_name)
    if no_face == "whole":
        box = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
        return [PhotoFace(STATUS_WHOLE, None, box, None, processor.process_one(image, None, where), image)]
    return [PhotoFace(STATUS_NO_FACE)]


def _rounded(box: Box) -> Box:
    return tuple(float(round(v, 2)) if math.isfinite(v) else float(v) for v in box)


__all__ = [
    "DEFAULT_MAX_SIDE",
    "DEFAULT_RETRY_ANGLES",
    "FACES_CHOICES",
    "FaceFinder",
    "MIN_SIDE",
    "NO_FACE_CHOICES",
    "NoFaceError",
    "PhotoFace",
    "STATUS_FACE",
    "STATUS_NO_FACE",
    "STATUS_WHOLE",
    "photo_faces",
]
