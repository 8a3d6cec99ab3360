"""Train a soft-labeler from a multi-annotated set (paper Sec. 3.2–3.3, ``docs/method.md#mas-split`` to
``docs/method.md#soft-label``).

:func:`train_soft_labeler` runs the producer pipeline, one function per step:

1. :func:`read_mas` — the multi-annotated source's images with votes;
2. :func:`prepare_mas` — the train-MAS / test-MAS split (saved in ``mas_split/``), its checks, the images;
3. :func:`train_members` — every EBC, AU and distribution member, each measured on test-MAS;
4. :func:`member_confidence_scores` — the members' confidence scores (Eq. 3) in both modes;
5. :func:`assemble_soft_labeler`, then 6. :func:`calibrate_soft_labeler` (with ``calibration_split``);
7. :func:`save_outputs` — the model, the per-member tables (JSON, Markdown) and the model card.

The model directory is a locked, resumable run folder (kind ``soft-labeler``): see
``docs/architecture.md#soft-labeler-run-folder``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, au_vectors
from affectnetplus_hf.fileio import write_json_atomic, write_text_atomic
from affectnetplus_hf.mas.negatives import select_one_vs_rest
from affectnetplus_hf.mas.split import MASSplit, mas_arrays, record_vote_distributions, split_mas
from affectnetplus_hf.metrics.functional import accuracy, average_accuracy, confusion_matrix
from affectnetplus_hf.paper import PAPER_N_TEST_PER_CLASS
from affectnetplus_hf.run_folder import RunFolder, RunFolderError, records_fingerprint
from affectnetplus_hf.softlabel import confidence_score
from affectnetplus_hf.training.calibrate import HOLDOUT, calibrate_on_records, hold_out, vote_records
from affectnetplus_hf.training.config import TrainConfig, resolve_preset
from affectnetplus_hf.training.data import (
    FacePreprocessor,
    RecordImageDataset,
    SeededAugmenter,
    TensorImageDataset,
    decode_records,
)
from affectnetplus_hf.training.loop import train_model
from affectnetplus_hf.votes import majority_labels

logger = logging.getLogger(__name__)

WORK_DIR = "_training"
MEMBER_DONE = "member_done.json"
#: The kind of a model directory in its run-folder marker (:mod:`affectnetplus_hf.run_folder`).
FOLDER_KIND = "soft-labeler"
#: The soft-labeler's families, in output order: the paper's EBC and AU, then the distribution family.
FAMILY_NAMES: tuple[str, ...] = ("ebc", "au", "dist")


# --------------------------------------------------------------------------------------------------
# Evaluation of one member on test-MAS (Eq. 3, paper Tables 6–7 / VIII–IX)
# --------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def binary_metrics(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Counts, accuracy, average (per-class) accuracy, precision, recall and F1 of the positive class as
    fractions, and the confidence score in both modes of ``docs/method.md#confidence-scores``.

    The rates are the ones :func:`~affectnetplus_hf.metrics.functional.hard_label_metrics` defines, taken
    from its confusion matrix; they are computed here as fractions because that module returns percents,
    and ``percent / 100`` is not the fraction bit for bit (``100 * (1/3) / 100 != 1/3``). A class absent
    from ``y_true`` counts 0 in the average accuracy (the confidence score's convention).
    """
    y_true = np.asarray(y_true).astype(np.int64)
    p_positive = np.asarray(p_positive, dtype=np.float64)
    if y_true.shape != p_positive.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and p_positive {p_positive.shape} must be equal 1-D shapes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs_balanced = confidence_score(y_true, p_positive, mode="balanced", threshold=threshold)
        cs_eq3 = confidence_score(y_true, p_positive, mode="eq3", threshold=threshold)
    predicted = (p_positive >= threshold).astype(np.int64)
    (tn, fp), (fn, tp) = confusion_matrix(y_true, predicted, labels=(0, 1)).tolist()
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "n_positive": tp + fn,
        "n_negative": tn + fp,
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "accuracy": _ratio(tp + tn, len(y_true)),
        "average_accuracy": 0.5 * (recall + _ratio(tn, tn + fp)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "cs_balanced": float(cs_balanced),
        "cs_eq3": float(cs_eq3),
    }


