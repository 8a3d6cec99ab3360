"""Calibrated soft labels: the families' scores mapped onto annotators' vote distributions
(``docs/method.md#calibration``).

The paper's soft label (Eq. 14) is a vector of independent scores, not a distribution. The calibrated
soft label is one, fitted to people by log-linear pooling of the families' scores ``ŝ_f`` normalised to
sum 1 (``ebc``: Eq. 5, ``au``: Eq. 13, ``dist``: the distribution family's mean probability)::

    z_e = Σ_f w_f log(ŝ_f,e + ε) + b_e,    soft_label_calibrated = softmax(z)

:func:`fit_calibration` fits ``w_f >= 0`` and ``b`` with L-BFGS in float64 (deterministic on CPU) on a
multi-annotated split, minimising the mean KL(votes ‖ calibrated) (``objective="kl"``) or, starting from
that fit, a smooth W-MAE (``objective="w_mae"``: ``|x|`` → ``sqrt(x² + δ²) − δ``, δ = 1e-3);
:func:`apply_calibration` applies a fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import NUM_EMOTIONS
from affectnetplus_hf.metrics.functional import ground_truth_weights, normalize_rows

logger = logging.getLogger(__name__)

#: Floor added to every normalised score before the log (keeps a 0 score finite).
DEFAULT_EPS = 1e-4
#: What :func:`fit_calibration` can minimise.
OBJECTIVES: tuple[str, ...] = ("kl", "w_mae")
_SMOOTH_ABS_DELTA = 1e-3
#: Outputs of a soft-labeler measured against annotators (model cards, benchmarks), in table order.
QUALITY_ROWS: tuple[tuple[str, str], ...] = (
    ("soft_label", "soft label (Eq. 14)"),
    ("ebc", "EBC scores (Eq. 5)"),
    ("au", "AU scores (Eq. 13)"),
    ("dist", "distribution family"),
    ("soft_label_calibrated", "calibrated soft label"),
)


def _log_inputs(scores: Mapping[str, Any], inputs: Sequence[str], eps: float) -> np.ndarray:
    """(F, N, 8) ``log(normalised score + eps)`` of the ``inputs`` families."""
    missing = [f for f in inputs if scores.get(f) is None]
    if missing:
        raise ValueError(f"calibration needs the scores of {list(inputs)}; missing {missing}")
    arrays = [np.log(normalize_rows(scores[f], f"{f} scores") + eps) for f in inputs]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"the families' scores have different shapes {sorted(shapes)}; expected one (N, 8)")
    return np.stack(arrays)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def apply_calibration(scores: Mapping[str, Any], calibration: Mapping[str, Any]) -> np.ndarray:
    """``soft_label_calibrated`` (N, 8), rows summing to 1, from the families' scores (module docstring)."""
    inputs = list(calibration["inputs"])
    logs = _log_inputs(scores, inputs, float(calibration["eps"]))
    weights = np.asarray(calibration["weights"], dtype=np.float64)
    bias = np.asarray(calibration["bias"], dtype=np.float64)
    return _softmax(np.tensordot(weights, logs, axes=1) + bias)


def _checked_arguments(
    scores: Mapping[str, Any], reference: Any, inputs: Sequence[str] | None, objective: str
) -> tuple[list[str], np.ndarray]:
    """``(inputs, reference as float64)`` of :func:`fit_calibration`, checked."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    inputs = list(inputs) if inputs is not None else [f for f, v in scores.items() if v is not None]
    if not inputs:
        raise ValueError("fit_calibration needs the scores of at least one family")
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[1] != NUM_EMOTIONS:
        raise ValueError(f"reference must be (N, {NUM_EMOTIONS}) vote distributions, got shape {reference.shape}")
    return inputs, reference


def _voted_rows(reference: np.ndarray, n_scores: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, target)``: the rows of ``reference`` with votes and their vote distributions (summing to 1)."""
    if n_scores != reference.shape[0]:
        raise ValueError(f"scores have {n_scores} rows but the reference has {reference.shape[0]}; expected equal")
    totals = reference.sum(axis=1)
    keep = np.isfinite(totals) & (totals > 0)
    if not keep.any():
        raise ValueError("the reference has no row with votes; calibration needs vote distributions")
    if (~keep).any():
        logger.info("calibration: %d of %d rows have no votes and are left out", int((~keep).sum()), len(keep))
    return keep, reference[keep] / totals[keep, None]


