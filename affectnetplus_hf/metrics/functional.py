"""Soft-label and hard-label metrics as plain, vectorised numpy functions (paper Sec. 4.3, Eq. 15;
`docs/method.md#metrics`).

Soft-label metrics compare ground-truth soft labels ``SL_k`` (``references``, shape ``(N, 8)``, columns in
label-space order, `docs/method.md#label-space`) with predictions ``ŜL_k`` (``predictions``, same shape): the
per-sample weighted error ``e_k`` of :func:`weighted_errors` (weights ``1 / rank`` of the **ground truth**;
options ``ties`` and ``normalize``) reduced to W-MAE, W-FR and W-AUC, all in percent. Hard-label metrics
(paper Tables 8/9): accuracy, average accuracy, per-class precision / recall / F1 (percent) and the confusion
matrix (counts).

Every metric accepts ``by=``: one group key per sample; the result is then one value (or one row) per
group, in a dict that JSON and :class:`MetricTable` (Markdown) write directly. Bad input raises
``ValueError`` naming the argument, what was found (shape, row index, value) and what was expected
(:func:`check_soft_labels` is the one check of a soft-label array). Nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.paper import PAPER_W_EPSILON
from affectnetplus_hf.votes import split_panels, vote_distributions

__all__ = [
    "DEFAULT_EPSILON",
    "MetricTable",
    "accuracy",
    "average_accuracy",
    "ced_auc",
    "ced_curve",
    "check_n_classes",
    "check_soft_label_options",
    "check_soft_labels",
    "confusion_matrix",
    "crowd_agreement",
    "second_panel_check",
    "failure_rate",
    "ground_truth_weights",
    "hard_label_metrics",
    "mean_error",
    "normalize_rows",
    "precision_recall_f1",
    "soft_label_metrics",
    "validate_soft_labels",
    "w_auc",
    "w_fr",
    "w_mae",
    "weighted_error_single",
    "weighted_errors",
]

#: The W-FR / W-AUC threshold ε of paper Sec. 4.3 ("ε = 0.3").
DEFAULT_EPSILON = PAPER_W_EPSILON

Ties = Literal["ordinal", "average"]
_TIES: tuple[str, ...] = ("ordinal", "average")
#: Rows per block in :func:`weighted_errors` (keeps the working set in cache; results do not depend on it).
_BLOCK_ROWS = 16384


# --------------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------------
def _format_rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _check_ties(ties: Any) -> str:
    if not isinstance(ties, str) or ties not in _TIES:
        raise ValueError(f"ties must be one of {_TIES}, got {ties!r}")
    return ties


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_epsilon(epsilon: Any, *, allow_zero: bool) -> float:
    if isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise ValueError(f"epsilon must be a number, got {epsilon!r}")
    value = float(epsilon)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"epsilon must be a finite number {expected}, got {epsilon!r}")
    return value


def check_soft_label_options(
    *, normalize: Any = True, ties: Any = "ordinal", epsilon: Any = DEFAULT_EPSILON, clip: Any = False
) -> dict[str, Any]:
    """The options of :func:`w_mae`, :func:`w_fr` and :func:`w_auc`, checked and normalised.

    Returns ``{"normalize", "ties", "epsilon", "clip"}``; raises ``ValueError`` naming a bad option
    (``epsilon`` may be 0 here: W-FR accepts it, W-AUC refuses it when called).
    """
    return {
        "normalize": _check_bool(normalize, "normalize"),
        "ties": _check_ties(ties),
        "epsilon": _check_epsilon(epsilon, allow_zero=True),
        "clip": _check_bool(clip, "clip"),
    }


def check_n_classes(n_classes: Any) -> int:
    """``n_classes`` as an ``int``; ``ValueError`` unless it is a positive integer (``True`` is not one)."""
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _as_soft_label_array(value: Any, name: str, n_classes: int, n_rows: int | None = None) -> np.ndarray:
    """``value`` as a float32/float64 ``(N, n_classes)`` array, ``N = n_rows`` when given (float32 stays
    float32; other input -> float64)."""
    if isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float64):
        array = value
    else:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must be a numeric array of shape (N, {n_classes}) (rows of {n_classes} soft-label "
                f"values), could not convert it: {error}"
            ) from None
    if array.ndim != 2 or (n_rows is not None and array.shape != (n_rows, n_classes)):
        raise ValueError(
            f"{name} must have shape ({'N' if n_rows is None else n_rows}, {n_classes}) (one row of {n_classes} "
            f"emotion scores per sample), got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); at least one sample is needed")
    if array.shape[1] != n_classes:
        raise ValueError(
            f"{name} must have {n_classes} columns (one per emotion, label-space order), got shape {array.shape}"
        )
    return array


def _check_unit_interval(
    array: np.ndarray, name: str, clip: bool, row_names: Sequence[Any] | None = None, clip_hint: bool = True
) -> np.ndarray:
    """``array`` when every value is finite and in [0, 1]; clipped to [0, 1] with ``clip`` (NaN/inf always
    raise). A refusal names the rows, the first one's values and, with ``row_names``, its name."""
    low, high = array.min(), array.max()  # NaN propagates, so one pass finds every problem
    if low >= 0 and high <= 1:
        return array
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        problem, expected = "NaN or infinite values", "finite values in [0, 1]"
    elif clip:
        return np.clip(array, 0.0, 1.0)
    else:
        rows = np.flatnonzero(((array < 0) | (array > 1)).any(axis=1))
        problem, expected = "values outside [0, 1]", "soft-label scores in [0, 1]"
        expected += " (pass clip=True to clip them)" if clip_hint else ""
    row = int(rows[0])
    named = "" if row_names is None else f", image {row_names[row]!r}"
    raise ValueError(
        f"{name} has {problem} at {_format_rows(rows)} (row {row}{named}: {array[row].tolist()}); expected {expected}"
    )