def dist_accuracy(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy and average (per-class) accuracy of a distribution member's arg-max on test-MAS, as fractions
    (the unit of :func:`binary_metrics`): :mod:`affectnetplus_hf.metrics.functional`'s percents / 100."""
    predicted = probs.argmax(axis=1)
    return {
        "accuracy": accuracy(y_true, predicted) / 100.0,
        "average_accuracy": average_accuracy(y_true, predicted) / 100.0,
    }


@torch.no_grad()
def member_probs(model: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """One member's probabilities over a tensor of images: P(emotion | image), (N,), for an EBC member
    (the binary head's positive probability, Eq. 4's P_j) and an AU member (P_AU of Eq. 12); the (N, 8)
    softmax for a distribution member."""
    was_training = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(pixel_values), batch_size):
        output = model(pixel_values[start : start + batch_size].to(device))
        probs = next(
            p for p in (getattr(output, name, None) for name in ("p_au", "positive_probs", "probs")) if p is not None
        )
        out.append(probs.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64)


def markdown_member_table(rows: dict[str, dict[str, Any]], title: str) -> str:
    """Paper Tables 6–7 shape: one column per emotion (+ mean), one row per metric (percent)."""
    metrics = (
        ("accuracy", "Acc"),
        ("average_accuracy", "Avg. Acc"),
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("f1", "F1"),
        ("cs_balanced", "CS (balanced)"),
        ("cs_eq3", "CS (Eq. 3)"),
    )
    header = "| metric | " + " | ".join(EMOTIONS) + " | mean |"
    lines = [f"### {title}", "", header, "|" + "---|" * (NUM_EMOTIONS + 2)]
    for key, label in metrics:
        values = [100.0 * rows[e][key] for e in EMOTIONS]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.mean(values):.2f} |")
    counts = " | ".join(f"{rows[e]['n_positive']}/{rows[e]['n_negative']}" for e in EMOTIONS)
    lines.append(f"| test pos/neg | {counts} | |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The run's state
# --------------------------------------------------------------------------------------------------


@dataclass
class SoftLabelerRun:
    """What :func:`train_soft_labeler` returns."""

    output_dir: Path
    model: Any
    confidence_scores: dict[str, dict[str, list]]
    member_metrics: dict[str, dict[str, dict[str, Any]]]
    split_report: dict[str, Any]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    dist_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    sample_passes: int = 0


@dataclass
class RunSetup:
    """What every step of one run shares: the resolved config and families, the claimed model directory,
    the accelerate state, and the clock (``started``: the run, ``data_started``: reading the MAS)."""

    config: TrainConfig
    families: tuple[str, ...]
    folder: RunFolder
    state: Any  # accelerate.PartialState
    keep_work_dir: bool
    started: float
    data_started: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        return self.folder.path

    @property
    def work(self) -> Path:
        """The resumable work folder: finished members and the running member's checkpoints."""
        return self.folder.path / WORK_DIR


@dataclass
class MASData:
    """The prepared MAS (:func:`prepare_mas`): the split, the images the members train on (the pool) and
    the test-MAS images they are measured on.

    The pool holds the train-MAS images (its first ``n_train`` rows) then, with the distribution family,
    the images without a majority emotion (label -1); images that could not be decoded are left out of the
    pool and of test-MAS and listed in ``bad_images``.
    """

    split: MASSplit
    preprocess: FacePreprocessor
    pool: TensorImageDataset | RecordImageDataset  # the pool's images, without targets
    pool_records: list
    pool_labels: np.ndarray
    n_train: int
    test_pixels: torch.Tensor
    test_labels: np.ndarray
    calibration_records: list = field(default_factory=list)
    bad_images: list[str] = field(default_factory=list)

    @property
    def train_labels(self) -> np.ndarray:
        return self.pool_labels[: self.n_train]


@dataclass(frozen=True)
class MemberSpec:
    """One member to train: its family, backbone, and emotion (EBC, AU) or index ``k`` (distribution)."""

    family: str
    backbone: str
    member: str | int

    @property
    def name(self) -> str:
        return _member_name(self.family, self.backbone, str(self.member))


@dataclass
class TrainedMembers:
    """The trained members (:func:`train_members`) and their test-MAS metrics."""

    ebc: dict[tuple[str, str], Any] = field(default_factory=dict)  # (backbone, emotion) -> model
    au: dict[str, Any] = field(default_factory=dict)  # emotion -> model
    dist: list = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # EBC/AU member -> binary_metrics row
    dist_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, spec: MemberSpec, model, row: dict[str, Any]) -> None:
        if spec.family == "dist":
            self.dist.append(model)
            self.dist_metrics[spec.name] = row
            return
        self.metrics[spec.name] = row
        if spec.family == "ebc":
            self.ebc[(spec.backbone, spec.member)] = model
        else:
            self.au[spec.member] = model


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def auto_n_test_per_class(labels: np.ndarray) -> int:
    """``n_test_per_class=None`` [choice]: ``min(100, max(5, floor(0.15 × rarest emotion's count)))`` —
    15 % stays below the default ``max_test_fraction`` 0.2 (``docs/method.md#mas-split``)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=NUM_EMOTIONS)
    rarest = int(counts.min())
    return int(min(PAPER_N_TEST_PER_CLASS, max(5, math.floor(0.15 * rarest))))


def _member_name(family: str, backbone: str, emotion: str) -> str:
    return f"{family}-{backbone.replace('/', '_').replace(':', '_')}-{emotion}"


def make_mas_split(records, config: TrainConfig) -> MASSplit:
    """The MAS split (``docs/method.md#mas-split``) of the records with the config's options
    (``n_test_per_class`` auto when None)."""
    votes, non_emotion, ids = mas_arrays(records)
    n_test = config.n_test_per_class
    if n_test is None:
        labels = majority_labels(votes, non_emotion, tie=config.tie if config.tie != "random" else "drop")
        n_test = auto_n_test_per_class(labels)
        logger.info("n_test_per_class (auto) = %d", n_test)
    return split_mas(
        votes,
        ids,
        non_emotion_votes=non_emotion,
        n_test_per_class=int(n_test),
        max_test_fraction=config.max_test_fraction,
        strict_unanimous=config.strict_unanimous,
        tie=config.tie,
        seed=config.seed,
    )


def _pretrained_path(config: TrainConfig, backbone: str) -> str | None:
    for entry in getattr(config, "pretrained", None) or []:
        name, _, path = entry.partition("=")
        if name == backbone and path:
            return path
    return None


def _build_member(family: str, backbone: str, emotion: str, config: TrainConfig, mean, std):
    from affectnetplus_hf.models import (
        AUExpressionClassifier,
        AUExpressionClassifierConfig,
        BinaryExpressionClassifier,
        BinaryExpressionClassifierConfig,
        DistributionClassifier,
        DistributionClassifierConfig,
    )

    common = {
        "backbone": backbone,
        "image_size": config.image_size,
        "image_mean": list(mean),
        "image_std": list(std),
        "backbone_pretrained": _pretrained_path(config, backbone),
    }
    if family == "dist":
        return DistributionClassifier(DistributionClassifierConfig(**common))
    if family == "ebc":
        return BinaryExpressionClassifier(BinaryExpressionClassifierConfig(emotion=emotion, **common))
    return AUExpressionClassifier(
        AUExpressionClassifierConfig(
            emotion=emotion,
            au_loss_weight=config.au_loss_weight,
            au_pos_weight=config.au_pos_weight,
            aus=config.aus,
            neutral_similarity=config.neutral_similarity,
            **common,
        )
    )


def _load_member(family: str, path: Path):
    from affectnetplus_hf.models import AUExpressionClassifier, BinaryExpressionClassifier, DistributionClassifier

    cls = {"ebc": BinaryExpressionClassifier, "au": AUExpressionClassifier, "dist": DistributionClassifier}[family]
    return cls.from_pretrained(str(path))


def one_vs_rest_rows(train_labels: np.ndarray, e: int, config: TrainConfig, epoch: int = 0) -> np.ndarray:
    """The train-MAS rows the member of emotion ``e`` sees in ``epoch`` (``docs/method.md#sampling``
    positives + negatives; positives repeated to as many as the negatives with ``balance_positives``)."""
    pos, neg = select_one_vs_rest(
        train_labels,
        e,
        neg_ratio=config.neg_ratio,
        overlap=config.overlap,
        seed=config.seed,
        epoch=epoch if config.redraw_negatives else None,
    )
    if config.balance_positives and len(neg) > len(pos) > 0:
        pos = np.resize(pos, len(neg))  # repeat the positives to as many as the negatives
    return np.concatenate([pos, neg])


def one_vs_rest_sample_passes(train_labels: np.ndarray, config: TrainConfig, families) -> int:
    """Training samples (forward + backward) of the EBC and AU members of ``families``: the compute
    budget of the paper's families in images, comparable with the distribution family's."""
    per_emotion = [len(one_vs_rest_rows(train_labels, e, config)) for e in range(NUM_EMOTIONS)]
    total = 0
    if "ebc" in families:
        total += len(config.ebc_backbones) * int(config.ebc_epochs) * sum(per_emotion)
    if "au" in families:
        total += int(config.au_epochs) * sum(per_emotion)
    return int(total)


def majority_one_hot(records) -> tuple[np.ndarray, np.ndarray]:
    """``(targets (N, 8) float32, keep (N,) bool)`` for ``dist_target="majority"``: the one-hot of each
    record's majority emotion (:func:`affectnetplus_hf.votes.majority_labels`, ties dropped); records
    without one are not kept."""
    votes, non_emotion, _ = mas_arrays(records)
    labels = majority_labels(votes, non_emotion, tie="drop")
    return np.eye(NUM_EMOTIONS, dtype=np.float32)[labels.clip(min=0)], labels >= 0


def mas_records_fingerprint(records) -> str:
    """sha256 of the ordered MAS records a run trains on: image id, split, votes, non-emotion votes
    (:func:`~affectnetplus_hf.run_folder.records_fingerprint`, one row per record)."""
    return records_fingerprint(
        (
            record.image_id,
            record.split,
            json.dumps(np.asarray(record.votes).reshape(-1).tolist()),
            record.non_emotion_votes,
        )
        for record in records
    )


# --------------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------------


def train_soft_labeler(
    config: TrainConfig,
    families: tuple[str, ...] | None = None,
    keep_work_dir: bool = False,
) -> SoftLabelerRun:
    """Train the members of ``families`` (default ``config.families``) on ``config.data``, measure CS,
    calibrate when asked, save one SoftLabeler dir.

    Returns a :class:`SoftLabelerRun`. The model directory (``config.output_dir``) receives the
    SoftLabeler (``config.json`` with the CS of both modes and the calibration, ``model.safetensors``,
    ``preprocessor_config.json``), ``train_config.json``, ``mas_split/``, ``confidence_scores.json`` /
    ``.md``, ``README.md`` (model card), ``logs/`` (trackers) and the run-folder marker
    (:mod:`affectnetplus_hf.run_folder`, kind ``soft-labeler``). The main process holds the folder's lock
    for the whole run: a second run on it stops at once (:class:`~affectnetplus_hf.run_folder.RunFolderError`,
    a ``ValueError``), as do a finished model without ``overwrite`` and an interrupted run with other
    settings or MAS records (each differing field named).
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    started = time.perf_counter()
    config, families = _resolve_config(config, families)
    # ACCELERATE_USE_CPU as Accelerator reads it: else two CPU processes of `accelerate launch` would both be "main"
    state = PartialState(cpu=config.cpu or parse_flag_from_env("ACCELERATE_USE_CPU"))
    data_started = time.perf_counter()
    records = read_mas(config)  # read and checked before anything is written into output_dir
    identity = {**config.identity(), "records": mas_records_fingerprint(records)}
    folder = RunFolder(config.output_dir, FOLDER_KIND, identity)
    with contextlib.ExitStack() as held:  # the main process holds the model directory's lock for the whole run
        mode = _claim_folder(folder, config.overwrite, state, held)
        run = RunSetup(
            config=config,
            families=families,
            folder=folder,
            state=state,
            keep_work_dir=keep_work_dir,
            started=started,
            data_started=data_started,
        )
        return _train_in_folder(run, records, mode)


def _train_in_folder(run: RunSetup, records, mode: str) -> SoftLabelerRun:
    """:func:`train_soft_labeler` once ``run.folder`` is claimed (``mode`` from :meth:`RunFolder.start`): the
    split and the data checks, then (main process) the folder is written, the members trained, the
    soft-labeler assembled, calibrated and saved, and the folder marked complete."""
    config, families = run.config, run.families
    data = prepare_mas(run, records)
    _open_model_dir(run, mode, data)
    members = train_members(run, data)
    sample_passes = count_sample_passes(run, data)
    confidences = member_confidence_scores(members.metrics, config, families)
    soft_labeler = assemble_soft_labeler(config, families, members, confidences, data.preprocess)
    if config.calibration_split:
        calibrate_soft_labeler(run, soft_labeler, data.calibration_records)
    seconds = run.timings["total_s"] = time.perf_counter() - run.started
    if run.state.is_main_process:
        save_outputs(run, soft_labeler, data, members, confidences, sample_passes)
    run.state.wait_for_everyone()
    logger.info("soft-labeler (%s) saved to %s in %.1f s", "+".join(families), run.output_dir, seconds)
    return SoftLabelerRun(
        output_dir=run.output_dir,
        model=soft_labeler,
        confidence_scores=confidences,
        member_metrics=members.metrics,
        split_report=data.split.report,
        seconds=seconds,
        timings=run.timings,
        dist_metrics=members.dist_metrics,
        sample_passes=sample_passes,
    )


def _resolve_config(config: TrainConfig, families) -> tuple[TrainConfig, tuple[str, ...]]:
    """The config with its preset filled in and ``families`` (default ``config.families``, names or
    ``"ebc,au"`` strings) checked and put in :data:`FAMILY_NAMES` order; missing data or output refuse."""
    config = resolve_preset(config)
    families = tuple(families) if families is not None else tuple(config.families)
    families = tuple(name.strip() for entry in families for name in str(entry).split(",") if name.strip())
    if not families or any(f not in FAMILY_NAMES for f in families) or len(set(families)) != len(families):
        raise ValueError(f"families must be distinct names from {FAMILY_NAMES}, got {families}")
    families = tuple(f for f in FAMILY_NAMES if f in families)
    config = dataclasses.replace(config, families=list(families))
    if "dist" in families and int(config.dist_members) < 1:
        raise ValueError(f"dist_members must be >= 1 with the dist family, got {config.dist_members}")
    if not config.data:
        raise ValueError("--data is required: a multi-annotated source folder")
    if not config.output_dir:
        raise ValueError("--output is required: the model directory to write")
    return config, families


def _claim_folder(folder: RunFolder, overwrite: bool, state, held: contextlib.ExitStack) -> str:
    """The main process locks ``folder`` (the lock stays held until ``held`` closes: the whole run) and
    checks it (:meth:`RunFolder.start`: ``"new"``, ``"resume"`` or ``"replace"``). A finished model is
    refused as finished whatever its settings (``--overwrite`` replaces it). Every process gets the outcome,
    or raises the main process's refusal, so that no process waits for one that stopped."""

    def finished(fields) -> bool:
        return folder.marker is not None and folder.marker.complete

    outcome: list[Any] = [None]
    error: BaseException | None = None
    if state.is_main_process:
        try:
            held.enter_context(folder)
            outcome = [("ok", folder.start(overwrite=overwrite, resume=False, accept=finished))]
        except Exception as caught:  # re-raised below, once the other processes are told
            error, outcome = caught, [("error", str(caught))]
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(outcome)
    if error is not None:
        raise error
    status, value = outcome[0]
    if status == "error":
        raise RunFolderError(value)
    return value


# ---- 1. read the MAS ------------------------------------------------------------------------------


def read_mas(config: TrainConfig) -> list:
    """The records with votes of the multi-annotated source (:func:`affectnetplus_hf.sources.open_multi_annotated`:
    FER+, a folder with votes, or the synthetic sample's ``multi_annotated/`` part), restricted to
    ``mas_splits``, sorted by image id, and subsampled to ``max_images`` (seeded) when given."""
    from affectnetplus_hf.sources import open_multi_annotated

    source = open_multi_annotated(config.data)
    records = [r for r in source.records(None) if r.votes is not None]
    if config.calibration_split and config.calibration_split != HOLDOUT:
        used = list(config.mas_splits) if config.mas_splits else sorted({r.split for r in records})
        if config.calibration_split in used:
            raise ValueError(
                f"calibration_split {config.calibration_split!r} is also a training split of the MAS {used}; "
                "calibrate on images no member sees (e.g. --mas_splits train --calibration_split validation)"
            )
    if config.mas_splits:
        found = sorted({r.split for r in records})
        records = [r for r in records if r.split in config.mas_splits]
        if not records:
            raise ValueError(
                f"{config.data}: no image with votes in splits {list(config.mas_splits)}; "
                f"the multi-annotated source has {found}"
            )
    skipped = source.skipped
    if skipped:
        logger.warning("the source skipped %d rows: %s", len(skipped), skipped)
    if not records:
        raise ValueError(f"{config.data}: the multi-annotated source holds no image with votes")
    records.sort(key=lambda r: r.image_id)
    if config.max_images is not None and len(records) > config.max_images:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(records), size=config.max_images, replace=False))
        records = [records[i] for i in keep]
    return records


