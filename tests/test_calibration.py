"""Calibrated soft labels (docs/method.md#calibration), the distribution family and crowd-agreement metrics."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch

from affectnetplus_hf.calibration import apply_calibration, fit_calibration
from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.metrics.functional import crowd_agreement, w_mae
from affectnetplus_hf.models.configuration_affectnetplus import check_calibration


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------- the fit
def test_fit_recovers_a_known_temperature_and_prior_shift():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 1.5, size=(2000, 8))
    scores = _softmax(logits)  # an over-confident-looking model output
    true_bias = np.array([0.8, 0.2, -0.3, 0.0, -1.0, -0.6, 0.4, 0.5])
    truth = _softmax(0.5 * logits + true_bias)  # people: temperature 2, other priors
    fit = fit_calibration({"dist": scores}, truth, eps=1e-12)  # a negligible floor: the map is then exact
    assert fit["inputs"] == ["dist"]
    assert fit["weights"][0] == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_allclose(fit["bias"], true_bias - true_bias.mean(), atol=1e-4)
    np.testing.assert_allclose(apply_calibration({"dist": scores}, fit), truth, atol=1e-5)
    assert fit["kl_after"] < 1e-8 < fit["kl_before"]


def test_fit_from_sampled_votes_is_close_and_lowers_kl():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 1.5, size=(4000, 8))
    truth = _softmax(0.5 * logits)
    votes = np.stack([rng.multinomial(10, p) for p in truth]).astype(np.float64)  # 10 annotators per face
    fit = fit_calibration({"dist": _softmax(logits)}, votes)
    assert fit["weights"][0] == pytest.approx(0.5, rel=0.1)
    assert fit["kl_after"] < fit["kl_before"]


def test_pooling_gives_an_uninformative_family_no_weight():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 1.0, size=(3000, 8))
    truth = _softmax(logits)
    noise = _softmax(rng.normal(0.0, 1.0, size=(3000, 8)))
    fit = fit_calibration({"dist": truth, "ebc": noise}, truth, inputs=["dist", "ebc"], eps=1e-12)
    assert fit["weights"][0] == pytest.approx(1.0, abs=1e-3)
    assert fit["weights"][1] < 1e-3


def test_w_mae_objective_trades_kl_for_w_mae():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.2, size=(3000, 8))
    truth = _softmax(logits)
    votes = np.stack([rng.multinomial(10, p) for p in truth]) / 10.0
    scores = {"dist": _softmax(0.7 * logits + rng.normal(0, 0.3, size=logits.shape))}
    kl_fit = fit_calibration(scores, votes, objective="kl")
    mae_fit = fit_calibration(scores, votes, objective="w_mae")
    assert mae_fit["objective"] == "w_mae"
    assert w_mae(votes, apply_calibration(scores, mae_fit)) < w_mae(votes, apply_calibration(scores, kl_fit))
    with pytest.raises(ValueError, match="objective must be one of"):
        fit_calibration(scores, votes, objective="brier")


def test_calibrated_label_is_monotone_in_each_emotions_score():
    calibration = {"inputs": ["dist"], "weights": [1.3], "bias": [0.1, -0.2, 0, 0.3, 0, 0, 0.2, -0.4], "eps": 1e-4}
    base = np.full((1, 8), 1 / 8)
    for e in range(8):
        higher = base.copy()
        higher[0, e] = 0.4
        raised = apply_calibration({"dist": higher}, calibration)[0, e]
        assert raised > apply_calibration({"dist": base}, calibration)[0, e]


def test_rows_without_votes_are_left_out_and_bad_input_is_named():
    scores = {"dist": _softmax(np.random.default_rng(4).normal(size=(10, 8)))}
    reference = np.eye(8)[np.arange(10) % 8]
    reference[3] = 0.0
    assert fit_calibration(scores, reference)["n"] == 9
    with pytest.raises(ValueError, match="no row with votes"):
        fit_calibration(scores, np.zeros((10, 8)))
    with pytest.raises(ValueError, match="missing"):
        fit_calibration(scores, reference, inputs=["ebc"])
    with pytest.raises(ValueError, match="calibration weights"):
        check_calibration({"inputs": ["dist"], "weights": [-1.0], "bias": [0] * 8, "eps": 1e-4}, ("dist",))
    with pytest.raises(ValueError, match="must be families of this soft-labeler"):
        check_calibration({"inputs": ["au"], "weights": [1.0], "bias": [0] * 8, "eps": 1e-4}, ("dist",))


# ---------------------------------------------------------------------------------------------- metrics
def test_crowd_agreement_hand_worked():
    reference = np.array([[0.6, 0.4, 0, 0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0, 0, 0, 0]])
    prediction = np.array([[3.0, 1.0, 0, 0, 0, 0, 0, 0], [0.2, 0.8, 0, 0, 0, 0, 0, 0]])  # row 0 normalised: .75/.25
    out = crowd_agreement(reference, prediction)
    kl0 = 0.6 * math.log(0.6 / 0.75) + 0.4 * math.log(0.4 / 0.25)
    kl1 = 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.8)
    assert out["kl"] == pytest.approx((kl0 + kl1) / 2)
    assert out["majority_acc"] == 1.0  # row 1: Happy ties Neutral at the top: a hit
    # weights 1/rank over the 8 ranks (ordinal; sum H_8): row 0 (.15 + .15/2) / H_8, row 1 (.3 + .3/2) / H_8
    h8 = sum(1 / k for k in range(1, 9))
    assert out["w_mae"] == pytest.approx(100 * ((0.15 + 0.075) / h8 + (0.3 + 0.15) / h8) / 2)
    one_hot = np.eye(8)[[0, 1]]
    assert crowd_agreement(reference, one_hot)["kl"] is None  # infinite: a voted emotion gets 0
    assert crowd_agreement(reference, one_hot)["majority_acc"] == 1.0


# ---------------------------------------------------------------------------------------------- the model
def _members(image_size: int = 32, seed: int = 0):
    from affectnetplus_hf.models import (
        AUExpressionClassifier,
        AUExpressionClassifierConfig,
        BinaryExpressionClassifier,
        BinaryExpressionClassifierConfig,
        DistributionClassifier,
        DistributionClassifierConfig,
    )

    torch.manual_seed(seed)
    common = dict(backbone="test_resnet", image_size=image_size)
    ebc = {
        ("test_resnet", e): BinaryExpressionClassifier(BinaryExpressionClassifierConfig(emotion=e, **common))
        for e in EMOTIONS
    }
    au = {e: AUExpressionClassifier(AUExpressionClassifierConfig(emotion=e, **common)) for e in EMOTIONS}
    dist = [DistributionClassifier(DistributionClassifierConfig(**common)) for _ in range(2)]
    for member in [*ebc.values(), *au.values(), *dist]:  # heads away from chance so the outputs differ
        torch.nn.init.normal_(member.classifier.weight, std=0.5)
        member.eval()
    confidences = {"ebc": [[0.9, 0.8, 0.7, 0.8, 0.6, 0.7, 0.8, 0.5]], "au": [0.7] * 8}
    return ebc, au, dist, confidences


CALIBRATION = {
    "inputs": ["ebc", "au", "dist"],
    "weights": [0.3, 0.2, 1.4],
    "bias": [0.2, 0.1, -0.1, 0.0, -0.3, -0.2, 0.1, 0.2],
    "eps": 1e-4,
}


def test_distribution_family_and_calibration_in_the_soft_labeler(tmp_path):
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.softlabel import soft_labels

    ebc, au, dist, confidences = _members()
    paper = SoftLabeler.from_members(ebc, au, confidences)
    full = SoftLabeler.from_members(
        ebc, au, confidences, dist_members=dist, test_time_flip=True, calibration=CALIBRATION
    )
    assert full.config.families == ("ebc", "au", "dist") and full.config.paper_families == ("ebc", "au")
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        a, b = paper(x), full(x)
        members = [m(x).probs for m in dist]
        mirrored = [m(x.flip(-1)).probs for m in dist]
    # the distribution family does not touch Eq. 14
    torch.testing.assert_close(a.soft_label, b.soft_label)
    np.testing.assert_allclose(b.soft_label.numpy(), soft_labels(b.ebc_scores.numpy(), b.au_scores.numpy()), atol=1e-6)
    expected = (torch.stack(members).mean(0) + torch.stack(mirrored).mean(0)) / 2
    torch.testing.assert_close(b.dist_scores, expected, atol=1e-5, rtol=1e-5)
    assert a.dist_scores is None and a.soft_label_calibrated is None
    calibrated = apply_calibration(
        {"ebc": b.ebc_scores.numpy(), "au": b.au_scores.numpy(), "dist": b.dist_scores.numpy()}, CALIBRATION
    )
    np.testing.assert_allclose(b.soft_label_calibrated.numpy(), calibrated, atol=1e-5)
    np.testing.assert_allclose(b.soft_label_calibrated.sum(1).numpy(), 1.0, atol=1e-5)
    assert b.member_probs.shape == (5, 8 + 8 + 2 * 8) and len(full.config.member_names) == 32
    # save / load round trip keeps every output
    full.save_pretrained(tmp_path / "m")
    again = SoftLabeler.from_pretrained(str(tmp_path / "m"))
    assert again.config.calibration["weights"] == CALIBRATION["weights"] and again.config.test_time_flip
    with torch.no_grad():
        c = again(x)
    for field in ("soft_label", "dist_scores", "soft_label_calibrated", "spread"):
        torch.testing.assert_close(getattr(b, field), getattr(c, field))
    # the distribution family alone: its scores are the soft label
    alone = SoftLabeler.from_members(dist_members=dist)
    with torch.no_grad():
        d = alone(x)
    assert alone.config.families == ("dist",) and d.ebc_scores is None
    torch.testing.assert_close(d.soft_label, d.dist_scores)
    torch.testing.assert_close(d.dist_scores, torch.stack(members).mean(0), atol=1e-5, rtol=1e-5)


def test_test_time_shift_averages_the_shifted_and_mirrored_views(tmp_path):
    """test_time_shift=s: the distribution family's mean over the image moved by ±s pixels in x and y (edge
    repeated) and the unshifted one, each with its mirror; saved and loaded with the config."""
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.models.modeling_softlabeler import shift_pixels

    _, _, dist, _ = _members()
    model = SoftLabeler.from_members(dist_members=dist, test_time_flip=True, test_time_shift=2)
    x = torch.randn(3, 3, 32, 32)
    moved = shift_pixels(x, 2, 0)
    torch.testing.assert_close(moved[..., 2:], x[..., :-2])
    torch.testing.assert_close(moved[..., :2], x[..., :1].expand(-1, -1, -1, 2))
    torch.testing.assert_close(shift_pixels(x, 0, -2)[..., :-2, :], x[..., 2:, :])
    views = [shift_pixels(x, dx, dy) for dx, dy in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))]
    with torch.no_grad():
        expected = torch.stack([m(v).probs for v in views + [v.flip(-1) for v in views] for m in dist]).mean(0)
        got = model(x).dist_scores
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = SoftLabeler.from_pretrained(str(tmp_path / "m"))
    assert again.config.test_time_shift == 2
    with pytest.raises(ValueError, match="test_time_shift must be in"):
        SoftLabeler.from_members(dist_members=dist, test_time_shift=32)


def test_calibrated_column_end_to_end(tmp_path):
    """predict -> label -> build -> load_dataset carry soft_label_calibrated; soft_label stays Eq. 14."""
    from datasets import load_dataset

    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.models.inference import predict_files
    from affectnetplus_hf.synthetic import write_sample

    ebc, au, dist, confidences = _members(image_size=32)
    model = SoftLabeler.from_members(
        ebc,
        au,
        confidences,
        dist_members=dist,
        test_time_flip=True,
        calibration={**CALIBRATION, "fitted_on": {"data": "votes", "split": "validation", "n": 10}},
    )
    model.save_pretrained(tmp_path / "model")
    sample = tmp_path / "sample"
    write_sample(sample, n_train=6, n_val=3, n_mas=2, image_size=40, seed=3, contact_sheet=False, progress=False)
    image = sorted((sample / "Manually_Annotated_Images").rglob("*.jpg"))[0]
    table = predict_files(str(tmp_path / "model"), [str(image)], detector="none")  # a face crop already
    with torch.no_grad():
        direct = model.predict([str(image)])
    assert f"{EMOTIONS[0]}_calibrated" in table.column_names
    np.testing.assert_allclose(
        [table.column(f"{e}_calibrated")[0].as_py() for e in EMOTIONS],
        direct.soft_label_calibrated[0].numpy(),
        atol=1e-5,
    )

    label_dataset(
        tmp_path / "model",
        sample,
        tmp_path / "labels",
        LabelingConfig(shard_size=8, batch_size=4, num_threads=1, progress=False),
    )
    build_dataset(sample, tmp_path / "labels", tmp_path / "ds", metadata="synthetic", progress=False)
    ds = load_dataset(str(tmp_path / "ds"), split="train")
    assert ds.features["soft_label_calibrated"].length == 8
    rows = ds.select(range(3))
    for row in rows:
        calibrated = np.asarray(row["soft_label_calibrated"])
        assert calibrated.sum() == pytest.approx(1.0, abs=1e-5)
        family_scores = {f: np.asarray([row[f"soft_label_{f}"]]) for f in ("ebc", "au", "dist")}
        expected = apply_calibration(family_scores, CALIBRATION)[0]
        np.testing.assert_allclose(calibrated, expected, atol=1e-4)
        np.testing.assert_allclose(
            row["soft_label"], 0.5 * (family_scores["ebc"][0] + family_scores["au"][0]), atol=1e-6
        )
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "soft_label_calibrated" in card and "Quality against people" in card


# ---------------------------------------------------------------------------------------------- calibrate
@pytest.fixture
def trained_model(tmp_path, ferplus_files, make_tiny_labeler):
    """A FER+ folder and a soft-labeler folder recording, as ``affectnetplus train`` does, that its members
    were trained on the MAS of FER+ Training (``train_config.json`` and ``mas_split/``)."""
    from affectnetplus_hf.sources import open_multi_annotated
    from affectnetplus_hf.training.config import TrainConfig, resolve_preset
    from affectnetplus_hf.training.softlabeler import make_mas_split

    data = ferplus_files.build(tmp_path / "ferplus")
    model = make_tiny_labeler(tmp_path / "model")
    config = resolve_preset(
        TrainConfig(data=str(data), output_dir=str(model), mas_splits=["train"], calibration_split="validation")
    )
    records = [r for r in open_multi_annotated(data).records("train") if r.votes is not None]
    with warnings.catch_warnings():  # the few fixture rows miss the test-MAS quotas: said, and beside the point
        warnings.simplefilter("ignore")
        split = make_mas_split(records, config)
    split.save(model / "mas_split")
    config.save(model)
    return data, model


def _error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_calibrate_refuses_the_members_training_split(trained_model, caplog):
    from affectnetplus_hf.cli import main
    from affectnetplus_hf.training.calibrate import calibrate_model_dir

    data, model = trained_model
    before = (model / "config.json").read_bytes()
    caplog.clear()
    assert main(["calibrate", str(model), "--data", str(data), "--split", "train"]) == 1
    (line,) = _error_lines(caplog)
    assert "'train'" in line and str(model) in line and "--force" in line and "\n" not in line
    assert (model / "config.json").read_bytes() == before
    with pytest.raises(ValueError, match="force=True"):
        calibrate_model_dir(model, data, "train", progress=False)
    # images no member saw: allowed
    assert main(["calibrate", str(model), "--data", str(data), "--split", "validation"]) == 0
    assert '"split": "validation"' in (model / "config.json").read_text()
    # --force overrides, with a warning
    caplog.clear()
    assert main(["calibrate", str(model), "--data", str(data), "--split", "train", "--force"]) == 0
    assert any("--force" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert calibrate_model_dir(model, data, "train", force=True, progress=False)["fitted_on"]["split"] == "train"


def test_calibrate_reads_the_splits_from_train_config_alone(trained_model, tmp_path):
    """A folder without ``mas_split/`` (the shipped one keeps only ``train_config.json``): the MAS splits it
    records decide; the shipped model's copy (FER+ Training) may be calibrated on PublicTest (validation)."""
    import shutil

    from affectnetplus_hf.pretrained import pretrained_path
    from affectnetplus_hf.training.calibrate import calibrate_model_dir

    data, model = trained_model
    shutil.rmtree(model / "mas_split")
    with pytest.raises(ValueError, match=r"split 'train'.*train_config\.json"):
        calibrate_model_dir(model, data, "train", progress=False)
    copy = shutil.copytree(pretrained_path("ferplus"), tmp_path / "ferplus_copy")
    with pytest.raises(ValueError, match=r"'train'.*--force"):
        calibrate_model_dir(copy, data, "train", progress=False)
    assert calibrate_model_dir(copy, data, "validation", progress=False)["fitted_on"]["split"] == "validation"


def test_calibrate_hints_name_its_own_options(trained_model, caplog):
    """``--calibration_split`` is an option of ``train``: calibrate names its own ``--split`` or says
    the other is an option of training."""
    from affectnetplus_hf.cli import main

    data, model = trained_model
    caplog.clear()
    assert main(["calibrate", str(model), "--data", str(data), "--split", "holdout"]) == 1
    (line,) = _error_lines(caplog)
    assert "--split" in line and "\n" not in line
    assert "--calibration_split" not in line.replace("affectnetplus train ... --calibration_split holdout", "")


def test_calibrate_refuses_a_model_folder_in_use(trained_model):
    from affectnetplus_hf.run_folder import FolderLock, RunFolderError
    from affectnetplus_hf.training.calibrate import calibrate_model_dir

    data, model = trained_model
    before = (model / "config.json").read_bytes()
    with FolderLock(model), pytest.raises(RunFolderError, match=rf"{model} is in use by process {os.getpid()}"):
        calibrate_model_dir(model, data, "validation", progress=False)
    assert (model / "config.json").read_bytes() == before
