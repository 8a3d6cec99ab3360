"""Dataset export: features, Parquet layout, card, ``load_dataset`` offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf.dataset import (  # noqa: E402
    CONFIG_NAMES,
    affectnetplus_features,
    build_dataset,
    render_card,
)
from affectnetplus_hf.emotions import EMOTIONS, SUBSETS  # noqa: E402
from affectnetplus_hf.labeling import LabelingConfig, label_dataset, load_labels  # noqa: E402



@pytest.fixture(scope="module")
def built(tmp_path_factory, make_sample, make_tiny_labeler):
    root = tmp_path_factory.mktemp("dataset")
    model = make_tiny_labeler(root / "model")
    sample = make_sample(root / "sample", n_train=10, n_val=5)
    labels = root / "labels"
    label_dataset(model, sample, labels, LabelingConfig(shard_size=8, batch_size=4, num_threads=1, progress=False))
    folder = root / "ds"
    summary = build_dataset(sample, labels, folder, metadata="synthetic", progress=False)
    return {"root": root, "sample": sample, "labels": labels, "folder": folder, "summary": summary}


def _card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_layout_and_card(built):
    folder, summary = built["folder"], built["summary"]
    header = _card_header(folder)
    configs = {c["config_name"]: c for c in header["configs"]}
    assert list(configs) == list(CONFIG_NAMES)  # every subset has train rows in this sample
    for split in ("train", "validation"):
        for subset in SUBSETS:
            rows = summary["splits"][split]["rows_per_group"][subset]
            files = list((folder / "data" / split).glob(f"{subset}-00000-of-*.parquet"))
            assert len(files) == (1 if rows else 0)
            listed = {"split": split, "path": f"data/{split}/{subset}-*.parquet"} in configs[subset]["data_files"]
            assert listed == bool(rows)  # datasets cannot load a 0-row split: such splits are left out
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/train/*.parquet"},
                                                {"split": "validation", "path": "data/validation/*.parquet"}]
    assert header["license"] == "mit" and "extra_gated_prompt" not in header  # synthetic: shareable
    infos = {i["config_name"]: i for i in header["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["default"]["splits"]} == {"train": 10, "validation": 5}
    assert sum(s["num_examples"] for c in SUBSETS for s in infos[c]["splits"]) == 15
    text = (folder / "README.md").read_text()
    assert "freely shareable" in text and "| easy |" in text and "images/subsets_train.png" in text
    assert (folder / "images" / "subsets_train.png").is_file()
    statistics = json.loads((folder / "statistics.json").read_text())
    assert statistics["splits"]["train"]["rows"] == 10 and statistics["source_kind"] == "synthetic"
    assert summary["not_labelled"] == []


def test_load_dataset_offline_restores_features_and_values(built):
    from datasets import load_dataset

    folder = str(built["folder"])
    declared = affectnetplus_features(with_soft_label_true=True)
    full = load_dataset(folder)
    assert set(full) == {"train", "validation"}
    assert full["train"].features == declared and full["validation"].features == declared
    assert full["train"].features["expression"].names == list(EMOTIONS)
    labels = {r["image_id"]: r for r in load_labels(built["labels"]).to_pylist()}
    counts = {}
    for config in SUBSETS:
        part = load_dataset(folder, config)
        assert part["train"].features == declared
        for split in part:
            assert set(part[split]["subset"]) == {SUBSETS.index(config)}
            counts[(config, split)] = part[split].num_rows
    for split, total in (("train", 10), ("validation", 5)):
        assert sum(v for (c, s), v in counts.items() if s == split) == full[split].num_rows == total

    numpy_rows = full["train"].with_format("numpy")[:]
    assert numpy_rows["soft_label"].dtype == np.float32 and numpy_rows["soft_label"].shape == (10, 8)
    assert numpy_rows["valence"].dtype == np.float32
    row = full["train"][0]
    reference = labels[row["image_id"]]
    assert row["soft_label"] == reference["soft_label"]  # float32 bits survive the round trip
    assert SUBSETS[row["subset"]] == reference["subset"] and row["expression"] == reference["hard_label"]
    assert row["image"].size == (40, 40)
    assert len(row["face_box"]) == 4 and len(row["soft_label_true"]) == 8
    assert row["head_pose_yaw"] is not None and len(row["landmarks_68"]) == 68  # synthetic ground truth
    assert row["age"] is None and row["gender"] is None  # unknown -> null, never a sentinel


def test_build_is_deterministic_and_refuses_to_overwrite(built, tmp_path, tree_bytes):
    again = tmp_path / "again"
    build_dataset(built["sample"], built["labels"], again, metadata="synthetic", progress=False)
    assert tree_bytes(again) == tree_bytes(built["folder"])
    with pytest.raises(FileExistsError, match="not empty"):
        build_dataset(built["sample"], built["labels"], again, metadata="synthetic", progress=False)
    build_dataset(built["sample"], built["labels"], again, metadata=None, progress=False, overwrite=True)
    assert tree_bytes(again) != tree_bytes(built["folder"])  # metadata columns now null
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_incomplete_labels_are_refused(built, tmp_path):
    manifest = json.loads((built["labels"] / "manifest.json").read_text())
    partial = tmp_path / "labels"
    partial.mkdir()
    manifest["complete"] = False
    (partial / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not complete"):
        build_dataset(built["sample"], partial, tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_labels_of_another_source_are_refused(built, tmp_path, make_sample):
    other = make_sample(tmp_path / "other", n_train=3, n_val=2)
    with pytest.raises(ValueError, match="not the one labeled"):
        build_dataset(other, built["labels"], tmp_path / "ds", progress=False)


def test_affectnet_card_is_gated_and_says_no_redistribution(built):
    summary = built["summary"]
    features = affectnetplus_features()
    card = render_card(summary, features, ["train", "validation"], {}, "affectnet")
    header = yaml.safe_load(card.split("---\n", 2)[1])
    assert header["license"] == "other" and "extra_gated_prompt" in header
    assert "Do not redistribute" in card and "private" in card
