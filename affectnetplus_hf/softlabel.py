"""The soft-label math of the AffectNet+ paper (Eqs. 3–14, ``docs/method.md#confidence-scores`` to
``docs/method.md#soft-label``), vectorised, no I/O. The subset rule lives in :mod:`affectnetplus_hf.subsets`
(re-exported here).

Every function takes and returns numpy arrays (torch tensors are converted with ``np.asarray``).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from affectnetplus_hf.arrays import as_float_array, check_probabilities
from affectnetplus_hf.emotions import EMOTIONS, NUM_ACTION_UNITS, NUM_EMOTIONS, au_vectors, aus_weights
from affectnetplus_hf.paper import NEUTRAL_SIMILARITY
from affectnetplus_hf.subsets import (  # noqa: F401  (re-exported: the math in one import)
    assign_subsets,
    hard_label_ranks,
)

ConfidenceMode = Literal["balanced", "eq3"]


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray, what: str) -> np.ndarray:
    zero = denominator == 0
    if np.any(zero):
        warnings.warn(f"confidence score: {what} has a zero denominator; that half contributes 0", stacklevel=3)
    return np.where(zero, 0.0, numerator / np.where(zero, 1, denominator))


def confidence_score(
    y_true,
    p_positive,
    mode: ConfidenceMode = "balanced",
    threshold: float = 0.5,
):
    """Confidence score CS of a binary classifier (paper Eq. 3, ``docs/method.md#confidence-scores``).

    ``y_true``: 0/1 ground truth (N,) or (N, K) for K classifiers at once; ``p_positive``: P(positive)
    of the same shape. The decision is ``p >= threshold``.
    ``mode="balanced"`` [choice]: ``½ (TP/(TP+FN) + TN/(TN+FP))``; ``mode="eq3"`` [option]: the printed
    ``½ (TP/(TP+FP) + TN/(TN+FN))``. A zero denominator contributes 0 to its half and warns.
    Returns a float for 1-D input, a (K,) array for 2-D input.
    """
    if mode not in ("balanced", "eq3"):
        raise ValueError(f"mode must be 'balanced' or 'eq3', got {mode!r}")
    truth = as_float_array(y_true, "y_true")
    probs = as_float_array(p_positive, "p_positive")
    if truth.shape != probs.shape:
        raise ValueError(f"y_true has shape {truth.shape} but p_positive has shape {probs.shape}; expected equal")
    if truth.ndim not in (1, 2):
        raise ValueError(f"y_true must be (N,) or (N, K), got shape {truth.shape}")
    not_binary = (truth != 0) & (truth != 1)
    if not_binary.any():
        index = tuple(int(i) for i in np.argwhere(not_binary)[0])
        raise ValueError(f"y_true must be 0 or 1, found {truth[index]!r} at index {index}")
    check_probabilities(probs, "p_positive")
    positive = truth == 1
    predicted = probs >= threshold
    tp = np.sum(positive & predicted, axis=0)
    tn = np.sum(~positive & ~predicted, axis=0)
    fp = np.sum(~positive & predicted, axis=0)
    fn = np.sum(positive & ~predicted, axis=0)
    if mode == "balanced":
        score = 0.5 * (_safe_ratio(tp, tp + fn, "TP/(TP+FN)") + _safe_ratio(tn, tn + fp, "TN/(TN+FP)"))
    else:
        score = 0.5 * (_safe_ratio(tp, tp + fp, "TP/(TP+FP)") + _safe_ratio(tn, tn + fn, "TN/(TN+FN)"))
    return float(score) if truth.ndim == 1 else np.asarray(score, dtype=np.float64)


def ebc_semantic_scores(probs, confidences) -> np.ndarray:
    """EBC semantic scores (Eqs. 4–5, ``docs/method.md#ebc-scores``): ``SC_EB(i) = Σ_j (1/J) CS_j(i) P_j(i | img)``.

    ``probs``: (J, N, 8) positive-class probabilities of the J backbones' binary classifiers;
    ``confidences``: (J, 8) their confidence scores. Returns (N, 8).
    """
    probs = as_float_array(probs, "probs", ndim=3, last_dim=NUM_EMOTIONS)
    confidences = as_float_array(confidences, "confidences", ndim=2, last_dim=NUM_EMOTIONS)
    if confidences.shape[0] != probs.shape[0]:
        raise ValueError(
            f"confidences has {confidences.shape[0]} backbones (shape {confidences.shape}) but probs has "
            f"{probs.shape[0]} (shape {probs.shape}); expected the same J"
        )
    check_probabilities(probs, "probs")
    check_probabilities(confidences, "confidences")
    return np.einsum("jnk,jk->nk", probs, confidences) / probs.shape[0]


def au_similarity_vector(au_probs, aus: str = "table2", neutral_similarity: float = NEUTRAL_SIMILARITY) -> np.ndarray:
    """Similarity vector SV (Eq. 9): ``SV_e = Σ_a AUS[a] AU_e[a] ÂU[a]``, ``SV_Neutral = neutral_similarity``.

    ``au_probs``: (N, 21) sigmoid outputs ÂU. Returns (N, 8).
    """
    au_probs = as_float_array(au_probs, "au_probs", ndim=2, last_dim=NUM_ACTION_UNITS)
    check_probabilities(au_probs, "au_probs")
    weighted = au_vectors().astype(np.float64) * aus_weights(aus)[None, :]  # (8, 21)
    similarity = au_probs @ weighted.T
    similarity[:, EMOTIONS.index("Neutral")] = neutral_similarity
    return similarity


def au_positive_probability(
    emotion: int | str,
    binary_probs,
    au_probs,
    aus: str = "table2",
    neutral_similarity: float = NEUTRAL_SIMILARITY,
) -> np.ndarray:
    """P_AU(i | img) of the AU classifier of ``emotion`` (Eqs. 9–12, ``docs/method.md#au-scores``).

    ``binary_probs``: (N,) P(positive) of the binary head (BPV = [p, 1 − p]); ``au_probs``: (N, 21).
    ``BSV = [SV_i, (1/7) Σ_{e≠i} SV_e]``, ``APV = softmax(BSV)``, ``P = ½ (BPV + APV)``; returns P[0], (N,).
    """
    index = EMOTIONS.index(emotion) if isinstance(emotion, str) else int(emotion)
    if not 0 <= index < NUM_EMOTIONS:
        raise ValueError(f"emotion must be a name in {EMOTIONS} or an index 0..7, got {emotion!r}")
    binary_probs = as_float_array(binary_probs, "binary_probs", ndim=1)
    check_probabilities(binary_probs, "binary_probs")
    similarity = au_similarity_vector(au_probs, aus=aus, neutral_similarity=neutral_similarity)
    if similarity.shape[0] != binary_probs.shape[0]:
        raise ValueError(
            f"binary_probs has {binary_probs.shape[0]} rows but au_probs has {similarity.shape[0]}; expected equal"
        )
    own = similarity[:, index]
    others = (similarity.sum(axis=1) - own) / (NUM_EMOTIONS - 1)
    # softmax([own, others])[0] = 1 / (1 + exp(others - own))
    apv_positive = 1.0 / (1.0 + np.exp(others - own))
    return 0.5 * (binary_probs + apv_positive)


def au_semantic_scores(positive_probs, confidences) -> np.ndarray:
    """AU semantic scores (Eq. 13, ``docs/method.md#au-scores``): ``SC_AU(i) = CS_AU(i) · P_AU(i | img)``.

    ``positive_probs``: (N, 8) P_AU of the 8 AU classifiers; ``confidences``: (8,). Returns (N, 8).
    """
    positive_probs = as_float_array(positive_probs, "positive_probs", ndim=2, last_dim=NUM_EMOTIONS)
    confidences = as_float_array(confidences, "confidences", ndim=1, last_dim=NUM_EMOTIONS)
    check_probabilities(positive_probs, "positive_probs")
    check_probabilities(confidences, "confidences")
    return positive_probs * confidences[None, :]


def soft_labels(ebc_scores=None, au_scores=None) -> np.ndarray:
    """Soft labels (Eq. 14, ``docs/method.md#soft-label``): ``sl_i = ½ (SC_EB(i) + SC_AU(i))``, (N, 8), not
    renormalised.

    With only one family given, that family's scores are the soft label (no halving).
    """
    if ebc_scores is None and au_scores is None:
        raise ValueError("soft_labels needs ebc_scores, au_scores or both; got neither")
    arrays = []
    for name, scores in (("ebc_scores", ebc_scores), ("au_scores", au_scores)):
        if scores is not None:
            array = as_float_array(scores, name, ndim=2, last_dim=NUM_EMOTIONS)
            check_probabilities(array, name)
            arrays.append(array)
    if len(arrays) == 2 and arrays[0].shape != arrays[1].shape:
        raise ValueError(f"ebc_scores has shape {arrays[0].shape} but au_scores has {arrays[1].shape}; expected equal")
    return sum(arrays) / len(arrays)
