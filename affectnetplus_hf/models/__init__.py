"""AffectNet+ models (transformers ``PreTrainedModel`` + timm backbones; SPEC §5–8, §10).

The names below are loaded lazily (PEP 562): ``import affectnetplus_hf.models`` is cheap, the first
access to a model class imports torch/transformers. Registration with ``AutoConfig``/``AutoModel``/
``AutoModelForImageClassification``/``AutoImageProcessor`` (no ``trust_remote_code``) is done by
``import affectnetplus_hf`` as soon as transformers' Auto modules are imported
(:mod:`affectnetplus_hf.models.registration`), so ``AutoModel.from_pretrained(saved_dir)`` works once
``affectnetplus_hf`` is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_CONFIGURATION = "affectnetplus_hf.models.configuration_affectnetplus"
_MODELING = "affectnetplus_hf.models.modeling_affectnetplus"
_REGISTRATION = "affectnetplus_hf.models.registration"

_EXPORTS: dict[str, str] = {
    **{
        name: _CONFIGURATION
        for name in (
            "CS_MODES",
            "FAMILIES",
            "AUExpressionClassifierConfig",
            "BinaryExpressionClassifierConfig",
            "DistributionClassifierConfig",
            "HardFERConfig",
            "SoftFERConfig",
            "SoftLabelerConfig",
        )
    },
    **{
        name: _MODELING
        for name in (
            "AUClassifierOutput",
            "AUExpressionClassifier",
            "BinaryClassifierOutput",
            "BinaryExpressionClassifier",
            "DistributionClassifier",
            "ExpressionNet",
            "FERClassifierOutput",
            "HardFERModel",
            "SoftFERModel",
            "SoftLabeler",
            "SoftLabelerOutput",
            "au_loss",
            "au_targets_for_labels",
            "check_backbone_name",
            "create_backbone",
        )
    },
    "register_auto_classes": _REGISTRATION,
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
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
    from affectnetplus_hf.models.modeling_affectnetplus import (  # noqa: F401
        AUClassifierOutput,
        AUExpressionClassifier,
        BinaryClassifierOutput,
        BinaryExpressionClassifier,
        DistributionClassifier,
        ExpressionNet,
        FERClassifierOutput,
        HardFERModel,
        SoftFERModel,
        SoftLabeler,
        SoftLabelerOutput,
        au_loss,
        au_targets_for_labels,
        check_backbone_name,
        create_backbone,
    )
    from affectnetplus_hf.models.registration import register_auto_classes  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
