"""The multi-annotated set (MAS): majority labels and the train/test-MAS split (``docs/method.md#mas-split``).

Everything works on plain arrays — ``votes`` (N, 8) annotator counts in label-space order,
``non_emotion_votes`` (N,) votes for None/Uncertain/Non-Face (FER+ unknown/NF) and ``image_ids`` (N,)
strings — with thin helpers (:func:`mas_arrays`, :func:`split_mas_records`,
:func:`record_vote_distributions`) for a list of :class:`~affectnetplus_hf.records.FaceRecord`.

The majority vote is the one rule of :mod:`affectnetplus_hf.votes`; :func:`split_mas` gives the test-MAS
draw. Each **[choice]** — an emotion label only when it beats the non-emotion votes strictly, ties dropped,
the quota filled by agreement up to ``max_test_fraction``, seeded keys per image id (:func:`image_keys`)
so the split depends neither on the input order nor on the other images — is described in
``docs/method.md#mas-split``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.mas.negatives import SamplingWarning, select_one_vs_rest
from affectnetplus_hf.votes import (
    TieMode,
    agreement,
    as_counts,
    check_preferred,
    check_source_order,
    check_tie,
    check_votes,
    is_unanimous,
    majority_with_reasons,
    vote_distributions,
)

logger = logging.getLogger(__name__)

#: Why an image has no majority label (``MASSplit.dropped_reasons``).
DROP_TIE = "tie"
DROP_NON_EMOTION = "non_emotion_majority"
DROP_NO_VOTES = "no_emotion_votes"
DROP_REASONS: tuple[str, ...] = (DROP_TIE, DROP_NON_EMOTION, DROP_NO_VOTES)

SPLIT_FILE = "split.csv"
REPORT_FILE = "report.json"
SPLIT_COLUMNS: tuple[str, ...] = ("image_id", "split", "label", "emotion", "agreement", "unanimous", "reason")

_REASON_CODES = {1: DROP_TIE, 2: DROP_NON_EMOTION, 3: DROP_NO_VOTES}


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


def image_keys(image_ids: np.ndarray, seed: int, purpose: str, n_keys: int = 1) -> np.ndarray:
    """Deterministic uniform keys in [0, 1) per image id: (N,) or (N, n_keys)."""
    keys = np.empty((len(image_ids), n_keys), dtype=np.float64)
    prefix = f"{int(seed)}\0{purpose}\0".encode()
    for row, image_id in enumerate(image_ids):
        digest = hashlib.blake2b(prefix + str(image_id).encode("utf-8"), digest_size=8 * n_keys).digest()
        keys[row] = np.frombuffer(digest, dtype="<u8") / 2.0**64
    return keys[:, 0] if n_keys == 1 else keys


@dataclass
class MASSplit:
    """The train-MAS / test-MAS split of a multi-annotated set (``docs/method.md#mas-split``).

    Ids are sorted; ``*_labels`` are label-space indices; ``*_agreement`` the share of votes for the label.
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
        """image_id -> label-space index for every train and test image."""
        pairs = zip(self.train_ids + self.test_ids, np.concatenate([self.train_labels, self.test_labels]).tolist())
        return {image_id: int(label) for image_id, label in pairs}

    def one_vs_rest_ids(self, emotion, **kwargs) -> tuple[list[str], list[str]]:
        """Positive and negative train-MAS image ids for the binary model of ``emotion``
        (``docs/method.md#sampling``).

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
                out.append(
                    {
                        "image_id": image_id,
                        "split": split,
                        "label": label,
                        "emotion": EMOTIONS[label],
                        "agreement": float(agree[i]),
                        "unanimous": bool(unanimous[i]),
                        "reason": "",
                    }
                )
        for image_id, reason in zip(self.dropped_ids, self.dropped_reasons):
            out.append(
                {
                    "image_id": image_id,
                    "split": "dropped",
                    "label": -1,
                    "emotion": "",
                    "agreement": float("nan"),
                    "unanimous": False,
                    "reason": reason,
                }
            )
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``split.csv`` (columns :data:`SPLIT_COLUMNS`) and ``report.json`` atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(SPLIT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            row = dict(row)
            row["agreement"] = "" if math.isnan(row["agreement"]) else repr(row["agreement"])
            row["unanimous"] = int(row["unanimous"])
            writer.writerow(row)
        write_text_atomic(directory / SPLIT_FILE, buffer.getvalue())
        write_text_atomic(directory / REPORT_FILE, json.dumps(self.report, indent=2, sort_keys=True) + "\n")
        logger.info(
            "Saved MAS split (%d train, %d test, %d dropped) to %s",
            len(self.train_ids),
            len(self.test_ids),
            len(self.dropped_ids),
            directory,
        )
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
        parts = {"train": _SplitColumns(), "test": _SplitColumns()}
        dropped_ids: list[str] = []
        dropped_reasons: list[str] = []
        for where, row in _read_split_rows(csv_path):
            if row["split"] == "dropped":
                if row["reason"] not in DROP_REASONS:
                    raise ValueError(f"{where}: reason must be one of {DROP_REASONS}, got {row['reason']!r}")
                dropped_ids.append(row["image_id"])
                dropped_reasons.append(row["reason"])
                continue
            if row["split"] not in parts:
                raise ValueError(f"{where}: split must be 'train', 'test' or 'dropped', got {row['split']!r}")
            parts[row["split"]].add(row, where)
        train, test = parts["train"], parts["test"]
        return cls(
            train_ids=train.ids,
            test_ids=test.ids,
            train_labels=np.asarray(train.labels, dtype=np.int64),
            test_labels=np.asarray(test.labels, dtype=np.int64),
            train_agreement=np.asarray(train.agreement, dtype=np.float64),
            test_agreement=np.asarray(test.agreement, dtype=np.float64),
            train_unanimous=np.asarray(train.unanimous, dtype=bool),
            test_unanimous=np.asarray(test.unanimous, dtype=bool),
            dropped_ids=dropped_ids,
            dropped_reasons=dropped_reasons,
            report=report,
        )


def _read_split_rows(csv_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` for each row of a ``split.csv``, after checking the columns, that the image id is
    not empty, and that no image id occurs twice."""
    seen: set[str] = set()
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or tuple(reader.fieldnames) != SPLIT_COLUMNS:
            raise ValueError(f"{csv_path}: columns must be {list(SPLIT_COLUMNS)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            where = f"{csv_path}, line {line}"
            image_id = row["image_id"]
            if not image_id:
                raise ValueError(f"{where}: empty image_id")
            if image_id in seen:
                raise ValueError(f"{where}: image_id {image_id!r} occurs twice")
            seen.add(image_id)
            yield where, row


@dataclass
class _SplitColumns:
    """The train or test rows of a ``split.csv`` being read (:meth:`MASSplit.load`)."""

    ids: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)
    unanimous: list[bool] = field(default_factory=list)

    def add(self, row: dict[str, str], where: str) -> None:
        """Check one row's label, emotion, agreement and unanimity, then append it."""
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
                f"{where}: label {row['label']!r} / emotion {row['emotion']!r} do not match the label "
                f"space (index 0..7 with its name)"
            )
        if not 0.0 <= agree <= 1.0 or unanimous not in (0, 1):
            raise ValueError(f"{where}: agreement must be in [0, 1] and unanimous 0/1, got {agree}, {unanimous}")
        self.ids.append(row["image_id"])
        self.labels.append(label)
        self.agreement.append(agree)
        self.unanimous.append(bool(unanimous))


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
    """Split a multi-annotated set into train-MAS and test-MAS (``docs/method.md#mas-split``).

    Labels come from :func:`~affectnetplus_hf.votes.majority_labels` (``tie``, ``source_order``,
    ``preferred`` as there; the ``"random"`` tie draw uses per-image keys). For each emotion, the test
    part holds ``n_test_per_class`` unanimous images (:func:`~affectnetplus_hf.votes.is_unanimous`) drawn
    with ``seed``. [choice] If the emotion has fewer unanimous images, the quota is filled with its other
    images in decreasing
    agreement, ties by the seeded draw, but the fill never brings the emotion's test images above
    ``floor(max_test_fraction × n_images)`` (the cap limits the fill; unanimous images are always taken,
    and a warning says when they alone exceed the cap). [option] ``strict_unanimous=True`` takes only
    unanimous images. Any shortfall is reported in ``report["per_emotion"]`` and warned about
    (:class:`SamplingWarning`). Every other image with a label is train-MAS; images without one are
    listed in ``dropped_ids`` with the reason.

    The result does not depend on the input order: images are keyed by ``image_id`` (see module notes).
    """
    check_tie(tie)
    votes, non_emotion = check_votes(votes, non_emotion_votes)
    ids = _check_image_ids(image_ids, len(votes))
    source_order_array = check_source_order(source_order)
    preferred = check_preferred(preferred, len(votes))
    _check_test_quota(n_test_per_class, max_test_fraction)
    images = _label_images(ids, votes, non_emotion, tie, seed, source_order_array, preferred)
    in_test = np.zeros(len(images.ids), dtype=bool)
    per_emotion: dict[str, dict[str, Any]] = {}
    for e, name in enumerate(EMOTIONS):
        chosen, per_emotion[name] = _draw_test_mas(images, e, n_test_per_class, max_test_fraction, strict_unanimous)
        in_test[chosen] = True
    params = {
        "n_test_per_class": int(n_test_per_class),
        "max_test_fraction": float(max_test_fraction),
        "strict_unanimous": bool(strict_unanimous),
        "tie": tie,
        "seed": int(seed),
        "source_order": source_order_array.tolist(),
        "preferred": preferred is not None,
    }
    return _assemble_split(images, in_test, per_emotion, params)


