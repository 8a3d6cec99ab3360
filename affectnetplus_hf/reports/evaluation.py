"""Evaluation tables and reports (paper Sec. 4.3: Tables 5, 8–11, Figs. 1, 4, 5 and CED curves).

:func:`write_evaluation_tables` writes the Markdown tables of
:func:`affectnetplus_hf.evaluation.evaluate_predictions`; :func:`baselines_report` is the ``report.md``
of ``affectnetplus evaluate --baselines``, linking every table and figure; :func:`soft_label_quality_markdown`
is the ``soft_label_quality.md`` of ``affectnetplus evaluate --labels``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectnetplus_hf.emotions import SUBSETS
from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.reports.markdown import markdown_table
from affectnetplus_hf.reports.model_card import FERPLUS_MODE_DESCRIPTIONS, KIND_DESCRIPTIONS
from affectnetplus_hf.reports.subsets import subset_table_markdown

logger = logging.getLogger(__name__)

#: The tables of :func:`write_evaluation_tables`: file name → column headers.
EVALUATION_TABLES: dict[str, list[str]] = {
    "hard_label_metrics.md": [
        "model",
        "kind",
        "trained on",
        "evaluated on",
        "n",
        "accuracy %",
        "average accuracy %",
        "macro F1 %",
    ],
    "soft_label_metrics.md": ["model", "kind", "trained on", "evaluated on", "n", "W-MAE %", "W-FR %", "W-AUC %"],
    "soft_label_metrics_by_emotion.md": ["model", "kind", "trained on", "hard label", "W-MAE %", "W-FR %", "W-AUC %"],
}
#: The machine-readable file next to them.
EVALUATION_JSON = "evaluation.json"


def write_evaluation_tables(
    tables_dir: str | os.PathLike, rows: Mapping[str, Sequence[Sequence[Any]]], results: Mapping[str, Any]
) -> dict[str, str]:
    """Write each table of :data:`EVALUATION_TABLES` (``rows[name]``) and ``evaluation.json`` (``results``)
    into ``tables_dir``, atomically; returns ``{file name: path}``."""
    folder = Path(tables_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, header in EVALUATION_TABLES.items():
        write_text_atomic(folder / name, markdown_table(header, rows.get(name, [])))
        paths[name] = str(folder / name)
    write_text_atomic(folder / EVALUATION_JSON, json.dumps(results, indent=2, default=float) + "\n")
    paths[EVALUATION_JSON] = str(folder / EVALUATION_JSON)
    return paths


def ground_truth_markdown(results: Mapping[str, Any]) -> str:
    """Markdown for the synthetic sample: W-metrics of the soft labels and of one-hot labels vs the truth."""
    truth = results.get("synthetic_ground_truth")
    if not truth:
        return ""
    rows = []
    for name, key in (
        ("AffectNet+ soft labels", "soft_labels_vs_truth"),
        ("one-hot hard labels", "one_hot_hard_labels_vs_truth"),
    ):
        values = truth[key]
        rows.append([name, "all", values["w_mae"], values["w_fr"], values["w_auc"]])
        for group in SUBSETS:
            if group in values.get("w_mae_by", {}):
                rows.append(
                    [name, group, values["w_mae_by"][group], values["w_fr_by"][group], values["w_auc_by"][group]]
                )
    return markdown_table(["labels", "subset", "W-MAE %", "W-FR %", "W-AUC %"], rows)


def _relative(path: str | os.PathLike, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _dataset_statistics_markdown(dataset_dir: Path) -> str:
    """The dataset's Table 5 (subset × emotion counts) from its ``statistics.json`` when present."""
    path = dataset_dir / "statistics.json"
    if not path.is_file():
        return ""
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
        table = stats.get("subset_table", stats)
        parts = [
            subset_table_markdown(entry, title=f"{split} split")
            for split, entry in table.items()
            if isinstance(entry, dict)
        ]
        return "\n".join(p for p in parts if p)
    except (ValueError, KeyError, TypeError) as error:  # a hand-edited file: leave the table out
        logger.warning("%s: cannot render the subset table (%s)", path, error)
        return ""


def _trained_model(model: Mapping[str, Any]) -> str:
    """A manifest entry as ``name (n images[; left out: ...])``."""
    gone = model.get("left_out") or {}
    if not any(gone.values()):
        return f"{model['name']} ({model['n_train']} images)"
    return (
        f"{model['name']} ({model['n_train']} images; left out: {gone.get('discarded', 0)} discarded by FER+, "
        f"{gone.get('without_votes', 0)} without votes)"
    )


