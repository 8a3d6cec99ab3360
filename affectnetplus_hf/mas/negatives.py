"""The one-vs-rest positive/negative selection of the binary soft-labelers (``docs/method.md#sampling``,
paper Sec. 3.2).

Positives of the binary model of an emotion are every train-MAS image of that emotion. Negatives:
``n_neg = round_half_up(neg_ratio × n_pos)``, of which ``round_half_up(uniform_fraction × n_neg)`` (20 %)
are drawn uniformly from all other emotions and the rest split across the other emotions in proportion to
their AU overlap with the emotion (:func:`~affectnetplus_hf.emotions.au_overlap`, paper Table 3).

Each **[choice]** — largest-remainder quotas, a capped quota redistributed to the other overlapping
emotions, the AU-proportional part drawn first, every other image used (with a :class:`SamplingWarning`)
when they are fewer than ``n_neg`` — is described in ``docs/method.md#sampling``. ``epoch`` [option
"re-draw negatives every epoch"] seeds the draw by ``(seed, emotion, epoch)``; ``epoch=None`` gives the
one fixed draw seeded by ``(seed, emotion)``.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, NUM_EMOTIONS, au_overlap
from affectnetplus_hf.votes import as_counts

logger = logging.getLogger(__name__)

#: Share of the negatives drawn uniformly from all other emotions (paper Sec. 3.2).
DEFAULT_UNIFORM_FRACTION = 0.2


class SamplingWarning(UserWarning):
    """A sampling quota could not be met (too few unanimous test images, exhausted negative pool, ...)."""


def _round_half_up(x: float) -> int:
    """``x`` rounded to the nearest integer, halves up (the paper's counts are never negative)."""
    return int(math.floor(x + 0.5))


def _check_emotion(emotion) -> int:
    """An emotion name or label-space index as the index; ``ValueError`` otherwise."""
    if isinstance(emotion, str):
        if emotion not in EMOTION_TO_INDEX:
            raise ValueError(f"emotion must be one of {EMOTIONS} or an index 0..{NUM_EMOTIONS - 1}, got {emotion!r}")
        return EMOTION_TO_INDEX[emotion]
    if isinstance(emotion, (bool, np.bool_)) or not isinstance(emotion, (int, np.integer)):
        raise ValueError(f"emotion must be an emotion name or an index 0..{NUM_EMOTIONS - 1}, got {emotion!r}")
    if not 0 <= int(emotion) < NUM_EMOTIONS:
        raise ValueError(f"emotion must be an index in 0..{NUM_EMOTIONS - 1}, got {emotion}")
    return int(emotion)


@dataclass(frozen=True)
class NegativeQuotas:
    """How the negatives of one binary model are drawn (``docs/method.md#sampling``).

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
            "emotion": EMOTIONS[self.emotion],
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "n_available": self.n_available,
            "n_uniform_requested": self.n_uniform_requested,
            "n_overlap_requested": self.n_overlap_requested,
            "weights": dict(zip(EMOTIONS, self.weights)),
            "overlap_quotas": dict(zip(EMOTIONS, self.overlap_quotas)),
            "n_uniform": self.n_uniform,
            "n_selected": self.n_selected,
            "shortfall": self.shortfall,
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


def capped_proportional(total: int, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Largest-remainder split of ``total`` by ``weights``, capped by ``capacity``, the excess
    redistributed over the uncapped shares until it fits (or no share can take more)."""
    quotas = np.zeros(len(weights), dtype=np.int64)
    active = (weights > 0) & (capacity > 0)
    remaining = total
    while remaining > 0 and active.any():
        trial = largest_remainder(remaining, np.where(active, weights, 0))
        over = active & (trial > capacity)
        if not over.any():
            quotas[active] = trial[active]
            break
        quotas[over] = capacity[over]
        remaining -= int(capacity[over].sum())
        active &= ~over
    return quotas


def _check_labels(labels) -> np.ndarray:
    try:
        array = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("labels must be label-space indices 0..7") from None
    if array.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {array.shape}")
    bad = ~np.isfinite(array) | (array != np.floor(array)) | (array < 0) | (array >= NUM_EMOTIONS)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"labels row {row} is {float(array[row])!r}; expected a label-space index 0..7 "
            f"(leave images without a majority label, -1, out first)"
        )
    return array.astype(np.int64)


