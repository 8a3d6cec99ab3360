"""Registration of the AffectNet+ classes with the transformers Auto classes (no ``trust_remote_code``).

Each class is registered, with transformers' documented calls, by the module that defines it, when that
module is imported: the configs with ``AutoConfig.register``, the models with ``AutoModel.register`` (and
``AutoModelForImageClassification.register`` for the single-backbone models), the image processor with
``AutoImageProcessor.register(..., image_processor_classes={"pil": ...})``. Any use of a model class
registers them all; :func:`register_auto_classes` does it without naming a class::

    import affectnetplus_hf
    affectnetplus_hf.register_auto_classes()      # imports torch and transformers
    from transformers import AutoModel
    model = AutoModel.from_pretrained(affectnetplus_hf.pretrained_path("ferplus"))

``import affectnetplus_hf`` and ``import affectnetplus_hf.models`` stay light and register nothing.
"""

from __future__ import annotations

import importlib

#: The modules whose import registers the classes they define.
DEFINING_MODULES: tuple[str, ...] = (
    "affectnetplus_hf.models.configuration_affectnetplus",
    "affectnetplus_hf.image_processing",
    "affectnetplus_hf.models.modeling_affectnetplus",
    "affectnetplus_hf.models.modeling_softlabeler",
)


def register_auto_classes() -> None:
    """Register every AffectNet+ config, model and the image processor with ``AutoConfig``, ``AutoModel``,
    ``AutoModelForImageClassification`` and ``AutoImageProcessor`` (by importing the modules that define
    them: this imports torch, timm and transformers). Idempotent."""
    for name in DEFINING_MODULES:
        importlib.import_module(name)
