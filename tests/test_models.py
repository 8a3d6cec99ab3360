"""AffectNet+ models: round trips, Auto classes, soft-labeler math and shapes, bad inputs, init."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# MKL's alignment-independent mode, before torch computes anything: the round trip in a new process
# compares outputs bit for bit (the child inherits it).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoConfig, AutoModel  # noqa: E402

from affectnetplus_hf import softlabel  # noqa: E402
from affectnetplus_hf.emotions import EMOTIONS, au_vectors  # noqa: E402
from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor  # noqa: E402
from affectnetplus_hf.models import (  # noqa: E402
    AUExpressionClassifier,
    AUExpressionClassifierConfig,
    BinaryExpressionClassifier,
    BinaryExpressionClassifierConfig,
    HardFERConfig,
    HardFERModel,
    SoftFERConfig,
    SoftFERModel,
    SoftLabeler,
    SoftLabelerConfig,
    au_targets_for_labels,
)

SIZE = 32
BACKBONES = ("test_resnet", "test_efficientnet")


def _binary(backbone: str, emotion: str, seed: int) -> BinaryExpressionClassifier:
    torch.manual_seed(seed)
    config = BinaryExpressionClassifierConfig(backbone=backbone, emotion=emotion, image_size=SIZE)
    return _randomise_heads(BinaryExpressionClassifier(config)).eval()


def _au(emotion: str, seed: int) -> AUExpressionClassifier:
    torch.manual_seed(seed)
    config = AUExpressionClassifierConfig(backbone="test_resnet", emotion=emotion, image_size=SIZE)
    return _randomise_heads(AUExpressionClassifier(config)).eval()


def _randomise_heads(model):
    """Heads start near chance; spread them (and BN stats) so members really differ."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "classifier" in name:
                parameter.normal_(0.0, 0.5)
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def members():
    ebc = {(b, e): _binary(b, e, seed=10 * j + k) for j, b in enumerate(BACKBONES) for k, e in enumerate(EMOTIONS)}
    au = {e: _au(e, seed=100 + k) for k, e in enumerate(EMOTIONS)}
    return ebc, au


@pytest.fixture(scope="module")
def confidences():
    rng = np.random.default_rng(0)
    return {
        "balanced": {"ebc": rng.uniform(0.6, 0.95, (2, 8)), "au": rng.uniform(0.6, 0.95, 8)},
        "eq3": {"ebc": rng.uniform(0.5, 0.9, (2, 8)), "au": rng.uniform(0.5, 0.9, 8)},
    }


@pytest.fixture(scope="module")
def labeler(members, confidences):
    ebc, au = members
    return SoftLabeler.from_members(ebc, au, confidences)


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _reference_soft_label(members, confidences, pixels, mode="balanced"):
    """Eqs. 4–14 by hand: each member classifier run alone, then softlabel.py."""
    ebc, au = members
    with torch.inference_mode():
        probs = np.stack(
            [np.stack([ebc[(b, e)](pixels).positive_probs.numpy() for e in EMOTIONS], axis=1) for b in BACKBONES]
        )
        p_au = np.stack([au[e](pixels).p_au.numpy() for e in EMOTIONS], axis=1)
    ebc_scores = softlabel.ebc_semantic_scores(probs, confidences[mode]["ebc"])
    au_scores = softlabel.au_semantic_scores(p_au, confidences[mode]["au"])
    return softlabel.soft_labels(ebc_scores, au_scores), ebc_scores, au_scores, probs, p_au


# ---------------------------------------------------------------------------------------------- round trips


