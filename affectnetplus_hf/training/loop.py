"""The one training loop of every model family: EBC members, AU members, Hard-/Soft-FER.

:func:`train_model` runs on :mod:`accelerate` (CPU, one GPU, or DDP over processes started with
``accelerate launch``): Adam with an optional schedule, mixed precision, gradient accumulation, trackers and a
tqdm bar. Its progress is a :class:`TrainerState`, saved as ``trainer_state.json`` next to
``Accelerator.save_state``'s files in every checkpoint (``output_dir/checkpoints/step_NNNNNNNN``); ``resume=True``
continues from the newest one and ends with the same weights as an uninterrupted run. A NaN/inf loss stops the
run with :class:`NonFiniteLossError`, keeping the last good checkpoint. The model is any ``nn.Module`` whose
``forward(**batch)`` returns an output with ``loss``, or any module with a ``compute_loss(model, batch)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from affectnetplus_hf.fileio import write_json_atomic
from affectnetplus_hf.training.config import LoopConfig

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
TRAINER_STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the model, epoch and step."""


@dataclass
class TrainResult:
    """What :func:`train_model` returns."""

    model: nn.Module
    global_step: int
    epochs_completed: int
    epoch_losses: list[float]
    output_dir: Path
    completed: bool
    resumed_from: str | None = None
    is_main_process: bool = True
    skipped_bad: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TrainerState:
    """The loop's progress, the ``trainer_state.json`` of every checkpoint (as transformers' ``TrainerState``).

    ``batch_in_epoch`` batches of epoch ``epoch`` are done (0 at an epoch's start); ``loss_sum`` and
    ``loss_count`` are the running sums of the epoch so far; ``total_steps`` is the optimizer steps of the
    whole run, checked on resume.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    skipped_bad: int = 0
    completed: bool = False
    total_steps: int | None = None
    name: str | None = None

    def save_to_json(self, path: str | os.PathLike) -> None:
        """Write the state as deterministic JSON (sorted keys), atomically."""
        write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def load_from_json(cls, path: str | os.PathLike) -> TrainerState:
        """The state saved at ``path``; keys it lacks keep their defaults, keys it does not know are ignored."""
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in saved.items() if key in known})


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy SeedSequence), for per-epoch / per-step / per-item draws."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def build_optimizer(model: nn.Module, config: LoopConfig) -> torch.optim.Optimizer:
    """Adam (paper Sec. 4.1/4.2, ``docs/method.md#baselines``) with L2 weight decay, over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameter")
    return torch.optim.Adam(
        params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: LoopConfig, total_steps: int):
    """LambdaLR for ``constant`` / ``cosine`` / ``linear`` (after ``warmup_steps``) or ``inverse_time``
    (Keras' legacy ``lr / (1 + lr_decay · step)``, the other reading of the paper's ``decay``)."""
    warmup = int(config.warmup_steps)
    total = max(1, int(total_steps))

    def factor(step: int) -> float:
        if config.lr_scheduler == "inverse_time":
            return 1.0 / (1.0 + config.lr_decay * step)
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.lr_scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if config.lr_scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)  # linear

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _tracker_name(log_with: str) -> list[str] | None:
    if log_with in ("none", "", None):
        return None
    if log_with == "auto":
        from accelerate.utils import is_tensorboard_available

        return ["tensorboard"] if is_tensorboard_available() else None
    return [name.strip() for name in log_with.split(",") if name.strip()]


