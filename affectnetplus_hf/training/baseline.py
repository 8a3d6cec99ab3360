"""Hard-FER and Soft-FER baselines (paper Sec. 4.3) and FER+'s four training modes on the one training loop.

:func:`train_baseline` takes records plus targets — ``(N,)`` hard labels 0–7 for Hard-FER, ``(N, 8)`` soft
labels in [0, 1] for Soft-FER, ``(N, 10)`` annotator votes in FER+ column order for the FER+ kinds
(:data:`~affectnetplus_hf.sources.ferplus.FERPLUS_KINDS`; Barsoum et al. 2016) — and saves the model in a
run folder. Hard-FER counters class imbalance by loss re-weighting and/or up-sampling; Soft-FER uses BCE
with soft targets; the FER+ kinds train an 8-way softmax on targets built from the votes
(:func:`~affectnetplus_hf.sources.ferplus.ferplus_target`). Losses and choices: ``docs/method.md#baselines``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.fileio import write_json_atomic, write_text_atomic
from affectnetplus_hf.reports.model_card import render_baseline_card
from affectnetplus_hf.sources.ferplus import (
    BASELINE_KINDS,
    FERPLUS_KINDS,
    VOTE_COLUMNS,
    ferplus_label_distribution,
    ferplus_target,
)
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

#: Seed tag of probability mode's draws (kept apart from the augmentation's and the loop's streams).
PROBABILITY_SEED_TAG = 0xFE2B


@dataclass
class BaselineRun:
    output_dir: Path
    model: Any
    epoch_losses: list[float]
    class_counts: list[int]
    seconds: float
    #: FER+ kinds: images left out, ``{"discarded": n, "without_votes": n}`` (empty for hard/soft).
    left_out: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# FER+ training modes (Barsoum et al. 2016)
# --------------------------------------------------------------------------------------------------


@dataclass
class FerPlusTargets:
    """FER+ targets of one mode for the images it keeps (:func:`ferplus_training_targets`).

    Attributes:
        rows: the kept rows of the input, ascending.
        targets: ``majority``: ``(n,)`` int64 majority emotion; ``probability``/``crossentropy``:
            ``(n, 8)`` label distribution; ``multi_target``: ``(n, 8)`` smoothed multi-target mask.
        distributions: ``(n, 8)`` float64 label distribution of each kept row (its argmax is the
            emotion counted in the class counts).
        discarded: images FER+ discards in this mode.
        without_votes: rows without votes (a null ``votes`` cell, read as negative counts).
    """

    rows: np.ndarray
    targets: np.ndarray
    distributions: np.ndarray
    discarded: int
    without_votes: int


def ferplus_training_targets(raw_votes, mode: str) -> FerPlusTargets:
    """Targets of FER+ training mode ``mode`` from ``(N, 10)`` vote counts in FER+ column order.

    Each row goes through :func:`~affectnetplus_hf.sources.ferplus.ferplus_label_distribution` (FERPlus's
    outlier removal and per-mode selection, Barsoum et al. 2016); rows it discards and rows with
    negative counts (no votes) are left out and counted. Probability mode keeps the distribution: its
    labels are drawn per epoch by :func:`probability_label`.
    """
    if mode not in FERPLUS_KINDS:
        raise ValueError(f"mode must be one of {FERPLUS_KINDS}, got {mode!r}")
    votes = np.asarray(raw_votes)
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS):
        raise ValueError(
            f"votes must be (N, {len(VOTE_COLUMNS)}) counts in FER+ order {VOTE_COLUMNS}, got shape {votes.shape}"
        )
    rows, targets, distributions = [], [], []
    discarded = without_votes = 0
    for row, counts in enumerate(votes):
        if np.any(counts < 0):
            without_votes += 1
            continue
        distribution = ferplus_label_distribution(counts, mode)
        if distribution is None:
            discarded += 1
            continue
        rows.append(row)
        distributions.append(distribution)
        if mode == "majority":
            targets.append(int(np.argmax(distribution)))
        elif mode == "multi_target":
            targets.append(ferplus_target(counts, mode))
        else:
            targets.append(distribution)
    if mode == "majority":
        target_array = np.asarray(targets, dtype=np.int64)
    else:
        target_array = np.asarray(targets, dtype=np.float64 if mode == "probability" else np.float32)
        target_array = target_array.reshape(-1, NUM_EMOTIONS)
    return FerPlusTargets(
        np.asarray(rows, dtype=np.int64),
        target_array,
        np.asarray(distributions, dtype=np.float64).reshape(-1, NUM_EMOTIONS),
        discarded,
        without_votes,
    )


def probability_label(distribution: np.ndarray, seed: int, epoch: int, row: int) -> int:
    """FER+ probability mode's label of training row ``row`` in ``epoch``: one emotion drawn from its label
    distribution with a generator seeded by ``(seed, epoch, row)`` — the draw of
    :func:`~affectnetplus_hf.sources.ferplus.ferplus_target` ``(raw, "probability", rng)`` with that
    generator. A fresh draw per image per epoch, as FERPlus re-draws per mini-batch, but reproducible
    and independent of batch order, worker processes and resumption."""
    rng = np.random.default_rng(derive_seed(seed, epoch, row, PROBABILITY_SEED_TAG))
    distribution = np.asarray(distribution, dtype=np.float64)
    return int(rng.choice(distribution.size, p=distribution))


class ProbabilityLabelDataset(Dataset):
    """Wraps an image dataset; each item gets ``labels`` = :func:`probability_label` of its row for the
    current epoch (:meth:`set_epoch`, called by the training loop before each epoch)."""

    def __init__(self, images: Dataset, distributions: np.ndarray, seed: int):
        if len(distributions) != len(images):
            raise ValueError(f"{len(distributions)} distributions for {len(images)} images; expected equal")
        self.images = images
        self.distributions = np.asarray(distributions, dtype=np.float64)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.images, "set_epoch"):
            self.images.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.images[index])
        label = probability_label(self.distributions[index], self.seed, self.epoch, index)
        item["labels"] = torch.tensor(label, dtype=torch.int64)
        return item


def ferplus_loss_from_logits(mode: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss of FER+ training mode ``mode`` over a batch (Barsoum et al. 2016).

    ``logits`` ``(N, 8)`` of the softmax model; ``targets``: ``(N,)`` labels for ``majority`` and
    ``probability`` (cross-entropy ``-log p_y``), ``(N, 8)`` for ``crossentropy`` (``-Σ_e t_e log p_e``)
    and ``multi_target`` (``-log Σ_e t_e p_e``, computed as a log-sum-exp).
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)
    if mode in ("majority", "probability"):
        return torch.nn.functional.nll_loss(log_p, targets.long())
    if mode == "crossentropy":
        return -(targets.float() * log_p).sum(dim=-1).mean()
    if mode == "multi_target":
        return -torch.logsumexp(log_p + torch.log(targets.float()), dim=-1).mean()
    raise ValueError(f"mode must be one of {FERPLUS_KINDS}, got {mode!r}")


class FerPlusLoss:
    """``compute_loss(model, batch)`` of :func:`~affectnetplus_hf.training.loop.train_model` for a FER+
    mode: the model's logits on ``batch["pixel_values"]`` against ``batch["labels"]``."""

    def __init__(self, mode: str):
        if mode not in FERPLUS_KINDS:
            raise ValueError(f"mode must be one of {FERPLUS_KINDS}, got {mode!r}")
        self.mode = mode

    def __call__(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(pixel_values=batch["pixel_values"]).logits
        return ferplus_loss_from_logits(self.mode, logits, batch["labels"])


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
            raise ValueError(
                f"Soft-FER target of row {int(bad[0])} is {targets[bad[0]].tolist()}; expected 8 values in [0, 1]"
            )
        return targets
    if kind in FERPLUS_KINDS:
        if targets.shape != (n, len(VOTE_COLUMNS)):
            raise ValueError(
                f"FER+ {kind} targets must be ({n}, {len(VOTE_COLUMNS)}) vote counts in FER+ order "
                f"{VOTE_COLUMNS}, got shape {targets.shape}"
            )
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"FER+ {kind} targets must be integer vote counts, got dtype {targets.dtype}")
        return targets.astype(np.int64)
    raise ValueError(f"kind must be one of {BASELINE_KINDS}, got {kind!r}")


