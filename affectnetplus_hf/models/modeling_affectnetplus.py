"""AffectNet+ models as transformers ``PreTrainedModel``s with timm backbones (SPEC §5–8, §10).

* :class:`BinaryExpressionClassifier` — one emotion, one backbone, 2-way softmax (SPEC §6).
* :class:`AUExpressionClassifier` — binary head + 21-AU sigmoid head, P_AU post-processing (SPEC §7).
* :class:`SoftLabeler` — the whole ensemble (J×8 binary classifiers and/or 8 AU classifiers) with its
  confidence scores; returns soft labels (SPEC §8, Eq. 14) from one decoded batch.
* :class:`HardFERModel`, :class:`SoftFERModel` — the baselines of SPEC §10.

Implementation notes (transformers 5):

* ``post_init()`` is called by every model (it registers ``all_tied_weights_keys`` and runs the init).
* ``_init_weights`` only initialises this package's heads; the timm backbone keeps timm's own
  initialisation (its tensors are flagged ``_is_hf_initialized`` when built outside ``from_pretrained``).
  A head missing from a checkpoint gets the head init (and a warning); a missing *backbone* tensor makes
  ``from_pretrained`` raise ``ValueError`` naming the keys (no sensible init exists for it).
* ``from_pretrained`` builds the model on the meta device and loads the safetensors weights; timm's
  non-persistent buffers are made persistent at construction so that every tensor round-trips exactly.
* The image processor is saved in the same directory by ``save_pretrained`` and re-attached by
  ``from_pretrained`` (``model.image_processor``).
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from affectnetplus_hf import softlabel
from affectnetplus_hf.emotions import EMOTIONS, NUM_ACTION_UNITS, NUM_EMOTIONS, au_vectors
from affectnetplus_hf.models.configuration_affectnetplus import (
    CS_MODES,
    AUExpressionClassifierConfig,
    BinaryExpressionClassifierConfig,
    DistributionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
    SoftLabelerConfig,
    _resolve_emotion,
)

logger = logging.getLogger(__name__)

#: Std of the normal init of the heads (bias 0); small so that a fresh head starts near chance.
HEAD_INIT_STD = 0.01
#: Name of the image-processor file that ``save_pretrained`` writes next to the weights.
PROCESSOR_FILE = "preprocessor_config.json"

_IS_HEAD = "_affectnetplus_head"


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------


@dataclass
class BinaryClassifierOutput(ModelOutput):
    """Output of :class:`BinaryExpressionClassifier`.

    Attributes:
        loss: cross-entropy, when ``labels`` were given.
        logits: ``(N, 2)``, column 0 = "not the emotion", column 1 = the emotion.
        positive_probs: ``(N,)`` P(emotion | image) = softmax(logits)[:, 1] (P_j(i | img) of Eq. 4).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    positive_probs: torch.Tensor | None = None


@dataclass
class AUClassifierOutput(ModelOutput):
    """Output of :class:`AUExpressionClassifier` (SPEC §7).

    Attributes:
        loss: ``CE + λ · AU BCE`` when ``labels`` and ``au_labels`` were given (CE alone without
            ``au_labels``).
        logits: ``(N, 2)`` binary head (column 1 = the emotion).
        au_logits: ``(N, 21)`` AU head, AUs in SPEC §2 order.
        positive_probs: ``(N,)`` binary-head P(emotion) (BPV[0] of Eq. 11).
        au_probs: ``(N, 21)`` sigmoid(au_logits) = ÂU.
        p_au: ``(N,)`` P_AU(i | img) of Eq. 12 (``None`` while training unless asked for).
        binary_loss, au_loss: the two loss terms.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    au_logits: torch.Tensor | None = None
    positive_probs: torch.Tensor | None = None
    au_probs: torch.Tensor | None = None
    p_au: torch.Tensor | None = None
    binary_loss: torch.Tensor | None = None
    au_loss: torch.Tensor | None = None


@dataclass
class FERClassifierOutput(ModelOutput):
    """Output of the baselines (SPEC §10).

    Attributes:
        loss: CE (Hard-FER) or BCE with soft targets (Soft-FER) when ``labels`` were given.
        logits: ``(N, 8)``, SPEC §1 order.
        probs: ``(N, 8)`` softmax (Hard-FER) or sigmoid (Soft-FER; a predicted soft label).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    probs: torch.Tensor | None = None