def make_accelerator(config: LoopConfig, output_dir: str | os.PathLike, logging_dir: str | os.PathLike | None = None):
    """An :class:`accelerate.Accelerator` for one run (trackers write under ``logging_dir``, default
    ``output_dir/logs``)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    logging_dir = Path(logging_dir) if logging_dir is not None else Path(output_dir) / "logs"
    project = ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(logging_dir))
    return Accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=_tracker_name(config.log_with),
        project_config=project,
        step_scheduler_with_optimizer=False,
    )


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (those with a ``trainer_state.json``) of a run, oldest first."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def _epoch_order(indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng(derive_seed(seed, epoch, 0x5EED))
    return indices[rng.permutation(len(indices))]


def prepare_epoch_loader(accelerator, loader: DataLoader) -> DataLoader:
    """``loader`` sharded over the processes and moved to the device, as ``accelerator.prepare_data_loader``
    does, but not registered with ``accelerator``: a fresh loader is made every epoch, so ``save_state``
    must not carry it (it would keep every epoch's loader and write its sampler; the order is re-derived
    from ``(seed, epoch)`` on resume anyway). Uses accelerate's public
    :func:`accelerate.data_loader.prepare_data_loader` with the accelerator's own settings."""
    from accelerate.data_loader import prepare_data_loader
    from accelerate.utils import DistributedType

    newer = {  # settings of recent accelerate releases, passed when set
        "data_seed": getattr(accelerator.dataloader_config, "data_seed", None),
        "torch_device_mesh": getattr(accelerator, "torch_device_mesh", None),
    }
    return prepare_data_loader(
        loader,
        accelerator.device,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        split_batches=accelerator.split_batches,
        put_on_device=accelerator.device_placement and accelerator.distributed_type != DistributedType.XLA,
        rng_types=list(accelerator.rng_types),
        dispatch_batches=accelerator.dispatch_batches,
        even_batches=accelerator.even_batches,
        use_seedable_sampler=accelerator.use_seedable_sampler,
        non_blocking=accelerator.non_blocking,
        use_stateful_dataloader=accelerator.use_stateful_dataloader,
        **{name: value for name, value in newer.items() if value is not None},
    )


def _default_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    outputs = model(**batch)
    loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss", None)
    if loss is None:
        raise ValueError(
            f"{type(model).__name__}.forward returned no loss; pass labels in the batch or a compute_loss function"
        )
    return loss