ROUND_TRIP_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    import affectnetplus_hf
    affectnetplus_hf.register_auto_classes()
    from transformers import AutoModel
    from safetensors.torch import load_file
    root = sys.argv[1]
    names = json.loads(sys.argv[2])
    torch.set_num_threads(int(sys.argv[3]))  # same reduction order as the parent: bit-equal outputs
    inputs = load_file(root + "/inputs.safetensors")
    result = {}
    for name in names:
        model = AutoModel.from_pretrained(f"{root}/{name}").eval()
        with torch.inference_mode():
            out = model(inputs["x"])
        expected = load_file(f"{root}/{name}.expected.safetensors")
        same = all(torch.equal(out[k], expected[k]) for k in expected)
        state = load_file(f"{root}/{name}/model.safetensors")
        params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        exact = sorted(params) == sorted(state) and all(torch.equal(params[k], state[k]) for k in state)
        result[name] = [type(model).__name__, same, exact, model.image_processor.image_size]
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_save_load_round_trip_in_new_process(tmp_path, labeler, pixels):
    torch.manual_seed(3)
    models = {
        "binary": BinaryExpressionClassifier(
            BinaryExpressionClassifierConfig(backbone="test_resnet", emotion="Fear", image_size=SIZE)
        ),
        "au": AUExpressionClassifier(
            AUExpressionClassifierConfig(backbone="test_efficientnet", emotion="Anger", image_size=SIZE, aus="paper")
        ),
        "hard": HardFERModel(
            HardFERConfig(backbone="test_resnet", image_size=SIZE, class_weights=[1, 2, 1, 1, 3, 3, 1, 4])
        ),
        "soft": SoftFERModel(SoftFERConfig(backbone="test_efficientnet", image_size=SIZE)),
        "labeler": labeler,
    }
    save_file({"x": pixels}, str(tmp_path / "inputs.safetensors"))
    for name, model in models.items():
        if name != "labeler":  # its members are already randomised (and other tests share it)
            _randomise_heads(model).eval()
        model.save_pretrained(tmp_path / name)
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files == ["config.json", "model.safetensors", "preprocessor_config.json"]
        with torch.inference_mode():
            out = model(pixels)
        save_file(
            {k: v.contiguous() for k, v in out.items() if v is not None},
            str(tmp_path / f"{name}.expected.safetensors"),
        )
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            ROUND_TRIP_SCRIPT,
            str(tmp_path),
            json.dumps(list(models)),
            str(torch.get_num_threads()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    expected_types = {name: type(model).__name__ for name, model in models.items()}
    for name in models:
        type_name, same_outputs, exact_weights, size = result[name]
        assert type_name == expected_types[name]
        assert same_outputs, f"{name}: outputs differ after reload"
        assert exact_weights, f"{name}: tensors differ after reload"
        assert size == SIZE


def test_auto_classes_resolve(tmp_path):
    pairs = [
        (BinaryExpressionClassifierConfig, BinaryExpressionClassifier),
        (AUExpressionClassifierConfig, AUExpressionClassifier),
        (HardFERConfig, HardFERModel),
        (SoftFERConfig, SoftFERModel),
    ]
    for config_class, model_class in pairs:
        config = config_class(backbone="test_resnet", image_size=SIZE)
        assert type(AutoConfig.for_model(config_class.model_type)) is config_class
        assert type(AutoModel.from_config(config)) is model_class
        config.save_pretrained(tmp_path / config_class.model_type)
        assert type(AutoConfig.from_pretrained(tmp_path / config_class.model_type)) is config_class
    assert type(AutoConfig.for_model(SoftLabelerConfig.model_type)) is SoftLabelerConfig


PACKAGE_IMPORT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    root, transformers_first = sys.argv[1], sys.argv[2] == "1"
    if transformers_first:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
    import affectnetplus_hf, affectnetplus_hf.models, affectnetplus_hf.models.hub
    heavy = sorted(m for m in ("torch", "transformers", "timm") if m in sys.modules)
    if transformers_first:
        from affectnetplus_hf.models import BinaryExpressionClassifier  # using a model class registers them all
    else:
        affectnetplus_hf.register_auto_classes()
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification
    result = {"heavy_after_import": heavy}
    for name in ("binary", "labeler"):
        model = AutoModel.from_pretrained(f"{root}/{name}")
        processor = AutoImageProcessor.from_pretrained(f"{root}/{name}")
        result[name] = [type(model).__name__, type(AutoConfig.from_pretrained(f"{root}/{name}")).__name__,
                        type(processor).__name__, processor.image_size]
    result["image_classification"] = type(AutoModelForImageClassification.from_pretrained(f"{root}/binary")).__name__
    result["lazy_export"] = affectnetplus_hf.SoftLabeler is type(AutoModel.from_pretrained(f"{root}/labeler"))
    print(json.dumps(result))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("transformers_first", [False, True])
def test_auto_classes_in_a_fresh_process(tmp_path, labeler, transformers_first):
    """``import affectnetplus_hf`` (and ``.models``) stays cheap (no torch); after ``register_auto_classes()`` or
    the first use of a model class the Auto classes load every AffectNet+ model, either import order."""
    _binary("test_resnet", "Disgust", seed=4).save_pretrained(tmp_path / "binary")
    labeler.save_pretrained(tmp_path / "labeler")
    completed = subprocess.run(
        [sys.executable, "-c", PACKAGE_IMPORT_SCRIPT, str(tmp_path), "1" if transformers_first else "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if not transformers_first:
        assert result["heavy_after_import"] == []
    assert result["binary"] == [
        "BinaryExpressionClassifier",
        "BinaryExpressionClassifierConfig",
        "AffectNetPlusImageProcessor",
        SIZE,
    ]
    assert result["labeler"] == ["SoftLabeler", "SoftLabelerConfig", "AffectNetPlusImageProcessor", SIZE]
    assert result["image_classification"] == "BinaryExpressionClassifier"
    assert result["lazy_export"] is True


# ---------------------------------------------------------------------------------------------- soft-labeler


def test_soft_labeler_output_shapes(labeler, pixels):
    with torch.inference_mode():
        out = labeler(pixels)
    n = pixels.shape[0]
    assert out.soft_label.shape == (n, 8)
    assert out.ebc_scores.shape == (n, 8)
    assert out.au_scores.shape == (n, 8)
    assert out.member_probs.shape == (n, 2 * 8 + 8)
    assert out.spread.shape == (n, 8)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert labeler.config.families == ("ebc", "au")
    assert len(labeler.config.member_names) == 24
    assert labeler.config.member_names[9] == "ebc/test_efficientnet/Happy"
    assert labeler.config.member_names[16 + 7] == "au/test_resnet/Contempt"


def test_soft_label_is_eq14(labeler, members, confidences, pixels):
    soft, ebc_scores, au_scores, probs, p_au = _reference_soft_label(members, confidences, pixels)
    with torch.inference_mode():
        out = labeler(pixels)
    np.testing.assert_allclose(out.soft_label.numpy(), soft, atol=1e-6)
    np.testing.assert_allclose(out.ebc_scores.numpy(), ebc_scores, atol=1e-6)
    np.testing.assert_allclose(out.au_scores.numpy(), au_scores, atol=1e-6)
    member_probs = np.concatenate([probs.transpose(1, 0, 2).reshape(len(pixels), -1), p_au], axis=1)
    np.testing.assert_allclose(out.member_probs.numpy(), member_probs, atol=1e-6)
    spread = np.concatenate([probs, p_au[None]], axis=0).std(axis=0)
    np.testing.assert_allclose(out.spread.numpy(), spread, atol=1e-6)
    assert soft.std() > 1e-3  # the members really differ, so the comparison means something


def test_cs_mode_selects_the_stored_scores(members, confidences, pixels):
    ebc, au = members
    model = SoftLabeler.from_members(ebc, au, confidences, cs_mode="eq3")
    soft, *_ = _reference_soft_label(members, confidences, pixels, mode="eq3")
    with torch.inference_mode():
        np.testing.assert_allclose(model(pixels).soft_label.numpy(), soft, atol=1e-6)
    assert model.config.confidence_scores["balanced"]["au"] == pytest.approx(confidences["balanced"]["au"])


@pytest.mark.parametrize("family", ["ebc", "au"])
def test_one_family_soft_labeler(members, confidences, pixels, family):
    ebc, au = members
    single = {family: confidences["balanced"][family]}
    if family == "ebc":
        model = SoftLabeler.from_members(ebc_members=ebc, confidences=single)
    else:
        model = SoftLabeler.from_members(au_members=au, confidences=single)
    _, ebc_scores, au_scores, _, _ = _reference_soft_label(members, confidences, pixels)
    with torch.inference_mode():
        out = model(pixels)
    assert model.config.families == (family,)
    expected = ebc_scores if family == "ebc" else au_scores
    np.testing.assert_allclose(out.soft_label.numpy(), expected, atol=1e-6)  # no halving with one family
    assert (out.au_scores is None) == (family == "ebc")
    assert (out.ebc_scores is None) == (family == "au")
    assert out.member_probs.shape[1] == (16 if family == "ebc" else 8)


def test_vmap_member_execution_matches_loop(labeler, pixels):
    with torch.inference_mode():
        loop = labeler(pixels)
        labeler.member_execution = "vmap"
        try:
            stacked = labeler(pixels)
        finally:
            labeler.member_execution = "loop"
    for key in loop.keys():
        torch.testing.assert_close(stacked[key], loop[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize("execution", ["loop", "vmap"])
def test_soft_labeler_forward_with_grad_enabled(labeler, pixels, execution):
    """Outside ``no_grad`` the members build a graph; the numpy soft-label math must not choke on it."""
    assert torch.is_grad_enabled() and not labeler.training
    with torch.inference_mode():
        reference = labeler(pixels)
    labeler.member_execution = execution
    try:
        out = labeler(pixels)
    finally:
        labeler.member_execution = "loop"
    for key in reference.keys():
        assert not out[key].requires_grad
        torch.testing.assert_close(out[key], reference[key], atol=1e-5, rtol=0)


def test_soft_labeler_math_on_tensors_is_the_numpy_math(members, confidences, pixels):
    """forward keeps tensors (on the model's device) and gives the numbers of softlabel.py and
    calibration.apply_calibration, the numpy statement of Eqs. 4-14 and of the calibration."""
    from affectnetplus_hf.calibration import apply_calibration
    from affectnetplus_hf.models import DistributionClassifier, DistributionClassifierConfig

    ebc, au = members
    torch.manual_seed(3)
    dist = _randomise_heads(
        DistributionClassifier(DistributionClassifierConfig(backbone="test_resnet", image_size=SIZE))
    )
    calibration = {
        "inputs": ["ebc", "au", "dist"],
        "weights": [0.6, 0.3, 1.2],
        "bias": [0.1, -0.2, 0.0, 0.3, 0.0, 0.0, -0.1, 0.05],
        "eps": 1e-4,
    }
    model = SoftLabeler.from_members(ebc, au, confidences, dist_members=[dist.eval()], calibration=calibration)
    with torch.inference_mode():
        out = model(pixels)
        dist_scores = dist(pixels).probs.double().numpy()
    soft, ebc_scores, au_scores, _, _ = _reference_soft_label(members, confidences, pixels)
    expected = {
        "soft_label": soft,
        "ebc_scores": ebc_scores,
        "au_scores": au_scores,
        "dist_scores": dist_scores,
        "soft_label_calibrated": apply_calibration(
            {"ebc": ebc_scores, "au": au_scores, "dist": dist_scores}, calibration
        ),
    }
    for key, value in expected.items():
        np.testing.assert_allclose(out[key].numpy(), value, atol=1e-6, err_msg=key)
    members_of_emotion = np.concatenate(
        [
            out.member_probs[:, :16].numpy().reshape(-1, 2, 8).transpose(1, 0, 2),
            out.member_probs[:, 16:24].numpy()[None],
            dist_scores[None],
        ]
    )
    np.testing.assert_allclose(out.spread.numpy(), members_of_emotion.std(axis=0), atol=1e-6)


def test_forward_never_goes_through_numpy(labeler, pixels, monkeypatch):
    def refused(self, *args, **kwargs):
        raise AssertionError("forward turned a tensor into a numpy array")

    def run(execution):
        labeler.member_execution = execution
        try:
            return labeler(pixels)
        finally:
            labeler.member_execution = "loop"

    reference = {execution: run(execution) for execution in ("loop", "vmap")}
    au_member = _au("Fear", seed=9)
    expected_p_au = au_member(pixels).p_au
    monkeypatch.setattr(torch.Tensor, "numpy", refused)
    monkeypatch.setattr(torch.Tensor, "__array__", refused)
    for execution, expected in reference.items():
        out = run(execution)
        assert all(torch.equal(out[key], expected[key]) for key in expected.keys())
    assert torch.equal(au_member(pixels).p_au, expected_p_au)


def test_classifier_outputs_are_transformers_image_classifier_outputs(pixels):
    from transformers.modeling_outputs import ImageClassifierOutput

    torch.manual_seed(0)
    binary = BinaryExpressionClassifier(
        BinaryExpressionClassifierConfig(backbone="test_resnet", image_size=SIZE)
    ).eval()
    hard = HardFERModel(HardFERConfig(backbone="test_resnet", image_size=SIZE)).eval()
    with torch.inference_mode():
        outputs = {"binary": binary(pixels), "au": _au("Happy", seed=1)(pixels), "hard": hard(pixels)}
        as_tuple = hard(pixels, labels=torch.zeros(len(pixels), dtype=torch.long), return_dict=False)
    assert all(isinstance(out, ImageClassifierOutput) for out in outputs.values())
    assert list(outputs["binary"].keys()) == ["logits", "positive_probs"]
    assert list(outputs["au"].keys()) == ["logits", "au_logits", "positive_probs", "au_probs", "p_au"]
    assert list(outputs["hard"].keys()) == ["logits", "probs"] and outputs["hard"].hidden_states is None
    assert len(as_tuple) == 3 and torch.equal(as_tuple[2], outputs["hard"].probs)  # (loss, logits, probs) as before


def test_predict_batches_images_through_the_processor(labeler):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + 3 * i, 36, 3), dtype=np.uint8) for i in range(5)]
    all_at_once = labeler.predict(images, batch_size=8)
    in_pieces = labeler.predict(images, batch_size=2)
    torch.testing.assert_close(all_at_once.soft_label, in_pieces.soft_label, atol=1e-6, rtol=0)
    processor = labeler.image_processor
    with torch.inference_mode():
        direct = labeler(processor.preprocess(images, return_tensors="pt")["pixel_values"])
    torch.testing.assert_close(all_at_once.soft_label, direct.soft_label, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="4 channels"):
        labeler.predict([rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)])


def test_subsets_follow_hard_label_ranks():
    soft = np.array([[0.9, 0.1, 0, 0, 0, 0, 0, 0], [0.5, 0.6, 0.7, 0, 0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0, 0, 0, 0]])
    subsets = SoftLabeler.subsets(torch.tensor(soft), torch.tensor([0, 1, 0]))
    assert list(subsets) == ["easy", "challenging", "difficult"]


# ---------------------------------------------------------------------------------------------- losses


def test_au_classifier_loss_and_p_au():
    model = _au("Sad", seed=5)
    x = torch.randn(4, 3, SIZE, SIZE)
    labels = torch.tensor([1, 0, 1, 0])
    au_labels = au_targets_for_labels(torch.tensor([2, 1, 2, 6]))
    assert torch.equal(au_labels[0], torch.tensor(au_vectors()[2]))
    out = model(x, labels=labels, au_labels=au_labels)
    ce = torch.nn.functional.cross_entropy(out.logits, labels)
    bce = (
        torch.nn.functional.binary_cross_entropy_with_logits(out.au_logits, au_labels, reduction="none").sum(1).mean()
    )
    torch.testing.assert_close(out.loss, ce + bce)
    expected = softlabel.au_positive_probability(
        "Sad", out.positive_probs.detach().numpy(), out.au_probs.detach().numpy()
    )
    np.testing.assert_allclose(out.p_au.numpy(), expected, atol=1e-6)
    model.config.au_loss_weight, model.config.au_pos_weight = 0.5, 3.0
    weighted = model(x, labels=labels, au_labels=au_labels)
    bce3 = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            weighted.au_logits, au_labels, pos_weight=torch.tensor(3.0), reduction="none"
        )
        .sum(1)
        .mean()
    )
    torch.testing.assert_close(weighted.loss, ce + 0.5 * bce3)
    model.train()
    assert model(x).p_au is None and model(x, return_p_au=True).p_au is not None