@dataclass
class SoftLabelerOutput(ModelOutput):
    """Output of :class:`SoftLabeler` (SPEC §6–8). All ``float32``.

    Attributes:
        soft_label: ``(N, 8)`` Eq. 14 soft label (not renormalised); one family alone = its scores; a
            soft-labeler with only the distribution family gives that family's scores.
        ebc_scores: ``(N, 8)`` SC_EB of Eq. 5, ``None`` without the EBC family.
        au_scores: ``(N, 8)`` SC_AU of Eq. 13, ``None`` without the AU family.
        member_probs: ``(N, n_members)`` each member's probability (P_j(i | img) for EBC members,
            P_AU(i | img) for AU members, the 8 softmax outputs of each distribution member), columns
            named by ``config.member_names``.
        spread: ``(N, 8)`` per-emotion standard deviation (ddof 0) of the probabilities of the members
            of that emotion — how much the ensemble disagrees.
        dist_scores: ``(N, 8)`` mean softmax of the distribution family's members (sums to 1), ``None``
            without that family (``docs/method.md#distribution-family``).
        soft_label_calibrated: ``(N, 8)`` the calibrated soft label (sums to 1), ``None`` when the
            soft-labeler is not calibrated (``docs/method.md#calibration``).
    """

    soft_label: torch.Tensor | None = None
    ebc_scores: torch.Tensor | None = None
    au_scores: torch.Tensor | None = None
    member_probs: torch.Tensor | None = None
    spread: torch.Tensor | None = None
    dist_scores: torch.Tensor | None = None
    soft_label_calibrated: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def _is_meta_init() -> bool:
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
    use_pretrained = bool(pretrained) and not _is_meta_init()
    if use_pretrained:
        if pretrained.startswith("hf-hub:"):
            kwargs["pretrained_cfg_overlay"] = {"hf_hub_id": pretrained[len("hf-hub:"):]}
        else:
            if not os.path.isfile(pretrained):
                raise FileNotFoundError(
                    f"backbone_pretrained file {pretrained!r} does not exist; expected a timm checkpoint "
                    f"(.safetensors) for {name!r}, or 'hf-hub:org/name'"
                )
            kwargs["pretrained_cfg_overlay"] = {"file": os.path.abspath(pretrained)}
        logger.info("loading pretrained weights for backbone %s from %s", name, pretrained)
    backbone = timm.create_model(name, pretrained=use_pretrained, **kwargs)
    for module in backbone.modules():
        module._non_persistent_buffers_set.clear()
    if not _is_meta_init():
        # timm initialised (or loaded) it: the HF init must not touch it. Not on the meta device: there
        # ``from_pretrained`` must see which backbone tensors the checkpoint lacks (they are then missing
        # keys, which ``AffectNetPlusPreTrainedModel.from_pretrained`` refuses).
        for tensor in list(backbone.parameters()) + list(backbone.buffers()):
            tensor._is_hf_initialized = True
    return backbone


def _head(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    setattr(layer, _IS_HEAD, True)
    return layer


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
        self.classifier = _head(features, num_outputs)
        self.au_classifier = _head(features, NUM_ACTION_UNITS) if with_au else None

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.dropout(self.backbone(pixel_values))
        au_logits = self.au_classifier(features) if self.au_classifier is not None else None
        return self.classifier(features), au_logits


class AffectNetPlusPreTrainedModel(PreTrainedModel):
    """Common base: timm-aware weight init, input checks, image processor saved alongside."""

    main_input_name = "pixel_values"
    input_modalities = "image"
    base_model_prefix = ""
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise only this package's heads (normal(0, ``HEAD_INIT_STD``), bias 0); timm's backbone
        keeps its own init. Uses ``transformers.initialization`` (guarded: loaded tensors are kept)."""
        if getattr(module, _IS_HEAD, False):
            init.normal_(module.weight, mean=0.0, std=HEAD_INIT_STD)
            if module.bias is not None:
                init.zeros_(module.bias)

    # ---- image processor saved alongside -----------------------------------------------------

    @property
    def image_processor(self):
        """The image processor that prepares inputs for this model (saved with it)."""
        processor = getattr(self, "_image_processor", None)
        if processor is None:
            processor = default_image_processor(self.config)
            self._image_processor = processor
        return processor

    @image_processor.setter
    def image_processor(self, processor) -> None:
        if processor is not None:
            _check_processor_matches(processor, self.config)
        self._image_processor = processor

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """``PreTrainedModel.save_pretrained`` (safetensors) plus the image processor in the same folder.

        ``push_to_hub=True`` then uploads the folder with ``push_to_hub(repo_id)`` (``repo_id`` keyword,
        default: the folder name).
        """
        if os.path.isfile(save_directory):
            raise ValueError(f"save_pretrained needs a directory, {save_directory!r} is a file")
        if kwargs.pop("safe_serialization", True) is False:
            raise ValueError("AffectNet+ models are saved as safetensors only (safe_serialization=False refused)")
        repo_id = kwargs.pop("repo_id", None)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        self.image_processor.save_pretrained(save_directory)
        from affectnetplus_hf.fileio import chmod_like_new

        for weights in Path(save_directory).glob("*.safetensors*"):  # transformers writes them 0600
            chmod_like_new(weights)
        if push_to_hub:
            self.push_to_hub(repo_id or os.path.basename(os.path.abspath(save_directory)), token=kwargs.get("token"))
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load config + safetensors weights (never pickle) and re-attach the saved image processor.

        A local directory missing ``config.json`` or ``model.safetensors`` raises ``FileNotFoundError``
        naming the expected file.
        """
        path = os.fspath(pretrained_model_name_or_path)
        _check_model_dir(path)
        kwargs.setdefault("use_safetensors", True)
        output_loading_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                                  **kwargs)
        except RuntimeError as error:
            if "mismatched_sizes" not in str(error):
                raise
            where = os.path.join(path, "model.safetensors") if os.path.isdir(path) else path
            raise ValueError(f"{where}: tensor shapes do not match the model described by config.json; the weights "
                             "belong to another model") from None
        _check_loaded(model, path, info.get("missing_keys") or ())
        model._image_processor = load_saved_image_processor(path, model.config)
        return (model, info) if output_loading_info else model

    def _check_input(self, pixel_values) -> torch.Tensor:
        return check_pixel_values(pixel_values, self.config.image_size, self.config.num_channels)


