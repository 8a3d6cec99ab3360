"""Evaluation of the paper's Sec. 4.3 (Tables 8–11, Fig. 5, CED curves).

:func:`evaluate_predictions` is pure bookkeeping over arrays: it scores every model's predictions on
every subset with the hard-label metrics and the ``evaluate`` modules W-MAE / W-FR / W-AUC (Eq. 15,
``docs/method.md#metrics``), draws the figures, has the tables written
(:mod:`affectnetplus_hf.reports.evaluation`) and returns the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.metrics import module_path
from affectnetplus_hf.metrics.functional import DEFAULT_EPSILON, hard_label_metrics, weighted_errors
from affectnetplus_hf.plots import plot_ced_curves, plot_confusion_matrix
from affectnetplus_hf.reports.evaluation import ground_truth_markdown, write_evaluation_tables
from affectnetplus_hf.sources.ferplus import TARGET_MODES as FERPLUS_KINDS  # FER+'s training modes

logger = logging.getLogger(__name__)

#: Evaluation groups: every image, then each subset (paper Tables 8–10 columns).
EVAL_GROUPS: tuple[str, ...] = ("all",) + SUBSETS
#: Every model kind: Hard-FER, Soft-FER (paper Sec. 4.3) and the FER+ modes.
MODEL_KINDS: tuple[str, ...] = ("hard", "soft", *FERPLUS_KINDS)
#: Kinds also scored with the soft-label metrics W-MAE / W-FR / W-AUC: Soft-FER's sigmoids, and the FER+
#: modes' softmax (a predicted distribution over the emotions).
SOFT_SCORED_KINDS: tuple[str, ...] = ("soft", *FERPLUS_KINDS)


@dataclass
class EvaluationData:
    """What the predictions are scored against (one row per image of the evaluation split).

    ``soft_labels`` are the reference soft labels (AffectNet+'s); ``true_soft_labels`` the synthetic
    sample's ground truth when known. The soft labels must be finite and in [0, 1]; ``image_ids`` (one per
    row, optional) name the images in that refusal.
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
        if self.soft_labels.shape != (n, NUM_EMOTIONS):
            raise ValueError(f"soft_labels must have shape ({n}, 8), got {self.soft_labels.shape}")
        if self.image_ids is not None and len(self.image_ids) != n:
            raise ValueError(f"image_ids must have {n} entries, got {len(self.image_ids)}")
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.all(np.isfinite(self.soft_labels) & (self.soft_labels >= 0) & (self.soft_labels <= 1),
                                         axis=1))
        if len(bad):
            row = int(bad[0])
            name = f" (image {self.image_ids[row]!r})" if self.image_ids is not None else ""
            more = f" and {len(bad) - 1} more row(s)" if len(bad) > 1 else ""
            raise ValueError(f"soft_labels row {row}{name}{more}: not finite values in [0, 1] "
                             f"({self.soft_labels[row].tolist()})")
        if self.subsets.shape != (n,):
            raise ValueError(f"subsets must have {n} entries, got shape {self.subsets.shape}")
        unknown = sorted(set(self.subsets.tolist()) - set(SUBSETS))
        if unknown:
            raise ValueError(f"subsets must be among {SUBSETS}, found {unknown}")
        if self.true_soft_labels is not None:
            self.true_soft_labels = np.asarray(self.true_soft_labels, dtype=np.float32)
            if self.true_soft_labels.shape != (n, NUM_EMOTIONS):
                raise ValueError(f"true_soft_labels must have shape ({n}, 8), got {self.true_soft_labels.shape}")

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
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model {self.name!r}: kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        self.scores = np.asarray(self.scores, dtype=np.float32)


def _load_soft_modules(epsilon: float):
    import evaluate

    return {name: evaluate.load(module_path(name), epsilon=epsilon) for name in ("w_mae", "w_fr", "w_auc")}


def soft_metrics_with_modules(references, predictions, by=None, epsilon: float = DEFAULT_EPSILON,
                              modules=None) -> dict[str, Any]:
    """W-MAE / W-FR / W-AUC from the ``evaluate`` modules (Eq. 15); with ``by``, ``{metric_by: {group: v}}``."""
    modules = modules or _load_soft_modules(epsilon)
    result: dict[str, Any] = {}
    for name, module in modules.items():
        result.update(module.compute(references=references, predictions=predictions, by=by))
    return result