def train_baseline(records, targets, config: TrainConfig, kind: str | None = None) -> BaselineRun:
    """Train a Hard-FER (``kind="hard"``), Soft-FER (``"soft"``) or FER+ (``"majority"``, ``"probability"``,
    ``"crossentropy"``, ``"multi_target"``; ``targets`` = ``(N, 10)`` votes in FER+ order) model and save it
    in ``config.output_dir`` (see the module docstring), a run folder (:mod:`affectnetplus_hf.run_folder`):
    locked while training, resumed from its checkpoints with the same settings and data, a finished model
    replaced only with ``config.overwrite``."""
    from accelerate import PartialState

    from affectnetplus_hf.run_folder import RunFolder, records_fingerprint

    started = time.perf_counter()
    config = resolve_preset(config)
    kind = kind or config.kind
    rows = _training_rows(list(records), targets, kind)
    fingerprint = records_fingerprint(
        (r.image_id, json.dumps(np.asarray(t).tolist())) for r, t in zip(rows.records, rows.targets)
    )
    folder = RunFolder(
        config.output_dir, "baseline-model", {**config.identity(), "kind": kind, "records": fingerprint}
    )
    state = PartialState()
    with folder if state.is_main_process else contextlib.nullcontext():
        if state.is_main_process:
            if folder.start(overwrite=config.overwrite, resume=False) == "replace":
                folder.clear()
            folder.mark(complete=False)
            config.save(folder.path)
        state.wait_for_everyone()
        run = _fit_baseline(rows, config, kind, folder.path)
        seconds = time.perf_counter() - started
        if run.is_main_process:  # under `accelerate launch` only one process writes the model directory
            _save_baseline(run.model, rows, config, kind, folder.path, run.epoch_losses, seconds)
            folder.mark(complete=True)
        state.wait_for_everyone()
    return BaselineRun(folder.path, run.model, run.epoch_losses, rows.counts.tolist(), seconds, rows.left_out)


