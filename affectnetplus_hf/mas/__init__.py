"""Sampling of the multi-annotated set: the train/test-MAS split (:mod:`.mas`,
``docs/method.md#mas-split``) and the one-vs-rest negatives of the binary soft-labelers
(:mod:`.negatives`, ``docs/method.md#sampling``).

The majority-vote rule lives in :mod:`affectnetplus_hf.votes`.
"""

from affectnetplus_hf.mas.negatives import (
    DEFAULT_UNIFORM_FRACTION,
    NegativeQuotas,
    SamplingWarning,
    all_negative_quotas,
    capped_proportional,
    largest_remainder,
    negative_quotas,
    select_one_vs_rest,
)
from affectnetplus_hf.mas.split import (
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

__all__ = [
    "DEFAULT_UNIFORM_FRACTION",
    "DROP_NON_EMOTION",
    "DROP_NO_VOTES",
    "DROP_REASONS",
    "DROP_TIE",
    "REPORT_FILE",
    "SPLIT_COLUMNS",
    "SPLIT_FILE",
    "MASSplit",
    "NegativeQuotas",
    "SamplingWarning",
    "all_negative_quotas",
    "capped_proportional",
    "image_keys",
    "largest_remainder",
    "mas_arrays",
    "negative_quotas",
    "record_vote_distributions",
    "select_one_vs_rest",
    "split_mas",
    "split_mas_records",
]
