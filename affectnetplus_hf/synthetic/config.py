"""Defaults of the synthetic sample: its format version and the sizes and rates :func:`write_sample` uses.

The defaults make a demo-sized sample (the whole pipeline runs on it in a few CPU minutes).
"""

from __future__ import annotations

#: Format version written to ``sample_info.json`` (3: the multi-annotated part holds face crops and a weak
#: expression's missing share is on Neutral in the ground truth).
SAMPLE_VERSION = 3

DEFAULT_N_TRAIN = 800
DEFAULT_N_VAL = 200
DEFAULT_N_MAS = 1200
DEFAULT_N_ANNOTATORS = 5
DEFAULT_IMAGE_SIZE = 112
#: Share of images blending two emotions.
DEFAULT_BLEND_FRACTION = 0.3
DEFAULT_JPEG_QUALITY = 92
#: Share of AffectNet-part images whose valence/arousal are written as -2 ("not annotated").
DEFAULT_VA_MISSING_FRACTION = 0.05

__all__ = [
    "DEFAULT_BLEND_FRACTION",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_N_ANNOTATORS",
    "DEFAULT_N_MAS",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_VAL",
    "DEFAULT_VA_MISSING_FRACTION",
    "SAMPLE_VERSION",
]
