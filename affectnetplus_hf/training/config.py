"""Training configurations and presets (``docs/method.md#mas-split`` to ``docs/method.md#au-scores``,
``docs/method.md#baselines``).

Every run is described by dataclasses that :class:`transformers.HfArgumentParser` parses from command
line flags or from a YAML/JSON file (``--config``); the resolved config is saved next to the outputs
(``train_config.json``) so a run can be reproduced from it. Fields left at ``None`` are filled from the
chosen preset (:data:`PRESETS`: ``paper``, ``small``, ``tiny``; what each sets and why:
``docs/architecture.md#training-presets``).

This module imports only the standard library and the package's dependency-free modules, so the CLI can
list the options without importing torch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from affectnetplus_hf.fileio import write_json_atomic
from affectnetplus_hf.paper import NEUTRAL_SIMILARITY, PAPER_AU_BACKBONE, PAPER_EBC_BACKBONES, PAPER_HPARAMS

#: TrainConfig fields that do not change what a run produces: left out of :meth:`TrainConfig.identity`.
UNFINGERPRINTED: frozenset[str] = frozenset(
    {
        "progress",
        "log_with",
        "resume",
        "num_workers",
        "output_dir",
        "checkpoint_every",
        "checkpoint_total_limit",
        "overwrite",
    }
)

PresetName = Literal["tiny", "small", "paper"]
PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "paper")
CONFIG_FILE_NAME = "train_config.json"


# --------------------------------------------------------------------------------------------------
# The generic loop's configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class AugmentConfig:
    """Training-time augmentation: horizontal flip, a small affine warp, colour jitter.

    Every random draw is seeded by ``(seed, epoch, image index)``, so a resumed run sees the same
    augmented images as an uninterrupted one.
    """

    augment: bool = field(default=True, metadata={"help": "apply augmentation while training"})
    hflip: float = field(default=0.5, metadata={"help": "probability of a horizontal flip"})
    rotate_degrees: float = field(default=10.0, metadata={"help": "max |rotation| of the affine warp, degrees"})
    translate: float = field(default=0.05, metadata={"help": "max |shift| of the affine warp, fraction of the side"})
    scale_jitter: float = field(default=0.1, metadata={"help": "scale drawn from [1 - s, 1 + s]"})
    color_jitter: float = field(
        default=0.2, metadata={"help": "brightness/contrast/saturation factors drawn from [1 - c, 1 + c]"}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"hflip must be a probability in [0, 1], got {self.hflip}")
        for name in ("rotate_degrees", "translate", "scale_jitter", "color_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.scale_jitter >= 1 or self.color_jitter >= 1:
            raise ValueError(
                f"scale_jitter and color_jitter must be < 1, got {self.scale_jitter} and {self.color_jitter}"
            )


@dataclass
class LoopConfig:
    """Hyper-parameters of :func:`affectnetplus_hf.training.train_model` (one model, one run)."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    lr_scheduler: Literal["constant", "cosine", "linear", "inverse_time"] = "constant"
    lr_decay: float = 0.0
    warmup_steps: int = 0
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    max_grad_norm: float = 0.0
    checkpoint_every: int = 0
    checkpoint_total_limit: int = 2
    resume: bool = True
    seed: int = 0
    num_workers: int = 0
    log_with: str = "auto"
    log_every: int = 10
    progress: bool = True
    cpu: bool = False

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "log_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "weight_decay",
            "lr_decay",
            "warmup_steps",
            "max_grad_norm",
            "checkpoint_every",
            "num_workers",
            "checkpoint_total_limit",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            raise ValueError(f"adam betas must be in [0, 1), got ({self.adam_beta1}, {self.adam_beta2})")
        if self.lr_scheduler not in ("constant", "cosine", "linear", "inverse_time"):
            raise ValueError(f"lr_scheduler must be constant|cosine|linear|inverse_time, got {self.lr_scheduler!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no|fp16|bf16, got {self.mixed_precision!r}")


