"""The single-backbone AffectNet+ models as transformers ``PreTrainedModel``s, and their losses.

* :class:`BinaryExpressionClassifier` — one emotion, one backbone, 2-way softmax (``docs/method.md#ebc-scores``).
* :class:`AUExpressionClassifier` — binary head + 21-AU sigmoid head, P_AU post-processing
  (``docs/method.md#au-scores``).
* :class:`DistributionClassifier` — 8-way softmax on vote distributions (``docs/method.md#distribution-family``).
* :class:`HardFERModel`, :class:`SoftFERModel` — the baselines (``docs/method.md#baselines``).
* :class:`AffectNetPlusPreTrainedModel` — their base, shared with
  :class:`~affectnetplus_hf.models.modeling_softlabeler.SoftLabeler`.

``_init_weights`` initialises only this package's heads (the timm backbone keeps timm's initialisation), and
``from_pretrained`` re-attaches the image processor saved next to the weights (``model.image_processor``).
Importing this module registers the models with ``AutoModel`` and ``AutoModelForImageClassification``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from transformers import AutoModel, AutoModelForImageClassification, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from affectnetplus_hf.emotions import EMOTIONS, NUM_ACTION_UNITS, NUM_EMOTIONS, au_vectors, aus_weights
from affectnetplus_hf.fileio import chmod_like_new
from affectnetplus_hf.image_processing import (
    AffectNetPlusImageProcessor,  # noqa: F401  (AutoImageProcessor registration)
)
from affectnetplus_hf.models.backbones import HEAD_INIT_STD, ExpressionNet, check_pixel_values, is_head
from affectnetplus_hf.models.configuration_affectnetplus import (
    AUExpressionClassifierConfig,
    BinaryExpressionClassifierConfig,
    DistributionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
)
from affectnetplus_hf.models.hub import (
    check_loaded_weights,
    check_model_dir,
    check_processor_matches,
    default_image_processor,
    load_saved_image_processor,
    meta_tensor_names,
    weights_path,
)
from affectnetplus_hf.paper import NEUTRAL_SIMILARITY
from affectnetplus_hf.pretrained import resolve_model


@dataclass
class BinaryClassifierOutput(ImageClassifierOutput):
    """Output of :class:`BinaryExpressionClassifier`: transformers' ``ImageClassifierOutput`` plus
    ``positive_probs``.

    Attributes:
        loss: cross-entropy, when ``labels`` were given.
        logits: ``(N, 2)``, column 0 = "not the emotion", column 1 = the emotion.
        hidden_states, attentions: always ``None`` (timm backbones).
        positive_probs: ``(N,)`` P(emotion | image) = softmax(logits)[:, 1] (P_j(i | img) of Eq. 4).
    """

    positive_probs: torch.Tensor | None = None


@dataclass
class AUClassifierOutput(ImageClassifierOutput):
    """Output of :class:`AUExpressionClassifier` (``docs/method.md#au-scores``): transformers'
    ``ImageClassifierOutput`` plus the AU head's outputs.

    Attributes:
        loss: ``CE + λ · AU BCE`` when ``labels`` and ``au_labels`` were given (CE alone without
            ``au_labels``).
        logits: ``(N, 2)`` binary head (column 1 = the emotion).
        hidden_states, attentions: always ``None`` (timm backbones).
        au_logits: ``(N, 21)`` AU head, AUs in ``docs/method.md#action-units`` order.
        positive_probs: ``(N,)`` binary-head P(emotion) (BPV[0] of Eq. 11).
        au_probs: ``(N, 21)`` sigmoid(au_logits) = ÂU.
        p_au: ``(N,)`` P_AU(i | img) of Eq. 12 (``None`` while training unless asked for).
        binary_loss, au_loss: the two loss terms.
    """

    au_logits: torch.Tensor | None = None
    positive_probs: torch.Tensor | None = None
    au_probs: torch.Tensor | None = None
    p_au: torch.Tensor | None = None
    binary_loss: torch.Tensor | None = None
    au_loss: torch.Tensor | None = None


@dataclass
class FERClassifierOutput(ImageClassifierOutput):
    """Output of the baselines and the distribution family (``docs/method.md#baselines``):
    transformers' ``ImageClassifierOutput`` plus ``probs``.

    Attributes:
        loss: CE (Hard-FER), BCE with soft targets (Soft-FER) or soft-target CE (distribution family)
            when ``labels`` were given.
        logits: ``(N, 8)``, label-space order.
        hidden_states, attentions: always ``None`` (timm backbones).
        probs: ``(N, 8)`` softmax (Hard-FER, distribution family) or sigmoid (Soft-FER; a predicted soft label).
    """

    probs: torch.Tensor | None = None


def au_weight_matrix(aus: str, device: torch.device | str | None = None) -> torch.Tensor:
    """``(8, 21)`` float64 ``AU_e[a] · AUS[a]``, the weights of Eq. 9 (``aus``: ``"table2"`` or ``"paper"``)."""
    return torch.from_numpy(au_vectors().astype(np.float64) * aus_weights(aus)[None, :]).to(device)


def au_positive_probabilities(
    binary_probs: torch.Tensor,
    au_probs: torch.Tensor,
    emotions: Sequence[int],
    aus: str = "table2",
    neutral_similarity: float = NEUTRAL_SIMILARITY,
) -> torch.Tensor:
    """P_AU(i | img) of AU classifiers (Eqs. 9–12, ``docs/method.md#au-scores``) on tensors, in float64:
    the tensor form of :func:`affectnetplus_hf.softlabel.au_positive_probability`.

    ``binary_probs``: ``(N, M)`` binary-head P(emotion) of M classifiers; ``au_probs``: ``(N, M, 21)``
    their ÂU; ``emotions``: the M emotion indices they classify. ``SV = ÂU · (AU_e ⊙ AUS)`` with
    ``SV_Neutral = neutral_similarity``, ``BSV = [SV_i, mean_{e≠i} SV_e]``, ``P = ½ (BPV + softmax(BSV))``;
    returns ``P[0]``, ``(N, M)`` float64.
    """
    device = au_probs.device
    with torch.autocast(device.type, enabled=False):  # float64 throughout, also under mixed precision
        similarity = au_probs.double() @ au_weight_matrix(aus, device).T  # (N, M, 8)
        similarity[..., EMOTIONS.index("Neutral")] = neutral_similarity
        index = torch.as_tensor(list(emotions), device=device).expand(similarity.shape[:-1])
        own = similarity.gather(-1, index[..., None]).squeeze(-1)
        others = (similarity.sum(-1) - own) / (NUM_EMOTIONS - 1)
        # softmax([own, others])[0] = 1 / (1 + exp(others - own))
        return 0.5 * (binary_probs.double() + 1.0 / (1.0 + torch.exp(others - own)))


def check_finite_probabilities(name: str, probs: torch.Tensor) -> None:
    """``ValueError`` naming ``name`` when ``probs`` holds NaN or inf (a non-finite input or an overflow
    under mixed precision), instead of soft labels of NaN."""
    if not bool(torch.isfinite(probs).all()):
        raise ValueError(
            f"{name} hold a non-finite value (NaN or inf): check the pixel values, or run in float32 (dtype='fp32')"
        )


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
        if is_head(module):
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
            check_processor_matches(processor, self.config)
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
        for weights in Path(save_directory).glob("*.safetensors*"):  # transformers writes them 0600
            chmod_like_new(weights)
        if push_to_hub:
            self.push_to_hub(repo_id or os.path.basename(os.path.abspath(save_directory)), token=kwargs.get("token"))
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load config + safetensors weights (never pickle) and re-attach the saved image processor.

        A shipped soft-labeler's name (``"ferplus"``) is its folder
        (:func:`~affectnetplus_hf.pretrained.resolve_model`). A local folder that cannot be loaded fails
        first, naming the file (:func:`~affectnetplus_hf.models.hub.check_model_dir`).
        """
        path = resolve_model(pretrained_model_name_or_path)
        pretrained_model_name_or_path = path
        check_model_dir(path)
        kwargs.setdefault("use_safetensors", True)
        output_loading_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except RuntimeError as error:
            if "mismatched_sizes" not in str(error):
                raise
            raise ValueError(
                f"{weights_path(path)}: tensor shapes do not match the model described by config.json; the weights "
                "belong to another model"
            ) from None
        check_loaded_weights(model, path, info.get("missing_keys") or ())
        model._image_processor = load_saved_image_processor(path, model.config)
        return (model, info) if output_loading_info else model

    @classmethod
    def from_state_dict(cls, config, state_dict: Mapping[str, torch.Tensor]):
        """A model of ``config`` holding exactly the tensors of ``state_dict`` (built on the meta device,
        so nothing is initialised; every tensor must be given), in eval mode."""
        with torch.device("meta"):
            model = cls(config)
        model.load_state_dict(state_dict, strict=True, assign=True)
        leftover = meta_tensor_names(model)
        if leftover:
            raise RuntimeError(f"{cls.__name__} built without tensors {leftover[:5]}")
        return model.eval()

    def _check_input(self, pixel_values) -> torch.Tensor:
        return check_pixel_values(pixel_values, self.config.image_size, self.config.num_channels)


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
    """One-vs-rest classifier of ``config.emotion`` on ``config.backbone`` (``docs/method.md#ebc-scores``).

    ``forward(pixel_values, labels=None)``: ``labels`` (N,) 1 = the emotion, 0 = not; loss = CE.
    """

    config_class = BinaryExpressionClassifierConfig

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            loss = nnf.cross_entropy(logits.float(), _binary_targets(labels, logits.shape[0]))
        output = BinaryClassifierOutput(loss=loss, logits=logits, positive_probs=logits.float().softmax(-1)[:, 1])
        return output if return_dict is not False else output.to_tuple()


def au_loss(au_logits: torch.Tensor, au_labels: torch.Tensor, pos_weight: float | None = None) -> torch.Tensor:
    """Eq. 7: binary cross-entropy summed over the 21 AUs, averaged over the batch.

    ω_pos = ω_neg = 1 [choice]; ``pos_weight`` = scalar ω_pos/ω_neg [option].
    """
    weight = None if pos_weight is None else torch.tensor(pos_weight, device=au_logits.device, dtype=torch.float32)
    per_au = nnf.binary_cross_entropy_with_logits(
        au_logits.float(), au_labels.float(), pos_weight=weight, reduction="none"
    )
    return per_au.sum(dim=1).mean()


def au_targets_for_labels(emotion_indices: torch.Tensor) -> torch.Tensor:
    """AU targets (``docs/method.md#au-scores``): each training image gets AU_{its own emotion} (Neutral = zeros),
    (N, 21)."""
    table = torch.as_tensor(au_vectors(), device=emotion_indices.device)
    return table[emotion_indices.long()]


class AUExpressionClassifier(_SingleBackboneModel):
    """AU-based classifier of ``config.emotion`` (``docs/method.md#au-scores``): binary head + 21-AU sigmoid head.

    ``forward(pixel_values, labels=None, au_labels=None, return_p_au=None)``: ``labels`` (N,) binary
    (1 = the emotion); ``au_labels`` (N, 21) 0/1 AU targets (see :func:`au_targets_for_labels`).
    Loss = CE + λ · Eq. 7. ``p_au`` (Eq. 12, :func:`au_positive_probabilities`, on the model's device)
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
            binary_loss = nnf.cross_entropy(logits.float(), _binary_targets(labels, logits.shape[0]))
            loss = binary_loss
        if au_labels is not None:
            if tuple(au_labels.shape) != (au_logits.shape[0], NUM_ACTION_UNITS):
                raise ValueError(
                    f"au_labels must have shape ({au_logits.shape[0]}, {NUM_ACTION_UNITS}), "
                    f"got {tuple(au_labels.shape)}"
                )
            au_term = au_loss(au_logits, au_labels, self.config.au_pos_weight)
            loss = (
                self.config.au_loss_weight * au_term if loss is None else loss + self.config.au_loss_weight * au_term
            )
        p_au = None
        if return_p_au if return_p_au is not None else not self.training:
            positive_detached = positive.detach()
            check_finite_probabilities(f"{self.config.emotion} AU classifier probabilities", positive_detached)
            check_finite_probabilities(f"{self.config.emotion} AU probabilities", au_probs.detach())
            p_au = au_positive_probabilities(
                positive_detached[:, None],
                au_probs.detach()[:, None, :],
                [EMOTIONS.index(self.config.emotion)],
                aus=self.config.aus,
                neutral_similarity=self.config.neutral_similarity,
            )[:, 0].float()
        output = AUClassifierOutput(
            loss=loss,
            logits=logits,
            au_logits=au_logits,
            positive_probs=positive,
            au_probs=au_probs,
            p_au=p_au,
            binary_loss=binary_loss,
            au_loss=au_term,
        )
        return output if return_dict is not False else output.to_tuple()


class HardFERModel(_SingleBackboneModel):
    """Hard-FER baseline (``docs/method.md#baselines``): 8-way softmax; loss = CE with ``config.class_weights``.

    ``labels``: (N,) label-space indices 0–7.
    """

    config_class = HardFERConfig
    _num_outputs = NUM_EMOTIONS

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            if labels.shape != (logits.shape[0],):
                raise ValueError(
                    f"labels must have shape ({logits.shape[0]},) with values 0..7, got {tuple(labels.shape)}"
                )
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=torch.float32, device=logits.device)
            loss = nnf.cross_entropy(
                logits.float(), labels.long(), weight=weight, label_smoothing=self.config.label_smoothing
            )
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().softmax(-1))
        return output if return_dict is not False else output.to_tuple()


class SoftFERModel(_SingleBackboneModel):
    """Soft-FER baseline (``docs/method.md#baselines``): 8 sigmoid outputs; loss = BCE against soft targets (N, 8)
    in [0, 1]."""

    config_class = SoftFERConfig
    _num_outputs = NUM_EMOTIONS

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        logits = self.classifier(self._features(pixel_values))
        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(logits.shape):
                raise ValueError(
                    f"labels must be soft labels of shape {tuple(logits.shape)}, got {tuple(labels.shape)}"
                )
            loss = nnf.binary_cross_entropy_with_logits(logits.float(), labels.float())
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().sigmoid())
        return output if return_dict is not False else output.to_tuple()


def distribution_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy ``-Σ_e t_e log softmax(logits)_e``, averaged over the batch."""
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(
            f"labels must be vote distributions of shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    return -(targets.float() * logits.float().log_softmax(-1)).sum(-1).mean()


class DistributionClassifier(_SingleBackboneModel):
    """A member of the vote-distribution family (``docs/method.md#distribution-family``): 8-way softmax.

    ``labels``: (N, 8) vote distributions (each row sums to 1); loss = soft-target cross-entropy
    (FER+'s "crossentropy" mode, Barsoum et al. 2016).
    """

    config_class = DistributionClassifierConfig
    _num_outputs = NUM_EMOTIONS

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs
    ):
        logits = self.classifier(self._features(pixel_values))
        loss = distribution_loss(logits, labels) if labels is not None else None
        output = FERClassifierOutput(loss=loss, logits=logits, probs=logits.float().softmax(-1))
        return output if return_dict is not False else output.to_tuple()


for _model_class in (
    BinaryExpressionClassifier,
    AUExpressionClassifier,
    DistributionClassifier,
    HardFERModel,
    SoftFERModel,
):
    AutoModel.register(_model_class.config_class, _model_class, exist_ok=True)
    AutoModelForImageClassification.register(_model_class.config_class, _model_class, exist_ok=True)
