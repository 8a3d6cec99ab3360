"""Age, gender and ethnicity annotators (paper Sec. 3.5.4, `docs/method.md#metadata`).

The paper used Serengil & Ozpinar's models (deepface) for age and ethnicity and Rothe et al.'s DEX for gender.
No PyPI package ships such weights, and none is downloaded at run time here:

- :class:`DeepFaceAnnotator` (``deepface[:DETECTOR]``) runs ``deepface`` (extra ``deepface``) when its weight
  files are already in ``$DEEPFACE_HOME/.deepface/weights/`` (``DEEPFACE_HOME`` defaults to the home folder); a
  missing file is a ``FileNotFoundError`` naming the exact path, instead of deepface's silent download.
- :class:`OnnxClassifierAnnotator` (``onnx:PATH``, extra ``onnx``) and :class:`TimmClassifierAnnotator`
  (``timm:PATH``, safetensors) run any local classifier for one column, described by a JSON file next to the
  weights (:class:`ClassifierConfig`).

Every annotator crops to ``FaceRecord.face_box`` when there is one. Gender and ethnicity are inferred
*apparent* attributes of a face image, not the person's identity; say so in any card.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..emotions import ETHNICITIES, GENDERS
from ..records import FaceRecord
from .base import AGE_COLUMN, ETHNICITY_COLUMN, GENDER_COLUMN, Annotator

logger = logging.getLogger(__name__)

DEMOGRAPHIC_COLUMNS: tuple[str, str, str] = (AGE_COLUMN, GENDER_COLUMN, ETHNICITY_COLUMN)


def crop_face(image: np.ndarray, face_box: Sequence[float] | None) -> np.ndarray:
    """The ``face_box`` region of an ``(H, W, C)`` image (clipped to it), or the whole image."""
    if face_box is None:
        return image
    h, w = image.shape[:2]
    x0, y0 = max(0, int(np.floor(face_box[0]))), max(0, int(np.floor(face_box[1])))
    x1, y1 = min(w, int(np.ceil(face_box[2]))), min(h, int(np.ceil(face_box[3])))
    if x1 <= x0 or y1 <= y0:
        return image
    return image[y0:y1, x0:x1]


# --------------------------------------------------------------------------------------------
# deepface

#: deepface's race labels -> the paper's six ethnicities.
DEEPFACE_RACE_TO_ETHNICITY: dict[str, str] = {
    "asian": "Asian",
    "indian": "Indian",
    "black": "Black",
    "white": "White",
    "middle eastern": "Middle-Eastern",
    "latino hispanic": "Hispanic",
}
#: deepface action -> weight file stem (deepface >= 0.0.80 names; the suffix depends on its engine).
DEEPFACE_WEIGHT_STEMS: dict[str, str] = {
    "age": "age_model_weights",
    "gender": "gender_model_weights",
    "race": "race_model_single_batch",
}
#: deepface backend engine -> weight file suffix.
DEEPFACE_ENGINE_SUFFIX: dict[str, str] = {"tensorflow": ".h5", "pytorch": ".pth", "onnx": ".onnx"}
_DEEPFACE_ACTION_COLUMN = {"age": AGE_COLUMN, "gender": GENDER_COLUMN, "race": ETHNICITY_COLUMN}


def deepface_home() -> Path:
    """deepface's home folder: ``$DEEPFACE_HOME``, else the user's home (deepface's own rule)."""
    return Path(os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~"))


def deepface_weight_files(
    engine: str = "tensorflow", actions: Sequence[str] = ("age", "gender", "race")
) -> dict[str, Path]:
    """``{action: path}`` of the weight files deepface loads for ``actions`` on ``engine``:
    ``$DEEPFACE_HOME/.deepface/weights/<stem><suffix>``, e.g.
    ``$DEEPFACE_HOME/.deepface/weights/age_model_weights.h5`` for tensorflow."""
    if engine not in DEEPFACE_ENGINE_SUFFIX:
        raise ValueError(f"deepface engine must be one of {sorted(DEEPFACE_ENGINE_SUFFIX)}, got {engine!r}")
    folder = deepface_home() / ".deepface" / "weights"
    out = {}
    for action in actions:
        if action not in DEEPFACE_WEIGHT_STEMS:
            raise ValueError(f"deepface action must be one of {sorted(DEEPFACE_WEIGHT_STEMS)}, got {action!r}")
        out[action] = folder / f"{DEEPFACE_WEIGHT_STEMS[action]}{DEEPFACE_ENGINE_SUFFIX[engine]}"
    return out


def check_deepface_weights(
    engine: str = "tensorflow", actions: Sequence[str] = ("age", "gender", "race")
) -> dict[str, Path]:
    """:func:`deepface_weight_files`, raising ``FileNotFoundError`` naming every missing file."""
    files = deepface_weight_files(engine, actions)
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"deepface weights not found (deepface engine {engine!r}): expected the file(s) {', '.join(missing)}. "
            "Copy them there (or set DEEPFACE_HOME to the folder holding .deepface/weights/); "
            "this package never lets deepface download at run time."
        )
    return files


def _deepface_engine() -> str:
    try:  # deepface >= 0.0.96 picks tensorflow, pytorch or onnxruntime
        from deepface.commons import backend_utils

        return str(backend_utils.get_backend_engine())
    except ImportError:  # older deepface: tensorflow only
        return "tensorflow"


def _check_deepface_haarcascades() -> dict[str, Path]:
    """The Haar cascades deepface's ``opencv`` detector loads: from ``cv2.data`` (opencv 4.x
    wheels) or, failing that, ``$DEEPFACE_HOME/.deepface/weights/`` (where deepface >= 0.0.9x would
    download them; opencv 5 wheels ship none)."""
    import cv2

    try:
        from deepface.models.face_detection import OpenCv
    except ImportError:
        return {}
    names = getattr(OpenCv, "HAARCASCADE_FILES", None) or {
        "haarcascade": "haarcascade_frontalface_default.xml",
        "haarcascade_eye": "haarcascade_eye.xml",
    }
    opencv_data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    folder = deepface_home() / ".deepface" / "weights"
    files, missing = {}, []
    for key, name in names.items():
        candidates = ([Path(opencv_data) / name] if opencv_data else []) + [folder / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            missing.append(str(folder / name))
        else:
            files[key] = found
    if missing:
        raise FileNotFoundError(
            f"deepface's opencv detector needs the file(s) {', '.join(missing)} "
            "(copy them from opencv-python 4.x's cv2/data/ folder), or use detector 'skip'"
        )
    return files


class DeepFaceAnnotator(Annotator):
    """Age, gender and ethnicity with deepface's ``DeepFace.analyze``.

    Args:
        detector_backend: deepface's face detector run inside the (face-box) crop; ``"skip"``
            (default) uses the crop as the face — right for AffectNet's face crops; ``"opencv"``
            uses OpenCV's Haar cascade, shipped with opencv 4.x. Other deepface detectors may
            download their own weights; they are not checked here. With a detector, no face ->
            nulls.
        actions: subset of ``("age", "gender", "race")``.
    """

    name = "deepface"
    columns = DEMOGRAPHIC_COLUMNS
    needs_images = True

    def __init__(self, detector_backend: str = "skip", actions: Sequence[str] = ("age", "gender", "race")) -> None:
        try:
            from deepface import DeepFace
        except ImportError as err:
            raise ImportError(
                "the 'deepface' annotator needs deepface: pip install 'affectnetplus-hf[deepface]'"
            ) from err
        self.engine = _deepface_engine()
        self.weight_files = check_deepface_weights(self.engine, actions)
        if detector_backend == "opencv":
            self.weight_files.update(_check_deepface_haarcascades())
        elif detector_backend != "skip":
            logger.warning(
                "deepface detector %r may try to download its own weights; they are not checked", detector_backend
            )
        self._deepface = DeepFace
        self.detector_backend = detector_backend
        self.actions = tuple(actions)

    def analyze(self, image_rgb: np.ndarray) -> dict[str, Any]:
        """metadata values of the largest face deepface finds in an RGB crop (nulls if none)."""
        bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
        try:
            faces = self._deepface.analyze(
                img_path=bgr,
                actions=self.actions,
                detector_backend=self.detector_backend,
                enforce_detection=self.detector_backend != "skip",
                silent=True,
            )
        except ValueError as err:
            if "could not be detected" in str(err).lower():
                return {}
            raise
        if isinstance(faces, dict):
            faces = [faces]
        if not faces:
            return {}
        face = max(faces, key=lambda f: f.get("region", {}).get("w", 0) * f.get("region", {}).get("h", 0))
        out: dict[str, Any] = {}
        if "age" in self.actions and face.get("age") is not None:
            out[AGE_COLUMN] = float(face["age"])
        if "gender" in self.actions and face.get("dominant_gender") in GENDERS:
            out[GENDER_COLUMN] = face["dominant_gender"]
        if "race" in self.actions and face.get("dominant_race") is not None:
            race = face["dominant_race"]
            if race not in DEEPFACE_RACE_TO_ETHNICITY:
                raise ValueError(
                    f"deepface returned unknown race label {race!r}; expected {sorted(DEEPFACE_RACE_TO_ETHNICITY)}"
                )
            out[ETHNICITY_COLUMN] = DEEPFACE_RACE_TO_ETHNICITY[race]
        return out

    def annotate_batch(self, records: Sequence[FaceRecord], images, known):
        out: dict[str, list[Any]] = {_DEEPFACE_ACTION_COLUMN[a]: [] for a in self.actions}
        for record, image in zip(records, images):
            values = self.analyze(crop_face(image, record.face_box))
            for column in out:
                out[column].append(values.get(column))
        return out


# --------------------------------------------------------------------------------------------
# generic local classifiers


@dataclasses.dataclass
class ClassifierConfig:
    """JSON description of a local face-attribute classifier (the file next to the weights,
    same name with suffix ``.json``: ``age.onnx`` -> ``age.json``).

    Attributes:
        column: ``"age"``, ``"gender"`` or ``"ethnicity"``.
        output: ``"classes"`` (argmax over ``labels``), ``"expectation"`` (age = sum of
            softmax(p) * ``age_values``), or ``"regression"`` (age = the single output).
        labels: class names in output order; each must be a metadata value after ``label_map``.
        label_map: optional renaming of model labels to metadata values (e.g. ``{"male": "Man"}``).
        age_values: ages of the expectation bins (default ``0..K-1``).
        outputs_probabilities: the model already outputs probabilities (no softmax).
        input_size: ``[height, width]``.
        layout: ``"NCHW"`` or ``"NHWC"``.
        channels: ``"RGB"`` or ``"BGR"``.
        scale: pixel multiplier applied to 0..255 values before ``mean``/``std``.
        mean, std: per-channel normalisation after scaling.
        resize: ``"stretch"`` or ``"pad"`` (keep aspect, pad with black, as deepface does).
        model_name, num_classes: the timm architecture (``timm:PATH`` only).

    Example for deepface's ONNX age graph (deepface feeds BGR in [0, 1], 224x224, padded, NHWC)::

        {"column": "age", "output": "expectation", "outputs_probabilities": true,
         "input_size": [224, 224], "layout": "NHWC", "channels": "BGR", "scale": 0.00392156862745098,
         "mean": [0, 0, 0], "std": [1, 1, 1], "resize": "pad"}
    """

    column: str
    output: str = "classes"
    labels: list[str] | None = None
    label_map: dict[str, str] | None = None
    age_values: list[float] | None = None
    outputs_probabilities: bool = False
    input_size: tuple[int, int] = (224, 224)
    layout: str = "NCHW"
    channels: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "stretch"
    model_name: str | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        where = "classifier config"
        if self.column not in DEMOGRAPHIC_COLUMNS:
            raise ValueError(f"{where}: column must be one of {list(DEMOGRAPHIC_COLUMNS)}, got {self.column!r}")
        if self.output not in ("classes", "expectation", "regression"):
            raise ValueError(f"{where}: output must be 'classes', 'expectation' or 'regression', got {self.output!r}")
        if self.column == AGE_COLUMN and self.output == "classes":
            raise ValueError(f"{where}: age needs output 'expectation' or 'regression'")
        if self.column != AGE_COLUMN and self.output != "classes":
            raise ValueError(f"{where}: {self.column} needs output 'classes'")
        if self.output == "classes":
            if not self.labels:
                raise ValueError(f"{where}: output 'classes' needs 'labels'")
            allowed = GENDERS if self.column == GENDER_COLUMN else ETHNICITIES
            mapped = [(self.label_map or {}).get(label, label) for label in self.labels]
            bad = [m for m in mapped if m not in allowed]
            if bad:
                raise ValueError(
                    f"{where}: labels {bad} are not {self.column} values {list(allowed)}; add a label_map"
                )
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"{where}: layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"{where}: channels must be 'RGB' or 'BGR', got {self.channels!r}")
        if self.resize not in ("stretch", "pad"):
            raise ValueError(f"{where}: resize must be 'stretch' or 'pad', got {self.resize!r}")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"{where}: mean and std must have 3 values, std > 0")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ClassifierConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"classifier config not found: expected the file {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    def preprocess(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> the model's float32 input batch."""
        from PIL import Image

        h, w = self.input_size
        batch = []
        for face in faces:
            image = Image.fromarray(np.ascontiguousarray(face))
            if self.resize == "stretch":
                array = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32)
            else:
                factor = min(h / image.height, w / image.width)
                nw, nh = max(1, int(image.width * factor)), max(1, int(image.height * factor))
                array = np.zeros((h, w, 3), dtype=np.float32)
                top, left = (h - nh) // 2, (w - nw) // 2
                array[top : top + nh, left : left + nw] = np.asarray(
                    image.resize((nw, nh), Image.BILINEAR), dtype=np.float32
                )
            if self.channels == "BGR":
                array = array[:, :, ::-1]
            array = (array * self.scale - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
            batch.append(array)
        out = np.stack(batch).astype(np.float32)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2) if self.layout == "NCHW" else out)

    def decode(self, outputs: np.ndarray) -> list[Any]:
        """Model outputs ``(N, K)`` -> metadata values."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if outputs.ndim == 1:
            outputs = outputs[:, None]
        if not np.all(np.isfinite(outputs)):
            raise ValueError(f"classifier for {self.column} produced NaN/inf outputs")
        if self.output == "regression":
            if outputs.shape[1] != 1:
                raise ValueError(f"regression output must have 1 value per face, got {outputs.shape[1]}")
            return [max(0.0, float(v)) for v in outputs[:, 0]]
        if self.output == "expectation":
            probs = outputs if self.outputs_probabilities else _softmax(outputs)
            probs = probs / probs.sum(axis=1, keepdims=True)
            ages = np.asarray(
                self.age_values if self.age_values is not None else np.arange(outputs.shape[1]), np.float64
            )
            if ages.shape != (outputs.shape[1],):
                raise ValueError(f"age_values has {ages.size} values, the model outputs {outputs.shape[1]}")
            return [float(v) for v in probs @ ages]
        if outputs.shape[1] != len(self.labels or []):
            raise ValueError(
                f"classifier outputs {outputs.shape[1]} classes, config has {len(self.labels or [])} labels"
            )
        mapping = self.label_map or {}
        return [mapping.get(self.labels[i], self.labels[i]) for i in outputs.argmax(axis=1)]


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def classifier_config_path(weights_path: str | os.PathLike) -> Path:
    """The JSON config expected next to a weights file (same name, suffix ``.json``)."""
    return Path(weights_path).with_suffix(".json")


class _ClassifierAnnotator(Annotator):
    needs_images = True

    def __init__(self, weights_path: str | os.PathLike, config: ClassifierConfig | None = None) -> None:
        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise FileNotFoundError(f"classifier weights not found: expected the file {self.weights_path}")
        self.config = config or ClassifierConfig.from_json(classifier_config_path(self.weights_path))
        self.columns = (self.config.column,)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def annotate_batch(self, records: Sequence[FaceRecord], images, known):
        faces = [crop_face(image, record.face_box) for record, image in zip(records, images)]
        outputs = self._run(self.config.preprocess(faces))
        if len(outputs) != len(records):
            raise ValueError(f"{self.weights_path}: model returned {len(outputs)} rows for {len(records)} faces")
        return {self.config.column: self.config.decode(outputs)}


class OnnxClassifierAnnotator(_ClassifierAnnotator):
    """One of age/gender/ethnicity from a local ONNX graph (first input, first output) run with
    onnxruntime on CPU (extra ``onnx``), configured by :class:`ClassifierConfig` JSON."""

    name = "onnx"

    def __init__(self, weights_path: str | os.PathLike, config: ClassifierConfig | None = None) -> None:
        super().__init__(weights_path, config)
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("the 'onnx' annotator needs onnxruntime: pip install 'affectnetplus-hf[onnx]'") from err
        self.session = ort.InferenceSession(str(self.weights_path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])


class TimmClassifierAnnotator(_ClassifierAnnotator):
    """One of age/gender/ethnicity from local timm weights (``.safetensors``), configured by
    :class:`ClassifierConfig` JSON with ``model_name`` and ``num_classes``; CPU, eval mode."""

    name = "timm"

    def __init__(self, weights_path: str | os.PathLike, config: ClassifierConfig | None = None) -> None:
        super().__init__(weights_path, config)
        import timm
        import torch
        from safetensors.torch import load_file

        cfg = self.config
        if not cfg.model_name or not cfg.num_classes:
            raise ValueError(f"{classifier_config_path(self.weights_path)}: 'timm' needs model_name and num_classes")
        self.model = timm.create_model(cfg.model_name, pretrained=False, num_classes=int(cfg.num_classes))
        state = load_file(str(self.weights_path))
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"{self.weights_path}: weights do not fit {cfg.model_name} with {cfg.num_classes} classes ({err})"
            ) from err
        self.model.eval()
        self._torch = torch

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.config.layout != "NCHW":
            raise ValueError("timm models take layout NCHW")
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(batch)).float().numpy()
