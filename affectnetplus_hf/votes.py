"""Crowd votes: the majority-vote rule, vote distributions and agreement (``docs/method.md#mas-split``).

``votes`` are (N, 8) annotator counts in label-space order (``docs/method.md#label-space``) and
``non_emotion_votes`` (N,) the votes for nothing (None/Uncertain/Non-Face, FER+ unknown/NF). The readers
(``sources``) give each record its majority label with :func:`hard_label_from_votes`; the MAS split and the
distribution family use the array forms. One rule everywhere:

* an image keeps an emotion only when its top emotion count is **strictly** greater than its
  non-emotion votes (a tie with "nothing" is left out under every tie mode); an image without an
  emotion vote is left out;
* ties *between emotions* follow ``tie``: ``"drop"`` (default) leaves the image out, ``"first"`` takes
  the tied emotion the source lists first (or the image's ``preferred`` one), ``"random"`` draws one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS

TieMode = Literal["drop", "first", "random"]
TIE_MODES: tuple[str, ...] = ("drop", "first", "random")


def as_counts(value, name: str, shape_hint: str, ndim: int) -> np.ndarray:
    """Whole, non-negative, finite counts as int64; errors name the row."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric counts of shape {shape_hint}: {error}") from None
    if array.ndim != ndim or (ndim == 2 and array.shape[1] != NUM_EMOTIONS):
        raise ValueError(f"{name} must have shape {shape_hint}, got {array.shape}")
    checks = (
        (~np.isfinite(array), "a non-finite value (NaN or inf)"),
        (array < 0, "a negative count"),
        (array != np.floor(array), "a non-whole count"),
    )
    for bad, what in checks:
        if bad.any():
            where = np.argwhere(bad)[0]
            row = int(where[0])
            detail = f"row {row}" + (f", column {int(where[1])} ({EMOTIONS[int(where[1])]})" if ndim == 2 else "")
            value = float(array[tuple(where)])
            raise ValueError(f"{name} holds {what} at {detail}: {value!r}; expected whole counts >= 0")
    return array.astype(np.int64)


def check_votes(votes, non_emotion_votes) -> tuple[np.ndarray, np.ndarray]:
    """``(votes (N, 8), non-emotion votes (N,))`` as int64 counts; zeros when ``non_emotion_votes`` is None."""
    votes = as_counts(votes, "votes", "(N, 8) in label-space order", 2)
    if non_emotion_votes is None:
        non_emotion = np.zeros(len(votes), dtype=np.int64)
    else:
        non_emotion = as_counts(non_emotion_votes, "non_emotion_votes", "(N,)", 1)
        if len(non_emotion) != len(votes):
            raise ValueError(
                f"non_emotion_votes has {len(non_emotion)} entries but votes has {len(votes)} rows; expected equal"
            )
    return votes, non_emotion


def check_tie(tie: str) -> None:
    """Raise unless ``tie`` is one of :data:`TIE_MODES`."""
    if tie not in TIE_MODES:
        raise ValueError(f"tie must be one of {TIE_MODES}, got {tie!r}")


def check_source_order(source_order) -> np.ndarray:
    """The label-space indices in the source's column order (default: label-space order), checked."""
    if source_order is None:
        return np.arange(NUM_EMOTIONS)
    order = np.asarray(source_order)
    if order.shape != (NUM_EMOTIONS,) or sorted(order.tolist()) != list(range(NUM_EMOTIONS)):
        raise ValueError(
            f"source_order must be a permutation of the label-space indices 0..{NUM_EMOTIONS - 1} "
            "listing the emotions "
            f"in the source's order (e.g. emotions.FERPLUS_TO_INDEX), got {source_order!r}"
        )
    return order.astype(np.int64)


def check_preferred(preferred, n: int) -> np.ndarray | None:
    """The (N,) label-space index that wins a tie under ``tie="first"`` (-1: none), checked."""
    if preferred is None:
        return None
    array = np.asarray(preferred)
    if array.shape != (n,):
        raise ValueError(
            f"preferred must have shape ({n},) (one label-space index or -1 per image), got {array.shape}"
        )
    try:
        ints = array.astype(np.int64)
    except (TypeError, ValueError):
        raise ValueError("preferred must hold integer label-space indices (or -1 for none)") from None
    bad = (ints != array) | (ints < -1) | (ints >= NUM_EMOTIONS)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"preferred row {row} is {array[row].item()!r}; expected a label-space index 0..7 or -1 for none"
        )
    return ints


