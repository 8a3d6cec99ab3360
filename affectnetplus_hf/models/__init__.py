"""AffectNet+ models: transformers ``PreTrainedModel``s on timm backbones.

* ``configuration_affectnetplus`` — the configs; ``backbones`` — timm backbones, heads, ``ExpressionNet``;
* ``modeling_affectnetplus`` — the single-backbone models and their losses;
* ``modeling_softlabeler`` — the :class:`SoftLabeler` ensemble;
* ``hub`` — model folders, the saved image processor, :func:`load_soft_labeler`;
* ``runner`` — the one inference loop; ``inference`` — ``affectnetplus predict`` (image files → table);
* ``registration`` — the transformers Auto classes.

The names below are loaded lazily (PEP 562): ``import affectnetplus_hf.models`` is cheap; the first
access to a model class imports torch/transformers and registers every class with the Auto classes
(``docs/architecture.md#models-as-transformers-classes``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from affectnetplus_hf.models.registration import DEFINING_MODULES, register_auto_classes

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "CS_MODES",
            "FAMILIES",
            "AUExpressionClassifierConfig",
            "BinaryExpressionClassifierConfig",
            "DistributionClassifierConfig",
            "HardFERConfig",
            "SoftFERConfig",
            "SoftLabelerConfig",
        ),
        "affectnetplus_hf.models.configuration_affectnetplus",
    ),
    **dict.fromkeys(
        ("ExpressionNet", "check_backbone_name", "create_backbone"),
        "affectnetplus_hf.models.backbones",
    ),
    **dict.fromkeys(
        (
            "AUClassifierOutput",
            "AUExpressionClassifier",
            "BinaryClassifierOutput",
            "BinaryExpressionClassifier",
            "DistributionClassifier",
            "FERClassifierOutput",
            "HardFERModel",
            "SoftFERModel",
            "au_loss",
            "au_targets_for_labels",
        ),
        "affectnetplus_hf.models.modeling_affectnetplus",
    ),
    **dict.fromkeys(("SoftLabeler", "SoftLabelerOutput"), "affectnetplus_hf.models.modeling_softlabeler"),
    "load_soft_labeler": "affectnetplus_hf.models.hub",
    "register_auto_classes": "affectnetplus_hf.models.registration",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from affectnetplus_hf.models.backbones import ExpressionNet, check_backbone_name, create_backbone  # noqa: F401
    from affectnetplus_hf.models.configuration_affectnetplus import (  # noqa: F401
        CS_MODES,
        FAMILIES,
        AUExpressionClassifierConfig,
        BinaryExpressionClassifierConfig,
        DistributionClassifierConfig,
        HardFERConfig,
        SoftFERConfig,
        SoftLabelerConfig,
    )
    from affectnetplus_hf.models.hub import load_soft_labeler  # noqa: F401
    from affectnetplus_hf.models.modeling_affectnetplus import (  # noqa: F401
        AUClassifierOutput,
        AUExpressionClassifier,
        BinaryClassifierOutput,
        BinaryExpressionClassifier,
        DistributionClassifier,
        FERClassifierOutput,
        HardFERModel,
        SoftFERModel,
        au_loss,
        au_targets_for_labels,
    )
    from affectnetplus_hf.models.modeling_softlabeler import SoftLabeler, SoftLabelerOutput  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module in DEFINING_MODULES:  # the first model class used registers them all with the Auto classes
        register_auto_classes()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