def _check_neg_ratio(neg_ratio) -> float:
    if (
        isinstance(neg_ratio, (bool, np.bool_))
        or not isinstance(neg_ratio, (int, float, np.integer, np.floating))
        or not math.isfinite(float(neg_ratio))
        or float(neg_ratio) <= 0
    ):
        raise ValueError(f"neg_ratio must be a finite number > 0, got {neg_ratio!r}")
    return float(neg_ratio)


def _check_uniform_fraction(uniform_fraction) -> float:
    if (
        not isinstance(uniform_fraction, (int, float, np.integer, np.floating))
        or not 0.0 <= float(uniform_fraction) <= 1.0
    ):
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
    """The negative quotas of the binary model of ``emotion`` (``docs/method.md#sampling``), from
    per-emotion image counts.

    ``class_counts``: (8,) number of train-MAS images per emotion. ``overlap`` selects the AU overlap
    table (``"table2"`` [choice] / ``"paper"`` [option], ``docs/method.md#action-units``). See the module
    notes for the rounding and redistribution rules. Warns (:class:`SamplingWarning`) when the other
    emotions hold fewer than ``n_neg`` images.
    """
    e = _check_emotion(emotion)
    counts = as_counts(class_counts, "class_counts", "(8,)", 1)
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
    quotas = capped_proportional(n_overlap_requested, weights, capacity)
    n_selected_target = min(n_neg, n_available)
    n_uniform = n_selected_target - int(quotas.sum())
    if warn and n_neg > n_available:
        warnings.warn(
            f"negatives for {EMOTIONS[e]}: asked for {n_neg} (neg_ratio={ratio} x {n_pos} positives) but the "
            f"other emotions hold only {n_available} images; using all of them",
            SamplingWarning,
            stacklevel=2,
        )
    return NegativeQuotas(
        emotion=e,
        n_pos=n_pos,
        n_neg=n_neg,
        n_available=n_available,
        n_uniform_requested=n_uniform_requested,
        n_overlap_requested=n_overlap_requested,
        weights=tuple(int(w) for w in weights),
        overlap_quotas=tuple(int(q) for q in quotas),
        n_uniform=int(n_uniform),
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
    """Positive and negative row indices for the binary model of ``emotion`` (``docs/method.md#sampling``,
    paper Sec. 3.2).

    ``labels``: (N,) train-MAS labels (label-space indices 0..7). Positives are every row labelled
    ``emotion``; negatives follow :func:`negative_quotas`: first the AU-proportional part (per emotion,
    its quota drawn without replacement), then the uniform part drawn uniformly without replacement from
    all the other emotions' rows not yet taken. Seeded by ``(seed, emotion)``, or ``(seed, emotion,
    epoch)`` to re-draw the negatives every epoch [option]. Returns two sorted int64 index arrays.
    """
    labels = _check_labels(labels)
    e = _check_emotion(emotion)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0):
        raise ValueError(f"epoch must be None or an integer >= 0, got {epoch!r}")
    counts = np.bincount(labels, minlength=NUM_EMOTIONS)
    quotas = negative_quotas(counts, e, neg_ratio=neg_ratio, overlap=overlap, uniform_fraction=uniform_fraction)
    if quotas.n_pos == 0:
        warnings.warn(
            f"one-vs-rest {EMOTIONS[e]}: no positive image (no label {e} in labels)", SamplingWarning, stacklevel=2
        )
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


__all__ = [
    "DEFAULT_UNIFORM_FRACTION",
    "NegativeQuotas",
    "SamplingWarning",
    "all_negative_quotas",
    "capped_proportional",
    "largest_remainder",
    "negative_quotas",
    "select_one_vs_rest",
]
