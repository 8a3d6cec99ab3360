"""The embedded synthetic FER sample: a small facial-expression data set the package renders itself.

AffectNet cannot ship, so faces are drawn procedurally (:mod:`.render`, PIL polygons/ellipses/lines on
a 2x supersampled canvas) from **action-unit intensities** of the 21 AUs of ``docs/method.md#action-units``:
brow raise/lower (AU1/2/4), lid widen/tighten (AU5/7), cheek raise (AU6), nose wrinkle (AU9), upper-lip
raise (AU10), nasolabial deepening (AU11), lip-corner pull/depress (AU12/15, one-sided for contempt),
dimple (AU14, one-sided), lower-lip depress (AU16), chin raise (AU17), lip stretch/funnel/tighten/press
(AU20/22/23/24), lips part (AU25), jaw drop (AU26) and mouth stretch (AU27).

Modules, in the order an image is made:

* :mod:`.config` — the sample's version and defaults;
* :mod:`.expressions` — each emotion's AU intensities, blends of two emotions, the ground-truth soft
  label (a weak face's missing share on Neutral);
* :mod:`.parameters` — identity, colours, head pose and nuisances of one face;
* :mod:`.geometry` — the canonical face deformed by the AUs, its 68 landmarks, the head-pose projection;
* :mod:`.render` — the face drawn step by step, with its landmarks and face box;
* :mod:`.annotators` — simulated annotators' votes, valence and arousal;
* :mod:`.items` — one image: labels drawn and face rendered from its own random stream;
* :mod:`.writer` — :func:`write_sample`: AffectNet's ``csv``/``npy`` layouts, the ``multi_annotated/``
  part, ``ground_truth.csv``, ``sample_info.json``;
* :mod:`.contact_sheet` — ``sample_grid.png``, one row per emotion.

Same seed, same arguments => byte-identical files. The sample is read back by
:mod:`affectnetplus_hf.sources.synthetic` (``open_source`` / ``open_multi_annotated`` detect it).
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