def _check_loaded(model: nn.Module, path: str, missing_keys: Iterable[str]) -> None:
    """After ``from_pretrained``: a checkpoint lacking backbone or head tensors is an error (``ValueError``
    naming them): a head left at its random init would give plausible-looking but meaningless scores.
    Nothing may be left on the meta device."""
    heads = tuple(f"{name}." for name, module in model.named_modules() if getattr(module, _IS_HEAD, False))
    missing = sorted(missing_keys)
    backbone = [key for key in missing if not key.startswith(heads)]
    where = f"{path}/model.safetensors" if os.path.isdir(path) else path
    if backbone:
        shown = ", ".join(backbone[:10]) + (f", ... ({len(backbone)} in all)" if len(backbone) > 10 else "")
        raise ValueError(
            f"{where}: the checkpoint lacks {len(backbone)} backbone tensor(s) of this "
            f"{type(model).__name__} ({model.config.model_type}): {shown}. Backbone weights cannot be "
            f"re-initialised sensibly; save the complete model with save_pretrained"
        )
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise ValueError(
            f"{where}: the checkpoint lacks {len(missing)} head tensor(s) of this {type(model).__name__} "
            f"({model.config.model_type}): {shown}. A head left at its random init gives meaningless scores; "
            f"save the complete model with save_pretrained"
        )
    leftover = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise ValueError(
            f"{where}: {len(leftover)} tensor(s) were not loaded and are left uninitialised: {', '.join(leftover[:10])}"
        )


def _check_model_dir(path: str) -> None:
    """``FileNotFoundError`` for a local model directory missing its config or weights.

    Anything that is not an existing directory and does not look like a hub id (``name`` or
    ``org/name``) is a missing local directory.
    """
    if os.path.isdir(path):
        config_file = os.path.join(path, "config.json")
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"model directory {path!r} has no config.json (expected {config_file})")
        weights = os.path.join(path, "model.safetensors")
        index = os.path.join(path, "model.safetensors.index.json")
        if not os.path.isfile(weights) and not os.path.isfile(index):
            raise FileNotFoundError(
                f"model directory {path!r} has no weights: expected {weights} (or a sharded {index})"
            )
        return
    looks_local = (
        os.path.exists(path)
        or os.path.isabs(path)
        or path.startswith((".", "~"))
        or path.count("/") > 1
        or os.sep != "/" and os.sep in path
    )
    if looks_local:
        raise FileNotFoundError(
            f"model directory {path!r} does not exist (expected a folder with config.json and model.safetensors)"
        )