def check_soft_labels(
    values: Any,
    name: str = "soft_labels",
    *,
    n_rows: int | None = None,
    n_classes: int = NUM_EMOTIONS,
    clip: bool = False,
    row_names: Sequence[Any] | None = None,
    clip_hint: bool = True,
) -> np.ndarray:
    """``values`` checked as soft labels: a ``(N, n_classes)`` array (``N = n_rows`` when given, else N >= 1)
    of finite values in [0, 1]; ``clip=True`` clips values outside [0, 1] instead (NaN/inf always raise).

    float32 input stays float32, anything else becomes float64. The ``ValueError`` names ``name``, the rows
    and the first bad row's values — and its image, ``row_names[row]``, when given; ``clip_hint=False``
    leaves out the "pass clip=True" advice where the caller has no such option.
    """
    array = _as_soft_label_array(values, name, check_n_classes(n_classes), n_rows)
    return _check_unit_interval(array, name, _check_bool(clip, "clip"), row_names, clip_hint)


def validate_soft_labels(
    references: Any,
    predictions: Any,
    *,
    clip: bool = False,
    n_classes: int = NUM_EMOTIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a pair of soft-label arrays; returns ``(references, predictions)``.

    Both must be ``(N, n_classes)``, N ≥ 1, the same shape, finite, and in [0, 1] (``clip=True`` clips
    values outside [0, 1] instead of raising; NaN/inf always raise). float32 input stays float32 (the
    metrics are exact enough in float32 and twice as fast); anything else becomes float64. If the two
    dtypes differ, both become float64.
    """
    n_classes = check_n_classes(n_classes)
    clip = _check_bool(clip, "clip")
    refs = _as_soft_label_array(references, "references", n_classes)
    preds = _as_soft_label_array(predictions, "predictions", n_classes)
    if refs.shape != preds.shape:
        raise ValueError(
            f"references and predictions must have the same shape, got references {refs.shape} and "
            f"predictions {preds.shape}"
        )
    if refs.dtype != preds.dtype:
        refs, preds = refs.astype(np.float64), preds.astype(np.float64)
    return _check_unit_interval(refs, "references", clip), _check_unit_interval(preds, "predictions", clip)


# --------------------------------------------------------------------------------------------------
# per-sample weighted error (Eq. 15)
# --------------------------------------------------------------------------------------------------
def _block_ranks(block_t: np.ndarray, ties: str) -> np.ndarray:
    """Ranks of a transposed block ``(C, B)``: ordinal ranks (int8, 1..C), or twice the average ranks (int8, 2..2C).

    Pairwise counting, no sort: for emotions i < j, ordinal ranks put j below i when ``x_i >= x_j``
    (ties go to the lower index) and i below j otherwise, so
    ``rank_k = 1 + #{j > k : x_j > x_k} + #{i < k : x_i >= x_k}``. Average ranks count a tie as half a
    place: ``2·rank_k = 2 + 2·#{j : x_j > x_k} + #{j ≠ k : x_j = x_k} = (C + 1) + Σ_{j≠k} sign(x_j − x_k)``.
    One comparison of emotion i against all later emotions per step: C − 1 steps on contiguous rows.
    """
    n_classes = block_t.shape[0]
    if ties == "ordinal":
        # start from 1 + #{j > k} (every later emotion below k), then move one place per later emotion above k
        ranks = np.empty(block_t.shape, dtype=np.int8)
        ranks[:] = (n_classes - np.arange(n_classes, dtype=np.int8))[:, None]
        for i in range(n_classes - 1):
            i_first = block_t[i] >= block_t[i + 1 :]  # (C-1-i, B): emotion i ranks above emotion j
            ranks[i + 1 :] += i_first
            ranks[i] -= i_first.sum(axis=0, dtype=np.int8)
        return ranks
    doubled = np.full(block_t.shape, n_classes + 1, dtype=np.int8)
    for i in range(n_classes - 1):
        later, current = block_t[i + 1 :], block_t[i]
        sign = (later > current).view(np.int8) - (later < current).view(np.int8)  # sign(x_j - x_i), j > i
        doubled[i] += sign.sum(axis=0, dtype=np.int8)
        doubled[i + 1 :] -= sign
    return doubled


def _rank_dtype_limit(n_classes: int) -> None:
    if 2 * n_classes > np.iinfo(np.int8).max:
        raise ValueError(f"n_classes must be at most {np.iinfo(np.int8).max // 2}, got {n_classes}")


def ground_truth_weights(references: Any, *, ties: Ties = "ordinal", n_classes: int = NUM_EMOTIONS) -> np.ndarray:
    """The weights ``w_k^i = 1 / rank_k^i`` of Eq. 15 (rank 1 = largest ground-truth element), shape ``(N, C)``.

    ``ties="ordinal"``: tied elements take consecutive ranks in emotion-index order; ``ties="average"``:
    they share the mean of those ranks. Returns float64.
    """
    ties = _check_ties(ties)
    refs, _ = validate_soft_labels(references, references, n_classes=n_classes)
    _rank_dtype_limit(refs.shape[1])
    ranks = _block_ranks(np.ascontiguousarray(refs.T), ties).T.astype(np.float64)
    return 1.0 / ranks if ties == "ordinal" else 2.0 / ranks


def weighted_errors(
    references: Any,
    predictions: Any,
    *,
    normalize: bool = True,
    ties: Ties = "ordinal",
    clip: bool = False,
    n_classes: int = NUM_EMOTIONS,
) -> np.ndarray:
    """Per-sample weighted errors ``e_k`` of paper Eq. 15 (`docs/method.md#metrics`), shape ``(N,)``.

    ``e_k = Σ_i w_k^i |SL_k^i − ŜL_k^i| / Σ_i w_k^i`` (``normalize=True``, [choice], in [0, 1]) or
    ``(1/n) Σ_i w_k^i |SL_k^i − ŜL_k^i|`` (``normalize=False``, the paper's printed form), where
    ``w_k^i = 1 / rank_k^i`` ranks the **references** (rank 1 = largest; see :func:`ground_truth_weights`
    for ``ties``). float32 input gives float32 errors, anything else float64.

    Args:
        references: ground-truth soft labels ``(N, n_classes)`` in [0, 1].
        predictions: predicted soft labels, same shape.
        normalize: weighted mean (True) or the paper's ``1/n`` normalisation (False).
        ties: ``"ordinal"`` or ``"average"`` rank ties in the references.
        clip: clip values outside [0, 1] instead of raising.
        n_classes: number of columns (8 emotions by default).
    """
    normalize = _check_bool(normalize, "normalize")
    ties = _check_ties(ties)
    refs, preds = validate_soft_labels(references, predictions, clip=clip, n_classes=n_classes)
    n_rows, n_cols = refs.shape
    _rank_dtype_limit(n_cols)
    dtype = refs.dtype
    harmonic = dtype.type(np.sum(1.0 / np.arange(1, n_cols + 1)))  # Σ w with ordinal ranks: H_C
    errors = np.empty(n_rows, dtype=dtype)
    for start in range(0, n_rows, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n_rows)
        refs_t = np.ascontiguousarray(refs[start:stop].T)
        abs_diff_t = np.abs(refs_t - np.ascontiguousarray(preds[start:stop].T))
        ranks_t = _block_ranks(refs_t, ties).astype(dtype)  # doubled ranks for ties="average"
        if ties == "ordinal":
            np.divide(abs_diff_t, ranks_t, out=abs_diff_t)  # w|d| = |d| / rank
            weighted_sum = abs_diff_t.sum(axis=0)
            weighted_sum /= harmonic if normalize else dtype.type(n_cols)
        else:
            weights_t = np.divide(dtype.type(2), ranks_t, out=ranks_t)  # w = 1 / (doubled / 2)
            weighted_sum = np.einsum("cb,cb->b", weights_t, abs_diff_t)
            weighted_sum /= weights_t.sum(axis=0) if normalize else dtype.type(n_cols)
        errors[start:stop] = weighted_sum
    return errors


def weighted_error_single(
    reference: Sequence[float],
    prediction: Sequence[float],
    *,
    normalize: bool = True,
    ties: Ties = "ordinal",
) -> float:
    """``e_k`` for one sample, written as a plain Python loop: the readable definition of Eq. 15.

    :func:`weighted_errors` computes the same numbers vectorised; the tests and the benchmark compare
    the two. Expects plain finite values in [0, 1] (no clipping).
    """
    normalize = _check_bool(normalize, "normalize")
    ties = _check_ties(ties)
    values = [float(v) for v in reference]
    guesses = [float(v) for v in prediction]
    if len(values) != len(guesses) or not values:
        raise ValueError(
            f"reference and prediction must be non-empty and of equal length, got {len(values)} and {len(guesses)}"
        )
    n = len(values)
    # ordinal: sort by value descending, ties by index ascending (a stable sort)
    order = sorted(range(n), key=lambda i: (-values[i], i))
    ranks = [0.0] * n
    for position, index in enumerate(order, start=1):
        ranks[index] = float(position)
    if ties == "average":
        ordinal = list(ranks)
        for index in range(n):
            tied = [ordinal[j] for j in range(n) if values[j] == values[index]]
            ranks[index] = sum(tied) / len(tied)
    weights = [1.0 / r for r in ranks]
    total = sum(w * abs(values[i] - guesses[i]) for i, w in enumerate(weights))
    return total / (sum(weights) if normalize else n)


# --------------------------------------------------------------------------------------------------
# reductions of e_k
# --------------------------------------------------------------------------------------------------
def _failure_terms(errors: np.ndarray, epsilon: float) -> np.ndarray:
    """``[e_k > ε]``, compared in float64 (a float32 comparison would round ε)."""
    return errors.astype(np.float64) > epsilon


def _auc_terms(errors: np.ndarray, epsilon: float) -> np.ndarray:
    """``max(0, 1 − e_k / ε)`` in float64 (a tiny ε may overflow the ratio to inf, which gives 0 as it should)."""
    with np.errstate(over="ignore"):
        return np.maximum(0.0, 1.0 - errors.astype(np.float64) / epsilon)


def _percent(terms: np.ndarray, by: Any = None) -> float | dict:
    """``100 · mean_k terms_k`` (W-MAE, W-FR and W-AUC are all this); with ``by``, ``{group: 100 · group mean}``."""
    if by is None:
        return float(100.0 * terms.astype(np.float64).mean())
    groups, codes = _group_indices(by, terms.shape[0])
    return {group: 100.0 * value for group, value in _grouped_means(terms, groups, codes).items()}


def _as_errors(errors: Any) -> np.ndarray:
    array = np.asarray(errors, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"errors must be a non-empty 1-D array of per-sample errors, got shape {array.shape}")
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array))
        raise ValueError(f"errors has NaN or infinite values at {_format_rows(rows)}")
    if (array < 0).any():
        rows = np.flatnonzero(array < 0)
        raise ValueError(f"errors must be >= 0, got negative values at {_format_rows(rows)}")
    return array


def mean_error(errors: Any, *, by: Any = None) -> float | dict:
    """``100 · mean(e_k)`` — W-MAE from precomputed per-sample errors (with ``by``, ``{group: W-MAE}``)."""
    return _percent(_as_errors(errors), by)


def failure_rate(errors: Any, epsilon: float = DEFAULT_EPSILON, *, by: Any = None) -> float | dict:
    """``100 · mean([e_k > ε])`` — W-FR from precomputed per-sample errors (strictly greater fails; with
    ``by``, ``{group: W-FR}``)."""
    epsilon = _check_epsilon(epsilon, allow_zero=True)
    return _percent(_failure_terms(_as_errors(errors), epsilon), by)


def ced_auc(errors: Any, epsilon: float = DEFAULT_EPSILON, *, by: Any = None) -> float | dict:
    """Area under the cumulative error distribution on ``[0, ε]`` divided by ε, in percent (W-AUC; with
    ``by``, ``{group: W-AUC}``).

    With ``CED(x) = #{k : e_k ≤ x} / N``, ``∫_0^ε CED(x) dx = (1/N) Σ_k max(0, ε − e_k)`` exactly (each
    error contributes a unit step at ``e_k``), so ``W-AUC = 100 · mean_k max(0, 1 − e_k / ε)``: the exact
    area, no integration grid. 100 means every error is 0; 0 means none is below ε.
    """
    epsilon = _check_epsilon(epsilon, allow_zero=False)
    return _percent(_auc_terms(_as_errors(errors), epsilon), by)


def ced_curve(errors: Any, epsilon: float | None = DEFAULT_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative error distribution as a step curve ``(x, fraction)`` for plotting.

    ``x`` are the sorted errors (up to ε when given, plus ε itself as the last point) and ``fraction[i]``
    the fraction of samples with ``e_k ≤ x[i]`` (starts with ``(0, #{e_k = 0}/N)``).
    """
    array = np.sort(_as_errors(errors))
    n = array.size
    fraction = np.arange(1, n + 1, dtype=np.float64) / n
    # the CED takes the value at the last of equal errors
    last_of_run = np.append(array[1:] != array[:-1], True)
    x, y = array[last_of_run], fraction[last_of_run]
    zero = float((array == 0).sum()) / n
    if x.size == 0 or x[0] > 0:
        x, y = np.concatenate([[0.0], x]), np.concatenate([[zero], y])
    if epsilon is not None:
        epsilon = _check_epsilon(epsilon, allow_zero=False)
        keep = x <= epsilon
        at_epsilon = float((array <= epsilon).sum()) / n
        x, y = x[keep], y[keep]
        if x[-1] < epsilon:
            x, y = np.append(x, epsilon), np.append(y, at_epsilon)
    return x, y


# --------------------------------------------------------------------------------------------------
# groupings
# --------------------------------------------------------------------------------------------------
def _python_key(key: Any) -> Hashable:
    return key.item() if isinstance(key, np.generic) else key


def _group_order(keys: list) -> list:
    """Emotion names in label-space order, subset names easy/challenging/difficult (`docs/method.md#subsets`),
    anything else sorted."""
    for vocabulary in (EMOTIONS, SUBSETS):
        if all(isinstance(k, str) and k in vocabulary for k in keys):
            return [k for k in vocabulary if k in keys]
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


def _group_indices(by: Any, n_rows: int) -> tuple[list, np.ndarray]:
    """``(groups, codes)``: the distinct keys of ``by`` (ordered by :func:`_group_order`) and each row's group
    index."""
    import pandas as pd  # hash-based factorisation: ~10x faster than sorting 1 M strings

    try:
        if isinstance(by, np.ndarray):
            keys = by
        else:  # lists keep their Python objects (np.asarray would turn [1, "a"] into strings)
            keys = np.asarray(by, dtype=object if isinstance(by, (list, tuple)) else None)
    except (TypeError, ValueError) as error:
        raise ValueError(f"by must be a sequence of group keys, one per sample: {error}") from None
    if keys.ndim != 1 or keys.shape[0] != n_rows:
        raise ValueError(f"by must hold one group key per sample: expected shape ({n_rows},), got {keys.shape}")
    try:
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    except TypeError as error:
        raise ValueError(f"by must hold hashable group keys (strings or numbers): {error}") from None
    missing = codes < 0
    if missing.any():
        rows = np.flatnonzero(missing)
        raise ValueError(f"by has missing group keys (None/NaN) at {_format_rows(rows)}; every sample needs a group")
    first_seen = [_python_key(u) for u in np.asarray(uniques, dtype=object).tolist()]
    ordered = _group_order(first_seen)
    position = {key: i for i, key in enumerate(ordered)}
    remap = np.array([position[key] for key in first_seen], dtype=np.int64)
    return ordered, remap[np.asarray(codes, dtype=np.int64)]


def _grouped_means(values: np.ndarray, groups: list, codes: np.ndarray) -> dict:
    counts = np.bincount(codes, minlength=len(groups))
    sums = np.bincount(codes, weights=values.astype(np.float64), minlength=len(groups))
    return {group: float(sums[i] / counts[i]) for i, group in enumerate(groups)}


class MetricTable(dict):
    """``{group: {metric: value}}`` with writers: a plain dict (``json.dumps`` works) plus Markdown/JSON helpers."""

    def columns(self) -> list[str]:
        """The scalar metric names, in first-seen order (nested values such as per-class dicts are skipped)."""
        names: list[str] = []
        for row in self.values():
            for name, value in row.items():
                if name not in names and isinstance(value, (int, float, np.integer, np.floating)):
                    names.append(name)
        return names

    def column(self, metric: str) -> dict:
        """``{group: value}`` of one metric."""
        return {group: row[metric] for group, row in self.items() if metric in row}

    def to_markdown(
        self, columns: Sequence[str] | None = None, *, digits: int = 2, group_header: str = "group"
    ) -> str:
        """A GitHub Markdown table, one row per group; floats with ``digits`` decimals."""
        columns = list(columns) if columns is not None else self.columns()
        lines = ["| " + " | ".join([group_header, *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
        for group, row in self.items():
            cells = [str(group)]
            for name in columns:
                value = row.get(name)
                if value is None:
                    cells.append("")
                elif isinstance(value, (float, np.floating)):
                    cells.append(f"{value:.{digits}f}")
                else:
                    cells.append(str(value))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps`` of the table (keys become strings)."""
        kwargs.setdefault("indent", 2)
        return json.dumps({str(k): v for k, v in self.items()}, **kwargs)


# --------------------------------------------------------------------------------------------------
# soft-label metrics
# --------------------------------------------------------------------------------------------------
def w_mae(
    references: Any,
    predictions: Any,
    *,
    normalize: bool = True,
    ties: Ties = "ordinal",
    clip: bool = False,
    by: Any = None,
    n_classes: int = NUM_EMOTIONS,
) -> float | dict:
    """Weighted mean absolute error ``W-MAE = 100 · mean_k e_k`` (percent; paper Sec. 4.3, Eq. 15).

    See :func:`weighted_errors` for the arguments. With ``by`` (one key per sample), returns
    ``{group: W-MAE of that group}``.
    """
    errors = weighted_errors(references, predictions, normalize=normalize, ties=ties, clip=clip, n_classes=n_classes)
    return _percent(errors, by)


def w_fr(
    references: Any,
    predictions: Any,
    *,
    epsilon: float = DEFAULT_EPSILON,
    normalize: bool = True,
    ties: Ties = "ordinal",
    clip: bool = False,
    by: Any = None,
    n_classes: int = NUM_EMOTIONS,
) -> float | dict:
    """Weighted failure rate ``W-FR = 100 · mean_k [e_k > ε]`` (percent; paper Sec. 4.3, ε = 0.3 by default).

    A sample fails when its weighted error is strictly greater than ``epsilon`` (≥ 0). See
    :func:`weighted_errors` for the other arguments; ``by`` gives ``{group: W-FR}``.
    """
    epsilon = _check_epsilon(epsilon, allow_zero=True)
    errors = weighted_errors(references, predictions, normalize=normalize, ties=ties, clip=clip, n_classes=n_classes)
    return _percent(_failure_terms(errors, epsilon), by)


def w_auc(
    references: Any,
    predictions: Any,
    *,
    epsilon: float = DEFAULT_EPSILON,
    normalize: bool = True,
    ties: Ties = "ordinal",
    clip: bool = False,
    by: Any = None,
    n_classes: int = NUM_EMOTIONS,
) -> float | dict:
    """Weighted AUC: area under the CED of ``e_k`` on ``[0, ε]`` divided by ε, in percent (paper Sec. 4.3).

    Exact (see :func:`ced_auc`): ``100 · mean_k max(0, 1 − e_k / ε)``; ``epsilon`` must be > 0.
    ``by`` gives ``{group: W-AUC}``.
    """
    epsilon = _check_epsilon(epsilon, allow_zero=False)
    errors = weighted_errors(references, predictions, normalize=normalize, ties=ties, clip=clip, n_classes=n_classes)
    return _percent(_auc_terms(errors, epsilon), by)


def _soft_row(errors: np.ndarray, epsilon: float) -> dict[str, float | int]:
    return {
        "n": int(errors.shape[0]),
        "w_mae": _percent(errors),
        "w_fr": _percent(_failure_terms(errors, epsilon)),
        "w_auc": _percent(_auc_terms(errors, epsilon)),
    }


def soft_label_metrics(
    references: Any,
    predictions: Any,
    *,
    epsilon: float = DEFAULT_EPSILON,
    normalize: bool = True,
    ties: Ties = "ordinal",
    clip: bool = False,
    by: Any = None,
    include_all: bool = False,
    n_classes: int = NUM_EMOTIONS,
) -> dict | MetricTable:
    """W-MAE, W-FR and W-AUC (percent) from one pass over the data (paper Sec. 4.3, Tables 10/11).

    Returns ``{"n", "w_mae", "w_fr", "w_auc"}``; with ``by``, a :class:`MetricTable` with one such row per
    group (groups ordered: emotions in label-space order, subsets easy/challenging/difficult, others sorted),
    plus an ``"all"`` row first when ``include_all=True``.
    """
    epsilon = _check_epsilon(epsilon, allow_zero=False)
    _check_bool(include_all, "include_all")
    errors = weighted_errors(references, predictions, normalize=normalize, ties=ties, clip=clip, n_classes=n_classes)
    if by is None:
        return _soft_row(errors, epsilon)
    groups, codes = _group_indices(by, errors.shape[0])
    table = MetricTable()
    if include_all:
        table["all"] = _soft_row(errors, epsilon)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(groups) + 1))
    for i, group in enumerate(groups):
        table[group] = _soft_row(errors[order[bounds[i] : bounds[i + 1]]], epsilon)
    return table


def normalize_rows(predictions: Any, name: str = "predictions", n_classes: int = NUM_EMOTIONS) -> np.ndarray:
    """Each row divided by its sum (float64); an all-zero row becomes uniform. Values must be >= 0."""
    array = _as_soft_label_array(predictions, name, n_classes).astype(np.float64)
    bad = np.flatnonzero(~np.all(np.isfinite(array) & (array >= 0), axis=1))
    if len(bad):
        raise ValueError(f"{name}: row {int(bad[0])} is {array[bad[0]].tolist()}; expected finite values >= 0")
    totals = array.sum(axis=1, keepdims=True)
    return np.where(totals > 0, array / np.where(totals > 0, totals, 1.0), 1.0 / n_classes)


def crowd_agreement(
    references: Any,
    predictions: Any,
    *,
    epsilon: float = DEFAULT_EPSILON,
    n_classes: int = NUM_EMOTIONS,
) -> dict[str, float | int | None]:
    """How well predictions agree with annotators' vote distributions (``docs/method.md#quality-against-people``).

    ``references``: (N, 8) vote distributions (rows sum to 1); ``predictions``: (N, 8) scores >= 0, each
    row **normalised to sum 1** first (Eq. 14 soft labels are independent scores). Returns W-MAE, W-FR,
    W-AUC (Eq. 15, percent), ``kl`` = mean KL(reference ‖ prediction) in nats (``None`` when a prediction
    puts 0 on an emotion that got votes: infinite), ``majority_acc`` = share of rows whose predicted top
    emotion holds the largest vote share (any of them when tied), and ``n``.
    """
    reference = normalize_rows(references, "references", n_classes)
    prediction = normalize_rows(predictions, "predictions", n_classes)
    if reference.shape != prediction.shape:
        raise ValueError(f"references {reference.shape} and predictions {prediction.shape} must have equal shapes")
    epsilon = _check_epsilon(epsilon, allow_zero=False)
    row = _soft_row(weighted_errors(reference, prediction, n_classes=n_classes), epsilon)
    voted = reference > 0
    if np.any(voted & (prediction <= 0)):
        kl = None
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(voted, reference / np.where(voted, prediction, 1.0), 1.0)
            terms = np.where(voted, reference * np.log(ratio), 0.0)
        kl = float(terms.sum(axis=1).mean())
    top = prediction.argmax(axis=1)
    hits = reference[np.arange(len(top)), top] >= reference.max(axis=1)
    return {**row, "kl": kl, "majority_acc": float(hits.mean())}


def second_panel_check(
    votes: Any,
    non_emotion_votes: Any,
    predictions: Any,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> dict[str, Any]:
    """Predictions and a second panel of people, both scored against one panel
    (``docs/method.md#quality-against-people``).

    For each seed the annotators of every image are split in two panels (:func:`~affectnetplus_hf.votes.
    split_panels`); ``model`` is :func:`crowd_agreement` of ``predictions`` against panel B's vote
    distribution and ``panel_a`` that of panel A's, both facing the same small-panel noise. Images where a
    panel has no emotion vote are left out of that seed (``n`` counts the rest). Every value is the mean
    over ``seeds``; ``per_seed`` keeps each one.
    """
    predictions = normalize_rows(predictions, "predictions")
    per_seed = []
    for seed in seeds:
        panel_a, panel_b = split_panels(votes, non_emotion_votes, seed=int(seed))
        keep = (panel_a.sum(axis=1) > 0) & (panel_b.sum(axis=1) > 0)
        reference = vote_distributions(panel_b[keep]).astype(np.float64)
        per_seed.append(
            {
                "seed": int(seed),
                "model": crowd_agreement(reference, predictions[keep]),
                "panel_a": crowd_agreement(reference, vote_distributions(panel_a[keep]).astype(np.float64)),
            }
        )

    def mean(who: str) -> dict[str, float | None]:
        keys = per_seed[0][who].keys()
        values = {k: [s[who][k] for s in per_seed] for k in keys}
        return {k: None if any(v is None for v in vs) else float(np.mean(vs)) for k, vs in values.items()}

    return {"model": mean("model"), "panel_a": mean("panel_a"), "seeds": [int(s) for s in seeds], "per_seed": per_seed}


# --------------------------------------------------------------------------------------------------
# hard-label metrics
# --------------------------------------------------------------------------------------------------
def _check_labels(labels: Sequence | None) -> tuple:
    if labels is None:
        return EMOTIONS
    labels = tuple(labels)
    if not labels:
        raise ValueError("labels must be a non-empty sequence of class names")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels!r}")
    return labels


def _codes_of_names(array: np.ndarray, name: str, labels: tuple) -> np.ndarray:
    """Class indices ``(N,)`` int64 of an object/string array of class names (plain integers pass through)."""
    position = {label: i for i, label in enumerate(labels)}
    try:
        uniques, inverse = np.unique(array, return_inverse=True)
        values, rows_of = uniques.tolist(), np.asarray(inverse).reshape(-1)
    except TypeError:  # mixed, unorderable values: one at a time
        values, rows_of = array.tolist(), np.arange(array.shape[0])
    mapped = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            mapped[i] = value
        elif isinstance(value, Hashable) and value in position:
            mapped[i] = position[value]
        else:
            mapped[i] = np.iinfo(np.int64).min
    codes = mapped[rows_of]
    unknown = np.flatnonzero(codes == np.iinfo(np.int64).min)
    if unknown.size:
        row = int(unknown[0])
        raise ValueError(
            f"{name} has unknown labels at {_format_rows(unknown)} (row {row}: {array[row]!r}); "
            f"expected one of {list(labels)} or an integer code 0..{len(labels) - 1}"
        )
    return codes


def _as_label_indices(values: Any, name: str, labels: tuple, *, allow_scores: bool) -> np.ndarray:
    """Class indices ``(N,)`` int64 from integer codes 0..C-1, class names, or (predictions only) ``(N, C)``
    scores."""
    n_classes = len(labels)
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if allow_scores and array.ndim == 2:
        if array.shape[1] != n_classes:
            raise ValueError(
                f"{name} given as scores must have shape (N, {n_classes}) (one column per label), got {array.shape}"
            )
        scores = np.asarray(array, dtype=np.float64)
        if not np.isfinite(scores).all():
            rows = np.flatnonzero(~np.isfinite(scores).all(axis=1))
            raise ValueError(f"{name} has NaN or infinite scores at {_format_rows(rows)}")
        array = scores.argmax(axis=1)
    if array.ndim != 1:
        expected = "(N,) labels or (N, C) scores" if allow_scores else "(N,) labels"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one sample is needed")
    if array.dtype.kind in "iu":
        codes = array.astype(np.int64)
    elif array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"{name} must hold integer class codes 0..{n_classes - 1} or class names, got "
                f"{array[rows[0]]!r} at {_format_rows(rows)}"
            )
        codes = array.astype(np.int64)
    else:
        codes = _codes_of_names(array, name, labels)
    out_of_range = (codes < 0) | (codes >= n_classes)
    if out_of_range.any():
        rows = np.flatnonzero(out_of_range)
        raise ValueError(
            f"{name} has class codes outside 0..{n_classes - 1} at {_format_rows(rows)} "
            f"(row {int(rows[0])}: {int(codes[rows[0]])})"
        )
    return codes


def _hard_inputs(references: Any, predictions: Any, labels: Sequence | None) -> tuple[np.ndarray, np.ndarray, tuple]:
    labels = _check_labels(labels)
    true = _as_label_indices(references, "references", labels, allow_scores=False)
    pred = _as_label_indices(predictions, "predictions", labels, allow_scores=True)
    if true.shape[0] != pred.shape[0]:
        raise ValueError(
            f"references and predictions must have the same number of samples, got {true.shape[0]} and {pred.shape[0]}"
        )
    return true, pred, labels


def _confusion(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_matrix(references: Any, predictions: Any, *, labels: Sequence | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true class, column = predicted class, in ``labels`` order.

    ``labels`` defaults to the 8 emotions in label-space order.

    ``references``: integer codes 0..C-1 or class names; ``predictions``: the same, or ``(N, C)`` scores
    (argmax is taken).
    """
    true, pred, labels = _hard_inputs(references, predictions, labels)
    return _confusion(true, pred, len(labels))


def _hard_row(matrix: np.ndarray, labels: tuple) -> dict[str, Any]:
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    tp = np.diag(matrix).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    n = int(matrix.sum())
    return {
        "n": n,
        "accuracy": float(100.0 * tp.sum() / n),
        "average_accuracy": float(100.0 * recall[present].mean()),
        "macro_f1": float(100.0 * f1[present].mean()),
        "per_class": {
            str(label): {
                "precision": float(100.0 * precision[i]),
                "recall": float(100.0 * recall[i]),
                "f1": float(100.0 * f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": [str(label) for label in labels],
        "confusion_matrix": matrix.tolist(),
    }


def hard_label_metrics(
    references: Any,
    predictions: Any,
    *,
    labels: Sequence | None = None,
    by: Any = None,
    include_all: bool = False,
) -> dict | MetricTable:
    """Hard-label metrics of paper Tables 8/9 (`docs/method.md#metrics`), in percent.

    Returns ``{"n", "accuracy", "average_accuracy", "macro_f1", "per_class": {label: {"precision",
    "recall", "f1", "support"}}, "labels", "confusion_matrix"}``. ``average_accuracy`` is the mean
    per-class recall and ``macro_f1`` the mean F1, both over the classes present in ``references``
    (a class with no reference sample has no recall); precision of a never-predicted class is 0. With
    ``by``, a :class:`MetricTable` of such rows per group (``"all"`` first if ``include_all``).
    """
    _check_bool(include_all, "include_all")
    true, pred, labels = _hard_inputs(references, predictions, labels)
    n_classes = len(labels)
    if by is None:
        return _hard_row(_confusion(true, pred, n_classes), labels)
    groups, codes = _group_indices(by, true.shape[0])
    table = MetricTable()
    if include_all:
        table["all"] = _hard_row(_confusion(true, pred, n_classes), labels)
    for i, group in enumerate(groups):
        mask = codes == i
        table[group] = _hard_row(_confusion(true[mask], pred[mask], n_classes), labels)
    return table


def accuracy(references: Any, predictions: Any, *, labels: Sequence | None = None, by: Any = None) -> float | dict:
    """Percentage of samples whose predicted class is the reference class (paper Table 8)."""
    true, pred, _ = _hard_inputs(references, predictions, labels)
    correct = (true == pred).astype(np.float64)
    if by is None:
        return float(100.0 * correct.mean())
    groups, codes = _group_indices(by, true.shape[0])
    return {g: 100.0 * v for g, v in _grouped_means(correct, groups, codes).items()}


def average_accuracy(
    references: Any, predictions: Any, *, labels: Sequence | None = None, by: Any = None
) -> float | dict:
    """Mean per-class recall over the classes present in ``references``, in percent (balanced accuracy)."""
    if by is None:
        return hard_label_metrics(references, predictions, labels=labels)["average_accuracy"]
    table = hard_label_metrics(references, predictions, labels=labels, by=by)
    return table.column("average_accuracy")


def precision_recall_f1(references: Any, predictions: Any, *, labels: Sequence | None = None, by: Any = None) -> dict:
    """``{label: {"precision", "recall", "f1", "support"}}`` in percent (paper Table 9).

    With ``by``, ``{group: {label: {...}}}``.
    """
    if by is None:
        return hard_label_metrics(references, predictions, labels=labels)["per_class"]
    table = hard_label_metrics(references, predictions, labels=labels, by=by)
    return {group: row["per_class"] for group, row in table.items()}
