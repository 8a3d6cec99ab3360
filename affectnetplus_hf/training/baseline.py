"""Hard-FER and Soft-FER baselines (SPEC §10, paper Sec. 4.3) on the one training loop.

:func:`train_baseline` is the generic core: records (any source, or rows of an exported AffectNet+
dataset turned into FaceRecords) plus targets — ``(N,)`` hard labels 0–7 for Hard-FER, ``(N, 8)`` soft
labels in [0, 1] for Soft-FER. Hard-FER counters the class imbalance with loss re-weighting
(``class_balance="reweight"``: weights ``N / (8 · n_c)``, normalised to mean 1 over present classes),
up-sampling (``"upsample"``: every epoch draws N rows with replacement, each class equally likely) or
both. Soft-FER uses BCE with soft targets.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.training.config import TrainConfig, resolve_preset
from affectnetplus_hf.training.data import (
    FacePreprocessor,
    RecordImageDataset,
    SeededAugmenter,
    TensorImageDataset,
    decode_records,
)
from affectnetplus_hf.training.loop import derive_seed, train_model

logger = logging.getLogger(__name__)


@dataclass
class BaselineRun:
    output_dir: Path
    model: Any
    epoch_losses: list[float]
    class_counts: list[int]
    seconds: float


def class_weights_for(labels: np.ndarray) -> list[float]:
    """Inverse-frequency weights ``N / (8 n_c)``, normalised to mean 1 over the classes present (absent: 0)."""
    counts = np.bincount(labels, minlength=NUM_EMOTIONS).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (NUM_EMOTIONS * np.maximum(counts, 1)), 0.0)
    present = counts > 0
    weights[present] /= weights[present].mean()
    return weights.tolist()


def upsampling_indices(labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """N rows drawn with replacement so that each present class is equally likely (seeded per epoch)."""
    counts = np.bincount(labels, minlength=NUM_EMOTIONS)
    p = 1.0 / counts[labels]
    p /= p.sum()
    rng = np.random.default_rng(derive_seed(seed, epoch, 0xB1A5))
    return np.sort(rng.choice(len(labels), size=len(labels), replace=True, p=p))


def _check_targets(kind: str, targets, n: int) -> np.ndarray:
    targets = np.asarray(targets)
    if kind == "hard":
        if targets.shape != (n,):
            raise ValueError(f"Hard-FER targets must be ({n},) labels 0..7, got shape {targets.shape}")
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"Hard-FER targets must be integers 0..7, got dtype {targets.dtype}")
        bad = np.flatnonzero((targets < 0) | (targets >= NUM_EMOTIONS))
        if len(bad):
            raise ValueError(f"Hard-FER target of row {int(bad[0])} is {int(targets[bad[0]])}; expected 0..7")
        return targets.astype(np.int64)
    if kind == "soft":
        targets = targets.astype(np.float32)
        if targets.shape != (n, NUM_EMOTIONS):
            raise ValueError(f"Soft-FER targets must be ({n}, 8) soft labels, got shape {targets.shape}")
        bad = np.flatnonzero(~np.all(np.isfinite(targets) & (targets >= 0) & (targets <= 1), axis=1))
        if len(bad):
            raise ValueError(f"Soft-FER target of row {int(bad[0])} is {targets[bad[0]].tolist()}; expected 8 values in [0, 1]")
        return targets
    raise ValueError(f"kind must be 'hard' or 'soft', got {kind!r}")


def train_baseline(records, targets, config: TrainConfig, kind: str | None = None) -> BaselineRun:
    """Train a Hard-FER (``kind="hard"``) or Soft-FER (``"soft"``) model and save it in ``config.output_dir``."""
    from affectnetplus_hf.model_card import render_baseline_card
    from affectnetplus_hf.models import HardFERConfig, HardFERModel, SoftFERConfig, SoftFERModel

    started = time.perf_counter()
    config = resolve_preset(config)
    kind = kind or config.kind
    records = list(records)
    if not records:
        raise ValueError("train_baseline: no training record")
    targets = _check_targets(kind, targets, len(records))
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    from accelerate import PartialState

    if PartialState().is_main_process:
        config.save(output_dir)
    preprocess = FacePreprocessor(config.image_size)
    augmenter = SeededAugmenter(config.augment_config(), preprocess.image_mean, preprocess.image_std, seed=config.seed)
    if config.cache_images:
        pixels, kept, bad = decode_records(records, preprocess, skip_bad=config.skip_bad, progress=config.progress)
        targets = targets[kept]
        dataset = TensorImageDataset(pixels, {"labels": torch.from_numpy(targets)}, augmenter)
    else:
        dataset = RecordImageDataset(records, preprocess, {"labels": torch.from_numpy(targets)}, augmenter,
                                     skip_bad=config.skip_bad)
    hard_labels = targets if kind == "hard" else targets.argmax(axis=1)
    counts = np.bincount(hard_labels, minlength=NUM_EMOTIONS)
    common = dict(backbone=config.backbone, image_size=config.image_size, image_mean=list(preprocess.image_mean),
                  image_std=list(preprocess.image_std))
    torch.manual_seed(config.seed)
    epoch_indices = None  # every row once per epoch, unless up-sampling below
    if kind == "hard":
        weights = class_weights_for(targets) if config.class_balance in ("reweight", "both") else None
        model = HardFERModel(HardFERConfig(class_weights=weights, **common))
        if config.class_balance in ("upsample", "both"):
            labels = targets
            epoch_indices = lambda epoch: upsampling_indices(labels, config.seed, epoch)  # noqa: E731
    else:
        model = SoftFERModel(SoftFERConfig(**common))
    result = train_model(model, dataset, config.loop_config("baseline"), output_dir / "_training",
                         name=f"{kind}-fer-{config.backbone}", epoch_indices=epoch_indices,
                         logging_dir=output_dir / "logs")
    model = result.model
    model.image_processor = preprocess.processor
    seconds = time.perf_counter() - started
    if result.is_main_process:  # under `accelerate launch` only one process writes the model directory
        import shutil

        model.save_pretrained(str(output_dir))
        card = render_baseline_card(config, kind, len(dataset), counts, result.epoch_losses, seconds)
        (output_dir / "README.md").write_text(card, encoding="utf-8")
        (output_dir / "training_summary.json").write_text(json.dumps({
            "kind": kind, "epoch_losses": result.epoch_losses, "class_counts": counts.tolist(), "seconds": seconds,
        }, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(output_dir / "_training", ignore_errors=True)
    PartialState().wait_for_everyone()
    return BaselineRun(output_dir, model, result.epoch_losses, counts.tolist(), seconds)


def read_soft_label_csv(path: str | Path) -> dict[str, np.ndarray]:
    """``image_id`` + the 8 emotion columns → ``{image_id: (8,) float32}`` (errors name file and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"soft labels file not found: {path}")
    out: dict[str, np.ndarray] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("image_id", *EMOTIONS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected image_id and {list(EMOTIONS)}")
        for line, row in enumerate(reader, start=2):
            try:
                out[row["image_id"]] = np.asarray([float(row[e]) for e in EMOTIONS], dtype=np.float32)
            except ValueError:
                raise ValueError(f"{path}:{line}: soft label values must be numbers") from None
    return out


def train_baseline_from_source(config: TrainConfig) -> BaselineRun:
    """``affectnetplus train baseline``: records of ``config.train_split`` of ``config.data``; hard labels
    from the records, soft labels from ``config.soft_labels`` (CSV) or, for the synthetic sample, the
    ground-truth soft labels in ``record.extra["soft_label_true"]``."""
    from affectnetplus_hf.sources import open_source

    source = open_source(config.data)
    records = [r for r in source.records(config.train_split)]
    if config.kind == "hard":
        records = [r for r in records if r.hard_label is not None]
        targets = np.asarray([r.hard_label for r in records], dtype=np.int64)
    else:
        table = read_soft_label_csv(config.soft_labels) if config.soft_labels else None
        kept, rows = [], []
        for r in records:
            soft = table.get(r.image_id) if table is not None else r.extra.get("soft_label_true")
            if soft is None:
                if table is not None:
                    raise ValueError(f"{config.soft_labels}: no soft label for image {r.image_id!r}")
                raise ValueError(
                    f"{r.location}: no soft label; give --soft-labels FILE.csv (image_id + emotion columns)"
                )
            kept.append(r)
            rows.append(soft)
        records, targets = kept, np.asarray(rows, dtype=np.float32)
    if config.max_images is not None and len(records) > config.max_images:
        records, targets = records[: config.max_images], targets[: config.max_images]
    return train_baseline(records, targets, config, kind=config.kind)
