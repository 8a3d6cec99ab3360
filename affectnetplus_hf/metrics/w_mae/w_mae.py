# Copyright (c) affectnetplus-hf contributors. MIT License.
"""W-MAE: weighted mean absolute error between soft labels (AffectNet+, Sec. 4.3, Eq. 15).

An ``evaluate`` module: ``evaluate.load("path/to/w_mae")``. Needs the ``affectnetplus-hf`` package
installed (``pip install affectnetplus-hf``): the maths lives in ``affectnetplus_hf.metrics.functional``.
"""

import datasets  # noqa: F401  (evaluate checks the script's imports; keeps the dependency explicit)
import evaluate

import affectnetplus_hf.metrics.evaluate_common as common
import affectnetplus_hf.metrics.functional as metric_functions

_DESCRIPTION = """\
W-MAE = 100 * mean_k e_k: the mean, over samples, of the rank-weighted absolute error between the
ground-truth and the predicted soft label (0 = perfect, 100 = worst). The paper's ResNet-50 Soft-FER
baseline scores 17.30 on the AffectNet+ validation set.
"""

_KWARGS_DESCRIPTION = (
    common.COMMON_ARGS
    + """
Returns:
    w_mae (`float`): weighted mean absolute error in percent, in [0, 100] with `normalize=True`.
    w_mae_by (`dict`, only with `by`): `{group: W-MAE}`.

Examples:
    One sample; reference ranks: Neutral 1 (w=1), Happy 2 (w=1/2), the six zeros 3..8 (w=1/3..1/8).
    Only Neutral and Happy differ, by 0.25 each: e = (1*0.25 + 1/2*0.25) / (1 + 1/2 + ... + 1/8)
    = 0.375 / 2.717857 = 0.137976; with normalize=False, e = 0.375 / 8 = 0.046875.

    >>> import evaluate
    >>> from affectnetplus_hf.metrics import module_path
    >>> w_mae = evaluate.load(module_path("w_mae"))
    >>> refs = [[0.75, 0.25, 0, 0, 0, 0, 0, 0]]
    >>> preds = [[0.5, 0.5, 0, 0, 0, 0, 0, 0]]
    >>> round(w_mae.compute(predictions=preds, references=refs)["w_mae"], 4)
    13.7976
    >>> round(w_mae.compute(predictions=preds, references=refs, normalize=False)["w_mae"], 4)
    4.6875
"""
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WMae(common.SoftLabelMetric):
    """W-MAE (see the module docstring)."""

    def _info(self) -> evaluate.MetricInfo:
        return self.metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, normalize=None, ties=None, epsilon=None, clip=None, by=None):
        return self.compute_metric(
            metric_functions.w_mae,
            predictions,
            references,
            by,
            normalize=normalize,
            ties=ties,
            epsilon=epsilon,
            clip=clip,
        )
