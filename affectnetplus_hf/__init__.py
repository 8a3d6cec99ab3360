"""affectnetplus-hf: AffectNet+ soft labels in the Hugging Face ecosystem."""

from affectnetplus_hf.emotions import (
    ACTION_UNITS,
    EMOTION_AUS,
    EMOTIONS,
    FERPLUS_EMOTION_COLUMNS,
    FERPLUS_TO_INDEX,
    SUBSETS,
    affectnet_code_to_index,
    au_overlap,
    au_vectors,
    aus_weights,
    ferplus_votes_to_spec,
)
from affectnetplus_hf.records import FaceRecord

__version__ = "0.1.0"

__all__ = [
    "ACTION_UNITS",
    "EMOTIONS",
    "EMOTION_AUS",
    "FERPLUS_EMOTION_COLUMNS",
    "FERPLUS_TO_INDEX",
    "FaceRecord",
    "SUBSETS",
    "__version__",
    "affectnet_code_to_index",
    "au_overlap",
    "au_vectors",
    "aus_weights",
    "ferplus_votes_to_spec",
]
