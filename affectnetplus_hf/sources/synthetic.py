"""The embedded synthetic FER sample (DESIGN "The embedded sample", issue 3 item 5).

AffectNet cannot ship, so the package renders its own small facial-expression data set. Faces are
drawn procedurally (PIL polygons/ellipses/lines on a 2x supersampled canvas) from **action-unit
intensities** of the 21 AUs of SPEC §2: brow raise/lower (AU1/2/4), lid widen/tighten (AU5/7), cheek
raise (AU6), nose wrinkle (AU9), upper-lip raise (AU10), nasolabial deepening (AU11), lip-corner
pull/depress (AU12/15, one-sided for contempt), dimple (AU14, one-sided), lower-lip depress (AU16),
chin raise (AU17), lip stretch/funnel/tighten/press (AU20/22/23/24), lips part (AU25), jaw drop (AU26)
and mouth stretch (AU27). Each image is one emotion or a blend of two with known weights; its AU
intensities are the weighted sum of the two emotions' AU intensity vectors
(:data:`EMOTION_AU_INTENSITY`), so a blend *looks* like a blend and the blend weights are a
**ground-truth soft label**; a face drawn at less than full intensity is, AU for AU, a blend of its
expression with Neutral (whose AU vector is empty), and its soft label gives Neutral that share
(:func:`soft_label_of`). The renderer also knows the **68 landmarks** (iBUG order: jaw 0-16,
brows 17-26, nose 27-35, eyes 36-47, mouth 48-67) and the **head pose** (yaw, pitch, roll) it drew.
Nuisance variation: identity (face shape, feature sizes, hair), skin tone, head pose, scale, position,
lighting, background clutter, blur and noise.

Simulated annotators (:func:`simulate_votes`) vote from the ground-truth soft label, or, at their own
error rate, from a confusion model that favours emotions sharing AUs with the primary one (SPEC §2
overlap) and Neutral; the multi-annotated part stores every annotator's vote, the AffectNet part one
annotator's vote as the hard label.

:func:`write_sample` writes the sample in AffectNet's own on-disk layouts (``csv``: the
``Manually_Annotated_file_lists`` CSVs + ``Manually_Annotated_Images``; ``npy``: ``train_set`` /
``val_set`` with ``images/N.jpg`` and ``annotations/N_{exp,val,aro,lnd}.npy``) plus a
``multi_annotated/`` part in the folder reader's format, ``ground_truth.csv``, ``sample_info.json`` and a
contact sheet ``sample_grid.png``. Same seed, same arguments => byte-identical files: every image is
rendered from its own ``numpy.random.Generator`` seeded with ``(seed, part, index)``.

Choices of this module (documented deviations):

* Rendering intensities follow SPEC §2 Table 2 (every AU of an emotion has a positive intensity in
  its vector) with two exceptions chosen for a clearly visible, distinct pattern: Anger is drawn as
  the *pressed-lips* anger (AU25/AU26 at 0, AU23/24 strong), and AU6 of Sad is weak (0.2).
  Disgust's AU9 also lowers the inner brows a little (procerus), as in real faces. Intensities are
  exaggerated on purpose (some above 1, e.g. Contempt's one-sided AU12) so that a small CNN can learn
  every emotion from ~1,000 images in a few CPU minutes.
* Contempt's AU12/AU14 act on one side only, the side drawn at random per image.
* Each image draws an expression intensity in [0.7, 1.1] (scaling its AU vector), a x0.85-1.15 jitter
  per AU and a little idiosyncratic activity (up to 0.12 on ~15% of the AUs). Below
  :data:`FULL_EXPRESSION_INTENSITY` (1.0) the missing share goes to Neutral in the ground truth
  (sample version 3; before, a weak pure face and the same face drawn as a blend with Neutral had
  different ground truths). With it the sample's simulated annotators agree pairwise on about 58% of
  the multi-annotated faces (AffectNet reports 60.7% for two annotators; the paper "usually less than
  68%"), and one annotator's hard label names the largest ground-truth emotion on about 73% of faces.
* Head pose: yaw in [-18, 18], pitch in [-12, 12], roll in [-8, 8] degrees (``yaw > 0`` turns the
  face towards the image's right, ``pitch > 0`` up, ``roll > 0`` clockwise); orthographic projection
  of a face surface with depth.
* All multi-annotated images are in split ``"train"``: test-MAS is selected from them by SPEC §3.
* Framing: the AffectNet part shows a face in a scene (its face box in the annotations); the
  multi-annotated part holds face crops, as FER+ does — the face box (forehead to chin) fills the image,
  stretched exactly as the image processor's crop-and-resize stretches an AffectNet-part face box — so a
  soft-labeler trained on the multi-annotated part sees faces framed as it will at labelling time.
* Blends: 30% of the images by default, the secondary drawn with weight ``overlap + 1`` (SPEC §2
  overlap) and blend weight in [0.2, 0.45] (rounded to 4 decimals so the soft label is exact).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from affectnetplus_hf.emotions import (
    ACTION_UNITS,
    EMOTION_TO_INDEX,
    EMOTIONS,
    NUM_ACTION_UNITS,
    NUM_EMOTIONS,
    au_overlap,
)

logger = logging.getLogger(__name__)

SAMPLE_KIND = "affectnetplus-synthetic-sample"
SAMPLE_VERSION = 3  # 2: the multi-annotated part holds face crops; 3: weak expressions' Neutral share

#: Defaults of :func:`write_sample` (a demo-sized sample: whole pipeline in a few CPU minutes).
DEFAULT_N_TRAIN = 800
DEFAULT_N_VAL = 200
DEFAULT_N_MAS = 1200
DEFAULT_N_ANNOTATORS = 5
DEFAULT_IMAGE_SIZE = 112
DEFAULT_BLEND_FRACTION = 0.3
DEFAULT_JPEG_QUALITY = 92
#: Share of AffectNet-part images whose valence/arousal are written as -2 ("not annotated").
DEFAULT_VA_MISSING_FRACTION = 0.05

AFFECTNET_CSV_COLUMNS: tuple[str, ...] = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
    "expression", "valence", "arousal",
)
VOTES_COLUMNS: tuple[str, ...] = ("image", "split", *EMOTIONS)
ANNOTATIONS_COLUMNS: tuple[str, ...] = ("image", "annotator", "label")
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "image_id", "part", "split", *EMOTIONS, "primary", "secondary", "blend_weight", "intensity", "yaw",
    "pitch", "roll", "landmarks",
)
#: Columns a reader accepts as missing (``intensity``: samples of version 2 and older).
OPTIONAL_GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("intensity",)

#: Rendering AU intensities per emotion (1.0 = a full, exaggerated action). Keys are SPEC §2 AUs.
#: Every Table 2 AU of an emotion is present except Anger's AU25/26 (pressed-lips anger, see module doc).
EMOTION_AU_INTENSITY: dict[str, dict[int, float]] = {
    "Neutral": {},
    "Happy": {6: 1.0, 12: 1.0, 25: 0.9},
    "Sad": {1: 1.2, 4: 0.55, 6: 0.2, 11: 0.6, 15: 1.3, 17: 1.0},
    "Surprise": {1: 1.0, 2: 1.0, 5: 1.0, 26: 1.0, 27: 0.7},
    "Fear": {1: 1.0, 2: 0.5, 4: 0.8, 5: 1.0, 20: 1.0, 25: 1.0, 26: 0.35, 27: 0.15},
    "Disgust": {9: 1.2, 10: 1.1, 16: 0.6, 17: 0.3, 25: 0.4, 27: 0.1},
    "Anger": {4: 1.1, 5: 0.5, 7: 1.0, 10: 0.2, 17: 0.7, 22: 0.2, 23: 1.0, 24: 1.0},
    "Contempt": {12: 1.9, 14: 1.6},
}
#: AUs that Contempt applies to one side of the face only.
UNILATERAL_CONTEMPT_AUS: tuple[int, ...] = (12, 14)

#: Typical (valence, arousal) per emotion, in [-1, 1] (circumplex model), scaled by the intensity.
EMOTION_VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0), "Happy": (0.7, 0.35), "Sad": (-0.6, -0.25), "Surprise": (0.2, 0.7),
    "Fear": (-0.55, 0.7), "Disgust": (-0.65, 0.35), "Anger": (-0.6, 0.6), "Contempt": (-0.45, 0.25),
}

#: Expression intensity at which a face shows its emotions' full AU vectors (:data:`EMOTION_AU_INTENSITY`);
#: a weaker face is, AU for AU, a blend with Neutral, and its ground truth says so (:func:`soft_label_of`).
FULL_EXPRESSION_INTENSITY = 1.0

#: Primary-emotion frequencies (mildly imbalanced, like real FER data; every emotion well represented).
DEFAULT_CLASS_WEIGHTS: tuple[float, ...] = (1.15, 1.25, 1.0, 1.0, 0.9, 0.9, 1.0, 0.85)

_AU = {au: i for i, au in enumerate(ACTION_UNITS)}

Part = Literal["affectnet", "multi_annotated"]


def emotion_au_matrix() -> np.ndarray:
    """The (8, 21) rendering AU intensities of :data:`EMOTION_AU_INTENSITY` in SPEC order."""
    out = np.zeros((NUM_EMOTIONS, NUM_ACTION_UNITS), dtype=np.float64)
    for e, name in enumerate(EMOTIONS):
        for au, value in EMOTION_AU_INTENSITY[name].items():
            out[e, _AU[au]] = value
    return out


# ----------------------------------------------------------------------------------------------------
# Parameters and ground truth
# ----------------------------------------------------------------------------------------------------


@dataclass
class FaceParams:
    """Everything :func:`render_face` needs to draw one face (canonical units: half face width = 1).

    Attributes:
        aus: (2, 21) AU intensities for the face's right side (row 0, image left) and left side
            (row 1, image right); symmetric actions have equal rows.
        yaw, pitch, roll: head pose in degrees. ``yaw > 0`` turns the face towards the image's right,
            ``pitch > 0`` tilts it up, ``roll > 0`` rotates it clockwise in the image.
        face_height: height of the face box (forehead to chin) as a fraction of the image side.
        center: face centre (x, y) as fractions of the image side.
        identity: face-shape parameters (see :func:`draw_identity`).
        skin, hair, lips, iris, clothes: RGB colours.
        background: background description (see :func:`draw_face_params`).
        light_gain, light_slope, light_angle, color_cast: multiplicative lighting.
        blur: Gaussian blur radius in output pixels (0 = none); noise: Gaussian noise sigma (0-255 scale).
    """

    aus: np.ndarray
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    face_height: float = 0.72
    center: tuple[float, float] = (0.5, 0.5)
    identity: dict[str, float] = field(default_factory=dict)
    skin: tuple[int, int, int] = (205, 160, 130)
    hair: tuple[int, int, int] = (60, 40, 25)
    lips: tuple[int, int, int] = (170, 80, 80)
    iris: tuple[int, int, int] = (70, 50, 30)
    clothes: tuple[int, int, int] = (60, 80, 120)
    background: dict[str, Any] = field(default_factory=dict)
    light_gain: float = 1.0
    light_slope: float = 0.0
    light_angle: float = 0.0
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: float = 0.0
    noise: float = 0.0


@dataclass
class SampleSpec:
    """Ground truth of one sample image (the row of ``ground_truth.csv`` plus what the renderer knows).

    ``soft_label`` is the blend (``1 - blend_weight`` on ``primary`` and ``blend_weight`` on
    ``secondary``; ``secondary`` is ``None`` and ``blend_weight`` 0 for a pure emotion) scaled by
    ``min(1, intensity)``, the rest on Neutral (:func:`soft_label_of`).
    ``face_box`` is ``(x, y, w, h)`` in image pixels (AffectNet's convention); ``landmarks`` are the
    (68, 2) iBUG points in image pixels; ``au_intensity`` the (21,) per-AU maximum over both sides.
    """

    image_id: str
    part: str
    split: str
    soft_label: np.ndarray
    primary: int
    secondary: int | None
    blend_weight: float
    intensity: float
    yaw: float
    pitch: float
    roll: float
    landmarks: np.ndarray
    face_box: tuple[int, int, int, int]
    au_intensity: np.ndarray
    votes: np.ndarray
    annotators: list[str]
    hard_label: int
    valence: float | None
    arousal: float | None
    contempt_side: str | None = None
    labels: list[int] = field(default_factory=list)

    @property
    def primary_name(self) -> str:
        return EMOTIONS[self.primary]

    @property
    def secondary_name(self) -> str | None:
        return None if self.secondary is None else EMOTIONS[self.secondary]


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_identity(rng: np.random.Generator) -> dict[str, float]:
    """Face-shape parameters of one synthetic person (canonical units: half face width = 1)."""
    return {
        "face_w": _uniform(rng, 0.9, 1.05),
        "jaw_top": _uniform(rng, -0.12, -0.02),
        "chin_y": _uniform(rng, 1.15, 1.3),
        "head_top": _uniform(rng, 1.15, 1.3),
        "chin_narrow": _uniform(rng, 0.15, 0.35),
        "eye_sep": _uniform(rng, 0.38, 0.46),
        "eye_w": _uniform(rng, 0.19, 0.23),
        "eye_h": _uniform(rng, 0.075, 0.095),
        "eye_y": _uniform(rng, -0.26, -0.18),
        "eye_tilt": _uniform(rng, -0.02, 0.03),
        "iris_r": _uniform(rng, 0.072, 0.085),
        "brow_gap": _uniform(rng, 0.17, 0.22),
        "brow_thick": _uniform(rng, 0.075, 0.1),
        "brow_arch": _uniform(rng, 0.02, 0.06),
        "brow_inner": _uniform(rng, 0.1, 0.15),
        "nose_tip": _uniform(rng, 0.22, 0.32),
        "nose_w": _uniform(rng, 0.15, 0.2),
        "mouth_y": _uniform(rng, 0.68, 0.76),
        "mouth_w": _uniform(rng, 0.36, 0.42),
        "lip_up": _uniform(rng, 0.055, 0.07),
        "lip_lo": _uniform(rng, 0.065, 0.085),
        "hair_style": float(rng.integers(0, 4)),
        "hairline": _uniform(rng, -0.95, -0.7),
        "ear_y": _uniform(rng, -0.1, 0.05),
    }


def _skin_tone(rng: np.random.Generator) -> tuple[int, int, int]:
    """A skin colour from very light to very dark (a 1-D tone axis plus small hue jitter)."""
    t = float(rng.uniform(0.0, 1.0))
    light = np.array([240.0, 205.0, 180.0])
    mid = np.array([198.0, 145.0, 105.0])
    dark = np.array([95.0, 62.0, 45.0])
    base = light + (mid - light) * (t / 0.5) if t < 0.5 else mid + (dark - mid) * ((t - 0.5) / 0.5)
    base = base * rng.uniform(0.95, 1.05, size=3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def _lip_color(rng: np.random.Generator, skin: tuple[int, int, int]) -> tuple[int, int, int]:
    """Lips clearly darker and redder than the skin (the mouth shape carries most expressions)."""
    red = np.array([150.0, 45.0, 55.0]) * rng.uniform(0.8, 1.1, size=3)
    lips = 0.45 * np.asarray(skin, dtype=np.float64) + 0.55 * red
    return tuple(int(v) for v in np.clip(lips * rng.uniform(0.75, 0.95), 0, 255))


def _hair_color(rng: np.random.Generator) -> tuple[int, int, int]:
    palette = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 40], [170, 130, 80], [140, 60, 30], [150, 150, 150]])
    c = palette[int(rng.choice(len(palette), p=[0.35, 0.25, 0.15, 0.1, 0.08, 0.07]))] * rng.uniform(0.85, 1.15)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _muted_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A background colour of moderate saturation."""
    grey = float(rng.uniform(50, 210))
    tint = rng.uniform(-45, 45, size=3)
    return tuple(int(v) for v in np.clip(grey + tint, 0, 255))


def _random_color(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def blend_aus(
    primary: int,
    secondary: int | None,
    blend_weight: float,
    intensity: float = 1.0,
    contempt_side: str = "right",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(2, 21) AU intensities of a blend: ``(1-w) * AU(primary) + w * AU(secondary)``, times intensity.

    Contempt's unilateral AUs go on ``contempt_side`` (the face's ``"right"`` = image left, or
    ``"left"``). With ``rng``, each AU gets a small multiplicative jitter (x0.85-1.15) and a little
    idiosyncratic activity (up to 0.12) so that no two faces of an emotion are identical.
    """
    matrix = emotion_au_matrix()
    sided = np.zeros((2, NUM_ACTION_UNITS))
    parts = [(primary, 1.0 - blend_weight)]
    if secondary is not None and blend_weight > 0:
        parts.append((secondary, blend_weight))
    for emotion, weight in parts:
        vec = np.stack([matrix[emotion], matrix[emotion]])
        if EMOTIONS[emotion] == "Contempt":
            off = 1 if contempt_side == "right" else 0  # the side without the action
            for au in UNILATERAL_CONTEMPT_AUS:
                vec[off, _AU[au]] = 0.0
        sided += weight * vec
    sided *= intensity
    if rng is not None:
        sided *= rng.uniform(0.85, 1.15, size=(1, NUM_ACTION_UNITS))
        idio = rng.uniform(0.0, 0.12, size=NUM_ACTION_UNITS) * (rng.random(NUM_ACTION_UNITS) < 0.15)
        sided += idio[None, :]
    return sided


def draw_face_params(
    rng: np.random.Generator,
    aus: np.ndarray,
    pose_range: tuple[float, float, float] = (18.0, 12.0, 8.0),
) -> FaceParams:
    """Draw identity, pose and nuisance parameters around the given (2, 21) AU intensities."""
    yaw = _uniform(rng, -pose_range[0], pose_range[0])
    pitch = _uniform(rng, -pose_range[1], pose_range[1])
    roll = _uniform(rng, -pose_range[2], pose_range[2])
    background = {
        "top": _muted_color(rng),
        "bottom": _muted_color(rng),
        "shapes": [
            {
                "kind": int(rng.integers(0, 2)),
                "box": [float(v) for v in rng.uniform(-0.2, 1.2, size=4)],
                "color": _muted_color(rng),
            }
            for _ in range(int(rng.integers(0, 3)))
        ],
    }
    skin = _skin_tone(rng)
    return FaceParams(
        aus=np.asarray(aus, dtype=np.float64),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        face_height=_uniform(rng, 0.74, 0.88),
        center=(_uniform(rng, 0.46, 0.54), _uniform(rng, 0.47, 0.55)),
        identity=draw_identity(rng),
        skin=skin,
        hair=_hair_color(rng),
        lips=_lip_color(rng, skin),
        iris=tuple(int(v) for v in np.array([[70, 45, 25], [40, 30, 20], [60, 100, 140], [80, 110, 60]])[int(rng.integers(0, 4))]),
        clothes=_random_color(rng),
        background=background,
        light_gain=_uniform(rng, 0.85, 1.12),
        light_slope=_uniform(rng, 0.0, 0.3),
        light_angle=_uniform(rng, 0.0, 2 * math.pi),
        color_cast=tuple(float(v) for v in rng.uniform(0.92, 1.08, size=3)),
        blur=_uniform(rng, 0.3, 0.8) if rng.random() < 0.3 else 0.0,
        noise=_uniform(rng, 0.0, 5.0),
    )


# ----------------------------------------------------------------------------------------------------
# Geometry: canonical face, AU deformations, projection
# ----------------------------------------------------------------------------------------------------


def _a(aus: np.ndarray, au: int, side: int | None = None) -> float:
    """Intensity of ``au`` on one side (0 = face right = image left, 1 = left), or the mean of both."""
    col = _AU[au]
    if side is None:
        return float(0.5 * (aus[0, col] + aus[1, col]))
    return float(aus[side, col])


class _Face:
    """Canonical 2-D face (x right in the image, y down, half face width = 1) with depth."""

    def __init__(self, params: FaceParams):
        self.p = params
        self.idn = params.identity
        self.aus = params.aus
        self._memo: dict[tuple[str, int], np.ndarray] = {}

    # -- depth ---------------------------------------------------------------------------------
    def depth(self, xy: np.ndarray) -> np.ndarray:
        idn = self.idn
        x, y = xy[..., 0] / idn["face_w"], (xy[..., 1] - 0.1) / 1.45
        base = 0.75 * np.sqrt(np.clip(1.0 - 0.85 * x**2 - 0.6 * y**2, 0.0, None))
        ramp = np.clip((xy[..., 1] - idn["eye_y"]) / (idn["nose_tip"] - idn["eye_y"]), 0, 1)
        after = np.exp(-np.clip(xy[..., 1] - idn["nose_tip"], 0, None) / 0.06)
        nose = 0.35 * np.exp(-((xy[..., 0] / 0.13) ** 2)) * ramp * after
        return base + nose

    # -- landmarks -----------------------------------------------------------------------------
    def jaw_drop(self) -> float:
        return 0.13 * _a(self.aus, 26) + 0.17 * _a(self.aus, 27) + 0.015 * _a(self.aus, 25)

    def jaw(self, n: int = 17) -> np.ndarray:
        key = ("jaw", n)
        if key not in self._memo:
            self._memo[key] = self._jaw(n)
        return self._memo[key]

    def _jaw(self, n: int) -> np.ndarray:
        idn = self.idn
        t = _grid(0.0, math.pi, n)
        top, chin = idn["jaw_top"], idn["chin_y"] + 0.8 * self.jaw_drop() - 0.05 * _a(self.aus, 17)
        s = np.sin(t)
        x = -idn["face_w"] * np.cos(t) * (1.0 - idn["chin_narrow"] * s**3)
        y = top + (chin - top) * s ** 0.9
        return np.stack([x, y], axis=-1)

    def forehead(self, n: int = 15) -> np.ndarray:
        key = ("forehead", n)
        if key not in self._memo:
            self._memo[key] = self._forehead(n)
        return self._memo[key]

    def _forehead(self, n: int) -> np.ndarray:
        idn = self.idn
        t = _grid(0.0, math.pi, n)
        x = idn["face_w"] * np.cos(t)
        y = idn["jaw_top"] - (idn["head_top"] + idn["jaw_top"]) * np.sin(t) ** 0.8
        return np.stack([x, y], axis=-1)

    def brow(self, side: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Brow centre line from outer (u=0) to inner (u=1) end, and its thickness per point."""
        idn, aus = self.idn, self.aus
        sign = -1.0 if side == 0 else 1.0
        u = _grid(0.0, 1.0, n)
        outer = idn["eye_sep"] + idn["eye_w"] * 1.3
        inner = idn["brow_inner"]
        x = outer + (inner - outer) * u
        y = idn["eye_y"] - idn["brow_gap"] - idn["brow_arch"] * np.sin(math.pi * (0.85 * u + 0.1)) + 0.03 * (1 - u) ** 2
        a1, a2, a4, a9 = _a(aus, 1, side), _a(aus, 2, side), _a(aus, 4, side), _a(aus, 9, side)
        y = y - 0.2 * a1 * u**1.5 - 0.2 * a2 * (1 - u) ** 1.2 + 0.1 * a4 + 0.08 * a4 * u + 0.07 * a9 * u
        x = x - (0.07 * a4 + 0.03 * a9) * u**1.5
        thick = idn["brow_thick"] * (1.0 - 0.45 * (1 - u) ** 2)
        return np.stack([sign * x, y], axis=-1), thick

    def eye(self, side: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower lid curves at ``u`` in [-1 (image-left corner), 1]."""
        idn, aus = self.idn, self.aus
        sign = -1.0 if side == 0 else 1.0
        cx, cy = sign * idn["eye_sep"], idn["eye_y"]
        x = cx + idn["eye_w"] * u
        outer = u * sign  # +1 at the outer corner
        corner_y = cy - idn["eye_tilt"] * outer
        a5, a6, a7, a9 = _a(aus, 5, side), _a(aus, 6, side), _a(aus, 7, side), _a(aus, 9, side)
        h_up = idn["eye_h"] + 0.07 * a5 - 0.035 * a7 - 0.01 * a6
        h_lo = 0.85 * idn["eye_h"] - 0.035 * a6 - 0.04 * a7 - 0.02 * a9 + 0.01 * a5
        h_up, h_lo = max(h_up, 0.012), max(h_lo, 0.005)
        bump = (1.0 - u**2) ** 0.75
        upper = np.stack([x, corner_y - h_up * bump], axis=-1)
        lower = np.stack([x, corner_y + h_lo * bump], axis=-1)
        return upper, lower

    def nose(self) -> np.ndarray:
        """Landmarks 27-35."""
        idn, aus = self.idn, self.aus
        a9, a10 = _a(aus, 9), _a(aus, 10)
        top, tip = idn["eye_y"] + 0.02, idn["nose_tip"] - 0.015 * a9
        bridge = np.stack([np.zeros(4), np.linspace(top, tip, 4)], axis=-1)
        w = idn["nose_w"] + 0.035 * a9
        base_y = tip + 0.08 - 0.045 * a9 - 0.02 * a10
        xs = np.array([-w, -w / 2, 0.0, w / 2, w])
        ys = base_y + np.array([-0.03, 0.005, 0.02, 0.005, -0.03])
        return np.concatenate([bridge, np.stack([xs, ys], axis=-1)])

    def mouth_curves(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Upper/lower outer and inner lip curves at ``u`` in [-1 (image-left corner), 1]."""
        idn, aus = self.idn, self.aus
        my, mw = idn["mouth_y"], idn["mouth_w"]
        sides = (0, 1)
        dx_c, dy_c = [], []
        for s in sides:
            a12, a14, a15, a20 = (_a(aus, k, s) for k in (12, 14, 15, 20))
            a22, a23, a24, a27 = (_a(aus, k, s) for k in (22, 23, 24, 27))
            out = 0.1 * a12 + 0.13 * a20 - 0.02 * a14 - 0.07 * a22 - 0.02 * a23 - 0.03 * a24 - 0.09 * a27
            up = -0.17 * a12 - 0.03 * a14 + 0.16 * a15 + 0.02 * a20
            dx_c.append(out)
            dy_c.append(up)
        right = u < 0
        weight = np.abs(u) ** 1.6
        dx = np.where(right, -dx_c[0], dx_c[1]) * weight
        dy = np.where(right, dy_c[0], dy_c[1]) * weight
        a10, a16, a17, a20 = _a(aus, 10), _a(aus, 16), _a(aus, 17), _a(aus, 20)
        a23, a24, a25, a12 = _a(aus, 23), _a(aus, 24), _a(aus, 25), _a(aus, 12)
        x = u * mw + dx
        mid = my + dy - 0.04 * a17 * (1 - u**2)
        gap = 0.045 * a25 + 0.17 * _a(aus, 26) + 0.22 * _a(aus, 27) + 0.03 * a20 * a25
        gap *= max(0.0, 1.0 - 1.2 * a24) * max(0.0, 1.0 - 0.5 * a23)
        q = 2.0 + 4.0 * a20 + 3.0 * a12
        profile = np.clip(1.0 - np.abs(u) ** q, 0.0, None) ** 0.5
        raise10 = 0.06 * a10 * np.clip(1.0 - np.abs(u) ** 2.5, 0, None)
        drop16 = 0.05 * a16 * np.clip(1.0 - np.abs(u) ** 2.5, 0, None)
        thin = max(0.25, 1.0 - 0.45 * a23 - 0.45 * a24)
        # AU14 (dimpler) tightens and thins the lips on its own side (one-sided in contempt).
        a14_side = np.where(right, _a(aus, 14, 0), _a(aus, 14, 1)) * np.abs(u) ** 0.7
        thin = thin * np.clip(1.0 - 0.35 * a14_side, 0.4, 1.0)
        upper_in = mid - 0.4 * gap * profile - raise10
        lower_in = mid + 0.6 * gap * profile + drop16
        shape = np.clip(1.0 - u**2, 0.0, None) ** 0.5
        cupid = 1.0 - 0.25 * np.exp(-((u / 0.12) ** 2))
        upper_out = upper_in - idn["lip_up"] * thin * shape * cupid - 0.006
        lower_out = lower_in + idn["lip_lo"] * thin * shape + 0.006
        return {
            "x": x, "upper_in": upper_in, "lower_in": lower_in, "upper_out": upper_out, "lower_out": lower_out,
        }

    def landmarks(self) -> np.ndarray:
        """The 68 iBUG landmarks in canonical coordinates (before pose)."""
        pts = np.zeros((68, 2))
        pts[0:17] = self.jaw(17)
        b0, _ = self.brow(0)
        b1, _ = self.brow(1)
        pts[17:22] = b0  # outer -> inner (image left)
        pts[22:27] = b1[::-1]  # inner -> outer
        pts[27:36] = self.nose()
        uu = np.array([-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0])
        up0, lo0 = self.eye(0, uu)
        pts[36:42] = [up0[0], up0[1], up0[2], up0[3], lo0[2], lo0[1]]
        up1, lo1 = self.eye(1, uu)
        pts[42:48] = [up1[0], up1[1], up1[2], up1[3], lo1[2], lo1[1]]
        uo = np.array([-1.0, -0.6, -0.25, 0.0, 0.25, 0.6, 1.0])
        m = self.mouth_curves(uo)
        pts[48:55] = np.stack([m["x"], m["upper_out"]], axis=-1)
        pts[48, 1] = pts[54, 1] = np.nan  # corners set below
        corner_y = 0.5 * (m["upper_in"] + m["lower_in"])
        pts[48, 1], pts[54, 1] = corner_y[0], corner_y[-1]
        lower = np.stack([m["x"], m["lower_out"]], axis=-1)
        pts[55:60] = lower[[5, 4, 3, 2, 1]]
        ui = np.array([-0.9, -0.4, 0.0, 0.4, 0.9])
        mi = self.mouth_curves(ui)
        inner_up = np.stack([mi["x"], mi["upper_in"]], axis=-1)
        inner_lo = np.stack([mi["x"], mi["lower_in"]], axis=-1)
        corner = 0.5 * (inner_up + inner_lo)
        pts[60] = corner[0]
        pts[61:64] = inner_up[1:4]
        pts[64] = corner[4]
        pts[65:68] = inner_lo[[3, 2, 1]]
        return pts


class _Projector:
    """Rotate canonical points (with depth) by the head pose and map them to pixels."""

    def __init__(self, face: _Face, scale: float | np.ndarray, offset: tuple[float, float]):
        p = face.p
        self.face = face
        yaw, pitch, roll = (math.radians(v) for v in (p.yaw, p.pitch, p.roll))
        ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
        rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
        self.rot = rz @ rx @ ry
        self.scale = scale
        self.offset = np.asarray(offset, dtype=np.float64)

    def canonical_to_plane(self, xy: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        if z is None:
            z = self.face.depth(xy)
        p3 = np.concatenate([xy, z[..., None]], axis=-1)
        return (p3 @ self.rot.T)[..., :2]

    def __call__(self, xy: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        return self.canonical_to_plane(xy, z) * self.scale + self.offset


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in color)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    t = max(0.0, min(1.0, t))
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _poly(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


@functools.lru_cache(maxsize=64)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1)
    circle.flags.writeable = False
    return circle


@functools.lru_cache(maxsize=64)
def _grid(lo: float, hi: float, n: int) -> np.ndarray:
    values = np.linspace(lo, hi, n)
    values.flags.writeable = False
    return values


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 18) -> np.ndarray:
    return _unit_circle(n) * (rx, ry) + (cx, cy)


def _P(arg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise ``points`` or ``(points, depth)`` for :class:`_DrawList`."""
    if isinstance(arg, tuple):
        return np.asarray(arg[0], dtype=np.float64), np.asarray(arg[1], dtype=np.float64)
    return np.asarray(arg, dtype=np.float64), None


class _DrawList:
    """Deferred drawing: collect canonical primitives, project them all at once, draw in order."""

    def __init__(self, face: _Face):
        self.face = face
        self.ops: list[tuple[str, int, int, dict[str, Any]]] = []
        self.points: list[np.ndarray] = []
        self.depths: list[np.ndarray | None] = []
        self.count = 0

    def _add(self, kind: str, packed: tuple[np.ndarray, np.ndarray | None], style: dict[str, Any]) -> None:
        pts, z = packed
        self.ops.append((kind, self.count, self.count + len(pts), style))
        self.points.append(pts)
        self.depths.append(z)
        self.count += len(pts)

    def polygon(self, packed: tuple[np.ndarray, np.ndarray | None], fill: tuple[int, int, int]) -> None:
        self._add("polygon", packed, {"fill": fill})

    def line(self, packed: tuple[np.ndarray, np.ndarray | None], fill: tuple[int, int, int], width: int = 1,
             joint: str | None = None) -> None:
        self._add("line", packed, {"fill": fill, "width": width, "joint": joint})

    def flush(self, draw: ImageDraw.ImageDraw, proj: _Projector) -> None:
        if not self.ops:
            return
        xy = np.concatenate(self.points)
        z = self.face.depth(xy)
        for (_, a, b, _), depth in zip(self.ops, self.depths):
            if depth is not None:
                z[a:b] = depth
        flat = proj(xy, z).ravel().tolist()
        for kind, a, b, style in self.ops:
            coords = flat[2 * a: 2 * b]
            if kind == "polygon":
                draw.polygon(coords, fill=style["fill"])
            else:
                draw.line(coords, fill=style["fill"], width=style["width"], joint=style["joint"])
        self.ops, self.points, self.depths, self.count = [], [], [], 0


def _draw_background(draw: ImageDraw.ImageDraw, size: int, params: FaceParams) -> None:
    bg = params.background or {}
    top, bottom = bg.get("top", (128, 128, 128)), bg.get("bottom", (100, 100, 100))
    bands = 8
    for i in range(bands):
        c = _mix(top, bottom, (i + 0.5) / bands)
        y0, y1 = size * i / bands, size * (i + 1) / bands
        draw.rectangle([0, y0, size, y1], fill=c)
    for shape in bg.get("shapes", []):
        x0, y0, x1, y1 = (v * size for v in shape["box"])
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if shape["kind"] == 0:
            draw.rectangle(box, fill=tuple(shape["color"]))
        else:
            draw.ellipse(box, fill=tuple(shape["color"]))


def _fit_transform(
    face: _Face, params: FaceParams, size: int, framing: str = "scene",
) -> tuple[float | np.ndarray, tuple[float, float]]:
    """Scale and offset of the projection onto the ``size`` x ``size`` canvas.

    ``framing="scene"``: the face box height is ``face_height * size`` and the face is inside (a uniform
    scale). ``framing="face"``: the face box (the outline, forehead to chin) fills the whole canvas, with
    the per-axis scales ``(sx, sy)`` that an image processor's crop-and-resize of that box would apply.
    """
    probe = _Projector(face, 1.0, (0.0, 0.0))
    outline = np.concatenate([face.jaw(17), face.forehead(15)])
    plane = probe.canonical_to_plane(outline)
    lo, hi = plane.min(axis=0), plane.max(axis=0)
    if framing == "face":
        scales = size / np.maximum(hi - lo, 1e-6)
        offset = -lo * scales
        return scales, (float(offset[0]), float(offset[1]))
    scale = params.face_height * size / max(hi[1] - lo[1], 1e-6)
    margin = 0.03 * size
    extent = (hi - lo) * scale
    if extent.max() > size - 2 * margin:
        scale *= (size - 2 * margin) / extent.max()
        extent = (hi - lo) * scale
    mid = (lo + hi) / 2 * scale
    centre = np.array(params.center) * size
    half = extent / 2
    centre = np.clip(centre, margin + half, size - margin - half)
    offset = centre - mid
    return float(scale), (float(offset[0]), float(offset[1]))


def render_face(
    params: FaceParams,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rng: np.random.Generator | None = None,
    supersample: int = 2,
    framing: Literal["scene", "face"] = "scene",
) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    """Draw one face.

    Args:
        params: what to draw (AUs, pose, identity, nuisance), e.g. from :func:`draw_face_params`.
        image_size: output side in pixels (square RGB image).
        rng: generator for the pixel noise (``None``: a generator seeded with 0).
        supersample: drawing resolution factor (antialiasing); 1 is fastest.
        framing: ``"scene"`` (a face in a scene, the AffectNet part: ``params.face_height`` and
            ``params.center`` place it) or ``"face"`` (a face crop, the multi-annotated part as in FER+:
            the face box fills the image, stretched as a crop-and-resize of that box would be).

    Returns:
        ``(image, landmarks, face_box)``: the PIL RGB image, the (68, 2) float32 iBUG landmarks in output
        pixels (after the head pose), and the face box ``(x, y, w, h)`` in output pixels (the drawn face
        outline, forehead to chin).
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
    if framing not in ("scene", "face"):
        raise ValueError(f"framing must be 'scene' or 'face', got {framing!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    face = _Face(params)
    size = image_size * supersample
    scale, offset = _fit_transform(face, params, size, framing)
    proj = _Projector(face, scale, offset)
    idn, aus = face.idn, face.aus
    px = float(np.sqrt(np.prod(np.broadcast_to(scale, (2,)))))  # pixels per canonical unit on the canvas

    def width(units: float) -> int:
        return max(1, int(round(units * px)))

    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, size, params)
    ops = _DrawList(face)

    skin = params.skin
    dark_line = _shade(skin, 0.55)
    hair = params.hair
    style = int(idn["hair_style"])

    # Neck and shoulders.
    neck = np.array([[-0.45, 0.6], [0.45, 0.6], [0.5, 2.2], [-0.5, 2.2]])
    ops.polygon(_P((neck, np.zeros(4))), fill=_shade(skin, 0.85))
    shoulders = np.array([[-2.2, 2.0], [-0.5, 1.55], [0.5, 1.55], [2.2, 2.0], [2.4, 3.5], [-2.4, 3.5]])
    ops.polygon(_P((shoulders, np.zeros(6))), fill=params.clothes)

    forehead = face.forehead(15)
    jaw = face.jaw(25)
    head = np.concatenate([jaw, forehead[1:-1]])
    # Long hair behind the head.
    if style == 1:
        back = np.concatenate([np.array([[1.18, 1.1]]), forehead * [1.14, 1.12], np.array([[-1.18, 1.1]])])
        ops.polygon(_P((back, np.full(len(back), -0.2))), fill=hair)
    # Ears.
    for sign in (-1.0, 1.0):
        ear = _ellipse(sign * (idn["face_w"] + 0.02), idn["ear_y"], 0.12, 0.22, 12)
        ops.polygon(_P((ear, np.full(len(ear), -0.05))), fill=_shade(skin, 0.92))
    ops.polygon(_P((head)), fill=skin)
    # Hair on top.
    if style != 2:
        hl = idn["hairline"]
        t = _grid(0, math.pi, 15)
        # Inner edge: the hairline across the forehead, the head outline (slightly inside) at the temples.
        fringe_x = 0.97 * forehead[:, 0]
        fringe_y = hl + 0.12 * np.sin(3 * t) ** 2 * (style == 3) + 0.15 * (np.abs(np.cos(t)) ** 3)
        fringe_y = np.maximum(fringe_y, np.minimum(forehead[:, 1], idn["ear_y"] - 0.15))
        top = forehead * [1.05, 1.06] + [0, -0.04]
        cap = np.concatenate([top, np.stack([fringe_x, fringe_y], axis=-1)[::-1]])
        ops.polygon(_P((cap)), fill=hair)

    # Eyes: sclera, iris, lid covers, lid lines.
    u = _grid(-1.0, 1.0, 13)
    for side in (0, 1):
        upper, lower = face.eye(side, u)
        sclera = np.concatenate([upper, lower[::-1][1:-1]])
        ops.polygon(_P((sclera)), fill=(236, 236, 230))
        sign = -1.0 if side == 0 else 1.0
        cx, cy = sign * idn["eye_sep"] + 0.012 * params.yaw / 25.0, idn["eye_y"] + 0.005
        iris = _ellipse(cx, cy, idn["iris_r"], idn["iris_r"], 14)
        ops.polygon(_P((iris)), fill=params.iris)
        pupil = _ellipse(cx, cy, idn["iris_r"] * 0.45, idn["iris_r"] * 0.45, 10)
        ops.polygon(_P((pupil)), fill=(10, 10, 10))
        cover_h = 0.16
        up_cover = np.concatenate([upper, (upper + [0, -cover_h])[::-1]])
        lo_cover = np.concatenate([lower, (lower + [0, cover_h])[::-1]])
        ops.polygon(_P((up_cover)), fill=skin)
        ops.polygon(_P((lo_cover)), fill=skin)
        ops.line(_P((upper)), fill=(30, 22, 18), width=width(0.028), joint="curve")
        a6, a7 = _a(aus, 6, side), _a(aus, 7, side)
        lower_c = _mix(skin, dark_line, 0.35 + 0.5 * max(a6, a7))
        ops.line(_P((lower)), fill=lower_c, width=width(0.014 + 0.012 * max(a6, a7)))
        # Crow's feet (AU6) at the outer corner.
        if a6 > 0.05:
            ox = sign * (idn["eye_sep"] + idn["eye_w"] + 0.04)
            col = _mix(skin, dark_line, min(1.0, 0.9 * a6))
            for k, dy in enumerate((-0.05, 0.0, 0.05)):
                seg = np.array([[ox, idn["eye_y"] + dy * 0.6], [ox + sign * 0.1, idn["eye_y"] + dy * 1.6]])
                ops.line(_P((seg)), fill=col, width=width(0.018))
        # Cheek raise (AU6): raised, rosy cheek with an infraorbital crease.
        if a6 > 0.05:
            ccx, ccy = sign * (idn["eye_sep"] + 0.04), idn["eye_y"] + 0.36 - 0.09 * a6
            cheek = _ellipse(ccx, ccy, 0.2, 0.12, 14)
            ops.polygon(_P((cheek)), fill=_mix(skin, (225, 120, 110), 0.35 * min(a6, 1.2)))
            crease = _ellipse(ccx, ccy - 0.02, 0.2, 0.12, 16)[9:16]
            ops.line(_P((crease)), fill=_mix(skin, dark_line, 0.7 * a6), width=width(0.018))
        # Lip-corner pull (AU12) bunches the cheek above the corner: a highlight (one-sided in contempt).
        a12_side = _a(aus, 12, side)
        if a12_side > 0.3:
            bulge = _ellipse(sign * (idn["mouth_w"] + 0.1), idn["mouth_y"] - 0.2 - 0.05 * a12_side, 0.14, 0.1, 12)
            ops.polygon(_P((bulge)), fill=_mix(skin, (255, 240, 225), 0.2 * min(a12_side, 1.5)))

    # Forehead wrinkles (AU1 centre, AU2 full width).
    a1, a2 = _a(aus, 1), _a(aus, 2)
    strength = max(a1, a2)
    if strength > 0.15:
        extent = 0.25 + 0.35 * (a2 / max(strength, 1e-6))
        base_y = idn["eye_y"] - idn["brow_gap"] - 0.2
        col = _mix(skin, dark_line, min(1.0, 0.8 * strength))
        for k in range(3):
            xs = extent * _grid(-1.0, 1.0, 9)
            ys = base_y - 0.09 * k - 0.025 * np.cos(xs / extent * math.pi / 2) * (1 + a1)
            if ys.min() < idn["hairline"] + 0.05 and style != 2:
                continue
            ops.line(_P((np.stack([xs, ys], axis=-1))), fill=col, width=width(0.016))
    # Glabella furrows (AU4).
    a4 = _a(aus, 4)
    if a4 > 0.15:
        col = _mix(skin, dark_line, min(1.0, 0.9 * a4))
        top = idn["eye_y"] - idn["brow_gap"] - 0.08
        for sx in (-0.045, 0.045):
            seg = np.array([[sx, top], [sx * 0.7, top + 0.14]])
            ops.line(_P((seg)), fill=col, width=width(0.02))

    # Brows.
    brow_color = _mix(hair, (20, 15, 12), 0.4)
    for side in (0, 1):
        line, thick = face.brow(side, 7)
        poly = np.concatenate([line + np.stack([np.zeros(7), -thick / 2], -1), (line + np.stack([np.zeros(7), thick / 2], -1))[::-1]])
        ops.polygon(_P((poly)), fill=brow_color)

    # Nose.
    nose = face.nose()
    a9, a10 = _a(aus, 9), _a(aus, 10)
    side_line = np.array([[nose[0, 0] - 0.07, nose[0, 1] + 0.05], [nose[3, 0] - 0.09, nose[3, 1] - 0.03]])
    ops.line(_P((side_line)), fill=_mix(skin, dark_line, 0.35), width=width(0.016))
    wing_l = _ellipse(nose[4, 0] + 0.02, nose[4, 1] - 0.03, 0.06, 0.045, 10)
    wing_r = _ellipse(nose[8, 0] - 0.02, nose[8, 1] - 0.03, 0.06, 0.045, 10)
    for w in (wing_l, wing_r):
        ops.polygon(_P((w)), fill=_shade(skin, 0.92))
    for nx in (nose[5], nose[7]):
        nostril = _ellipse(nx[0], nx[1] - 0.01, 0.035 + 0.012 * a9, 0.018, 8)
        ops.polygon(_P((nostril)), fill=_shade(skin, 0.45))
    if a9 > 0.1:
        col = _mix(skin, (40, 25, 20), min(0.85, 0.7 * a9))
        y0 = idn["eye_y"] + 0.02
        for k in range(3):
            xs = _grid(-0.12, 0.12, 5)
            ys = y0 + 0.055 * k + 0.025 * (xs / 0.12) ** 2
            ops.line(_P((np.stack([xs, ys], -1))), fill=col, width=width(0.025))
        for sign in (-1.0, 1.0):
            seg = np.array([[sign * 0.09, y0 + 0.05], [sign * (idn["eye_sep"] - idn["eye_w"] * 0.6), idn["eye_y"] + 0.09]])
            ops.line(_P((seg)), fill=col, width=width(0.016))

    # Mouth.
    um = _grid(-1.0, 1.0, 21)
    m = face.mouth_curves(um)
    x = m["x"]
    # Nasolabial folds (AU6/9/10/11/12).
    for side, sign in ((0, -1.0), (1, 1.0)):
        s12 = _a(aus, 12, side)
        fold = min(1.0, 0.5 * _a(aus, 11, side) + 0.5 * s12 + 0.35 * a9 + 0.5 * a10 + 0.2 * _a(aus, 6, side))
        if fold > 0.12:
            corner = np.array([x[0] if side == 0 else x[-1], 0.5 * (m["upper_in"][0 if side == 0 else -1] + m["lower_in"][0 if side == 0 else -1])])
            start = np.array([sign * (nose[8, 0] * 1.0 + 0.06), nose[8, 1] - 0.05])
            end = corner + [sign * 0.08, 0.04]
            midp = (start + end) / 2 + [sign * 0.07, 0.0]
            curve = np.array([start, midp, end])
            ops.line(_P((curve)), fill=_mix(skin, dark_line, 0.9 * fold), width=width(0.02 + 0.015 * fold), joint="curve")
    outer = np.concatenate([np.stack([x, m["upper_out"]], -1), np.stack([x, m["lower_out"]], -1)[::-1]])
    ops.polygon(_P((outer)), fill=params.lips)
    gap = m["lower_in"] - m["upper_in"]
    if gap.max() > 0.012:
        opening = np.concatenate([np.stack([x, m["upper_in"]], -1), np.stack([x, m["lower_in"]], -1)[::-1]])
        ops.polygon(_P((opening)), fill=(60, 18, 22))
        teeth_h = 0.06
        t_low = np.minimum(m["upper_in"] + teeth_h, m["lower_in"])
        teeth = np.concatenate([np.stack([x * 0.96, m["upper_in"]], -1), np.stack([x * 0.96, t_low], -1)[::-1]])
        ops.polygon(_P((teeth)), fill=(242, 240, 230))
        lower_teeth = 0.04 * min(1.0, _a(aus, 16) + 0.5 * _a(aus, 20))
        if lower_teeth > 0.01:
            t_top = np.maximum(m["lower_in"] - lower_teeth, t_low)
            teeth2 = np.concatenate([np.stack([x * 0.9, t_top], -1), np.stack([x * 0.9, m["lower_in"]], -1)[::-1]])
            ops.polygon(_P((teeth2)), fill=(230, 228, 215))
    lip_line = np.stack([x, 0.5 * (m["upper_in"] + m["lower_in"])], -1)
    if gap.max() <= 0.012:
        ops.line(_P((lip_line)), fill=_shade(params.lips, 0.45), width=width(0.02), joint="curve")
    # Dimple (AU14) beside the corner.
    for side, sign in ((0, -1.0), (1, 1.0)):
        a14 = _a(aus, 14, side)
        if a14 > 0.1:
            ci = 0 if side == 0 else -1
            cxy = np.array([x[ci], 0.5 * (m["upper_in"][ci] + m["lower_in"][ci])])
            bulge = _ellipse(cxy[0] + sign * 0.1, cxy[1] - 0.03, 0.07, 0.1, 12)
            ops.polygon(_P((bulge)), fill=_mix(skin, (255, 235, 220), min(0.5, 0.3 * a14)))
            arc = _ellipse(cxy[0] + sign * 0.06, cxy[1] - 0.01, 0.065, 0.11, 12)
            arc = arc[[9, 10, 11, 0, 1, 2, 3]] if side == 1 else arc[[3, 4, 5, 6, 7, 8, 9]]
            ops.line(_P((arc)), fill=_mix(skin, (40, 25, 20), min(0.85, 0.65 * a14)), width=width(0.055))
    # Chin raise (AU17): mentolabial furrow and chin wrinkles.
    a17 = _a(aus, 17)
    if a17 > 0.12:
        col = _mix(skin, dark_line, min(1.0, 0.9 * a17))
        ly = float(m["lower_out"].max()) + 0.06
        furrow = np.stack([_grid(-0.17, 0.17, 7), ly + 0.025 * _grid(-1, 1, 7) ** 2], -1)
        ops.line(_P((furrow)), fill=col, width=width(0.02))
        cy = (ly + idn["chin_y"] + 0.8 * face.jaw_drop()) / 2 + 0.02
        for dx, dy in ((-0.08, 0.0), (0.0, 0.04), (0.08, 0.0), (-0.04, 0.08), (0.05, 0.08)):
            dot = _ellipse(dx, cy + dy, 0.018, 0.014, 6)
            ops.polygon(_P((dot)), fill=col)

    ops.flush(draw, proj)

    # Post-processing: downsample, lighting, blur, noise.
    if supersample > 1:
        image = image.resize((image_size, image_size), Image.Resampling.BOX)
    if params.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(params.blur))
    arr = np.asarray(image, dtype=np.float32)
    grid = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size - 0.5
    direction = math.cos(params.light_angle) * grid[None, :] + math.sin(params.light_angle) * grid[:, None]
    light = params.light_gain * (1.0 + params.light_slope * direction)
    arr = arr * (light[:, :, None] * np.asarray(params.color_cast, dtype=np.float32)[None, None, :])
    if params.noise > 0:
        arr += rng.standard_normal(size=arr.shape, dtype=np.float32) * np.float32(params.noise)
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")

    landmarks = (proj(face.landmarks()) / supersample).astype(np.float32)
    outline = proj(np.concatenate([face.jaw(25), face.forehead(15)])) / supersample
    lo = np.clip(np.floor(outline.min(axis=0)), 0, image_size - 1)
    hi = np.clip(np.ceil(outline.max(axis=0)), 0, image_size)
    box = (int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1]))
    return image, landmarks, box


def make_face(
    rng: np.random.Generator,
    emotion: int | str,
    secondary: int | str | None = None,
    blend_weight: float = 0.0,
    intensity: float = 1.0,
    pose: tuple[float, float, float] | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int], FaceParams]:
    """Render one face of a given emotion (or blend) and, optionally, a given head pose.

    A convenience for tests and benchmarks that need faces with known landmarks/pose: ``pose`` is
    ``(yaw, pitch, roll)`` in degrees (``None``: drawn at random). Returns ``(image, landmarks (68, 2),
    face_box (x, y, w, h), params)``.
    """
    def index(e: int | str) -> int:
        if isinstance(e, str):
            if e not in EMOTION_TO_INDEX:
                raise ValueError(f"unknown emotion {e!r}; expected one of {list(EMOTIONS)}")
            return EMOTION_TO_INDEX[e]
        if not 0 <= int(e) < NUM_EMOTIONS:
            raise ValueError(f"emotion index must be in 0..{NUM_EMOTIONS - 1}, got {e}")
        return int(e)

    side = "right" if rng.random() < 0.5 else "left"
    aus = blend_aus(index(emotion), None if secondary is None else index(secondary), blend_weight, intensity, side, rng)
    params = draw_face_params(rng, aus)
    if pose is not None:
        params.yaw, params.pitch, params.roll = (float(v) for v in pose)
    image, landmarks, box = render_face(params, image_size, rng)
    return image, landmarks, box, params


