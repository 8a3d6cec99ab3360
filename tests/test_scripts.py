"""scripts/ferplus.sh, scripts/reproduce_affectnetplus.sh and scripts/train_pretrained.sh run end to end
(shrunk data)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from affectnetplus_hf.emotions import EMOTIONS, FERPLUS_EMOTION_COLUMNS

REPO = Path(__file__).resolve().parents[1]
FAST_FLAGS = [
    "--ebc_epochs",
    "1",
    "--au_epochs",
    "1",
    "--dist_epochs",
    "1",
    "--epochs",
    "1",
    "--image_size",
    "32",
    "--progress",
    "false",
    "--log_with",
    "none",
]


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PYTHON=sys.executable,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        OMP_NUM_THREADS="1",
        MKL_CBWR="AUTO,STRICT",
        PYTHONPATH=str(REPO),
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from affectnetplus_hf.synthetic import write_sample

    root = tmp_path_factory.mktemp("scripts") / "sample"
    write_sample(root, n_train=48, n_val=16, n_mas=240, image_size=48, seed=5, contact_sheet=False, progress=False)
    return root


def ferplus_from_sample(sample: Path, root: Path) -> Path:
    """The sample's multi-annotated part in FER+'s layout: fer2013new.csv (FER+ column order) + PNG folders;
    every 4th image goes to PrivateTest (FER2013Test/), every 8th from the 3rd to PublicTest
    (FER2013Valid/), the rest to Training (FER2013Train/)."""
    root.mkdir(parents=True)
    rows = list(csv.DictReader(open(sample / "multi_annotated" / "votes.csv", newline="")))
    out = [["Usage", "Image name", *FERPLUS_EMOTION_COLUMNS, "unknown", "NF"]]
    emotion_of_ferplus_column = {
        "neutral": "Neutral",
        "happiness": "Happy",
        "surprise": "Surprise",
        "sadness": "Sad",
        "anger": "Anger",
        "disgust": "Disgust",
        "fear": "Fear",
        "contempt": "Contempt",
    }
    assert set(emotion_of_ferplus_column.values()) == set(EMOTIONS)
    for k, row in enumerate(rows):
        usage, folder = (
            ("PrivateTest", "FER2013Test")
            if k % 4 == 0
            else ("PublicTest", "FER2013Valid")
            if k % 8 == 2
            else ("Training", "FER2013Train")
        )
        name = f"fer{k:07d}.png"
        (root / folder).mkdir(exist_ok=True)
        shutil.copyfile(sample / "multi_annotated" / row["image"], root / folder / name)
        out.append([usage, name, *[row[emotion_of_ferplus_column[c]] for c in FERPLUS_EMOTION_COLUMNS], "0", "0"])
    with open(root / "fer2013new.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(out)
    return root


@pytest.mark.slow
def test_ferplus_script_trains_on_training_votes_and_scores_test_labels(sample, tmp_path):
    from affectnetplus_hf.labeling import load_labels
    from affectnetplus_hf.mas import MASSplit

    ferplus = ferplus_from_sample(sample, tmp_path / "ferplus")
    out = tmp_path / "out"
    completed = subprocess.run(
        ["bash", str(REPO / "scripts" / "ferplus.sh"), str(ferplus), str(out), *FAST_FLAGS],
        env=dict(_env(), PRESET="tiny"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    split = MASSplit.load(out / "softlabeler" / "mas_split")
    used = set(split.train_ids) | set(split.test_ids)
    assert used and all(i.startswith("FER2013Train/") for i in used)  # no test image seen in training
    manifest = json.loads((out / "labels" / "manifest.json").read_text())
    assert manifest["complete"]
    quality = json.loads((out / "report" / "soft_label_quality.json").read_text())
    labels = load_labels(out / "labels").to_pylist()
    assert len(labels) == 60 and {r["split"] for r in labels} == {"test"}  # 240 / 4 test images
    calibration = json.loads((out / "softlabeler" / "config.json").read_text())["calibration"]
    assert calibration["fitted_on"] == {"data": "ferplus", "split": "validation", "n": 30}  # PublicTest only
    assert all(abs(sum(r["soft_label_calibrated"]) - 1) < 1e-4 for r in labels)
    assert "calibrated_soft_labels" in quality["normalised"]
    no_majority = sum(r["hard_label"] is None for r in labels)  # tied votes: no hard label, left out and counted
    assert quality["reference"] == "votes" and quality["n_images"] == 60 - no_majority
    assert quality["left_out"] == no_majority
    assert set(quality["soft_labels"]["w_mae_by"]) <= {f"test/{s}" for s in ("easy", "challenging", "difficult")}
    assert "vote distributions" in (out / "report" / "soft_label_quality.md").read_text()


@pytest.mark.slow
def test_reproduce_script_end_to_end_on_the_sample(sample, tmp_path):
    out = tmp_path / "out"
    env = dict(_env(), PRESET="tiny", METADATA="synthetic", NUM_GPUS="0")
    completed = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "reproduce_affectnetplus.sh"),
            str(sample),
            str(sample),
            str(out),
            *FAST_FLAGS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (out / "dataset" / "README.md").is_file()
    assert json.loads((out / "baselines" / "baselines.json").read_text())["models"]
    assert "Tables 8–9" in (out / "report" / "report.md").read_text()


@pytest.mark.slow
def test_train_pretrained_script_trains_and_ships_a_small_soft_labeler(sample, tmp_path):
    """scripts/train_pretrained.sh on FER+-layout votes (shrunk): every family, float16 weights, a card with
    the data terms and the second-panel check, the test faces' expected outputs."""
    from safetensors import safe_open
    from transformers import AutoModel

    import affectnetplus_hf
    from affectnetplus_hf.pretrained import SHIPPED_FILES

    ferplus = ferplus_from_sample(sample, tmp_path / "ferplus")
    target, fixtures = tmp_path / "shipped", tmp_path / "fixtures"
    env = dict(_env(), TARGET=str(target), FIXTURES=str(fixtures))
    completed = subprocess.run(
        ["bash", str(REPO / "scripts" / "train_pretrained.sh"), str(ferplus), str(tmp_path / "work"), *FAST_FLAGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert all((target / name).is_file() for name in SHIPPED_FILES)
    card = (target / "README.md").read_text()
    storage = next(line for line in card.splitlines() if line.startswith("- **Storage**"))
    kept = [
        prefix
        for family, prefix in (("EBC", "ebc_members."), ("AU", "au_members."), ("distribution", "dist_members."))
        if f"{family} " in storage.split("float16", 1)[1]
    ]  # families the card says stay float32
    with safe_open(str(target / "model.safetensors"), framework="pt") as weights:
        matrices = {
            k: str(weights.get_slice(k).get_dtype())
            for k in weights.keys()
            if len(weights.get_slice(k).get_shape()) > 1
        }
    assert "F16" in matrices.values()
    assert all(dtype == "F16" or name.startswith(tuple(kept)) for name, dtype in matrices.items()), (storage, kept)
    assert "Second-panel check" in card and "research use" in card
    affectnetplus_hf.register_auto_classes()
    model = AutoModel.from_pretrained(str(target))
    assert (
        set(model.config.families) == {"ebc", "au", "dist"}
        and model.config.calibration["fitted_on"]["split"] == "validation"
    )
    expected = json.loads((fixtures / "expected.json").read_text())
    batch = model.image_processor([str(fixtures / name) for name in expected["images"]], return_tensors="pt")
    calibrated = model(**batch).soft_label_calibrated.numpy()
    assert abs(calibrated - np.asarray(expected["soft_label_calibrated"])).max() < 1e-5


def test_scripts_print_usage_without_arguments():
    for script in ("ferplus.sh", "reproduce_affectnetplus.sh"):  # train_pretrained.sh has defaults for both
        completed = subprocess.run(["bash", str(REPO / "scripts" / script)], capture_output=True, text=True)
        assert completed.returncode == 2 and "Environment" in completed.stderr


def test_dry_run_prints_accelerate_launch_for_several_gpus(tmp_path):
    env = dict(_env(), DRY_RUN="1", NUM_GPUS="4")
    completed = subprocess.run(
        ["bash", str(REPO / "scripts" / "reproduce_affectnetplus.sh"), "A", "M", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("+ ")]
    launched = [line for line in lines if "accelerate launch --multi_gpu --num_processes 4" in line]
    assert len(launched) == 3  # train, label, baseline
    assert any("label" in line and "--dtype bf16" in line for line in launched)
    assert not (tmp_path / "softlabeler").exists()
