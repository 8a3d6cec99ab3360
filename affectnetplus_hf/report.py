"""The subset tables and figures (paper Table 5, Fig. 4); kept so that ``affectnetplus_hf.report``
imports keep working. They live in :mod:`affectnetplus_hf.reports.subsets`: import from there."""

from affectnetplus_hf.reports.subsets import OVERALL as OVERALL
from affectnetplus_hf.reports.subsets import subset_table as subset_table
from affectnetplus_hf.reports.subsets import subset_table_markdown as subset_table_markdown
from affectnetplus_hf.reports.subsets import write_subset_figures as write_subset_figures
from affectnetplus_hf.reports.subsets import write_subset_report as write_subset_report
