"""Model folders: what ``save_pretrained`` writes and ``from_pretrained`` reads, checked with errors that
name the file, and the image processor saved beside the weights.

* :func:`check_model_dir` — a local model folder that cannot be loaded fails early, naming the file.
* :func:`check_loaded_weights` — after loading: a checkpoint lacking tensors is an error.
* :func:`default_image_processor`, :func:`load_saved_image_processor`, :func:`check_processor_matches`.
* :func:`load_soft_labeler` — the one way to load a saved soft-labeler (``predict``, ``label``,
  ``calibrate``, :class:`~affectnetplus_hf.dataset_map.SoftLabelMap`).

Importing this module is cheap (no torch): the CLI checks model folders before loading anything.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping

logger = logging.getLogger(__name__)

#: Name of the model's config file.
CONFIG_FILE = "config.json"
#: Name of the weights file (``WEIGHTS_INDEX_FILE`` when sharded).
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
#: Name of the image-processor file that ``save_pretrained`` writes next to the weights.
PROCESSOR_FILE = "preprocessor_config.json"


def _looks_local(path: str) -> bool:
    """A path that is not a hub id (``name`` or ``org/name``): absolute, ``./``, ``../``, ``~``, or deeper."""
    return (
        os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1 or (os.sep != "/" and os.sep in path)
    )


def check_model_dir(model_dir: str | os.PathLike) -> None:
    """Fail early, naming the file, on a local model folder that cannot be loaded.

    A missing path that looks local is a missing folder (``FileNotFoundError``), not a hub id; an existing
    path must be a folder (``NotADirectoryError``) holding a JSON ``config.json`` and safetensors weights
    with complete headers (read without loading the tensors; ``FileNotFoundError`` / ``ValueError``).
    Anything else (``name`` or ``org/name``) is left to the hub. A leading ``~`` is the home folder.
    """
    path = os.path.expanduser(os.fspath(model_dir))
    if not os.path.exists(path):
        if _looks_local(path):
            raise FileNotFoundError(
                f"model directory {path!r} does not exist (expected a folder with {CONFIG_FILE} and "
                f"{WEIGHTS_FILE}, written by save_pretrained)"
            )
        return
    if not os.path.isdir(path):
        raise NotADirectoryError(
            f"model directory {path!r} is not a directory (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    config_file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"model directory {path!r} has no {CONFIG_FILE} (expected {config_file})")
    try:
        with open(config_file, encoding="utf-8") as handle:
            json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_file}: not valid JSON ({error})") from None
    weights = os.path.join(path, WEIGHTS_FILE)
    index = os.path.join(path, WEIGHTS_INDEX_FILE)
    if not os.path.isfile(weights) and not os.path.isfile(index):
        raise FileNotFoundError(f"model directory {path!r} has no weights: expected {weights} (or a sharded {index})")
    from safetensors import SafetensorError, safe_open

    for name in sorted(name for name in os.listdir(path) if name.endswith(".safetensors")):
        file = os.path.join(path, name)
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{file}: not a complete safetensors file ({error}); save the model again") from None


def meta_tensor_names(model) -> list[str]:
    """Names of ``model``'s parameters and buffers still on the meta device (never given values)."""
    return [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]


def weights_path(path: str) -> str:
    """The weights file of a model folder (``path`` itself otherwise), for error messages."""
    return os.path.join(path, WEIGHTS_FILE) if os.path.isdir(path) else path


def check_loaded_weights(model, path: str, missing_keys: Iterable[str]) -> None:
    """After ``from_pretrained``: a checkpoint lacking backbone or head tensors is an error (``ValueError``
    naming them): a head left at its random init would give plausible-looking but meaningless scores.
    Nothing may be left on the meta device."""
    from affectnetplus_hf.models.backbones import is_head

    heads = tuple(f"{name}." for name, module in model.named_modules() if is_head(module))
    missing = sorted(missing_keys)
    where = weights_path(path)
    for kind, keys, why in (
        (
            "backbone",
            [key for key in missing if not key.startswith(heads)],
            "Backbone weights cannot be re-initialised sensibly",
        ),
        (
            "head",
            [key for key in missing if key.startswith(heads)],
            "A head left at its random init gives meaningless scores",
        ),
    ):
        if keys:
            shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
            raise ValueError(
                f"{where}: the checkpoint lacks {len(keys)} {kind} tensor(s) of this {type(model).__name__} "
                f"({model.config.model_type}): {shown}. {why}; save the complete model with save_pretrained"
            )
    leftover = meta_tensor_names(model)
    if leftover:
        raise ValueError(
            f"{where}: {len(leftover)} tensor(s) were not loaded and are left uninitialised: "
            f"{', '.join(leftover[:10])}"
        )


# ---------------------------------------------------------------------------------------------- image processor


def default_image_processor(config):
    """An :class:`AffectNetPlusImageProcessor` matching ``config`` (size, mean, std)."""
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    return AffectNetPlusImageProcessor(
        size={"height": config.image_size, "width": config.image_size},
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
    )


def load_saved_image_processor(path: str, config):
    """The processor saved next to the weights, or one built from ``config`` when none was saved."""
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, PROCESSOR_FILE)):
        logger.warning("%s has no %s; using the default processor for the config", path, PROCESSOR_FILE)
        return default_image_processor(config)
    processor = AffectNetPlusImageProcessor.from_pretrained(path)
    check_processor_matches(processor, config)
    return processor


def processor_output_size(processor) -> tuple[int, int] | None:
    """(height, width) the processor produces, when it says so."""
    size = getattr(processor, "size", None)
    if isinstance(size, Mapping):
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        if "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def check_processor_matches(processor, config) -> None:
    """``ValueError`` unless ``processor`` produces the ``config.image_size`` square the model expects."""
    size = processor_output_size(processor)
    if size is not None and size != (config.image_size, config.image_size):
        raise ValueError(
            f"image processor produces {size[0]}x{size[1]} images but the model expects "
            f"{config.image_size}x{config.image_size} (config.image_size)"
        )


# ---------------------------------------------------------------------------------------------- the soft-labeler


def load_soft_labeler(model_dir: str | os.PathLike):
    """The saved :class:`~affectnetplus_hf.models.SoftLabeler` in ``model_dir`` (a folder, a shipped name
    such as ``"ferplus"`` — :func:`~affectnetplus_hf.pretrained.resolve_model` — or a hub id), in eval mode.

    Loaded through ``AutoModel`` (after :func:`~affectnetplus_hf.models.registration.register_auto_classes`),
    so the model's own ``from_pretrained`` checks apply; a folder holding another model raises ``ValueError``.
    """
    from transformers import AutoConfig, AutoModel

    from affectnetplus_hf.models.configuration_affectnetplus import SoftLabelerConfig
    from affectnetplus_hf.models.registration import register_auto_classes
    from affectnetplus_hf.pretrained import resolve_model

    register_auto_classes()

    path = resolve_model(model_dir)
    check_model_dir(path)
    config = AutoConfig.from_pretrained(path)
    if not isinstance(config, SoftLabelerConfig):
        raise ValueError(
            f"{path} holds a {config.model_type} model, not a SoftLabeler; a saved soft-labeler is needed"
        )
    model = AutoModel.from_pretrained(path, config=config)
    model.eval()
    return model
