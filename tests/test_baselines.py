"""Baselines per subset from the exported dataset, their evaluation report, soft labels vs references
(issue 5 item 5), and the ``baseline``/``evaluate`` CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf import baselines  # noqa: E402
from affectnetplus_hf.emotions import SUBSETS  # noqa: E402
from affectnetplus_hf.metrics import functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_labeling import make_sample, make_tiny_labeler  # noqa: E402

FAST = dict(epochs=1, batch_size=16, image_size=32, progress=False, log_with="none")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset
    from affectnetplus_hf.training import TrainConfig

    root = tmp_path_factory.mktemp("baselines")
    model = make_tiny_labeler(root / "model")
    sample = make_sample(root / "sample", n_train=40, n_val=16)
    labels = root / "labels"
    label_dataset(model, sample, labels, LabelingConfig(shard_size=32, batch_size=16, num_threads=1, progress=False))
    dataset = root / "dataset"
    build_dataset(sample, labels, dataset, metadata="synthetic", progress=False)
    out = root / "baselines"
    manifest = baselines.train_baselines(dataset, out, TrainConfig(preset="tiny", **FAST))
    return {"root": root, "sample": sample, "labels": labels, "dataset": dataset, "out": out, "manifest": manifest}


def test_one_model_per_kind_and_training_set(pipeline):
    from datasets import load_dataset

    manifest, dataset = pipeline["manifest"], pipeline["dataset"]
    trained = {(m["kind"], m["trained_on"]): m for m in manifest["models"]}
    skipped = {s["trained_on"] for s in manifest["skipped"]}
    assert set(t for _, t in trained) | skipped == set(baselines.TRAINING_SETS)
    assert trained[("hard", "all")]["n_train"] == 40 and trained[("soft", "all")]["n_train"] == 40
    train_subsets = load_dataset(str(dataset), split="train")["subset"]
    for subset in SUBSETS:
        n = sum(1 for s in train_subsets if s == SUBSETS.index(subset))
        if n:
            assert trained[("hard", subset)]["n_train"] == n and trained[("soft", subset)]["n_train"] == n
        else:
            assert subset in skipped
    for entry in manifest["models"]:
        folder = pipeline["out"] / entry["path"]
        assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == f"affectnetplus-{entry['kind']}-fer"
    assert json.loads((pipeline["out"] / baselines.MANIFEST).read_text())["models"] == manifest["models"]


def test_rerun_keeps_finished_models(pipeline):
    from affectnetplus_hf.training import TrainConfig

    weights = pipeline["out"] / "hard_fer_all" / "model.safetensors"
    before = weights.read_bytes(), weights.stat().st_mtime_ns
    again = baselines.train_baselines(pipeline["dataset"], pipeline["out"], TrainConfig(preset="tiny", **FAST),
                                      kinds=["hard"], training_sets=["all"])
    assert again["models"][0]["reused"] is True
    assert (weights.read_bytes(), weights.stat().st_mtime_ns) == before


def test_evaluation_report_numbers_match_the_models(pipeline):
    from transformers import AutoModel

    report_dir = pipeline["root"] / "report"
    results = baselines.evaluate_baselines(pipeline["dataset"], pipeline["out"], report_dir, progress=False)
    data = baselines.load_split(pipeline["dataset"], "default", "validation")
    assert results["n_images"] == 16 == len(data.records)
    model = AutoModel.from_pretrained(str(pipeline["out"] / "soft_fer_all"))
    scores = baselines.predict_records(model, data.records, progress=False)
    entry = results["models"]["soft_fer_all"]
    assert entry["hard"]["all"]["accuracy"] == pytest.approx(100 * np.mean(scores.argmax(1) == data.hard_labels))
    assert entry["soft"]["all"]["w_mae"] == pytest.approx(F.w_mae(data.soft_labels, np.clip(scores, 0, 1)), abs=1e-4)
    # the synthetic ground truth travels through the dataset: soft labels and one-hot both scored against it
    truth = results["synthetic_ground_truth"]
    one_hot = np.eye(8, dtype=np.float32)[data.hard_labels]
    assert truth["one_hot_hard_labels_vs_truth"]["w_mae"] == pytest.approx(F.w_mae(data.true_soft_labels, one_hot), abs=1e-4)
    report = (report_dir / "report.md").read_text()
    for needed in ("Table 5", "Tables 8–9", "Table 10", "Table 11", "Fig. 5", "figures/soft_label_examples.png",
                   "synthetic ground truth", "hard_fer_all"):
        assert needed in report, needed
    for line in report.splitlines():  # every linked figure exists
        if line.startswith("!["):
            target = line.split("](", 1)[1].rstrip(")")
            assert (report_dir / target).is_file(), target
    assert (report_dir / "figures" / "confusion_hard_fer_all_all.png").is_file()
    assert (report_dir / "figures" / "ced_soft_fer_all.png").is_file()


def test_soft_labels_against_the_ground_truth(pipeline):
    from affectnetplus_hf.labeling import load_labels
    from affectnetplus_hf.sources.synthetic import read_ground_truth

    out = pipeline["root"] / "quality"
    result = baselines.evaluate_soft_labels(pipeline["labels"], pipeline["sample"], out)
    assert result["reference"] == "truth" and result["n_images"] == 56 and result["left_out"] == 0
    labels = load_labels(pipeline["labels"]).to_pylist()
    truth = read_ground_truth(pipeline["sample"])  # {image_id: {"soft_label": (8,), ...}}
    soft = np.asarray([r["soft_label"] for r in labels], dtype=np.float32)
    reference = np.asarray([truth[r["image_id"]]["soft_label"] for r in labels], dtype=np.float32)
    assert result["soft_labels"]["w_mae"] == pytest.approx(F.w_mae(reference, np.clip(soft, 0, 1)), abs=1e-4)
    assert (out / "soft_label_quality.md").read_text().count("| AffectNet+ soft labels |") >= 2


def test_vote_distributions_hand_worked():
    votes = np.array([[3, 1, 0, 0, 0, 0, 0, 1], [0] * 8])
    shares = baselines.vote_distributions(votes)
    np.testing.assert_allclose(shares[0], [0.6, 0.2, 0, 0, 0, 0, 0, 0.2])
    assert np.isnan(shares[1]).all()


def test_bad_inputs(pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="baselines.json"):
        baselines.evaluate_baselines(pipeline["dataset"], tmp_path, tmp_path / "r", progress=False)
    with pytest.raises(FileNotFoundError, match="not a folder written by"):
        baselines.train_baselines(pipeline["sample"], tmp_path / "b")
    with pytest.raises(ValueError, match="kinds"):
        baselines.train_baselines(pipeline["dataset"], tmp_path / "b", kinds=["medium"])
    with pytest.raises(ValueError, match="reference"):
        baselines.evaluate_soft_labels(pipeline["labels"], pipeline["sample"], tmp_path, reference="oracle")
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((pipeline["out"] / baselines.MANIFEST).read_text())
    (broken / baselines.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="hard_fer_all"):
        baselines.evaluate_baselines(pipeline["dataset"], broken, tmp_path / "r", progress=False)


def test_cli_baseline_and_evaluate(pipeline, tmp_path, capsys):
    from affectnetplus_hf.cli import main

    out = tmp_path / "cli_baselines"
    code = main(["baseline", str(pipeline["dataset"]), str(out), "--kinds", "hard", "--sets", "all",
                 "--preset", "tiny", "--epochs", "1", "--image_size", "32", "--progress", "false",
                 "--log_with", "none"])
    assert code == 0
    assert [m["name"] for m in json.loads((out / "baselines.json").read_text())["models"]] == ["hard_fer_all"]
    capsys.readouterr()
    assert main(["evaluate", str(pipeline["dataset"]), "--baselines", str(out), "--output", str(tmp_path / "rep"),
                 "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["all"]) == {"hard_fer_all"} and (tmp_path / "rep" / "report.md").is_file()
    assert main(["evaluate", str(pipeline["sample"]), "--labels", str(pipeline["labels"]),
                 "--output", str(tmp_path / "q"), "--reference", "truth"]) == 0
    assert "ground truth" in capsys.readouterr().out
