"""Evaluation of the paper's Sec. 4.3 (Tables 8–11, Fig. 5, CED curves).

:func:`evaluate_predictions` is pure bookkeeping over arrays: it scores every model's predictions on
every subset with the hard-label metrics and W-MAE / W-FR / W-AUC (Eq. 15, ``docs/method.md#metrics``,
as the package's ``evaluate`` modules compute them: :func:`soft_metrics`), draws the figures, has the
tables written (:mod:`affectnetplus_hf.reports.evaluation`) and returns the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.metrics.functional import (
    DEFAULT_EPSILON,
    ced_auc,
    check_soft_label_options,
    check_soft_labels,
    failure_rate,
    hard_label_metrics,
    mean_error,
    weighted_errors,
)
from affectnetplus_hf.plots import plot_ced_curves, plot_confusion_matrix
from affectnetplus_hf.reports.evaluation import EVALUATION_TABLES, ground_truth_markdown, write_evaluation_tables
from affectnetplus_hf.sources.ferplus import BASELINE_KINDS, FERPLUS_KINDS

logger = logging.getLogger(__name__)

#: Evaluation groups: every image, then each subset (paper Tables 8–10 columns).
EVAL_GROUPS: tuple[str, ...] = ("all",) + SUBSETS
#: Kinds also scored with the soft-label metrics W-MAE / W-FR / W-AUC: Soft-FER's sigmoids, and the FER+
#: modes' softmax (a predicted distribution over the emotions).
SOFT_SCORED_KINDS: tuple[str, ...] = ("soft", *FERPLUS_KINDS)


@dataclass
class EvaluationData:
    """What the predictions are scored against (one row per image of the evaluation split).

    ``soft_labels`` are the reference soft labels (AffectNet+'s); ``true_soft_labels`` the synthetic
    sample's ground truth when known. Both must be finite and in [0, 1]; ``image_ids`` (one per row,
    optional) name the images in that refusal.
    """

    hard_labels: np.ndarray
    soft_labels: np.ndarray
    subsets: np.ndarray
    true_soft_labels: np.ndarray | None = None
    image_ids: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self.hard_labels = np.asarray(self.hard_labels, dtype=np.int64)
        self.soft_labels = np.asarray(self.soft_labels, dtype=np.float32)
        self.subsets = np.asarray(self.subsets).astype(str)
        n = self.hard_labels.shape[0]
        if n == 0:
            raise ValueError("evaluation data is empty: no images to score")
        if self.image_ids is not None and len(self.image_ids) != n:
            raise ValueError(f"image_ids must have {n} entries, got {len(self.image_ids)}")
        self.soft_labels = check_soft_labels(
            self.soft_labels, "soft_labels", n_rows=n, row_names=self.image_ids, clip_hint=False
        )
        if self.subsets.shape != (n,):
            raise ValueError(f"subsets must have {n} entries, got shape {self.subsets.shape}")
        unknown = sorted(set(self.subsets.tolist()) - set(SUBSETS))
        if unknown:
            raise ValueError(f"subsets must be among {SUBSETS}, found {unknown}")
        if self.true_soft_labels is not None:
            self.true_soft_labels = check_soft_labels(
                np.asarray(self.true_soft_labels, dtype=np.float32),
                "true_soft_labels",
                n_rows=n,
                row_names=self.image_ids,
                clip_hint=False,
            )

    def mask(self, group: str) -> np.ndarray:
        return np.ones(len(self.hard_labels), dtype=bool) if group == "all" else self.subsets == group


@dataclass
class ModelPredictions:
    """One model's scores on the evaluation split: ``kind`` is ``"hard"`` (Hard-FER, class probabilities),
    ``"soft"`` (Soft-FER, a predicted soft label) or a FER+ mode of :data:`FERPLUS_KINDS` (softmax
    probabilities); ``trained_on`` names its training subset."""

    name: str
    kind: str
    scores: np.ndarray
    trained_on: str = "all"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BASELINE_KINDS:
            raise ValueError(f"model {self.name!r}: kind must be one of {BASELINE_KINDS}, got {self.kind!r}")
        self.scores = np.asarray(self.scores, dtype=np.float32)


def _reductions(epsilon: float) -> dict[str, Callable[..., Any]]:
    """W-MAE, W-FR and W-AUC of precomputed per-sample errors (each also takes ``by=``)."""
    return {
        "w_mae": mean_error,
        "w_fr": partial(failure_rate, epsilon=epsilon),
        "w_auc": partial(ced_auc, epsilon=epsilon),
    }


def soft_metrics(references, predictions, by=None, epsilon: float = DEFAULT_EPSILON) -> dict[str, Any]:
    """W-MAE / W-FR / W-AUC (Eq. 15) as the ``evaluate`` modules return them: ``{"w_mae", "w_fr", "w_auc"}``,
    with ``by`` also ``{"<metric>_by": {group: value}}``. The per-sample errors are computed once, from the
    inputs as float32 (the modules' feature type), and reduced like the modules do, so the numbers are theirs."""
    errors = weighted_errors(np.asarray(references, dtype=np.float32), np.asarray(predictions, dtype=np.float32))
    result: dict[str, Any] = {}
    for name, reduce in _reductions(epsilon).items():
        result[name] = reduce(errors)
        if by is not None:
            result[f"{name}_by"] = reduce(errors, by=by)
    return result


def _check_scores(model: ModelPredictions, n: int) -> None:
    if model.scores.shape != (n, NUM_EMOTIONS):
        raise ValueError(f"model {model.name!r}: scores must have shape ({n}, 8), got {model.scores.shape}")


def _score_groups(
    data: EvaluationData, model: ModelPredictions, entry: dict[str, Any], rows: dict[str, list], epsilon: float
) -> None:
    """Hard-label metrics (and, for :data:`SOFT_SCORED_KINDS`, the soft-label ones) of ``model`` on every
    group of :data:`EVAL_GROUPS` with images, into ``entry`` and the table rows."""
    predicted = model.scores.argmax(axis=1)
    for group in EVAL_GROUPS:
        mask = data.mask(group)
        if not mask.any():
            continue
        row = hard_label_metrics(data.hard_labels[mask], predicted[mask])
        entry["hard"][group] = row
        rows["hard_label_metrics.md"].append(
            [
                model.name,
                model.kind,
                model.trained_on,
                group,
                int(mask.sum()),
                row["accuracy"],
                row["average_accuracy"],
                row["macro_f1"],
            ]
        )
        if model.kind in SOFT_SCORED_KINDS:
            soft = soft_metrics(data.soft_labels[mask], np.clip(model.scores[mask], 0, 1), epsilon=epsilon)
            entry["soft"][group] = soft
            rows["soft_label_metrics.md"].append(
                [
                    model.name,
                    model.kind,
                    model.trained_on,
                    group,
                    int(mask.sum()),
                    soft["w_mae"],
                    soft["w_fr"],
                    soft["w_auc"],
                ]
            )


def _confusion_figures(model: ModelPredictions, entry: dict[str, Any], output: Path) -> list[Path]:
    """The confusion matrix of every group (Fig. 5), for a model trained on all images."""
    if model.trained_on != "all":
        return []
    paths = []
    for group in EVAL_GROUPS:
        if group in entry["hard"]:
            path = output / "figures" / f"confusion_{model.name}_{group}.png"
            plot_confusion_matrix(entry["hard"][group]["confusion_matrix"], path, title=f"{model.name} on {group}")
            paths.append(path)
    return paths


def _score_by_emotion(
    data: EvaluationData,
    model: ModelPredictions,
    entry: dict[str, Any],
    rows: dict[str, list],
    epsilon: float,
    output: Path,
) -> Path:
    """Soft-label metrics per emotion of the hard label (Table 11) and the CED curves of ``e_k`` per group,
    from one computation of the errors; returns the figure's path."""
    clipped = np.clip(model.scores, 0, 1)
    errors = weighted_errors(data.soft_labels, clipped)
    names = [EMOTIONS[h] for h in data.hard_labels]
    per_emotion = {name: reduce(errors, by=names) for name, reduce in _reductions(epsilon).items()}
    entry["soft_by_emotion"] = per_emotion
    for emotion in EMOTIONS:
        if emotion in per_emotion["w_mae"]:
            rows["soft_label_metrics_by_emotion.md"].append(
                [model.name, model.kind, model.trained_on, emotion, *(per_emotion[m][emotion] for m in per_emotion)]
            )
    path = output / "figures" / f"ced_{model.name}.png"
    plot_ced_curves(
        {g: errors[data.mask(g)] for g in EVAL_GROUPS if data.mask(g).any()},
        path,
        epsilon=epsilon,
        title=f"CED of e_k, {model.name}",
    )
    return path


def _ground_truth_scores(data: EvaluationData, epsilon: float) -> dict[str, Any]:
    """The synthetic sample's soft labels, and one-hot hard labels, against its true soft labels, per subset."""
    one_hot = np.eye(NUM_EMOTIONS, dtype=np.float32)[data.hard_labels]
    by = list(data.subsets)
    return {
        "soft_labels_vs_truth": soft_metrics(data.true_soft_labels, data.soft_labels, by=by, epsilon=epsilon),
        "one_hot_hard_labels_vs_truth": soft_metrics(data.true_soft_labels, one_hot, by=by, epsilon=epsilon),
    }


def evaluate_predictions(
    data: EvaluationData, models: Sequence[ModelPredictions], output_dir, epsilon: float = DEFAULT_EPSILON
) -> dict[str, Any]:
    """Score every model on every subset; write ``tables/*.md|json`` and ``figures/*.png`` under ``output_dir``.

    Every model (the argmax of its scores): accuracy, average accuracy, macro-F1 per subset (Tables 8/9),
    per-class P/R/F1, confusion matrices (Fig. 5). Soft-FER models and the FER+ modes (their softmax,
    Barsoum et al. 2016; :data:`SOFT_SCORED_KINDS`): W-MAE, W-FR, W-AUC per subset (Table 10) and per
    emotion of the hard label (Table 11), with CED curves of e_k.
    """
    check_soft_label_options(epsilon=epsilon)
    output = Path(output_dir)
    results: dict[str, Any] = {
        "epsilon": epsilon,
        "n_images": int(len(data.hard_labels)),
        "subset_sizes": {g: int(data.mask(g).sum()) for g in EVAL_GROUPS},
        "models": {},
    }
    rows: dict[str, list] = {name: [] for name in EVALUATION_TABLES}
    figures: list[Path] = []
    for model in models:
        _check_scores(model, len(data.hard_labels))
        entry: dict[str, Any] = {"kind": model.kind, "trained_on": model.trained_on, "hard": {}, "soft": {}}
        _score_groups(data, model, entry, rows, epsilon)
        figures += _confusion_figures(model, entry, output)
        if model.kind in SOFT_SCORED_KINDS:
            figures.append(_score_by_emotion(data, model, entry, rows, epsilon, output))
        results["models"][model.name] = entry
    if data.true_soft_labels is not None:
        results["synthetic_ground_truth"] = _ground_truth_scores(data, epsilon)
    tables = output / "tables"
    paths = write_evaluation_tables(tables, rows, results)
    results["figures"] = [str(p) for p in figures]
    results["tables"] = paths
    logger.info("evaluated %d models on %d images; tables in %s", len(models), len(data.hard_labels), tables)
    return results


__all__ = [
    "EVAL_GROUPS",
    "EvaluationData",
    "ModelPredictions",
    "SOFT_SCORED_KINDS",
    "evaluate_predictions",
    "ground_truth_markdown",
    "soft_metrics",
]
