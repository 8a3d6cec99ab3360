"""timm backbones and the heads on top of them: the layers every AffectNet+ model is made of.

* :func:`create_backbone` — a timm model without classifier whose tensors all round-trip through
  ``save_pretrained``/``from_pretrained`` (non-persistent buffers made persistent).
* :func:`head` — a linear head marked for this package's weight init (:data:`HEAD_INIT_STD`).
* :class:`ExpressionNet` — backbone + binary/8-way head (+ the 21-AU head, ``docs/method.md#au-scores``).
* :func:`check_pixel_values` — the input check shared by every model.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from affectnetplus_hf.emotions import NUM_ACTION_UNITS

logger = logging.getLogger(__name__)

#: Std of the normal init of the heads (bias 0); small so that a fresh head starts near chance.
HEAD_INIT_STD = 0.01
#: Attribute that marks a layer as one of this package's heads (see :func:`is_head`).
HEAD_MARKER = "_affectnetplus_head"


def is_meta_init() -> bool:
    """True while transformers builds a model on the meta device (``from_pretrained``)."""
    try:
        return torch.get_default_device().type == "meta"
    except AttributeError:  # pragma: no cover - torch < 2.3
        return torch.empty(0).device.type == "meta"


def check_backbone_name(name: str) -> None:
    """Raise ``ValueError`` (with close matches) unless ``name`` is a timm model name."""
    import timm

    if timm.is_model(name):
        return
    base = name.split(".", 1)[0]
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close names: {close}." if close else ""
    raise ValueError(
        f"unknown timm backbone {name!r}.{hint} List the available names with "
        f"timm.list_models() or a pattern, e.g. timm.list_models('*resnet*')."
    )


def create_backbone(
    name: str,
    *,
    image_size: int,
    num_channels: int = 3,
    drop_path_rate: float = 0.0,
    pretrained: str | None = None,
    backbone_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A timm backbone without classifier (``num_classes=0``: forward returns pooled features).

    ``pretrained``: a local timm checkpoint file or ``"hf-hub:org/name"``; only honoured outside the
    meta-device construction of ``from_pretrained`` (whose saved weights replace everything anyway).
    Every buffer is made persistent so that ``save_pretrained``/``from_pretrained`` round-trip exactly.
    """
    import timm

    check_backbone_name(name)
    kwargs: dict[str, Any] = {"num_classes": 0}
    if num_channels != 3:
        kwargs["in_chans"] = num_channels
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    pretrained_cfg = timm.get_pretrained_cfg(name.split(".", 1)[0]) if "." not in name else None
    if pretrained_cfg is not None and getattr(pretrained_cfg, "fixed_input_size", False):
        kwargs["img_size"] = image_size
    kwargs.update(backbone_kwargs or {})
    use_pretrained = bool(pretrained) and not is_meta_init()
    if use_pretrained:
        if pretrained.startswith("hf-hub:"):
            kwargs["pretrained_cfg_overlay"] = {"hf_hub_id": pretrained[len("hf-hub:") :]}
        else:
            if not os.path.isfile(pretrained):
                raise FileNotFoundError(
                    f"backbone_pretrained file {pretrained!r} does not exist; expected a timm checkpoint "
                    f"(.safetensors) for {name!r}, or 'hf-hub:org/name'"
                )
            kwargs["pretrained_cfg_overlay"] = {"file": os.path.abspath(pretrained)}
        logger.info("loading pretrained weights for backbone %s from %s", name, pretrained)
    backbone = timm.create_model(name, pretrained=use_pretrained, **kwargs)
    make_buffers_persistent(backbone)
    if not is_meta_init():
        # timm initialised (or loaded) it: the HF init must not touch it. Not on the meta device: there
        # ``from_pretrained`` must see which backbone tensors the checkpoint lacks (they are then missing
        # keys, which ``from_pretrained`` refuses).
        for tensor in list(backbone.parameters()) + list(backbone.buffers()):
            tensor._is_hf_initialized = True
    return backbone


def make_buffers_persistent(module: nn.Module) -> None:
    """Register every buffer of ``module`` and its submodules again with ``persistent=True`` (same tensor,
    same place in the state dict), so that ``state_dict`` — and so ``save_pretrained`` — holds them all."""
    for submodule in module.modules():
        for name, buffer in list(submodule.named_buffers(recurse=False)):
            submodule.register_buffer(name, buffer, persistent=True)


def head(in_features: int, out_features: int) -> nn.Linear:
    """A linear head, marked for this package's init (normal(0, :data:`HEAD_INIT_STD`), bias 0)."""
    layer = nn.Linear(in_features, out_features)
    setattr(layer, HEAD_MARKER, True)
    return layer


def is_head(module: nn.Module) -> bool:
    """Whether ``module`` was made by :func:`head`."""
    return getattr(module, HEAD_MARKER, False)


def check_pixel_values(pixel_values: Any, image_size: int, num_channels: int) -> torch.Tensor:
    """Validate a ``(N, C, H, W)`` batch against the model's input size; ``ValueError`` otherwise."""
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(
            f"pixel_values must be a torch.Tensor (N, {num_channels}, {image_size}, {image_size}); got "
            f"{type(pixel_values).__name__} — use the model's image processor"
        )
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have shape (N, {num_channels}, {image_size}, {image_size}); got "
            f"{tuple(pixel_values.shape)}"
        )
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values have {pixel_values.shape[1]} channels; this model expects {num_channels} "
            f"(shape (N, {num_channels}, {image_size}, {image_size}))"
        )
    if tuple(pixel_values.shape[2:]) != (image_size, image_size):
        raise ValueError(
            f"pixel_values are {pixel_values.shape[2]}x{pixel_values.shape[3]} pixels; this model expects "
            f"{image_size}x{image_size} (config.image_size) — preprocess with its image processor"
        )
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be floating point (normalised), got dtype {pixel_values.dtype}")
    return pixel_values


class ExpressionNet(nn.Module):
    """Backbone + heads, the layers shared by every model here (state-dict keys ``backbone.*``,
    ``classifier.*`` and, with AU, ``au_classifier.*``).

    ``forward`` returns ``(logits, au_logits or None)``.
    """

    def __init__(
        self,
        backbone: str,
        *,
        num_outputs: int,
        with_au: bool = False,
        image_size: int,
        num_channels: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pretrained: str | None = None,
        backbone_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.backbone = create_backbone(
            backbone,
            image_size=image_size,
            num_channels=num_channels,
            drop_path_rate=drop_path_rate,
            pretrained=pretrained,
            backbone_kwargs=backbone_kwargs,
        )
        features = self.backbone.num_features
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = head(features, num_outputs)
        self.au_classifier = head(features, NUM_ACTION_UNITS) if with_au else None

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.dropout(self.backbone(pixel_values))
        au_logits = self.au_classifier(features) if self.au_classifier is not None else None
        return self.classifier(features), au_logits
