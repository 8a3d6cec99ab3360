"""The embedded synthetic FER sample: a small facial-expression data set the package renders itself.

AffectNet cannot ship, so faces are drawn procedurally from the intensities of the 21 action units of
``docs/method.md#action-units`` (``docs/method.md#synthetic-sample``). Modules, in the order an image is
made: :mod:`.config` (version, defaults), :mod:`.expressions` (each emotion's AU intensities, blends, the
ground-truth soft label), :mod:`.parameters` (identity, colours, pose, nuisances), :mod:`.geometry` (the
face deformed by the AUs, 68 landmarks, head pose), :mod:`.render` (the face drawn, landmarks, box),
:mod:`.annotators` (simulated votes, valence, arousal), :mod:`.items` (one image from its own random
stream), :mod:`.writer` (:func:`write_sample`: AffectNet's layouts, ``multi_annotated/``,
``ground_truth.csv``, ``sample_info.json``), :mod:`.contact_sheet` (``sample_grid.png``).

Same seed, same arguments => byte-identical files. The sample is read back by
:mod:`affectnetplus_hf.sources.synthetic`.
"""

from __future__ import annotations

from affectnetplus_hf.synthetic.annotators import (
    AnnotatorPool,
    confusion_matrix,
    draw_valence_arousal,
    simulate_votes,
    vote_distribution,
)
from affectnetplus_hf.synthetic.config import (
    DEFAULT_BLEND_FRACTION,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_N_ANNOTATORS,
    DEFAULT_N_MAS,
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    DEFAULT_VA_MISSING_FRACTION,
    SAMPLE_VERSION,
)
from affectnetplus_hf.synthetic.contact_sheet import save_contact_sheet
from affectnetplus_hf.synthetic.expressions import (
    EMOTION_AU_INTENSITY,
    FULL_EXPRESSION_INTENSITY,
    blend_aus,
    draw_blend,
    emotion_au_matrix,
    soft_label_of,
)
from affectnetplus_hf.synthetic.items import SampleSpec, item_rng, make_face, make_item
from affectnetplus_hf.synthetic.parameters import FaceParams, draw_face_params
from affectnetplus_hf.synthetic.render import render_face
from affectnetplus_hf.synthetic.writer import encode_image, label_noise, write_sample

__all__ = [
    "DEFAULT_BLEND_FRACTION",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_N_ANNOTATORS",
    "DEFAULT_N_MAS",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_VAL",
    "DEFAULT_VA_MISSING_FRACTION",
    "EMOTION_AU_INTENSITY",
    "FULL_EXPRESSION_INTENSITY",
    "SAMPLE_VERSION",
    "AnnotatorPool",
    "FaceParams",
    "SampleSpec",
    "blend_aus",
    "confusion_matrix",
    "draw_blend",
    "draw_face_params",
    "draw_valence_arousal",
    "emotion_au_matrix",
    "encode_image",
    "item_rng",
    "label_noise",
    "make_face",
    "make_item",
    "render_face",
    "save_contact_sheet",
    "simulate_votes",
    "soft_label_of",
    "vote_distribution",
    "write_sample",
]
