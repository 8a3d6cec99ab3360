# Copyright (c) affectnetplus-hf contributors. MIT License.
"""W-AUC: area under the cumulative weighted-error distribution (AffectNet+, Sec. 4.3).

An ``evaluate`` module: ``evaluate.load("path/to/w_auc")``. Needs the ``affectnetplus-hf`` package
installed (``pip install affectnetplus-hf``): the maths lives in ``affectnetplus_hf.metrics.functional``.
"""

import datasets  # noqa: F401  (evaluate checks the script's imports; keeps the dependency explicit)
import evaluate

import affectnetplus_hf.metrics.evaluate_common as common
import affectnetplus_hf.metrics.functional as metric_functions

_DESCRIPTION = """\
W-AUC: the area under the cumulative error distribution (CED) curve of the per-sample rank-weighted
errors e_k on [0, epsilon], divided by epsilon, in percent (the CED AUC of the face-alignment literature
the paper cites). Computed exactly: W-AUC = 100 * mean_k max(0, 1 - e_k / epsilon). Higher is better:
100 when every prediction is perfect, 0 when no error is below epsilon.
"""

_KWARGS_DESCRIPTION = (
    common.COMMON_ARGS
    + """
Returns:
    w_auc (`float`): CED area in percent, in [0, 100].
    w_auc_by (`dict`, only with `by`): `{group: W-AUC}`.

Examples:
    Errors (see the W-FR example): e_1 = 0.137976, e_2 = 0.551905.
    W-AUC = 100 * ((1 - 0.137976/0.3) + max(0, 1 - 0.551905/0.3)) / 2 = 100 * (0.540079 + 0) / 2 = 27.0039.

    >>> import evaluate
    >>> from affectnetplus_hf.metrics import module_path
    >>> w_auc = evaluate.load(module_path("w_auc"))
    >>> refs = [[0.75, 0.25, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]
    >>> preds = [[0.5, 0.5, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]]
    >>> round(w_auc.compute(predictions=preds, references=refs)["w_auc"], 4)
    27.0039
    >>> round(w_auc.compute(predictions=preds, references=refs, epsilon=0.6)["w_auc"], 4)
    42.5099
"""
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WAuc(common.SoftLabelMetric):
    """W-AUC (see the module docstring)."""

    def _info(self) -> evaluate.MetricInfo:
        return self.metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, normalize=None, ties=None, epsilon=None, clip=None, by=None):
        return self.compute_metric(
            metric_functions.w_auc,
            predictions,
            references,
            by,
            normalize=normalize,
            ties=ties,
            epsilon=epsilon,
            clip=clip,
        )
