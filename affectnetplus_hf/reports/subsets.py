"""Tables and figures of the AffectNet+ subsets (paper Table 5 and Fig. 4; ``docs/method.md#subsets``).

:func:`subset_table` counts images per emotion (hard label) in each subset, per split, with the paper's
percentages (share of an emotion's images that fall in the subset; the ``Overall`` column is the share
of all images). :func:`subset_table_markdown` renders one split like Table 5;
:func:`write_subset_figures` draws ``PREFIX_{split}.png`` (Fig. 4-like stacked bars) and
:func:`write_subset_report` writes those with ``PREFIX.json`` and ``PREFIX.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectnetplus_hf.emotions import EMOTIONS, SUBSETS
from affectnetplus_hf.fileio import write_json_atomic, write_text_atomic
from affectnetplus_hf.reports.markdown import markdown_table

OVERALL = "Overall"
ROWS: tuple[str, ...] = ("all", *SUBSETS)


def _columns(labels: Any) -> tuple[list, list, list]:
    """``(split, hard_label, subset)`` lists from a pyarrow Table, a datasets.Dataset or a mapping."""
    is_arrow_table = hasattr(labels, "column_names") and hasattr(labels, "column") and not hasattr(labels, "features")

    def values(name: str) -> list:
        return labels.column(name).to_pylist() if is_arrow_table else list(labels[name])

    return values("split"), values("hard_label"), values("subset")


def subset_table(labels: Any, splits: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Paper Table 5 per split: ``{split: {"counts": {row: {emotion|Overall: n}}, "percent": {...}}}``.

    ``labels`` has columns ``split``, ``hard_label`` (0–7 or null) and ``subset`` (a subset name of
    ``docs/method.md#subsets`` or null); rows without a hard label or subset are counted under
    ``"without_hard_label"``. ``row`` is ``"all"`` or a subset; ``percent[subset][emotion] = 100 ·
    counts[subset][emotion] / counts["all"][emotion]`` (0 where the emotion has no image).
    """
    split_values, hard_values, subset_values = _columns(labels)
    order = list(splits) if splits is not None else list(dict.fromkeys(split_values))
    result: dict[str, dict[str, Any]] = {}
    for split in order:
        counts = {row: {name: 0 for name in (*EMOTIONS, OVERALL)} for row in ROWS}
        result[split] = {"counts": counts, "without_hard_label": 0}
    for split, hard, subset in zip(split_values, hard_values, subset_values):
        if split not in result:
            continue
        if hard is None or subset is None:
            result[split]["without_hard_label"] += 1
            continue
        if subset not in SUBSETS:
            raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")
        emotion = EMOTIONS[int(hard)]
        counts = result[split]["counts"]
        for row in ("all", subset):
            counts[row][emotion] += 1
            counts[row][OVERALL] += 1
    for split, entry in result.items():
        counts = entry["counts"]
        entry["percent"] = {
            subset: {
                name: round(100.0 * counts[subset][name] / counts["all"][name], 2) if counts["all"][name] else 0.0
                for name in (*EMOTIONS, OVERALL)
            }
            for subset in SUBSETS
        }
    return result


def subset_table_markdown(entry: Mapping[str, Any], title: str = "") -> str:
    """One split of :func:`subset_table` as a Markdown table laid out like the paper's Table 5."""
    names = (*EMOTIONS, OVERALL)
    counts, percent = entry["counts"], entry["percent"]
    rows = [["all", *(f"{counts['all'][n]:,}" for n in names)]]
    rows += [[subset, *(f"{counts[subset][n]:,} ({percent[subset][n]:.2f}%)" for n in names)] for subset in SUBSETS]
    lines = [f"**{title}**", ""] if title else []
    lines.append(markdown_table(["subset", *names], rows, align="l" + "r" * len(names)).rstrip("\n"))
    if entry.get("without_hard_label"):
        lines += ["", f"{entry['without_hard_label']:,} image(s) without a hard label (no subset) are not counted."]
    return "\n".join(lines) + "\n"


def write_subset_figures(
    table: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike, prefix: str = "subsets"
) -> dict[str, str]:
    """Draw ``PREFIX_{split}.png`` (Fig. 4-like) into ``out_dir`` for every split; returns ``{split: path}``."""
    from affectnetplus_hf.plots import plot_subset_distribution

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, entry in table.items():
        counts = {subset: {e: entry["counts"][subset][e] for e in EMOTIONS} for subset in SUBSETS}
        paths[split] = plot_subset_distribution(
            counts, out / f"{prefix}_{split}.png", title=f"AffectNet+ subsets — {split}"
        )
    return paths


def write_subset_report(
    table: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike, prefix: str = "subsets", figures: bool = True
) -> dict[str, str]:
    """Write ``PREFIX.json``, ``PREFIX.md`` and (``figures``) ``PREFIX_{split}.png`` into ``out_dir``, atomically.

    Returns ``{"json": path, "markdown": path, "figure:<split>": path, ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{prefix}.json", out / f"{prefix}.md"
    write_json_atomic(json_path, table)
    write_text_atomic(
        md_path, "\n".join(subset_table_markdown(entry, title=f"{split}") for split, entry in table.items())
    )
    paths = {"json": os.fspath(json_path), "markdown": os.fspath(md_path)}
    if figures:
        paths.update({f"figure:{split}": path for split, path in write_subset_figures(table, out, prefix).items()})
    return paths


__all__ = ["OVERALL", "subset_table", "subset_table_markdown", "write_subset_figures", "write_subset_report"]
