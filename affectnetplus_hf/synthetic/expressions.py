"""What each emotion looks like in the synthetic sample, and the ground truth of a drawn face.

An image shows one emotion or a blend of two with known weights; its AU intensities are the weighted
sum of the two emotions' AU intensity vectors (:data:`EMOTION_AU_INTENSITY`), so a blend *looks* like a
blend and the blend weights are a ground-truth soft label. A face drawn below
:data:`FULL_EXPRESSION_INTENSITY` is, AU for AU, a blend of its expression with Neutral, and its soft
label gives Neutral that share (:func:`soft_label_of`). The rendering choices versus paper Table 2 are in
``docs/method.md#synthetic-sample``.
"""

from __future__ import annotations

import numpy as np

from affectnetplus_hf.emotions import (
    ACTION_UNITS,
    EMOTION_TO_INDEX,
    EMOTIONS,
    NUM_ACTION_UNITS,
    NUM_EMOTIONS,
    au_overlap,
)
from affectnetplus_hf.synthetic.config import DEFAULT_BLEND_FRACTION

#: Rendering AU intensities per emotion (1.0 = a full, exaggerated action). Keys are the AUs of
#: ``docs/method.md#action-units``; every Table 2 AU of an emotion is present except Anger's AU25/26.
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
    "Neutral": (0.0, 0.0),
    "Happy": (0.7, 0.35),
    "Sad": (-0.6, -0.25),
    "Surprise": (0.2, 0.7),
    "Fear": (-0.55, 0.7),
    "Disgust": (-0.65, 0.35),
    "Anger": (-0.6, 0.6),
    "Contempt": (-0.45, 0.25),
}

#: Expression intensity at which a face shows its emotions' full AU vectors (:data:`EMOTION_AU_INTENSITY`);
#: a weaker face is, AU for AU, a blend with Neutral, and its ground truth says so (:func:`soft_label_of`).
FULL_EXPRESSION_INTENSITY = 1.0

#: Primary-emotion frequencies (mildly imbalanced, like real FER data; every emotion well represented).
DEFAULT_CLASS_WEIGHTS: tuple[float, ...] = (1.15, 1.25, 1.0, 1.0, 0.9, 0.9, 1.0, 0.85)

#: Column of each AU in a (…, 21) AU intensity array.
AU_COLUMN: dict[int, int] = {au: i for i, au in enumerate(ACTION_UNITS)}


def emotion_au_matrix() -> np.ndarray:
    """The (8, 21) rendering AU intensities of :data:`EMOTION_AU_INTENSITY` in label-space order."""
    out = np.zeros((NUM_EMOTIONS, NUM_ACTION_UNITS), dtype=np.float64)
    for e, name in enumerate(EMOTIONS):
        for au, value in EMOTION_AU_INTENSITY[name].items():
            out[e, AU_COLUMN[au]] = value
    return out


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
        vector = np.stack([matrix[emotion], matrix[emotion]])
        if EMOTIONS[emotion] == "Contempt":
            without = 1 if contempt_side == "right" else 0  # the side without the action
            for au in UNILATERAL_CONTEMPT_AUS:
                vector[without, AU_COLUMN[au]] = 0.0
        sided += weight * vector
    sided *= intensity
    if rng is not None:
        sided *= rng.uniform(0.85, 1.15, size=(1, NUM_ACTION_UNITS))
        idiosyncratic = rng.uniform(0.0, 0.12, size=NUM_ACTION_UNITS) * (rng.random(NUM_ACTION_UNITS) < 0.15)
        sided += idiosyncratic[None, :]
    return sided


def draw_blend(
    rng: np.random.Generator,
    blend_fraction: float = DEFAULT_BLEND_FRACTION,
    class_weights: tuple[float, ...] = DEFAULT_CLASS_WEIGHTS,
    weight_range: tuple[float, float] = (0.2, 0.45),
) -> tuple[int, int | None, float]:
    """Draw ``(primary, secondary, secondary_weight)``; the secondary favours AU-overlapping emotions."""
    weights = np.asarray(class_weights, dtype=np.float64)
    primary = int(rng.choice(NUM_EMOTIONS, p=weights / weights.sum()))
    if rng.random() >= blend_fraction:
        return primary, None, 0.0
    pair = au_overlap("table2")[primary].astype(np.float64) + 1.0
    pair[primary] = 0.0
    secondary = int(rng.choice(NUM_EMOTIONS, p=pair / pair.sum()))
    return primary, secondary, round(float(rng.uniform(*weight_range)), 4)


def soft_label_of(
    primary: int,
    secondary: int | None,
    blend_weight: float,
    intensity: float = FULL_EXPRESSION_INTENSITY,
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


__all__ = [
    "AU_COLUMN",
    "DEFAULT_CLASS_WEIGHTS",
    "EMOTION_AU_INTENSITY",
    "EMOTION_VALENCE_AROUSAL",
    "FULL_EXPRESSION_INTENSITY",
    "UNILATERAL_CONTEMPT_AUS",
    "blend_aus",
    "draw_blend",
    "emotion_au_matrix",
    "soft_label_of",
]
