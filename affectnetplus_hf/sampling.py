"""The multi-annotated set (MAS): majority labels, the train/test-MAS split (SPEC §3) and the
positive/negative selection of the one-vs-rest soft-labelers (SPEC §4, paper Sec. 3.2).

Everything works on plain arrays — ``votes`` (N, 8) annotator counts in SPEC §1 order,
``non_emotion_votes`` (N,) votes for None/Uncertain/Non-Face (FER+ unknown/NF) and ``image_ids`` (N,)
strings — with thin helpers (:func:`mas_arrays`, :func:`split_mas_records`) for a list of
:class:`~affectnetplus_hf.records.FaceRecord`.

Decisions (each marked **[choice]** is documented in the README and the dataset card):

* Majority vote (SPEC §3). Non-emotion votes form one bucket, "nothing". [choice] An image keeps an
  emotion label only when its top emotion count is **strictly** greater than its non-emotion votes:
  more non-emotion votes than the top emotion means the majority is a non-emotion, and an equal count
  is a tie with "nothing", which no tie rule can turn into an emotion, so the image is left out under
  every ``tie`` mode. Images with no emotion vote are left out too. Ties *between emotions* follow
  ``tie``: ``"drop"`` [choice] leaves the image out, ``"first"`` [option] takes the tied emotion listed
  first by the source (``preferred`` — e.g. AffectNet's query keyword — when it is among the tied
  emotions, else the first in ``source_order``, SPEC order by default), ``"random"`` [option] draws one,
  seeded.
* Agreement = share of all votes (non-emotion votes included) that went to the majority emotion.
  Unanimous = at least 2 votes, no non-emotion vote, every vote on one emotion.
* test-MAS (SPEC §3): per emotion, ``n_test_per_class`` unanimous images drawn with a fixed seed. When
  there are fewer, [choice] the quota is filled with that emotion's images of highest agreement (ties
  by the seeded draw). [choice] ``max_test_fraction`` caps the *fill*: filling stops once the emotion's
  test images reach ``floor(max_test_fraction × n_images)``; unanimous images are always taken up to
  the quota (the paper's rule), with a warning when they alone exceed the cap. ``strict_unanimous=True``
  [option] takes only unanimous images and warns when fewer than the quota exist.
* The seeded draws of :func:`split_mas` use a key per image, ``blake2b(seed, purpose, image_id)``,
  [choice] so the split does not depend on the input order, and adding or removing images does not
  reshuffle the others.
* Negatives (SPEC §4): ``n_neg = round_half_up(neg_ratio × n_pos)``, ``n_uniform =
  round_half_up(uniform_fraction × n_neg)`` (20 %), the remaining 80 % split across the other emotions in
  proportion to their AU overlap with the emotion (:func:`~affectnetplus_hf.emotions.au_overlap`).
  [choice] Integer quotas by largest-remainder (Hamilton) rounding, ties to the lower SPEC index. A
  quota larger than its emotion's pool is capped and the remainder redistributed to the other
  overlapping emotions in the same proportions (repeated until it fits); what no overlapping emotion
  can take moves to the uniform part. [choice] The AU-proportional part is drawn first, then the
  uniform part uniformly from all remaining images of the other emotions (so no image is drawn twice
  and the per-emotion quotas are met whenever the pools allow). When the other emotions hold fewer
  images than ``n_neg``, all of them are used and a :class:`SamplingWarning` is issued.
* ``epoch`` [option "re-draw negatives every epoch"]: the negative draw is seeded by
  ``(seed, emotion, epoch)``; ``epoch=None`` gives the one fixed draw seeded by ``(seed, emotion)``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, NUM_EMOTIONS, au_overlap
from affectnetplus_hf.fileio import chmod_like_new
from affectnetplus_hf.votes import (  # the vote rule lives in votes.py; re-exported here
    TIE_MODES,  # noqa: F401
    TieMode,
    _as_counts,
    _check_preferred,
    _check_source_order,
    _check_tie,
    _check_votes,
    _majority,
    agreement,
    is_unanimous,
    majority_labels,  # noqa: F401
    vote_distributions,  # noqa: F401
)

logger = logging.getLogger(__name__)


#: Why an image has no majority label (``MASSplit.dropped_reasons``).
DROP_TIE = "tie"
DROP_NON_EMOTION = "non_emotion_majority"
DROP_NO_VOTES = "no_emotion_votes"
DROP_REASONS: tuple[str, ...] = (DROP_TIE, DROP_NON_EMOTION, DROP_NO_VOTES)

#: Share of the negatives drawn uniformly from all other emotions (SPEC §4, paper Sec. 3.2).
DEFAULT_UNIFORM_FRACTION = 0.2

SPLIT_FILE = "split.csv"
REPORT_FILE = "report.json"
SPLIT_COLUMNS: tuple[str, ...] = ("image_id", "split", "label", "emotion", "agreement", "unanimous", "reason")

_REASON_CODES = {1: DROP_TIE, 2: DROP_NON_EMOTION, 3: DROP_NO_VOTES}


class SamplingWarning(UserWarning):
    """A sampling quota could not be met (too few unanimous images, exhausted negative pool, ...)."""


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _check_emotion(emotion) -> int:
    if isinstance(emotion, str):
        if emotion not in EMOTION_TO_INDEX:
            raise ValueError(f"emotion must be one of {EMOTIONS} or an index 0..{NUM_EMOTIONS - 1}, got {emotion!r}")
        return EMOTION_TO_INDEX[emotion]
    if isinstance(emotion, (bool, np.bool_)) or not isinstance(emotion, (int, np.integer)):
        raise ValueError(f"emotion must be an emotion name or an index 0..{NUM_EMOTIONS - 1}, got {emotion!r}")
    if not 0 <= int(emotion) < NUM_EMOTIONS:
        raise ValueError(f"emotion must be an index in 0..{NUM_EMOTIONS - 1}, got {emotion}")
    return int(emotion)


def _check_image_ids(image_ids, n: int) -> np.ndarray:
    ids = list(image_ids)
    if len(ids) != n:
        raise ValueError(f"image_ids has {len(ids)} entries but votes has {n} rows; expected equal")
    for row, image_id in enumerate(ids):
        if not isinstance(image_id, (str, np.str_)) or not image_id:
            raise ValueError(f"image_ids row {row} is {image_id!r}; expected a non-empty string")
        if "\n" in image_id or "\r" in image_id:
            raise ValueError(f"image_ids row {row} contains a line break: {image_id!r}")
    array = np.asarray(ids, dtype=object)
    unique, counts = np.unique(array.astype(str), return_counts=True)
    if (counts > 1).any():
        duplicated = unique[counts > 1][:5].tolist()
        raise ValueError(f"image_ids must be unique; duplicated: {duplicated}")
    return array.astype(str)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


# --------------------------------------------------------------------------------------------------
# train/test-MAS split (SPEC §3)
# --------------------------------------------------------------------------------------------------


def _image_keys(image_ids: np.ndarray, seed: int, purpose: str, n_keys: int = 1) -> np.ndarray:
    """Deterministic uniform keys in [0, 1) per image id: (N,) or (N, n_keys)."""
    keys = np.empty((len(image_ids), n_keys), dtype=np.float64)
    prefix = f"{int(seed)}\0{purpose}\0".encode()
    for row, image_id in enumerate(image_ids):
        digest = hashlib.blake2b(prefix + str(image_id).encode("utf-8"), digest_size=8 * n_keys).digest()
        keys[row] = np.frombuffer(digest, dtype="<u8") / 2.0**64
    return keys[:, 0] if n_keys == 1 else keys


@dataclass
class MASSplit:
    """The train-MAS / test-MAS split of a multi-annotated set (SPEC §3).

    Ids are sorted; ``*_labels`` are SPEC indices; ``*_agreement`` the share of votes for the label.
    ``dropped_ids`` / ``dropped_reasons`` list every image left out and why (``"tie"``,
    ``"non_emotion_majority"``, ``"no_emotion_votes"``), so nothing disappears silently.
    ``report`` holds the parameters, per-emotion counts (``n_images``, ``n_unanimous``, ``n_test``,
    ``n_test_unanimous``, ``lowest_agreement_used``, ``quota_met``) and drop counts.
    """

    train_ids: list[str]
    test_ids: list[str]
    train_labels: np.ndarray
    test_labels: np.ndarray
    train_agreement: np.ndarray = field(default_factory=lambda: np.zeros(0))
    test_agreement: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_unanimous: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    test_unanimous: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dropped_ids: list[str] = field(default_factory=list)
    dropped_reasons: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def label_of(self) -> dict[str, int]:
        """image_id -> SPEC label for every train and test image."""
        pairs = zip(self.train_ids + self.test_ids, np.concatenate([self.train_labels, self.test_labels]).tolist())
        return {image_id: int(label) for image_id, label in pairs}

    def one_vs_rest_ids(self, emotion, **kwargs) -> tuple[list[str], list[str]]:
        """Positive and negative train-MAS image ids for the binary model of ``emotion`` (SPEC §4).

        ``kwargs`` go to :func:`select_one_vs_rest` (``neg_ratio``, ``overlap``, ``seed``, ``epoch``, ...).
        """
        positives, negatives = select_one_vs_rest(self.train_labels, emotion, **kwargs)
        return [self.train_ids[i] for i in positives], [self.train_ids[i] for i in negatives]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image (columns :data:`SPLIT_COLUMNS`), train then test then dropped."""
        out: list[dict[str, Any]] = []
        for split, ids, labels, agree, unanimous in (
            ("train", self.train_ids, self.train_labels, self.train_agreement, self.train_unanimous),
            ("test", self.test_ids, self.test_labels, self.test_agreement, self.test_unanimous),
        ):
            for i, image_id in enumerate(ids):
                label = int(labels[i])
                out.append({
                    "image_id": image_id, "split": split, "label": label, "emotion": EMOTIONS[label],
                    "agreement": float(agree[i]), "unanimous": bool(unanimous[i]), "reason": "",
                })
        for image_id, reason in zip(self.dropped_ids, self.dropped_reasons):
            out.append({
                "image_id": image_id, "split": "dropped", "label": -1, "emotion": "",
                "agreement": float("nan"), "unanimous": False, "reason": reason,
            })
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``split.csv`` (columns :data:`SPLIT_COLUMNS`) and ``report.json`` atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)

        def write_csv(handle) -> None:
            writer = csv.DictWriter(handle, fieldnames=list(SPLIT_COLUMNS), lineterminator="\n")
            writer.writeheader()
            for row in self.rows():
                row = dict(row)
                row["agreement"] = "" if math.isnan(row["agreement"]) else repr(row["agreement"])
                row["unanimous"] = int(row["unanimous"])
                writer.writerow(row)

        _atomic_write(directory / SPLIT_FILE, write_csv)
        report_text = json.dumps(self.report, indent=2, sort_keys=True) + "\n"
        _atomic_write(directory / REPORT_FILE, lambda handle: handle.write(report_text))
        logger.info("Saved MAS split (%d train, %d test, %d dropped) to %s",
                    len(self.train_ids), len(self.test_ids), len(self.dropped_ids), directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> MASSplit:
        """Read a split written by :meth:`save`; errors name the file and row."""
        directory = Path(directory)
        csv_path, report_path = directory / SPLIT_FILE, directory / REPORT_FILE
        for path in (csv_path, report_path):
            if not path.is_file():
                raise FileNotFoundError(f"MAS split file not found: {path} (expected {SPLIT_FILE} and {REPORT_FILE})")
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{report_path}: not valid JSON: {error}") from None
        parts: dict[str, dict[str, list]] = {
            split: {"ids": [], "labels": [], "agree": [], "unan": []} for split in ("train", "test")
        }
        dropped_ids: list[str] = []
        dropped_reasons: list[str] = []
        seen: set[str] = set()
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or tuple(reader.fieldnames) != SPLIT_COLUMNS:
                raise ValueError(f"{csv_path}: columns must be {list(SPLIT_COLUMNS)}, got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                where = f"{csv_path}, line {line}"
                image_id, split = row["image_id"], row["split"]
                if not image_id:
                    raise ValueError(f"{where}: empty image_id")
                if image_id in seen:
                    raise ValueError(f"{where}: image_id {image_id!r} occurs twice")
                seen.add(image_id)
                if split == "dropped":
                    if row["reason"] not in DROP_REASONS:
                        raise ValueError(f"{where}: reason must be one of {DROP_REASONS}, got {row['reason']!r}")
                    dropped_ids.append(image_id)
                    dropped_reasons.append(row["reason"])
                    continue
                if split not in parts:
                    raise ValueError(f"{where}: split must be 'train', 'test' or 'dropped', got {split!r}")
                try:
                    label = int(row["label"])
                    agree = float(row["agreement"])
                    unanimous = int(row["unanimous"])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{where}: label must be an integer, agreement a number, unanimous 0/1; got "
                        f"{row['label']!r}, {row['agreement']!r}, {row['unanimous']!r}"
                    ) from None
                if not 0 <= label < NUM_EMOTIONS or row["emotion"] != EMOTIONS[label]:
                    raise ValueError(
                        f"{where}: label {row['label']!r} / emotion {row['emotion']!r} do not match the SPEC label "
                        f"space (index 0..7 with its name)"
                    )
                if not 0.0 <= agree <= 1.0 or unanimous not in (0, 1):
                    raise ValueError(
                        f"{where}: agreement must be in [0, 1] and unanimous 0/1, got {agree}, {unanimous}"
                    )
                part = parts[split]
                part["ids"].append(image_id)
                part["labels"].append(label)
                part["agree"].append(agree)
                part["unan"].append(bool(unanimous))
        return cls(
            train_ids=parts["train"]["ids"],
            test_ids=parts["test"]["ids"],
            train_labels=np.asarray(parts["train"]["labels"], dtype=np.int64),
            test_labels=np.asarray(parts["test"]["labels"], dtype=np.int64),
            train_agreement=np.asarray(parts["train"]["agree"], dtype=np.float64),
            test_agreement=np.asarray(parts["test"]["agree"], dtype=np.float64),
            train_unanimous=np.asarray(parts["train"]["unan"], dtype=bool),
            test_unanimous=np.asarray(parts["test"]["unan"], dtype=bool),
            dropped_ids=dropped_ids,
            dropped_reasons=dropped_reasons,
            report=report,
        )


def _atomic_write(path: Path, write) -> None:
    handle = tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, newline="", encoding="utf-8"
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        chmod_like_new(handle.name)  # the temporary file's 0600 would survive the rename
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


def split_mas(
    votes,
    image_ids,
    non_emotion_votes=None,
    n_test_per_class: int = 100,
    max_test_fraction: float = 0.2,
    strict_unanimous: bool = False,
    tie: TieMode = "drop",
    seed: int = 0,
    source_order: Sequence[int] | None = None,
    preferred=None,
) -> MASSplit:
    """Split a multi-annotated set into train-MAS and test-MAS (SPEC §3).

    Labels come from :func:`majority_labels` (``tie``, ``source_order``, ``preferred`` as there; the
    ``"random"`` tie draw uses per-image keys). For each emotion, the test part holds
    ``n_test_per_class`` unanimous images (:func:`is_unanimous`) drawn with ``seed``. [choice] If the
    emotion has fewer unanimous images, the quota is filled with its other images in decreasing
    agreement, ties by the seeded draw, but the fill never brings the emotion's test images above
    ``floor(max_test_fraction × n_images)`` (the cap limits the fill; unanimous images are always taken,
    and a warning says when they alone exceed the cap). [option] ``strict_unanimous=True`` takes only
    unanimous images. Any shortfall is reported in ``report["per_emotion"]`` and warned about
    (:class:`SamplingWarning`). Every other image with a label is train-MAS; images without one are
    listed in ``dropped_ids`` with the reason.

    The result does not depend on the input order: images are keyed by ``image_id`` (see module notes).
    """
    _check_tie(tie)
    votes, non_emotion = _check_votes(votes, non_emotion_votes)
    ids = _check_image_ids(image_ids, len(votes))
    source_order_array = _check_source_order(source_order)
    preferred = _check_preferred(preferred, len(votes))
    if isinstance(n_test_per_class, (bool, np.bool_)) or not isinstance(n_test_per_class, (int, np.integer)) \
            or n_test_per_class < 0:
        raise ValueError(f"n_test_per_class must be an integer >= 0, got {n_test_per_class!r}")
    if not (isinstance(max_test_fraction, (int, float, np.floating)) and 0.0 <= float(max_test_fraction) <= 1.0):
        raise ValueError(f"max_test_fraction must be a number in [0, 1], got {max_test_fraction!r}")

    # Canonical order: by image id, so that the split is independent of the input order.
    order = np.argsort(ids, kind="stable")
    ids, votes, non_emotion = ids[order], votes[order], non_emotion[order]
    if preferred is not None:
        preferred = preferred[order]
    tie_keys = _image_keys(ids, seed, "tie", NUM_EMOTIONS) if tie == "random" else None
    labels, reasons = _majority(votes, non_emotion, tie, tie_keys, source_order_array, preferred)
    agree = agreement(votes, non_emotion)
    unanimous = is_unanimous(votes, non_emotion) & (labels >= 0)
    draw_keys = _image_keys(ids, seed, "test-mas")

    in_test = np.zeros(len(ids), dtype=bool)
    per_emotion: dict[str, dict[str, Any]] = {}
    for e, name in enumerate(EMOTIONS):
        members = np.flatnonzero(labels == e)
        n_images = len(members)
        unanimous_members = members[unanimous[members]]
        cap = int(math.floor(float(max_test_fraction) * n_images + 1e-9))
        # Unanimous images, in the seeded draw order.
        chosen = unanimous_members[np.argsort(draw_keys[unanimous_members], kind="stable")][:n_test_per_class]
        n_fill = 0
        if len(chosen) < n_test_per_class and n_images:
            if strict_unanimous:
                warnings.warn(
                    f"test-MAS: {name} has {len(unanimous_members)} unanimous images, fewer than "
                    f"n_test_per_class={n_test_per_class}; strict_unanimous=True takes only those",
                    SamplingWarning, stacklevel=2,
                )
            else:
                others = members[~unanimous[members]]
                # Highest agreement first, ties by the seeded key.
                others = others[np.lexsort((draw_keys[others], -agree[others]))]
                n_fill = max(0, min(n_test_per_class, cap) - len(chosen))
                fill = others[:n_fill]
                n_fill = len(fill)
                chosen = np.concatenate([chosen, fill])
                if len(chosen) < n_test_per_class:
                    warnings.warn(
                        f"test-MAS: {name} has {len(unanimous_members)} unanimous images of {n_images}; filled "
                        f"{n_fill} more by agreement up to the cap max_test_fraction={max_test_fraction} "
                        f"({cap} images): {len(chosen)} of n_test_per_class={n_test_per_class}",
                        SamplingWarning, stacklevel=2,
                    )
        elif len(chosen) < n_test_per_class and n_test_per_class:
            warnings.warn(f"test-MAS: no {name} image in the multi-annotated set", SamplingWarning, stacklevel=2)
        if len(unanimous_members) and min(len(unanimous_members), n_test_per_class) > cap:
            warnings.warn(
                f"test-MAS: {name} takes {min(len(unanimous_members), n_test_per_class)} unanimous test images, "
                f"more than max_test_fraction={max_test_fraction} of its {n_images} images",
                SamplingWarning, stacklevel=2,
            )
        in_test[chosen] = True
        per_emotion[name] = {
            "n_images": int(n_images),
            "n_unanimous": int(len(unanimous_members)),
            "n_test": int(len(chosen)),
            "n_test_unanimous": int(len(chosen) - n_fill),
            "n_train": int(n_images - len(chosen)),
            "lowest_agreement_used": float(agree[chosen].min()) if len(chosen) else None,
            "quota_met": bool(len(chosen) >= n_test_per_class),
        }

    kept = labels >= 0
    train, test, dropped = np.flatnonzero(kept & ~in_test), np.flatnonzero(in_test), np.flatnonzero(~kept)
    drop_counts = {reason: int((reasons == code).sum()) for code, reason in _REASON_CODES.items()}
    report = {
        "params": {
            "n_test_per_class": int(n_test_per_class), "max_test_fraction": float(max_test_fraction),
            "strict_unanimous": bool(strict_unanimous), "tie": tie, "seed": int(seed),
            "source_order": source_order_array.tolist(), "preferred": preferred is not None,
        },
        "n_images": int(len(ids)), "n_train": int(len(train)), "n_test": int(len(test)),
        "n_dropped": int(len(dropped)), "dropped": drop_counts, "per_emotion": per_emotion,
    }
    for name, row in per_emotion.items():
        logger.info("test-MAS %s: %s", name, row)
    if len(dropped):
        logger.info("MAS: %d images without a majority emotion left out: %s", len(dropped), drop_counts)
    return MASSplit(
        train_ids=ids[train].tolist(), test_ids=ids[test].tolist(),
        train_labels=labels[train], test_labels=labels[test],
        train_agreement=agree[train], test_agreement=agree[test],
        train_unanimous=unanimous[train], test_unanimous=unanimous[test],
        dropped_ids=ids[dropped].tolist(),
        dropped_reasons=[_REASON_CODES[int(code)] for code in reasons[dropped]],
        report=report,
    )


# --------------------------------------------------------------------------------------------------
# FaceRecord helpers
# --------------------------------------------------------------------------------------------------


def mas_arrays(records) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(votes (N, 8), non_emotion_votes (N,), image_ids)`` from FaceRecords that carry votes."""
    records = list(records)
    votes = np.zeros((len(records), NUM_EMOTIONS), dtype=np.int64)
    non_emotion = np.zeros(len(records), dtype=np.int64)
    ids: list[str] = []
    for row, record in enumerate(records):
        if record.votes is None:
            raise ValueError(
                f"record {row} ({record.location}) has no votes; the multi-annotated set needs per-emotion counts"
            )
        record_votes = np.asarray(record.votes)
        if record_votes.shape != (NUM_EMOTIONS,):
            raise ValueError(f"record {row} ({record.location}) has votes of shape {record_votes.shape}; expected (8,)")
        votes[row] = _as_counts(record_votes[None, :], f"votes of record {row} ({record.location})", "(8,)", 2)[0]
        non_emotion[row] = _as_counts(
            [record.non_emotion_votes], f"non_emotion_votes of record {row} ({record.location})", "a count", 1
        )[0]
        ids.append(record.image_id)
    return votes, non_emotion, ids


def split_mas_records(records, **kwargs) -> MASSplit:
    """:func:`split_mas` on a list of FaceRecords (``votes``, ``non_emotion_votes``, ``image_id``)."""
    votes, non_emotion, ids = mas_arrays(records)
    return split_mas(votes, ids, non_emotion_votes=non_emotion, **kwargs)


# --------------------------------------------------------------------------------------------------
# Positive/negative selection (SPEC §4)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NegativeQuotas:
    """How the negatives of one binary model are drawn (SPEC §4).

    ``n_neg`` is what was asked for (``round_half_up(neg_ratio × n_pos)``), ``n_available`` how many
    images the other emotions hold. ``overlap_quotas`` (8,) are the per-emotion counts of the
    AU-proportional part after capping and redistribution; ``n_uniform`` the size of the uniform part
    (its 20 % plus whatever the overlapping emotions could not take); ``n_selected`` =
    ``overlap_quotas.sum() + n_uniform`` = ``min(n_neg, n_available)``.
    """

    emotion: int
    n_pos: int
    n_neg: int
    n_available: int
    n_uniform_requested: int
    n_overlap_requested: int
    weights: tuple[int, ...]
    overlap_quotas: tuple[int, ...]
    n_uniform: int

    @property
    def n_selected(self) -> int:
        return int(sum(self.overlap_quotas) + self.n_uniform)

    @property
    def shortfall(self) -> int:
        return int(self.n_neg - self.n_selected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "emotion": EMOTIONS[self.emotion], "n_pos": self.n_pos, "n_neg": self.n_neg,
            "n_available": self.n_available, "n_uniform_requested": self.n_uniform_requested,
            "n_overlap_requested": self.n_overlap_requested,
            "weights": dict(zip(EMOTIONS, self.weights)),
            "overlap_quotas": dict(zip(EMOTIONS, self.overlap_quotas)),
            "n_uniform": self.n_uniform, "n_selected": self.n_selected, "shortfall": self.shortfall,
        }


def largest_remainder(total: int, weights) -> np.ndarray:
    """Split ``total`` into integers proportional to non-negative integer ``weights`` (Hamilton method).

    Each share gets ``floor(total × w / Σw)``; the units left go to the largest remainders, ties to the
    lower index. Exact integer arithmetic. All-zero weights give all zeros.
    """
    weights = np.asarray(weights, dtype=np.int64)
    weight_sum = int(weights.sum())
    if total <= 0 or weight_sum == 0:
        return np.zeros(len(weights), dtype=np.int64)
    numerators = total * weights
    quotas = numerators // weight_sum
    remainders = numerators % weight_sum
    left = total - int(quotas.sum())
    if left:
        order = np.lexsort((np.arange(len(weights)), -remainders))
        quotas[order[:left]] += 1
    return quotas


def _capped_proportional(total: int, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Largest-remainder split of ``total`` by ``weights``, capped by ``capacity``, with redistribution."""
    quotas = np.zeros(len(weights), dtype=np.int64)
    active = (weights > 0) & (capacity > 0)
    remaining = total
    while remaining > 0 and active.any():
        trial = largest_remainder(remaining, np.where(active, weights, 0))
        over = active & (trial > capacity)
        if not over.any():
            quotas[active] = trial[active]
            remaining = 0
            break
        quotas[over] = capacity[over]
        remaining -= int(capacity[over].sum())
        active &= ~over
    return quotas


def _class_counts(labels) -> np.ndarray:
    try:
        array = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("labels must be SPEC indices 0..7") from None
    if array.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {array.shape}")
    bad = ~np.isfinite(array) | (array != np.floor(array)) | (array < 0) | (array >= NUM_EMOTIONS)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"labels row {row} is {float(array[row])!r}; expected a SPEC index 0..7 "
            f"(leave images without a majority label, -1, out first)"
        )
    return array.astype(np.int64)