# ---- 2. split and prepare the MAS -----------------------------------------------------------------


def prepare_mas(run: RunSetup, records) -> MASData:
    """Set the calibration images aside, split the rest into train-MAS / test-MAS (:func:`make_mas_split`),
    check that every emotion has both, and decode the images (once, into one shared tensor, with
    ``cache_images``; else the pool is decoded on the fly by DataLoader workers)."""
    config = run.config
    records, calibration_records = _set_calibration_aside(config, records)
    split = make_mas_split(records, config)
    _check_every_emotion(split, config)
    by_id = {r.image_id: r for r in records}
    train_records = [by_id[i] for i in split.train_ids]
    test_records = [by_id[i] for i in split.test_ids]
    # the distribution family also learns from the images without a majority emotion (never test-MAS)
    extra_records = _unlabelled_records(records, split) if "dist" in run.families else []
    pool_records = train_records + extra_records
    pool_labels = np.concatenate(
        [np.asarray(split.train_labels, dtype=np.int64), np.full(len(extra_records), -1, dtype=np.int64)]
    )
    preprocess = FacePreprocessor(config.image_size)
    pool, kept, bad = _pool_images(config, preprocess, pool_records)
    test_pixels, test_kept, test_bad = decode_records(
        test_records, preprocess, skip_bad=config.skip_bad, progress=config.progress, desc="decoding test-MAS"
    )
    run.timings["data_s"] = time.perf_counter() - run.data_started
    return MASData(
        split=split,
        preprocess=preprocess,
        pool=pool,
        pool_records=[pool_records[i] for i in kept],
        pool_labels=pool_labels[kept],
        n_train=int(np.sum(kept < len(train_records))),  # train-MAS rows first
        test_pixels=test_pixels,
        test_labels=np.asarray(split.test_labels, dtype=np.int64)[test_kept],
        calibration_records=calibration_records,
        bad_images=bad + test_bad,
    )


