"""``affectnetplus predict``: csv / jsonl / parquet / stdout table, bad images."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from affectnetplus_hf.cli import main
from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.models import (
    AUExpressionClassifier,
    AUExpressionClassifierConfig,
    BinaryExpressionClassifier,
    BinaryExpressionClassifierConfig,
    SoftLabeler,
)

SIZE = 32


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    ebc = {
        ("test_resnet", e): BinaryExpressionClassifier(
            BinaryExpressionClassifierConfig(backbone="test_resnet", emotion=e, image_size=SIZE)
        )
        for e in EMOTIONS
    }
    au = {
        e: AUExpressionClassifier(AUExpressionClassifierConfig(backbone="test_resnet", emotion=e, image_size=SIZE))
        for e in EMOTIONS
    }
    for member in [*ebc.values(), *au.values()]:
        with torch.no_grad():
            member.classifier.weight.normal_(0, 0.5)
    model = SoftLabeler.from_members(ebc, au, {"ebc": np.full((1, 8), 0.8), "au": np.full(8, 0.7)})
    model.save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        path = root / f"face{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    expected = model.predict(images).soft_label.numpy()
    return root, images, expected


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_writes_one_row_per_image(saved, suffix):
    root, images, expected = saved
    output = root / f"out{suffix}"
    assert (
        main(
            [
                "predict",
                str(root / "model"),
                *images,
                "--output",
                str(output),
                "--batch-size",
                "2",
                "--spread",
                "--detector",
                "none",
            ]
        )
        == 0
    )
    if suffix == ".csv":
        with open(output, newline="") as handle:
            rows = list(csv.DictReader(handle))
    elif suffix == ".jsonl":
        rows = [json.loads(line) for line in output.read_text().splitlines()]
    else:
        rows = pq.read_table(output).to_pylist()
    assert [r["path"] for r in rows] == images
    values = np.array([[float(r[e]) for e in EMOTIONS] for r in rows])
    np.testing.assert_allclose(values, expected, atol=1e-5)
    assert all(f"{e}_spread" in rows[0] for e in EMOTIONS)
    assert [r["status"] for r in rows] == ["whole_image"] * 3


def test_predict_prints_table_and_reports_bad_images(saved, capsys, tmp_path):
    root, images, expected = saved
    assert main(["predict", str(root / "model"), images[0], "--detector", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["path", "face", "x0", "y0", "x1", "y1", "score", "status", *EMOTIONS]
    assert float(lines[1].split()[8]) == pytest.approx(expected[0, 0], abs=1e-5)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert main(["predict", str(root / "model"), images[0], str(broken), "--detector", "none"]) == 1
    assert main(["predict", str(root / "model"), images[0], str(broken)]) == 1
    output = tmp_path / "kept.csv"
    assert (
        main(
            [
                "predict",
                str(root / "model"),
                images[0],
                str(broken),
                "--skip-bad",
                "--output",
                str(output),
                "--detector",
                "none",
            ]
        )
        == 0
    )
    assert len(output.read_text().splitlines()) == 2
    assert main(["predict", str(root / "model"), images[0], "--output", str(tmp_path / "x.txt")]) == 1
