"""Registry of metadata annotators by name, so the CLI / dataset builder can take ``--metadata synthetic,solvepnp``.

A spec is ``NAME`` or ``NAME:ARGUMENT`` (the argument may itself contain ``:``, e.g. a Windows path); several
specs are joined with ``,``. Built-in names (:func:`available_annotators` says what each fills):
``passthrough``, ``synthetic[:DIR]``, ``csv:PATH``, ``dlib[:hog|cnn|box]``, ``mediapipe[:box]``,
``solvepnp[:all|rigid[:F]]`` (F = focal / max(W, H), default 1), ``deepface[:DETECTOR]``, ``onnx:PATH`` and
``timm:PATH``; :func:`register_annotator` adds more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .base import Annotator
from .demographics import DeepFaceAnnotator, OnnxClassifierAnnotator, TimmClassifierAnnotator
from .headpose import SolvePnPHeadPoseAnnotator
from .landmarks import DlibLandmarksAnnotator, MediaPipeLandmarksAnnotator
from .passthrough import CsvMetadataAnnotator, RecordLandmarksAnnotator, SyntheticGroundTruthAnnotator

AnnotatorFactory = Callable[[str | None], Annotator]

_REGISTRY: dict[str, tuple[AnnotatorFactory, str]] = {}


def register_annotator(name: str, factory: AnnotatorFactory, description: str = "") -> None:
    """Register ``factory(argument_or_None) -> Annotator`` under ``name`` (overrides an existing one)."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"annotator name must be non-empty without ':' or ',', got {name!r}")
    _REGISTRY[name] = (factory, description)


def available_annotators() -> dict[str, str]:
    """``{name: description}`` of every registered annotator."""
    return {name: description for name, (_, description) in sorted(_REGISTRY.items())}


def build_annotator(spec: str) -> Annotator:
    """Build one annotator from ``NAME`` or ``NAME:ARGUMENT``."""
    spec = spec.strip()
    name, _, argument = spec.partition(":")
    if name not in _REGISTRY:
        raise ValueError(f"unknown metadata annotator {name!r} in {spec!r}; available: {sorted(_REGISTRY)}")
    factory, _ = _REGISTRY[name]
    return factory(argument or None)


def build_annotators(specs: str | Sequence[str | Annotator]) -> list[Annotator]:
    """Build a chain from ``"a,b:x"``, a list of specs, or already-built annotators."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    chain = [s if isinstance(s, Annotator) else build_annotator(s) for s in specs]
    if not chain:
        raise ValueError("no metadata annotator given")
    return chain


def _no_argument(name: str, cls: Callable[[], Annotator]) -> AnnotatorFactory:
    def factory(argument: str | None) -> Annotator:
        if argument:
            raise ValueError(f"metadata annotator {name!r} takes no argument, got {argument!r}")
        return cls()

    return factory


def _required(name: str, build: Callable[[str], Annotator]) -> AnnotatorFactory:
    def factory(argument: str | None) -> Annotator:
        if not argument:
            raise ValueError(f"metadata annotator {name!r} needs an argument: '{name}:PATH'")
        return build(argument)

    return factory


def _solvepnp(argument: str | None) -> Annotator:
    points, _, focal = (argument or "all").partition(":")
    try:
        factor = float(focal) if focal else 1.0
    except ValueError as err:
        raise ValueError(f"solvepnp argument must be 'all|rigid[:FOCAL_FACTOR]', got {argument!r}") from err
    return SolvePnPHeadPoseAnnotator(focal_length_factor=factor, points=points)


register_annotator(
    "passthrough",
    _no_argument("passthrough", RecordLandmarksAnnotator),
    "landmarks_68 from FaceRecord.landmarks (AffectNet's own landmarks)",
)
register_annotator(
    "synthetic", SyntheticGroundTruthAnnotator, "landmarks + head pose from the synthetic sample's ground_truth.csv"
)
register_annotator("csv", _required("csv", CsvMetadataAnnotator), "any metadata column from a CSV keyed by image_id")
register_annotator(
    "dlib",
    lambda argument: DlibLandmarksAnnotator(detector=argument or "hog"),
    "68 landmarks with dlib's shape predictor (extra: landmarks-dlib)",
)
register_annotator(
    "mediapipe",
    lambda argument: MediaPipeLandmarksAnnotator(detector=argument or "mesh"),
    "68 landmarks mapped from the MediaPipe face mesh (extra: landmarks-mediapipe)",
)
register_annotator("solvepnp", _solvepnp, "head pose yaw/pitch/roll from landmarks_68 with cv2.solvePnP (extra: pose)")
register_annotator(
    "deepface",
    lambda argument: DeepFaceAnnotator(detector_backend=argument or "skip"),
    "age, gender, ethnicity with deepface (extra: deepface; weights in $DEEPFACE_HOME)",
)
register_annotator(
    "onnx",
    _required("onnx", OnnxClassifierAnnotator),
    "age/gender/ethnicity from a local ONNX classifier + its JSON config (extra: onnx)",
)
register_annotator(
    "timm",
    _required("timm", TimmClassifierAnnotator),
    "age/gender/ethnicity from local timm safetensors weights + its JSON config",
)