def _set_calibration_aside(config: TrainConfig, records) -> tuple[list, list]:
    """``(training records, calibration records)``: with ``calibration_split="holdout"`` a seeded share of
    the MAS that no member sees, with another split that split's images with votes."""
    if not config.calibration_split:
        return records, []
    if config.calibration_split == HOLDOUT:
        return hold_out(records, config.calibration_fraction, config.seed)
    return records, vote_records(config.data, config.calibration_split)


def _check_every_emotion(split: MASSplit, config: TrainConfig) -> None:
    train_labels = np.asarray(split.train_labels, dtype=np.int64)
    test_labels = np.asarray(split.test_labels, dtype=np.int64)
    missing = [
        EMOTIONS[e] for e in range(NUM_EMOTIONS) if not np.any(train_labels == e) or not np.any(test_labels == e)
    ]
    if missing:
        raise ValueError(
            f"{config.data}: after the MAS split, {missing} have no train-MAS or no test-MAS image; every emotion "
            f"needs both (split report: {split.report.get('per_emotion')})"
        )


def _unlabelled_records(records, split: MASSplit) -> list:
    """The records in neither train-MAS nor test-MAS that have at least one emotion vote."""
    seen = set(split.train_ids) | set(split.test_ids)
    return [r for r in records if r.image_id not in seen and np.sum(r.votes) > 0]


