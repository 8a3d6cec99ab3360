"""The one training loop: resume = uninterrupted, NaN stop, DDP on CPU, helpers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import os

import torch
from torch import nn

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.training import (
    LoopConfig,
    NonFiniteLossError,
    TrainConfig,
    list_checkpoints,
    resolve_preset,
    train_model,
)
from affectnetplus_hf.training.baseline import class_weights_for, upsampling_indices
from affectnetplus_hf.training.config import AugmentConfig
from affectnetplus_hf.training.data import SeededAugmenter, TensorImageDataset
from affectnetplus_hf.training.loop import build_scheduler
from affectnetplus_hf.training.softlabeler import auto_n_test_per_class, binary_metrics, mas_records_fingerprint


class TinyNet(nn.Module):
    """Stand-in for a member: conv + dropout + linear, forward(**batch) -> {"loss", "logits"}."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 2)
        )

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 12, 12, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    return TensorImageDataset(x, {"labels": y}, SeededAugmenter(AugmentConfig(), seed=0))


def _config(**kw):
    base = dict(epochs=3, batch_size=8, learning_rate=1e-2, log_with="none", progress=False)
    base.update(kw)
    return LoopConfig(**base)


def _run(out, stop=None, **kw):
    torch.manual_seed(0)
    return train_model(
        TinyNet(),
        _data(),
        _config(**kw),
        out,
        name="tiny",
        stop_after_steps=stop,
        epoch_indices=lambda epoch: np.arange(35),
    )


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    full = _run(tmp_path / "full")
    assert full.completed and full.global_step == 3 * 5
    part = _run(tmp_path / "resumed", stop=7, checkpoint_every=3, gradient_accumulation_steps=1)
    assert not part.completed and part.global_step == 7
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")][-1] == "step_00000007"
    resumed = _run(tmp_path / "resumed", checkpoint_every=3)
    assert resumed.resumed_from.endswith("step_00000007") and resumed.completed
    assert resumed.epoch_losses == pytest.approx(full.epoch_losses)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    # a different seed gives other weights (the test above can fail)
    other = _run(tmp_path / "other", seed=1)
    assert not torch.equal(other.model.net[-1].weight, full.model.net[-1].weight)
    # no pickled sampler in the checkpoints (resume loads with weights_only)
    assert not list((tmp_path / "resumed").rglob("sampler*.bin"))


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    result = _run(tmp_path, gradient_accumulation_steps=2, epochs=1)
    assert result.global_step == 3  # 5 batches -> steps after batch 2, 4 and the last one


class NaNAfter(TinyNet):
    def __init__(self, after):
        super().__init__()
        self.calls, self.after = 0, after

    def forward(self, pixel_values, labels=None):
        out = super().forward(pixel_values, labels)
        self.calls += 1
        if self.calls > self.after:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_with_member_and_step_and_keeps_checkpoint(tmp_path):
    torch.manual_seed(0)
    stopped = r"ebc-x-Happy: the loss became nan at epoch 2, batch 2, optimizer step 7"
    with pytest.raises(NonFiniteLossError, match=stopped):
        train_model(
            NaNAfter(6), _data(), _config(), tmp_path, name="ebc-x-Happy", epoch_indices=lambda epoch: np.arange(35)
        )
    kept = list_checkpoints(tmp_path)
    assert kept and kept[-1].name == "step_00000005"  # end of epoch 1, the last good state


def test_model_without_loss_is_a_clear_error(tmp_path):
    class NoLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, pixel_values, labels=None):
            return {"logits": self.lin(pixel_values.mean((1, 2, 3))[:, None])}

    with pytest.raises(ValueError, match="returned no loss"):
        train_model(NoLoss(), _data(), _config(epochs=1), tmp_path, name="x")


def test_seeded_augmentation_is_reproducible_and_varies():
    aug = SeededAugmenter(AugmentConfig(), seed=3)
    image = torch.randn(3, 16, 16)
    assert torch.equal(aug(image, 1, 5), aug(image, 1, 5))
    assert not torch.equal(aug(image, 1, 5), aug(image, 2, 5))
    assert torch.equal(SeededAugmenter(AugmentConfig(augment=False))(image, 0, 0), image)


