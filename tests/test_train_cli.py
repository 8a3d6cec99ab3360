"""``affectnetplus train``: config parsing, soft-labeler families and baselines on a small sample."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import accelerate_cpu_launch

from affectnetplus_hf.cli import main
from affectnetplus_hf.commands.train import parse_train_config
from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.run_folder import MARKER_FILE

REPO = Path(__file__).resolve().parent.parent
#: The tiniest soft-labeler the tests train: the EBC family, one epoch, 32 px.
TINY = [
    "--preset",
    "tiny",
    "--families",
    "ebc",
    "--ebc-epochs",
    "1",
    "--no_progress",
    "--log_with",
    "none",
    "--image_size",
    "32",
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from affectnetplus_hf.synthetic import write_sample

    directory = tmp_path_factory.mktemp("sample")
    write_sample(directory, n_train=48, n_val=8, n_mas=240, image_size=64, progress=False, contact_sheet=False)
    return directory


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "data: /somewhere\npreset: paper\nebc_epochs: 2\ncs_mode: eq3\nebc_backbones: [resnet18, resnet34]\n"
    )
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
    code = main(
        [
            "train",
            "ebc",
            "--data",
            str(sample),
            "--output",
            str(out),
            "--preset",
            "tiny",
            "--ebc-epochs",
            "1",
            "--no_progress",
            "--log_with",
            "none",
            "--image_size",
            "32",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["families"] == ["ebc"]
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "train_config.json",
        "README.md",
        "confidence_scores.json",
        "confidence_scores.md",
        "mas_split/split.csv",
        "mas_split/report.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "_training").exists()
    marker = json.loads((out / MARKER_FILE).read_text())  # the run-folder marker: a finished soft-labeler
    assert marker["kind"] == "soft-labeler" and marker["complete"] is True
    identity = marker["identity"]
    assert identity["ebc_epochs"] == 1 and identity["families"] == ["ebc"] and len(identity["records"]) == 64
    assert not {"output_dir", "progress", "overwrite", "num_workers"} & set(identity)  # do not change results
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
        code = main(
            [
                "train",
                "baseline",
                "--kind",
                kind,
                "--data",
                str(sample),
                "--output",
                str(out),
                "--epochs",
                "1",
                "--image_size",
                "32",
                "--no_progress",
                "--log_with",
                "none",
                "--class_balance",
                "both",
            ]
        )
        assert code == 0
        config = json.loads((out / "config.json").read_text())
        assert config["model_type"] == ("affectnetplus-hard-fer" if kind == "hard" else "affectnetplus-soft-fer")
        if kind == "hard":
            assert len(config["class_weights"]) == 8
        assert (
            "Hard-FER" in (out / "README.md").read_text()
            if kind == "hard"
            else "Soft-FER" in (out / "README.md").read_text()
        )


def test_distribution_family_trains_on_every_voted_image_and_calibrates(sample, tmp_path, capsys):
    """``--families ebc dist``: the distribution members learn from every multi-annotated image outside
    test-MAS (those without a majority too), the calibration is fitted on a held-out share, and
    ``affectnetplus calibrate`` refits it in place."""
    from affectnetplus_hf.sources import open_multi_annotated
    from affectnetplus_hf.training.calibrate import hold_out

    out = tmp_path / "dist"
    code = main(
        [
            "train",
            "softlabeler",
            "--data",
            str(sample),
            "--output",
            str(out),
            "--preset",
            "tiny",
            "--families",
            "ebc,dist",
            "--ebc-epochs",
            "1",
            "--dist_epochs",
            "1",
            "--dist_members",
            "2",
            "--calibration_split",
            "holdout",
            "--calibration_fraction",
            "0.2",
            "--no_progress",
            "--log_with",
            "none",
            "--image_size",
            "32",
        ]
    )
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
    assert table["timings"]["dist_images"] == len(voted)  # includes the images without a majority
    n_majority = sum(1 for line in split[1:] if ",train," in line)
    assert len(voted) > n_majority
    assert set(table["dist_members"]) == {"dist-test_resnet-0", "dist-test_resnet-1"}
    card = (out / "README.md").read_text()
    assert "Quality against people" in card and "calibrated soft label" in card

    # a refit on the MAS train split, which the members saw: --force (without it calibrate refuses)
    assert (
        main(["calibrate", str(out), "--data", str(sample), "--split", "train", "--objective", "w_mae", "--force"])
        == 0
    )
    refit = json.loads((out / "config.json").read_text())["calibration"]
    assert refit["objective"] == "w_mae" and refit["fitted_on"]["split"] == "train"
    card = (out / "README.md").read_text()
    assert card.count("## Quality against people") == 1 and "`train`" in card


# ---------------------------------------------------------------------------------------------- the model folder


def _train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "softlabeler", "--data", str(data), "--output", str(out), *TINY, *extra]


def _assert_same_model(tree: dict[str, bytes], reference: dict[str, bytes], overwrite: bool = False) -> None:
    """Two model folders hold the same files, byte for byte, except the run's own timings: ``timings`` in
    ``confidence_scores.json`` and the training time on the card's "Trained with ... in N s." line. With
    ``overwrite``, ``train_config.json`` may differ in its ``overwrite`` field alone (the saved config records it)."""
    assert sorted(tree) == sorted(reference)
    for name in tree:
        if name == "train_config.json" and overwrite:
            ours, theirs = json.loads(tree[name]), json.loads(reference[name])
            assert ours.pop("overwrite") is True and theirs.pop("overwrite") is False
            assert ours == theirs
        elif name == "confidence_scores.json":
            ours, theirs = json.loads(tree[name]), json.loads(reference[name])
            assert set(ours.pop("timings")) == set(theirs.pop("timings"))
            assert ours == theirs
        elif name == "README.md":
            pattern = rb"(Trained with .*) in [0-9.]+ (s|min)\."
            assert re.sub(pattern, rb"\1 in T.", tree[name]) == re.sub(pattern, rb"\1 in T.", reference[name])
        else:
            assert tree[name] == reference[name], name


def test_train_refuses_a_folder_it_did_not_write(sample, tmp_path, caplog):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        caplog.clear()
        assert main(_train_argv(sample, out, *extra)) == 1
        assert "not empty and was not written by `affectnetplus train softlabeler`" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # never deleted, nothing added


@pytest.mark.slow  # four tiny trainings
def test_interrupted_run_resumes_to_the_uninterrupted_model_and_overwrite_starts_over(
    sample, tmp_path, monkeypatch, caplog, tree_bytes
):
    from affectnetplus_hf.run_folder import RunFolderError
    from affectnetplus_hf.training import softlabeler

    out = tmp_path / "model"
    config = parse_train_config(["--data", str(sample), "--output", str(out), *TINY])
    softlabeler.train_soft_labeler(config)
    reference = tree_bytes(out)
    shutil.rmtree(out)
    real = softlabeler.train_model

    def interrupt(seed: int) -> str:
        """A run with ``seed`` stopped while its second member trains; returns the finished first member."""
        calls = []

        def killed_at_the_second_member(*args, **kwargs):
            calls.append(kwargs["name"])
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(softlabeler, "train_model", killed_at_the_second_member)
        with pytest.raises(KeyboardInterrupt):
            softlabeler.train_soft_labeler(
                parse_train_config(["--data", str(sample), "--output", str(out), *TINY, "--seed", str(seed)])
            )
        monkeypatch.setattr(softlabeler, "train_model", real)
        marker = json.loads((out / MARKER_FILE).read_text())
        assert marker["complete"] is False and marker["identity"]["seed"] == seed
        assert (out / "_training" / "members" / calls[0] / "member_done.json").is_file()
        return calls[0]

    caplog.set_level(logging.INFO, logger="affectnetplus_hf.training.softlabeler")
    first = interrupt(seed=0)  # the same settings resume: the finished member is reused
    softlabeler.train_soft_labeler(config)
    assert f"{first}: already trained" in caplog.text
    _assert_same_model(tree_bytes(out), reference)
    assert json.loads((out / MARKER_FILE).read_text())["complete"] is True

    shutil.rmtree(out)
    interrupt(seed=5)  # other settings: refused, naming them; with overwrite, started over
    with pytest.raises(RunFolderError, match=r"other settings \(seed: was 5, now 0\)"):
        softlabeler.train_soft_labeler(config)
    caplog.clear()
    softlabeler.train_soft_labeler(
        parse_train_config(["--data", str(sample), "--output", str(out), *TINY, "--overwrite"])
    )
    assert "already trained" not in caplog.text
    _assert_same_model(tree_bytes(out), reference, overwrite=True)


HELD_TRAIN = """
import sys, time
from pathlib import Path
from affectnetplus_hf.training import softlabeler
hold, train_model = Path(sys.argv[1]), softlabeler.train_model
def held(*args, **kwargs):  # the first member waits, the folder locked, until the test lets it go
    Path(str(hold) + ".waiting").touch()
    while not hold.exists():
        time.sleep(0.05)
    return train_model(*args, **kwargs)
