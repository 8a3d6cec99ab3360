"""Baselines per subset from the exported dataset, their evaluation report, soft labels vs references,
and the ``baseline``/``evaluate`` CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import os

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.sources import open_source  # noqa: E402

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf import baselines  # noqa: E402
from affectnetplus_hf.emotions import SUBSETS  # noqa: E402
from affectnetplus_hf.metrics import functional as metric_functions  # noqa: E402

FAST = dict(epochs=1, batch_size=16, image_size=32, progress=False, log_with="none")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, make_sample, make_tiny_labeler):
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
    again = baselines.train_baselines(
        pipeline["dataset"], pipeline["out"], TrainConfig(preset="tiny", **FAST), kinds=["hard"], training_sets=["all"]
    )
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
    assert entry["soft"]["all"]["w_mae"] == pytest.approx(
        metric_functions.w_mae(data.soft_labels, np.clip(scores, 0, 1)), abs=1e-4
    )
    # the synthetic ground truth travels through the dataset: soft labels and one-hot both scored against it
    truth = results["synthetic_ground_truth"]
    one_hot = np.eye(8, dtype=np.float32)[data.hard_labels]
    assert truth["one_hot_hard_labels_vs_truth"]["w_mae"] == pytest.approx(
        metric_functions.w_mae(data.true_soft_labels, one_hot), abs=1e-4
    )
    report = (report_dir / "report.md").read_text()
    for needed in (
        "Table 5",
        "Tables 8–9",
        "Table 10",
        "Table 11",
        "Fig. 5",
        "figures/soft_label_examples.png",
        "synthetic ground truth",
        "hard_fer_all",
    ):
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
    truth = read_ground_truth(pipeline["sample"])  # {image_id: {"soft_label_true": (8,), ...}}
    soft = np.asarray([r["soft_label"] for r in labels], dtype=np.float32)
    reference = np.asarray([truth[r["image_id"]]["soft_label_true"] for r in labels], dtype=np.float32)
    assert result["soft_labels"]["w_mae"] == pytest.approx(
        metric_functions.w_mae(reference, np.clip(soft, 0, 1)), abs=1e-4
    )
    assert (out / "soft_label_quality.md").read_text().count("| AffectNet+ soft labels |") >= 2


def test_vote_distributions_hand_worked():
    from affectnetplus_hf.votes import vote_distributions

    votes = np.array([[3, 1, 0, 0, 0, 0, 0, 1], [0] * 8])
    shares = vote_distributions(votes)
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

    out = tmp_path / "cli_baselines"
    code = main(
        [
            "baseline",
            str(pipeline["dataset"]),
            str(out),
            "--kinds",
            "hard",
            "--sets",
            "all",
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--image_size",
            "32",
            "--progress",
            "false",
            "--log_with",
            "none",
        ]
    )
    assert code == 0
    assert [m["name"] for m in json.loads((out / "baselines.json").read_text())["models"]] == ["hard_fer_all"]
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(pipeline["dataset"]),
                "--baselines",
                str(out),
                "--output",
                str(tmp_path / "rep"),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["all"]) == {"hard_fer_all"} and (tmp_path / "rep" / "report.md").is_file()
    assert (
        main(
            [
                "evaluate",
                str(pipeline["sample"]),
                "--labels",
                str(pipeline["labels"]),
                "--output",
                str(tmp_path / "q"),
                "--reference",
                "truth",
            ]
        )
        == 0
    )
    assert "ground truth" in capsys.readouterr().out


def test_baselines_folder_is_a_run_folder(pipeline, tmp_path, monkeypatch, caplog):
    """OUT is locked, marked with the run's identity, resumed with the same one, refused with another unless
    overwrite (then emptied), and never a folder of someone else's or the dataset's."""
    from dataclasses import replace

    from affectnetplus_hf.run_folder import MARKER_FILE, FolderLock, RunFolderError
    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training import baseline as baseline_training

    dataset = pipeline["dataset"]
    trained = []

    def fake_train(records, targets, config, kind):  # the folder rules, not the training, are tested here
        folder = Path(config.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "training_summary.json").write_text(json.dumps({"seconds": 0.5}))
        trained.append((folder.name, config.epochs))
        return type("Run", (), {"seconds": 0.5})()

    monkeypatch.setattr(baseline_training, "train_baseline", fake_train)
    config = TrainConfig(preset="tiny", **FAST)
    out = tmp_path / "out"
    hard = dict(kinds=["hard"], training_sets=["all"])
    baselines.train_baselines(dataset, out, config, **hard)
    marker = json.loads((out / MARKER_FILE).read_text())
    assert marker["kind"] == "baselines" and marker["complete"] is True
    identity = marker["identity"]
    assert identity["split"] == "train" and identity["epochs"] == 1
    assert identity["dataset_dir"] == str(dataset.resolve())
    assert identity["dataset build"] and "progress" not in identity and "data" not in identity
    # the same identity: a resume keeps the finished model and adds the other kind
    both = baselines.train_baselines(dataset, out, config, kinds=["hard", "soft"], training_sets=["all"])
    assert trained == [("hard_fer_all", 1), ("soft_fer_all", 1)]
    assert [(m["name"], m.get("reused", False)) for m in both["models"]] == [
        ("hard_fer_all", True),
        ("soft_fer_all", False),
    ]
    written = json.loads((out / baselines.MANIFEST).read_text())["models"]
    assert [m["name"] for m in written] == ["hard_fer_all", "soft_fer_all"]
    # another identity: refused naming each differing field, nothing touched
    state = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(RunFolderError, match=r"other settings \(epochs: was 1, now 2\).*--overwrite") as caught:
        baselines.train_baselines(dataset, out, replace(config, epochs=2), **hard)
    assert "\n" not in str(caught.value)
    with pytest.raises(RunFolderError, match=r"split: was 'train', now 'validation'"):
        baselines.train_baselines(dataset, out, config, split="validation", **hard)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == state and len(trained) == 2
    # overwrite: the folder (ours) is emptied and retrained with the new settings
    (out / "stray.txt").write_text("x")
    again = baselines.train_baselines(dataset, out, replace(config, epochs=2), overwrite=True, **hard)
    assert trained[-1] == ("hard_fer_all", 2) and [m["name"] for m in again["models"]] == ["hard_fer_all"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER_FILE, baselines.MANIFEST, "hard_fer_all"])
    assert json.loads((out / MARKER_FILE).read_text())["identity"]["epochs"] == 2
    # a folder holding other files without the marker: refused and left as it is, whatever overwrite
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match=r"not empty and was not written by `affectnetplus baseline`"):
            baselines.train_baselines(dataset, mine, config, overwrite=overwrite, **hard)
    caplog.clear()
    assert (
        main(
            [
                "baseline",
                str(dataset),
                str(mine),
                "--kinds",
                "hard",
                "--sets",
                "all",
                "--overwrite",
                "--preset",
                "tiny",
                "--epochs",
                "1",
                "--progress",
                "false",
                "--log_with",
                "none",
            ]
        )
        == 1
    )
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "not written by `affectnetplus baseline`" in errors[0]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # never the dataset folder, a folder above it or inside it
    for target in (dataset, dataset.parent, dataset / "data", dataset / "baselines"):
        with pytest.raises(ValueError, match=r"(is|contains|is inside) DATASET_DIR"):
            baselines.train_baselines(dataset, target, config, overwrite=True, **hard)
    assert not (dataset / "baselines").exists()
    # a folder another run holds
    with FolderLock(out):
        with pytest.raises(RunFolderError, match=rf"is in use by process {os.getpid()}"):
            baselines.train_baselines(dataset, out, replace(config, epochs=2), **hard)
    assert len(trained) == 3


# --------------------------------------------------------------------------------------------------
# FER+'s four training modes (Barsoum et al. 2016) as baseline kinds
# --------------------------------------------------------------------------------------------------


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class _IdentityLogits:
    """A stand-in model whose logits are its input, to check the losses on hand-made numbers."""

    def __call__(self, pixel_values):
        from types import SimpleNamespace

        return SimpleNamespace(logits=pixel_values)


# FER+ column order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
HAND_VOTES = np.array(
    [
        [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],  # happiness, clear majority
        [5, 0, 0, 4, 0, 0, 0, 0, 1, 0],  # neutral 5 / sadness 4: split vote
        [0, 0, 4, 0, 0, 0, 4, 0, 2, 0],  # surprise / fear tie
        [1, 0, 0, 0, 0, 0, 0, 0, 7, 2],  # unknown on top: FER+ discards it in every mode
        [-1] * 10,  # a null votes cell
    ]
)


def test_ferplus_training_targets_keep_what_ferplus_keeps():
    from affectnetplus_hf.emotions import EMOTION_TO_INDEX
    from affectnetplus_hf.sources.ferplus import ferplus_label_distribution, ferplus_target
    from affectnetplus_hf.training.baseline import ferplus_training_targets

    for mode in baselines.FERPLUS_KINDS:
        kept = ferplus_training_targets(HAND_VOTES, mode)
        expected_rows = [i for i in range(4) if ferplus_label_distribution(HAND_VOTES[i], mode) is not None]
        assert kept.rows.tolist() == expected_rows and 3 not in expected_rows
        assert kept.without_votes == 1 and kept.discarded == 4 - len(expected_rows)
        for k, row in enumerate(expected_rows):
            distribution = ferplus_label_distribution(HAND_VOTES[row], mode)
            np.testing.assert_allclose(kept.distributions[k], distribution)
            if mode == "majority":
                assert kept.targets[k] == int(np.argmax(distribution))
            elif mode == "multi_target":
                np.testing.assert_allclose(kept.targets[k], ferplus_target(HAND_VOTES[row], mode), rtol=1e-6)
            else:
                np.testing.assert_allclose(kept.targets[k], distribution, rtol=1e-6)
    majority = ferplus_training_targets(HAND_VOTES, "majority")
    assert majority.targets[0] == EMOTION_TO_INDEX["Happy"] and majority.targets.dtype == np.int64
    # the split vote: majority needs more than half of the votes (5 of 9 after outlier removal -> kept)
    crossentropy = ferplus_training_targets(HAND_VOTES, "crossentropy")
    assert crossentropy.targets.shape == (len(crossentropy.rows), 8)


def test_ferplus_losses_equal_their_formulas():
    import torch

    from affectnetplus_hf.training.baseline import FerPlusLoss, ferplus_loss_from_logits, ferplus_training_targets

    rng = np.random.default_rng(7)
    for mode in baselines.FERPLUS_KINDS:
        kept = ferplus_training_targets(HAND_VOTES, mode)
        logits = rng.normal(size=(len(kept.rows), 8)).astype(np.float32)
        p = _softmax(logits.astype(np.float64))
        t = kept.targets
        if mode == "majority":
            expected = -np.mean(np.log(p[np.arange(len(t)), t]))
            labels = torch.from_numpy(t)
        elif mode == "probability":  # a drawn label: plain cross-entropy on it
            drawn = np.array([int(np.argmax(row)) for row in t])
            expected = -np.mean(np.log(p[np.arange(len(drawn)), drawn]))
            labels = torch.from_numpy(drawn)
        elif mode == "crossentropy":
            expected = -np.mean(np.sum(t * np.log(p), axis=1))
            labels = torch.from_numpy(t)
        else:  # multi_target: -log of the probability mass on the mask
            expected = -np.mean(np.log(np.sum(t * p, axis=1)))
            labels = torch.from_numpy(t)
        batch = {"pixel_values": torch.from_numpy(logits), "labels": labels}
        assert float(FerPlusLoss(mode)(_IdentityLogits(), batch)) == pytest.approx(expected, rel=1e-5)
        direct = ferplus_loss_from_logits(mode, torch.from_numpy(logits), labels)
        assert float(direct) == pytest.approx(expected, rel=1e-5)
    # multi_target on a hand-worked batch: mask on two emotions holding 0.3 + 0.2 of the mass
    probs = np.array([[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]])
    mask = np.array([[1, 1, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    loss = ferplus_loss_from_logits("multi_target", torch.from_numpy(np.log(probs)).float(), torch.from_numpy(mask))
    assert float(loss) == pytest.approx(-np.log(0.5), rel=1e-5)
    with pytest.raises(ValueError, match="mode must be one of"):
        FerPlusLoss("plurality")


def test_probability_draws_are_seeded_by_seed_epoch_and_row():
    import torch

    from affectnetplus_hf.sources.ferplus import ferplus_label_distribution, ferplus_target
    from affectnetplus_hf.training.baseline import PROBABILITY_SEED_TAG, ProbabilityLabelDataset, probability_label
    from affectnetplus_hf.training.data import TensorImageDataset
    from affectnetplus_hf.training.loop import derive_seed

    raw = np.array([0, 4, 3, 0, 0, 0, 3, 0, 0, 0])  # happiness / surprise / fear
    distribution = ferplus_label_distribution(raw, "probability")
    assert np.count_nonzero(distribution) == 3
    rows = range(200)

    def draws(seed, epoch):
        return [probability_label(distribution, seed, epoch, row) for row in rows]

    assert draws(0, 0) == draws(0, 0)  # deterministic: a resumed epoch draws the same labels
    assert draws(0, 0) != draws(0, 1) and draws(0, 0) != draws(1, 0)  # fresh draws per epoch and seed
    assert set(draws(0, 0)) == set(np.flatnonzero(distribution).tolist())
    # the same draw as ferplus_target's with a generator seeded by (seed, epoch, row)
    for epoch, row in ((0, 0), (3, 17), (5, 123)):
        rng = np.random.default_rng(derive_seed(0, epoch, row, PROBABILITY_SEED_TAG))
        drawn = int(np.argmax(ferplus_target(raw, "probability", rng)))
        assert probability_label(distribution, 0, epoch, row) == drawn
    # the dataset hands out those draws, re-drawn when the loop sets the epoch
    images = TensorImageDataset(torch.zeros(6, 3, 4, 4))
    dataset = ProbabilityLabelDataset(images, np.tile(distribution, (6, 1)), seed=0)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        assert [int(dataset[i]["labels"]) for i in range(6)] == [
            probability_label(distribution, 0, epoch, i) for i in range(6)
        ]


def test_record_raw_votes_in_ferplus_order():
    from affectnetplus_hf.emotions import EMOTION_TO_INDEX
    from affectnetplus_hf.records import FaceRecord
    from affectnetplus_hf.sources.ferplus import record_raw_votes

    ferplus = FaceRecord("a", extra={"ferplus_votes": np.array([4, 0, 0, 1, 3, 2, 0, 0, 0, 0])})
    assert record_raw_votes(ferplus).tolist() == [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]
    spec = np.zeros(8, dtype=np.int64)
    spec[[EMOTION_TO_INDEX["Sad"], EMOTION_TO_INDEX["Surprise"], EMOTION_TO_INDEX["Contempt"]]] = [3, 2, 1]
    folder = FaceRecord("b", votes=spec, non_emotion_votes=2)
    # FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    assert record_raw_votes(folder).tolist() == [0, 0, 2, 3, 0, 0, 0, 1, 2, 0]
    assert record_raw_votes(FaceRecord("c", hard_label=1)) is None
    with pytest.raises(ValueError, match="10 counts"):
        record_raw_votes(FaceRecord("d", extra={"ferplus_votes": np.zeros(8)}))


@pytest.fixture(scope="module")
def ferplus_pipeline(tmp_path_factory, ferplus_files, make_tiny_labeler):
    """A FER+ folder (tests/fixtures/ferplus rows) labeled by the tiny soft-labeler and exported."""
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    root = tmp_path_factory.mktemp("ferplus_baselines")
    model = make_tiny_labeler(root / "model")
    source = ferplus_files.build(root / "ferplus")
    labels = root / "labels"
    label_dataset(
        model,
        source,
        labels,
        LabelingConfig(shard_size=32, batch_size=16, num_threads=1, progress=False, splits=["train", "validation"]),
    )
    dataset = root / "dataset"
    build_dataset(source, labels, dataset, metadata=None, figures=False, progress=False)
    return {"root": root, "source": source, "dataset": dataset}


def test_votes_column_round_trips_through_load_dataset(ferplus_pipeline):
    from datasets import List, Value, load_dataset

    table = load_dataset(str(ferplus_pipeline["dataset"]), split="train")
    assert table.features["votes"] == List(Value("int32"), length=10)
    source = open_source(ferplus_pipeline["source"])
    raw = {r.image_id: r.extra["ferplus_votes"].tolist() for r in source.records("train")}
    assert table.num_rows > 40
    for row in table.select_columns(["image_id", "votes"]):
        assert row["votes"] == raw[row["image_id"]]
    data = baselines.load_split(ferplus_pipeline["dataset"], "default", "train")
    assert data.votes.shape == (table.num_rows, 10) and data.votes.dtype == np.int64
    assert "`votes`" in (ferplus_pipeline["dataset"] / "README.md").read_text()


@pytest.mark.slow
def test_ferplus_kinds_train_and_evaluate(ferplus_pipeline):
    import torch
    from transformers import AutoModel

    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training.baseline import FerPlusLoss, ferplus_training_targets

    out = ferplus_pipeline["root"] / "baselines"
    kinds = list(baselines.FERPLUS_KINDS)
    manifest = baselines.train_baselines(
        ferplus_pipeline["dataset"], out, TrainConfig(preset="tiny", **FAST), kinds=kinds, training_sets=["all"]
    )
    data = baselines.load_split(ferplus_pipeline["dataset"], "default", "train")
    assert [m["name"] for m in manifest["models"]] == [f"ferplus_{k}_all" for k in kinds]
    for entry in manifest["models"]:
        kind = entry["kind"]
        kept = ferplus_training_targets(data.votes, kind)
        assert entry["n_train"] == len(kept.rows) > 0
        assert entry["left_out"] == {"discarded": kept.discarded, "without_votes": 0}
        folder = out / entry["path"]
        summary = json.loads((folder / "training_summary.json").read_text())
        assert summary["kind"] == kind and summary["n_train"] == entry["n_train"] and len(summary["epoch_losses"]) == 1
        assert np.isfinite(summary["epoch_losses"][0])
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "affectnetplus-hard-fer" and config["ferplus_mode"] == kind
        assert config["class_weights"] is None
        card = (folder / "README.md").read_text()
        assert f"FER+ {kind} baseline" in card and "Barsoum et al. 2016" in card and f"--kinds {kind}" in card
        # the trained model's loss on a hand-made batch is the mode's formula
        model = AutoModel.from_pretrained(str(folder)).eval()
        pixels = torch.from_numpy(np.random.default_rng(1).normal(size=(4, 3, 32, 32)).astype(np.float32))
        with torch.no_grad():
            p = model(pixel_values=pixels).logits.double().softmax(-1).numpy()
            targets = kept.targets[:4]
            if kind in ("majority", "probability"):
                labels = targets if kind == "majority" else kept.distributions[:4].argmax(1)
                expected = -np.mean(np.log(p[np.arange(4), labels]))
                batch_labels = torch.from_numpy(labels)
            elif kind == "crossentropy":
                expected = -np.mean(np.sum(targets * np.log(p), axis=1))
                batch_labels = torch.from_numpy(targets)
            else:
                expected = -np.mean(np.log(np.sum(targets * p, axis=1)))
                batch_labels = torch.from_numpy(targets)
            loss = FerPlusLoss(kind)(model, {"pixel_values": pixels, "labels": batch_labels})
        assert float(loss) == pytest.approx(expected, rel=1e-4)

    report_dir = ferplus_pipeline["root"] / "report"
    results = baselines.evaluate_baselines(ferplus_pipeline["dataset"], out, report_dir, split="train", progress=False)
    model = AutoModel.from_pretrained(str(out / "ferplus_crossentropy_all"))
    scores = baselines.predict_records(model, data.records, progress=False)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)  # a softmax
    entry = results["models"]["ferplus_crossentropy_all"]
    assert entry["kind"] == "crossentropy"
    assert entry["hard"]["all"]["accuracy"] == pytest.approx(100 * np.mean(scores.argmax(1) == data.hard_labels))
    assert entry["soft"]["all"]["w_mae"] == pytest.approx(metric_functions.w_mae(data.soft_labels, scores), abs=1e-4)
    for name in results["models"]:
        assert results["models"][name]["soft"] and results["models"][name]["soft_by_emotion"]
    report = (report_dir / "report.md").read_text()
    assert "## Baselines" in report and "Barsoum et al. 2016" in report and "ferplus_multi_target_all" in report
    soft_table = (report_dir / "tables" / "soft_label_metrics.md").read_text()
    assert "| ferplus_majority_all | majority | all | all |" in soft_table
    assert (report_dir / "figures" / "ced_ferplus_probability_all.png").is_file()


def test_ferplus_kind_without_votes_column_fails_in_one_line(pipeline, tmp_path, caplog):

    out = tmp_path / "no_votes"
    with pytest.raises(ValueError, match="no `votes` column") as error:
        baselines.train_baselines(pipeline["dataset"], out, kinds=["hard", "majority"], training_sets=["all"])
    message = str(error.value)
    assert "\n" not in message and str(pipeline["dataset"]) in message and "'majority'" in message
    assert not list(out.glob("*/model.safetensors"))  # failed before training anything
    caplog.clear()
    code = main(
        [
            "baseline",
            str(pipeline["dataset"]),
            str(tmp_path / "cli"),
            "--kinds",
            "multi_target",
            "--sets",
            "all",
            "--preset",
            "tiny",
            "--progress",
            "false",
            "--log_with",
            "none",
        ]
    )
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "votes" in errors[0]


def test_baseline_overwrite_needs_a_baselines_folder(tmp_path: Path, labeled: dict[str, Path], monkeypatch) -> None:
    from affectnetplus_hf import baselines
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training import baseline as baseline_training

    dataset = tmp_path / "ds"
    build_dataset(labeled["sample"], labeled["labels"], dataset, metadata=None, figures=False, progress=False)
    trained = []

    def fake_train(records, targets, config, kind):  # the overwrite rules, not the training, are tested here
        trained.append(config.output_dir)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        return type("Run", (), {"seconds": 0.0})()

    monkeypatch.setattr(baseline_training, "train_baseline", fake_train)
    config = TrainConfig(preset="tiny", image_size=32, progress=False, log_with="none")
    run = dict(config=config, kinds=["hard"], training_sets=["all"], overwrite=True)
    for target in (dataset, tmp_path, dataset / "data"):
        with pytest.raises(ValueError, match="(is|contains|is inside) DATASET_DIR"):
            baselines.train_baselines(dataset, target, **run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not empty and was not written by `affectnetplus baseline`"):
        baselines.train_baselines(dataset, mine, **run)
    assert not trained and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    out = tmp_path / "out"
    baselines.train_baselines(dataset, out, **{**run, "overwrite": False})  # a fresh folder
    baselines.train_baselines(dataset, out, **run)  # its own folder (marker): emptied and retrained
    assert trained == [str(out / "hard_fer_all")] * 2
