"""``affectnetplus train``: config parsing, soft-labeler families and baselines on a small sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectnetplus_hf.cli import main
from affectnetplus_hf.commands.train import parse_train_config
from affectnetplus_hf.emotions import EMOTIONS


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from affectnetplus_hf.sample import write_sample

    directory = tmp_path_factory.mktemp("sample")
    write_sample(directory, n_train=48, n_val=8, n_mas=240, image_size=64, progress=False, contact_sheet=False)
    return directory


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: /somewhere\npreset: paper\nebc_epochs: 2\ncs_mode: eq3\nebc_backbones: [resnet18, resnet34]\n")
    config = parse_train_config(["--config", str(path), "--output", "out", "--ebc-epochs", "5"])
    assert (config.data, config.output_dir, config.preset, config.cs_mode) == ("/somewhere", "out", "paper", "eq3")
    assert config.ebc_epochs == 5 and config.ebc_backbones == ["resnet18", "resnet34"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: x\nebc_epoch: 2\n")
    with pytest.raises(ValueError, match=r"unknown options \['ebc_epoch'\]"):
        parse_train_config(["--config", str(bad)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        parse_train_config(["--config", str(tmp_path / "missing.yaml")])


def test_missing_data_is_a_clear_error(tmp_path, caplog):
    assert main(["train", "ebc", "--output", str(tmp_path / "m")]) == 1
    assert "needs --data" in caplog.text


def test_train_ebc_family_saves_a_soft_labeler(sample, tmp_path, capsys):
    out = tmp_path / "ebc"
    code = main(["train", "ebc", "--data", str(sample), "--output", str(out), "--preset", "tiny",
                 "--ebc-epochs", "1", "--no_progress", "--log_with", "none", "--image_size", "32"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["families"] == ["ebc"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "train_config.json", "README.md",
                 "confidence_scores.json", "confidence_scores.md", "mas_split/split.csv", "mas_split/report.json"):
        assert (out / name).is_file(), name
    assert not (out / "_training").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["au_backbones"] == [] and config["ebc_backbones"] == ["test_resnet"]
    for mode in ("balanced", "eq3"):
        scores = np.asarray(config["confidence_scores"][mode]["ebc"])
        assert scores.shape == (1, 8) and np.all((scores >= 0) & (scores <= 1))
    table = json.loads((out / "confidence_scores.json").read_text())
    assert set(table["members"]) == {f"ebc-test_resnet-{e}" for e in EMOTIONS}
    card = (out / "README.md").read_text()
    assert "paper EBC" in card and "81.33" in card and "(unknown" not in card
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["ebc_epochs"] == 1 and saved["image_size"] == 32

    from affectnetplus_hf.models import SoftLabeler

    model = SoftLabeler.from_pretrained(str(out))
    import torch

    with torch.no_grad():
        soft = model(pixel_values=torch.zeros(2, 3, 32, 32)).soft_label
    assert soft.shape == (2, 8)


def test_train_baseline_hard_and_soft(sample, tmp_path):
    for kind in ("hard", "soft"):
        out = tmp_path / kind
        code = main(["train", "baseline", "--kind", kind, "--data", str(sample), "--output", str(out),
                     "--epochs", "1", "--image_size", "32", "--no_progress", "--log_with", "none",
                     "--class_balance", "both"])
        assert code == 0
        config = json.loads((out / "config.json").read_text())
        assert config["model_type"] == ("affectnetplus-hard-fer" if kind == "hard" else "affectnetplus-soft-fer")
        if kind == "hard":
            assert len(config["class_weights"]) == 8
        assert "Hard-FER" in (out / "README.md").read_text() if kind == "hard" else "Soft-FER" in (out / "README.md").read_text()


def test_distribution_family_trains_on_every_voted_image_and_calibrates(sample, tmp_path, capsys):
    """``--families ebc dist``: the distribution members learn from every multi-annotated image outside
    test-MAS (those without a majority too), the calibration is fitted on a held-out share, and
    ``affectnetplus calibrate`` refits it in place."""
    from affectnetplus_hf.sources import open_multi_annotated
    from affectnetplus_hf.training.calibrate import hold_out

    out = tmp_path / "dist"
    code = main(["train", "softlabeler", "--data", str(sample), "--output", str(out), "--preset", "tiny",
                 "--families", "ebc,dist", "--ebc-epochs", "1", "--dist_epochs", "1", "--dist_members", "2",
                 "--calibration_split", "holdout", "--calibration_fraction", "0.2", "--no_progress",
                 "--log_with", "none", "--image_size", "32"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["families"] == ["ebc", "dist"]
    assert set(summary["quality_against_votes"]) == {"soft_label", "ebc", "dist", "soft_label_calibrated"}
    config = json.loads((out / "config.json").read_text())
    assert config["dist_backbones"] == ["test_resnet", "test_resnet"] and config["test_time_flip"] is True
    calibration = config["calibration"]
    assert calibration["inputs"] == ["ebc", "dist"] and calibration["fitted_on"]["split"] == "holdout"

    records = [r for r in open_multi_annotated(sample).records(None) if r.votes is not None]
    kept, held = hold_out(records, 0.2, seed=0)
    assert calibration["fitted_on"]["n"] == len(held)
    split = (out / "mas_split" / "split.csv").read_text().splitlines()
    test_ids = {line.split(",")[0] for line in split[1:] if ",test," in line}
    table = json.loads((out / "confidence_scores.json").read_text())
    voted = [r for r in kept if r.image_id not in test_ids and r.votes.sum() > 0]
    assert table["timings"]["dist_images"] == len(voted)           # includes the images without a majority
    n_majority = sum(1 for line in split[1:] if ",train," in line)
    assert len(voted) > n_majority
    assert set(table["dist_members"]) == {"dist-test_resnet-0", "dist-test_resnet-1"}
    card = (out / "README.md").read_text()
    assert "Quality against people" in card and "calibrated soft label" in card

    assert main(["calibrate", str(out), "--data", str(sample), "--split", "train", "--objective", "w_mae"]) == 0
    refit = json.loads((out / "config.json").read_text())["calibration"]
    assert refit["objective"] == "w_mae" and refit["fitted_on"]["split"] == "train"
    card = (out / "README.md").read_text()
    assert card.count("## Quality against people") == 1 and "`train`" in card
