"""The AffectNet+ soft-labeler: every ensemble member fed from one decoded batch, combined into soft
labels (``docs/method.md#soft-label``, Eq. 14).

* :class:`SoftLabeler` — J×8 binary classifiers (``docs/method.md#ebc-scores``), 8 AU classifiers
  (``docs/method.md#au-scores``) and/or the vote-distribution family
  (``docs/method.md#distribution-family``), with the confidence scores of
  ``docs/method.md#confidence-scores``.
* :class:`SoftLabelerOutput`, :func:`concat_outputs`.

Importing this module registers :class:`SoftLabeler` with ``AutoModel`` (not with
``AutoModelForImageClassification``: it has no logits).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf
from transformers import AutoModel
from transformers.utils import ModelOutput

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.models.backbones import ExpressionNet
from affectnetplus_hf.models.configuration_affectnetplus import (
    CS_FAMILIES,
    CS_MODES,
    FAMILIES,
    SoftLabelerConfig,
    resolve_emotion,
)
from affectnetplus_hf.models.modeling_affectnetplus import (
    AffectNetPlusPreTrainedModel,
    AUExpressionClassifier,
    BinaryExpressionClassifier,
    DistributionClassifier,
    au_positive_probabilities,
    check_finite_probabilities,
)
from affectnetplus_hf.models.runner import as_image_sources, iter_soft_labels
from affectnetplus_hf.subsets import assign_subsets


@dataclass
class SoftLabelerOutput(ModelOutput):
    """Output of :class:`SoftLabeler`. All ``float32``.

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


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


