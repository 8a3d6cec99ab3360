"""Registration of the AffectNet+ classes with the transformers Auto classes (no ``trust_remote_code``).

Each class is registered, with transformers' documented calls, by the module that defines it, when that
module is imported:

* :mod:`~affectnetplus_hf.models.configuration_affectnetplus` → ``AutoConfig.register(model_type, ConfigClass)``;
* :mod:`~affectnetplus_hf.models.modeling_affectnetplus` → ``AutoModel.register(ConfigClass, ModelClass)`` and
  ``AutoModelForImageClassification.register`` for the single-backbone models;
* :mod:`~affectnetplus_hf.models.modeling_softlabeler` → ``AutoModel.register`` for :class:`SoftLabeler`;
* :mod:`affectnetplus_hf.image_processing` → ``AutoImageProcessor.register(ConfigClass,
  image_processor_classes={"pil": AffectNetPlusImageProcessor})``.

So any use of a model class (``from affectnetplus_hf.models import SoftLabeler``) registers them all, and
:func:`register_auto_classes` does it without naming a class::

    import affectnetplus_hf
    affectnetplus_hf.register_auto_classes()      # imports torch and transformers
    from transformers import AutoModel
    model = AutoModel.from_pretrained(affectnetplus_hf.pretrained_path("ferplus"))

``import affectnetplus_hf`` and ``import affectnetplus_hf.models`` stay light (no torch, no transformers)
and register nothing.
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