@dataclass
class _TrainingRows:
    """The rows a baseline trains on: records, targets, FER+ label distributions, rows left out; once decoded
    (:func:`_fit_baseline`), the rows trained on and their class counts."""

    records: list
    targets: np.ndarray
    distributions: np.ndarray | None
    left_out: dict[str, int]
    n_train: int = 0
    counts: np.ndarray | None = None


def _training_rows(records: list, targets, kind: str) -> _TrainingRows:
    """Check the targets; for the FER+ kinds keep the images FER+'s rule keeps (their label distributions)."""
    if not records:
        raise ValueError("train_baseline: no training record")
    targets = _check_targets(kind, targets, len(records))
    left_out: dict[str, int] = {}
    distributions = None
    if kind in FERPLUS_KINDS:
        ferplus = ferplus_training_targets(targets, kind)
        left_out = {"discarded": ferplus.discarded, "without_votes": ferplus.without_votes}
        if ferplus.discarded or ferplus.without_votes:
            logger.warning(
                "FER+ %s: %d of %d images left out (%d discarded by FER+'s %s rule, %d without votes)",
                kind,
                ferplus.discarded + ferplus.without_votes,
                len(records),
                ferplus.discarded,
                kind,
                ferplus.without_votes,
            )
        if not len(ferplus.rows):
            raise ValueError(
                f"FER+ {kind}: none of the {len(records)} images has a {kind} target "
                f"({ferplus.discarded} discarded by FER+, {ferplus.without_votes} without votes)"
            )
        records = [records[i] for i in ferplus.rows]
        targets, distributions = ferplus.targets, ferplus.distributions
    return _TrainingRows(records, targets, distributions, left_out)