class SoftLabeler(AffectNetPlusPreTrainedModel):
    """The AffectNet+ soft-labeler: every member of every family, fed from one decoded batch.

    Members: ``ebc_members[j * 8 + e]`` is the binary classifier of emotion ``e`` on
    ``config.ebc_backbones[j]``; ``au_members[e]`` is the AU classifier of emotion ``e``;
    ``dist_members[k]`` is the k-th member of the vote-distribution family. Their layers have the same
    names as :class:`BinaryExpressionClassifier` / :class:`AUExpressionClassifier` /
    :class:`DistributionClassifier`.

    ``member_execution``: ``"loop"`` (default; the faster one on CPU, see ``benchmarks/bench_ensemble.py``)
    or ``"vmap"`` (members of one architecture stacked with ``torch.func``; eval mode only).
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
        self._vmap_templates: dict[tuple[int, ...], nn.Module] = {}
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
        test_time_shift: int = 0,
        calibration: Mapping[str, Any] | None = None,
    ) -> SoftLabeler:
        """Assemble a soft-labeler from trained members (weights are copied).

        Args:
            ebc_members: ``{(backbone, emotion): BinaryExpressionClassifier}`` — a full grid, every
                emotion (name or index) for each backbone; ``None``/empty = no EBC family.
            au_members: ``{emotion: AUExpressionClassifier}`` for all 8 emotions; ``None``/empty = no
                AU family.
            confidences: the measured confidence scores (``docs/method.md#confidence-scores``), either
                ``{"ebc": (J, 8), "au": (8,)}`` (stored under ``cs_mode``) or ``{"balanced": {...}, "eq3": {...}}``
                (both modes kept). EBC rows follow ``ebc_backbones``.
            processor: the image processor the members were trained with (default: built from the
                members' image size and normalisation).
            cs_mode: the mode the soft labels use.
            ebc_backbones: order of the J backbones (default: first appearance in ``ebc_members``).
            dist_members: the members of the vote-distribution family, in order (``None``/empty = none).
            test_time_flip, test_time_shift, calibration: see :class:`SoftLabelerConfig`.
        """
        ebc_members, au_members = dict(ebc_members or {}), dict(au_members or {})
        dist_members = list(dist_members or [])
        if not ebc_members and not au_members and not dist_members:
            raise ValueError("from_members needs ebc_members, au_members or dist_members; got none")
        _check_dist_members(dist_members)
        backbones, ordered_ebc = _ordered_ebc_members(ebc_members, ebc_backbones)
        ordered_au = _ordered_au_members(au_members)
        everyone = ordered_ebc + ordered_au + dist_members
        _check_shared_input(everyone)
        aus, neutral_similarity = _shared_au_options(ordered_au)
        reference = everyone[0].config
        config = SoftLabelerConfig(
            ebc_backbones=backbones,
            au_backbones=[m.config.backbone for m in ordered_au],
            confidence_scores=_normalise_confidences(confidences, cs_mode),
            cs_mode=cs_mode,
            **{field: getattr(reference, field) for field in _SHARED_INPUT_FIELDS},
            aus=aus,
            neutral_similarity=neutral_similarity,
            dist_backbones=[m.config.backbone for m in dist_members],
            test_time_flip=test_time_flip,
            test_time_shift=test_time_shift,
            calibration=dict(calibration) if calibration is not None else None,
        )
        model = cls.from_state_dict(config, _members_state_dict(ordered_ebc, ordered_au, dist_members))
        if processor is not None:
            model.image_processor = processor
        return model

    # ---- inference -----------------------------------------------------------------------------

    def _member_logits_loop(self, pixel_values: torch.Tensor):
        ebc = [member(pixel_values)[0] for member in self.ebc_members]
        au = [member(pixel_values) for member in self.au_members]
        return ebc, au

    def _dist_probs(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """(N, K, 8) softmax of the distribution members; averaged over the mirrored image when
        ``config.test_time_flip`` and over the shifted images when ``config.test_time_shift``."""
        if not len(self.dist_members):
            return None
        step = int(getattr(self.config, "test_time_shift", 0))
        shifts = [(0, 0)] + ([(step, 0), (-step, 0), (0, step), (0, -step)] if step else [])
        shifted = [shift_pixels(pixel_values, dx, dy) for dx, dy in shifts]
        views = torch.cat(shifted + ([view.flip(-1) for view in shifted] if self.config.test_time_flip else []))
        probs = torch.stack([member(views)[0].float().softmax(-1) for member in self.dist_members], dim=1)
        return probs.unflatten(0, (-1, pixel_values.shape[0])).mean(dim=0)  # one forward over all views

    def _stacked_state(self, members: Sequence[nn.Module]):
        """The members' tensors stacked (``torch.func.stack_module_state``, on every call: they always hold
        the current weights) and a meta-device template of their architecture (kept: it has no tensors)."""
        from torch.func import stack_module_state

        with torch.no_grad():
            params, buffers = stack_module_state(list(members))
        params = {k: v.detach() for k, v in params.items()}
        key = tuple(id(m) for m in members)
        template = self._vmap_templates.get(key)
        if template is None:
            template = self._vmap_templates[key] = _meta_copy(members[0])
        return params, buffers, template

    def _member_logits_vmap(self, pixel_values: torch.Tensor):
        from torch.func import functional_call, vmap

        def run_group(members, with_au: bool):
            params, buffers, template = self._stacked_state(members)

            def call(member_params, member_buffers, inputs):
                logits, au_logits = functional_call(template, (member_params, member_buffers), (inputs,))
                return (logits, au_logits) if with_au else logits

            return vmap(call, in_dims=(0, 0, None))(params, buffers, pixel_values)

        ebc: list[torch.Tensor] = []
        for j in range(len(self.config.ebc_backbones)):
            logits = run_group(list(self.ebc_members[j * NUM_EMOTIONS : (j + 1) * NUM_EMOTIONS]), with_au=False)
            ebc.extend(logits.unbind(0))
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
        """Soft labels of a preprocessed batch ``(N, C, S, S)``; see :class:`SoftLabelerOutput`.

        Works with or without ``torch.no_grad``; the outputs carry no gradient (the members are trained
        one by one, never through the soft label)."""
        pixel_values = self._check_input(pixel_values)
        stacked = self.member_execution == "vmap" and not self.training
        ebc_logits, au_outputs = (self._member_logits_vmap if stacked else self._member_logits_loop)(pixel_values)
        dist_probs = self._dist_probs(pixel_values)
        ebc_probs = au_binary = au_probs = None
        if ebc_logits:
            ebc_probs = torch.stack([logits.float().softmax(-1)[:, 1] for logits in ebc_logits], dim=1)
        if au_outputs:
            au_binary = torch.stack([logits.float().softmax(-1)[:, 1] for logits, _ in au_outputs], dim=1)
            au_probs = torch.stack([au_logits.float().sigmoid() for _, au_logits in au_outputs], dim=1)
        result = self.combine(ebc_probs=ebc_probs, au_binary_probs=au_binary, au_probs=au_probs, dist_probs=dist_probs)
        output = SoftLabelerOutput(**{k: None if v is None else v.float() for k, v in result.items()})
        return output if return_dict is not False else output.to_tuple()

    def combine(
        self, ebc_probs=None, au_binary_probs=None, au_probs=None, dist_probs=None
    ) -> dict[str, torch.Tensor | None]:
        """The second half of ``forward``: member probabilities → scores, soft label, spread, calibrated
        soft label (Eqs. 4–5, 9–14; ``docs/method.md#calibration``), in float64 on the inputs' device, without
        gradient (the members are trained one by one, never through the soft label).

        ``ebc_probs``: (N, J·8) positive probabilities, column ``j*8 + e``; ``au_binary_probs``: (N, 8)
        binary-head P(emotion) of the AU members; ``au_probs``: (N, 8, 21) their ÂU; ``dist_probs``:
        (N, K, 8) softmax of the distribution members (tensors, or arrays: CPU). Uses ``config.cs_mode``'s
        confidences; the same math as :mod:`affectnetplus_hf.softlabel` and
        :func:`affectnetplus_hf.calibration.apply_calibration` (which work on numpy arrays).
        Returns the fields of :class:`SoftLabelerOutput` as float64 tensors (``None`` for absent families).
        """
        config = self.config
        ebc_probs, au_binary_probs, au_probs, dist_probs = given = _float64_probabilities(
            {
                "EBC member probabilities": ebc_probs,
                "AU member probabilities": au_binary_probs,
                "AU probabilities": au_probs,
                "distribution member probabilities": dist_probs,
            }
        )
        device = next((value.device for value in given if value is not None), torch.device("cpu"))
        parts: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # family -> (scores, columns, stack)
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            if "ebc" in config.families:
                parts["ebc"] = _ebc_family(config, ebc_probs, device)
            if "au" in config.families:
                parts["au"] = _au_family(config, au_binary_probs, au_probs, device)
            if "dist" in config.families:
                parts["dist"] = _dist_family(dist_probs)
            scores = {family: parts[family][0] if family in parts else None for family in FAMILIES}
            if config.paper_families:  # Eq. 14: the mean of the families present
                families = [scores[family] for family in CS_FAMILIES if scores[family] is not None]
                soft = sum(families[1:], families[0]) / len(families)
            else:
                soft = scores["dist"]
            spread = _population_std(torch.cat([stack for _, _, stack in parts.values()], dim=0))
            calibrated = None
            if config.calibration is not None:
                calibrated = _calibrate(scores, config.calibration)
        return {
            "soft_label": soft,
            "ebc_scores": scores["ebc"],
            "au_scores": scores["au"],
            "member_probs": torch.cat([columns for _, columns, _ in parts.values()], dim=1),
            "spread": spread,
            "dist_scores": scores["dist"],
            "soft_label_calibrated": calibrated,
        }

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
        image) and :func:`~affectnetplus_hf.models.runner.iter_soft_labels` (``device``: default the
        model's; ``dtype``: autocast, ``"auto"`` = bf16 on CUDA) and returns one :class:`SoftLabelerOutput`
        on CPU with a row per image.
        """
        if not isinstance(images, (list, tuple)):
            images = [images]
        if not images:
            raise ValueError("predict needs at least one image")
        if face_boxes is not None and len(face_boxes) != len(images):
            raise ValueError(f"face_boxes has {len(face_boxes)} entries for {len(images)} images; expected equal")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")

        def batches():
            for start in range(0, len(images), batch_size):
                chunk = as_image_sources(images[start : start + batch_size])
                boxes = None if face_boxes is None else list(face_boxes[start : start + batch_size])
                yield self.image_processor.preprocess(chunk, face_boxes=boxes, return_tensors="pt")

        return concat_outputs(output for _, output in iter_soft_labels(self, batches(), device=device, dtype=dtype))

    def map_function(self, image_column: str = "image", **kwargs):
        """A picklable batched ``datasets`` map function that adds this model's soft labels to each row::

            fn = labeler.map_function(image_column="image", hard_label_column="label")
            ds = ds.map(fn, batched=True, batch_size=64, features=fn.map_features(ds.features))

        ``kwargs``: ``hard_label_column``, ``hard_label_names``, ``face_box_column``, ``id_column``,
        ``device``, ``dtype``, ``skip_bad``, and for photos ``detect_faces=True`` with ``detector`` and
        ``no_face`` (adds ``face_box``; ``docs/method.md#face-stage``) of
        :class:`affectnetplus_hf.dataset_map.SoftLabelMap`.
        """
        from affectnetplus_hf.dataset_map import SoftLabelMap

        return SoftLabelMap(self, image_column, **kwargs)

    @staticmethod
    def subsets(soft_labels, hard_labels) -> np.ndarray:
        """Subset names (``easy``/``challenging``/``difficult``, ``docs/method.md#subsets``) via
        :func:`affectnetplus_hf.subsets.assign_subsets`."""
        hard = hard_labels.cpu() if isinstance(hard_labels, torch.Tensor) else hard_labels
        return assign_subsets(_to_numpy(soft_labels), np.asarray(hard))

    def train(self, mode: bool = True):
        self._vmap_templates = {}
        return super().train(mode)


def shift_pixels(pixel_values: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``(N, C, H, W)`` images moved ``dx`` pixels right and ``dy`` down, the uncovered border repeating the
    edge (the shift test-time augmentation of ``docs/method.md#distribution-family``)."""
    if not dx and not dy:
        return pixel_values
    padded = nnf.pad(pixel_values, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    height, width = pixel_values.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width]


def _as_float64(values, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)


def _population_std(stacked: torch.Tensor) -> torch.Tensor:
    """Standard deviation over dim 0, ddof 0 (as ``numpy.std``: mean first, then the mean squared deviation)."""
    count = stacked.shape[0]
    deviation = stacked - stacked.sum(dim=0) / count
    return torch.sqrt((deviation * deviation).sum(dim=0) / count)


def _normalised_rows(scores: torch.Tensor) -> torch.Tensor:
    """Rows divided by their sums; an all-zero row becomes uniform (``metrics.functional.normalize_rows``)."""
    totals = scores.sum(dim=1, keepdim=True)
    positive = totals > 0
    safe_totals = torch.where(positive, totals, torch.ones_like(totals))
    return torch.where(positive, scores / safe_totals, 1.0 / scores.shape[1])


def _calibrate(scores: Mapping[str, torch.Tensor | None], calibration: Mapping[str, Any]) -> torch.Tensor:
    """``soft_label_calibrated`` (N, 8) from the families' scores: the tensor form of
    :func:`affectnetplus_hf.calibration.apply_calibration` (``docs/method.md#calibration``)."""
    inputs = list(calibration["inputs"])
    missing = [f for f in inputs if scores.get(f) is None]
    if missing:
        raise ValueError(f"calibration needs the scores of {inputs}; missing {missing}")
    eps = float(calibration["eps"])
    logs = torch.stack([torch.log(_normalised_rows(scores[f]) + eps) for f in inputs])  # (F, N, 8)
    weights = _as_float64(calibration["weights"], logs.device)
    bias = _as_float64(calibration["bias"], logs.device)
    z = torch.tensordot(weights, logs, dims=1) + bias
    z = z - z.amax(dim=-1, keepdim=True)
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


def _meta_copy(module: nn.Module) -> nn.Module:
    """A structural copy of ``module`` whose tensors live on the meta device (a template for vmap)."""
    return copy.deepcopy(module).to("meta")


def concat_outputs(outputs: Iterable[SoftLabelerOutput]) -> SoftLabelerOutput:
    """Concatenate batch outputs along the batch axis (on CPU)."""
    outputs = list(outputs)
    merged = {}
    for field in fields(SoftLabelerOutput):
        values = [getattr(o, field.name) for o in outputs]
        merged[field.name] = None if values[0] is None else torch.cat([v.cpu() for v in values], dim=0)
    return SoftLabelerOutput(**merged)


# ---- from_members steps ------------------------------------------------------------------------

#: The input fields every member must share (one decoded input feeds them all), copied into the config.
_SHARED_INPUT_FIELDS = ("image_size", "num_channels", "image_mean", "image_std", "backbone_kwargs")


def _member_name(member) -> str:
    return f"{member.config.backbone}/{getattr(member.config, 'emotion', 'distribution')}"


def _check_dist_members(dist_members: Sequence) -> None:
    for k, member in enumerate(dist_members):
        if not isinstance(member, DistributionClassifier):
            raise ValueError(f"dist_members[{k}] must be a DistributionClassifier, got {type(member).__name__}")


def _ordered_ebc_members(
    ebc_members: Mapping, ebc_backbones: Sequence[str] | None
) -> tuple[list[str], list[BinaryExpressionClassifier]]:
    """The J backbones and the EBC members in ``ebc_members[j * 8 + e]`` order, checked to be a full grid."""
    grid: dict[tuple[str, str], BinaryExpressionClassifier] = {}
    order: list[str] = []
    for key, member in ebc_members.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"ebc_members keys must be (backbone, emotion) tuples, got {key!r}")
        backbone, emotion = key[0], resolve_emotion(key[1])
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
    return backbones, [grid[(b, e)] for b in backbones for e in EMOTIONS]


def _ordered_au_members(au_members: Mapping) -> list[AUExpressionClassifier]:
    """The AU members in label-space order (all 8 emotions, or none)."""
    au: dict[str, AUExpressionClassifier] = {}
    for key, member in au_members.items():
        emotion = resolve_emotion(key)
        if not isinstance(member, AUExpressionClassifier):
            raise ValueError(f"au_members[{key!r}] must be an AUExpressionClassifier, got {type(member).__name__}")
        if member.config.emotion != emotion:
            raise ValueError(f"au_members[{key!r}] is the {member.config.emotion} classifier; expected {emotion}")
        au[emotion] = member
    if au and len(au) != NUM_EMOTIONS:
        raise ValueError(f"au_members must hold all 8 emotions; missing {[e for e in EMOTIONS if e not in au]}")
    return [au[e] for e in EMOTIONS] if au else []


def _check_shared_input(members: Sequence[nn.Module]) -> None:
    """Every member has the first one's :data:`_SHARED_INPUT_FIELDS`."""
    reference = members[0].config
    for member in members[1:]:
        for field in _SHARED_INPUT_FIELDS:
            if getattr(member.config, field) != getattr(reference, field):
                raise ValueError(
                    f"all members must share {field} (one decoded input feeds them all): "
                    f"{_member_name(member)} has {getattr(member.config, field)!r}, "
                    f"{_member_name(members[0])} has {getattr(reference, field)!r}"
                )


def _shared_au_options(au_members: Sequence[AUExpressionClassifier]) -> tuple[str, float]:
    """The ``(aus, neutral_similarity)`` all AU members share (the config's defaults without AU members)."""
    au_options = {(m.config.aus, m.config.neutral_similarity) for m in au_members}
    if len(au_options) > 1:
        raise ValueError(f"AU members disagree on (aus, neutral_similarity): {sorted(au_options)}")
    return au_options.pop() if au_options else ("table2", SoftLabelerConfig().neutral_similarity)


def _members_state_dict(ebc: Sequence[nn.Module], au: Sequence[nn.Module], dist: Sequence[nn.Module]) -> dict:
    """The members' tensors (copies) under the soft-labeler's names ``ebc_members.K.``/``au_members.K.``/..."""
    prefixed = [(f"ebc_members.{k}.", m) for k, m in enumerate(ebc)]
    prefixed += [(f"au_members.{k}.", m) for k, m in enumerate(au)]
    prefixed += [(f"dist_members.{k}.", m) for k, m in enumerate(dist)]
    return {
        prefix + name: tensor.detach().clone()
        for prefix, member in prefixed
        for name, tensor in member.state_dict().items()
    }


# ---- combine steps -----------------------------------------------------------------------------


def _float64_probabilities(named: Mapping[str, Any]) -> list[torch.Tensor | None]:
    """The member probabilities as detached float64 tensors (``None`` stays), each checked finite."""
    tensors = [None if value is None else torch.as_tensor(value).detach().double() for value in named.values()]
    for name, value in zip(named, tensors, strict=True):
        if value is not None:
            check_finite_probabilities(name, value)
    return tensors


def _ebc_family(config: SoftLabelerConfig, probs: torch.Tensor, device: torch.device):
    """``(SC_EB (N, 8) of Eq. 5, member columns (N, J·8), per-emotion stack (J, N, 8))``."""
    stacked = probs.unflatten(1, (len(config.ebc_backbones), NUM_EMOTIONS)).transpose(0, 1)  # (J, N, 8)
    confidences = _as_float64(config.confidences("ebc"), device)  # (J, 8)
    scores = torch.einsum("jnk,jk->nk", stacked, confidences) / stacked.shape[0]  # Eq. 5
    return scores, probs, stacked


def _au_family(config: SoftLabelerConfig, binary_probs: torch.Tensor, au_probs: torch.Tensor, device: torch.device):
    """``(SC_AU (N, 8) of Eq. 13, P_AU columns (N, 8), per-emotion stack (1, N, 8))``."""
    p_au = au_positive_probabilities(  # Eqs. 9-12
        binary_probs,
        au_probs,
        range(NUM_EMOTIONS),
        aus=config.aus,
        neutral_similarity=config.neutral_similarity,
    )
    return p_au * _as_float64(config.confidences("au"), device), p_au, p_au[None]  # Eq. 13


def _dist_family(probs: torch.Tensor):
    """``(mean softmax (N, 8), member columns (N, K·8), per-emotion stack (K, N, 8))`` of ``probs`` (N, K, 8)."""
    return probs.mean(dim=1), probs.flatten(1), probs.transpose(0, 1)


def _normalise_confidences(confidences, cs_mode: str) -> dict | None:
    """Accept ``{"ebc": ..., "au": ...}`` (one mode) or ``{mode: {...}}`` and return the stored form."""
    if confidences is None:
        return None
    if not isinstance(confidences, Mapping):
        raise ValueError(f"confidences must be a dict, got {type(confidences).__name__}")
    if set(confidences) <= set(CS_MODES):
        return {mode: {f: _to_numpy(v).tolist() for f, v in fam.items()} for mode, fam in confidences.items()}
    return {cs_mode: {f: _to_numpy(v).tolist() for f, v in confidences.items()}}


AutoModel.register(SoftLabelerConfig, SoftLabeler, exist_ok=True)
