"""Contact sheet of a synthetic sample (``sample_grid.png``): one labelled row per emotion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.sources.synthetic import read_ground_truth
from affectnetplus_hf.synthetic.items import SampleSpec

#: A cell of the sheet: ``(image_id, caption)``, or ``None`` for an empty cell.
Cell = tuple[str, str] | None


def _sheet_items(directory: Path, specs: list[SampleSpec] | None) -> list[tuple[str, int, int | None, float, str]]:
    """``(image_id, primary, secondary, blend_weight, part)`` per image, multi-annotated images first."""
    if specs is None:
        items = [
            (
                image_id,
                EMOTION_TO_INDEX[truth["primary"]],
                None if truth["secondary"] is None else EMOTION_TO_INDEX[truth["secondary"]],
                truth["blend_weight"],
                truth["part"],
            )
            for image_id, truth in read_ground_truth(directory).items()
        ]
    else:
        items = [(s.image_id, s.primary, s.secondary, s.blend_weight, s.part) for s in specs]
    items.sort(key=lambda item: item[4] != "multi_annotated")  # stable otherwise
    return items


def _sheet_grid(
    items: list[tuple[str, int, int | None, float, str]], pure_columns: int, blend_columns: int
) -> list[list[Cell]]:
    columns = pure_columns + blend_columns
    grid: list[list[Cell]] = []
    for e in range(NUM_EMOTIONS):
        pure = [(i, "") for i, p, s, _, _ in items if p == e and s is None][:pure_columns]
        # blends are captioned with the secondary's three-letter abbreviation and its weight
        blends = [(i, f"+{EMOTIONS[s][:3]} {w:.2f}") for i, p, s, w, _ in items if p == e and s is not None]
        row = pure + [None] * (pure_columns - len(pure)) + blends[:blend_columns]
        grid.append(row + [None] * (columns - len(row)))
    return grid


def save_contact_sheet(
    directory: str | os.PathLike,
    path: str | os.PathLike,
    specs: list[SampleSpec] | None = None,
    pure_columns: int = 6,
    blend_columns: int = 2,
    cell: int | None = None,
    colors: int | None = None,
) -> Path:
    """Save a contact sheet of the sample in ``directory``: one row per emotion (labelled).

    The first ``pure_columns`` cells of a row are pure images of the emotion, the last ``blend_columns``
    blends whose primary is that emotion (captioned with the secondary and its weight). ``specs`` (the
    writer's) saves reading ``ground_truth.csv``. ``cell`` resizes each image (default: the sample's size);
    ``colors`` quantizes the PNG palette (smaller file).
    """
    directory = Path(directory)
    grid = _sheet_grid(_sheet_items(directory, specs), pure_columns, blend_columns)
    first = next((c for row in grid for c in row if c is not None), None)
    if first is None:
        raise ValueError(f"{directory}: no images to show in a contact sheet")
    if cell:
        side = cell
    else:
        with Image.open(directory / first[0]) as img:
            side = img.size[0]
    mosaic = _paste_mosaic(directory, grid, side, pure_columns + blend_columns)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_labelled_figure(mosaic, grid, side, pure_columns, blend_columns, out)
    if colors:
        with Image.open(out) as img:
            quantized = img.convert("RGB").quantize(
                colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
        quantized.save(out, format="PNG", optimize=True)
    return out


def _paste_mosaic(directory: Path, grid: list[list[Cell]], side: int, columns: int) -> Image.Image:
    """The grid's images, each resized to ``side`` x ``side``, on a white canvas (empty cells stay white)."""
    mosaic = Image.new("RGB", (side * columns, side * NUM_EMOTIONS), (255, 255, 255))
    for r, row in enumerate(grid):
        for c, entry in enumerate(row):
            if entry is not None:
                with Image.open(directory / entry[0]) as img:
                    img = img.convert("RGB")
                    if img.size != (side, side):
                        img = img.resize((side, side), Image.Resampling.BILINEAR)
                    mosaic.paste(img, (c * side, r * side))
    return mosaic


def _save_labelled_figure(
    mosaic: Image.Image, grid: list[list[Cell]], side: int, pure_columns: int, blend_columns: int, out: Path
) -> None:
    """Save ``mosaic`` with matplotlib: the emotion names left of the rows, the captions and a title line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    label_w = 80
    caption_h = 14 if blend_columns else 0
    width_px, height_px = mosaic.size[0] + label_w, mosaic.size[1] + caption_h + 20
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes([label_w / width_px, 0, mosaic.size[0] / width_px, mosaic.size[1] / height_px])
    ax.imshow(np.asarray(mosaic), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(r + 0.5) * side for r in range(NUM_EMOTIONS)])
    ax.set_yticklabels(list(EMOTIONS), fontsize=9)
    ax.tick_params(length=0)
    for r, row in enumerate(grid):
        for c, entry in enumerate(row):
            if entry is not None and entry[1]:
                ax.text(
                    c * side + 2,
                    (r + 1) * side - 3,
                    entry[1],
                    fontsize=7,
                    color="white",
                    bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0},
                )
    fig.text(
        label_w / width_px,
        1 - 12 / height_px,
        f"pure emotions ({pure_columns} columns) | blends ({blend_columns} columns, +secondary weight)",
        fontsize=8,
        va="center",
    )
    fig.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(fig)


__all__ = ["save_contact_sheet"]