def _check_neg_ratio(neg_ratio) -> float:
    if isinstance(neg_ratio, (bool, np.bool_)) or not isinstance(neg_ratio, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(neg_ratio)) or float(neg_ratio) <= 0:
        raise ValueError(f"neg_ratio must be a finite number > 0, got {neg_ratio!r}")
    return float(neg_ratio)


def _check_uniform_fraction(uniform_fraction) -> float:
    if not isinstance(uniform_fraction, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(uniform_fraction) <= 1.0:
        raise ValueError(f"uniform_fraction must be a number in [0, 1], got {uniform_fraction!r}")
    return float(uniform_fraction)


def negative_quotas(
    class_counts,
    emotion,
    neg_ratio: float = 1.0,
    overlap: Literal["table2", "paper"] = "table2",
    uniform_fraction: float = DEFAULT_UNIFORM_FRACTION,
    warn: bool = True,
) -> NegativeQuotas:
    """The negative quotas of the binary model of ``emotion`` (SPEC §4), from per-emotion image counts.

    ``class_counts``: (8,) number of train-MAS images per emotion. ``overlap`` selects the AU overlap
    table (``"table2"`` [choice] / ``"paper"`` [option], SPEC §2). See the module notes for the rounding
    and redistribution rules. Warns (:class:`SamplingWarning`) when the other emotions hold fewer than
    ``n_neg`` images.
    """
    e = _check_emotion(emotion)
    counts = _as_counts(class_counts, "class_counts", "(8,)", 1)
    if counts.shape != (NUM_EMOTIONS,):
        raise ValueError(f"class_counts must have shape (8,) (images per emotion), got {counts.shape}")
    ratio = _check_neg_ratio(neg_ratio)
    fraction = _check_uniform_fraction(uniform_fraction)
    weights = au_overlap(overlap)[e].astype(np.int64).copy()
    weights[e] = 0
    capacity = counts.copy()
    capacity[e] = 0

    n_pos = int(counts[e])
    n_neg = _round_half_up(ratio * n_pos)
    n_available = int(capacity.sum())
    n_uniform_requested = _round_half_up(fraction * n_neg)
    n_overlap_requested = n_neg - n_uniform_requested
    if weights.sum() == 0:  # Neutral: nothing overlaps, the whole 80 % is uniform too.
        n_uniform_requested, n_overlap_requested = n_neg, 0
    quotas = _capped_proportional(n_overlap_requested, weights, capacity)
    n_selected_target = min(n_neg, n_available)
    n_uniform = n_selected_target - int(quotas.sum())
    if warn and n_neg > n_available:
        warnings.warn(
            f"negatives for {EMOTIONS[e]}: asked for {n_neg} (neg_ratio={ratio} x {n_pos} positives) but the "
            f"other emotions hold only {n_available} images; using all of them",
            SamplingWarning, stacklevel=2,
        )
    return NegativeQuotas(
        emotion=e, n_pos=n_pos, n_neg=n_neg, n_available=n_available,
        n_uniform_requested=n_uniform_requested, n_overlap_requested=n_overlap_requested,
        weights=tuple(int(w) for w in weights), overlap_quotas=tuple(int(q) for q in quotas), n_uniform=int(n_uniform),
    )


def all_negative_quotas(class_counts, **kwargs) -> dict[str, NegativeQuotas]:
    """:func:`negative_quotas` of all 8 binary models, keyed by emotion name (for reports)."""
    return {name: negative_quotas(class_counts, e, **kwargs) for e, name in enumerate(EMOTIONS)}


def select_one_vs_rest(
    labels,
    emotion,
    neg_ratio: float = 1.0,
    overlap: Literal["table2", "paper"] = "table2",
    seed: int = 0,
    epoch: int | None = None,
    uniform_fraction: float = DEFAULT_UNIFORM_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative row indices for the binary model of ``emotion`` (SPEC §4, paper Sec. 3.2).

    ``labels``: (N,) train-MAS labels (SPEC indices 0..7). Positives are every row labelled ``emotion``;
    negatives follow :func:`negative_quotas`: first the AU-proportional part (per emotion, its quota
    drawn without replacement), then the uniform part drawn uniformly without replacement from all the
    other emotions' rows not yet taken. Seeded by ``(seed, emotion)``, or ``(seed, emotion, epoch)`` to
    re-draw the negatives every epoch [option]. Returns two sorted int64 index arrays.
    """
    labels = _class_counts(labels)
    e = _check_emotion(emotion)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0):
        raise ValueError(f"epoch must be None or an integer >= 0, got {epoch!r}")
    counts = np.bincount(labels, minlength=NUM_EMOTIONS)
    quotas = negative_quotas(counts, e, neg_ratio=neg_ratio, overlap=overlap, uniform_fraction=uniform_fraction)
    if quotas.n_pos == 0:
        warnings.warn(f"one-vs-rest {EMOTIONS[e]}: no positive image (no label {e} in labels)", SamplingWarning,
                      stacklevel=2)
    entropy = [int(seed), e] + ([int(epoch)] if epoch is not None else [])
    rng = np.random.default_rng(np.random.SeedSequence(entropy))

    taken = np.zeros(len(labels), dtype=bool)
    for other in range(NUM_EMOTIONS):
        quota = quotas.overlap_quotas[other]
        if quota:
            pool = np.flatnonzero(labels == other)
            taken[rng.choice(pool, size=quota, replace=False)] = True
    remaining = np.flatnonzero((labels != e) & ~taken)
    if quotas.n_uniform:
        taken[rng.choice(remaining, size=quotas.n_uniform, replace=False)] = True
    positives = np.flatnonzero(labels == e)
    negatives = np.flatnonzero(taken)
    logger.debug("one-vs-rest %s: %s", EMOTIONS[e], quotas.as_dict())
    return positives.astype(np.int64), negatives.astype(np.int64)
