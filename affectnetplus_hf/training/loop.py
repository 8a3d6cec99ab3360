"""The one training loop of every model family: EBC members, AU members, Hard-/Soft-FER.

:func:`train_model` runs on :mod:`accelerate` — CPU, one GPU, or DDP over many processes started with
``accelerate launch`` (on CPU: ``accelerate launch --multi_gpu --num_processes 2 …`` with
``ACCELERATE_USE_CPU=1`` or ``cpu=True`` runs two gloo processes; ``--cpu --num_processes 2`` silently
runs one). It gives

- Adam with the preset's learning rate, betas and weight decay, and an optional schedule;
- mixed precision (``no``/``fp16``/``bf16``) and gradient accumulation;
- checkpoints with ``Accelerator.save_state`` every ``checkpoint_every`` optimizer steps and at the end
  of every epoch (``output_dir/checkpoints/step_NNNNNNNN``), the ``checkpoint_total_limit`` newest kept;
  a run restarted with ``resume=True`` continues from the newest one with ``load_state`` and ends with
  the same weights as an uninterrupted run (the per-epoch order, the augmentation and the per-step
  random state are all derived from ``(seed, epoch, step)``, never from what happened before);
- metrics through accelerate trackers (tensorboard when installed) and a tqdm bar;
- a stop with a clear :class:`NonFiniteLossError` (member, epoch, step) when the loss becomes NaN/inf,
  leaving the last good checkpoint in place.

The model is any ``nn.Module`` whose ``forward(**batch)`` returns an output with ``loss`` (the
transformers ``ModelOutput`` convention), or any module together with a ``compute_loss(model, batch)``.
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
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
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
    per_process_batches = math.ceil(n_items / (config.batch_size * accelerator.num_processes))
    steps_per_epoch = math.ceil(per_process_batches / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs

    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    loss_fn = compute_loss or _default_loss

    # ---- resume ----------------------------------------------------------------------------------
    state = {"epoch": 0, "batch_in_epoch": 0, "global_step": 0, "epoch_losses": [], "loss_sum": 0.0,
             "loss_count": 0, "skipped_bad": 0, "completed": False}
    resumed_from = None
    checkpoints = list_checkpoints(output_dir) if config.resume else []
    if checkpoints:
        latest = checkpoints[-1]
        saved = json.loads((latest / TRAINER_STATE).read_text(encoding="utf-8"))
        if saved.get("total_steps") not in (None, total_steps):
            raise ValueError(
                f"{name}: checkpoint {latest} was made for {saved.get('total_steps')} steps, this run has "
                f"{total_steps}; use another output directory or --resume false"
            )
        accelerator.load_state(str(latest))
        state.update({k: saved[k] for k in state if k in saved})
        with warnings.catch_warnings():  # fast-forward the schedule; the optimizer state is loaded
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state["global_step"]):
                scheduler.step()
        resumed_from = str(latest)
        logger.info("%s: resumed from %s (epoch %d, step %d)", name, latest, state["epoch"], state["global_step"])
    elif config.resume is False and (output_dir / CHECKPOINT_DIR).is_dir() and accelerator.is_main_process:
        for old in list_checkpoints(output_dir):
            shutil.rmtree(old, ignore_errors=True)

    trackers = _tracker_name(config.log_with)
    if trackers:
        hparams = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
        hparams.update({k: v for k, v in (tracker_config or {}).items() if isinstance(v, (int, float, str, bool))})
        accelerator.init_trackers(re.sub(r"[^A-Za-z0-9_.-]+", "_", name), config=hparams)

    def save_checkpoint() -> None:
        path = output_dir / CHECKPOINT_DIR / f"step_{state['global_step']:08d}"
        accelerator.wait_for_everyone()
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            write_json_atomic(path / TRAINER_STATE, {**state, "total_steps": total_steps, "name": name})
            for old in list_checkpoints(output_dir)[: -max(1, config.checkpoint_total_limit)]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def finish_trackers() -> None:
        for tracker in getattr(accelerator, "trackers", []):
            tracker.finish()

    history: list[dict[str, float]] = []
    stopped = False
    unwrapped = accelerator.unwrap_model(model)
    model.train()
    try:
        for epoch in range(state["epoch"], config.epochs):
            if hasattr(train_dataset, "set_epoch"):
                train_dataset.set_epoch(epoch)
            order = _epoch_order(np.asarray(indices_of(epoch), dtype=np.int64), config.seed, epoch)
            loader = DataLoader(
                Subset(train_dataset, order.tolist()), batch_size=config.batch_size, shuffle=False,
                num_workers=config.num_workers, collate_fn=collate_fn,
                generator=torch.Generator().manual_seed(derive_seed(config.seed, epoch, 1)),
            )
            loader = prepare_epoch_loader(accelerator, loader)
            skip = state["batch_in_epoch"]
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            bar = tqdm(total=len(loader), initial=skip, desc=f"{name} epoch {epoch + 1}/{config.epochs}",
                       disable=not (config.progress and accelerator.is_local_main_process), leave=False)
            for batch in batches:
                batch_index = state["batch_in_epoch"]
                torch.manual_seed(derive_seed(config.seed, epoch, batch_index, accelerator.process_index))
                batch, n_bad = _drop_bad_rows(batch)
                state["skipped_bad"] += n_bad
                with accelerator.accumulate(model):
                    loss = loss_fn(model, batch)
                    finite = torch.isfinite(loss.detach()).float().reshape(1)
                    if accelerator.num_processes > 1:
                        finite = accelerator.gather(finite)
                    if not bool(finite.all()):
                        kept = list_checkpoints(output_dir)
                        raise NonFiniteLossError(
                            f"{name}: the loss became {float(loss.detach()):.6g} at epoch {epoch + 1}, batch "
                            f"{batch_index + 1}, optimizer step {state['global_step'] + 1}; training stopped. "
                            f"Last good checkpoint kept: {kept[-1] if kept else 'none (no checkpoint yet)'}. "
                            "Try a lower learning rate, --mixed-precision no, or --max-grad-norm 1."
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state["batch_in_epoch"] += 1
                state["loss_sum"] += float(loss.detach())
                state["loss_count"] += 1
                bar.update(1)
                if accelerator.sync_gradients:
                    if not accelerator.optimizer_step_was_skipped:
                        scheduler.step()
                    state["global_step"] += 1
                    if state["global_step"] % config.log_every == 0:
                        metrics = {"train/loss": float(loss.detach()), "train/lr": scheduler.get_last_lr()[0],
                                   "train/epoch": epoch + state["batch_in_epoch"] / max(1, len(loader))}
                        accelerator.log(metrics, step=state["global_step"])
                        bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
                    at_end = state["batch_in_epoch"] >= len(loader)
                    stop_now = stop_after_steps is not None and state["global_step"] >= stop_after_steps
                    if at_end:
                        mean_loss = state["loss_sum"] / max(1, state["loss_count"])
                        state["epoch_losses"].append(mean_loss)
                        history.append({"epoch": epoch + 1, "loss": mean_loss})
                        accelerator.log({"train/epoch_loss": mean_loss}, step=state["global_step"])
                        logger.info("%s: epoch %d/%d mean loss %.4f", name, epoch + 1, config.epochs, mean_loss)
                        state.update(epoch=epoch + 1, batch_in_epoch=0, loss_sum=0.0, loss_count=0)
                        state["completed"] = state["epoch"] >= config.epochs
                    if at_end or stop_now or (config.checkpoint_every and state["global_step"] % config.checkpoint_every == 0):
                        save_checkpoint()
                    if stop_now and not state["completed"]:
                        stopped = True
                        break
            bar.close()
            if stopped:
                logger.info("%s: stopped after %d steps (stop_after_steps)", name, state["global_step"])
                break
    finally:
        finish_trackers()
    accelerator.wait_for_everyone()
    return TrainResult(
        model=unwrapped, global_step=state["global_step"], epochs_completed=state["epoch"],
        epoch_losses=list(state["epoch_losses"]), output_dir=output_dir, completed=bool(state["completed"]),
        resumed_from=resumed_from, is_main_process=accelerator.is_main_process, skipped_bad=state["skipped_bad"],
        history=history,
    )