def test_baseline_losses():
    torch.manual_seed(0)
    x = torch.randn(4, 3, SIZE, SIZE)
    hard = HardFERModel(
        HardFERConfig(backbone="test_resnet", image_size=SIZE, class_weights=[1, 2, 3, 4, 5, 6, 7, 8])
    ).eval()
    labels = torch.tensor([0, 3, 7, 7])
    out = hard(x, labels=labels)
    weight = torch.arange(1, 9, dtype=torch.float32)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels, weight=weight))
    torch.testing.assert_close(out.probs.sum(1), torch.ones(4))
    soft = SoftFERModel(SoftFERConfig(backbone="test_resnet", image_size=SIZE)).eval()
    targets = torch.rand(4, 8, generator=torch.Generator().manual_seed(0))
    out = soft(x, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets))
    with pytest.raises(ValueError, match="soft labels of shape"):
        soft(x, labels=targets[:, :7])


# ---------------------------------------------------------------------------------------------- initialisation


def test_init_weights_leaves_timm_backbone_alone():
    import timm

    torch.manual_seed(7)
    reference = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    torch.manual_seed(7)
    model = BinaryExpressionClassifier(BinaryExpressionClassifierConfig(backbone="test_efficientnet", image_size=SIZE))
    ours, theirs = model.backbone.state_dict(), reference.state_dict()
    assert sorted(ours) == sorted(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # the heads got the package's init, not the default normal(0.02) of transformers
    assert 0.005 < model.classifier.weight.std().item() < 0.02
    assert torch.count_nonzero(model.classifier.bias) == 0


def test_missing_head_tensors_raise_naming_them(tmp_path):
    # a head left at its init would give confident-looking but random soft labels: refused like a backbone
    model = _binary("test_resnet", "Happy", seed=1)
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    kept = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    save_file(kept, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks 2 head tensor\(s\).*classifier\.bias, classifier\.weight") as error:
        BinaryExpressionClassifier.from_pretrained(tmp_path)
    assert "model.safetensors" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="head tensor"):
        AutoModel.from_pretrained(tmp_path)


def test_missing_backbone_tensors_raise_naming_them(tmp_path, labeler):
    model = _binary("test_resnet", "Happy", seed=1)
    model.save_pretrained(tmp_path / "binary")
    state = load_file(str(tmp_path / "binary" / "model.safetensors"))
    dropped = ["backbone.bn1.running_var", "backbone.conv1.0.weight"]
    assert all(key in state for key in dropped)
    save_file(
        {k: v for k, v in state.items() if k not in dropped},
        str(tmp_path / "binary" / "model.safetensors"),
        metadata={"format": "pt"},
    )
    with pytest.raises(
        ValueError, match=r"lacks 2 backbone tensor\(s\).*backbone\.bn1\.running_var, backbone\.conv1\.0\.weight"
    ) as error:
        AutoModel.from_pretrained(tmp_path / "binary")
    assert "model.safetensors" in str(error.value)
    labeler.save_pretrained(tmp_path / "labeler")  # a member's backbone tensor is named with its member index
    state = load_file(str(tmp_path / "labeler" / "model.safetensors"))
    key = "ebc_members.9.backbone.conv_stem.weight"
    assert key in state
    del state[key]
    save_file(state, str(tmp_path / "labeler" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"lacks 1 backbone tensor\(s\) of this SoftLabeler.*{key}"):
        SoftLabeler.from_pretrained(tmp_path / "labeler")


def test_backbone_pretrained_file_is_used_only_at_construction(tmp_path):
    import timm

    torch.manual_seed(11)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    weights = tmp_path / "backbone.safetensors"
    save_file(source.state_dict(), str(weights))
    torch.manual_seed(12)
    config = BinaryExpressionClassifierConfig(
        backbone="test_resnet", image_size=SIZE, backbone_pretrained=str(weights)
    )
    model = BinaryExpressionClassifier(config)
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in source.state_dict().items())
    model.save_pretrained(tmp_path / "model")
    weights.unlink()  # from_pretrained must not need it
    loaded = BinaryExpressionClassifier.from_pretrained(tmp_path / "model")
    assert loaded.config.backbone_pretrained == str(weights)
    assert all(torch.equal(loaded.backbone.state_dict()[k], v) for k, v in source.state_dict().items())
    with pytest.raises(FileNotFoundError, match="backbone_pretrained file"):
        BinaryExpressionClassifier(config)


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_pixel_values(labeler):
    model = _binary("test_resnet", "Happy", seed=2)
    with pytest.raises(ValueError, match="4 channels; this model expects 3"):
        model(torch.zeros(1, 4, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"48x48 pixels; this model expects 32x32"):
        model(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match=r"expects 32x32"):
        labeler(torch.zeros(2, 3, SIZE, SIZE + 1))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, SIZE, SIZE))
    with pytest.raises(ValueError, match="labels must have shape"):
        model(torch.zeros(2, 3, SIZE, SIZE), labels=torch.tensor([1]))