def default_image_processor(config):
    """An :class:`AffectNetPlusImageProcessor` matching ``config`` (size, mean, std)."""
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    return AffectNetPlusImageProcessor(
        size=config.image_size,
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
    _check_processor_matches(processor, config)
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


def _check_processor_matches(processor, config) -> None:
    size = processor_output_size(processor)
    if size is not None and size != (config.image_size, config.image_size):
        raise ValueError(
            f"image processor produces {size[0]}x{size[1]} images but the model expects "
            f"{config.image_size}x{config.image_size} (config.image_size)"
        )


# --------------------------------------------------------------------------------------------------
# Single models
# --------------------------------------------------------------------------------------------------


class _SingleBackboneModel(AffectNetPlusPreTrainedModel):
    """Layers ``backbone``, ``dropout``, ``classifier`` (+ ``au_classifier``) directly on the model."""

    _num_outputs = 2
    _with_au = False

    def __init__(self, config):
        super().__init__(config)
        net = ExpressionNet(
            config.backbone,
            num_outputs=self._num_outputs,
            with_au=self._with_au,
            image_size=config.image_size,
            num_channels=config.num_channels,
            drop_rate=config.drop_rate,
            drop_path_rate=config.drop_path_rate,
            pretrained=config.backbone_pretrained,
            backbone_kwargs=config.backbone_kwargs,
        )
        self.backbone = net.backbone
        self.dropout = net.dropout
        self.classifier = net.classifier
        if self._with_au:
            self.au_classifier = net.au_classifier
        self.post_init()

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.backbone(self._check_input(pixel_values)))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm gradient checkpointing of the backbone (where the architecture supports it)."""
        self.backbone.set_grad_checkpointing(enable)


def _binary_targets(labels: torch.Tensor, n: int) -> torch.Tensor:
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) (1 = the emotion, 0 = not), got {tuple(labels.shape)}")
    return labels.long()


class BinaryExpressionClassifier(_SingleBackboneModel):
    """One-vs-rest classifier of ``config.emotion`` on ``config.backbone`` (SPEC §6).

    ``forward(pixel_values, labels=None)``: ``labels`` (N,) 1 = the emotion, 0 = not; loss = CE.
    """

    config_class = BinaryExpressionClassifierConfig

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), _binary_targets(labels, logits.shape[0]))
        output = BinaryClassifierOutput(loss=loss, logits=logits, positive_probs=logits.float().softmax(-1)[:, 1])
        return output if return_dict is not False else output.to_tuple()


def au_loss(au_logits: torch.Tensor, au_labels: torch.Tensor, pos_weight: float | None = None) -> torch.Tensor:
    """Eq. 7: binary cross-entropy summed over the 21 AUs, averaged over the batch.

    ω_pos = ω_neg = 1 [choice]; ``pos_weight`` = scalar ω_pos/ω_neg [option].
    """
    weight = None if pos_weight is None else torch.tensor(pos_weight, device=au_logits.device, dtype=torch.float32)
    per_au = F.binary_cross_entropy_with_logits(au_logits.float(), au_labels.float(), pos_weight=weight, reduction="none")
    return per_au.sum(dim=1).mean()


def au_targets_for_labels(emotion_indices: torch.Tensor) -> torch.Tensor:
    """AU targets of SPEC §7: each training image gets AU_{its own emotion} (Neutral = zeros), (N, 21)."""
    table = torch.as_tensor(au_vectors(), device=emotion_indices.device)
    return table[emotion_indices.long()]


class AUExpressionClassifier(_SingleBackboneModel):
    """AU-based classifier of ``config.emotion`` (SPEC §7): binary head + 21-AU sigmoid head.

    ``forward(pixel_values, labels=None, au_labels=None, return_p_au=None)``: ``labels`` (N,) binary
    (1 = the emotion); ``au_labels`` (N, 21) 0/1 AU targets (see :func:`au_targets_for_labels`).
    Loss = CE + λ · Eq. 7. ``p_au`` (Eq. 12, via :func:`affectnetplus_hf.softlabel.au_positive_probability`)
    is computed in eval mode by default (``return_p_au`` forces it on/off).
    """

    config_class = AUExpressionClassifierConfig
    _with_au = True

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        au_labels: torch.Tensor | None = None,
        return_p_au: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        features = self._features(pixel_values)
        logits, au_logits = self.classifier(features), self.au_classifier(features)
        positive = logits.float().softmax(-1)[:, 1]
        au_probs = au_logits.float().sigmoid()
        loss = binary_loss = au_term = None
        if labels is not None:
            binary_loss = F.cross_entropy(logits.float(), _binary_targets(labels, logits.shape[0]))
            loss = binary_loss
        if au_labels is not None:
            if tuple(au_labels.shape) != (au_logits.shape[0], NUM_ACTION_UNITS):
                raise ValueError(
                    f"au_labels must have shape ({au_logits.shape[0]}, {NUM_ACTION_UNITS}), got {tuple(au_labels.shape)}"
                )
            au_term = au_loss(au_logits, au_labels, self.config.au_pos_weight)
            loss = self.config.au_loss_weight * au_term if loss is None else loss + self.config.au_loss_weight * au_term
        p_au = None
        if return_p_au if return_p_au is not None else not self.training:
            p_au = torch.as_tensor(
                softlabel.au_positive_probability(
                    self.config.emotion,
                    positive.detach().cpu().numpy(),
                    au_probs.detach().cpu().numpy(),
                    aus=self.config.aus,
                    neutral_similarity=self.config.neutral_similarity,
                ),
                dtype=torch.float32,
            ).to(logits.device)
        output = AUClassifierOutput(
            loss=loss, logits=logits, au_logits=au_logits, positive_probs=positive, au_probs=au_probs,
            p_au=p_au, binary_loss=binary_loss, au_loss=au_term,
        )
        return output if return_dict is not False else output.to_tuple()


class HardFERModel(_SingleBackboneModel):
    """Hard-FER baseline (SPEC §10): 8-way softmax; loss = CE with ``config.class_weights``.

    ``labels``: (N,) SPEC §1 indices 0–7.
    """

    config_class = HardFERConfig
    _num_outputs = NUM_EMOTIONS

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            if labels.shape != (logits.shape[0],):
                raise ValueError(f"labels must have shape ({logits.shape[0]},) with values 0..7, got {tuple(labels.shape)}")
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=torch.float32, device=logits.device)
            loss = F.cross_entropy(
                logits.float(), labels.long(), weight=weight, label_smoothing=self.config.label_smoothing
            )
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().softmax(-1))
        return output if return_dict is not False else output.to_tuple()


class SoftFERModel(_SingleBackboneModel):
    """Soft-FER baseline (SPEC §10): 8 sigmoid outputs; loss = BCE against soft targets (N, 8) in [0, 1]."""

    config_class = SoftFERConfig
    _num_outputs = NUM_EMOTIONS

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(logits.shape):
                raise ValueError(f"labels must be soft labels of shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().sigmoid())
        return output if return_dict is not False else output.to_tuple()


def distribution_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy ``-Σ_e t_e log softmax(logits)_e``, averaged over the batch."""
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(f"labels must be vote distributions of shape {tuple(logits.shape)}, got {tuple(targets.shape)}")
    return -(targets.float() * logits.float().log_softmax(-1)).sum(-1).mean()


