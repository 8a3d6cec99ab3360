"""Checked numeric inputs: arrays of the expected shape, finite, and probabilities within [0, 1].

Every public function of the math modules (``softlabel``, ``subsets``) checks its inputs here, so a bad
input fails with a message naming the argument and the first offending index.
"""

from __future__ import annotations

import numpy as np


def as_float_array(value, name: str, ndim: int | None = None, last_dim: int | None = None) -> np.ndarray:
    """``value`` as a float64 array, checked: ``ndim`` dimensions, ``last_dim`` entries in the last axis,
    not empty, every value finite; errors name ``name`` and the index."""
    array = np.asarray(value, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if last_dim is not None and (array.ndim == 0 or array.shape[-1] != last_dim):
        raise ValueError(f"{name} must have {last_dim} entries in its last axis, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds a non-finite value (NaN or inf) at index {index}")
    return array


def check_probabilities(array: np.ndarray, name: str) -> None:
    """Raise naming ``name`` and the index when a value lies outside [0, 1]."""
    outside = (array < 0) | (array > 1)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(f"{name} must lie in [0, 1], found {array[index]!r} at index {index}")


__all__ = ["as_float_array", "check_probabilities"]