# ----------------------------------------------------------------------------------------------------
# Labels: blends, annotators, valence/arousal
# ----------------------------------------------------------------------------------------------------


def confusion_matrix(neutral_weight: float = 1.0, base: float = 0.3) -> np.ndarray:
    """(8, 8) row-stochastic confusion of a mistaken annotator, zero on the diagonal.

    Row e favours emotions sharing AUs with e (SPEC §2 overlap, derived from Table 2), plus Neutral
    (``neutral_weight``) and a ``base`` floor for every other emotion. Neutral's row is uniform.
    """
    overlap = au_overlap("table2").astype(np.float64)
    conf = overlap + base
    neutral = EMOTION_TO_INDEX["Neutral"]
    conf[:, neutral] += neutral_weight
    conf[neutral, :] = 1.0
    np.fill_diagonal(conf, 0.0)
    return conf / conf.sum(axis=1, keepdims=True)


@dataclass
class AnnotatorPool:
    """Simulated annotators: ``names[j]`` errs (votes from the confusion row) with rate ``error_rates[j]``."""

    names: list[str]
    error_rates: np.ndarray

    @classmethod
    def create(cls, n: int, seed: int, low: float = 0.05, high: float = 0.2) -> AnnotatorPool:
        if n < 1:
            raise ValueError(f"the annotator pool needs at least 1 annotator, got {n}")
        rng = np.random.default_rng([seed, 7919])
        return cls([f"A{j:02d}" for j in range(n)], rng.uniform(low, high, size=n))