def _pool_images(config: TrainConfig, preprocess: FacePreprocessor, records):
    """``(dataset without targets, kept row indices, bad image locations)`` of the pool."""
    augmenter = SeededAugmenter(config.augment_config(), preprocess.image_mean, preprocess.image_std, seed=config.seed)
    if config.cache_images:
        pixels, kept, bad = decode_records(
            records, preprocess, skip_bad=config.skip_bad, progress=config.progress, desc="decoding train-MAS"
        )
        return TensorImageDataset(pixels, {}, augmenter), kept, bad
    dataset = RecordImageDataset(records, preprocess, {}, augmenter, skip_bad=config.skip_bad)
    return dataset, np.arange(len(records)), []


def _open_model_dir(run: RunSetup, mode: str, data: MASData) -> None:
    """The data passed every check: now (main process) the model directory is written — cleared with
    ``mode="replace"``, marked incomplete, with the train config, the MAS split and the work folder."""
    if run.state.is_main_process:
        if mode == "replace":
            logger.warning("%s: overwrite: discarding the soft-labeler run there and starting over", run.output_dir)
            run.folder.clear()
        elif mode == "resume":
            logger.info("%s: resuming the interrupted run (finished members are kept)", run.output_dir)
        run.folder.mark(complete=False)  # creates the folder
        run.config.save(run.output_dir)
        data.split.save(run.output_dir / "mas_split")
        run.work.mkdir(exist_ok=True)
    run.state.wait_for_everyone()
    logger.info(
        "MAS: %d train, %d test images, %d more for the distribution family (%.1f s to read and decode)",
        data.n_train,
        len(data.test_labels),
        len(data.pool_labels) - data.n_train,
        run.timings["data_s"],
    )