def _fit_baseline(rows: _TrainingRows, config: TrainConfig, kind: str, output_dir: Path):
    """Decode the rows and train the model with the one loop (:func:`affectnetplus_hf.training.train_model`)."""
    preprocess = FacePreprocessor(config.image_size)
    augmenter = SeededAugmenter(config.augment_config(), preprocess.image_mean, preprocess.image_std, seed=config.seed)
    targets, distributions = rows.targets, rows.distributions
    if config.cache_images:
        pixels, kept, _ = decode_records(rows.records, preprocess, skip_bad=config.skip_bad, progress=config.progress)
        targets = targets[kept]
        if distributions is not None:
            distributions = distributions[kept]
    # probability mode draws its labels per epoch (ProbabilityLabelDataset); the others carry fixed labels
    fixed = {} if kind == "probability" else {"labels": torch.from_numpy(targets)}
    if config.cache_images:
        dataset = TensorImageDataset(pixels, fixed, augmenter)
    else:
        dataset = RecordImageDataset(rows.records, preprocess, fixed, augmenter, skip_bad=config.skip_bad)
    if kind == "probability":
        dataset = ProbabilityLabelDataset(dataset, distributions, config.seed)
    rows.n_train = len(dataset)
    if kind in ("hard", "majority"):
        hard_labels = targets
    else:  # soft label, or FER+ label distribution: its top emotion
        hard_labels = (targets if distributions is None else distributions).argmax(axis=1)
    rows.counts = np.bincount(hard_labels, minlength=NUM_EMOTIONS)
    model, compute_loss, epoch_indices = _baseline_model(config, kind, targets, preprocess)
    run_name = f"ferplus-{kind}-{config.backbone}" if kind in FERPLUS_KINDS else f"{kind}-fer-{config.backbone}"
    result = train_model(
        model,
        dataset,
        config.loop_config("baseline"),
        output_dir / "_training",
        name=run_name,
        epoch_indices=epoch_indices,
        compute_loss=compute_loss,
        logging_dir=output_dir / "logs",
    )
    result.model.image_processor = preprocess.processor
    return result


def _baseline_model(config: TrainConfig, kind: str, targets: np.ndarray, preprocess: FacePreprocessor):
    """``(model, compute_loss, epoch_indices)``: the FER+ kinds an 8-way softmax without class weights (Barsoum
    et al. 2016) and their own loss; Hard-FER with the configured class balance; Soft-FER."""
    from affectnetplus_hf.models import HardFERConfig, HardFERModel, SoftFERConfig, SoftFERModel

    common = dict(
        backbone=config.backbone,
        image_size=config.image_size,
        image_mean=list(preprocess.image_mean),
        image_std=list(preprocess.image_std),
    )
    torch.manual_seed(config.seed)
    if kind in FERPLUS_KINDS:
        return HardFERModel(HardFERConfig(class_weights=None, ferplus_mode=kind, **common)), FerPlusLoss(kind), None
    if kind == "hard":
        weights = class_weights_for(targets) if config.class_balance in ("reweight", "both") else None
        model = HardFERModel(HardFERConfig(class_weights=weights, **common))
        if config.class_balance in ("upsample", "both"):
            return model, None, lambda epoch: upsampling_indices(targets, config.seed, epoch)
        return model, None, None
    return SoftFERModel(SoftFERConfig(**common)), None, None


def _save_baseline(
    model,
    rows: _TrainingRows,
    config: TrainConfig,
    kind: str,
    output_dir: Path,
    epoch_losses: list[float],
    seconds: float,
) -> None:
    """The model, its card and ``training_summary.json``; the checkpoints are removed."""
    model.save_pretrained(str(output_dir))
    card = render_baseline_card(config, kind, rows.n_train, rows.counts, epoch_losses, seconds, left_out=rows.left_out)
    write_text_atomic(output_dir / "README.md", card)
    summary = {"kind": kind, "epoch_losses": epoch_losses, "class_counts": rows.counts.tolist(), "seconds": seconds}
    if kind in FERPLUS_KINDS:
        summary.update(n_train=rows.n_train, left_out=rows.left_out)
    write_json_atomic(output_dir / "training_summary.json", summary)
    shutil.rmtree(output_dir / "_training", ignore_errors=True)


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