def vote_distribution(soft_label: np.ndarray, error_rate: float, confusion: np.ndarray) -> np.ndarray:
    """Probability of each vote: the ground-truth soft label with prob. ``1 - error_rate``, else the
    confusion row of its largest emotion.

    The soft label already gives a weak expression its Neutral share (:func:`soft_label_of`), so weak
    faces draw more Neutral votes without a separate intensity term.
    """
    primary = int(np.argmax(soft_label))
    p = (1.0 - error_rate) * soft_label + error_rate * confusion[primary]
    return p / p.sum()


def simulate_votes(
    rng: np.random.Generator,
    soft_label: np.ndarray,
    pool: AnnotatorPool,
    n_annotators: int,
    confusion: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], list[int]]:
    """Votes of ``n_annotators`` distinct annotators drawn from ``pool``.

    Returns ``(votes (8,) int64, annotator names, their labels)``.
    """
    if n_annotators > len(pool.names):
        raise ValueError(f"n_annotators={n_annotators} exceeds the annotator pool ({len(pool.names)})")
    confusion = confusion_matrix() if confusion is None else confusion
    chosen = sorted(rng.choice(len(pool.names), size=n_annotators, replace=False).tolist())
    labels = []
    for j in chosen:
        p = vote_distribution(soft_label, float(pool.error_rates[j]), confusion)
        labels.append(int(rng.choice(NUM_EMOTIONS, p=p)))
    votes = np.bincount(labels, minlength=NUM_EMOTIONS).astype(np.int64)
    return votes, [pool.names[j] for j in chosen], labels


