"""Soft-labelers shipped inside the package, loadable offline by name (``docs/method.md#shipped-soft-labeler``).

* :data:`SHIPPED` — name → folder of this package (``config.json``, ``model.safetensors``,
  ``preprocessor_config.json``, ``README.md`` model card, ``train_config.json``).
* :func:`pretrained_path` — the folder of a shipped soft-labeler, for ``AutoModel.from_pretrained``.
* :func:`resolve_model` — what every entry point does with a model argument: an existing path is used as
  it is (a folder named like a shipped model wins, with a warning); a shipped name gives its folder;
  anything else is passed on (a hub id).
* :func:`store_float16` — rewrite a saved model's weight matrices as float16 (the shipped copies; they load as
  float32, ``config.json`` keeps ``dtype`` float32).

Importing this module is cheap (no torch).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: The folder holding the shipped soft-labelers (one sub-folder each).
PRETRAINED_ROOT = Path(__file__).resolve().parent
#: Shipped soft-labelers: name → sub-folder of :data:`PRETRAINED_ROOT`.
SHIPPED: dict[str, str] = {"ferplus": "ferplus"}
#: The soft-labeler the web page and the examples use when none is named.
DEFAULT_MODEL = "ferplus"
#: Files every shipped folder holds.
SHIPPED_FILES: tuple[str, ...] = (
    "config.json", "model.safetensors", "preprocessor_config.json", "README.md", "train_config.json",
)
#: Upper bound on a shipped folder's size (bytes).
MAX_SHIPPED_BYTES = 30 * 1024 * 1024


def pretrained_path(name: str) -> Path:
    """The folder of the shipped soft-labeler ``name`` (``FileNotFoundError`` when the install lacks it)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped soft-labeler named {name!r}; shipped: {sorted(SHIPPED)}")
    folder = PRETRAINED_ROOT / SHIPPED[name]
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"the shipped soft-labeler {name!r} is missing from this install (expected {folder}/config.json); "
            f"reinstall affectnetplus-hf or retrain it with scripts/train_pretrained.sh"
        )
    return folder


def resolve_model(model: str | os.PathLike) -> str:
    """The path or hub id to load for a model argument.

    An existing path is used as given (``~`` expanded), as ``from_pretrained`` treats a local folder
    named like a hub id; when that path is also a shipped name, a warning says which one is used (and the
    absolute path is returned). A shipped name that is no path gives the shipped folder. Anything else is
    returned unchanged.
    """
    text = os.fspath(model)
    path = os.path.expanduser(text)
    if text in SHIPPED and os.path.exists(path):
        logger.warning(
            "%r is a folder here (%s); it is used instead of the shipped soft-labeler %r. Pass %s to use the "
            "shipped one", text, os.path.abspath(path), text, pretrained_path(text),
        )
        return os.path.abspath(path)
    if text in SHIPPED:
        return str(pretrained_path(text))
    return path


def shipped_name(model: str | os.PathLike) -> str | None:
    """The shipped name a resolved model path belongs to, else ``None`` (for messages and cards)."""
    path = Path(os.fspath(model)).resolve()
    for name, folder in SHIPPED.items():
        if path == (PRETRAINED_ROOT / folder).resolve():
            return name
    return None


def store_float16(model_dir: str | os.PathLike, keep_float32: tuple[str, ...] = ()) -> Path:
    """Rewrite ``model_dir/model.safetensors`` with float16 copies of its float32 weight matrices and
    kernels; vectors (normalisation statistics, biases) and tensors whose name starts with one of
    ``keep_float32`` (e.g. ``"ebc_members."``) stay float32.

    ``config.json`` keeps its ``dtype`` (float32), so ``from_pretrained`` loads float32 parameters again;
    ``scripts/ship_pretrained.py`` keeps a family in float32 when halving it moves an output by more than 1e-3.
    """
    import torch
    from safetensors.torch import load_file, save

    from affectnetplus_hf.fileio import write_bytes_atomic

    def halved(name: str, tensor: torch.Tensor) -> bool:
        return tensor.dtype == torch.float32 and tensor.dim() > 1 and not name.startswith(keep_float32)

    weights = Path(model_dir) / "model.safetensors"
    tensors = load_file(str(weights))
    stored = {k: v.half() if halved(k, v) else v for k, v in tensors.items()}
    write_bytes_atomic(weights, save(stored, metadata={"format": "pt"}))
    return weights


__all__ = [
    "DEFAULT_MODEL",
    "MAX_SHIPPED_BYTES",
    "PRETRAINED_ROOT",
    "SHIPPED",
    "SHIPPED_FILES",
    "pretrained_path",
    "resolve_model",
    "shipped_name",
    "store_float16",
]
