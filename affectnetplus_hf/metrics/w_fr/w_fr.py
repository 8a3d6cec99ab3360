# Copyright (c) affectnetplus-hf contributors. MIT License.
"""W-FR: weighted failure rate between soft labels (AffectNet+, Sec. 4.3).

An ``evaluate`` module: ``evaluate.load("path/to/w_fr")``. Needs the ``affectnetplus-hf`` package
installed (``pip install affectnetplus-hf``): the maths lives in ``affectnetplus_hf.metrics.functional``.
"""

import datasets  # noqa: F401  (evaluate checks the script's imports; keeps the dependency explicit)
import evaluate

import affectnetplus_hf.metrics.evaluate_common as common
import affectnetplus_hf.metrics.functional as metric_functions

_DESCRIPTION = """\
W-FR = 100 * mean_k [e_k > epsilon]: the percentage of samples whose rank-weighted error between the
ground-truth and the predicted soft label is strictly greater than epsilon (0.3 in the paper). Lower is
better. The paper's ResNet-50 Soft-FER baseline scores 10.85 on the AffectNet+ validation set.
"""

_KWARGS_DESCRIPTION = (
    common.COMMON_ARGS
    + """
Returns:
    w_fr (`float`): weighted failure rate in percent, in [0, 100].
    w_fr_by (`dict`, only with `by`): `{group: W-FR}`.

Examples:
    Sample 1: e = (1*0.25 + 1/2*0.25) / (1 + 1/2 + ... + 1/8) = 0.375 / 2.717857 = 0.1380 <= 0.3 (pass).
    Sample 2: e = (1*1 + 1/2*1) / 2.717857 = 0.5519 > 0.3 (failure). W-FR = 100 * 1/2 = 50.

    >>> import evaluate
    >>> from affectnetplus_hf.metrics import module_path
    >>> w_fr = evaluate.load(module_path("w_fr"))
    >>> refs = [[0.75, 0.25, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]
    >>> preds = [[0.5, 0.5, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]]
    >>> w_fr.compute(predictions=preds, references=refs)["w_fr"]
    50.0
    >>> w_fr.compute(predictions=preds, references=refs, epsilon=0.1)["w_fr"]
    100.0
"""
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WFr(common.SoftLabelMetric):
    """W-FR (see the module docstring)."""

    def _info(self) -> evaluate.MetricInfo:
        return self.metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, normalize=None, ties=None, epsilon=None, clip=None, by=None):
        return self.compute_metric(
            metric_functions.w_fr,
            predictions,
            references,
            by,
            normalize=normalize,
            ties=ties,
            epsilon=epsilon,
            clip=clip,
        )