def draw_valence_arousal(
    rng: np.random.Generator, soft_label: np.ndarray, intensity: float, missing_fraction: float = 0.0,
) -> tuple[float | None, float | None]:
    """Blend-weighted per-emotion (valence, arousal) times intensity, plus N(0, 0.1) noise, in [-1, 1].

    With probability ``missing_fraction`` both are ``None`` (written as AffectNet's -2).
    """
    va = np.array([EMOTION_VALENCE_AROUSAL[name] for name in EMOTIONS])
    mean = (soft_label[:, None] * va).sum(axis=0) * min(1.0, intensity)
    value = np.clip(mean + rng.normal(0.0, 0.1, size=2), -1.0, 1.0)
    if rng.random() < missing_fraction:
        return None, None
    return float(value[0]), float(value[1])


def draw_blend(
    rng: np.random.Generator,
    blend_fraction: float = DEFAULT_BLEND_FRACTION,
    class_weights: tuple[float, ...] = DEFAULT_CLASS_WEIGHTS,
    weight_range: tuple[float, float] = (0.2, 0.45),
) -> tuple[int, int | None, float]:
    """Draw ``(primary, secondary, secondary_weight)``; the secondary favours AU-overlapping emotions."""
    w = np.asarray(class_weights, dtype=np.float64)
    primary = int(rng.choice(NUM_EMOTIONS, p=w / w.sum()))
    if rng.random() >= blend_fraction:
        return primary, None, 0.0
    pair = au_overlap("table2")[primary].astype(np.float64) + 1.0
    pair[primary] = 0.0
    secondary = int(rng.choice(NUM_EMOTIONS, p=pair / pair.sum()))
    return primary, secondary, round(float(rng.uniform(*weight_range)), 4)


