"""Registration of the AffectNet+ classes with the transformers Auto classes (no ``trust_remote_code``).

One function per transformers Auto module, each touching only that module (passed in, fully imported):

* ``configuration_auto`` → ``AutoConfig.register(model_type, ConfigClass)``;
* ``modeling_auto`` → ``AutoModel.register`` (+ ``AutoModelForImageClassification`` for the
  single-backbone models);
* ``image_processing_auto`` → ``AutoImageProcessor.register(ConfigClass, image_processor_classes=
  {"pil": AffectNetPlusImageProcessor})``.

``import affectnetplus_hf`` runs :func:`register_with` for each of these modules as soon as it is
imported (see the package ``__init__``), so ``AutoModel.from_pretrained(saved_dir)`` and
``AutoImageProcessor.from_pretrained(saved_dir)`` work without importing torch/timm up front.
"""

from __future__ import annotations

import sys
from types import ModuleType

#: The transformers modules whose Auto classes we register with, in import-hook order.
AUTO_MODULES: tuple[str, ...] = (
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.image_processing_auto",
)


def _config_classes() -> tuple:
    from affectnetplus_hf.models.configuration_affectnetplus import (
        AUExpressionClassifierConfig,
        BinaryExpressionClassifierConfig,
        DistributionClassifierConfig,
        HardFERConfig,
        SoftFERConfig,
        SoftLabelerConfig,
    )

    return (
        BinaryExpressionClassifierConfig,
        AUExpressionClassifierConfig,
        DistributionClassifierConfig,
        HardFERConfig,
        SoftFERConfig,
        SoftLabelerConfig,
    )


def _register_configs(module: ModuleType) -> None:
    for config_class in _config_classes():
        module.AutoConfig.register(config_class.model_type, config_class, exist_ok=True)


def _register_models(module: ModuleType) -> None:
    from affectnetplus_hf.models.modeling_affectnetplus import (
        AUExpressionClassifier,
        BinaryExpressionClassifier,
        DistributionClassifier,
        HardFERModel,
        SoftFERModel,
    )
    from affectnetplus_hf.models.modeling_softlabeler import SoftLabeler

    for model_class in (BinaryExpressionClassifier, AUExpressionClassifier, DistributionClassifier, HardFERModel,
                        SoftFERModel):
        module.AutoModel.register(model_class.config_class, model_class, exist_ok=True)
        module.AutoModelForImageClassification.register(model_class.config_class, model_class, exist_ok=True)
    # the soft-labeler is not an image classifier (no logits)
    module.AutoModel.register(SoftLabeler.config_class, SoftLabeler, exist_ok=True)


def _register_image_processor(module: ModuleType) -> None:
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    for config_class in _config_classes():
        module.AutoImageProcessor.register(
            config_class, image_processor_classes={"pil": AffectNetPlusImageProcessor}, exist_ok=True
        )


_REGISTRARS = {
    AUTO_MODULES[0]: _register_configs,
    AUTO_MODULES[1]: _register_models,
    AUTO_MODULES[2]: _register_image_processor,
}


def register_with(module: ModuleType) -> None:
    """Register our classes with the Auto classes of ``module`` (one of :data:`AUTO_MODULES`)."""
    _REGISTRARS[module.__name__](module)


def is_fully_imported(name: str) -> bool:
    """True when ``name`` is in ``sys.modules`` and has finished executing."""
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def register_auto_classes() -> None:
    """Register with all three Auto modules now, importing them (and torch, the model code). Idempotent."""
    import importlib

    for name in AUTO_MODULES:
        register_with(importlib.import_module(name))