def test_inverse_time_and_cosine_schedules():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, LoopConfig(lr_scheduler="inverse_time", lr_decay=0.5), total_steps=10)
    lambdas = [sched.lr_lambdas[0](s) for s in (0, 2, 4)]
    assert lambdas == pytest.approx([1.0, 0.5, 1 / 3])
    cos = build_scheduler(opt, LoopConfig(lr_scheduler="cosine", warmup_steps=2), total_steps=10)
    assert cos.lr_lambdas[0](0) == pytest.approx(0.5) and cos.lr_lambdas[0](10) == pytest.approx(0.0)


def test_binary_metrics_hand_worked():
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.1, 0.3, 0.4])  # TP 1, FN 1, FP 1, TN 3
    m = binary_metrics(y, p)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (1, 1, 1, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["cs_balanced"] == pytest.approx(0.5 * (1 / 2 + 3 / 4)) == pytest.approx(m["average_accuracy"])
    assert m["cs_eq3"] == pytest.approx(0.5 * (1 / 2 + 3 / 4))
    assert m["precision"] == pytest.approx(0.5) and m["f1"] == pytest.approx(0.5)


def test_member_metrics_are_the_functional_metrics_as_fractions():
    from affectnetplus_hf.metrics.functional import hard_label_metrics
    from affectnetplus_hf.training.softlabeler import dist_accuracy

    rng = np.random.default_rng(0)
    y, p = (rng.random(50) < 0.3).astype(np.int64), rng.random(50)
    m = binary_metrics(y, p)
    percent = hard_label_metrics(y, (p >= 0.5).astype(np.int64), labels=(0, 1))
    assert m["accuracy"] == pytest.approx(percent["accuracy"] / 100)
    assert m["average_accuracy"] == pytest.approx(percent["average_accuracy"] / 100)
    for key in ("precision", "recall", "f1"):
        assert m[key] == pytest.approx(percent["per_class"]["1"][key] / 100)
    labels, probs = rng.integers(0, 8, 40), rng.dirichlet(np.ones(8), 40)
    assert dist_accuracy(labels, probs)["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == labels))


def test_member_plan_order_and_names():
    from affectnetplus_hf.training.softlabeler import member_plan

    config = resolve_preset(TrainConfig(preset="tiny", ebc_backbones=["hf-hub:a/b", "c"], dist_members=2))
    plan = member_plan(config, ("ebc", "au", "dist"))
    assert [spec.family for spec in plan] == ["ebc"] * 16 + ["au"] * 8 + ["dist"] * 2
    assert [plan[0].name, plan[8].name, plan[16].name, plan[-1].name] == [
        "ebc-hf-hub_a_b-Neutral",
        "ebc-c-Neutral",
        f"au-{config.au_backbone}-Neutral",
        f"dist-{config.dist_backbone}-1",
    ]


def test_auto_n_test_per_class():
    labels = np.repeat(np.arange(8), [1000, 1000, 1000, 1000, 1000, 1000, 1000, 60])
    assert auto_n_test_per_class(labels) == 9  # floor(0.15 * 60)
    assert auto_n_test_per_class(np.repeat(np.arange(8), 2000)) == 100
    assert auto_n_test_per_class(np.repeat(np.arange(8), 10)) == 5


def test_mas_records_fingerprint_is_the_run_folder_one_with_the_same_value():
    """The MAS records field of a soft-labeler's identity: run_folder.records_fingerprint over (image id, split,
    votes as JSON, non-emotion votes), the value the training's own run.json recorded before."""
    import hashlib
    from types import SimpleNamespace

    records = [
        SimpleNamespace(
            image_id="img/a.png", split="train", votes=np.array([3, 0, 0, 0, 0, 0, 2, 0]), non_emotion_votes=1
        ),
        SimpleNamespace(image_id="b", split=None, votes=np.array([[0, 4, 1, 0, 0, 0, 0, 0]]), non_emotion_votes=0),
    ]
    digest = hashlib.sha256()
    for r in records:  # the former hand-written formula
        votes = json.dumps(np.asarray(r.votes).reshape(-1).tolist())
        digest.update(f"{r.image_id}\t{r.split}\t{votes}\t{r.non_emotion_votes}\n".encode())
    assert mas_records_fingerprint(records) == digest.hexdigest()
    records[1].votes = np.array([0, 4, 1, 0, 0, 0, 0, 1])  # one more vote
    assert mas_records_fingerprint(records) != digest.hexdigest()


def test_hard_fer_balancing():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 4)
    weights = class_weights_for(labels)
    assert weights[3] == 0.0 and np.mean([w for w in weights if w]) == pytest.approx(1.0)
    assert weights[1] == pytest.approx(3 * weights[0])
    draws = np.concatenate([labels[upsampling_indices(labels, 0, e)] for e in range(200)])
    shares = np.bincount(draws, minlength=3)[:3] / len(draws)
    assert np.allclose(shares, 1 / 3, atol=0.02)
    assert np.array_equal(upsampling_indices(labels, 0, 1), upsampling_indices(labels, 0, 1))


def test_presets_fill_only_unset_fields():
    config = resolve_preset(TrainConfig(preset="paper", ebc_epochs=3))
    assert config.ebc_epochs == 3 and config.ebc_learning_rate == 1e-3 and config.au_learning_rate == 1e-4
    assert config.ebc_backbones == ["resnet50", "efficientnet_b3", "legacy_xception"] and config.image_size == 224
    loop = config.loop_config("au")
    assert (loop.epochs, loop.batch_size, loop.weight_decay) == (40, 50, 1e-6)
    with pytest.raises(ValueError, match="resolve_preset"):
        TrainConfig().loop_config("ebc")


DENORMAL_SCRIPT = """
import importlib.util, torch
spec = importlib.util.spec_from_file_location("training_tests", {test_file!r})
tests = importlib.util.module_from_spec(spec); spec.loader.exec_module(tests)
from affectnetplus_hf.training import train_model
tiny = torch.tensor([1e-40])  # below float32's normal range
seen = []
class Probe(tests.TinyNet):
    def forward(self, pixel_values, labels=None):
        seen.append(float(tiny * 1.0))
        return super().forward(pixel_values, labels)
before = float(tiny * 1.0)
train_model(Probe(), tests._data(), tests._config(epochs=1), {out!r}, name="probe")
print(before > 0, set(seen) == {{0.0}}, float(tiny * 1.0) > 0)
"""


def test_training_on_cpu_flushes_denormal_floats(tmp_path):
    # weights decayed below float32's normal range made late epochs 8x slower on CPU; flushed, they cost nothing
    script = tmp_path / "probe.py"
    script.write_text(DENORMAL_SCRIPT.format(test_file=str(Path(__file__).resolve()), out=str(tmp_path / "run")))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "True", "True"]  # flushed during training only


