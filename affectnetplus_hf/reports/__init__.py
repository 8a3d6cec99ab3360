"""Rendering of every report and card the stages write; the stages compute, these modules render.

* :mod:`~affectnetplus_hf.reports.markdown` — Markdown tables and the card templates' location;
* :mod:`~affectnetplus_hf.reports.licenses` — the one table of data licenses, by source kind;
* :mod:`~affectnetplus_hf.reports.subsets` — the subset tables and figures (paper Table 5, Fig. 4);
* :mod:`~affectnetplus_hf.reports.dataset_card` — the dataset folder's ``README.md``;
* :mod:`~affectnetplus_hf.reports.model_card` — the ``README.md`` of soft-labelers and baselines;
* :mod:`~affectnetplus_hf.reports.evaluation` — the evaluation tables and reports (paper Sec. 4.3).

Import from the modules themselves; this package module imports none of them.
"""
