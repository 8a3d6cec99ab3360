"""The shipped ``ferplus`` soft-labeler (``docs/method.md#shipped-soft-labeler``): complete, small, offline,
reproducing its stored outputs; resolution of shipped names; the second-panel check."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from affectnetplus_hf import pretrained_path
from affectnetplus_hf.metrics.functional import crowd_agreement, second_panel_check
from affectnetplus_hf.pretrained import (
    DEFAULT_MODEL,
    MAX_SHIPPED_BYTES,
    PRETRAINED_ROOT,
    SHIPPED,
    SHIPPED_FILES,
    resolve_model,
    shipped_name,
)
from affectnetplus_hf.votes import split_panels, vote_distributions

FIXTURES = Path(__file__).parent / "fixtures" / "pretrained"


def test_every_shipped_folder_is_complete_and_small():
    for name, folder in SHIPPED.items():
        root = PRETRAINED_ROOT / folder
        missing = [f for f in SHIPPED_FILES if not (root / f).is_file()]
        assert not missing, f"shipped soft-labeler {name!r} lacks {missing}"
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        assert size <= MAX_SHIPPED_BYTES, f"{name}: {size} bytes > {MAX_SHIPPED_BYTES}"
        assert not list(root.rglob("*.bin")) and not list(root.rglob("*.pkl")) and not list(root.rglob("*.pt"))


def test_shipped_card_states_data_terms_and_quality():
    card = (pretrained_path("ferplus") / "README.md").read_text(encoding="utf-8")
    for text in (
        "FER+",
        "MIT",
        "FER2013",
        "research",
        "PublicTest",
        "Second-panel check",
        "W-MAE",
        "scripts/train_pretrained.sh",
    ):
        assert text in card


def test_shipped_model_loads_offline_and_reproduces_its_outputs():
    from transformers import AutoModel

    import affectnetplus_hf

    affectnetplus_hf.register_auto_classes()
    expected = json.loads((FIXTURES / "expected.json").read_text())
    model = AutoModel.from_pretrained(str(pretrained_path("ferplus")))
    assert set(model.config.families) == {"ebc", "au", "dist"} and model.config.calibration
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    batch = model.image_processor([str(FIXTURES / name) for name in expected["images"]], return_tensors="pt")
    output = model(**batch)
    for key in ("soft_label", "dist_scores", "soft_label_calibrated", "ebc_scores", "au_scores"):
        np.testing.assert_allclose(
            getattr(output, key).detach().numpy(), np.asarray(expected[key]), atol=1e-5, err_msg=key
        )
    np.testing.assert_allclose(output.soft_label_calibrated.sum(dim=1).detach().numpy(), 1.0, atol=1e-5)


def test_shipped_name_resolves_to_the_package_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(resolve_model("ferplus")) == pretrained_path("ferplus")
    assert shipped_name(resolve_model(DEFAULT_MODEL)) == DEFAULT_MODEL
    assert resolve_model("org/some-model") == "org/some-model"  # a hub id passes through
    with pytest.raises(ValueError, match="no shipped soft-labeler named 'nope'"):
        pretrained_path("nope")


def test_a_local_folder_named_like_a_shipped_model_wins_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ferplus").mkdir()
    with caplog.at_level(logging.WARNING, logger="affectnetplus_hf.pretrained"):
        assert resolve_model("ferplus") == str(tmp_path / "ferplus")
    assert "used instead of the shipped soft-labeler 'ferplus'" in caplog.text
    assert str(pretrained_path("ferplus")) in caplog.text
    assert shipped_name("ferplus") is None


def test_cli_loads_the_shipped_model_by_name(tmp_path, monkeypatch):
    from affectnetplus_hf.cli import main

    expected = json.loads((FIXTURES / "expected.json").read_text())
    monkeypatch.chdir(tmp_path)
    image = FIXTURES / expected["images"][0]
    out = tmp_path / "out.csv"
    assert main(["predict", "ferplus", str(image), "--output", str(out), *PREDICT_WHOLE_IMAGE]) == 0
    row = next(csv.DictReader(out.open()))
    assert float(row["Happy"]) == pytest.approx(expected["soft_label"][0][1], abs=1e-5)


def test_the_local_folder_wins_in_the_cli_too(tmp_path, monkeypatch, make_tiny_labeler):
    """A soft-labeler saved as ./ferplus is the one `predict ferplus` uses (and it says so)."""
    from affectnetplus_hf.cli import main
    from affectnetplus_hf.models.hub import load_soft_labeler

    monkeypatch.chdir(tmp_path)
    local = make_tiny_labeler(tmp_path / "ferplus")
    image = FIXTURES / json.loads((FIXTURES / "expected.json").read_text())["images"][0]
    out = tmp_path / "out.csv"
    assert main(["predict", "ferplus", str(image), "--output", str(out), *PREDICT_WHOLE_IMAGE]) == 0
    row = next(csv.DictReader(out.open()))
    mine = load_soft_labeler(local).predict([str(image)]).soft_label[0, 1].item()
    assert float(row["Happy"]) == pytest.approx(mine, abs=1e-5)


#: ``predict`` flags that score the whole image (the test faces are small synthetic crops).
PREDICT_WHOLE_IMAGE: list[str] = ["--detector", "none"]


def test_split_panels_partitions_each_faces_votes():
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 4, size=(50, 8))
    non_emotion = rng.integers(0, 2, size=50)
    a, b = split_panels(votes, non_emotion, seed=3)
    totals = votes.sum(axis=1) + non_emotion
    assert np.array_equal(a + b, votes)  # every emotion vote lands in exactly one panel
    assert np.all(a.sum(axis=1) <= totals // 2) and np.all(totals // 2 - a.sum(axis=1) <= non_emotion)
    again, _ = split_panels(votes, non_emotion, seed=3)
    other, _ = split_panels(votes, non_emotion, seed=4)
    assert np.array_equal(a, again) and not np.array_equal(a, other)


def test_second_panel_check_scores_the_model_and_a_panel_against_the_other_panel():
    votes = np.zeros((40, 8), dtype=np.int64)
    votes[:20, 1] = 10  # unanimous Happy: every panel and a one-hot model agree exactly
    votes[20:, 0], votes[20:, 2] = 6, 4
    perfect = np.eye(8)[np.full(40, 1)]
    result = second_panel_check(votes[:20], None, perfect[:20])
    assert result["model"]["w_mae"] == pytest.approx(0.0) and result["panel_a"]["w_mae"] == pytest.approx(0.0)
    mixed = second_panel_check(votes, None, vote_distributions(votes))
    assert len(mixed["per_seed"]) == 5 and mixed["model"]["n"] == 40
    assert 0 < mixed["model"]["w_mae"] < mixed["panel_a"]["w_mae"]  # the full crowd is a better guess than 5
    single = mixed["per_seed"][0]
    a, b = split_panels(votes, None, seed=0)
    assert single["model"] == crowd_agreement(vote_distributions(b).astype(np.float64), vote_distributions(votes))


def test_calibrate_refuses_to_rewrite_the_shipped_model(tmp_path, monkeypatch, caplog):
    from affectnetplus_hf.cli import main

    monkeypatch.chdir(tmp_path)
    before = (pretrained_path("ferplus") / "config.json").read_bytes()
    with caplog.at_level(logging.ERROR):
        assert main(["calibrate", "ferplus", "--data", str(tmp_path), "--split", "validation"]) == 1
    assert "is the shipped soft-labeler 'ferplus'" in caplog.text
    assert (pretrained_path("ferplus") / "config.json").read_bytes() == before


def test_label_runs_with_the_shipped_model_by_name(tmp_path, monkeypatch, make_sample):
    import pyarrow.parquet as pq

    from affectnetplus_hf.cli import main

    data = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    monkeypatch.chdir(tmp_path)
    assert main(["label", "ferplus", str(data), str(tmp_path / "labels")]) == 0
    table = pq.read_table(sorted((tmp_path / "labels").rglob("*.parquet"))[0])
    calibrated = np.asarray(table.column("soft_label_calibrated").to_pylist())
    assert calibrated.shape[1] == 8 and np.allclose(calibrated.sum(axis=1), 1.0, atol=1e-5)
    assert set(table.column("subset").to_pylist()) <= {"easy", "challenging", "difficult", None}


def test_from_pretrained_and_ds_map_take_the_shipped_name(tmp_path, monkeypatch):
    from datasets import Dataset, Image

    from affectnetplus_hf.models import SoftLabeler

    monkeypatch.chdir(tmp_path)
    expected = json.loads((FIXTURES / "expected.json").read_text())
    labeler = SoftLabeler.from_pretrained("ferplus")
    ds = Dataset.from_dict({"image": [str(FIXTURES / name) for name in expected["images"]]}).cast_column(
        "image", Image()
    )
    fn = labeler.map_function(image_column="image")
    mapped = ds.map(fn, batched=True, batch_size=2, features=fn.map_features(ds.features))
    np.testing.assert_allclose(
        np.asarray(mapped["soft_label_calibrated"]), np.asarray(expected["soft_label_calibrated"]), atol=1e-5
    )


def test_store_float16_halves_weight_matrices_and_keeps_vectors_and_named_families(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from affectnetplus_hf.pretrained import store_float16

    tensors = {
        "ebc_members.0.conv.weight": torch.randn(4, 3, 3, 3),
        "dist_members.0.conv.weight": torch.randn(4, 3, 3, 3),
        "dist_members.0.bn.running_var": torch.rand(4),
        "dist_members.0.bn.num_batches_tracked": torch.tensor(7),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"))
    store_float16(tmp_path, keep_float32=("ebc_members.",))
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert {k: str(v.dtype) for k, v in stored.items()} == {
        "ebc_members.0.conv.weight": "torch.float32",
        "dist_members.0.conv.weight": "torch.float16",
        "dist_members.0.bn.running_var": "torch.float32",
        "dist_members.0.bn.num_batches_tracked": "torch.int64",
    }
    assert torch.equal(stored["dist_members.0.conv.weight"], tensors["dist_members.0.conv.weight"].half())
