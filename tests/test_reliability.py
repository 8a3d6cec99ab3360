"""Reliability of inputs and outputs: label-file paths stay in the data root, one-line CLI errors, quiet
exit on a closed pipe, output modes that follow the umask, and clear messages for bad model folders,
non-UTF-8 label files and bad vote cells."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.sources import RowError, open_source  # noqa: E402
from affectnetplus_hf.sources.affectnet import AffectNetSource  # noqa: E402
from affectnetplus_hf.sources.ferplus import FER2013NEW_COLUMNS, FerPlusSource  # noqa: E402
from affectnetplus_hf.sources.folder import FolderSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_labeling import make_sample, make_tiny_labeler  # noqa: E402
from test_sources_affectnet import row, write_csv_layout  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VOTES_HEADER = "image,split,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt"
OUTSIDE = ("../x.png", "/abs/x.png")


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    return path


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_tiny_labeler(tmp_path_factory.mktemp("reliability") / "model")


@pytest.fixture()
def face(tmp_path: Path) -> Path:
    return _png(tmp_path / "face.png")


def _errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def _one_line_error(caplog) -> str:
    errors = _errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "\n" not in message and not errors[0].exc_info and "Traceback" not in caplog.text
    return message


# ---------------------------------------------------------------------------------------------- 1. paths
FOLDER_CSVS = {
    "votes.csv": (VOTES_HEADER, "{image},train,3,0,0,0,0,0,2,0"),
    "annotations.csv": ("image,annotator,label,split", "{image},a1,Neutral,train"),
    "labels.csv": ("image,label,split", "{image},Happy,train"),
}


@pytest.mark.parametrize("image", OUTSIDE)
@pytest.mark.parametrize("csv_name", list(FOLDER_CSVS))
def test_folder_reader_refuses_paths_outside_the_root(tmp_path: Path, csv_name: str, image: str) -> None:
    header, line = FOLDER_CSVS[csv_name]
    root = tmp_path / "data"
    _png(root / "img" / "ok.png")
    path = _write(root / csv_name, "\n".join([header, line.format(image="img/ok.png"), line.format(image=image)]) + "\n")
    with pytest.raises(RowError, match=rf"{csv_name}:3: .*inside the data folder") as caught:
        FolderSource(root)
    assert str(path) in str(caught.value) and image in str(caught.value)
    source = FolderSource(root, skip_bad_rows=True)  # the row is skipped and reported when told to
    assert [r.image_id for r in source.records()] == ["img/ok.png"]
    assert source.skipped.counts() == {"bad_row": 1}


@pytest.mark.parametrize("image", ["../x.jpg", "/abs/x.jpg", "101/../../x.jpg"])
def test_affectnet_reader_refuses_paths_outside_the_image_folder(tmp_path: Path, image: str) -> None:
    root = write_csv_layout(tmp_path / "affectnet", [row("101/a.jpg", 1), row(image, 2)], make_images=False)
    source = AffectNetSource(root)
    with pytest.raises(RowError, match=r"training\.csv:3: .*inside") as caught:
        list(source.records())
    assert image in str(caught.value)


def _ferplus_root(root: Path, name: str) -> Path:
    header = ",".join(FER2013NEW_COLUMNS)
    _write(root / "fer2013new.csv", f"{header}\nTraining,fer0000000.png,10,0,0,0,0,0,0,0,0,0\n"
                                    f"Training,{name},0,10,0,0,0,0,0,0,0,0\n")
    _png(root / "FER2013Train" / "fer0000000.png")
    return root


@pytest.mark.parametrize("name", OUTSIDE)
def test_ferplus_reader_refuses_names_outside_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(RowError, match=r"fer2013new\.csv:3: .*inside") as caught:
        FerPlusSource(_ferplus_root(tmp_path / "ferplus", name))
    assert name in str(caught.value)
    label_root = tmp_path / "label_csv"
    _write(label_root / "FER2013Train" / "label.csv",
           f'fer0000000.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n{name},"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n')
    with pytest.raises(RowError, match=r"label\.csv:2: .*inside"):
        FerPlusSource(label_root)


def test_symlinks_inside_the_root_are_still_read(tmp_path: Path) -> None:
    from affectnetplus_hf.image_processing import load_image

    elsewhere = _png(tmp_path / "elsewhere" / "x.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "img").mkdir()
    (root / "img" / "link.png").symlink_to(elsewhere)
    _write(root / "votes.csv", f"{VOTES_HEADER}\nimg/link.png,train,3,0,0,0,0,0,2,0\nimg/./b/../link.png,train,0,1,0,0,0,0,0,0\n")
    records = list(FolderSource(root).records())
    assert [r.image_id for r in records] == ["img/link.png"]  # the same image normalised: the later row kept
    assert load_image(records[0]).size == (8, 8)
    # an AffectNet image folder that is itself a symlink to another disk
    affectnet = write_csv_layout(tmp_path / "affectnet", [row("101/a.jpg", 1)], make_images=False)
    _png(tmp_path / "disk" / "101" / "a.jpg")
    (affectnet / "Manually_Annotated_Images").symlink_to(tmp_path / "disk", target_is_directory=True)
    [record] = list(AffectNetSource(affectnet).records())
    assert record.image_id == "Manually_Annotated_Images/101/a.jpg" and load_image(record).size == (8, 8)


# ---------------------------------------------------------------------------------------------- 2. errors
def test_truncated_weights_give_a_one_line_error_naming_the_file(tmp_path: Path, model_dir: Path, face: Path,
                                                                  caplog) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes()[:10])
    assert main(["predict", str(broken), str(face)]) == 1
    assert str(broken / "model.safetensors") in _one_line_error(caplog)
    caplog.clear()  # label and calibrate load the same weights
    assert main(["label", str(broken), str(tmp_path), str(tmp_path / "labels")]) == 1
    assert str(broken / "model.safetensors") in _one_line_error(caplog)
    caplog.clear()
    assert main(["calibrate", str(broken), "--data", str(tmp_path)]) == 1
    assert str(broken / "model.safetensors") in _one_line_error(caplog)


def test_unexpected_exception_is_one_line_with_traceback_only_at_debug(tmp_path: Path, monkeypatch, caplog) -> None:
    from affectnetplus_hf.commands import info

    def boom(args):
        raise RuntimeError("something broke")

    monkeypatch.setattr(info, "run", boom)
    assert main(["info", str(tmp_path)]) == 1
    assert _one_line_error(caplog) == "RuntimeError: something broke"
    assert _errors(caplog)[0].name == "affectnetplus"
    caplog.clear()
    assert main(["--log-level", "DEBUG", "info", str(tmp_path)]) == 1
    [error] = _errors(caplog)
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
    assert "Broken pipe" in _one_line_error(caplog)


@pytest.mark.parametrize("vote", ["1e300", "-1", "2.5", "nan", "inf", "9" * 30])
def test_votes_must_be_finite_non_negative_integers(tmp_path: Path, vote: str, caplog) -> None:
    root = tmp_path / "data"
    path = _write(root / "votes.csv", f"{VOTES_HEADER}\nimg/a.png,train,3,0,0,0,0,0,2,0\nimg/b.png,train,{vote},0,0,0,0,0,0,0\n")
    assert main(["info", str(root)]) == 1
    message = _one_line_error(caplog)
    assert f"{path}:3" in message and "Neutral" in message and "integer" in message


def test_absurd_image_size_is_refused_before_any_image_is_resized(tmp_path: Path, model_dir: Path, face: Path,
                                                                   caplog) -> None:
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
        assert "100000" in _one_line_error(caplog)


# ---------------------------------------------------------------------------------------------- 3. pipes
def test_closed_stdout_pipe_exits_quietly(tmp_path: Path) -> None:
    root = tmp_path / "data"
    # ~100 duplicate rows of a long path: info prints far more than a pipe buffer, so head closes the pipe
    # while the JSON is still being written
    image = "d/" * 2500 + "x.png"
    rows = "".join(f"{image},train,{i % 5},0,0,0,0,0,1,0\n" for i in range(101))
    _write(root / "votes.csv", f"{VOTES_HEADER}\n{rows}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = f"{sys.executable} -m affectnetplus_hf info {root} | head -c 10"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "kind"'
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr and "Exception" not in result.stderr


# ---------------------------------------------------------------------------------------------- 4. modes
def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
            for p in [folder, *sorted(folder.rglob("*"))]}


@pytest.fixture()
def umask():
    previous = os.umask(0o022)
    try:
        yield lambda value: os.umask(value)
    finally:
        os.umask(previous)


def test_labels_and_dataset_follow_the_umask(tmp_path: Path, model_dir: Path, umask) -> None:
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    labels, folder = tmp_path / "labels", tmp_path / "ds"
    label_dataset(model_dir, sample, labels, LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False))
    build_dataset(sample, labels, folder, metadata=None, figures=False, progress=False)
    for tree in (labels, folder):
        modes = _modes(tree)
        assert len(modes) > 3
        wrong = {name: oct(mode) for name, mode in modes.items()
                 if mode != (0o755 if (tree / name).is_dir() else 0o644)}
        assert not wrong, f"{tree}: {wrong}"


def test_atomic_writers_follow_the_umask(tmp_path: Path, umask) -> None:
    import pyarrow as pa

    from affectnetplus_hf.labeling import write_bytes_atomic, write_parquet_deterministic
    from affectnetplus_hf.sampling import _atomic_write

    umask(0o027)
    write_bytes_atomic(tmp_path / "a.json", b"{}")
    write_parquet_deterministic(pa.table({"x": [1]}), tmp_path / "b.parquet")
    _atomic_write(tmp_path / "c.csv", lambda handle: handle.write("x\n"))
    table = "image_id,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt\na,0.5,0.5,0,0,0,0,0,0\n"
    _write(tmp_path / "in" / "gt.csv", table)
    assert main(["metrics", "compute", "-r", str(tmp_path / "in" / "gt.csv"), "-p", str(tmp_path / "in" / "gt.csv"),
                 "--output", str(tmp_path / "d.json")]) == 0
    modes = {name: oct(mode) for name, mode in _modes(tmp_path).items() if not name.startswith("in")}
    assert modes == {".": oct(stat.S_IMODE(tmp_path.stat().st_mode)), "a.json": "0o640", "b.parquet": "0o640",
                     "c.csv": "0o640", "d.json": "0o640"}


# ---------------------------------------------------------------------------------------------- 5. messages
def test_missing_model_directory_is_named(tmp_path: Path, face: Path, caplog) -> None:
    for missing in ("/nonexistent", str(tmp_path / "nope"), "./nope"):
        caplog.clear()
        assert main(["predict", missing, str(face)]) == 1
        message = _one_line_error(caplog)
        assert missing in message and "does not exist" in message and "Repo id" not in message
    caplog.clear()
    assert main(["predict", str(face), str(face)]) == 1
    assert "not a directory" in _one_line_error(caplog)


def test_non_utf8_label_files_are_named(tmp_path: Path, caplog) -> None:
    folder = _write(tmp_path / "folder" / "votes.csv",
                    f"{VOTES_HEADER}\nimg/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n", encoding="latin-1")
    with pytest.raises(ValueError, match="not UTF-8 text") as caught:
        FolderSource(folder.parent)
    assert str(folder) in str(caught.value)
    assert main(["info", str(folder.parent)]) == 1
    assert str(folder) in _one_line_error(caplog)
    # header fine, a bad byte later in the file (decoded while reading rows)
    later = _write(tmp_path / "later" / "votes.csv", f"{VOTES_HEADER}\n" + "img/a.png,train,1,0,0,0,0,0,0,0\n" * 3000
                   + "img/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n", encoding="latin-1")
    with pytest.raises(ValueError, match=rf"{later}: not UTF-8 text"):
        FolderSource(later.parent)
    affectnet = write_csv_layout(tmp_path / "affectnet", [row("101/a.jpg", 1)], make_images=False)
    lists = affectnet / "Manually_Annotated_file_lists" / "training.csv"
    lists.write_bytes(lists.read_bytes().replace(b"101/a.jpg", "101/caf\u00e9.jpg".encode("latin-1")))
    with pytest.raises(ValueError, match=rf"{lists}: not UTF-8 text"):
        list(open_source(affectnet).records())
    ferplus = _ferplus_root(tmp_path / "ferplus", "fer0000001.png")
    new_csv = ferplus / "fer2013new.csv"
    new_csv.write_bytes(new_csv.read_bytes().replace(b"fer0000001", "f\u00e9r0000001".encode("latin-1")))
    with pytest.raises(ValueError, match=rf"{new_csv}: not UTF-8 text"):
        FerPlusSource(ferplus)


def test_empty_vote_cell_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    path = _write(root / "votes.csv", f"{VOTES_HEADER}\nimg/a.png,train,3,,0,0,0,0,2,0\n")
    with pytest.raises(RowError, match=rf"{path}:2: Happy is empty"):
        FolderSource(root)