softlabeler.train_model = held
from affectnetplus_hf.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _lock_owner(lock: Path) -> int | None:
    try:
        return json.loads(lock.read_text()).get("pid")
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_two_train_runs_on_one_out_one_waits_out(sample, tmp_path, tree_bytes):
    """Two `affectnetplus train softlabeler` on one OUT: the first holds OUT's lock (held before its first
    member), the second stops at once naming it, and the finished OUT equals a run's alone."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_CBWR="AUTO,STRICT", PYTHONPATH=str(REPO))
    out, hold, script = tmp_path / "model", tmp_path / "go", tmp_path / "held_train.py"
    script.write_text(HELD_TRAIN)
    alone = subprocess.run(
        [sys.executable, "-m", "affectnetplus_hf", *_train_argv(sample, out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    reference = tree_bytes(out)
    shutil.rmtree(out)

    first = subprocess.Popen(
        [sys.executable, str(script), str(hold), *_train_argv(sample, out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock, waiting, deadline = tmp_path / ".model.lock", tmp_path / "go.waiting", time.monotonic() + 120
        while not waiting.exists():  # the first run is paused before its first member
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first run did not reach its first member"
            time.sleep(0.05)
        assert _lock_owner(lock) == first.pid, f"the first run trains without holding {lock}"
        before = tree_bytes(out)
        assert json.loads(before[MARKER_FILE])["complete"] is False
        second = subprocess.run(
            [sys.executable, "-m", "affectnetplus_hf", *_train_argv(sample, out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"{out} is in use by process {first.pid} (started" in second.stderr
        assert "Traceback" not in second.stderr and not second.stdout
        assert tree_bytes(out) == before  # the second run wrote nothing
    finally:
        hold.touch()
        _, errors = first.communicate(timeout=300)
    assert first.returncode == 0, errors[-2000:]
    assert _lock_owner(lock) is None  # released
    _assert_same_model(tree_bytes(out), reference)


@pytest.mark.slow
def test_two_process_soft_labeler_on_cpu_has_one_main_process(sample, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU: one main process writes and locks the model
    folder (the other does not fight it for the lock); a rerun is refused on every process, none left waiting."""
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = tmp_path / "model"
    launch = [
        *accelerate_cpu_launch(29537),
        "-m",
        "affectnetplus_hf",
        *_train_argv(sample, out),
    ]
    trained = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads((out / MARKER_FILE).read_text())["complete"] is True
    assert "is in use by" not in trained.stderr  # before: both processes were "main" and the second was locked out
    refused = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert refused.stderr.count("already holds a finished run of `affectnetplus train softlabeler`") == 2