def soft_label_of(
    primary: int, secondary: int | None, blend_weight: float, intensity: float = FULL_EXPRESSION_INTENSITY,
) -> np.ndarray:
    """Ground-truth soft label of a face drawn from a blend at an expression intensity.

    The blend puts ``1 - blend_weight`` on ``primary`` and ``blend_weight`` on ``secondary``. A face
    drawn below :data:`FULL_EXPRESSION_INTENSITY` shows the scaled AU vector ``s * AU(blend)``, which is
    exactly the blend of the expression (share ``s``) with Neutral (empty AU vector, share ``1 - s``):
    the label says so, so that two faces with the same AUs have the same ground truth. Rounded to 4
    decimals (Neutral takes the rounding), so the label written to ``ground_truth.csv`` is exact.
    """
    blend = np.zeros(NUM_EMOTIONS)
    blend[primary] = 1.0 - (blend_weight if secondary is not None else 0.0)
    if secondary is not None:
        blend[secondary] += blend_weight
    share = min(1.0, float(intensity) / FULL_EXPRESSION_INTENSITY)
    label = np.round(share * blend, 4)
    neutral = EMOTION_TO_INDEX["Neutral"]
    label[neutral] = 0.0
    label[neutral] = round(1.0 - float(label.sum()), 4)
    return label


