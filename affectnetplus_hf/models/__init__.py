"""AffectNet+ models (transformers ``PreTrainedModel`` + timm backbones).

Importing this package registers every config/model with ``AutoConfig``/``AutoModel`` (no
``trust_remote_code``), so ``AutoModel.from_pretrained(saved_dir)`` works once
``affectnetplus_hf`` is imported.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from affectnetplus_hf.models.configuration_affectnetplus import (
    CS_MODES,
    FAMILIES,
    AUExpressionClassifierConfig,
    BinaryExpressionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
    SoftLabelerConfig,
)
from affectnetplus_hf.models.modeling_affectnetplus import (
    AUClassifierOutput,
    AUExpressionClassifier,
    BinaryClassifierOutput,
    BinaryExpressionClassifier,
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

_PAIRS = (
    (BinaryExpressionClassifierConfig, BinaryExpressionClassifier),
    (AUExpressionClassifierConfig, AUExpressionClassifier),
    (HardFERConfig, HardFERModel),
    (SoftFERConfig, SoftFERModel),
    (SoftLabelerConfig, SoftLabeler),
)


def _register() -> None:
    for config_class, model_class in _PAIRS:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        if model_class is not SoftLabeler:
            AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)


_register()

__all__ = [
    "AUClassifierOutput",
    "AUExpressionClassifier",
    "AUExpressionClassifierConfig",
    "BinaryClassifierOutput",
    "BinaryExpressionClassifier",
    "BinaryExpressionClassifierConfig",
    "CS_MODES",
    "ExpressionNet",
    "FAMILIES",
    "FERClassifierOutput",
    "HardFERConfig",
    "HardFERModel",
    "SoftFERConfig",
    "SoftFERModel",
    "SoftLabeler",
    "SoftLabelerConfig",
    "SoftLabelerOutput",
    "au_loss",
    "au_targets_for_labels",
    "check_backbone_name",
    "create_backbone",
]