# ---- 3. train the members (each measured on test-MAS) ---------------------------------------------


def member_plan(config: TrainConfig, families) -> list[MemberSpec]:
    """The members of ``families`` in training order: EBC (backbone-major), AU, distribution."""
    plan = []
    if "ebc" in families:
        plan += [MemberSpec("ebc", backbone, emotion) for backbone in config.ebc_backbones for emotion in EMOTIONS]
    if "au" in families:
        plan += [MemberSpec("au", config.au_backbone, emotion) for emotion in EMOTIONS]
    if "dist" in families:
        plan += [MemberSpec("dist", config.dist_backbone, k) for k in range(int(config.dist_members))]
    return plan


def train_members(run: RunSetup, data: MASData) -> TrainedMembers:
    """Train (or, resuming, load) every member of :func:`member_plan` with the one loop
    (:func:`affectnetplus_hf.training.train_model`) and measure it on test-MAS (:func:`measure_member`)."""
    started = time.perf_counter()
    members = TrainedMembers()
    for spec in member_plan(run.config, run.families):
        model = _train_or_load_member(run, data, spec)
        model.cpu()
        members.add(spec, model, measure_member(model, spec, data))
    run.timings["members_s"] = time.perf_counter() - started
    return members


def _train_or_load_member(run: RunSetup, data: MASData, spec: MemberSpec):
    """A finished member is loaded from the work folder; else it is trained (an interrupted one resumes from
    its last checkpoint) and the main process saves it there."""
    config, name = run.config, spec.name
    member_dir = run.work / "members" / name
    if (member_dir / MEMBER_DONE).is_file():
        model = _load_member(spec.family, member_dir)
        logger.info("%s: already trained, loaded from %s", name, member_dir)
        return model
    loop_config = config.loop_config(spec.family)
    if spec.family == "dist":
        loop_config = dataclasses.replace(loop_config, seed=config.seed + int(spec.member))
    dataset, epoch_indices = _member_dataset(config, data, spec)  # seeds torch for the member's initial weights
    model = _build_member(
        spec.family,
        spec.backbone,
        spec.member if spec.family != "dist" else EMOTIONS[0],
        config,
        data.preprocess.image_mean,
        data.preprocess.image_std,
    )
    result = train_model(
        model,
        dataset,
        loop_config,
        run.work / "runs" / name,
        name=name,
        epoch_indices=epoch_indices,
        logging_dir=run.output_dir / "logs",
        tracker_config={"family": spec.family, "backbone": spec.backbone, "member": str(spec.member)},
    )
    if run.state.is_main_process:
        result.model.save_pretrained(str(member_dir))
        write_json_atomic(
            member_dir / MEMBER_DONE,
            {
                "name": name,
                "epoch_losses": result.epoch_losses,
                "global_step": result.global_step,
            },
        )
        shutil.rmtree(run.work / "runs" / name, ignore_errors=True)
    run.state.wait_for_everyone()
    return result.model


