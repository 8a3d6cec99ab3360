"""One image of the synthetic sample: its labels drawn, its face rendered.

Every image is drawn from its own ``numpy.random.Generator`` seeded with ``(seed, part/split stream,
index)`` (:func:`item_rng`), so an image does not depend on the order or the process that renders it.

Choices: each image draws an expression intensity in [0.7, 1.1] (scaling its AU vector; below
:data:`~affectnetplus_hf.synthetic.expressions.FULL_EXPRESSION_INTENSITY` the missing share goes to Neutral
in the ground truth). The AffectNet part shows a face in a scene (its face box in the annotations); the
multi-annotated part holds face crops, as FER+ does — the face box (forehead to chin) fills the image,
stretched exactly as the image processor's crop-and-resize stretches an AffectNet-part face box — so a
soft-labeler trained on the multi-annotated part sees faces framed as it will at labelling time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.synthetic.annotators import AnnotatorPool, draw_valence_arousal, simulate_votes
from affectnetplus_hf.synthetic.config import DEFAULT_BLEND_FRACTION, DEFAULT_IMAGE_SIZE, DEFAULT_VA_MISSING_FRACTION
from affectnetplus_hf.synthetic.expressions import blend_aus, draw_blend, soft_label_of
from affectnetplus_hf.synthetic.parameters import FaceParams, draw_face_params
from affectnetplus_hf.synthetic.render import render_face


@dataclass
class SampleSpec:
    """Ground truth of one sample image (the row of ``ground_truth.csv`` plus what the renderer knows).

    ``soft_label`` is the blend (``1 - blend_weight`` on ``primary`` and ``blend_weight`` on
    ``secondary``; ``secondary`` is ``None`` and ``blend_weight`` 0 for a pure emotion) scaled by
    ``min(1, intensity)``, the rest on Neutral (:func:`~affectnetplus_hf.synthetic.expressions.soft_label_of`).
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


#: Random streams: one per (part, split), so that growing one split never changes another's images.
STREAM_CODES: dict[tuple[str, str], int] = {
    ("affectnet", "train"): 1,
    ("affectnet", "validation"): 3,
    ("multi_annotated", "train"): 2,
}


def item_rng(seed: int, part: str, index: int, split: str = "train") -> np.random.Generator:
    """The generator of one image: independent of the order and process that renders it."""
    return np.random.default_rng([int(seed), STREAM_CODES[(part, split)], int(index)])


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
    framing = "face" if part == "multi_annotated" else "scene"
    image, landmarks, box = render_face(params, image_size, rng, framing=framing)
    va_intensity = 1.0 if primary == EMOTION_TO_INDEX["Neutral"] else intensity
    n_votes = n_annotators if part == "multi_annotated" else 1
    votes, names, labels = simulate_votes(rng, soft, pool, n_votes)
    valence, arousal = draw_valence_arousal(
        rng,
        blend,
        max(va_intensity, 0.3),
        va_missing_fraction if part == "affectnet" else 0.0,
    )
    spec = SampleSpec(
        image_id="",
        part=part,
        split=split,
        soft_label=soft,
        primary=primary,
        secondary=secondary,
        blend_weight=weight if secondary is not None else 0.0,
        intensity=intensity,
        yaw=params.yaw,
        pitch=params.pitch,
        roll=params.roll,
        landmarks=landmarks,
        face_box=box,
        au_intensity=aus.max(axis=0),
        votes=votes,
        annotators=names,
        hard_label=labels[0],
        valence=valence,
        arousal=arousal,
        contempt_side=side if uses_contempt else None,
        labels=labels,
    )
    return spec, image


def _emotion_index(emotion: int | str) -> int:
    if isinstance(emotion, str):
        if emotion not in EMOTION_TO_INDEX:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {list(EMOTIONS)}")
        return EMOTION_TO_INDEX[emotion]
    if not 0 <= int(emotion) < NUM_EMOTIONS:
        raise ValueError(f"emotion index must be in 0..{NUM_EMOTIONS - 1}, got {emotion}")
    return int(emotion)


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

    For tests and benchmarks that need faces with known landmarks/pose: ``pose`` is ``(yaw, pitch, roll)``
    in degrees (``None``: drawn at random). Returns ``(image, landmarks (68, 2), face_box (x, y, w, h),
    params)``.
    """
    side = "right" if rng.random() < 0.5 else "left"
    aus = blend_aus(
        _emotion_index(emotion),
        None if secondary is None else _emotion_index(secondary),
        blend_weight,
        intensity,
        side,
        rng,
    )
    params = draw_face_params(rng, aus)
    if pose is not None:
        params.yaw, params.pitch, params.roll = (float(v) for v in pose)
    image, landmarks, box = render_face(params, image_size, rng)
    return image, landmarks, box, params


__all__ = ["STREAM_CODES", "SampleSpec", "item_rng", "make_face", "make_item"]