def baselines_report(
    results: Mapping[str, Any], dataset_dir, manifest: Mapping[str, Any], output: Path, split: str, truth_markdown: str
) -> str:
    """``report.md``: what was measured, with links to every table and figure (relative paths)."""
    dataset_dir = Path(dataset_dir)
    tables = output / "tables"
    lines = [
        "# AffectNet+ baselines report",
        "",
        f"Dataset: `{dataset_dir}` — evaluated on its `{split}` split ({results['n_images']} images: "
        + ", ".join(f"{g} {n}" for g, n in results["subset_sizes"].items() if g != "all")
        + ").",
        f"Baselines from `{manifest.get('preset', '?')}` preset; W-FR/W-AUC with ε = {results['epsilon']}.",
        "",
    ]
    statistics = _dataset_statistics_markdown(dataset_dir)
    if statistics:
        lines += ["## Subsets of the dataset (paper Table 5)", "", statistics, ""]
    subset_figures = sorted((dataset_dir / "images").glob("*.png")) if (dataset_dir / "images").is_dir() else []
    for figure in subset_figures:
        lines += [f"![{figure.stem}]({_relative(figure, output)})", ""]
    if truth_markdown:
        lines += [
            "## Soft labels against the synthetic ground truth",
            "",
            "How far AffectNet+'s soft labels (and, for comparison, one-hot hard labels) are from the "
            "sample's ground-truth soft labels (blend weights; a weak face's missing intensity on "
            "Neutral) — lower W-MAE / W-FR and higher W-AUC are better.",
            "",
            truth_markdown,
            "",
        ]
    if results.get("example_figure"):
        lines += [
            "## Soft labels on example faces (paper Fig. 1)",
            "",
            f"![soft-label examples]({_relative(results['example_figure'], output)})",
            "",
        ]
    lines += _baseline_kinds_lines(manifest)
    lines += [
        "## Hard-label metrics (paper Tables 8–9)",
        "",
        (tables / "hard_label_metrics.md").read_text(),
        "",
        "## Soft-label metrics per subset (paper Table 10)",
        "",
        (tables / "soft_label_metrics.md").read_text(),
        "",
        "## Soft-label metrics per emotion (paper Table 11)",
        "",
        (tables / "soft_label_metrics_by_emotion.md").read_text(),
        "",
    ]
    lines += _figure_lines(results.get("figures", []), output)
    trained = ", ".join(_trained_model(m) for m in manifest["models"])
    lines += [
        "## Files",
        "",
        f"- models: {trained}",
        f"- skipped training sets: {manifest['skipped'] or 'none'}",
        "- `tables/evaluation.json`: every number above, machine-readable",
        "",
    ]
    return "\n".join(lines)


def _baseline_kinds_lines(manifest: Mapping[str, Any]) -> list[str]:
    """The report's "Baselines" section: each trained kind described."""
    lines: list[str] = []
    kinds = [k for k in KIND_DESCRIPTIONS if any(m["kind"] == k for m in manifest["models"])]
    if kinds:
        lines += ["## Baselines", ""]
        lines += [f"- `{k}` — {KIND_DESCRIPTIONS[k]}" for k in kinds]
        if any(k in FERPLUS_MODE_DESCRIPTIONS for k in kinds):
            lines += [
                "",
                "The FER+ modes (Barsoum et al. 2016) learn from each training image's annotator votes; "
                "they are scored like Hard-FER on their argmax and, like Soft-FER, with W-MAE / W-FR / W-AUC "
                "on their softmax.",
            ]
        lines += [""]
    return lines


def _figure_lines(figures, output: Path) -> list[str]:
    """The report's confusion-matrix and CED figure sections."""
    lines: list[str] = []
    confusion = [f for f in figures if Path(f).name.startswith("confusion_")]
    ced = [f for f in figures if Path(f).name.startswith("ced_")]
    if confusion:
        lines += ["## Confusion matrices (paper Fig. 5)", ""]
        lines += [f"![{Path(f).stem}]({_relative(f, output)})" for f in confusion] + [""]
    if ced:
        lines += ["## Cumulative error distributions of e_k", ""]
        lines += [f"![{Path(f).stem}]({_relative(f, output)})" for f in ced] + [""]
    return lines


#: The label sets of :func:`soft_label_quality_markdown`: (row name, key of the result).
QUALITY_LABELS: tuple[tuple[str, str], ...] = (
    ("AffectNet+ soft labels", "soft_labels"),
    ("calibrated soft labels", "calibrated_soft_labels"),
    ("one-hot hard labels", "one_hot_hard_labels"),
)


def soft_label_quality_markdown(result: Mapping[str, Any]) -> str:
    """``soft_label_quality.md``: W-MAE / W-FR / W-AUC of each label set against the references, per
    ``split/subset``, then each normalised to sum 1 (``docs/method.md#quality-against-people``)."""
    rows = []
    for name, key in QUALITY_LABELS:
        if key not in result:
            continue
        values = result[key]
        rows.append([name, "all", values["w_mae"], values["w_fr"], values["w_auc"]])
        rows += [
            [name, group, values["w_mae_by"][group], values["w_fr_by"][group], values["w_auc_by"][group]]
            for group in sorted(values["w_mae_by"])
        ]
    normalised = []
    for name, key in QUALITY_LABELS:
        if key in result["normalised"]:
            quality = result["normalised"][key]
            kl = "–" if quality["kl"] is None else f"{quality['kl']:.3f}"
            normalised.append(
                [name, quality["w_mae"], quality["w_fr"], quality["w_auc"], kl, f"{quality['majority_acc']:.3f}"]
            )
    what = "the synthetic ground truth" if result["reference"] == "truth" else "the annotators' vote distributions"
    return (
        f"# Soft labels against {what}\n\n{result['n_images']} images ({result['left_out']} without a reference "
        f"left out); ε = {result['epsilon']}. Lower W-MAE/W-FR and higher W-AUC are better.\n\n"
        + markdown_table(["labels", "split/subset", "W-MAE %", "W-FR %", "W-AUC %"], rows)
        + "\n## Each prediction normalised to sum 1\n\nKL(reference ‖ prediction) in nats (– : infinite); "
        "majority acc: the top emotion holds the reference's largest share.\n\n"
        + markdown_table(["labels", "W-MAE %", "W-FR %", "W-AUC %", "KL", "majority acc"], normalised)
    )


__all__ = [
    "EVALUATION_JSON",
    "EVALUATION_TABLES",
    "baselines_report",
    "ground_truth_markdown",
    "soft_label_quality_markdown",
    "write_evaluation_tables",
]