# ----------------------------------------------------------------------------------------------------
# One sample item
# ----------------------------------------------------------------------------------------------------

#: Random streams: one per (part, split), so that growing one split never changes another's images.
_STREAM_CODES = {("affectnet", "train"): 1, ("affectnet", "validation"): 3, ("multi_annotated", "train"): 2}


def item_rng(seed: int, part: str, index: int, split: str = "train") -> np.random.Generator:
    """The generator of one image: independent of the order and process that renders it."""
    return np.random.default_rng([int(seed), _STREAM_CODES[(part, split)], int(index)])


def make_item(
    seed: int,
    part: str,
    index: int,
    image_size: int,
    pool: AnnotatorPool,
    n_annotators: int,
    blend_fraction: float = DEFAULT_BLEND_FRACTION,
    va_missing_fraction: float = DEFAULT_VA_MISSING_FRACTION,
    split: str = "train",
) -> tuple[SampleSpec, Image.Image]:
    """Draw labels and render image ``index`` of ``(part, split)``; ``image_id`` is filled by the writer."""
    rng = item_rng(seed, part, index, split)
    primary, secondary, weight = draw_blend(rng, blend_fraction)
    intensity = round(float(rng.uniform(0.7, 1.1)), 4)  # 4 decimals, like the blend weight: exact in the CSV
    blend = soft_label_of(primary, secondary, weight)
    soft = soft_label_of(primary, secondary, weight, intensity)
    side = "right" if rng.random() < 0.5 else "left"
    uses_contempt = EMOTIONS[primary] == "Contempt" or (secondary is not None and EMOTIONS[secondary] == "Contempt")
    aus = blend_aus(primary, secondary, weight, intensity, side, rng)
    params = draw_face_params(rng, aus)
    # The multi-annotated part holds face crops (as FER+ does, and as the image processor crops the
    # AffectNet part's face boxes), so that a model trained on it sees faces framed as at labelling time.
    framing = "face" if part == "multi_annotated" else "scene"
    image, landmarks, box = render_face(params, image_size, rng, framing=framing)
    va_intensity = 1.0 if primary == EMOTION_TO_INDEX["Neutral"] else intensity
    n_votes = n_annotators if part == "multi_annotated" else 1
    votes, names, labels = simulate_votes(rng, soft, pool, n_votes)
    valence, arousal = draw_valence_arousal(
        rng, blend, max(va_intensity, 0.3), va_missing_fraction if part == "affectnet" else 0.0,
    )
    spec = SampleSpec(
        image_id="", part=part, split=split, soft_label=soft, primary=primary, secondary=secondary,
        blend_weight=weight if secondary is not None else 0.0, intensity=intensity,
        yaw=params.yaw, pitch=params.pitch, roll=params.roll, landmarks=landmarks, face_box=box,
        au_intensity=aus.max(axis=0), votes=votes, annotators=names, hard_label=labels[0],
        valence=valence, arousal=arousal, contempt_side=side if uses_contempt else None, labels=labels,
    )
    return spec, image