class DistributionClassifier(_SingleBackboneModel):
    """A member of the vote-distribution family (``docs/method.md#distribution-family``): 8-way softmax.

    ``labels``: (N, 8) vote distributions (each row sums to 1); loss = soft-target cross-entropy
    (FER+'s "crossentropy" mode, Barsoum et al. 2016).
    """

    config_class = DistributionClassifierConfig
    _num_outputs = NUM_EMOTIONS

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        logits = self.classifier(self._features(pixel_values))
        loss = distribution_loss(logits, labels) if labels is not None else None
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().softmax(-1))
        return output if return_dict is not False else output.to_tuple()


# --------------------------------------------------------------------------------------------------
# The soft-labeler
# --------------------------------------------------------------------------------------------------


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


class SoftLabeler(AffectNetPlusPreTrainedModel):
    """The AffectNet+ soft-labeler: every member of both families, fed from one decoded batch (SPEC §6–8).

    Members: ``ebc_members[j * 8 + e]`` is the binary classifier of emotion ``e`` on
    ``config.ebc_backbones[j]``; ``au_members[e]`` is the AU classifier of emotion ``e``;
    ``dist_members[k]`` is the k-th member of the vote-distribution family. Their layers have the same
    names as :class:`BinaryExpressionClassifier` / :class:`AUExpressionClassifier` /
    :class:`DistributionClassifier`.

    ``member_execution``: ``"loop"`` (default; measured ~1.8x faster than vmap on CPU for the tiny
    32-member ensemble, ``benchmarks/results/ensemble.json``; not yet measured on a GPU) or ``"vmap"``
    (members of one architecture stacked with ``torch.func``; eval mode only).
    """

    config_class = SoftLabelerConfig
    member_execution = "loop"

    def __init__(self, config: SoftLabelerConfig):
        super().__init__(config)
        for family in config.paper_families:
            config.confidences(family)  # ValueError now rather than at the first forward
        common = dict(
            image_size=config.image_size,
            num_channels=config.num_channels,
            backbone_kwargs=config.backbone_kwargs,
        )
        self.ebc_members = nn.ModuleList(
            ExpressionNet(backbone, num_outputs=2, **common) for backbone in config.ebc_backbones for _ in EMOTIONS
        )
        self.au_members = nn.ModuleList(
            ExpressionNet(backbone, num_outputs=2, with_au=True, **common) for backbone in config.au_backbones
        )
        self.dist_members = nn.ModuleList(
            ExpressionNet(backbone, num_outputs=NUM_EMOTIONS, **common) for backbone in config.dist_backbones
        )
        self._stacked_cache: dict[tuple, Any] = {}
        self.post_init()

    # ---- assembly ------------------------------------------------------------------------------

    @classmethod
    def from_members(
        cls,
        ebc_members: Mapping[tuple[str, str | int], BinaryExpressionClassifier] | None = None,
        au_members: Mapping[str | int, AUExpressionClassifier] | None = None,
        confidences: Mapping[str, Any] | None = None,
        processor=None,
        *,
        cs_mode: str = "balanced",
        ebc_backbones: Sequence[str] | None = None,
        dist_members: Sequence[DistributionClassifier] | None = None,
        test_time_flip: bool = False,
        calibration: Mapping[str, Any] | None = None,
    ) -> "SoftLabeler":
        """Assemble a soft-labeler from trained members (weights are copied).

        Args:
            ebc_members: ``{(backbone, emotion): BinaryExpressionClassifier}`` — a full grid, every
                emotion (name or index) for each backbone; ``None``/empty = no EBC family.
            au_members: ``{emotion: AUExpressionClassifier}`` for all 8 emotions; ``None``/empty = no
                AU family.
            confidences: the measured CS (SPEC §5), either ``{"ebc": (J, 8), "au": (8,)}`` (stored
                under ``cs_mode``) or ``{"balanced": {...}, "eq3": {...}}`` (both modes kept). EBC rows
                follow ``ebc_backbones``.
            processor: the image processor the members were trained with (default: built from the
                members' image size and normalisation).
            cs_mode: the mode the soft labels use.
            ebc_backbones: order of the J backbones (default: first appearance in ``ebc_members``).
            dist_members: the members of the vote-distribution family, in order (``None``/empty = none).
            test_time_flip, calibration: see :class:`SoftLabelerConfig`.
        """
        ebc_members = dict(ebc_members or {})
        au_members = dict(au_members or {})
        dist_members = list(dist_members or [])
        if not ebc_members and not au_members and not dist_members:
            raise ValueError("from_members needs ebc_members, au_members or dist_members; got none")
        for k, member in enumerate(dist_members):
            if not isinstance(member, DistributionClassifier):
                raise ValueError(f"dist_members[{k}] must be a DistributionClassifier, got {type(member).__name__}")
        grid: dict[tuple[str, str], BinaryExpressionClassifier] = {}
        order: list[str] = []
        for key, member in ebc_members.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"ebc_members keys must be (backbone, emotion) tuples, got {key!r}")
            backbone, emotion = key[0], _resolve_emotion(key[1])
            if not isinstance(member, BinaryExpressionClassifier):
                raise ValueError(f"ebc_members[{key!r}] must be a BinaryExpressionClassifier, got {type(member).__name__}")
            if member.config.backbone != backbone or member.config.emotion != emotion:
                raise ValueError(
                    f"ebc_members[{key!r}] is a {member.config.backbone}/{member.config.emotion} classifier; "
                    f"expected {backbone}/{emotion}"
                )
            grid[(backbone, emotion)] = member
            if backbone not in order:
                order.append(backbone)
        backbones = list(ebc_backbones) if ebc_backbones is not None else order
        if sorted(backbones) != sorted(order):
            raise ValueError(f"ebc_backbones {backbones} do not match the backbones of ebc_members {order}")
        missing = [f"{b}/{e}" for b in backbones for e in EMOTIONS if (b, e) not in grid]
        if missing:
            raise ValueError(f"ebc_members must hold all 8 emotions for every backbone; missing {missing}")
        au: dict[str, AUExpressionClassifier] = {}
        for key, member in au_members.items():
            emotion = _resolve_emotion(key)
            if not isinstance(member, AUExpressionClassifier):
                raise ValueError(f"au_members[{key!r}] must be an AUExpressionClassifier, got {type(member).__name__}")
            if member.config.emotion != emotion:
                raise ValueError(f"au_members[{key!r}] is the {member.config.emotion} classifier; expected {emotion}")
            au[emotion] = member
        if au and len(au) != NUM_EMOTIONS:
            raise ValueError(f"au_members must hold all 8 emotions; missing {[e for e in EMOTIONS if e not in au]}")
        ordered_ebc = [grid[(b, e)] for b in backbones for e in EMOTIONS]
        ordered_au = [au[e] for e in EMOTIONS] if au else []
        everyone = ordered_ebc + ordered_au + dist_members
        reference = everyone[0].config
        def who(member) -> str:
            return f"{member.config.backbone}/{getattr(member.config, 'emotion', 'distribution')}"

        for member in everyone[1:]:
            for field in ("image_size", "num_channels", "image_mean", "image_std", "backbone_kwargs"):
                if getattr(member.config, field) != getattr(reference, field):
                    raise ValueError(
                        f"all members must share {field} (one decoded input feeds them all): "
                        f"{who(member)} has {getattr(member.config, field)!r}, "
                        f"{who(everyone[0])} has {getattr(reference, field)!r}"
                    )
        au_options = {(m.config.aus, m.config.neutral_similarity) for m in ordered_au}
        if len(au_options) > 1:
            raise ValueError(f"AU members disagree on (aus, neutral_similarity): {sorted(au_options)}")
        aus, neutral_similarity = au_options.pop() if au_options else ("table2", SoftLabelerConfig().neutral_similarity)
        config = SoftLabelerConfig(
            ebc_backbones=backbones,
            au_backbones=[m.config.backbone for m in ordered_au],
            confidence_scores=_normalise_confidences(confidences, cs_mode),
            cs_mode=cs_mode,
            image_size=reference.image_size,
            num_channels=reference.num_channels,
            image_mean=reference.image_mean,
            image_std=reference.image_std,
            aus=aus,
            neutral_similarity=neutral_similarity,
            backbone_kwargs=reference.backbone_kwargs,
            dist_backbones=[m.config.backbone for m in dist_members],
            test_time_flip=test_time_flip,
            calibration=dict(calibration) if calibration is not None else None,
        )
        with torch.device("meta"):
            model = cls(config)
        for target, source in zip(list(model.ebc_members) + list(model.au_members) + list(model.dist_members), everyone):
            state = {k: v.detach().clone() for k, v in source.state_dict().items()}
            target.load_state_dict(state, strict=True, assign=True)
        leftover = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
        if leftover:  # pragma: no cover - guarded by strict loading
            raise RuntimeError(f"from_members left tensors uninitialised: {leftover[:5]}")
        model.eval()
        if processor is not None:
            model.image_processor = processor
        return model

    # ---- inference -----------------------------------------------------------------------------

    def _member_logits_loop(self, pixel_values: torch.Tensor):
        ebc = [member(pixel_values)[0] for member in self.ebc_members]
        au = [member(pixel_values) for member in self.au_members]
        return ebc, au

    def _dist_probs(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """(N, K, 8) softmax of the distribution members; averaged with the mirrored image when
        ``config.test_time_flip``."""
        if not len(self.dist_members):
            return None
        views = [pixel_values, pixel_values.flip(-1)] if self.config.test_time_flip else [pixel_values]
        probs = [torch.stack([member(view)[0].float().softmax(-1) for member in self.dist_members], dim=1)
                 for view in views]
        return torch.stack(probs).mean(dim=0)

    def _stacked_state(self, members: Sequence[nn.Module]):
        from torch.func import stack_module_state

        tensors = [t for m in members for t in list(m.parameters()) + list(m.buffers())]
        key = (tuple(id(m) for m in members),)
        version = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)
        cached = self._stacked_cache.get(key)
        if cached is None or cached[0] != version:
            with torch.no_grad():
                params, buffers = stack_module_state(list(members))
            params = {k: v.detach() for k, v in params.items()}
            template = _meta_copy(members[0])
            cached = (version, params, buffers, template)
            self._stacked_cache[key] = cached
        return cached[1:]

    def _member_logits_vmap(self, pixel_values: torch.Tensor):
        from torch.func import functional_call, vmap

        def run_group(members, with_au: bool):
            params, buffers, template = self._stacked_state(members)

            def call(p, b, x):
                logits, au_logits = functional_call(template, (p, b), (x,))
                return (logits, au_logits) if with_au else logits

            return vmap(call, in_dims=(0, 0, None))(params, buffers, pixel_values)

        ebc: list[torch.Tensor] = []
        for j in range(len(self.config.ebc_backbones)):
            logits = run_group(list(self.ebc_members[j * NUM_EMOTIONS:(j + 1) * NUM_EMOTIONS]), with_au=False)
            ebc.extend(logits.unbind(0))
        au: list[tuple[torch.Tensor, torch.Tensor]] = []
        groups: dict[str, list[int]] = {}
        for e, backbone in enumerate(self.config.au_backbones):
            groups.setdefault(backbone, []).append(e)
        au_by_emotion: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for indices in groups.values():
            logits, au_logits = run_group([self.au_members[e] for e in indices], with_au=True)
            for k, e in enumerate(indices):
                au_by_emotion[e] = (logits[k], au_logits[k])
        au = [au_by_emotion[e] for e in range(len(self.au_members))]
        return ebc, au

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs):
        """Soft labels of a preprocessed batch ``(N, C, S, S)`` (SPEC §6–8); see :class:`SoftLabelerOutput`.

        Works with or without ``torch.no_grad``; the outputs carry no gradient (the members are trained
        one by one, SPEC §6–7, never through the soft label)."""
        pixel_values = self._check_input(pixel_values)
        stacked = self.member_execution == "vmap" and not self.training
        ebc_logits, au_outputs = (self._member_logits_vmap if stacked else self._member_logits_loop)(pixel_values)
        dist_probs = self._dist_probs(pixel_values)
        n = pixel_values.shape[0]
        ebc_probs = au_binary = au_probs = None
        if ebc_logits:
            ebc_probs = torch.stack([logits.float().softmax(-1)[:, 1] for logits in ebc_logits], dim=1)
        if au_outputs:
            au_binary = torch.stack([logits.float().softmax(-1)[:, 1] for logits, _ in au_outputs], dim=1)
            au_probs = torch.stack([au_logits.float().sigmoid() for _, au_logits in au_outputs], dim=1)
        result = self.combine(  # the soft-label math of SPEC §6–8 in float64 numpy: no gradient flows back
            ebc_probs=None if ebc_probs is None else ebc_probs.detach().cpu().numpy(),
            au_binary_probs=None if au_binary is None else au_binary.detach().cpu().numpy(),
            au_probs=None if au_probs is None else au_probs.detach().cpu().numpy(),
            dist_probs=None if dist_probs is None else dist_probs.detach().cpu().numpy(),
            n=n,
        )
        output = SoftLabelerOutput(
            **{k: None if v is None else torch.as_tensor(v, dtype=torch.float32).to(pixel_values.device) for k, v in result.items()}
        )
        return output if return_dict is not False else output.to_tuple()

    def combine(self, ebc_probs=None, au_binary_probs=None, au_probs=None, n: int | None = None,
                dist_probs=None) -> dict[str, np.ndarray | None]:
        """The numpy half of ``forward``: member probabilities → scores, soft label, spread (SPEC §6–8).

        ``ebc_probs``: (N, J·8) positive probabilities, column ``j*8 + e``; ``au_binary_probs``: (N, 8)
        binary-head P(emotion) of the AU members; ``au_probs``: (N, 8, 21) their ÂU; ``dist_probs``:
        (N, K, 8) softmax of the distribution members.
        Uses :mod:`affectnetplus_hf.softlabel` (Eqs. 4–5, 9–14) with ``config.cs_mode``'s confidences and
        :func:`affectnetplus_hf.calibration.apply_calibration` for ``soft_label_calibrated``.
        """
        from affectnetplus_hf.calibration import apply_calibration

        config = self.config
        ebc_scores = au_scores = None
        columns: list[np.ndarray] = []
        per_emotion: list[np.ndarray] = []  # (members_of_e, N) stacks
        if "ebc" in config.families:
            probs = _to_numpy(ebc_probs)
            J = len(config.ebc_backbones)
            stacked = probs.reshape(probs.shape[0], J, NUM_EMOTIONS).transpose(1, 0, 2)  # (J, N, 8)
            ebc_scores = softlabel.ebc_semantic_scores(stacked, config.confidences("ebc"))
            columns.append(probs)
            per_emotion.append(stacked)
        if "au" in config.families:
            binary = _to_numpy(au_binary_probs)
            aus = _to_numpy(au_probs)
            p_au = np.stack(
                [
                    softlabel.au_positive_probability(
                        e, binary[:, e], aus[:, e, :], aus=config.aus, neutral_similarity=config.neutral_similarity
                    )
                    for e in range(NUM_EMOTIONS)
                ],
                axis=1,
            )
            au_scores = softlabel.au_semantic_scores(p_au, config.confidences("au"))
            columns.append(p_au)
            per_emotion.append(p_au[None])
        dist_scores = None
        if "dist" in config.families:
            probs = _to_numpy(dist_probs)  # (N, K, 8)
            dist_scores = probs.mean(axis=1)
            columns.append(probs.reshape(probs.shape[0], -1))
            per_emotion.append(probs.transpose(1, 0, 2))
        if config.paper_families:
            soft = softlabel.soft_labels(ebc_scores=ebc_scores, au_scores=au_scores)
        else:
            soft = dist_scores
        spread = np.concatenate(per_emotion, axis=0).std(axis=0)
        calibrated = None
        if config.calibration is not None:
            calibrated = apply_calibration({"ebc": ebc_scores, "au": au_scores, "dist": dist_scores}, config.calibration)
        return {
            "soft_label": soft,
            "ebc_scores": ebc_scores,
            "au_scores": au_scores,
            "member_probs": np.concatenate(columns, axis=1),
            "spread": spread,
            "dist_scores": dist_scores,
            "soft_label_calibrated": calibrated,
        }

    @torch.inference_mode()
    def predict(
        self,
        images,
        batch_size: int = 32,
        *,
        face_boxes: Sequence | None = None,
        device: str | torch.device | None = None,
        dtype: str = "auto",
    ) -> SoftLabelerOutput:
        """Soft labels for images: paths, PIL images, encoded bytes or (H, W[, 3]) uint8 arrays (one or a list).

        Batches them through ``self.image_processor`` (``face_boxes``: optional (x0, y0, x1, y1) per
        image) and returns one :class:`SoftLabelerOutput` on CPU with a row per image.
        """
        from affectnetplus_hf.models.inference import as_image_sources, autocast_context, prepare_for_inference

        if not isinstance(images, (list, tuple)):
            images = [images]
        if not images:
            raise ValueError("predict needs at least one image")
        if face_boxes is not None and len(face_boxes) != len(images):
            raise ValueError(f"face_boxes has {len(face_boxes)} entries for {len(images)} images; expected equal")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        device = torch.device(device) if device is not None else next(self.parameters()).device
        prepare_for_inference(self, device)
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = as_image_sources(images[start:start + batch_size])
            boxes = None if face_boxes is None else list(face_boxes[start:start + batch_size])
            pixel_values = self.image_processor.preprocess(chunk, face_boxes=boxes, return_tensors="pt")["pixel_values"]
            pixel_values = pixel_values.to(device).contiguous(memory_format=torch.channels_last)
            with autocast_context(device, dtype):
                outputs.append(self(pixel_values))
        return concat_outputs(outputs)

    def map_function(self, image_column: str = "image", **kwargs):
        """A picklable batched ``datasets`` map function that adds this model's soft labels to each row::

            fn = labeler.map_function(image_column="image", hard_label_column="label")
            ds = ds.map(fn, batched=True, batch_size=64, features=fn.map_features(ds.features))

        ``kwargs``: ``hard_label_column``, ``hard_label_names``, ``face_box_column``, ``id_column``,
        ``device``, ``dtype``, ``skip_bad`` of :class:`affectnetplus_hf.hf_map.SoftLabelMap`.
        """
        from affectnetplus_hf.hf_map import SoftLabelMap

        return SoftLabelMap(self, image_column, **kwargs)

    @staticmethod
    def subsets(soft_labels, hard_labels) -> np.ndarray:
        """SPEC §8 subset names (``easy``/``challenging``/``difficult``) via :func:`softlabel.assign_subsets`."""
        return softlabel.assign_subsets(_to_numpy(soft_labels), np.asarray(hard_labels.cpu() if isinstance(hard_labels, torch.Tensor) else hard_labels))

    def train(self, mode: bool = True):
        self._stacked_cache = {}
        return super().train(mode)


