"""Simulated annotators of the synthetic sample.

Each annotator votes from the ground-truth soft label, or, at their own error rate, from a confusion
model that favours emotions sharing AUs with the face's largest emotion (AU overlap, paper Table 3) and
Neutral (:func:`simulate_votes`). The multi-annotated part stores every annotator's vote, the AffectNet
part one annotator's vote as the hard label; :func:`draw_valence_arousal` gives the AffectNet part's
valence and arousal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, NUM_EMOTIONS, au_overlap
from affectnetplus_hf.synthetic.expressions import EMOTION_VALENCE_AROUSAL


def confusion_matrix(neutral_weight: float = 1.0, base: float = 0.3) -> np.ndarray:
    """(8, 8) row-stochastic confusion of a mistaken annotator, zero on the diagonal.

    Row e favours emotions sharing AUs with e (AU overlap derived from paper Table 2), plus Neutral
    (``neutral_weight``) and a ``base`` floor for every other emotion. Neutral's row is uniform.
    """
    overlap = au_overlap("table2").astype(np.float64)
    confusion = overlap + base
    neutral = EMOTION_TO_INDEX["Neutral"]
    confusion[:, neutral] += neutral_weight
    confusion[neutral, :] = 1.0
    np.fill_diagonal(confusion, 0.0)
    return confusion / confusion.sum(axis=1, keepdims=True)


@dataclass
class AnnotatorPool:
    """Simulated annotators: ``names[j]`` errs (votes from the confusion row) with rate ``error_rates[j]``."""

    names: list[str]
    error_rates: np.ndarray

    @classmethod
    def create(cls, n: int, seed: int, low: float = 0.05, high: float = 0.2) -> AnnotatorPool:
        if n < 1:
            raise ValueError(f"the annotator pool needs at least 1 annotator, got {n}")
        rng = np.random.default_rng([seed, 7919])
        return cls([f"A{j:02d}" for j in range(n)], rng.uniform(low, high, size=n))


def vote_distribution(soft_label: np.ndarray, error_rate: float, confusion: np.ndarray) -> np.ndarray:
    """Probability of each vote: the ground-truth soft label with prob. ``1 - error_rate``, else the
    confusion row of its largest emotion.

    The soft label already gives a weak expression its Neutral share
    (:func:`~affectnetplus_hf.synthetic.expressions.soft_label_of`), so weak faces draw more Neutral votes
    without a separate intensity term.
    """
    primary = int(np.argmax(soft_label))
    probabilities = (1.0 - error_rate) * soft_label + error_rate * confusion[primary]
    return probabilities / probabilities.sum()


def simulate_votes(
    rng: np.random.Generator,
    soft_label: np.ndarray,
    pool: AnnotatorPool,
    n_annotators: int,
    confusion: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], list[int]]:
    """Votes of ``n_annotators`` distinct annotators drawn from ``pool``.

    Returns ``(votes (8,) int64, annotator names, their labels)``.
    """
    if n_annotators > len(pool.names):
        raise ValueError(f"n_annotators={n_annotators} exceeds the annotator pool ({len(pool.names)})")
    confusion = confusion_matrix() if confusion is None else confusion
    chosen = sorted(rng.choice(len(pool.names), size=n_annotators, replace=False).tolist())
    labels = []
    for j in chosen:
        probabilities = vote_distribution(soft_label, float(pool.error_rates[j]), confusion)
        labels.append(int(rng.choice(NUM_EMOTIONS, p=probabilities)))
    votes = np.bincount(labels, minlength=NUM_EMOTIONS).astype(np.int64)
    return votes, [pool.names[j] for j in chosen], labels


def draw_valence_arousal(
    rng: np.random.Generator,
    soft_label: np.ndarray,
    intensity: float,
    missing_fraction: float = 0.0,
) -> tuple[float | None, float | None]:
    """Blend-weighted per-emotion (valence, arousal) times intensity, plus N(0, 0.1) noise, in [-1, 1].

    With probability ``missing_fraction`` both are ``None`` (written as AffectNet's -2).
    """
    typical = np.array([EMOTION_VALENCE_AROUSAL[name] for name in EMOTIONS])
    mean = (soft_label[:, None] * typical).sum(axis=0) * min(1.0, intensity)
    value = np.clip(mean + rng.normal(0.0, 0.1, size=2), -1.0, 1.0)
    if rng.random() < missing_fraction:
        return None, None
    return float(value[0]), float(value[1])


__all__ = ["AnnotatorPool", "confusion_matrix", "draw_valence_arousal", "simulate_votes", "vote_distribution"]
