"""Training: the one accelerate loop, datasets, presets, soft-labeler and baseline pipelines (issue 4)."""

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

__all__ = [
    "PRESETS", "AugmentConfig", "LoopConfig", "TrainConfig", "resolve_preset",
    "NonFiniteLossError", "TrainResult", "build_optimizer", "build_scheduler", "list_checkpoints",
    "make_accelerator", "train_model",
]