def _member_dataset(config: TrainConfig, data: MASData, spec: MemberSpec) -> tuple[Any, Callable[[int], np.ndarray]]:
    """``(dataset, epoch -> rows)`` of one member, after seeding torch with the member's seed: a binary member
    sees the one-vs-rest rows of its emotion (:func:`one_vs_rest_rows`), a distribution member every usable
    pool image each epoch, with its vote distribution (or majority one-hot) as target."""
    if spec.family == "dist":
        k = int(spec.member)
        torch.manual_seed(config.seed + 1000 * k + 4241)
        augmenter = SeededAugmenter(
            dataclasses.replace(config.augment_config(), translate=config.dist_translate),
            data.preprocess.image_mean,
            data.preprocess.image_std,
            seed=config.seed,
        )
        if config.dist_target == "majority":
            targets, usable = majority_one_hot(data.pool_records)
        else:
            targets, usable = record_vote_distributions(data.pool_records), np.ones(len(data.pool_records), dtype=bool)
        rows = np.flatnonzero(usable)

        def every_usable_row(epoch: int) -> np.ndarray:
            return rows

        return data.pool.with_targets({"labels": torch.from_numpy(targets)}, augmenter), every_usable_row
    e = EMOTIONS.index(spec.member)
    torch.manual_seed(config.seed + 1000 * e + (0 if spec.family == "ebc" else 7919))
    labels = torch.from_numpy(data.pool_labels)
    targets = {"labels": (labels == e).long()}
    if spec.family == "au":
        targets["au_labels"] = torch.from_numpy(au_vectors())[labels.clamp(min=0)]

    def one_vs_rest(epoch: int) -> np.ndarray:
        return one_vs_rest_rows(data.train_labels, e, config, epoch)

    return data.pool.with_targets(targets), one_vs_rest


def measure_member(model, spec: MemberSpec, data: MASData) -> dict[str, Any]:
    """A member's metrics on test-MAS: :func:`binary_metrics` of an EBC or AU member (positives = the test
    images of its emotion, negatives = the other test images, as the paper's 100 / 700), the arg-max
    :func:`dist_accuracy` of a distribution member."""
    probs = member_probs(model, data.test_pixels)
    if spec.family == "dist":
        row = {"backbone": spec.backbone, **dist_accuracy(data.test_labels, probs)}
        logger.info("%s: test-MAS accuracy %.3f", spec.name, row["accuracy"])
        return row
    positive = (data.test_labels == EMOTIONS.index(spec.member)).astype(np.int64)
    row = {"family": spec.family, "backbone": spec.backbone, "emotion": spec.member, **binary_metrics(positive, probs)}
    logger.info("%s: test-MAS CS %.3f (balanced), accuracy %.3f", spec.name, row["cs_balanced"], row["accuracy"])
    return row


def count_sample_passes(run: RunSetup, data: MASData) -> int:
    """Training samples (forward + backward) of every member; records ``timings["dist_images"]``."""
    config = run.config
    sample_passes = one_vs_rest_sample_passes(data.train_labels, config, run.families)
    if "dist" in run.families:
        records = data.pool_records
        usable = majority_one_hot(records)[1] if config.dist_target == "majority" else np.ones(len(records))
        run.timings["dist_images"] = int(np.sum(usable))
        sample_passes += int(config.dist_members) * int(config.dist_epochs) * int(np.sum(usable))
    return sample_passes


# ---- 4.–6. confidence scores, the assembled soft-labeler, calibration -----------------------------


def member_confidence_scores(
    metrics: dict[str, dict[str, Any]], config: TrainConfig, families
) -> dict[str, dict[str, list]]:
    """``{mode: {"ebc": [[CS per emotion] per backbone], "au": [CS per emotion]}}`` for both CS modes."""
    confidences: dict[str, dict[str, list]] = {}
    for mode in ("balanced", "eq3"):
        confidences[mode] = {}
        if "ebc" in families:
            confidences[mode]["ebc"] = [
                [metrics[_member_name("ebc", b, em)][f"cs_{mode}"] for em in EMOTIONS] for b in config.ebc_backbones
            ]
        if "au" in families:
            confidences[mode]["au"] = [
                metrics[_member_name("au", config.au_backbone, em)][f"cs_{mode}"] for em in EMOTIONS
            ]
    return confidences


