"""The label space (``docs/method.md#label-space``), the action-unit tables (``docs/method.md#action-units``,
paper Table 2, Eqs. 6–8, Table 3) and the maps from the sources' codes and columns to label-space indices.

Also the other fixed vocabularies of the dataset: the subsets (``docs/method.md#subsets``) and the
metadata values (``docs/method.md#metadata``). The paper's hyper-parameters and reported figures live in
:mod:`affectnetplus_hf.paper` (also importable from here).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: The 8 emotions in label-space order (index = position).
EMOTIONS: tuple[str, ...] = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
NUM_EMOTIONS = len(EMOTIONS)
EMOTION_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

#: The 21 action units in the order of Eq. 6.
ACTION_UNITS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 20, 22, 23, 24, 25, 26, 27)
NUM_ACTION_UNITS = len(ACTION_UNITS)

#: Paper Table 2: the AUs of each emotion (EMFACS).
EMOTION_AUS: dict[str, tuple[int, ...]] = {
    "Neutral": (),
    "Happy": (6, 12, 25),
    "Sad": (1, 4, 6, 11, 15, 17),
    "Surprise": (1, 2, 5, 26, 27),
    "Fear": (1, 2, 4, 5, 20, 25, 26, 27),
    "Disgust": (9, 10, 16, 17, 25, 27),
    "Anger": (4, 5, 7, 10, 17, 22, 23, 24, 25, 26),
    "Contempt": (12, 14),
}

#: Eq. 8 as printed in the paper ([option] ``aus="paper"``, ``docs/method.md#action-units``).
PAPER_AUS: tuple[float, ...] = (
    0.33,
    0.5,
    0.33,
    0.33,
    0.5,
    1.0,
    1.0,
    0.5,
    1.0,
    0.5,
    1.0,
    1.0,
    1.0,
    0.33,
    1.0,
    1.0,
    1.0,
    1.0,
    0.25,
    0.25,
    0.5,
)
#: The one printed Table 3 entry that differs from Table 2 ([option] ``overlap="paper"``): Disgust–Anger = 4.
PAPER_OVERLAP_OVERRIDES: dict[tuple[str, str], int] = {("Disgust", "Anger"): 4}

#: AffectNet ``expression`` codes. Codes 0–7 map to the same index.
AFFECTNET_CODE_TO_INDEX: dict[int, int] = {code: code for code in range(8)}
AFFECTNET_NON_EMOTION_CODES: dict[int, str] = {8: "None", 9: "Uncertain", 10: "Non-Face"}
AFFECTNET_MAX_CODE = 10
#: AffectNet writes -2 for "valence/arousal not annotated": stored as null.
AFFECTNET_VA_MISSING = -2.0

#: FER+ vote columns, in the order of ``fer2013new.csv`` / ``label.csv``.
FERPLUS_EMOTION_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
FERPLUS_NON_EMOTION_COLUMNS: tuple[str, ...] = ("unknown", "NF")
#: FER+ column position -> label-space index.
FERPLUS_TO_INDEX: tuple[int, ...] = tuple(
    EMOTION_TO_INDEX[name] for name in ("Neutral", "Happy", "Surprise", "Sad", "Anger", "Disgust", "Fear", "Contempt")
)

#: The subsets (``docs/method.md#subsets``), in rank order.
SUBSETS: tuple[str, ...] = ("easy", "challenging", "difficult")

#: Metadata vocabularies (``docs/method.md#metadata``).
GENDERS: tuple[str, ...] = ("Man", "Woman")
ETHNICITIES: tuple[str, ...] = ("Asian", "Indian", "Black", "White", "Middle-Eastern", "Hispanic")
AGE_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 15), (16, 32), (33, 53), (54, None))

Source = Literal["table2", "paper"]


def _check_source(source: str, argument: str) -> None:
    if source not in ("table2", "paper"):
        raise ValueError(f"{argument} must be 'table2' or 'paper', got {source!r}")


def au_vectors() -> np.ndarray:
    """AU_e of Eq. 6 for every emotion: an (8, 21) float32 0/1 matrix, the Neutral row all zeros."""
    vectors = np.zeros((NUM_EMOTIONS, NUM_ACTION_UNITS), dtype=np.float32)
    for e, name in enumerate(EMOTIONS):
        for au in EMOTION_AUS[name]:
            vectors[e, ACTION_UNITS.index(au)] = 1.0
    return vectors


def aus_weights(source: Source = "table2") -> np.ndarray:
    """The AU score vector AUS (Eq. 8), shape (21,), float64.

    ``"table2"`` [choice, ``docs/method.md#action-units``]: ``1 / #non-neutral emotions using the AU`` —
    differs from the printed vector at AU26 (1/3 vs 0.25) and AU27 (1/3 vs 0.5). ``"paper"``: the vector
    printed as Eq. 8.
    """
    _check_source(source, "aus")
    if source == "paper":
        return np.asarray(PAPER_AUS, dtype=np.float64)
    counts = au_vectors().astype(np.float64).sum(axis=0)
    return 1.0 / counts


def au_overlap(source: Source = "table2") -> np.ndarray:
    """Number of AUs shared by each pair of emotions (Table 3), an (8, 8) int matrix.

    ``"table2"`` [choice]: derived from Table 2 (Disgust–Anger = 3); ``"paper"``: printed Table 3
    (Disgust–Anger = 4). The diagonal holds each emotion's own AU count.
    """
    _check_source(source, "overlap")
    vectors = au_vectors().astype(np.int64)
    overlap = vectors @ vectors.T
    if source == "paper":
        for (a, b), value in PAPER_OVERLAP_OVERRIDES.items():
            i, j = EMOTION_TO_INDEX[a], EMOTION_TO_INDEX[b]
            overlap[i, j] = overlap[j, i] = value
    return overlap


def affectnet_code_to_index(code: int) -> int | None:
    """Map an AffectNet ``expression`` code (0–10) to a label-space index, ``None`` for codes 8–10."""
    code = int(code)
    if code in AFFECTNET_CODE_TO_INDEX:
        return AFFECTNET_CODE_TO_INDEX[code]
    if code in AFFECTNET_NON_EMOTION_CODES:
        return None
    raise ValueError(f"AffectNet expression code must be in 0..{AFFECTNET_MAX_CODE}, got {code}")


def ferplus_votes_to_spec(votes: np.ndarray) -> np.ndarray:
    """Reorder FER+ vote counts (..., 8 in FER+ column order) into label-space order."""
    votes = np.asarray(votes)
    if votes.shape[-1] != len(FERPLUS_EMOTION_COLUMNS):
        raise ValueError(f"FER+ votes must have 8 emotion columns in the last axis, got shape {votes.shape}")
    out = np.zeros_like(votes)
    out[..., list(FERPLUS_TO_INDEX)] = votes
    return out


def spec_votes_to_ferplus(votes: np.ndarray) -> np.ndarray:
    """Reorder per-emotion values (..., 8 in :data:`EMOTIONS` order) into FER+ column order (the inverse
    of :func:`ferplus_votes_to_spec`)."""
    votes = np.asarray(votes)
    if votes.shape[-1] != NUM_EMOTIONS:
        raise ValueError(f"votes must have {NUM_EMOTIONS} emotion columns in the last axis, got shape {votes.shape}")
    return votes[..., list(FERPLUS_TO_INDEX)].copy()
