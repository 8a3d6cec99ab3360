"""Calibrate a soft-labeler on a multi-annotated split and measure it against the annotators.

:func:`calibrate_on_records` runs a :class:`~affectnetplus_hf.models.SoftLabeler` over the images of one
split of a multi-annotated source (FER+ PublicTest: the reader's ``validation`` split), fits the map of
:mod:`affectnetplus_hf.calibration` on their vote distributions, and measures every output — the Eq. 14
soft label, each family's scores and the calibrated soft label, each normalised to sum 1 — with
:func:`affectnetplus_hf.metrics.functional.crowd_agreement` (``docs/method.md#quality-against-people``).
The result is what ``SoftLabelerConfig.calibration`` stores; the model card shows its ``quality``.

:func:`calibrate_model_dir` (``affectnetplus calibrate``) refuses images the members were trained on
(:func:`check_unseen`): the calibration is fitted on images no member saw (``docs/method.md#calibration``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectnetplus_hf.calibration import QUALITY_ROWS, apply_calibration, fit_calibration
from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.mas.split import record_vote_distributions
from affectnetplus_hf.metrics.functional import crowd_agreement

logger = logging.getLogger(__name__)

#: The folder of a soft-labeler directory that holds its MAS split (written by ``affectnetplus train``).
MAS_SPLIT_DIR = "mas_split"


def soft_labeler_scores(model, pixel_values: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray | None]:
    """Run ``model`` over decoded images (N, C, S, S): ``{"soft_label", "ebc", "au", "dist",
    "soft_label_calibrated"}`` as float64 arrays (``None`` for what the model lacks)."""
    from affectnetplus_hf.models.runner import iter_soft_labels

    batches = ({"pixel_values": pixel_values[i : i + batch_size]} for i in range(0, len(pixel_values), batch_size))
    names = {
        "soft_label": "soft_label",
        "ebc": "ebc_scores",
        "au": "au_scores",
        "dist": "dist_scores",
        "soft_label_calibrated": "soft_label_calibrated",
    }
    parts: dict[str, list[np.ndarray]] = {key: [] for key in names}
    for _, output in iter_soft_labels(model, batches):
        for key, field in names.items():
            value = getattr(output, field)
            if value is not None:
                parts[key].append(value.double().numpy())
    return {key: np.concatenate(values) if values else None for key, values in parts.items()}


def quality_table(scores: dict[str, np.ndarray | None], reference: np.ndarray) -> dict[str, dict[str, Any]]:
    """``{output: crowd_agreement row}`` for every output present in ``scores``."""
    return {key: crowd_agreement(reference, scores[key]) for key, _ in QUALITY_ROWS if scores.get(key) is not None}


#: ``calibration_split`` value that holds out a seeded share of the multi-annotated images instead of a split.
HOLDOUT = "holdout"
#: The hint of :func:`vote_records` for ``affectnetplus train`` (``calibrate`` gives its own).
TRAIN_SPLIT_HINT = f"or use --calibration_split {HOLDOUT}"
#: The same hint for ``affectnetplus calibrate``, whose option is ``--split``.
CALIBRATE_SPLIT_HINT = (
    "give --split one of them that no member was trained on; a held-out share of the MAS is an "
    f"option of training: `affectnetplus train ... --calibration_split {HOLDOUT}`"
)


def vote_records(data: str | os.PathLike, split: str, *, hint: str = TRAIN_SPLIT_HINT) -> list:
    """The records of ``split`` of a multi-annotated source that hold at least one emotion vote
    (``hint``: how the caller's user picks another split)."""
    from affectnetplus_hf.sources import open_multi_annotated

    source = open_multi_annotated(data)
    if split not in source.splits:
        raise ValueError(
            f"{data}: no split {split!r} to calibrate on; the multi-annotated source has "
            f"{list(source.splits)} ({hint})"
        )
    records = [r for r in source.records(split) if r.votes is not None]
    voted = [r for r in records if np.sum(r.votes) > 0]
    if len(voted) < len(records):
        logger.info("%s/%s: %d images without an emotion vote left out", data, split, len(records) - len(voted))
    if not voted:
        raise ValueError(f"{data}: split {split!r} holds no image with emotion votes")
    return voted


def hold_out(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(kept, held_out)``: a seeded ``fraction`` of the records with emotion votes set aside for calibration."""
    if not 0 < fraction < 1:
        raise ValueError(f"calibration_fraction must be in (0, 1), got {fraction}")
    voted = [i for i, r in enumerate(records) if r.votes is not None and np.sum(r.votes) > 0]
    rng = np.random.default_rng([int(seed), 0xCA1B])
    chosen = set(rng.choice(voted, size=max(1, round(fraction * len(voted))), replace=False).tolist())
    return [r for i, r in enumerate(records) if i not in chosen], [records[i] for i in sorted(chosen)]


def calibrate_on_records(
    model,
    records: list,
    *,
    fitted_on: dict[str, Any],
    objective: str = "kl",
    skip_bad: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``model``'s calibration on multi-annotated ``records`` and measure it (module docstring).

    Returns the validated ``calibration`` dict (``inputs``, ``weights``, ``bias``, ``eps``, ``objective``,
    ``fitted_on``, ``quality``); the model itself is not changed.
    """
    from affectnetplus_hf.models.configuration_affectnetplus import check_calibration
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    preprocess = FacePreprocessor(model.config.image_size, processor=model.image_processor)
    pixel_values, kept, _ = decode_records(
        records, preprocess, skip_bad=skip_bad, progress=progress, desc="decoding the calibration images"
    )
    records = [records[i] for i in kept]
    reference = record_vote_distributions(records).astype(np.float64)
    scores = soft_labeler_scores(model, pixel_values)
    families = tuple(model.config.families)
    fit = fit_calibration({f: scores[f] for f in families}, reference, inputs=families, objective=objective)
    scores["soft_label_calibrated"] = apply_calibration(scores, fit)
    quality = quality_table(scores, reference)
    logger.info(
        "quality against the votes of %s (%d faces): W-MAE %s",
        fitted_on,
        len(records),
        {k: round(v["w_mae"], 2) for k, v in quality.items()},
    )
    calibration = {**fit, "fitted_on": {**fitted_on, "n": len(records)}, "quality": quality}
    return check_calibration(calibration, families)


def _mas_ids(model_dir: Path) -> set[str] | None:
    """Every image id of the MAS recorded in ``model_dir/mas_split`` (train-MAS, test-MAS and the dropped
    images the distribution family learns from), or ``None`` when the folder keeps no MAS split."""
    from affectnetplus_hf.mas.split import REPORT_FILE, SPLIT_FILE, MASSplit

    folder = model_dir / MAS_SPLIT_DIR
    if not (folder / SPLIT_FILE).is_file() or not (folder / REPORT_FILE).is_file():
        return None
    split = MASSplit.load(folder)
    return set(split.train_ids) | set(split.test_ids) | set(split.dropped_ids)


def _recorded_mas_splits(model_dir: Path) -> tuple[list[str] | None, str] | None:
    """``(mas_splits, data)`` recorded in ``model_dir/train_config.json`` (``mas_splits`` ``None``: every
    split of ``data``), or ``None`` when the folder keeps no training config."""
    import json

    from affectnetplus_hf.training.config import CONFIG_FILE_NAME

    path = model_dir / CONFIG_FILE_NAME
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    splits = config.get("mas_splits")
    return (None if splits is None else [str(s) for s in splits]), str(config.get("data") or "its data")


def seen_by_members(model_dir: str | os.PathLike, records: list, split: str) -> str | None:
    """Why the members of ``model_dir`` were trained on the calibration ``records`` of ``split`` (one
    line), or ``None``. Decided by what the folder records: the image ids of its MAS (``mas_split/``, written
    by training) or, without them, the MAS splits of ``train_config.json`` (none listed: every split)."""
    model_dir = Path(model_dir)
    ids = _mas_ids(model_dir)
    if ids is not None:
        seen = sum(1 for r in records if r.image_id in ids)
        return (
            (
                f"{seen} of the {len(records)} images of split {split!r} are in the MAS the members of {model_dir} "
                f"were trained on ({MAS_SPLIT_DIR}/)"
            )
            if seen
            else None
        )
    recorded = _recorded_mas_splits(model_dir)
    if recorded is None:
        return None
    splits, data = recorded
    if splits is not None and split not in splits:
        return None
    which = f"splits {splits} of {data}" if splits is not None else f"every split of {data}"
    return f"split {split!r}: {model_dir}/train_config.json records that the members were trained on {which}"


def check_unseen(model_dir: str | os.PathLike, records: list, split: str, *, force: bool = False) -> None:
    """Refuse (``ValueError``, one line) calibration images the members were trained on
    (:func:`seen_by_members`; ``docs/method.md#calibration`` fits on images no member saw); ``force``: warn."""
    reason = seen_by_members(model_dir, records, split)
    if reason is None:
        return
    if force:
        logger.warning("--force: calibrating on images the members were trained on: %s", reason)
        return
    raise ValueError(
        f"{reason}; calibrate on a split no member saw, or pass --force (force=True in Python) to "
        "calibrate on it anyway"
    )


def calibrate_model_dir(
    model_dir: str | os.PathLike,
    data: str | os.PathLike,
    split: str,
    *,
    objective: str = "kl",
    skip_bad: bool = False,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """``affectnetplus calibrate``: calibrate a saved soft-labeler in place (``config.json`` and the model
    card's quality section rewritten atomically; the weights are not touched). Returns the calibration.

    A split whose images the members were trained on is refused unless ``force`` (:func:`check_unseen`);
    the shipped soft-labeler is never rewritten."""
    from affectnetplus_hf.models.hub import load_soft_labeler
    from affectnetplus_hf.pretrained import resolve_model, shipped_name
    from affectnetplus_hf.reports.model_card import crowd_quality_section, replace_card_section
    from affectnetplus_hf.run_folder import FolderLock

    name = shipped_name(resolve_model(model_dir))
    if name is not None:
        raise ValueError(
            f"{os.fspath(model_dir)!r} is the shipped soft-labeler {name!r}, which calibrate would rewrite "
            f"inside the installed package; copy the folder first (affectnetplus_hf.pretrained_path"
            f"({name!r})) and calibrate the copy"
        )
    model_dir = Path(model_dir)
    records = vote_records(data, split, hint=CALIBRATE_SPLIT_HINT)
    with FolderLock(model_dir):  # one writer of the model folder at a time
        check_unseen(model_dir, records, split, force=force)
        model = load_soft_labeler(model_dir)
        calibration = calibrate_on_records(
            model,
            records,
            fitted_on={"data": Path(data).name, "split": split},
            objective=objective,
            skip_bad=skip_bad,
            progress=progress,
        )
        model.config.calibration = calibration
        write_text_atomic(model_dir / "config.json", model.config.to_json_string(use_diff=True))
        card = model_dir / "README.md"
        if card.is_file():
            write_text_atomic(
                card, replace_card_section(card.read_text(encoding="utf-8"), crowd_quality_section(calibration))
            )
    return calibration


__all__ = [
    "HOLDOUT",
    "calibrate_model_dir",
    "calibrate_on_records",
    "check_unseen",
    "hold_out",
    "quality_table",
    "seen_by_members",
    "soft_labeler_scores",
    "vote_records",
]