def test_unknown_backbone_names_the_way_to_find_names():
    with pytest.raises(ValueError, match=r"timm\.list_models") as error:
        BinaryExpressionClassifier(BinaryExpressionClassifierConfig(backbone="resnet5O", image_size=SIZE))
    assert "resnet50" in str(error.value)  # close matches are suggested


def test_model_directory_missing_files(tmp_path):
    model = _binary("test_resnet", "Sad", seed=3)
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        AutoModel.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        BinaryExpressionClassifier.from_pretrained(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SoftLabeler.from_pretrained(tmp_path / "nowhere")


def test_confidence_scores_of_the_wrong_shape(members):
    ebc, au = members
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        SoftLabeler.from_members(ebc, au, {"ebc": np.ones((3, 8)) * 0.5, "au": np.ones(8) * 0.5})
    with pytest.raises(ValueError, match=r"'au'\] has shape \(7,\)"):
        SoftLabelerConfig(
            ebc_backbones=["a"],
            au_backbones="b",
            confidence_scores={"balanced": {"ebc": [[0.5] * 8], "au": [0.5] * 7}},
        )
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        SoftLabelerConfig(ebc_backbones=["a"], au_backbones=None, confidence_scores={"balanced": {"ebc": [[1.5] * 8]}})
    with pytest.raises(ValueError, match="no 'au' confidence scores"):
        SoftLabeler.from_members(ebc, au, {"ebc": np.ones((2, 8)) * 0.5})
    with pytest.raises(ValueError, match="unknown CS mode"):
        SoftLabelerConfig(confidence_scores={"macro": {}})


def test_from_members_rejects_incomplete_or_mismatched_members(members, confidences):
    ebc, au = members
    partial = {k: v for k, v in ebc.items() if k != ("test_resnet", "Fear")}
    with pytest.raises(ValueError, match="missing.*test_resnet/Fear"):
        SoftLabeler.from_members(partial, au, confidences)
    swapped = dict(ebc)
    swapped[("test_resnet", "Fear")] = ebc[("test_resnet", "Sad")]
    with pytest.raises(ValueError, match="expected test_resnet/Fear"):
        SoftLabeler.from_members(swapped, au, confidences)
    other_size = dict(au)
    other_size["Happy"] = AUExpressionClassifier(
        AUExpressionClassifierConfig(backbone="test_resnet", emotion="Happy", image_size=48)
    )
    with pytest.raises(ValueError, match="share image_size"):
        SoftLabeler.from_members(ebc, other_size, confidences)
    with pytest.raises(ValueError, match="image processor produces 64x64"):
        SoftLabeler.from_members(ebc, au, confidences, processor=AffectNetPlusImageProcessor(size=64))
