"""Configurations of the AffectNet+ models: the soft-labeler, its members and the baselines.

Every model is a timm backbone (any ``timm.list_models()`` name) with small heads. The configs carry
everything needed to rebuild the model offline: the emotion names (``docs/method.md#label-space``), the
backbone names, the input size and normalisation, the heads' hyper-parameters and, for the soft-labeler,
the measured confidence scores (``docs/method.md#confidence-scores``) of both CS modes.

``backbone_pretrained`` is only used when a model is *constructed* for training (a path to a timm
``.safetensors``/``.pth`` checkpoint, or ``"hf-hub:org/name"``); ``from_pretrained`` never reads it —
the saved weights are loaded instead.

Importing this module registers every config with ``AutoConfig`` (``AutoConfig.register``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import AutoConfig, PretrainedConfig

from affectnetplus_hf.emotions import EMOTIONS, NUM_ACTION_UNITS, NUM_EMOTIONS
from affectnetplus_hf.paper import NEUTRAL_SIMILARITY, PAPER_AU_BACKBONE, PAPER_EBC_BACKBONES

#: ImageNet normalisation, timm's default for the paper backbones (the image processor's default too).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Confidence-score modes (``docs/method.md#confidence-scores``): ``"balanced"`` [choice] and ``"eq3"`` [option].
CS_MODES: tuple[str, ...] = ("balanced", "eq3")
#: Model families of the soft-labeler: the paper's EBC (Eqs. 4–5) and AU (Eqs. 7–13) families and the
#: vote-distribution family (``docs/method.md#distribution-family``, not in the paper).
FAMILIES: tuple[str, ...] = ("ebc", "au", "dist")
#: The families that carry confidence scores (Eq. 3): the paper's two.
CS_FAMILIES: tuple[str, ...] = ("ebc", "au")


def resolve_emotion(emotion: str | int) -> str:
    """The emotion name of a name or a label-space index; ``ValueError`` otherwise."""
    if isinstance(emotion, (int, np.integer)) and not isinstance(emotion, bool):
        if not 0 <= int(emotion) < NUM_EMOTIONS:
            raise ValueError(f"emotion index must be in 0..{NUM_EMOTIONS - 1}, got {emotion}")
        return EMOTIONS[int(emotion)]
    if emotion not in EMOTIONS:
        raise ValueError(f"emotion must be one of {EMOTIONS} (or an index 0..7), got {emotion!r}")
    return str(emotion)


def _check_channels(image_mean, image_std, num_channels: int) -> tuple[list[float], list[float]]:
    mean = [float(v) for v in image_mean]
    std = [float(v) for v in image_std]
    if len(mean) != num_channels or len(std) != num_channels:
        raise ValueError(
            f"image_mean and image_std need {num_channels} values (num_channels), got {len(mean)} and {len(std)}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"image_std must be positive, got {std}")
    return mean, std


class _BackboneConfig(PretrainedConfig):
    """Fields shared by every single-backbone AffectNet+ model.

    Args:
        backbone: timm model name (``timm.list_models()``; pretrained tags like ``resnet50.a1_in1k`` work).
        image_size: square input side in pixels (224 in the paper preset, ``docs/method.md#baselines``).
        num_channels: input channels (3 = RGB).
        drop_rate: dropout before the heads.
        drop_path_rate: stochastic depth inside the backbone (timm), 0 to disable.
        backbone_pretrained: weights to start *training* from — a local timm checkpoint file
            (``.safetensors`` preferred) or ``"hf-hub:org/name"``; ``None`` = random init (timm's).
            Never used by ``from_pretrained``.
        backbone_kwargs: extra keyword arguments for ``timm.create_model``.
        image_mean, image_std: normalisation the image processor applies (recorded for provenance and
            to rebuild a processor when none was saved).
    """

    def __init__(
        self,
        backbone: str = PAPER_AU_BACKBONE,
        image_size: int = 224,
        num_channels: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        backbone_pretrained: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        image_mean: tuple[float, ...] | list[float] = IMAGENET_MEAN,
        image_std: tuple[float, ...] | list[float] = IMAGENET_STD,
        emotions: tuple[str, ...] | list[str] = EMOTIONS,
        **kwargs,
    ):
        if not isinstance(backbone, str) or not backbone:
            raise ValueError(f"backbone must be a timm model name (see timm.list_models()), got {backbone!r}")
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be a positive integer, got {image_size}")
        if not 0.0 <= float(drop_rate) < 1.0 or not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f"drop_rate and drop_path_rate must be in [0, 1), got {drop_rate}, {drop_path_rate}")
        if list(emotions) != list(EMOTIONS):
            raise ValueError(f"emotions must be the label-space list {list(EMOTIONS)}, got {list(emotions)}")
        self.backbone = backbone
        self.image_size = int(image_size)
        self.num_channels = int(num_channels)
        self.drop_rate = float(drop_rate)
        self.drop_path_rate = float(drop_path_rate)
        self.backbone_pretrained = backbone_pretrained
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.image_mean, self.image_std = _check_channels(image_mean, image_std, self.num_channels)
        self.emotions = list(EMOTIONS)
        super().__init__(**kwargs)


class BinaryExpressionClassifierConfig(_BackboneConfig):
    """One-vs-rest classifier of one emotion on one backbone (``docs/method.md#ebc-scores``): a 2-way softmax head.

    Args:
        emotion: the positive emotion (name or label-space index).
        (the rest: see :class:`_BackboneConfig`)
    """

    model_type = "affectnetplus-binary"

    def __init__(self, emotion: str | int = "Neutral", backbone: str = PAPER_EBC_BACKBONES[0], **kwargs):
        self.emotion = resolve_emotion(emotion)
        super().__init__(backbone=backbone, **kwargs)
        self.id2label = {0: f"not {self.emotion}", 1: self.emotion}
        self.label2id = {v: k for k, v in self.id2label.items()}


class AUExpressionClassifierConfig(_BackboneConfig):
    """AU-based classifier of one emotion (``docs/method.md#au-scores``): a binary head and a 21-AU sigmoid head.

    Args:
        emotion: the expected expression ``gt`` of Eq. 10.
        au_loss_weight: λ in ``CE + λ · AU loss`` [option, default 1].
        au_pos_weight: scalar weight of the positive BCE terms (ω_pos / ω_neg) [option]; ``None`` =
            ω_pos = ω_neg = 1 [choice].
        aus: AU score vector of Eq. 8, ``"table2"`` [choice] or ``"paper"`` [option].
        neutral_similarity: SV_Neutral of Eq. 9 [option, default 0.25].
    """

    model_type = "affectnetplus-au"

    def __init__(
        self,
        emotion: str | int = "Neutral",
        au_loss_weight: float = 1.0,
        au_pos_weight: float | None = None,
        aus: str = "table2",
        neutral_similarity: float = NEUTRAL_SIMILARITY,
        num_action_units: int = NUM_ACTION_UNITS,
        backbone: str = PAPER_AU_BACKBONE,
        **kwargs,
    ):
        self.emotion = resolve_emotion(emotion)
        if aus not in ("table2", "paper"):
            raise ValueError(f"aus must be 'table2' or 'paper', got {aus!r}")
        if au_pos_weight is not None and float(au_pos_weight) <= 0:
            raise ValueError(f"au_pos_weight must be positive or None, got {au_pos_weight}")
        if float(au_loss_weight) < 0:
            raise ValueError(f"au_loss_weight (λ) must be >= 0, got {au_loss_weight}")
        if int(num_action_units) != NUM_ACTION_UNITS:
            raise ValueError(
                f"num_action_units must be {NUM_ACTION_UNITS} (docs/method.md#action-units), got {num_action_units}"
            )
        self.au_loss_weight = float(au_loss_weight)
        self.au_pos_weight = None if au_pos_weight is None else float(au_pos_weight)
        self.aus = aus
        self.neutral_similarity = float(neutral_similarity)
        self.num_action_units = NUM_ACTION_UNITS
        super().__init__(backbone=backbone, **kwargs)
        self.id2label = {0: f"not {self.emotion}", 1: self.emotion}
        self.label2id = {v: k for k, v in self.id2label.items()}


class HardFERConfig(_BackboneConfig):
    """Hard-FER baseline (``docs/method.md#baselines``): 8-way softmax, cross-entropy with optional class weights.

    Args:
        class_weights: 8 per-class loss weights (label-space order) against imbalance, or ``None``.
        label_smoothing: cross-entropy label smoothing (0 = none).
    """

    model_type = "affectnetplus-hard-fer"

    def __init__(self, class_weights: list[float] | None = None, label_smoothing: float = 0.0, **kwargs):
        if class_weights is not None:
            weights = np.asarray(class_weights, dtype=np.float64)
            if weights.shape != (NUM_EMOTIONS,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(
                    f"class_weights must be {NUM_EMOTIONS} finite non-negative numbers, got {class_weights!r}"
                )
            class_weights = [float(w) for w in weights]
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.class_weights = class_weights
        self.label_smoothing = float(label_smoothing)
        super().__init__(**kwargs)
        self.id2label = dict(enumerate(EMOTIONS))
        self.label2id = {v: k for k, v in self.id2label.items()}


class SoftFERConfig(_BackboneConfig):
    """Soft-FER baseline (``docs/method.md#baselines``): 8 sigmoid outputs trained with BCE against soft labels."""

    model_type = "affectnetplus-soft-fer"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.id2label = dict(enumerate(EMOTIONS))
        self.label2id = {v: k for k, v in self.id2label.items()}


class DistributionClassifierConfig(_BackboneConfig):
    """A member of the vote-distribution family: 8-way softmax trained on the annotators' vote
    distribution of each face (soft-target cross-entropy, FER+'s "crossentropy" mode;
    ``docs/method.md#distribution-family``)."""

    model_type = "affectnetplus-distribution"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.id2label = dict(enumerate(EMOTIONS))
        self.label2id = {v: k for k, v in self.id2label.items()}


def check_calibration(calibration: dict | None, families: tuple[str, ...]) -> dict | None:
    """Validate a stored calibration (``docs/method.md#calibration``) and return it as plain JSON types.

    ``{"inputs": [family, ...], "weights": [w_f, ...], "bias": [8 floats], "eps": float, ...}``; any
    other key (``fitted_on``, ``quality``) is kept as given.
    """
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise ValueError(f"calibration must be a dict, got {type(calibration).__name__}")
    missing = [k for k in ("inputs", "weights", "bias", "eps") if k not in calibration]
    if missing:
        raise ValueError(f"calibration lacks {missing}; expected inputs, weights, bias, eps")
    inputs = [str(f) for f in calibration["inputs"]]
    unknown = [f for f in inputs if f not in families]
    if not inputs or unknown:
        raise ValueError(f"calibration inputs {inputs} must be families of this soft-labeler {families}")
    weights = np.asarray(calibration["weights"], dtype=np.float64)
    bias = np.asarray(calibration["bias"], dtype=np.float64)
    if weights.shape != (len(inputs),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"calibration weights must be {len(inputs)} finite numbers >= 0, got {weights.tolist()}")
    if bias.shape != (NUM_EMOTIONS,) or not np.all(np.isfinite(bias)):
        raise ValueError(f"calibration bias must be {NUM_EMOTIONS} finite numbers, got {bias.tolist()}")
    eps = float(calibration["eps"])
    if not 0 < eps < 1:
        raise ValueError(f"calibration eps must be in (0, 1), got {eps}")
    return {**calibration, "inputs": inputs, "weights": weights.tolist(), "bias": bias.tolist(), "eps": eps}


def _check_confidences(scores: dict | None, n_ebc: int, families: tuple[str, ...]) -> dict | None:
    """Validate ``{"balanced"|"eq3": {"ebc": (J, 8), "au": (8,)}}`` and return it as plain lists."""
    if scores is None:
        return None
    if not isinstance(scores, dict):
        raise ValueError(
            f"confidence_scores must be a dict {{cs_mode: {{family: scores}}}}, got {type(scores).__name__}"
        )
    checked: dict[str, dict[str, Any]] = {}
    for mode, per_family in scores.items():
        if mode not in CS_MODES:
            raise ValueError(f"confidence_scores has unknown CS mode {mode!r}; expected keys from {CS_MODES}")
        if not isinstance(per_family, dict):
            raise ValueError(f"confidence_scores[{mode!r}] must be a dict {{'ebc': (J, 8), 'au': (8,)}}")
        checked[mode] = {}
        for family, values in per_family.items():
            if family not in CS_FAMILIES:
                raise ValueError(f"confidence_scores[{mode!r}] has unknown family {family!r}; expected {CS_FAMILIES}")
            array = np.asarray(values, dtype=np.float64)
            expected = (n_ebc, NUM_EMOTIONS) if family == "ebc" else (NUM_EMOTIONS,)
            if array.shape != expected:
                raise ValueError(
                    f"confidence_scores[{mode!r}][{family!r}] has shape {array.shape}; expected {expected} "
                    f"({'J backbones x 8 emotions' if family == 'ebc' else '8 emotions'})"
                )
            if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array > 1):
                raise ValueError(f"confidence_scores[{mode!r}][{family!r}] must lie in [0, 1], got {array.tolist()}")
            if family not in families:
                raise ValueError(
                    f"confidence_scores[{mode!r}] holds {family!r} scores but the soft-labeler has no "
                    f"{family!r} members"
                )
            checked[mode][family] = array.tolist()
    return checked


def _family_backbones(ebc_backbones, au_backbones, dist_backbones) -> tuple[list[str], list[str], list[str]]:
    """The backbone names of the EBC, AU (8, one per emotion) and distribution families; at least one family."""
    ebc = [str(name) for name in (ebc_backbones or [])]
    dist = [str(name) for name in (dist_backbones or [])]
    if isinstance(au_backbones, str):
        au = [au_backbones] * NUM_EMOTIONS
    else:
        au = [str(name) for name in (au_backbones or [])]
    if au and len(au) != NUM_EMOTIONS:
        raise ValueError(
            f"au_backbones must name one backbone per emotion ({NUM_EMOTIONS}, label-space order) or be a single "
            f"name, got {len(au)}: {au}"
        )
    if not ebc and not au and not dist:
        raise ValueError(
            "a soft-labeler needs at least one family: ebc_backbones, au_backbones and dist_backbones are all empty"
        )
    return ebc, au, dist


def _check_soft_labeler_options(cs_mode: str, aus: str, emotions, image_size: int, test_time_shift: int) -> None:
    if cs_mode not in CS_MODES:
        raise ValueError(f"cs_mode must be one of {CS_MODES}, got {cs_mode!r}")
    if aus not in ("table2", "paper"):
        raise ValueError(f"aus must be 'table2' or 'paper', got {aus!r}")
    if list(emotions) != list(EMOTIONS):
        raise ValueError(f"emotions must be the label-space list {list(EMOTIONS)}, got {list(emotions)}")
    if int(image_size) <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    if not 0 <= int(test_time_shift) < int(image_size):
        raise ValueError(f"test_time_shift must be in [0, image_size), got {test_time_shift}")


class SoftLabelerConfig(PretrainedConfig):
    """The whole AffectNet+ soft-labeler (``docs/method.md#soft-label``): J×8 binary classifiers, 8 AU
    classifiers and/or the vote-distribution family.

    Args:
        ebc_backbones: the J timm backbones of the EBC family (``docs/method.md#ebc-scores``); empty = no EBC family.
        au_backbones: the timm backbone of each emotion's AU classifier, 8 names in label-space order, or
            one name for all; empty/``None`` = no AU family.
        confidence_scores: measured CS (``docs/method.md#confidence-scores``) as
            ``{mode: {"ebc": (J, 8), "au": (8,)}}`` for ``mode`` in ``("balanced", "eq3")``; both modes may be
            stored.
        cs_mode: which stored mode the soft labels use (``"balanced"`` [choice], ``"eq3"`` [option]).
        image_size, num_channels, image_mean, image_std: the one input every member shares (each image
            is decoded once).
        aus, neutral_similarity: AU post-processing options (``docs/method.md#au-scores``).
        backbone_kwargs: extra ``timm.create_model`` arguments, applied to every member.
        dist_backbones: one timm name per member of the vote-distribution family (empty = none;
            ``docs/method.md#distribution-family``).
        test_time_flip: average the distribution family's probabilities over the image and its mirror.
        test_time_shift: also average them over the image shifted by this many pixels left, right, up
            and down (edges replicated; 0 = no shift).
        calibration: the fitted map behind ``soft_label_calibrated`` (``docs/method.md#calibration``),
            ``None`` = not calibrated.
    """

    model_type = "affectnetplus-soft-labeler"

    def __init__(
        self,
        ebc_backbones: list[str] | tuple[str, ...] = PAPER_EBC_BACKBONES,
        au_backbones: list[str] | tuple[str, ...] | str | None = PAPER_AU_BACKBONE,
        confidence_scores: dict | None = None,
        cs_mode: str = "balanced",
        image_size: int = 224,
        num_channels: int = 3,
        image_mean: tuple[float, ...] | list[float] = IMAGENET_MEAN,
        image_std: tuple[float, ...] | list[float] = IMAGENET_STD,
        aus: str = "table2",
        neutral_similarity: float = NEUTRAL_SIMILARITY,
        backbone_kwargs: dict[str, Any] | None = None,
        emotions: tuple[str, ...] | list[str] = EMOTIONS,
        dist_backbones: list[str] | tuple[str, ...] | None = None,
        test_time_flip: bool = False,
        test_time_shift: int = 0,
        calibration: dict | None = None,
        **kwargs,
    ):
        ebc, au, dist = _family_backbones(ebc_backbones, au_backbones, dist_backbones)
        _check_soft_labeler_options(cs_mode, aus, emotions, image_size, test_time_shift)
        self.ebc_backbones = ebc
        self.au_backbones = au
        self.dist_backbones = dist
        self.test_time_flip = bool(test_time_flip)
        self.test_time_shift = int(test_time_shift)
        self.cs_mode = cs_mode
        self.image_size = int(image_size)
        self.num_channels = int(num_channels)
        self.image_mean, self.image_std = _check_channels(image_mean, image_std, self.num_channels)
        self.aus = aus
        self.neutral_similarity = float(neutral_similarity)
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.emotions = list(EMOTIONS)
        self.confidence_scores = _check_confidences(confidence_scores, len(ebc), self.families)
        self.calibration = check_calibration(calibration, self.families)
        super().__init__(**kwargs)
        self.id2label = dict(enumerate(EMOTIONS))
        self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def families(self) -> tuple[str, ...]:
        """The families in use, in :data:`FAMILIES` order, e.g. ``("ebc", "au")`` or ``("dist",)``."""
        members = {"ebc": self.ebc_backbones, "au": self.au_backbones, "dist": self.dist_backbones}
        return tuple(f for f in FAMILIES if members[f])

    @property
    def paper_families(self) -> tuple[str, ...]:
        """The families that enter Eq. 14 (``soft_label``): EBC and/or AU."""
        return tuple(f for f in self.families if f in CS_FAMILIES)

    @property
    def member_names(self) -> list[str]:
        """``family/backbone/emotion`` of every member, in ``member_probs`` column order (EBC j-major, then AU,
        then the distribution members ``distK/backbone/emotion``, member-major)."""
        names = [f"ebc/{b}/{e}" for b in self.ebc_backbones for e in EMOTIONS]
        names += [f"au/{b}/{e}" for b, e in zip(self.au_backbones, EMOTIONS)]
        names += [f"dist{k}/{b}/{e}" for k, b in enumerate(self.dist_backbones) for e in EMOTIONS]
        return names

    def confidences(self, family: str, mode: str | None = None) -> np.ndarray:
        """The CS array of ``family`` for ``mode`` (default ``cs_mode``): ``(J, 8)`` for EBC, ``(8,)`` for AU."""
        mode = mode or self.cs_mode
        if family not in self.families:
            raise ValueError(f"this soft-labeler has no {family!r} family (families: {self.families})")
        stored = (self.confidence_scores or {}).get(mode, {})
        if family not in stored:
            raise ValueError(
                f"no {family!r} confidence scores stored for cs_mode={mode!r}; stored: "
                f"{ {m: sorted(v) for m, v in (self.confidence_scores or {}).items()} }. Measure them on test-MAS "
                f"(docs/method.md#confidence-scores) and pass confidence_scores={{'{mode}': {{'{family}': ...}}}}"
            )
        return np.asarray(stored[family], dtype=np.float64)


for _config_class in (
    BinaryExpressionClassifierConfig,
    AUExpressionClassifierConfig,
    DistributionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
    SoftLabelerConfig,
):
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