# ----------------------------------------------------------------------------------------------------
# Writing the sample
# ----------------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _encode(image: Image.Image, fmt: str, jpeg_quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=False, subsampling=2)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _render_task(task: tuple) -> tuple[SampleSpec, bytes]:
    (seed, part, split, index, image_size, pool, n_annotators, blend_fraction, va_missing, fmt, quality) = task
    spec, image = make_item(seed, part, index, image_size, pool, n_annotators, blend_fraction, va_missing, split)
    return spec, _encode(image, fmt, quality)


def _affectnet_name(seed: int, split: str, index: int) -> tuple[str, str]:
    """(subDirectory, file name) looking like AffectNet's: numbered folder, 56 hex digits + .jpg."""
    digest = hashlib.sha224(f"affectnetplus-synthetic:{seed}:{split}:{index}".encode()).hexdigest()
    return str(1 + int(digest[:8], 16) % 40), f"{digest}.jpg"


def _npy_numbers(seed: int, split: str, count: int) -> list[int]:
    """Non-contiguous image numbers (AffectNet's npy release skips numbers too)."""
    rng = np.random.default_rng([int(seed), 4242, 1 if split == "train" else 3])
    steps = rng.choice([1, 1, 1, 2, 3], size=count)
    return (np.cumsum(steps) - 1).tolist()


def _fmt_landmarks(landmarks: np.ndarray, decimals: int) -> str:
    return ";".join(f"{v:.{decimals}f}" for v in np.asarray(landmarks, dtype=np.float64).reshape(-1))


def _fmt_va(value: float | None) -> str:
    return "-2" if value is None else f"{value:.6f}"


def _prepare_directory(directory: Path, overwrite: bool) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise FileExistsError(f"{directory} exists and is not a directory")
        if any(directory.iterdir()):
            info = directory / "sample_info.json"
            if not overwrite:
                raise FileExistsError(f"{directory} is not empty (pass overwrite=True / --overwrite to replace a sample)")
            try:
                kind = json.loads(info.read_text()).get("kind")
            except (OSError, ValueError):
                kind = None
            if kind != SAMPLE_KIND:
                raise FileExistsError(
                    f"{directory} is not empty and holds no synthetic sample ({info} missing or of another kind): "
                    "refusing to overwrite it"
                )


