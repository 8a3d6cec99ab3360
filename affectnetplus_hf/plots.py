"""Figures a person would rather look at than read (paper Figs. 1, 4, 5 and CED curves), written to PNG files.

Matplotlib draws with its non-interactive ``Agg`` backend (``matplotlib.figure.Figure``, no pyplot state),
so figures can be drawn from any thread or process without a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.fileio import atomic_path


def _figure(figsize: tuple[float, float], rows: int = 1, columns: int = 1, **options):
    """A new figure and its axes (``subplots`` arguments)."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, **options)


def _save(figure, path: str | os.PathLike) -> str:
    """Write ``figure`` as a PNG to ``path`` atomically (no timestamp or software metadata); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return path


def plot_confusion_matrix(
    matrix, path, labels: Sequence[str] = EMOTIONS, title: str = "", normalize: bool = True
) -> str:
    """Confusion matrix like the paper's Fig. 5 (rows = true label, columns = prediction, row-normalised %)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix must be {len(labels)}x{len(labels)}, got shape {matrix.shape}")
    shown = matrix
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        shown = 100.0 * np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    figure, axis = _figure((6.2, 5.4))
    image = axis.imshow(shown, cmap="Blues", vmin=0, vmax=100 if normalize else None)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = shown[i, j]
            axis.text(
                j,
                i,
                f"{value:.0f}" if normalize else f"{int(value)}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value > (60 if normalize else shown.max() * 0.6) else "black",
            )
    figure.colorbar(image, ax=axis, fraction=0.046, label="% of true label" if normalize else "images")
    axis.set_title(title)
    return _save(figure, path)


def plot_ced_curves(errors_by_name: Mapping[str, np.ndarray], path, epsilon: float = 0.3, title: str = "") -> str:
    """Cumulative error distribution of the per-sample weighted errors e_k (paper Eq. 15,
    ``docs/method.md#metrics``), one curve per name.

    The area under each curve on [0, ε], divided by ε, is the W-AUC; the dashed line marks ε (W-FR threshold).
    """
    figure, axis = _figure((6, 4))
    for name, errors in errors_by_name.items():
        errors = np.sort(np.asarray(errors, dtype=np.float64))
        if errors.size == 0:
            continue
        fraction = np.arange(1, errors.size + 1) / errors.size
        axis.step(
            np.concatenate([[0.0], errors]),
            np.concatenate([[0.0], fraction]) * 100,
            where="post",
            label=f"{name} (n={errors.size})",
        )
    axis.axvline(epsilon, color="grey", linestyle="--", linewidth=1, label=f"ε = {epsilon}")
    axis.set_xlim(0, max(1.0, epsilon))
    axis.set_ylim(0, 100)
    axis.set_xlabel("weighted error e_k")
    axis.set_ylabel("images with error ≤ x (%)")
    axis.set_title(title or "Cumulative error distribution")
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def plot_subset_distribution(counts: Mapping[str, Mapping[str, int]], path, title: str = "") -> str:
    """Stacked bars of images per emotion in each subset, like the paper's Fig. 4.

    ``counts[subset][emotion]`` = number of images.
    """
    subsets = list(counts)
    figure, axis = _figure((7, 4))
    bottom = np.zeros(len(EMOTIONS))
    colours = {"easy": "#4daf4a", "challenging": "#ff7f00", "difficult": "#e41a1c"}
    for subset in subsets:
        values = np.array([counts[subset].get(emotion, 0) for emotion in EMOTIONS], dtype=float)
        axis.bar(EMOTIONS, values, bottom=bottom, label=subset, color=colours.get(subset))
        bottom += values
    axis.set_ylabel("images")
    axis.set_title(title or "Images per emotion and subset")
    axis.tick_params(axis="x", rotation=45)
    axis.legend()
    return _save(figure, path)


def plot_soft_label_examples(
    images: Sequence, soft_labels, path, titles: Sequence[str] | None = None, references=None, columns: int = 4
) -> str:
    """Faces with bar charts of their soft labels (paper Fig. 1); ``references`` adds ground-truth bars."""
    soft_labels = np.asarray(soft_labels, dtype=np.float64)
    n = len(images)
    if soft_labels.shape != (n, len(EMOTIONS)):
        raise ValueError(f"soft_labels must be ({n}, 8) for {n} images, got shape {soft_labels.shape}")
    rows = (n + columns - 1) // columns
    figure, axes = _figure(
        (2.6 * columns, 4.4 * rows), rows * 2, columns, gridspec_kw={"height_ratios": [1.2, 1] * rows}, squeeze=False
    )
    positions = np.arange(len(EMOTIONS))
    for k in range(rows * columns):
        image_axis, bar_axis = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
        image_axis.axis("off")
        if k >= n:
            bar_axis.axis("off")
            continue
        image_axis.imshow(np.asarray(images[k]))
        if titles is not None:
            image_axis.set_title(titles[k], fontsize=8)
        width = 0.4 if references is not None else 0.8
        bar_axis.bar(
            positions - (width / 2 if references is not None else 0),
            soft_labels[k],
            width=width,
            color="#377eb8",
            label="soft label",
        )
        if references is not None:
            bar_axis.bar(
                positions + width / 2, np.asarray(references)[k], width=width, color="#bbbbbb", label="ground truth"
            )
        bar_axis.set_ylim(0, 1)
        bar_axis.set_xticks(positions, [e[:3] for e in EMOTIONS], fontsize=6, rotation=90)
        bar_axis.tick_params(axis="y", labelsize=6)
    if references is not None:
        axes[1, 0].legend(fontsize=6)
    figure.tight_layout()
    return _save(figure, path)