DDP_SCRIPT = """
import importlib.util, json, numpy as np, torch
spec = importlib.util.spec_from_file_location("training_tests", {test_file!r})
tests = importlib.util.module_from_spec(spec); spec.loader.exec_module(tests)
TinyNet, _data, _config = tests.TinyNet, tests._data, tests._config
from affectnetplus_hf.training import train_model
torch.manual_seed(0)
result = train_model(TinyNet(), _data(), _config(epochs=2), {out!r}, name="ddp")
import torch.distributed as dist
if result.is_main_process:
    w = result.model.net[-1].weight.detach().flatten().tolist()
    done = {{"world": dist.get_world_size(), "step": result.global_step, "w": w}}
    open({out!r} + "/done.json", "w").write(json.dumps(done))
"""


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    from helpers import accelerate_cpu_launch

    script = tmp_path / "ddp_train.py"
    out = tmp_path / "run"
    script.write_text(DDP_SCRIPT.format(test_file=str(Path(__file__).resolve()), out=str(out)))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            *accelerate_cpu_launch(29533),
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads((out / "done.json").read_text())
    assert done["world"] == 2
    assert done["step"] == 2 * 3  # 40 rows / (8 per process x 2 processes) = 3 batches per epoch
    assert len(list_checkpoints(out)) == 2  # saved once per epoch, not once per process