def _objectives(theta, bias, x, target) -> dict[str, Callable[[], Any]]:
    """The losses of the pooled map ``softmax(Σ_f softplus(theta_f) x_f + bias)`` against ``target``:
    ``"kl"`` (mean KL(target ‖ map)) and ``"w_mae"`` (the smooth W-MAE of the module docstring)."""
    import torch

    rank_weights = torch.from_numpy(ground_truth_weights(target.numpy()))

    def log_p() -> torch.Tensor:
        z = torch.einsum("f,fne->ne", torch.nn.functional.softplus(theta), x) + bias
        return torch.log_softmax(z, dim=1)

    def kl() -> torch.Tensor:
        return (target * (torch.log(target.clamp_min(1e-300)) - log_p())).sum(dim=1).mean()

    def smooth_w_mae() -> torch.Tensor:
        diff = target - log_p().exp()
        smooth = torch.sqrt(diff * diff + _SMOOTH_ABS_DELTA**2) - _SMOOTH_ABS_DELTA
        return ((rank_weights * smooth).sum(dim=1) / rank_weights.sum(dim=1)).mean()

    return {"kl": kl, "w_mae": smooth_w_mae}


def _minimise(parameters: list, loss_fn, max_iter: int) -> None:
    """Minimise ``loss_fn()`` over ``parameters`` in place with L-BFGS (strong Wolfe line search)."""
    import torch

    optimizer = torch.optim.LBFGS(
        parameters,
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)


def fit_calibration(
    scores: Mapping[str, Any],
    reference: Any,
    inputs: Sequence[str] | None = None,
    *,
    objective: str = "kl",
    eps: float = DEFAULT_EPS,
    max_iter: int = 500,
) -> dict[str, Any]:
    """Fit the weights and prior shift of :func:`apply_calibration` to vote distributions.

    Args:
        scores: ``{family: (N, 8) scores}``; rows need not sum to 1.
        reference: (N, 8) vote distributions of the same faces (rows with no vote are left out and counted).
        inputs: the families to pool (default: every family in ``scores``, in that order).
        objective: ``"kl"`` or ``"w_mae"`` (module docstring).

    Returns ``{"inputs", "weights", "bias", "eps", "objective", "n", "kl_before", "kl_after"}`` (KL in
    nats; ``kl_before`` is that of the families' geometric mean, the starting point).
    """
    import torch

    inputs, reference = _checked_arguments(scores, reference, inputs, objective)
    logs = _log_inputs(scores, inputs, eps)
    keep, target = _voted_rows(reference, logs.shape[1])
    start = np.log(np.expm1(1.0 / len(inputs)))  # softplus^-1(1/F): the geometric mean of the families
    theta = torch.full((len(inputs),), float(start), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(NUM_EMOTIONS, dtype=torch.float64, requires_grad=True)
    losses = _objectives(theta, bias, torch.from_numpy(logs[:, keep]), torch.from_numpy(target))
    with torch.no_grad():
        kl_before = float(losses["kl"]())
    for name in ["kl"] if objective == "kl" else ["kl", "w_mae"]:  # the W-MAE fit starts from the KL fit
        _minimise([theta, bias], losses[name], max_iter)
    with torch.no_grad():
        kl_after = float(losses["kl"]())
        weights = torch.nn.functional.softplus(theta).numpy().astype(np.float64)
        shift = bias.numpy().astype(np.float64)
    shift = shift - shift.mean()  # softmax is blind to a common shift: store the centred one
    logger.info(
        "calibration on %d faces: weights %s, KL %.4f -> %.4f",
        int(keep.sum()),
        dict(zip(inputs, np.round(weights, 4).tolist())),
        kl_before,
        kl_after,
    )
    return {
        "inputs": inputs,
        "weights": weights.tolist(),
        "bias": shift.tolist(),
        "eps": float(eps),
        "objective": objective,
        "n": int(keep.sum()),
        "kl_before": kl_before,
        "kl_after": kl_after,
    }


__all__ = ["DEFAULT_EPS", "OBJECTIVES", "QUALITY_ROWS", "apply_calibration", "fit_calibration"]
