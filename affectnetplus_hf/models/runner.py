"""The one inference loop: each image decoded once, each batch fed to the whole model.

``affectnetplus label`` (:func:`affectnetplus_hf.labeling.label_records`), ``affectnetplus predict``
(:func:`affectnetplus_hf.models.inference.predict_files`), :meth:`SoftLabeler.predict
<affectnetplus_hf.models.SoftLabeler.predict>`, :class:`~affectnetplus_hf.dataset_map.SoftLabelMap` and
calibration all run :func:`iter_soft_labels`:

* :func:`resolve_device` — the device asked for, else the model's; CUDA asked for but absent is an error.
* :func:`autocast_context` — ``"auto"`` = bf16 autocast on CUDA, none on CPU; ``"fp32"`` = none.
* :func:`prepare_for_inference` — eval mode, on the device, ``channels_last`` (faster convolutions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

#: Autocast dtypes by name (``None``: no autocast, float32); ``"auto"`` picks one per device.
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_CHOICES: tuple[str, ...] = ("auto", *DTYPES)


def check_dtype(dtype: str) -> str:
    """``dtype`` when it is one of :data:`DTYPE_CHOICES`, else ``ValueError``."""
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}; got {dtype!r}")
    return dtype


def resolve_device(device: str | torch.device | None = None, model: torch.nn.Module | None = None) -> torch.device:
    """``torch.device`` for ``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``None`` = the device of ``model``'s
    parameters (CPU without a model). ``ValueError`` if CUDA is asked for but absent."""
    if device is None:
        device = next(model.parameters()).device if model is not None else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
    return device


def autocast_context(device: str | torch.device, dtype: str = "auto"):
    """``torch.autocast`` for ``dtype`` (:data:`DTYPE_CHOICES`) on ``device``, or a null context for fp32."""
    device = torch.device(device)
    if check_dtype(dtype) == "auto":
        dtype = "bf16" if device.type == "cuda" else "fp32"
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def prepare_for_inference(
    model: torch.nn.Module, device: str | torch.device | None = None, channels_last: bool = True
) -> torch.nn.Module:
    """Eval mode, moved to ``device`` and, with ``channels_last``, to that memory format (in place)."""
    model.eval()
    device = resolve_device(device, model)
    if channels_last:
        model.to(device=device, memory_format=torch.channels_last)
    else:
        model.to(device)
    return model


def as_image_sources(items: Sequence[Any]) -> list:
    """Inputs for the image processor: paths, PIL images, bytes and uint8 arrays pass through, torch
    tensors ``(H, W[, 3])`` become numpy arrays (the processor checks dtype and channel count)."""
    return [item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item for item in items]


def iter_soft_labels(
    model,
    batches: Iterable[dict],
    *,
    device: str | torch.device | None = None,
    dtype: str = "auto",
    channels_last: bool = True,
) -> Iterator[tuple[dict, Any]]:
    """Run ``model`` over batches ``{"pixel_values": (N, C, S, S), ...}`` under ``torch.inference_mode``.

    Yields ``(batch, output)`` with the output's tensors on CPU; batches without images are skipped.
    ``device``: see :func:`resolve_device`; ``dtype``: see :func:`autocast_context`; ``channels_last``:
    the model and the inputs in that memory format (``label`` keeps the default layout on CPU).
    """
    device = resolve_device(device, model)
    prepare_for_inference(model, device, channels_last)
    with torch.inference_mode():
        for batch in batches:
            pixel_values = batch["pixel_values"]
            if pixel_values.shape[0] == 0:
                continue
            pixel_values = pixel_values.to(device, non_blocking=True)
            if channels_last:
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, dtype):
                output = model(pixel_values)
            yield batch, type(output)(**{k: v.cpu() for k, v in output.items()})