def assemble_soft_labeler(config: TrainConfig, families, members: TrainedMembers, confidences, preprocess):
    """The :class:`~affectnetplus_hf.models.SoftLabeler` of the members (CS of both modes in its config,
    ``config.cs_mode`` used)."""
    from affectnetplus_hf.models import SoftLabeler

    with_dist = "dist" in families
    return SoftLabeler.from_members(
        members.ebc or None,
        members.au or None,
        confidences if members.metrics else None,
        preprocess.processor,
        cs_mode=config.cs_mode,
        ebc_backbones=list(config.ebc_backbones) if "ebc" in families else None,
        dist_members=members.dist or None,
        test_time_flip=bool(config.test_time_flip) and with_dist,
        test_time_shift=int(config.test_time_shift or 0) if with_dist else 0,
    )


def calibrate_soft_labeler(run: RunSetup, soft_labeler, calibration_records) -> None:
    """Fit ``soft_label_calibrated`` on the calibration split's vote distributions and measure every output
    against them (``docs/method.md#calibration``, :mod:`affectnetplus_hf.training.calibrate`)."""
    config = run.config
    started = time.perf_counter()
    soft_labeler.config.calibration = calibrate_on_records(
        soft_labeler,
        calibration_records,
        objective=config.calibration_objective,
        fitted_on={"data": Path(config.data).name, "split": config.calibration_split},
        skip_bad=config.skip_bad,
        progress=config.progress,
    )
    run.timings["calibration_s"] = time.perf_counter() - started


# ---- 7. save ---------------------------------------------------------------------------------------


def save_outputs(
    run: RunSetup, soft_labeler, data: MASData, members: TrainedMembers, confidences, sample_passes: int
) -> None:
    """Save the soft-labeler, its per-member tables and model card, drop the work folder (unless
    ``keep_work_dir``) and mark the model directory complete. Main process only."""
    from affectnetplus_hf.reports.model_card import render_soft_labeler_card

    config, families, output_dir = run.config, run.families, run.output_dir
    soft_labeler.save_pretrained(str(output_dir))
    tables = write_member_tables(
        output_dir,
        members.metrics,
        confidences,
        config,
        families,
        data.split.report,
        run.timings,
        members.dist_metrics,
        sample_passes,
    )
    card = render_soft_labeler_card(
        config=config,
        families=families,
        metrics=members.metrics,
        confidences=confidences,
        split_report=data.split.report,
        timings=run.timings,
        bad_images=data.bad_images,
        tables_markdown=tables,
        calibration=soft_labeler.config.calibration,
    )
    write_text_atomic(output_dir / "README.md", card)
    if not run.keep_work_dir:
        shutil.rmtree(run.work, ignore_errors=True)
    run.folder.mark(complete=True)


def write_member_tables(
    output_dir: Path,
    metrics,
    confidences,
    config: TrainConfig,
    families,
    split_report,
    timings,
    dist_metrics: dict[str, dict[str, Any]] | None = None,
    sample_passes: int | None = None,
) -> str:
    """``confidence_scores.json`` (every member's metrics, CS of both modes) and ``confidence_scores.md``
    (one paper-Table-6/7-shaped table per EBC backbone and for the AU family, one row per distribution
    member). Returns the Markdown."""
    dist_metrics = dist_metrics or {}
    payload = {
        "dist_members": dist_metrics,
        "sample_passes": sample_passes,
        "cs_mode": config.cs_mode,
        "confidence_scores": confidences,
        "members": metrics,
        "families": list(families),
        "ebc_backbones": list(config.ebc_backbones) if "ebc" in families else [],
        "au_backbone": config.au_backbone if "au" in families else None,
        "test_mas": {
            name: {"n_test": row["n_test"], "lowest_agreement_used": row["lowest_agreement_used"]}
            for name, row in split_report.get("per_emotion", {}).items()
        },
        "timings": timings,
    }
    write_json_atomic(output_dir / "confidence_scores.json", payload)
    parts = [
        "## Member evaluation on test-MAS",
        "",
        (
            "Each member: positives = the test-MAS images of its emotion, negatives = the other test-MAS images "
            f"(confidence score: Eq. 3). Values in %. Soft labels use CS mode `{config.cs_mode}`."
        ),
        "",
    ]
    groups = []
    if "ebc" in families:
        groups += [(f"EBC — {b}", "ebc", b) for b in config.ebc_backbones]
    if "au" in families:
        groups.append((f"AU classifiers — {config.au_backbone}", "au", config.au_backbone))
    for title, family, backbone in groups:
        rows = {em: metrics[_member_name(family, backbone, em)] for em in EMOTIONS}
        parts.append(markdown_member_table(rows, title))
    if dist_metrics:
        parts += [
            "### Distribution members (arg-max against the test-MAS majority label)",
            "",
            "| member | accuracy | average accuracy |",
            "|---|---|---|",
        ]
        parts += [
            f"| {name} | {100 * row['accuracy']:.2f} | {100 * row['average_accuracy']:.2f} |"
            for name, row in dist_metrics.items()
        ]
        parts.append("")
    markdown = "\n".join(parts)
    write_text_atomic(output_dir / "confidence_scores.md", markdown)
    return markdown
