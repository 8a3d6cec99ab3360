"""The face stage: photos in, aligned and framed face crops out (`docs/method.md#face-stage`).

* :mod:`~affectnetplus_hf.faces.detectors` — the registry of detectors and :func:`create_detector`.
* :mod:`~affectnetplus_hf.faces.align` — eye levelling and the framed square crop.
* :mod:`~affectnetplus_hf.faces.framing` — the framing of training faces and where a model stores it.
* :mod:`~affectnetplus_hf.faces.pipeline` — :class:`FaceFinder` and :func:`photo_faces`, used by every
  entry point.

Importing this package imports neither cv2 nor dlib: a detector imports its library when built.
"""

from affectnetplus_hf.faces.detectors import (
    AUTO,
    DETECTORS,
    available_detectors,
    create_detector,
    resolve_detector_name,
)
from affectnetplus_hf.faces.framing import DEFAULT_FRAMINGS, framing_for, measure_framing
from affectnetplus_hf.faces.pipeline import (
    FACES_CHOICES,
    NO_FACE_CHOICES,
    STATUS_FACE,
    STATUS_NO_FACE,
    STATUS_WHOLE,
    FaceFinder,
    NoFaceError,
    PhotoFace,
    photo_faces,
)
from affectnetplus_hf.faces.types import DetectedFace, FaceCrop, FaceFraming

__all__ = [
    "AUTO",
    "DEFAULT_FRAMINGS",
    "DETECTORS",
    "DetectedFace",
    "FACES_CHOICES",
    "FaceCrop",
    "FaceFinder",
    "FaceFraming",
    "NO_FACE_CHOICES",
    "NoFaceError",
    "PhotoFace",
    "STATUS_FACE",
    "STATUS_NO_FACE",
    "STATUS_WHOLE",
    "available_detectors",
    "create_detector",
    "resolve_detector_name",
    "framing_for",
    "measure_framing",
    "photo_faces",
]
