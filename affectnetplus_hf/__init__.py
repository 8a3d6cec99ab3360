"""affectnetplus-hf: AffectNet+ soft labels in the Hugging Face ecosystem.

Importing the package is cheap (no torch/transformers). It registers the AffectNet+ configs, models and
image processor with transformers' Auto classes (``AutoConfig``, ``AutoModel``,
``AutoModelForImageClassification``, ``AutoImageProcessor``; no ``trust_remote_code``) the moment
transformers' Auto modules are imported — at once if they already are — through a post-import hook
(:mod:`affectnetplus_hf.models.registration`). So ``import affectnetplus_hf`` then
``AutoModel.from_pretrained(saved_dir)`` works in a fresh process.

Model classes and the image processor are also exported here, lazily (first access imports them).
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
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
from affectnetplus_hf.models.registration import AUTO_MODULES, is_fully_imported, register_with
from affectnetplus_hf.pretrained import pretrained_path
from affectnetplus_hf.records import FaceRecord

__version__ = "0.1.0"

_logger = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------------- Auto registration


def _register(module) -> None:
    """Register with a fully imported transformers Auto module; a failure is logged, never raised
    (it must not break the caller's ``import transformers``)."""
    try:
        register_with(module)
    except Exception as error:  # pragma: no cover - reported, not hidden
        _logger.warning(
            "affectnetplus_hf: could not register with %s (%s: %s); call "
            "affectnetplus_hf.register_auto_classes() to see the full error",
            module.__name__, type(error).__name__, error,
        )


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader, then registers with the module it produced (and restores the loader)."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self.loader
        _register(module)

    def __getattr__(self, name: str):  # get_source, get_filename, ... of the real loader
        return getattr(self.loader, name)


class _AutoRegistrationFinder(importlib.abc.MetaPathFinder):
    """Post-import hook on transformers' ``configuration_auto``/``modeling_auto``/``image_processing_auto``."""

    def __init__(self, names) -> None:
        self.pending = set(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self.pending.discard(fullname)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def _install_auto_registration() -> None:
    if any(isinstance(finder, _AutoRegistrationFinder) for finder in sys.meta_path):
        return
    waiting = []
    for name in AUTO_MODULES:
        if name not in sys.modules:
            waiting.append(name)
        elif is_fully_imported(name):
            _register(sys.modules[name])
        else:  # pragma: no cover - only if transformers imported us mid-way through its own import
            _logger.warning("affectnetplus_hf: %s is still being imported; call register_auto_classes()", name)
    if waiting:
        sys.meta_path.insert(0, _AutoRegistrationFinder(waiting))


_install_auto_registration()
