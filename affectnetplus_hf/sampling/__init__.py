"""Sampling of the multi-annotated set: the train/test-MAS split (:mod:`.mas`,
``docs/method.md#mas-split``) and the one-vs-rest negatives of the binary soft-labelers
(:mod:`.negatives`, ``docs/method.md#sampling``).

The majority-vote rule lives in :mod:`affectnetplus_hf.votes`; its public names are re-exported here.
"""

from affectnetplus_hf.sampling.mas import (
    DROP_NO_VOTES,
    DROP_NON_EMOTION,
    DROP_REASONS,
    DROP_TIE,
    REPORT_FILE,
    SPLIT_COLUMNS,
    SPLIT_FILE,
    MASSplit,
    image_keys,
    mas_arrays,
    record_vote_distributions,
    split_mas,
    split_mas_records,
)
from affectnetplus_hf.sampling.negatives import (
    DEFAULT_UNIFORM_FRACTION,
    NegativeQuotas,
    SamplingWarning,
    all_negative_quotas,
    capped_proportional,
    largest_remainder,
    negative_quotas,
    select_one_vs_rest,
)
from affectnetplus_hf.votes import (
    TIE_MODES,
    TieMode,
    agreement,
    hard_label_from_votes,
    is_unanimous,
    majority_labels,
    vote_distributions,
)

__all__ = [
    "DEFAULT_UNIFORM_FRACTION",
    "DROP_NON_EMOTION",
    "DROP_NO_VOTES",
    "DROP_REASONS",
    "DROP_TIE",
    "REPORT_FILE",
    "SPLIT_COLUMNS",
    "SPLIT_FILE",
    "TIE_MODES",
    "MASSplit",
    "NegativeQuotas",
    "SamplingWarning",
    "TieMode",
    "agreement",
    "all_negative_quotas",
    "capped_proportional",
    "hard_label_from_votes",
    "image_keys",
    "is_unanimous",
    "largest_remainder",
    "majority_labels",
    "mas_arrays",
    "negative_quotas",
    "record_vote_distributions",
    "select_one_vs_rest",
    "split_mas",
    "split_mas_records",
    "vote_distributions",
]
