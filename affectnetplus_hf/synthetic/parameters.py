"""What the renderer draws besides the expression: identity, colours, head pose, framing and nuisances.

Nuisance variation: identity (face shape, feature sizes, hair), skin tone, head pose, scale, position,
lighting, background clutter, blur and noise. Head pose: yaw in [-18, 18], pitch in [-12, 12], roll in
[-8, 8] degrees (``yaw > 0`` turns the face towards the image's right, ``pitch > 0`` up, ``roll > 0``
clockwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Color = tuple[int, int, int]


@dataclass
class FaceParams:
    """Everything :func:`~affectnetplus_hf.synthetic.render.render_face` needs to draw one face (canonical
    units: half face width = 1).

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
    skin: Color = (205, 160, 130)
    hair: Color = (60, 40, 25)
    lips: Color = (170, 80, 80)
    iris: Color = (70, 50, 30)
    clothes: Color = (60, 80, 120)
    background: dict[str, Any] = field(default_factory=dict)
    light_gain: float = 1.0
    light_slope: float = 0.0
    light_angle: float = 0.0
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: float = 0.0
    noise: float = 0.0


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


def _skin_tone(rng: np.random.Generator) -> Color:
    """A skin colour from very light to very dark (a 1-D tone axis plus small hue jitter)."""
    t = float(rng.uniform(0.0, 1.0))
    light = np.array([240.0, 205.0, 180.0])
    mid = np.array([198.0, 145.0, 105.0])
    dark = np.array([95.0, 62.0, 45.0])
    base = light + (mid - light) * (t / 0.5) if t < 0.5 else mid + (dark - mid) * ((t - 0.5) / 0.5)
    base = base * rng.uniform(0.95, 1.05, size=3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def _lip_color(rng: np.random.Generator, skin: Color) -> Color:
    """Lips clearly darker and redder than the skin (the mouth shape carries most expressions)."""
    red = np.array([150.0, 45.0, 55.0]) * rng.uniform(0.8, 1.1, size=3)
    lips = 0.45 * np.asarray(skin, dtype=np.float64) + 0.55 * red
    return tuple(int(v) for v in np.clip(lips * rng.uniform(0.75, 0.95), 0, 255))


def _hair_color(rng: np.random.Generator) -> Color:
    palette = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 40], [170, 130, 80], [140, 60, 30], [150, 150, 150]])
    color = palette[int(rng.choice(len(palette), p=[0.35, 0.25, 0.15, 0.1, 0.08, 0.07]))] * rng.uniform(0.85, 1.15)
    return tuple(int(v) for v in np.clip(color, 0, 255))


def _iris_color(rng: np.random.Generator) -> Color:
    palette = np.array([[70, 45, 25], [40, 30, 20], [60, 100, 140], [80, 110, 60]])
    return tuple(int(v) for v in palette[int(rng.integers(0, 4))])


def _muted_color(rng: np.random.Generator) -> Color:
    """A background colour of moderate saturation."""
    grey = float(rng.uniform(50, 210))
    tint = rng.uniform(-45, 45, size=3)
    return tuple(int(v) for v in np.clip(grey + tint, 0, 255))


def _random_color(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> Color:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def draw_face_params(
    rng: np.random.Generator,
    aus: np.ndarray,
    pose_range: tuple[float, float, float] = (18.0, 12.0, 8.0),
) -> FaceParams:
    """Draw identity, pose and nuisance parameters around the given (2, 21) AU intensities.

    ``background``: ``{"top": colour, "bottom": colour, "shapes": [{"kind": 0 (rectangle) or 1 (ellipse),
    "box": 4 fractions of the image side, "color": colour}, ...]}``.
    """
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
        iris=_iris_color(rng),
        clothes=_random_color(rng),
        background=background,
        light_gain=_uniform(rng, 0.85, 1.12),
        light_slope=_uniform(rng, 0.0, 0.3),
        light_angle=_uniform(rng, 0.0, 2 * math.pi),
        color_cast=tuple(float(v) for v in rng.uniform(0.92, 1.08, size=3)),
        blur=_uniform(rng, 0.3, 0.8) if rng.random() < 0.3 else 0.0,
        noise=_uniform(rng, 0.0, 5.0),
    )


__all__ = ["Color", "FaceParams", "draw_face_params", "draw_identity"]