def _drop_bad_rows(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    bad = batch.pop("bad", None)
    if bad is None or not bool(bad.any()):
        return batch, 0
    keep = ~bad.bool()
    return {k: v[keep] for k, v in batch.items()}, int(bad.sum())


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def flushing_denormals(function: Callable) -> Callable:
    """Run ``function`` with the CPU flushing denormal floats to zero, and restore the setting after.

    Weight decay drives unused weights below float32's normal range; the CPU then computes with them many
    times slower (8x in the late epochs of the shipped model's training). Flushed to zero, they cost nothing.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        was_flushing = float(torch.tensor([1e-40]) * 1.0) == 0.0
        torch.set_flush_denormal(True)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_flush_denormal(was_flushing)

    return wrapper


@dataclass
class _Run:
    """What the steps of one :func:`train_model` call share: the prepared objects, the options and the state."""

    accelerator: Any
    model: nn.Module  # as prepared by the accelerator (wrapped under DDP)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    train_dataset: Dataset
    indices_of: Callable[[int], np.ndarray]
    config: LoopConfig
    output_dir: Path
    name: str
    collate_fn: Callable | None
    stop_after_steps: int | None
    state: TrainerState
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: str | None = None


@flushing_denormals
def train_model(
    model: nn.Module,
    train_dataset: Dataset,
    config: LoopConfig,
    output_dir: str | os.PathLike,
    *,
    name: str = "model",
    epoch_indices: Callable[[int], np.ndarray] | None = None,
    compute_loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor] | None = None,
    collate_fn: Callable | None = None,
    tracker_config: dict[str, Any] | None = None,
    stop_after_steps: int | None = None,
    logging_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_dataset`` with ``config`` (see the module docstring).

    Args:
        model: an ``nn.Module``; ``model(**batch)`` must return an output with ``loss`` unless
            ``compute_loss`` is given. Build it after seeding for a reproducible initialisation.
        train_dataset: a map-style dataset of dict items (``pixel_values`` and targets). If it has
            ``set_epoch`` it is called at the start of every epoch (seeded augmentation).
        config: the loop's hyper-parameters.
        output_dir: where checkpoints (``checkpoints/``) and tracker logs (``logs/``) go.
        name: the run's name in logs, progress bars and error messages (e.g. ``ebc-resnet50-Happy``).
        epoch_indices: ``epoch -> indices`` of the rows used that epoch (one-vs-rest negatives re-drawn
            per epoch, up-sampling with replacement); default every row. The loop shuffles them with a
            seed derived from ``(config.seed, epoch)``.
        compute_loss: ``(model, batch) -> scalar loss``, for models whose forward has no loss.
        collate_fn: the DataLoader's collate function (default: torch's).
        tracker_config: hyper-parameters recorded by the trackers (flat scalars).
        stop_after_steps: stop (after checkpointing) once this many optimizer steps are done, as if
            the job were killed there — the run can be resumed later.
        logging_dir: where the trackers write (default ``output_dir/logs``).

    Returns:
        :class:`TrainResult` with the unwrapped model.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the newest good checkpoint is kept).
    """
    run = _prepare_run(
        model,
        train_dataset,
        config,
        Path(output_dir),
        name=name,
        epoch_indices=epoch_indices,
        compute_loss=compute_loss,
        collate_fn=collate_fn,
        stop_after_steps=stop_after_steps,
        logging_dir=logging_dir,
    )
    _resume_or_start_fresh(run)
    _init_trackers(run, tracker_config)
    unwrapped = run.accelerator.unwrap_model(run.model)
    run.model.train()
    try:
        _train_epochs(run)
    finally:
        for tracker in getattr(run.accelerator, "trackers", []):
            tracker.finish()
    run.accelerator.wait_for_everyone()
    state = run.state
    return TrainResult(
        model=unwrapped,
        global_step=state.global_step,
        epochs_completed=state.epoch,
        epoch_losses=list(state.epoch_losses),
        output_dir=run.output_dir,
        completed=bool(state.completed),
        resumed_from=run.resumed_from,
        is_main_process=run.accelerator.is_main_process,
        skipped_bad=state.skipped_bad,
        history=run.history,
    )


def _steps_per_epoch(n_items: int, config: LoopConfig, num_processes: int) -> int:
    """Optimizer steps of an epoch of ``n_items`` rows (batches per process over the accumulation steps)."""
    per_process_batches = math.ceil(n_items / (config.batch_size * num_processes))
    return math.ceil(per_process_batches / config.gradient_accumulation_steps)


def _prepare_run(
    model: nn.Module,
    train_dataset: Dataset,
    config: LoopConfig,
    output_dir: Path,
    *,
    name: str,
    epoch_indices,
    compute_loss,
    collate_fn,
    stop_after_steps,
    logging_dir,
) -> _Run:
    """The accelerator, the checkpoint folder, the step count, the optimizer and schedule, all prepared."""
    accelerator = make_accelerator(config, output_dir, logging_dir)
    if accelerator.is_main_process:
        (output_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    n_rows = len(train_dataset)
    if n_rows == 0:
        raise ValueError(f"{name}: the training set is empty")
    indices_of = epoch_indices or (lambda epoch: np.arange(n_rows))
    n_items = len(indices_of(0))
    if n_items == 0:
        raise ValueError(f"{name}: epoch 0 selects no training row")
    total_steps = _steps_per_epoch(n_items, config, accelerator.num_processes) * config.epochs
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    return _Run(
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=compute_loss or _default_loss,
        train_dataset=train_dataset,
        indices_of=indices_of,
        config=config,
        output_dir=output_dir,
        name=name,
        collate_fn=collate_fn,
        stop_after_steps=stop_after_steps,
        state=TrainerState(total_steps=total_steps, name=name),
    )


def _resume_or_start_fresh(run: _Run) -> None:
    """``config.resume``: load the newest checkpoint and fast-forward the schedule; ``resume=False``: delete
    the checkpoints of an earlier run."""
    accelerator, output_dir, name = run.accelerator, run.output_dir, run.name
    checkpoints = list_checkpoints(output_dir) if run.config.resume else []
    if checkpoints:
        latest = checkpoints[-1]
        saved = TrainerState.load_from_json(latest / TRAINER_STATE)
        if saved.total_steps not in (None, run.state.total_steps):
            raise ValueError(
                f"{name}: checkpoint {latest} was made for {saved.total_steps} steps, this run has "
                f"{run.state.total_steps}; use another output directory or --resume false"
            )
        accelerator.load_state(str(latest))
        run.state = dataclasses.replace(saved, total_steps=run.state.total_steps, name=name)
        with warnings.catch_warnings():  # fast-forward the schedule; the optimizer state is loaded
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(run.state.global_step):
                run.scheduler.step()
        run.resumed_from = str(latest)
        logger.info("%s: resumed from %s (epoch %d, step %d)", name, latest, run.state.epoch, run.state.global_step)
    elif run.config.resume is False and (output_dir / CHECKPOINT_DIR).is_dir() and accelerator.is_main_process:
        for old in list_checkpoints(output_dir):
            shutil.rmtree(old, ignore_errors=True)


def _init_trackers(run: _Run, tracker_config: dict[str, Any] | None) -> None:
    """Start the accelerate trackers with the loop's and the caller's scalar hyper-parameters."""
    if not _tracker_name(run.config.log_with):
        return
    scalars = (int, float, str, bool)
    hparams = {k: v for k, v in dataclasses.asdict(run.config).items() if isinstance(v, scalars)}
    hparams.update({k: v for k, v in (tracker_config or {}).items() if isinstance(v, scalars)})
    run.accelerator.init_trackers(re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name), config=hparams)


def _save_checkpoint(run: _Run) -> None:
    """``save_state`` plus ``trainer_state.json`` into ``checkpoints/step_NNNNNNNN``; the oldest beyond
    ``checkpoint_total_limit`` are deleted."""
    accelerator = run.accelerator
    path = run.output_dir / CHECKPOINT_DIR / f"step_{run.state.global_step:08d}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        run.state.save_to_json(path / TRAINER_STATE)
        for old in list_checkpoints(run.output_dir)[: -max(1, run.config.checkpoint_total_limit)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _train_epochs(run: _Run) -> None:
    """The epochs from ``state.epoch`` on, until the last one or ``stop_after_steps``."""
    for epoch in range(run.state.epoch, run.config.epochs):
        if _train_epoch(run, epoch):
            logger.info("%s: stopped after %d steps (stop_after_steps)", run.name, run.state.global_step)
            break


def _epoch_loader(run: _Run, epoch: int) -> DataLoader:
    """The epoch's rows in their ``(seed, epoch)`` order, batched, sharded and on the device."""
    if hasattr(run.train_dataset, "set_epoch"):
        run.train_dataset.set_epoch(epoch)
    config = run.config
    order = _epoch_order(np.asarray(run.indices_of(epoch), dtype=np.int64), config.seed, epoch)
    loader = DataLoader(
        Subset(run.train_dataset, order.tolist()),
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        collate_fn=run.collate_fn,
        generator=torch.Generator().manual_seed(derive_seed(config.seed, epoch, 1)),
    )
    return prepare_epoch_loader(run.accelerator, loader)


def _train_epoch(run: _Run, epoch: int) -> bool:
    """One epoch (the rest of it when resumed mid-epoch); ``True`` when ``stop_after_steps`` stopped it."""
    from tqdm.auto import tqdm

    accelerator, config, state = run.accelerator, run.config, run.state
    loader = _epoch_loader(run, epoch)
    skip = state.batch_in_epoch
    batches = accelerator.skip_first_batches(loader, skip) if skip else loader
    bar = tqdm(
        total=len(loader),
        initial=skip,
        desc=f"{run.name} epoch {epoch + 1}/{config.epochs}",
        disable=not (config.progress and accelerator.is_local_main_process),
        leave=False,
    )
    stopped = False
    for batch in batches:
        loss = _training_step(run, batch, epoch)
        state.batch_in_epoch += 1
        state.loss_sum += float(loss.detach())
        state.loss_count += 1
        bar.update(1)
        if accelerator.sync_gradients and _after_optimizer_step(run, loss, epoch, len(loader), bar):
            stopped = True
            break
    bar.close()
    return stopped


def _training_step(run: _Run, batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
    """Forward, finite-loss check, backward, clipping and optimizer step of one batch (seeded by its place)."""
    accelerator, config, state = run.accelerator, run.config, run.state
    batch_index = state.batch_in_epoch
    torch.manual_seed(derive_seed(config.seed, epoch, batch_index, accelerator.process_index))
    batch, n_bad = _drop_bad_rows(batch)
    state.skipped_bad += n_bad
    with accelerator.accumulate(run.model):
        loss = run.loss_fn(run.model, batch)
        _check_finite(run, loss, epoch, batch_index)
        accelerator.backward(loss)
        if accelerator.sync_gradients and config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss


def _check_finite(run: _Run, loss: torch.Tensor, epoch: int, batch_index: int) -> None:
    """:class:`NonFiniteLossError` when the loss of any process is NaN/inf."""
    accelerator = run.accelerator
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if accelerator.num_processes > 1:
        finite = accelerator.gather(finite)
    if not bool(finite.all()):
        kept = list_checkpoints(run.output_dir)
        raise NonFiniteLossError(
            f"{run.name}: the loss became {float(loss.detach()):.6g} at epoch {epoch + 1}, batch "
            f"{batch_index + 1}, optimizer step {run.state.global_step + 1}; training stopped. "
            f"Last good checkpoint kept: {kept[-1] if kept else 'none (no checkpoint yet)'}. "
            "Try a lower learning rate, --mixed-precision no, or --max-grad-norm 1."
        )


def _after_optimizer_step(run: _Run, loss: torch.Tensor, epoch: int, n_batches: int, bar) -> bool:
    """Schedule, count, log, close the epoch and checkpoint after an optimizer step; ``True`` to stop the run."""
    accelerator, config, state = run.accelerator, run.config, run.state
    if not accelerator.optimizer_step_was_skipped:
        run.scheduler.step()
    state.global_step += 1
    if state.global_step % config.log_every == 0:
        metrics = {
            "train/loss": float(loss.detach()),
            "train/lr": run.scheduler.get_last_lr()[0],
            "train/epoch": epoch + state.batch_in_epoch / max(1, n_batches),
        }
        accelerator.log(metrics, step=state.global_step)
        bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
    at_end = state.batch_in_epoch >= n_batches
    stop_now = run.stop_after_steps is not None and state.global_step >= run.stop_after_steps
    if at_end:
        _end_epoch(run, epoch)
    if at_end or stop_now or (config.checkpoint_every and state.global_step % config.checkpoint_every == 0):
        _save_checkpoint(run)
    return stop_now and not state.completed


def _end_epoch(run: _Run, epoch: int) -> None:
    """Record the epoch's mean loss and move the state to the start of the next epoch."""
    state = run.state
    mean_loss = state.loss_sum / max(1, state.loss_count)
    state.epoch_losses.append(mean_loss)
    run.history.append({"epoch": epoch + 1, "loss": mean_loss})
    run.accelerator.log({"train/epoch_loss": mean_loss}, step=state.global_step)
    logger.info("%s: epoch %d/%d mean loss %.4f", run.name, epoch + 1, run.config.epochs, mean_loss)
    state.epoch, state.batch_in_epoch, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
    state.completed = state.epoch >= run.config.epochs