# --------------------------------------------------------------------------------------------------
# The CLI / file configuration of a training run
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """One ``affectnetplus train`` run: data, outputs, preset and every option (``docs/method.md``).

    ``None`` means "take the preset's value" (see :func:`resolve_preset`).
    """

    data: str | None = field(default=None, metadata={"help": "source folder/file (any layout the readers detect)"})
    output_dir: str | None = field(
        default=None, metadata={"help": "model directory to write", "aliases": ["--output"]}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace a finished model folder"})
    preset: PresetName = field(
        default="tiny",
        metadata={
            "help": "tiny (CPU, minutes), small (CPU, the shipped soft-labeler's recipe) or paper (the paper's)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the split, the negatives, the shuffles, the init"})
    image_size: int | None = field(default=None, metadata={"help": "square input side (paper 224, tiny 48)"})
    cache_images: bool | None = field(
        default=None, metadata={"help": "decode every training image once and keep it in memory (tiny: yes)"}
    )
    skip_bad: bool = field(
        default=False, metadata={"help": "skip unreadable images (counted, listed) instead of failing"}
    )
    max_images: int | None = field(default=None, metadata={"help": "use at most this many images (debugging)"})
    mas_splits: list[str] | None = field(
        default=None,
        metadata={
            "help": "splits of the multi-annotated source that form the MAS (default: all; e.g. train for "
            "FER+, keeping its test images unseen)"
        },
    )

    # soft-labeler families (docs/method.md#ebc-scores, #au-scores)
    ebc_backbones: list[str] | None = field(default=None, metadata={"help": "timm names of the J EBC backbones"})
    au_backbone: str | None = field(default=None, metadata={"help": "timm name of the AU classifiers' backbone"})
    pretrained: list[str] | None = field(
        default=None,
        metadata={
            "help": "start backbones from weights: NAME=PATH.safetensors or NAME=hf-hub:org/repo, one per backbone"
        },
    )
    ebc_epochs: int | None = None
    ebc_batch_size: int | None = None
    ebc_learning_rate: float | None = None
    ebc_weight_decay: float | None = None
    au_epochs: int | None = None
    au_batch_size: int | None = None
    au_learning_rate: float | None = None
    au_weight_decay: float | None = None
    au_loss_weight: float | None = field(
        default=None, metadata={"help": "λ of CE + λ·AU loss (docs/method.md#au-scores; paper preset 1, tiny 0.1)"}
    )
    au_pos_weight: float | None = field(default=None, metadata={"help": "ω_pos/ω_neg of the AU BCE (None = 1)"})
    aus: Literal["table2", "paper"] = "table2"
    neutral_similarity: float = NEUTRAL_SIMILARITY
    families: list[str] | None = field(
        default=None,
        metadata={
            "help": "soft-labeler families, any of ebc, au (the paper's) and dist (members trained on the vote "
            "distributions, docs/method.md#distribution-family); default ebc au"
        },
    )

    # the vote-distribution family (docs/method.md#distribution-family)
    dist_backbone: str | None = field(default=None, metadata={"help": "timm name of the distribution members"})
    dist_members: int | None = field(default=None, metadata={"help": "number of distribution members (seeds)"})
    dist_epochs: int | None = None
    dist_batch_size: int | None = None
    dist_learning_rate: float | None = None
    dist_weight_decay: float | None = None
    test_time_flip: bool | None = field(
        default=None, metadata={"help": "average the distribution members over the image and its mirror"}
    )
    test_time_shift: int | None = field(
        default=None,
        metadata={
            "help": "also average the distribution members over the image shifted by this many "
            "pixels left, right, up and down (0 = no shift)"
        },
    )
    dist_translate: float | None = field(
        default=None, metadata={"help": "max |shift| (fraction of the side) of the distribution members' augmentation"}
    )
    dist_target: Literal["votes", "majority"] = field(
        default="votes",
        metadata={
            "help": "what the distribution members learn: the vote distribution (default) or, as an ablation, "
            "the one-hot majority emotion (images without a unique majority left out)"
        },
    )

    # calibration (docs/method.md#calibration)
    calibration_split: str | None = field(
        default=None,
        metadata={
            "help": "split of --data with votes to fit soft_label_calibrated on (e.g. validation for FER+; "
            "never a training split), or holdout: a seeded calibration_fraction of the MAS no member sees"
        },
    )
    calibration_fraction: float = field(
        default=0.1, metadata={"help": "share of the MAS held out by --calibration_split holdout"}
    )
    calibration_objective: Literal["kl", "w_mae"] = field(
        default="kl", metadata={"help": "what the calibration minimises against the vote distributions"}
    )

    # MAS split (docs/method.md#mas-split) and one-vs-rest selection (docs/method.md#sampling)
    n_test_per_class: int | None = field(
        default=None,
        metadata={
            "help": "test-MAS images per emotion (paper 100); None = auto: min(100, max(5, 15%% of the "
            "rarest emotion's images))"
        },
    )
    max_test_fraction: float = 0.2
    strict_unanimous: bool = False
    tie: Literal["drop", "first", "random"] = "drop"
    neg_ratio: float | None = field(
        default=None, metadata={"help": "negatives per positive (docs/method.md#sampling; paper preset 1)"}
    )
    balance_positives: bool | None = field(
        default=None, metadata={"help": "repeat the positives to match the negatives when neg_ratio > 1"}
    )
    overlap: Literal["table2", "paper"] = "table2"
    redraw_negatives: bool = field(default=False, metadata={"help": "draw new negatives every epoch"})
    cs_mode: Literal["balanced", "eq3"] = field(
        default="balanced", metadata={"help": "confidence score (docs/method.md#confidence-scores)"}
    )

    # baselines (docs/method.md#baselines)
    kind: Literal["hard", "soft"] = field(default="hard", metadata={"help": "baseline: Hard-FER or Soft-FER"})
    backbone: str | None = field(default=None, metadata={"help": "baseline backbone (timm name)"})
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    class_balance: Literal["none", "reweight", "upsample", "both"] = field(
        default="reweight", metadata={"help": "Hard-FER against imbalance: loss re-weighting and/or up-sampling"}
    )
    soft_labels: str | None = field(
        default=None, metadata={"help": "Soft-FER targets: CSV with image_id + the 8 emotion columns"}
    )
    train_split: str = field(default="train", metadata={"help": "split of --data used for the baseline"})

    # the loop (shared by every family)
    lr_scheduler: Literal["constant", "cosine", "linear", "inverse_time"] | None = field(
        default=None, metadata={"help": "learning-rate schedule (paper: constant; tiny: cosine)"}
    )
    lr_decay: float = 0.0
    warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    max_grad_norm: float = 0.0
    checkpoint_every: int = field(default=0, metadata={"help": "save_state every N optimizer steps (0 = per epoch)"})
    checkpoint_total_limit: int = 2
    resume: bool = field(default=True, metadata={"help": "continue from the checkpoints found in the output dir"})
    num_workers: int = 0
    log_with: str = field(
        default="auto", metadata={"help": "accelerate tracker: auto (tensorboard if installed), none, ..."}
    )
    progress: bool = True
    cpu: bool = False

    # augmentation
    augment: bool = True
    hflip: float = 0.5
    rotate_degrees: float | None = None
    translate: float | None = None
    scale_jitter: float | None = None
    color_jitter: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that change what a run produces (JSON values): a run folder's identity
        (:mod:`affectnetplus_hf.run_folder`), less :data:`UNFINGERPRINTED`."""
        import json

        values = {name: value for name, value in self.to_dict().items() if name not in UNFINGERPRINTED}
        return json.loads(json.dumps(values, sort_keys=True, default=str))

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(
            augment=self.augment,
            hflip=self.hflip,
            rotate_degrees=self.rotate_degrees,
            translate=self.translate,
            scale_jitter=self.scale_jitter,
            color_jitter=self.color_jitter,
        )

    def loop_config(self, family: Literal["ebc", "au", "dist", "baseline"]) -> LoopConfig:
        """The :class:`LoopConfig` of one family's members (after :func:`resolve_preset`)."""
        prefix = {"ebc": "ebc_", "au": "au_", "dist": "dist_", "baseline": ""}[family]
        values = {
            name: getattr(self, prefix + name) for name in ("epochs", "batch_size", "learning_rate", "weight_decay")
        }
        missing = [prefix + k for k, v in values.items() if v is None]
        if missing:
            raise ValueError(f"{missing} are not set; call resolve_preset() first or give them")
        return LoopConfig(
            **values,
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            lr_scheduler=self.lr_scheduler,
            lr_decay=self.lr_decay,
            warmup_steps=self.warmup_steps,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            mixed_precision=self.mixed_precision,
            max_grad_norm=self.max_grad_norm,
            checkpoint_every=self.checkpoint_every,
            checkpoint_total_limit=self.checkpoint_total_limit,
            resume=self.resume,
            seed=self.seed,
            num_workers=self.num_workers,
            log_with=self.log_with,
            progress=self.progress,
            cpu=self.cpu,
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the config as ``train_config.json`` in ``directory`` (atomically)."""
        path = Path(directory) / CONFIG_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict())
        return path


#: Preset values for the ``None`` fields of :class:`TrainConfig` (the paper's settings and the CPU ``tiny`` preset).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "image_size": PAPER_HPARAMS["ebc"]["image_size"],
        "cache_images": False,
        "rotate_degrees": 10.0,
        "translate": 0.05,
        "scale_jitter": 0.1,
        "color_jitter": 0.2,
        "ebc_backbones": list(PAPER_EBC_BACKBONES),
        "au_backbone": PAPER_AU_BACKBONE,
        "families": ["ebc", "au"],
        "dist_backbone": PAPER_AU_BACKBONE,
        "dist_members": 1,
        "dist_epochs": PAPER_HPARAMS["ebc"]["epochs"],
        "dist_batch_size": PAPER_HPARAMS["ebc"]["batch_size"],
        "dist_learning_rate": PAPER_HPARAMS["au"]["lr"],
        "dist_weight_decay": PAPER_HPARAMS["ebc"]["weight_decay"],
        "dist_translate": 0.05,
        "test_time_flip": True,
        "test_time_shift": 0,
        "ebc_epochs": PAPER_HPARAMS["ebc"]["epochs"],
        "ebc_batch_size": PAPER_HPARAMS["ebc"]["batch_size"],
        "ebc_learning_rate": PAPER_HPARAMS["ebc"]["lr"],
        "ebc_weight_decay": PAPER_HPARAMS["ebc"]["weight_decay"],
        "au_epochs": PAPER_HPARAMS["au"]["epochs"],
        "au_batch_size": PAPER_HPARAMS["au"]["batch_size"],
        "au_learning_rate": PAPER_HPARAMS["au"]["lr"],
        "au_weight_decay": PAPER_HPARAMS["au"]["weight_decay"],
        # baselines: the paper's ResNet-50 with the EBC optimiser (Sec. 4.3 gives no other values)
        "neg_ratio": 1.0,
        "au_loss_weight": 1.0,
        "balance_positives": False,
        "lr_scheduler": "constant",
        "backbone": "resnet50",
        "epochs": PAPER_HPARAMS["ebc"]["epochs"],
        "batch_size": PAPER_HPARAMS["ebc"]["batch_size"],
        "learning_rate": PAPER_HPARAMS["au"]["lr"],
        "weight_decay": PAPER_HPARAMS["ebc"]["weight_decay"],
    },
    "tiny": {
        "image_size": 48,
        "cache_images": True,
        "ebc_backbones": ["test_resnet"],
        "au_backbone": "test_resnet",
        "families": ["ebc", "au"],
        "dist_backbone": "test_resnet",
        "dist_members": 1,
        "dist_epochs": 16,
        "dist_batch_size": 64,
        "dist_learning_rate": 3e-3,
        "dist_weight_decay": 1e-4,
        "dist_translate": 0.083,
        "test_time_flip": True,
        "test_time_shift": 0,
        "ebc_epochs": 14,
        "ebc_batch_size": 32,
        "ebc_learning_rate": 3e-3,
        "ebc_weight_decay": 1e-5,
        "au_epochs": 14,
        "au_batch_size": 32,
        "au_learning_rate": 3e-3,
        "au_weight_decay": 1e-6,
        "neg_ratio": 2.0,
        "au_loss_weight": 0.1,
        "balance_positives": True,
        "lr_scheduler": "cosine",
        "rotate_degrees": 0.0,
        "scale_jitter": 0.0,
        "translate": 0.0,
        "color_jitter": 0.0,
        "backbone": "test_resnet",
        "epochs": 8,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "weight_decay": 1e-5,
    },
}


#: ``small``: the shipped ``ferplus`` soft-labeler's recipe, between ``tiny`` and ``paper`` — every family, the
#: distribution member on timm's ``resnet10t`` (4.9 M parameters) for 20 epochs with affine and colour
#: augmentation, averaged over mirror and 2-pixel shifts at test time; the EBC and AU members on
#: ``test_resnet`` for 4 epochs; 48 px (FER+'s own resolution).
PRESETS["small"] = {
    **PRESETS["tiny"],
    "families": ["ebc", "au", "dist"],
    "ebc_epochs": 4,
    "au_epochs": 4,
    "dist_backbone": "resnet10t",
    "dist_epochs": 20,
    "dist_learning_rate": 2e-3,
    "test_time_shift": 2,
    "rotate_degrees": 10.0,
    "scale_jitter": 0.1,
    "translate": 0.05,
    "color_jitter": 0.3,
    "backbone": "resnet10t",
}


def resolve_preset(config: TrainConfig) -> TrainConfig:
    """Return a copy of ``config`` whose ``None`` fields hold the preset's values."""
    if config.preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {config.preset!r}")
    preset = PRESETS[config.preset]
    values = {}
    for name, value in preset.items():
        if getattr(config, name) is None:
            values[name] = list(value) if isinstance(value, list) else value
    return dataclasses.replace(config, **values)