def _meta_copy(module: nn.Module) -> nn.Module:
    """A structural copy of ``module`` whose tensors live on the meta device (a template for vmap)."""
    import copy

    template = copy.deepcopy(module).to("meta")
    return template


def concat_outputs(outputs: Iterable[SoftLabelerOutput]) -> SoftLabelerOutput:
    """Concatenate batch outputs along the batch axis (on CPU)."""
    outputs = list(outputs)
    merged = {}
    for field in ("soft_label", "ebc_scores", "au_scores", "member_probs", "spread", "dist_scores", "soft_label_calibrated"):
        values = [getattr(o, field) for o in outputs]
        merged[field] = None if values[0] is None else torch.cat([v.cpu() for v in values], dim=0)
    return SoftLabelerOutput(**merged)


def _normalise_confidences(confidences, cs_mode: str) -> dict | None:
    """Accept ``{"ebc": ..., "au": ...}`` (one mode) or ``{mode: {...}}`` and return the stored form."""
    if confidences is None:
        return None
    if not isinstance(confidences, Mapping):
        raise ValueError(f"confidences must be a dict, got {type(confidences).__name__}")
    if set(confidences) <= set(CS_MODES):
        return {mode: {f: _to_numpy(v).tolist() for f, v in fam.items()} for mode, fam in confidences.items()}
    return {cs_mode: {f: _to_numpy(v).tolist() for f, v in confidences.items()}}