def _check_test_quota(n_test_per_class, max_test_fraction) -> None:
    if (
        isinstance(n_test_per_class, (bool, np.bool_))
        or not isinstance(n_test_per_class, (int, np.integer))
        or n_test_per_class < 0
    ):
        raise ValueError(f"n_test_per_class must be an integer >= 0, got {n_test_per_class!r}")
    if not (isinstance(max_test_fraction, (int, float, np.floating)) and 0.0 <= float(max_test_fraction) <= 1.0):
        raise ValueError(f"max_test_fraction must be a number in [0, 1], got {max_test_fraction!r}")


@dataclass
class _LabelledImages:
    """The images of :func:`split_mas` in canonical order (by image id) with their majority labels (-1: none,
    ``reasons`` says why), agreement, unanimity and seeded test-MAS draw keys."""

    ids: np.ndarray
    labels: np.ndarray
    reasons: np.ndarray
    agreement: np.ndarray
    unanimous: np.ndarray
    draw_keys: np.ndarray


def _label_images(ids, votes, non_emotion, tie, seed, source_order, preferred) -> _LabelledImages:
    # Canonical order: by image id, so that the split is independent of the input order.
    order = np.argsort(ids, kind="stable")
    ids, votes, non_emotion = ids[order], votes[order], non_emotion[order]
    if preferred is not None:
        preferred = preferred[order]
    tie_keys = image_keys(ids, seed, "tie", NUM_EMOTIONS) if tie == "random" else None
    labels, reasons = majority_with_reasons(votes, non_emotion, tie, tie_keys, source_order, preferred)
    return _LabelledImages(
        ids=ids,
        labels=labels,
        reasons=reasons,
        agreement=agreement(votes, non_emotion),
        unanimous=is_unanimous(votes, non_emotion) & (labels >= 0),
        draw_keys=image_keys(ids, seed, "test-mas"),
    )