def majority_with_reasons(
    votes: np.ndarray,
    non_emotion: np.ndarray,
    tie: str,
    tie_keys: np.ndarray | None,
    source_order: np.ndarray,
    preferred: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) with -1 where dropped, and reason codes (0 kept, 1 tie, 2 non-emotion, 3 no votes)."""
    n = len(votes)
    top = votes.max(axis=1) if n else np.zeros(0, dtype=np.int64)
    tied = votes == top[:, None]
    n_tied = tied.sum(axis=1)
    reasons = np.zeros(n, dtype=np.int64)
    reasons[(n_tied > 1)] = 1
    reasons[non_emotion >= top] = 2
    reasons[top == 0] = 3
    if tie != "drop":
        reasons[reasons == 1] = 0

    # Rank of each emotion in the choice: the lower, the better.
    if tie == "random":
        rank = -tie_keys  # the largest key wins
    else:
        position = np.empty(NUM_EMOTIONS, dtype=np.float64)
        position[source_order] = np.arange(NUM_EMOTIONS)
        rank = np.broadcast_to(position, votes.shape).copy()
        if tie == "first" and preferred is not None:
            has = preferred >= 0
            rank[np.flatnonzero(has), preferred[has]] = -1.0
    labels = np.where(tied, rank, np.inf).argmin(axis=1) if n else np.zeros(0, dtype=np.int64)
    labels = np.where(reasons == 0, labels, -1).astype(np.int64)
    return labels, reasons


def vote_distributions(votes) -> np.ndarray:
    """Each emotion's share of an image's emotion votes, (N, 8) float32 ([choice]: the fraction of
    annotators, as FER+ reports its distributions; non-emotion votes left out); ``NaN`` rows for images
    without an emotion vote. The reference of ``docs/method.md#quality-against-people`` and the target
    of ``docs/method.md#distribution-family``."""
    votes = np.asarray(votes, dtype=np.float64)
    totals = votes.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, votes / totals, np.nan).astype(np.float32)


def split_panels(votes, non_emotion_votes=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split each image's annotators at random into two panels of half the votes each (the first gets
    ``total // 2``): a seeded multivariate hypergeometric draw of the vote counts, non-emotion votes
    included (``docs/method.md#quality-against-people``). Returns the two panels' (N, 8) emotion counts."""
    votes, non_emotion = check_votes(votes, non_emotion_votes)
    counts = np.concatenate([votes, non_emotion[:, None]], axis=1)
    rng = np.random.default_rng(seed)
    first = np.zeros_like(counts)
    for row, image_counts in enumerate(counts):
        first[row] = rng.multivariate_hypergeometric(image_counts, int(image_counts.sum()) // 2)
    return first[:, :NUM_EMOTIONS], (counts - first)[:, :NUM_EMOTIONS]


def majority_labels(
    votes,
    non_emotion_votes=None,
    tie: TieMode = "drop",
    seed: int = 0,
    source_order: Sequence[int] | None = None,
    preferred=None,
) -> np.ndarray:
    """Majority-vote label of each image, an (N,) int64 array, -1 where the image is left out.

    Args:
        votes: (N, 8) annotator counts in label-space order.
        non_emotion_votes: (N,) votes for nothing (None/Uncertain/Non-Face, FER+ unknown/NF), or ``None``.
        tie: ``"drop"`` [choice] leaves tied images out; ``"first"`` [option] takes the tied emotion the
            source lists first; ``"random"`` [option] draws one (seeded by ``seed``; one draw per row, so
            the result depends on row order — :func:`split_mas` uses per-image keys instead).
        source_order: the label-space indices in the source's order, e.g. ``emotions.FERPLUS_TO_INDEX`` for
            FER+ column order; default label-space order.
        preferred: (N,) label-space index per image that wins a tie it takes part in under ``tie="first"`` (the
            paper's "query keyword" rule), -1 for none.

    An image is left out (-1) when it has no emotion vote, when its non-emotion votes are at least its
    top emotion count ([choice]: a tie with "nothing" is left out under every tie mode), or when emotions
    tie under ``tie="drop"``.
    """
    check_tie(tie)
    votes, non_emotion = check_votes(votes, non_emotion_votes)
    order = check_source_order(source_order)
    preferred = check_preferred(preferred, len(votes))
    keys = np.random.default_rng(seed).random(votes.shape) if tie == "random" else None
    return majority_with_reasons(votes, non_emotion, tie, keys, order, preferred)[0]


def agreement(votes, non_emotion_votes=None) -> np.ndarray:
    """Share of an image's votes that went to its majority emotion, (N,) float64 in [0, 1].

    Non-emotion votes count in the denominator. An image without any vote has agreement 0.
    """
    votes, non_emotion = check_votes(votes, non_emotion_votes)
    total = votes.sum(axis=1) + non_emotion
    top = votes.max(axis=1) if len(votes) else np.zeros(0, dtype=np.int64)
    return np.where(total > 0, top / np.maximum(total, 1), 0.0)


def is_unanimous(votes, non_emotion_votes=None, min_annotators: int = 2) -> np.ndarray:
    """(N,) bool: at least ``min_annotators`` votes, no non-emotion vote, and all votes on one emotion."""
    votes, non_emotion = check_votes(votes, non_emotion_votes)
    total = votes.sum(axis=1)
    top = votes.max(axis=1) if len(votes) else np.zeros(0, dtype=np.int64)
    return (total >= min_annotators) & (non_emotion == 0) & (top == total)


def hard_label_from_votes(votes, non_emotion_votes: int = 0) -> int | None:
    """Majority label of one image's (8,) vote vector under the ``tie="drop"`` rule of
    :func:`majority_labels`; ``None`` when the image has no majority emotion."""
    votes = np.asarray(votes)
    if votes.shape != (NUM_EMOTIONS,):
        raise ValueError(f"votes must have shape ({NUM_EMOTIONS},), got {votes.shape}")
    label = int(majority_labels(votes[None, :], [non_emotion_votes], tie="drop")[0])
    return None if label < 0 else label


__all__ = [
    "TIE_MODES",
    "TieMode",
    "agreement",
    "as_counts",
    "check_preferred",
    "check_source_order",
    "check_tie",
    "check_votes",
    "hard_label_from_votes",
    "is_unanimous",
    "majority_labels",
    "majority_with_reasons",
    "split_panels",
    "vote_distributions",
]
