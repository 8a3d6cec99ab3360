"""The figures are written, are real PNGs and reject wrong shapes."""

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf import plots


def _is_png(path):
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 100


def test_confusion_matrix_png(tmp_path):
    matrix = np.diag(np.arange(1, 9)) + 1
    assert _is_png(plots.plot_confusion_matrix(matrix, tmp_path / "cm.png", title="all"))
    with pytest.raises(ValueError, match="8x8"):
        plots.plot_confusion_matrix(np.zeros((7, 7)), tmp_path / "bad.png")


def test_ced_and_subset_and_examples(tmp_path):
    rng = np.random.default_rng(0)
    assert _is_png(plots.plot_ced_curves({"a": rng.random(50) * 0.5, "b": rng.random(30)}, tmp_path / "ced.png"))
    counts = {"easy": {"Happy": 5, "Sad": 2}, "challenging": {"Happy": 1}, "difficult": {"Fear": 3}}
    assert _is_png(plots.plot_subset_distribution(counts, tmp_path / "subsets.png"))
    faces = [np.full((32, 32, 3), 100 + 20 * k, dtype=np.uint8) for k in range(3)]
    sl = rng.random((3, 8))
    assert _is_png(
        plots.plot_soft_label_examples(faces, sl, tmp_path / "ex.png", titles=["a", "b", "c"], references=sl)
    )
    with pytest.raises(ValueError, match=r"\(3, 8\)"):
        plots.plot_soft_label_examples(faces, sl[:2], tmp_path / "bad.png")