def _draw_test_mas(
    images: _LabelledImages, e: int, n_test_per_class: int, max_test_fraction: float, strict_unanimous: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(rows, report row)`` of the test-MAS images of emotion ``e``: its unanimous images in the seeded
    draw order up to the quota, then (unless ``strict_unanimous``) its other images by agreement up to the
    cap. Warns about a shortfall with the caller of :func:`split_mas` as the location."""
    name = EMOTIONS[e]
    members = np.flatnonzero(images.labels == e)
    n_images = len(members)
    unanimous_members = members[images.unanimous[members]]
    cap = int(math.floor(float(max_test_fraction) * n_images + 1e-9))
    # Unanimous images, in the seeded draw order.
    chosen = unanimous_members[np.argsort(images.draw_keys[unanimous_members], kind="stable")][:n_test_per_class]
    n_fill = 0
    if len(chosen) < n_test_per_class and n_images:
        if strict_unanimous:
            warnings.warn(
                f"test-MAS: {name} has {len(unanimous_members)} unanimous images, fewer than "
                f"n_test_per_class={n_test_per_class}; strict_unanimous=True takes only those",
                SamplingWarning,
                stacklevel=3,
            )
        else:
            others = members[~images.unanimous[members]]
            # Highest agreement first, ties by the seeded key.
            others = others[np.lexsort((images.draw_keys[others], -images.agreement[others]))]
            fill = others[: max(0, min(n_test_per_class, cap) - len(chosen))]
            n_fill = len(fill)
            chosen = np.concatenate([chosen, fill])
            if len(chosen) < n_test_per_class:
                warnings.warn(
                    f"test-MAS: {name} has {len(unanimous_members)} unanimous images of {n_images}; filled "
                    f"{n_fill} more by agreement up to the cap max_test_fraction={max_test_fraction} "
                    f"({cap} images): {len(chosen)} of n_test_per_class={n_test_per_class}",
                    SamplingWarning,
                    stacklevel=3,
                )
    elif len(chosen) < n_test_per_class and n_test_per_class:
        warnings.warn(f"test-MAS: no {name} image in the multi-annotated set", SamplingWarning, stacklevel=3)
    if len(unanimous_members) and min(len(unanimous_members), n_test_per_class) > cap:
        warnings.warn(
            f"test-MAS: {name} takes {min(len(unanimous_members), n_test_per_class)} unanimous test images, "
            f"more than max_test_fraction={max_test_fraction} of its {n_images} images",
            SamplingWarning,
            stacklevel=3,
        )
    return chosen, {
        "n_images": int(n_images),
        "n_unanimous": int(len(unanimous_members)),
        "n_test": int(len(chosen)),
        "n_test_unanimous": int(len(chosen) - n_fill),
        "n_train": int(n_images - len(chosen)),
        "lowest_agreement_used": float(images.agreement[chosen].min()) if len(chosen) else None,
        "quota_met": bool(len(chosen) >= n_test_per_class),
    }


def _assemble_split(
    images: _LabelledImages, in_test: np.ndarray, per_emotion: dict[str, dict[str, Any]], params: dict[str, Any]
) -> MASSplit:
    """The :class:`MASSplit` (train = labelled images not in test-MAS; dropped = images without a label) and
    its report."""
    kept = images.labels >= 0
    train, test, dropped = np.flatnonzero(kept & ~in_test), np.flatnonzero(in_test), np.flatnonzero(~kept)
    drop_counts = {reason: int((images.reasons == code).sum()) for code, reason in _REASON_CODES.items()}
    report = {
        "params": params,
        "n_images": int(len(images.ids)),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "n_dropped": int(len(dropped)),
        "dropped": drop_counts,
        "per_emotion": per_emotion,
    }
    for name, row in per_emotion.items():
        logger.info("test-MAS %s: %s", name, row)
    if len(dropped):
        logger.info("MAS: %d images without a majority emotion left out: %s", len(dropped), drop_counts)
    ids, labels, agree, unanimous = images.ids, images.labels, images.agreement, images.unanimous
    return MASSplit(
        train_ids=ids[train].tolist(),
        test_ids=ids[test].tolist(),
        train_labels=labels[train],
        test_labels=labels[test],
        train_agreement=agree[train],
        test_agreement=agree[test],
        train_unanimous=unanimous[train],
        test_unanimous=unanimous[test],
        dropped_ids=ids[dropped].tolist(),
        dropped_reasons=[_REASON_CODES[int(code)] for code in images.reasons[dropped]],
        report=report,
    )


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
            raise ValueError(
                f"record {row} ({record.location}) has votes of shape {record_votes.shape}; expected (8,)"
            )
        votes[row] = as_counts(record_votes[None, :], f"votes of record {row} ({record.location})", "(8,)", 2)[0]
        non_emotion[row] = as_counts(
            [record.non_emotion_votes], f"non_emotion_votes of record {row} ({record.location})", "a count", 1
        )[0]
        ids.append(record.image_id)
    return votes, non_emotion, ids


def split_mas_records(records, **kwargs) -> MASSplit:
    """:func:`split_mas` on a list of FaceRecords (``votes``, ``non_emotion_votes``, ``image_id``)."""
    votes, non_emotion, ids = mas_arrays(records)
    return split_mas(votes, ids, non_emotion_votes=non_emotion, **kwargs)


def record_vote_distributions(records) -> np.ndarray:
    """(N, 8) :func:`~affectnetplus_hf.votes.vote_distributions` of FaceRecords; a record without an
    emotion vote is an error naming it."""
    records = list(records)
    shares = vote_distributions(mas_arrays(records)[0])
    missing = np.flatnonzero(np.isnan(shares).any(axis=1))
    if len(missing):
        location = records[int(missing[0])].location
        raise ValueError(f"{location}: no emotion vote; a vote distribution needs at least one")
    return shares


__all__ = [
    "DROP_NON_EMOTION",
    "DROP_NO_VOTES",
    "DROP_REASONS",
    "DROP_TIE",
    "REPORT_FILE",
    "SPLIT_COLUMNS",
    "SPLIT_FILE",
    "MASSplit",
    "image_keys",
    "mas_arrays",
    "record_vote_distributions",
    "split_mas",
    "split_mas_records",
]
