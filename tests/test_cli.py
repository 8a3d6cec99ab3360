"""The command line's error contract: one line naming the file and what was expected, exit code 1, the
traceback only at DEBUG, a quiet exit on a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from helpers import VOTES_HEADER, logged_errors, one_line_error, write_encoded

from affectnetplus_hf.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def test_truncated_weights_give_a_one_line_error_naming_the_file(
    tmp_path: Path, model_dir: Path, face: Path, caplog
) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes()[:10])
    assert main(["predict", str(broken), str(face)]) == 1
    assert str(broken / "model.safetensors") in one_line_error(caplog)
    caplog.clear()  # label and calibrate load the same weights
    assert main(["label", str(broken), str(tmp_path), str(tmp_path / "labels")]) == 1
    assert str(broken / "model.safetensors") in one_line_error(caplog)
    caplog.clear()
    assert main(["calibrate", str(broken), "--data", str(tmp_path)]) == 1
    assert str(broken / "model.safetensors") in one_line_error(caplog)


def test_unexpected_exception_is_one_line_with_traceback_only_at_debug(tmp_path: Path, monkeypatch, caplog) -> None:
    from affectnetplus_hf.commands import info

    def boom(args):
        raise RuntimeError("something broke")

    monkeypatch.setattr(info, "run", boom)
    assert main(["info", str(tmp_path)]) == 1
    assert one_line_error(caplog) == "RuntimeError: something broke"
    assert logged_errors(caplog)[0].name == "affectnetplus"
    caplog.clear()
    assert main(["--log-level", "DEBUG", "info", str(tmp_path)]) == 1
    [error] = logged_errors(caplog)
    assert error.getMessage() == "RuntimeError: something broke" and error.exc_info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted)
    assert main(["info", str(tmp_path)]) == 130

    def worker_pipe(args):  # a broken pipe that is not stdout's is an error, not a quiet exit
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(info, "run", worker_pipe)
    caplog.clear()
    assert main(["info", str(tmp_path)]) == 1
    assert "Broken pipe" in one_line_error(caplog)


def test_absurd_image_size_is_refused_before_any_image_is_resized(
    tmp_path: Path, model_dir: Path, face: Path, caplog
) -> None:
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    with pytest.raises(ValueError, match="at most 4096"):
        AffectNetPlusImageProcessor(size=100000)
    for processor in ("kept", "edited", "removed"):
        big = tmp_path / processor
        big.mkdir()
        config = json.loads((model_dir / "config.json").read_text())
        config["image_size"] = 100000
        (big / "config.json").write_text(json.dumps(config))
        (big / "model.safetensors").symlink_to(model_dir / "model.safetensors")
        if processor != "removed":
            preprocessor = json.loads((model_dir / "preprocessor_config.json").read_text())
            if processor == "edited":
                preprocessor["size"] = 100000
            (big / "preprocessor_config.json").write_text(json.dumps(preprocessor))
        caplog.clear()
        assert main(["predict", str(big), str(face)]) == 1
        assert "100000" in one_line_error(caplog)


def test_closed_stdout_pipe_exits_quietly(tmp_path: Path) -> None:
    root = tmp_path / "data"
    # ~100 duplicate rows of a long path: info prints far more than a pipe buffer, so head closes the pipe
    # while the JSON is still being written
    image = "d/" * 2500 + "x.png"
    rows = "".join(f"{image},train,{i % 5},0,0,0,0,0,1,0\n" for i in range(101))
    write_encoded(root / "votes.csv", f"{VOTES_HEADER}\n{rows}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = f"{sys.executable} -m affectnetplus_hf info {root} | head -c 10"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "kind"'
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr and "Exception" not in result.stderr


def test_missing_model_directory_is_named(tmp_path: Path, face: Path, caplog) -> None:
    for missing in ("/nonexistent", str(tmp_path / "nope"), "./nope"):
        caplog.clear()
        assert main(["predict", missing, str(face)]) == 1
        message = one_line_error(caplog)
        assert missing in message and "does not exist" in message and "Repo id" not in message
    caplog.clear()
    assert main(["predict", str(face), str(face)]) == 1
    assert "not a directory" in one_line_error(caplog)


def test_weights_of_the_wrong_shape_give_a_one_line_error_naming_the_file(
    tmp_path: Path, face: Path, caplog, make_tiny_labeler
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    model = make_tiny_labeler(tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.weight"))
    weights[name] = torch.zeros(3, 3)
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    assert main(["predict", str(model), str(face)]) == 1
    message = one_line_error(caplog)
    assert "model.safetensors" in message and "do not match" in message
