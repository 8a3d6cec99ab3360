"""What the three ``evaluate`` modules (``w_mae``, ``w_fr``, ``w_auc``) share: card text, features, options.

Each module script (``metrics/<name>/<name>.py``) holds only its ``_info`` and a ``_compute`` that hands its
function of :mod:`affectnetplus_hf.metrics.functional` to :meth:`SoftLabelMetric.compute_metric`.
``evaluate.load`` copies a script into its module cache and imports it from there, so the scripts import this
module by its absolute, installed name, and *as a module* (``import affectnetplus_hf.metrics.evaluate_common
as common``): ``evaluate`` takes the first ``EvaluationModule`` subclass found in the script's namespace as
the metric, and a base class imported by name would shadow the real one.

Options (`docs/method.md#metrics`) given when loading — ``evaluate.load(path, epsilon=0.2)`` — are that
instance's defaults; options given to ``compute`` win. Every module accepts every option, so
``evaluate.combine([...]).compute(epsilon=...)`` passes the same options to all three.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import datasets
import evaluate
import numpy as np

import affectnetplus_hf.metrics.functional as metric_functions
from affectnetplus_hf.emotions import NUM_EMOTIONS

PAPER_URL = "https://arxiv.org/abs/2410.22506"

CITATION = """\
@article{fard2024affectnetplus,
  title   = {AffectNet+: A Database for Enhancing Facial Expression Recognition with Soft-Labels},
  author  = {Fard, Ali Pourramezan and Hosseini, Mohammad Mehdi and Sweeny, Timothy D. and Mahoor, Mohammad H.},
  journal = {arXiv preprint arXiv:2410.22506},
  year    = {2024}
}
"""

COMMON_DESCRIPTION = """\
Soft-label metric of AffectNet+ (Fard et al., Sec. 4.3, Eq. 15). A soft label is a vector of 8 scores in
[0, 1], one per emotion in the order Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt. For
each sample k, the ground truth's elements are ranked (rank 1 = largest) and weighted w = 1/rank, so
errors on the dominant emotions count most; the per-sample weighted error is
e_k = sum_i w_i |SL_i - SL^_i| / sum_i w_i (normalize=True, a weighted mean in [0, 1]) or the paper's
printed (1/8) sum_i w_i |SL_i - SL^_i| (normalize=False). Results are percentages.
Requires the `affectnetplus-hf` package (the script imports `affectnetplus_hf.metrics.functional`).
"""

COMMON_ARGS = """\
Args:
    predictions (`list` of `list` of `float`): predicted soft labels, one row of 8 scores in [0, 1] per sample.
    references (`list` of `list` of `float`): ground-truth soft labels, same shape. The weights rank these.
    normalize (`bool`, default `True`): weighted mean (`True`) or the paper's printed 1/8 normalisation (`False`).
    ties (`str`, default `"ordinal"`): ties in a reference: `"ordinal"` (lower emotion index ranks first)
        or `"average"` (tied elements share their mean rank).
    epsilon (`float`, default `0.3`): failure threshold of W-FR and upper limit of W-AUC (ignored by W-MAE).
    clip (`bool`, default `False`): clip values outside [0, 1] instead of raising `ValueError`.
    by (`list`, optional): one group key per sample (e.g. hard-label emotion names or subset names);
        adds `"<metric>_by"`: `{group: value}` to the result.
Options given to `evaluate.load(...)` become this instance's defaults; options given to `compute` win.
"""


def features(n_classes: int = NUM_EMOTIONS) -> datasets.Features:
    """``predictions`` / ``references``: fixed-length float32 sequences of ``n_classes`` scores."""
    row = datasets.Sequence(datasets.Value("float32"), length=n_classes)
    return datasets.Features({"predictions": row, "references": row})


class SoftLabelMetric(evaluate.Metric):
    """Base of the three modules: load-time option defaults, the metric card, and the call into the function."""

    def __init__(
        self,
        *args: Any,
        normalize: bool = True,
        ties: str = "ordinal",
        epsilon: float = metric_functions.DEFAULT_EPSILON,
        clip: bool = False,
        n_classes: int = NUM_EMOTIONS,
        **kwargs: Any,
    ) -> None:
        self.n_classes = metric_functions.check_n_classes(n_classes)  # read by _info (evaluate.Metric.__init__)
        self.default_options = metric_functions.check_soft_label_options(
            normalize=normalize, ties=ties, epsilon=epsilon, clip=clip
        )
        super().__init__(*args, **kwargs)

    def metric_info(self, description: str, inputs_description: str) -> evaluate.MetricInfo:
        """The module's ``MetricInfo``: its own description and examples plus the shared text and features."""
        return evaluate.MetricInfo(
            description=description + "\n" + COMMON_DESCRIPTION,
            citation=CITATION,
            inputs_description=inputs_description,
            features=features(self.n_classes),
            homepage=PAPER_URL,
            license="MIT",
            reference_urls=[PAPER_URL],
        )

    def compute_metric(
        self, function: Callable[..., Any], predictions: Any, references: Any, by: Any, **options: Any
    ) -> dict[str, Any]:
        """``{name: function(references, predictions)}`` (plus ``name_by`` with ``by``), ``name`` being the
        function's name; ``options`` left ``None`` take this instance's defaults."""
        merged = dict(self.default_options)
        merged.update({name: value for name, value in options.items() if value is not None})
        merged = metric_functions.check_soft_label_options(**merged)
        if "epsilon" not in inspect.signature(function).parameters:
            del merged["epsilon"]
        refs = np.asarray(references, dtype=np.float32)
        preds = np.asarray(predictions, dtype=np.float32)
        name = function.__name__
        result: dict[str, Any] = {name: function(refs, preds, n_classes=self.n_classes, **merged)}
        if by is not None:
            result[f"{name}_by"] = function(refs, preds, by=by, n_classes=self.n_classes, **merged)
        return result