def write_sample(
    directory: str | os.PathLike,
    layout: Literal["csv", "npy"] = "csv",
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    n_mas: int = DEFAULT_N_MAS,
    n_annotators: int = DEFAULT_N_ANNOTATORS,
    *,
    blend_fraction: float = DEFAULT_BLEND_FRACTION,
    annotator_pool_size: int | None = None,
    va_missing_fraction: float = DEFAULT_VA_MISSING_FRACTION,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    workers: int = 1,
    overwrite: bool = False,
    contact_sheet: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Render and write the synthetic sample into ``directory`` (DESIGN "The embedded sample").

    Layout (the on-disk contract every reader relies on):

    * ``sample_info.json``: kind, version, layout, seed, image_size, n_train, n_val, n_mas, n_annotators.
    * AffectNet part (single annotator: hard label, valence/arousal, landmarks, face box), JPEG images:
      ``layout="csv"``: ``Manually_Annotated_file_lists/{training,validation}.csv`` with AffectNet's columns
      and ``Manually_Annotated_Images/<subDirectory_filePath>``; ``layout="npy"``:
      ``{train_set,val_set}/images/N.jpg`` and ``annotations/N_{exp,val,aro,lnd}.npy`` (``_exp``, ``_val``,
      ``_aro`` are numpy string scalars like AffectNet's, ``_lnd`` 136 float64; N not contiguous).
      A fraction ``va_missing_fraction`` of images has valence/arousal -2 (not annotated).
    * Multi-annotated part: ``multi_annotated/images/mas_NNNNN.png``, ``multi_annotated/votes.csv``
      (image, split, one count column per emotion) and ``multi_annotated/annotations.csv`` (image,
      annotator, label) with ``n_annotators`` votes per image.
    * ``ground_truth.csv``: image_id, part, split, the 8 soft-label columns (:func:`soft_label_of`),
      primary, secondary, blend_weight (the secondary's weight), intensity (the expression intensity;
      below 1 its missing share is on Neutral), yaw, pitch, roll (degrees), landmarks (136 floats).
    * ``sample_grid.png``: contact sheet, one row per emotion.

    The directory is written under a temporary name and renamed when complete. Same arguments =>
    byte-identical files, whatever ``workers``.

    Returns:
        The ``sample_info.json`` content plus ``counts`` (pure images per primary emotion and blends).
    """
    if layout not in ("csv", "npy"):
        raise ValueError(f"layout must be 'csv' or 'npy', got {layout!r}")
    n_train = _check_int("n_train", n_train, 0)
    n_val = _check_int("n_val", n_val, 0)
    n_mas = _check_int("n_mas", n_mas, 0)
    n_annotators = _check_int("n_annotators", n_annotators, 1)
    image_size = _check_int("image_size", image_size, 32)
    seed = _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 1)
    jpeg_quality = _check_int("jpeg_quality", jpeg_quality, 1)
    if n_train + n_val + n_mas == 0:
        raise ValueError("the sample would be empty: n_train + n_val + n_mas must be > 0")
    if n_mas > 0 and n_annotators < 2:
        raise ValueError(f"a multi-annotated part needs n_annotators >= 2, got {n_annotators}")
    if not 0.0 <= blend_fraction <= 1.0:
        raise ValueError(f"blend_fraction must be in [0, 1], got {blend_fraction}")
    if not 0.0 <= va_missing_fraction <= 1.0:
        raise ValueError(f"va_missing_fraction must be in [0, 1], got {va_missing_fraction}")
    pool_size = annotator_pool_size if annotator_pool_size is not None else max(3 * n_annotators, 12)
    pool_size = _check_int("annotator_pool_size", pool_size, max(n_annotators, 1))

    directory = Path(directory)
    _prepare_directory(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    pool = AnnotatorPool.create(pool_size, seed)

    tasks: list[tuple] = []
    for part, split, count in (
        ("affectnet", "train", n_train), ("affectnet", "validation", n_val), ("multi_annotated", "train", n_mas),
    ):
        fmt = "JPEG" if part == "affectnet" else "PNG"
        tasks += [
            (seed, part, split, i, image_size, pool, n_annotators, blend_fraction, va_missing_fraction, fmt, jpeg_quality)
            for i in range(count)
        ]
    try:
        results = _render_all(tasks, workers, progress)
        info = _write_files(tmp, layout, results, seed=seed, image_size=image_size, n_train=n_train, n_val=n_val,
                            n_mas=n_mas, n_annotators=n_annotators, blend_fraction=blend_fraction,
                            pool=pool, jpeg_quality=jpeg_quality)
        if contact_sheet:
            save_contact_sheet(tmp, tmp / "sample_grid.png", specs=[spec for spec, _ in results])
        if directory.exists():
            shutil.rmtree(directory) if any(directory.iterdir()) else directory.rmdir()
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote the synthetic sample (%d images, layout %s) to %s", len(results), layout, directory)
    return info


def _render_all(tasks: list[tuple], workers: int, progress: bool) -> list[tuple[SampleSpec, bytes]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="rendering synthetic faces", unit="img", disable=not progress)
    results: list[tuple[SampleSpec, bytes]] = []
    if workers == 1:
        for task in tasks:
            results.append(_render_task(task))
            bar.update(1)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as mp_pool:
            for result in mp_pool.imap(_render_task, tasks, chunksize=16):
                results.append(result)
                bar.update(1)
    bar.close()
    return results


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def _write_files(
    root: Path, layout: str, results: list[tuple[SampleSpec, bytes]], *, seed: int, image_size: int,
    n_train: int, n_val: int, n_mas: int, n_annotators: int, blend_fraction: float, pool: AnnotatorPool,
    jpeg_quality: int,
) -> dict[str, Any]:
    affectnet_rows: dict[str, list[list[Any]]] = {"train": [], "validation": []}
    npy_numbers = {"train": _npy_numbers(seed, "train", n_train), "validation": _npy_numbers(seed, "validation", n_val)}
    vote_rows, annotation_rows, truth_rows = [], [], []
    counters = {"train": 0, "validation": 0, "mas": 0}
    for spec, data in results:
        box = spec.face_box
        if spec.part == "affectnet":
            k = counters[spec.split]
            counters[spec.split] += 1
            if layout == "csv":
                sub, name = _affectnet_name(seed, spec.split, k)
                rel = f"{sub}/{name}"
                spec.image_id = f"Manually_Annotated_Images/{rel}"
                affectnet_rows[spec.split].append([
                    rel, box[0], box[1], box[2], box[3], _fmt_landmarks(spec.landmarks, 2), spec.hard_label,
                    _fmt_va(spec.valence), _fmt_va(spec.arousal),
                ])
            else:
                folder = "train_set" if spec.split == "train" else "val_set"
                number = npy_numbers[spec.split][k]
                spec.image_id = f"{folder}/images/{number}.jpg"
                ann = root / folder / "annotations"
                ann.mkdir(parents=True, exist_ok=True)
                np.save(ann / f"{number}_exp.npy", np.array(str(spec.hard_label)))
                np.save(ann / f"{number}_val.npy", np.array(_fmt_va(spec.valence)))
                np.save(ann / f"{number}_aro.npy", np.array(_fmt_va(spec.arousal)))
                np.save(ann / f"{number}_lnd.npy", np.round(spec.landmarks.astype(np.float64).reshape(-1), 2))
        else:
            k = counters["mas"]
            counters["mas"] += 1
            rel = f"images/mas_{k:05d}.png"
            spec.image_id = f"multi_annotated/{rel}"
            vote_rows.append([rel, spec.split, *(int(v) for v in spec.votes)])
            annotation_rows += [[rel, name, EMOTIONS[label]] for name, label in zip(spec.annotators, spec.labels)]
        path = root / spec.image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        truth_rows.append([
            spec.image_id, spec.part, spec.split, *(f"{v:.4f}" for v in spec.soft_label), spec.primary_name,
            spec.secondary_name or "", f"{spec.blend_weight:.4f}", f"{spec.intensity:.4f}", f"{spec.yaw:.3f}", f"{spec.pitch:.3f}",
            f"{spec.roll:.3f}", _fmt_landmarks(spec.landmarks, 3),
        ])
    if layout == "csv":  # header-only lists when a split is empty, so that the layout is recognisable
        (root / "Manually_Annotated_Images").mkdir(parents=True, exist_ok=True)
        lists = root / "Manually_Annotated_file_lists"
        _write_csv(lists / "training.csv", AFFECTNET_CSV_COLUMNS, affectnet_rows["train"])
        _write_csv(lists / "validation.csv", AFFECTNET_CSV_COLUMNS, affectnet_rows["validation"])
    if layout == "npy":
        for folder, count in (("train_set", n_train), ("val_set", n_val)):
            (root / folder / "images").mkdir(parents=True, exist_ok=True)
            (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
    if n_mas > 0:
        _write_csv(root / "multi_annotated" / "votes.csv", VOTES_COLUMNS, vote_rows)
        _write_csv(root / "multi_annotated" / "annotations.csv", ANNOTATIONS_COLUMNS, annotation_rows)
    _write_csv(root / "ground_truth.csv", GROUND_TRUTH_COLUMNS, truth_rows)

    specs = [spec for spec, _ in results]
    counts = {
        name: int(sum(1 for s in specs if s.primary == e and s.secondary is None)) for e, name in enumerate(EMOTIONS)
    }
    counts["blends"] = int(sum(1 for s in specs if s.secondary is not None))
    info = {
        "kind": SAMPLE_KIND, "version": SAMPLE_VERSION, "layout": layout, "seed": seed, "image_size": image_size,
        "n_train": n_train, "n_val": n_val, "n_mas": n_mas, "n_annotators": n_annotators,
        "blend_fraction": blend_fraction, "annotator_pool": len(pool.names), "jpeg_quality": jpeg_quality,
        "emotions": list(EMOTIONS), "pure_images_per_emotion": counts, "label_noise": label_noise(specs),
    }
    (root / "sample_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def label_noise(specs: list[SampleSpec]) -> dict[str, float | None]:
    """How noisy the simulated annotators are, to compare with real data (``sample_info.json``).

    ``pairwise_agreement``: share of agreeing annotator pairs over the multi-annotated images (AffectNet
    reports 60.7 % for two annotators); ``hard_label_matches_truth``: share of AffectNet-part images
    whose hard label is the largest emotion of the ground-truth soft label. ``None`` when a part is empty.
    """
    pairs = [a == b for s in specs if s.part == "multi_annotated"
             for i, a in enumerate(s.labels) for b in s.labels[i + 1:]]
    hard = [s.hard_label == int(np.argmax(s.soft_label)) for s in specs if s.part == "affectnet"]
    return {"pairwise_agreement": round(float(np.mean(pairs)), 4) if pairs else None,
            "hard_label_matches_truth": round(float(np.mean(hard)), 4) if hard else None}


# ----------------------------------------------------------------------------------------------------
# Reading the ground truth, contact sheet
# ----------------------------------------------------------------------------------------------------


def read_ground_truth(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Parse ``DIR/ground_truth.csv`` into ``{image_id: record}``.

    Each record holds ``part``, ``split``, ``soft_label`` ((8,) float64, SPEC order), ``primary`` and
    ``secondary`` (emotion names, ``secondary`` ``None`` for a pure emotion), ``blend_weight``, ``yaw``,
    ``pitch``, ``roll`` (degrees) and ``landmarks`` ((68, 2) float32, image pixels).

    Raises:
        FileNotFoundError: no ``ground_truth.csv``.
        ValueError: missing columns or a malformed row (the message names the file and row).
    """
    path = Path(directory) / "ground_truth.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {directory} a synthetic sample written by write_sample()?")
    out: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in GROUND_TRUTH_COLUMNS
                   if c not in (reader.fieldnames or []) and c not in OPTIONAL_GROUND_TRUTH_COLUMNS]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(GROUND_TRUTH_COLUMNS)}")
        for row_number, row in enumerate(reader, start=2):
            where = f"{path}, row {row_number}"
            try:
                soft = np.array([float(row[name]) for name in EMOTIONS], dtype=np.float64)
                landmarks = np.array([float(v) for v in row["landmarks"].split(";")], dtype=np.float32)
                record = {
                    "part": row["part"], "split": row["split"], "soft_label": soft,
                    "primary": row["primary"], "secondary": row["secondary"] or None,
                    "blend_weight": float(row["blend_weight"]), "yaw": float(row["yaw"]),
                    "pitch": float(row["pitch"]), "roll": float(row["roll"]),
                    "intensity": float(row["intensity"]) if row.get("intensity") else None,
                }
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: malformed value ({error})") from None
            if landmarks.size != 136:
                raise ValueError(f"{where}: landmarks must hold 136 numbers (68 x,y pairs), got {landmarks.size}")
            if not np.isfinite(soft).all() or not np.isfinite(landmarks).all():
                raise ValueError(f"{where}: soft label and landmarks must be finite numbers")
            for key in ("primary", "secondary"):
                if record[key] is not None and record[key] not in EMOTION_TO_INDEX:
                    raise ValueError(f"{where}: {key} {record[key]!r} is not one of {list(EMOTIONS)}")
            if row["image_id"] in out:
                raise ValueError(f"{where}: duplicate image_id {row['image_id']!r}")
            record["landmarks"] = landmarks.reshape(68, 2)
            out[row["image_id"]] = record
    return out


def _short(name: str) -> str:
    return name[:3]


def save_contact_sheet(
    directory: str | os.PathLike,
    path: str | os.PathLike,
    specs: list[SampleSpec] | None = None,
    pure_columns: int = 6,
    blend_columns: int = 2,
    cell: int | None = None,
    colors: int | None = None,
) -> Path:
    """Save a contact sheet of the sample in ``directory``: one row per emotion (labelled).

    The first ``pure_columns`` cells of a row are pure images of the emotion, the last ``blend_columns``
    blends whose primary is that emotion (captioned with the secondary and its weight). ``cell`` resizes
    each image (default: the sample's size); ``colors`` quantizes the PNG palette (smaller file).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    if specs is None:
        truth = read_ground_truth(directory)
        items = [
            (image_id, EMOTION_TO_INDEX[r["primary"]], None if r["secondary"] is None else EMOTION_TO_INDEX[r["secondary"]],
             r["blend_weight"], r["part"])
            for image_id, r in truth.items()
        ]
    else:
        items = [(s.image_id, s.primary, s.secondary, s.blend_weight, s.part) for s in specs]
    items.sort(key=lambda t: (t[4] != "multi_annotated", 0))  # MAS images first, stable otherwise
    columns = pure_columns + blend_columns
    grid: list[list[tuple[str, str] | None]] = []
    for e in range(NUM_EMOTIONS):
        pure = [(i, "") for i, p, s, _, _ in items if p == e and s is None][:pure_columns]
        blends = [(i, f"+{_short(EMOTIONS[s])} {w:.2f}") for i, p, s, w, _ in items if p == e and s is not None]
        row = pure + [None] * (pure_columns - len(pure)) + blends[:blend_columns]
        grid.append(row + [None] * (columns - len(row)))
    first = next((c for row in grid for c in row if c is not None), None)
    if first is None:
        raise ValueError(f"{directory}: no images to show in a contact sheet")
    side = cell or Image.open(directory / first[0]).size[0]
    mosaic = Image.new("RGB", (side * columns, side * NUM_EMOTIONS), (255, 255, 255))
    for r, row in enumerate(grid):
        for c, entry in enumerate(row):
            if entry is not None:
                with Image.open(directory / entry[0]) as img:
                    img = img.convert("RGB")
                    if img.size != (side, side):
                        img = img.resize((side, side), Image.Resampling.BILINEAR)
                    mosaic.paste(img, (c * side, r * side))
    dpi = 100
    label_w = 80
    caption_h = 14 if blend_columns else 0
    width_px, height_px = mosaic.size[0] + label_w, mosaic.size[1] + caption_h + 20
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes([label_w / width_px, 0, mosaic.size[0] / width_px, mosaic.size[1] / height_px])
    ax.imshow(np.asarray(mosaic), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(r + 0.5) * side for r in range(NUM_EMOTIONS)])
    ax.set_yticklabels(list(EMOTIONS), fontsize=9)
    ax.tick_params(length=0)
    for r, row in enumerate(grid):
        for c, entry in enumerate(row):
            if entry is not None and entry[1]:
                ax.text(c * side + 2, (r + 1) * side - 3, entry[1], fontsize=7, color="white",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})
    fig.text(label_w / width_px, 1 - 12 / height_px,
             f"pure emotions ({pure_columns} columns) | blends ({blend_columns} columns, +secondary weight)",
             fontsize=8, va="center")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    if colors:
        with Image.open(out) as img:
            quantized = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        quantized.save(out, format="PNG", optimize=True)
    return out
