"""The subsets of paper Sec. 3.5.1 (``docs/method.md#subsets``): how far a face's hard label is from the
top of its soft label.

With hard label *h*, ``rank = 1 + #{e : sl_e > sl_h}`` (ties favour the hard label): rank 1 is *easy*,
2–3 *challenging*, 4 and beyond *difficult*.
"""

from __future__ import annotations

import numpy as np

from affectnetplus_hf.arrays import as_float_array
from affectnetplus_hf.emotions import NUM_EMOTIONS, SUBSETS


def _check_hard_labels(hard_labels, n_rows: int) -> np.ndarray:
    labels = np.asarray(hard_labels)
    if labels.ndim != 1:
        raise ValueError(f"hard_labels must be 1-D, got shape {labels.shape}")
    if labels.shape[0] != n_rows:
        raise ValueError(
            f"hard_labels has {labels.shape[0]} entries but soft_labels has {n_rows} rows; expected equal"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"hard_labels must be integers 0..7, got dtype {labels.dtype}")
    outside = (labels < 0) | (labels >= NUM_EMOTIONS)
    if outside.any():
        index = int(np.argmax(outside))
        raise ValueError(f"hard_labels must be in 0..7, found {int(labels[index])} at index {index}")
    return labels.astype(np.int64)


def hard_label_ranks(soft_labels, hard_labels) -> np.ndarray:
    """Rank of the hard label in each soft label (``docs/method.md#subsets``): ``1 + #{e : sl_e > sl_h}``
    (ties favour h)."""
    scores = as_float_array(soft_labels, "soft_labels", ndim=2, last_dim=NUM_EMOTIONS)
    labels = _check_hard_labels(hard_labels, scores.shape[0])
    own = scores[np.arange(scores.shape[0]), labels]
    return 1 + np.sum(scores > own[:, None], axis=1)


def assign_subsets(soft_labels, hard_labels) -> np.ndarray:
    """Subset of each image (``docs/method.md#subsets``): rank 1 → easy, 2–3 → challenging, else difficult.

    Returns an array of subset names (``SUBSETS``), shape (N,).
    """
    ranks = hard_label_ranks(soft_labels, hard_labels)
    index = np.where(ranks == 1, 0, np.where(ranks <= 3, 1, 2))
    return np.asarray(SUBSETS, dtype=object)[index].astype(str)


__all__ = ["assign_subsets", "hard_label_ranks"]