def test_epoch_loader_is_prepared_like_accelerate_prepares_it():
    """``prepare_epoch_loader`` (public ``accelerate.data_loader.prepare_data_loader`` with the accelerator's
    settings) yields what ``Accelerator.prepare_data_loader`` yields, without registering the loader."""
    from torch.utils.data import DataLoader

    from affectnetplus_hf.training.loop import make_accelerator, prepare_epoch_loader

    accelerator = make_accelerator(_config(cpu=True), "unused")
    g = torch.Generator().manual_seed(0)
    data = TensorImageDataset(
        torch.randn(21, 3, 4, 4, generator=g), {"labels": torch.randint(0, 2, (21,), generator=g)}
    )

    def loader():
        return DataLoader(data, batch_size=4, generator=torch.Generator().manual_seed(3))

    ours, theirs = prepare_epoch_loader(accelerator, loader()), accelerator.prepare_data_loader(loader())
    assert type(ours) is type(theirs) and len(ours) == len(theirs) == 6
    batches = list(ours)
    for a, b in zip(batches, theirs, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    resumed = list(accelerator.skip_first_batches(ours, 4))  # what a resumed epoch iterates
    assert len(resumed) == 2 and all(
        torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(resumed, batches[4:], strict=True)
    )


def test_trainer_state_saves_and_loads_the_checkpoint_json(tmp_path):
    """``TrainerState`` round-trips through ``trainer_state.json``, reads the file the loop wrote before it was a
    dataclass (same keys) and ignores keys it does not know."""
    from affectnetplus_hf.training.loop import TRAINER_STATE, TrainerState

    state = TrainerState(
        epoch=1,
        batch_in_epoch=2,
        global_step=7,
        epoch_losses=[0.68],
        loss_sum=1.43,
        loss_count=2,
        total_steps=15,
        name="tiny",
    )
    state.save_to_json(tmp_path / TRAINER_STATE)
    assert TrainerState.load_from_json(tmp_path / TRAINER_STATE) == state
    assert json.loads((tmp_path / TRAINER_STATE).read_text())["global_step"] == 7
    old = {
        "batch_in_epoch": 2,
        "completed": False,
        "epoch": 1,
        "epoch_losses": [0.68],
        "global_step": 7,
        "loss_count": 2,
        "loss_sum": 1.43,
        "name": "tiny",
        "skipped_bad": 0,
        "total_steps": 15,
        "later": 1,
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert TrainerState.load_from_json(tmp_path / "old.json") == state
    (tmp_path / "partial.json").write_text(json.dumps({"epoch": 2, "global_step": 10}))
    assert TrainerState.load_from_json(tmp_path / "partial.json") == TrainerState(epoch=2, global_step=10)


def test_resume_reads_the_checkpoint_trainer_state(tmp_path):
    part = _run(tmp_path, stop=4)
    saved = json.loads((list_checkpoints(tmp_path)[-1] / "trainer_state.json").read_text())
    assert saved == {
        "batch_in_epoch": 4,
        "completed": False,
        "epoch": 0,
        "epoch_losses": [],
        "global_step": 4,
        "loss_count": 4,
        "loss_sum": pytest.approx(saved["loss_sum"]),
        "name": "tiny",
        "skipped_bad": 0,
        "total_steps": 15,
    }
    assert part.global_step == 4 and not part.completed
    with pytest.raises(ValueError, match="was made for 15 steps, this run has 5"):
        _run(tmp_path, epochs=1)


@pytest.fixture(scope="module")
def mas_sample(tmp_path_factory) -> Path:
    from affectnetplus_hf.synthetic import write_sample

    directory = tmp_path_factory.mktemp("mas") / "sample"
    write_sample(directory, n_train=8, n_val=4, n_mas=120, image_size=40, progress=False, contact_sheet=False)
    return directory


def _train_config(data: Path, out: Path, **kwargs):
    from affectnetplus_hf.training import TrainConfig

    options = dict(preset="tiny", image_size=32, ebc_epochs=1, families=["ebc"], progress=False, log_with="none")
    return TrainConfig(data=str(data), output_dir=str(out), **{**options, **kwargs})


def test_train_resume_with_other_settings_refuses_naming_them(
    tmp_path: Path, mas_sample: Path, monkeypatch, caplog
) -> None:
    from affectnetplus_hf.training import softlabeler

    out = tmp_path / "model"
    real, calls = softlabeler.train_model, []

    def killed_at_the_second_member(*args, **kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is stopped while the second member trains
        return real(*args, **kwargs)

    monkeypatch.setattr(softlabeler, "train_model", killed_at_the_second_member)
    with pytest.raises(KeyboardInterrupt):
        softlabeler.train_soft_labeler(_train_config(mas_sample, out, seed=5))
    monkeypatch.setattr(softlabeler, "train_model", real)
    work, marker = out / "_training", out / ".affectnetplus-run.json"
    run = json.loads(marker.read_text())
    assert run["kind"] == "soft-labeler" and run["complete"] is False
    assert run["identity"]["seed"] == 5 and "progress" not in run["identity"] and "output_dir" not in run["identity"]
    done = work / "members" / calls[0] / "member_done.json"
    assert done.is_file()
    state = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(ValueError, match=r"other settings.*ebc_epochs: was 1, now 3.*seed: was 5, now 0") as caught:
        softlabeler.train_soft_labeler(_train_config(mas_sample, out, seed=0, ebc_epochs=3))
    assert "\n" not in str(caught.value)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == state  # nothing written, train_config.json kept
    assert json.loads((out / "train_config.json").read_text())["seed"] == 5
    # other MAS records (image ids or votes) refuse too
    marker.write_text(json.dumps({**run, "identity": {**run["identity"], "records": "0" * 64}}))
    with pytest.raises(ValueError, match=r"other settings \(records: was '0000"):
        softlabeler.train_soft_labeler(_train_config(mas_sample, out, seed=5))
    marker.write_text(json.dumps(run))
    # settings that do not change results may differ; the finished member is reused
    caplog.set_level(logging.INFO, logger="affectnetplus_hf.training.softlabeler")
    softlabeler.train_soft_labeler(_train_config(mas_sample, out, seed=5, checkpoint_every=7))
    assert f"{calls[0]}: already trained" in caplog.text
    assert (out / "model.safetensors").is_file() and not work.exists()


def test_train_into_a_finished_model_folder_needs_overwrite(tmp_path: Path, mas_sample: Path, caplog) -> None:
    from helpers import one_line_error

    from affectnetplus_hf.training.softlabeler import train_soft_labeler

    out = tmp_path / "model"
    train_soft_labeler(_train_config(mas_sample, out))
    state = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(ValueError, match=r"finished run.*overwrite") as caught:
        train_soft_labeler(_train_config(mas_sample, out, seed=1))
    assert "\n" not in str(caught.value)
    caplog.clear()
    assert (
        main(
            [
                "train",
                "ebc",
                "--data",
                str(mas_sample),
                "--output",
                str(out),
                "--image_size",
                "32",
                "--ebc_epochs",
                "1",
                "--no_progress",
                "--log_with",
                "none",
            ]
        )
        == 1
    )
    assert "--overwrite" in one_line_error(caplog)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == state
    from affectnetplus_hf.commands.train import parse_train_config

    assert parse_train_config(["--overwrite"]).overwrite is True and parse_train_config([]).overwrite is False
    train_soft_labeler(_train_config(mas_sample, out, seed=1, overwrite=True))
    assert json.loads((out / "train_config.json").read_text())["seed"] == 1
    assert (out / "model.safetensors").stat().st_mtime_ns != state[out / "model.safetensors"]


def test_train_that_fails_validation_writes_nothing(tmp_path: Path, mas_sample: Path) -> None:
    import shutil

    from affectnetplus_hf.training.softlabeler import train_soft_labeler

    out = tmp_path / "model"
    with pytest.raises(ValueError, match="no train-MAS or no test-MAS image"):  # too few images for every emotion
        train_soft_labeler(_train_config(mas_sample, out, max_images=6))
    assert not out.exists()
    with pytest.raises(ValueError, match="no image with votes in splits"):
        train_soft_labeler(_train_config(mas_sample, out, mas_splits=["nope"]))
    assert not out.exists()
    broken = tmp_path / "sample"
    shutil.copytree(mas_sample, broken)
    from affectnetplus_hf.sources import open_multi_annotated

    record = next(iter(open_multi_annotated(str(broken)).records(None)))
    Path(record.image_path).write_bytes(b"not an image")
    with pytest.raises(Exception, match=record.image_path.rsplit("/", 1)[-1]):
        train_soft_labeler(_train_config(broken, out))
    assert not out.exists()
