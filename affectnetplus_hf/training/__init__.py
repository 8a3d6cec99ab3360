"""Training: the one accelerate loop, datasets, presets, the soft-labeler and baseline pipelines."""

from affectnetplus_hf.training.baseline import BaselineRun, train_baseline, train_baseline_from_source
from affectnetplus_hf.training.config import (
    PRESETS,
    AugmentConfig,
    LoopConfig,
    TrainConfig,
    resolve_preset,
)
from affectnetplus_hf.training.loop import (
    NonFiniteLossError,
    TrainResult,
    build_optimizer,
    build_scheduler,
    list_checkpoints,
    make_accelerator,
    train_model,
)
from affectnetplus_hf.training.softlabeler import SoftLabelerRun, train_soft_labeler

__all__ = [
    "SoftLabelerRun",
    "train_soft_labeler",
    "BaselineRun",
    "train_baseline",
    "train_baseline_from_source",
    "PRESETS",
    "AugmentConfig",
    "LoopConfig",
    "TrainConfig",
    "resolve_preset",
    "NonFiniteLossError",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "list_checkpoints",
    "make_accelerator",
    "train_model",
]
