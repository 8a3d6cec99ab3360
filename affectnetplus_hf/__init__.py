"""affectnetplus-hf: AffectNet+ soft labels in the Hugging Face ecosystem.

Importing the package is cheap (no torch/transformers) and registers nothing. The configs, models and
image processor are registered with transformers' Auto classes (no ``trust_remote_code``) by transformers'
documented ``register`` calls, as soon as a model class is used or by :func:`register_auto_classes`::

    import affectnetplus_hf
    from transformers import AutoModel

    affectnetplus_hf.register_auto_classes()
    AutoModel.from_pretrained(affectnetplus_hf.pretrained_path("ferplus"))

Model classes, the image processor and :func:`register_auto_classes` are exported here lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

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
from affectnetplus_hf.pretrained import pretrained_path
from affectnetplus_hf.records import FaceRecord

__version__ = "0.1.0"

#: Lazily exported names (``affectnetplus_hf.SoftLabeler`` ...) → defining module.
_LAZY: dict[str, str] = {
    **{
        name: "affectnetplus_hf.models"
        for name in (
            "AUExpressionClassifier",
            "AUExpressionClassifierConfig",
            "BinaryExpressionClassifier",
            "BinaryExpressionClassifierConfig",
            "HardFERConfig",
            "HardFERModel",
            "SoftFERConfig",
            "SoftFERModel",
            "SoftLabeler",
            "SoftLabelerConfig",
            "register_auto_classes",
        )
    },
    "AffectNetPlusImageProcessor": "affectnetplus_hf.image_processing",
}

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
    "pretrained_path",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
