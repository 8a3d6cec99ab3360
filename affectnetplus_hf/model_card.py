"""Model cards of soft-labelers and baselines; kept so that ``affectnetplus_hf.model_card`` imports keep
working. The cards are rendered by :mod:`affectnetplus_hf.reports.model_card`: import from there."""

from affectnetplus_hf.reports.model_card import FERPLUS_MODE_DESCRIPTIONS as FERPLUS_MODE_DESCRIPTIONS
from affectnetplus_hf.reports.model_card import crowd_quality_section as crowd_quality_section
from affectnetplus_hf.reports.model_card import cs_comparison_table as cs_comparison_table
from affectnetplus_hf.reports.model_card import find_template as find_template
from affectnetplus_hf.reports.model_card import render as render
from affectnetplus_hf.reports.model_card import render_baseline_card as render_baseline_card
from affectnetplus_hf.reports.model_card import render_soft_labeler_card as render_soft_labeler_card
from affectnetplus_hf.reports.model_card import replace_card_section as replace_card_section
