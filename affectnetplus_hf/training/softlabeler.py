"""Train a soft-labeler from a multi-annotated set (paper Sec. 3.2–3.3, ``docs/method.md#mas-split`` to
``docs/method.md#soft-label``).

:func:`train_soft_labeler` runs the whole producer pipeline:

1. read the multi-annotated source (:func:`affectnetplus_hf.sources.open_multi_annotated`: FER+, a folder
   with votes, or the synthetic sample's ``multi_annotated/`` part);
2. split it into train-MAS / test-MAS (``docs/method.md#mas-split``, :func:`affectnetplus_hf.sampling.split_mas`)
   and save the
   split (``mas_split/split.csv`` + ``report.json``) in the model directory;
3. train every member with the one loop (:func:`affectnetplus_hf.training.train_model`): for each of the
   J EBC backbones and each emotion a :class:`BinaryExpressionClassifier`, and for each emotion an
   :class:`AUExpressionClassifier`, on the positives/negatives of ``docs/method.md#sampling``
   (:func:`affectnetplus_hf.sampling.select_one_vs_rest`); with the ``dist`` family, ``dist_members``
   :class:`DistributionClassifier` s on the vote distribution of every multi-annotated image outside
   test-MAS, including those without a majority emotion (``docs/method.md#distribution-family``);
4. measure each member on test-MAS (positives = the test images of its emotion, negatives = the other
   test images, as the paper's 100 positives / 700 negatives) and compute its confidence score (Eq. 3)
   in both modes;
5. assemble the :class:`SoftLabeler` (CS of both modes in its config, the configured one used);
6. with ``calibration_split``, fit ``soft_label_calibrated`` on that split's vote distributions
   (:mod:`affectnetplus_hf.training.calibrate`) and measure every output against them;
7. save it, and write the per-member tables (paper Tables 6–7 / VIII–IX shape) as JSON and Markdown and
   a model card (``README.md``).

Decode once: with ``cache_images`` (the ``tiny`` preset) every MAS image is decoded and preprocessed once
into one tensor shared by all members; otherwise images are decoded on the fly by DataLoader workers.

The model directory is a run folder (:mod:`affectnetplus_hf.run_folder`, kind ``soft-labeler``): the main
process holds its lock for the whole run, so a second run on it stops at once naming the process that
holds it. Its marker records the resolved :class:`TrainConfig` (less the fields that do not change
results, :data:`~affectnetplus_hf.training.config.UNFINGERPRINTED`) and a fingerprint of the MAS records (image ids, splits and votes),
and whether the model is complete. Resumable: each finished member is saved under
``_training/members/<name>``; a re-run with the same identity skips finished members and resumes an
interrupted one from its last checkpoint; a re-run with other settings or data refuses
(:class:`~affectnetplus_hf.run_folder.RunFolderError`, a ``ValueError`` naming each differing field)
instead of mixing members of two runs, unless ``overwrite`` (then the interrupted run is discarded and
training starts over). A finished model folder is replaced only with ``overwrite``; a folder holding
other files (no ``soft-labeler`` marker) is refused and never deleted. Nothing is written into the model
directory before the data are read, split and checked. The marker holds no time or process id (two
identical runs write the same marker; the lock file beside the folder names the running process).

[choice] ``n_test_per_class=None`` (auto): the paper's 100 when the data allow it, otherwise scaled down
to ``max(5, floor(0.15 × n))`` where ``n`` is the number of majority-labelled images of the rarest
emotion — 15 % stays below the default ``max_test_fraction`` 0.2, so every emotion keeps ≥ 80 % of its
images for training while the test quota is equal for all emotions.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, au_vectors
from affectnetplus_hf.fileio import write_json_atomic, write_text_atomic
from affectnetplus_hf.paper import PAPER_N_TEST_PER_CLASS
from affectnetplus_hf.run_folder import RunFolder, RunFolderError, records_fingerprint
from affectnetplus_hf.sampling.mas import MASSplit, mas_arrays, record_vote_distributions, split_mas
from affectnetplus_hf.sampling.negatives import select_one_vs_rest
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


def binary_metrics(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, average (per-class) accuracy, precision, recall, F1 of the positive class, counts, and
    the confidence score in both modes of ``docs/method.md#confidence-scores``."""
    y_true = np.asarray(y_true).astype(np.int64)
    p_positive = np.asarray(p_positive, dtype=np.float64)
    if y_true.shape != p_positive.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and p_positive {p_positive.shape} must be equal 1-D shapes")
    predicted = p_positive >= threshold
    positive = y_true == 1
    tp, tn = int(np.sum(positive & predicted)), int(np.sum(~positive & ~predicted))
    fp, fn = int(np.sum(~positive & predicted)), int(np.sum(positive & ~predicted))

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs_balanced = confidence_score(y_true, p_positive, mode="balanced", threshold=threshold)
        cs_eq3 = confidence_score(y_true, p_positive, mode="eq3", threshold=threshold)
    return {
        "n_positive": int(positive.sum()), "n_negative": int((~positive).sum()),
        "tp": tp, "tn": tn, "fp": fp, "fn": fn,
        "accuracy": ratio(tp + tn, len(y_true)),
        "average_accuracy": 0.5 * (recall + ratio(tn, tn + fp)),
        "precision": precision, "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "cs_balanced": float(cs_balanced), "cs_eq3": float(cs_eq3),
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
        output = model(pixel_values[start:start + batch_size].to(device))
        probs = next(p for p in (getattr(output, name, None) for name in ("p_au", "positive_probs", "probs"))
                     if p is not None)
        out.append(probs.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64)


def markdown_member_table(rows: dict[str, dict[str, Any]], title: str) -> str:
    """Paper Tables 6–7 shape: one column per emotion (+ mean), one row per metric (percent)."""
    metrics = (("accuracy", "Acc"), ("average_accuracy", "Avg. Acc"), ("precision", "Precision"),
               ("recall", "Recall"), ("f1", "F1"), ("cs_balanced", "CS (balanced)"), ("cs_eq3", "CS (Eq. 3)"))
    header = "| metric | " + " | ".join(EMOTIONS) + " | mean |"
    lines = [f"### {title}", "", header, "|" + "---|" * (NUM_EMOTIONS + 2)]
    for key, label in metrics:
        values = [100.0 * rows[e][key] for e in EMOTIONS]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.mean(values):.2f} |")
    counts = " | ".join(f"{rows[e]['n_positive']}/{rows[e]['n_negative']}" for e in EMOTIONS)
    lines.append(f"| test pos/neg | {counts} | |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Pipeline
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


def auto_n_test_per_class(labels: np.ndarray) -> int:
    """The [choice] of the module docstring: ``min(100, max(5, floor(0.15 × rarest emotion's count)))``."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=NUM_EMOTIONS)
    rarest = int(counts.min())
    return int(min(PAPER_N_TEST_PER_CLASS, max(5, math.floor(0.15 * rarest))))


def _member_name(family: str, backbone: str, emotion: str) -> str:
    return f"{family}-{backbone.replace('/', '_').replace(':', '_')}-{emotion}"


def _load_mas_records(config: TrainConfig):
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
            raise ValueError(f"{config.data}: no image with votes in splits {list(config.mas_splits)}; "
                             f"the multi-annotated source has {found}")
    skipped = getattr(source, "bad", None)
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
        votes, ids, non_emotion_votes=non_emotion, n_test_per_class=int(n_test),
        max_test_fraction=config.max_test_fraction, strict_unanimous=config.strict_unanimous,
        tie=config.tie, seed=config.seed,
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

    common = dict(backbone=backbone, image_size=config.image_size, image_mean=list(mean), image_std=list(std),
                  backbone_pretrained=_pretrained_path(config, backbone))
    if family == "dist":
        return DistributionClassifier(DistributionClassifierConfig(**common))
    if family == "ebc":
        return BinaryExpressionClassifier(BinaryExpressionClassifierConfig(emotion=emotion, **common))
    return AUExpressionClassifier(AUExpressionClassifierConfig(
        emotion=emotion, au_loss_weight=config.au_loss_weight, au_pos_weight=config.au_pos_weight,
        aus=config.aus, neutral_similarity=config.neutral_similarity, **common,
    ))


def _load_member(family: str, path: Path):
    from affectnetplus_hf.models import AUExpressionClassifier, BinaryExpressionClassifier, DistributionClassifier

    cls = {"ebc": BinaryExpressionClassifier, "au": AUExpressionClassifier, "dist": DistributionClassifier}[family]
    return cls.from_pretrained(str(path))


def one_vs_rest_rows(train_labels: np.ndarray, e: int, config: TrainConfig, epoch: int = 0) -> np.ndarray:
    """The train-MAS rows the member of emotion ``e`` sees in ``epoch`` (``docs/method.md#sampling`` positives + negatives;
    positives repeated to as many as the negatives with ``balance_positives``)."""
    pos, neg = select_one_vs_rest(
        train_labels, e, neg_ratio=config.neg_ratio, overlap=config.overlap, seed=config.seed,
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


def dist_accuracy(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy and average (per-class) accuracy of a distribution member's arg-max on test-MAS."""
    from affectnetplus_hf.metrics.functional import accuracy, average_accuracy

    predicted = probs.argmax(axis=1)
    return {"accuracy": accuracy(y_true, predicted) / 100.0, "average_accuracy": average_accuracy(y_true, predicted) / 100.0}


def mas_records_fingerprint(records) -> str:
    """sha256 of the ordered MAS records a run trains on: image id, split, votes, non-emotion votes
    (:func:`~affectnetplus_hf.run_folder.records_fingerprint`, one row per record)."""
    return records_fingerprint(
        (record.image_id, record.split, json.dumps(np.asarray(record.votes).reshape(-1).tolist()),
         record.non_emotion_votes)
        for record in records
    )


def _claim_folder(folder: RunFolder, overwrite: bool, state, held: contextlib.ExitStack) -> str:
    """The main process locks ``folder`` (the lock stays held until ``held`` closes: the whole run) and
    checks it (:meth:`RunFolder.start`: ``"new"``, ``"resume"`` or ``"replace"``). A finished model is
    refused as finished whatever its settings (``--overwrite`` replaces it). Every process gets the outcome,
    or raises the main process's refusal, so that no process waits for one that stopped."""
    outcome: list[Any] = [None]
    error: BaseException | None = None
    if state.is_main_process:
        try:
            held.enter_context(folder)
            outcome = [("ok", folder.start(overwrite=overwrite, resume=False,
                                           accept=lambda fields: folder.marker is not None and folder.marker.complete))]
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
    timings: dict[str, float] = {}
    config = resolve_preset(config)
    families = tuple(families) if families is not None else tuple(config.families)
    families = tuple(name.strip() for entry in families for name in str(entry).split(",") if name.strip())  # "ebc,au,dist"
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
    # ACCELERATE_USE_CPU as Accelerator reads it: else two CPU processes of `accelerate launch` would both be "main"
    state = PartialState(cpu=config.cpu or parse_flag_from_env("ACCELERATE_USE_CPU"))

    # ---- data (read and checked before anything is written into output_dir) -----------------------
    t0 = time.perf_counter()
    records = _load_mas_records(config)
    identity = {**config.identity(), "records": mas_records_fingerprint(records)}
    folder = RunFolder(config.output_dir, FOLDER_KIND, identity)
    with contextlib.ExitStack() as held:  # the main process holds the model directory's lock for the whole run
        mode = _claim_folder(folder, config.overwrite, state, held)
        return _train_in_folder(config, families, records, folder, mode, state, keep_work_dir, started, t0,
                                timings)


def _train_in_folder(config: TrainConfig, families: tuple[str, ...], records, folder: RunFolder, mode: str, state,
                     keep_work_dir: bool, started: float, t0: float, timings: dict[str, float]) -> SoftLabelerRun:
    """:func:`train_soft_labeler` once ``folder`` is claimed (``mode`` from :meth:`RunFolder.start`): the
    split and the data checks, then (main process) the folder is written, the members trained, the
    soft-labeler assembled, calibrated and saved, and the folder marked complete."""
    from affectnetplus_hf.models import SoftLabeler

    output_dir = folder.path
    work = output_dir / WORK_DIR
    calibration_records: list = []
    if config.calibration_split:
        if config.calibration_split == HOLDOUT:  # a seeded share of the MAS that no member sees
            records, calibration_records = hold_out(records, config.calibration_fraction, config.seed)
        else:
            calibration_records = vote_records(config.data, config.calibration_split)
    split = make_mas_split(records, config)
    by_id = {r.image_id: r for r in records}
    train_records = [by_id[i] for i in split.train_ids]
    test_records = [by_id[i] for i in split.test_ids]
    train_labels = np.asarray(split.train_labels, dtype=np.int64)
    test_labels = np.asarray(split.test_labels, dtype=np.int64)
    missing = [EMOTIONS[e] for e in range(NUM_EMOTIONS) if not np.any(train_labels == e) or not np.any(test_labels == e)]
    if missing:
        raise ValueError(
            f"{config.data}: after the MAS split, {missing} have no train-MAS or no test-MAS image; every emotion "
            f"needs both (split report: {split.report.get('per_emotion')})"
        )
    # the distribution family also learns from the images without a majority emotion (never test-MAS)
    extra_records: list = []
    if "dist" in families:
        seen = set(split.train_ids) | set(split.test_ids)
        extra_records = [r for r in records if r.image_id not in seen and np.sum(r.votes) > 0]
    pool_records = train_records + extra_records
    pool_labels = np.concatenate([train_labels, np.full(len(extra_records), -1, dtype=np.int64)])
    preprocess = FacePreprocessor(config.image_size)
    augmenter = SeededAugmenter(config.augment_config(), preprocess.image_mean, preprocess.image_std, seed=config.seed)
    if config.cache_images:
        pool_pixels, kept, bad = decode_records(pool_records, preprocess, skip_bad=config.skip_bad,
                                                progress=config.progress, desc="decoding train-MAS")
        base_dataset = TensorImageDataset(pool_pixels, {}, augmenter)
    else:
        bad, kept = [], np.arange(len(pool_records))
        base_dataset = RecordImageDataset(pool_records, preprocess, {}, augmenter, skip_bad=config.skip_bad)
    pool_labels = pool_labels[kept]
    kept_records = [pool_records[i] for i in kept]
    n_train = int(np.sum(kept < len(train_records)))  # train-MAS rows come first in the pool
    train_labels = pool_labels[:n_train]
    test_pixels, test_kept, test_bad = decode_records(test_records, preprocess, skip_bad=config.skip_bad,
                                                      progress=config.progress, desc="decoding test-MAS")
    test_labels = test_labels[test_kept]
    timings["data_s"] = time.perf_counter() - t0
    if state.is_main_process:  # the data passed every check: now the model directory is written
        if mode == "replace":
            logger.warning("%s: overwrite: discarding the soft-labeler run there and starting over", output_dir)
            folder.clear()
        elif mode == "resume":
            logger.info("%s: resuming the interrupted run (finished members are kept)", output_dir)
        folder.mark(complete=False)  # creates the folder
        config.save(output_dir)
        split.save(output_dir / "mas_split")
        work.mkdir(exist_ok=True)
    state.wait_for_everyone()
    logger.info("MAS: %d train, %d test images, %d more for the distribution family (%.1f s to read and decode)",
                n_train, len(test_labels), len(pool_labels) - n_train, timings["data_s"])

    au_table = torch.from_numpy(au_vectors())
    labels_tensor = torch.from_numpy(pool_labels)
    members: dict[str, Any] = {"ebc": {}, "au": {}, "dist": []}
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    dist_metrics: dict[str, dict[str, Any]] = {}
    plan = []
    if "ebc" in families:
        plan += [("ebc", backbone, emotion) for backbone in config.ebc_backbones for emotion in EMOTIONS]
    if "au" in families:
        plan += [("au", config.au_backbone, emotion) for emotion in EMOTIONS]
    if "dist" in families:
        plan += [("dist", config.dist_backbone, k) for k in range(int(config.dist_members))]

    t0 = time.perf_counter()
    for family, backbone, emotion in plan:
        name = _member_name(family, backbone, str(emotion))
        member_dir = work / "members" / name
        if (member_dir / MEMBER_DONE).is_file():
            model = _load_member(family, member_dir)
            logger.info("%s: already trained, loaded from %s", name, member_dir)
        else:
            loop_config = config.loop_config(family)
            if family == "dist":
                k = int(emotion)
                loop_config = dataclasses.replace(loop_config, seed=config.seed + k)
                torch.manual_seed(config.seed + 1000 * k + 4241)
                dist_augmenter = SeededAugmenter(
                    dataclasses.replace(config.augment_config(), translate=config.dist_translate),
                    preprocess.image_mean, preprocess.image_std, seed=config.seed,
                )
                if config.dist_target == "majority":
                    dist_targets, usable = majority_one_hot(kept_records)
                else:
                    dist_targets, usable = record_vote_distributions(kept_records), np.ones(len(kept_records), dtype=bool)
                dataset = base_dataset.with_targets({"labels": torch.from_numpy(dist_targets)}, dist_augmenter)
                rows = np.flatnonzero(usable)

                def epoch_indices(epoch: int, rows: np.ndarray = rows) -> np.ndarray:
                    return rows  # every usable image with votes, each epoch
            else:
                e = EMOTIONS.index(emotion)
                torch.manual_seed(config.seed + 1000 * e + (0 if family == "ebc" else 7919))
                targets = {"labels": (labels_tensor == e).long()}
                if family == "au":
                    targets["au_labels"] = au_table[labels_tensor.clamp(min=0)]
                dataset = base_dataset.with_targets(targets)

                def epoch_indices(epoch: int, e: int = e) -> np.ndarray:
                    return one_vs_rest_rows(train_labels, e, config, epoch)

            model = _build_member(family, backbone, emotion if family != "dist" else EMOTIONS[0], config,
                                  preprocess.image_mean, preprocess.image_std)
            result = train_model(
                model, dataset, loop_config, work / "runs" / name, name=name, epoch_indices=epoch_indices,
                logging_dir=output_dir / "logs",
                tracker_config={"family": family, "backbone": backbone, "member": str(emotion)},
            )
            model = result.model
            if state.is_main_process:
                model.save_pretrained(str(member_dir))
                write_json_atomic(member_dir / MEMBER_DONE, {
                    "name": name, "epoch_losses": result.epoch_losses, "global_step": result.global_step,
                })
                shutil.rmtree(work / "runs" / name, ignore_errors=True)
            state.wait_for_everyone()
        model.cpu()
        if family == "dist":
            probs = member_probs(model, test_pixels)
            dist_metrics[name] = {"backbone": backbone, **dist_accuracy(test_labels, probs)}
            logger.info("%s: test-MAS accuracy %.3f", name, dist_metrics[name]["accuracy"])
            members["dist"].append(model)
            continue
        e = EMOTIONS.index(emotion)
        probs = member_probs(model, test_pixels)
        metrics[name] = {"family": family, "backbone": backbone, "emotion": emotion,
                         **binary_metrics((test_labels == e).astype(np.int64), probs)}
        logger.info("%s: test-MAS CS %.3f (balanced), accuracy %.3f", name, metrics[name]["cs_balanced"],
                    metrics[name]["accuracy"])
        if family == "ebc":
            members["ebc"][(backbone, emotion)] = model
        else:
            members["au"][emotion] = model
    timings["members_s"] = time.perf_counter() - t0
    sample_passes = one_vs_rest_sample_passes(train_labels, config, families)
    if "dist" in families:
        usable = majority_one_hot(kept_records)[1] if config.dist_target == "majority" else np.ones(len(kept_records))
        timings["dist_images"] = int(np.sum(usable))
        sample_passes += int(config.dist_members) * int(config.dist_epochs) * int(np.sum(usable))

    # ---- confidence scores and the assembled soft-labeler ----------------------------------------
    confidences: dict[str, dict[str, list]] = {}
    for mode in ("balanced", "eq3"):
        confidences[mode] = {}
        if "ebc" in families:
            confidences[mode]["ebc"] = [
                [metrics[_member_name("ebc", b, em)][f"cs_{mode}"] for em in EMOTIONS] for b in config.ebc_backbones
            ]
        if "au" in families:
            confidences[mode]["au"] = [metrics[_member_name("au", config.au_backbone, em)][f"cs_{mode}"] for em in EMOTIONS]
    soft_labeler = SoftLabeler.from_members(
        members["ebc"] or None, members["au"] or None, confidences if metrics else None, preprocess.processor,
        cs_mode=config.cs_mode, ebc_backbones=list(config.ebc_backbones) if "ebc" in families else None,
        dist_members=members["dist"] or None, test_time_flip=bool(config.test_time_flip) and "dist" in families,
        test_time_shift=int(config.test_time_shift or 0) if "dist" in families else 0,
    )

    # ---- calibration on a held-out multi-annotated split (docs/method.md#calibration) -------------
    if config.calibration_split:
        t0 = time.perf_counter()
        soft_labeler.config.calibration = calibrate_on_records(
            soft_labeler, calibration_records, objective=config.calibration_objective,
            fitted_on={"data": Path(config.data).name, "split": config.calibration_split},
            skip_bad=config.skip_bad, progress=config.progress,
        )
        timings["calibration_s"] = time.perf_counter() - t0
    seconds = time.perf_counter() - started
    timings["total_s"] = seconds
    if state.is_main_process:
        soft_labeler.save_pretrained(str(output_dir))
        tables = write_member_tables(output_dir, metrics, confidences, config, families, split.report, timings,
                                     dist_metrics, sample_passes)
        from affectnetplus_hf.reports.model_card import render_soft_labeler_card

        card = render_soft_labeler_card(config=config, families=families, metrics=metrics,
                                        confidences=confidences, split_report=split.report, timings=timings,
                                        bad_images=bad + test_bad, tables_markdown=tables,
                                        calibration=soft_labeler.config.calibration)
        write_text_atomic(output_dir / "README.md", card)
        if not keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
        folder.mark(complete=True)
    state.wait_for_everyone()
    logger.info("soft-labeler (%s) saved to %s in %.1f s", "+".join(families), output_dir, seconds)
    return SoftLabelerRun(output_dir=output_dir, model=soft_labeler, confidence_scores=confidences,
                          member_metrics=metrics, split_report=split.report, seconds=seconds, timings=timings,
                          dist_metrics=dist_metrics, sample_passes=sample_passes)


def write_member_tables(output_dir: Path, metrics, confidences, config: TrainConfig, families, split_report,
                        timings, dist_metrics: dict[str, dict[str, Any]] | None = None,
                        sample_passes: int | None = None) -> str:
    """``confidence_scores.json`` (every member's metrics, CS of both modes) and ``confidence_scores.md``
    (one paper-Table-6/7-shaped table per EBC backbone and for the AU family, one row per distribution
    member). Returns the Markdown."""
    dist_metrics = dist_metrics or {}
    payload = {
        "dist_members": dist_metrics,
        "sample_passes": sample_passes,
        "cs_mode": config.cs_mode, "confidence_scores": confidences, "members": metrics,
        "families": list(families), "ebc_backbones": list(config.ebc_backbones) if "ebc" in families else [],
        "au_backbone": config.au_backbone if "au" in families else None,
        "test_mas": {name: {"n_test": row["n_test"], "lowest_agreement_used": row["lowest_agreement_used"]}
                     for name, row in split_report.get("per_emotion", {}).items()},
        "timings": timings,
    }
    write_json_atomic(output_dir / "confidence_scores.json", payload)
    parts = ["## Member evaluation on test-MAS", "",
             "Each member: positives = the test-MAS images of its emotion, negatives = the other test-MAS images "
             f"(confidence score: Eq. 3). Values in %. Soft labels use CS mode `{config.cs_mode}`.", ""]
    groups = []
    if "ebc" in families:
        groups += [(f"EBC — {b}", "ebc", b) for b in config.ebc_backbones]
    if "au" in families:
        groups.append((f"AU classifiers — {config.au_backbone}", "au", config.au_backbone))
    for title, family, backbone in groups:
        rows = {em: metrics[_member_name(family, backbone, em)] for em in EMOTIONS}
        parts.append(markdown_member_table(rows, title))
    if dist_metrics:
        parts += ["### Distribution members (arg-max against the test-MAS majority label)", "",
                  "| member | accuracy | average accuracy |", "|---|---|---|"]
        parts += [f"| {name} | {100 * row['accuracy']:.2f} | {100 * row['average_accuracy']:.2f} |"
                  for name, row in dist_metrics.items()]
        parts.append("")
    markdown = "\n".join(parts)
    write_text_atomic(output_dir / "confidence_scores.md", markdown)
    return markdown