def evaluate_predictions(data: EvaluationData, models: Sequence[ModelPredictions], output_dir,
                         epsilon: float = DEFAULT_EPSILON) -> dict[str, Any]:
    """Score every model on every subset; write ``tables/*.md|json`` and ``figures/*.png`` under ``output_dir``.

    Every model (the argmax of its scores): accuracy, average accuracy, macro-F1 per subset (Tables 8/9),
    per-class P/R/F1, confusion matrices (Fig. 5). Soft-FER models and the FER+ modes (their softmax,
    Barsoum et al. 2016; :data:`SOFT_SCORED_KINDS`): W-MAE, W-FR, W-AUC per subset (Table 10) and per
    emotion of the hard label (Table 11), with CED curves of e_k.
    """
    output = Path(output_dir)
    modules = _load_soft_modules(epsilon)
    results: dict[str, Any] = {"epsilon": epsilon, "n_images": int(len(data.hard_labels)),
                               "subset_sizes": {g: int(data.mask(g).sum()) for g in EVAL_GROUPS}, "models": {}}
    hard_rows, soft_rows, emotion_rows, figures = [], [], [], []
    for model in models:
        n = len(data.hard_labels)
        if model.scores.shape != (n, NUM_EMOTIONS):
            raise ValueError(f"model {model.name!r}: scores must have shape ({n}, 8), got {model.scores.shape}")
        predicted = model.scores.argmax(axis=1)
        entry: dict[str, Any] = {"kind": model.kind, "trained_on": model.trained_on, "hard": {}, "soft": {}}
        for group in EVAL_GROUPS:
            mask = data.mask(group)
            if not mask.any():
                continue
            row = hard_label_metrics(data.hard_labels[mask], predicted[mask])
            entry["hard"][group] = row
            hard_rows.append([model.name, model.kind, model.trained_on, group, int(mask.sum()), row["accuracy"],
                              row["average_accuracy"], row["macro_f1"]])
            if model.kind in SOFT_SCORED_KINDS:
                soft = soft_metrics_with_modules(data.soft_labels[mask], np.clip(model.scores[mask], 0, 1),
                                                 modules=modules)
                entry["soft"][group] = soft
                soft_rows.append([model.name, model.kind, model.trained_on, group, int(mask.sum()), soft["w_mae"],
                                  soft["w_fr"], soft["w_auc"]])
        if model.trained_on == "all":
            for group in EVAL_GROUPS:
                if group in entry["hard"]:
                    path = output / "figures" / f"confusion_{model.name}_{group}.png"
                    plot_confusion_matrix(entry["hard"][group]["confusion_matrix"], path,
                                          title=f"{model.name} on {group}")
                    figures.append(path)
        if model.kind in SOFT_SCORED_KINDS:
            clipped = np.clip(model.scores, 0, 1)
            per_emotion = soft_metrics_with_modules(data.soft_labels, clipped,
                                                    by=[EMOTIONS[h] for h in data.hard_labels], modules=modules)
            entry["soft_by_emotion"] = {m: per_emotion[f"{m}_by"] for m in ("w_mae", "w_fr", "w_auc")}
            for emotion in EMOTIONS:
                if emotion in per_emotion["w_mae_by"]:
                    emotion_rows.append([model.name, model.kind, model.trained_on, emotion,
                                         per_emotion["w_mae_by"][emotion], per_emotion["w_fr_by"][emotion],
                                         per_emotion["w_auc_by"][emotion]])
            errors = weighted_errors(data.soft_labels, clipped)
            path = output / "figures" / f"ced_{model.name}.png"
            plot_ced_curves({g: errors[data.mask(g)] for g in EVAL_GROUPS if data.mask(g).any()}, path,
                            epsilon=epsilon, title=f"CED of e_k, {model.name}")
            figures.append(path)
        results["models"][model.name] = entry

    if data.true_soft_labels is not None:
        one_hot = np.eye(NUM_EMOTIONS, dtype=np.float32)[data.hard_labels]
        results["synthetic_ground_truth"] = {
            "soft_labels_vs_truth": soft_metrics_with_modules(data.true_soft_labels, data.soft_labels,
                                                              by=list(data.subsets), modules=modules),
            "one_hot_hard_labels_vs_truth": soft_metrics_with_modules(data.true_soft_labels, one_hot,
                                                                      by=list(data.subsets), modules=modules),
        }

    tables = output / "tables"
    paths = write_evaluation_tables(tables, {"hard_label_metrics.md": hard_rows, "soft_label_metrics.md": soft_rows,
                                             "soft_label_metrics_by_emotion.md": emotion_rows}, results)
    results["figures"] = [str(p) for p in figures]
    results["tables"] = paths
    logger.info("evaluated %d models on %d images; tables in %s", len(models), len(data.hard_labels), tables)
    return results


__all__ = [
    "EVAL_GROUPS",
    "EvaluationData",
    "MODEL_KINDS",
    "ModelPredictions",
    "SOFT_SCORED_KINDS",
    "evaluate_predictions",
    "ground_truth_markdown",
    "soft_metrics_with_modules",
]
