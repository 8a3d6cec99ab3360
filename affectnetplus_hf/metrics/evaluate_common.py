"""What the three ``evaluate`` modules (``w_mae``, ``w_fr``, ``w_auc``) share: options, features, citation.

The module scripts (``metrics/<name>/<name>.py``) are copied by ``evaluate.load`` into its module cache
and imported from there, so they import this module by its absolute, installed name. They must import
it as a *module* (``from affectnetplus_hf.metrics import evaluate_common as common``): ``evaluate``
takes the first ``EvaluationModule`` subclass found in the script's namespace as the metric, and a base
class imported by name would shadow the real one.

Options (SPEC §9) can be given when loading — ``evaluate.load(path, epsilon=0.2, ties="average")`` sets
the defaults of that instance — and per call — ``compute(..., epsilon=0.2)``, which wins. Every module
accepts every option (``w_mae`` ignores ``epsilon``), so ``evaluate.combine([...]).compute(epsilon=...)``
passes the same options to all three; to use different ε for W-FR and W-AUC in one combination, load
the modules with their own ``epsilon`` and call ``compute`` without it.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from affectnetplus_hf.emotions import NUM_EMOTIONS
from affectnetplus_hf.metrics import functional as F

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

_OPTION_NAMES = ("normalize", "ties", "epsilon", "clip")


def features(n_classes: int = NUM_EMOTIONS) -> datasets.Features:
    """``predictions`` / ``references``: fixed-length float32 sequences of ``n_classes`` scores."""
    row = datasets.Sequence(datasets.Value("float32"), length=n_classes)
    return datasets.Features({"predictions": row, "references": row})


def check_options(normalize: Any, ties: Any, epsilon: Any, clip: Any) -> dict[str, Any]:
    """Validate the SPEC §9 options (raises ``ValueError`` naming the bad one)."""
    return {
        "normalize": F._check_bool(normalize, "normalize"),
        "ties": F._check_ties(ties),
        "epsilon": F._check_epsilon(epsilon, allow_zero=True),
        "clip": F._check_bool(clip, "clip"),
    }


class SoftLabelMetric(evaluate.Metric):
    """Base of the three modules: stores load-time option defaults and turns the inputs into float32 arrays.

    Subclasses set ``METRIC`` (the result key), ``DESCRIPTION``, ``INPUTS_DESCRIPTION`` and implement
    ``_value(references, predictions, options, by)``.
    """

    METRIC = ""
    DESCRIPTION = ""
    INPUTS_DESCRIPTION = ""

    def __init__(
        self,
        *args: Any,
        normalize: bool = True,
        ties: str = "ordinal",
        epsilon: float = F.DEFAULT_EPSILON,
        clip: bool = False,
        n_classes: int = NUM_EMOTIONS,
        **kwargs: Any,
    ) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.default_options = check_options(normalize, ties, epsilon, clip)
        super().__init__(*args, **kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.DESCRIPTION + "\n" + COMMON_DESCRIPTION,
            citation=CITATION,
            inputs_description=self.INPUTS_DESCRIPTION,
            features=features(getattr(self, "n_classes", NUM_EMOTIONS)),
            homepage="https://arxiv.org/abs/2410.22506",
            license="MIT",
            reference_urls=["https://arxiv.org/abs/2410.22506"],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        normalize: bool | None = None,
        ties: str | None = None,
        epsilon: float | None = None,
        clip: bool | None = None,
        by: Any = None,
    ) -> dict[str, Any]:
        given = {"normalize": normalize, "ties": ties, "epsilon": epsilon, "clip": clip}
        options = dict(self.default_options)
        options.update({name: value for name, value in given.items() if value is not None})
        options = check_options(**options)
        refs = np.asarray(references, dtype=np.float32)
        preds = np.asarray(predictions, dtype=np.float32)
        value = self._value(refs, preds, options, None)
        result: dict[str, Any] = {self.METRIC: value}
        if by is not None:
            result[f"{self.METRIC}_by"] = self._value(refs, preds, options, by)
        return result

    def _value(self, references: np.ndarray, predictions: np.ndarray, options: dict[str, Any], by: Any) -> Any:
        raise NotImplementedError
