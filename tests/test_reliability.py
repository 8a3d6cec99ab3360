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
def model_dir(tmp_path_factory, make_tiny_labeler) -> Path:
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
    path = _write(
        root / csv_name, "\n".join([header, line.format(image="img/ok.png"), line.format(image=image)]) + "\n"
    )
    with pytest.raises(RowError, match=rf"{csv_name}:3: .*inside the data folder") as caught:
        FolderSource(root)
    assert str(path) in str(caught.value) and image in str(caught.value)
    source = FolderSource(root, skip_bad_rows=True)  # the row is skipped and reported when told to
    assert [r.image_id for r in source.records()] == ["img/ok.png"]
    assert source.skipped.counts() == {"bad_row": 1}


@pytest.mark.parametrize("image", ["../x.jpg", "/abs/x.jpg", "101/../../x.jpg"])
def test_affectnet_reader_refuses_paths_outside_the_image_folder(tmp_path: Path, image: str, affectnet_files) -> None:
    root = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1), affectnet_files.row(image, 2)], make_images=False
    )
    source = AffectNetSource(root)
    with pytest.raises(RowError, match=r"training\.csv:3: .*inside") as caught:
        list(source.records())
    assert image in str(caught.value)


def _ferplus_root(root: Path, name: str) -> Path:
    header = ",".join(FER2013NEW_COLUMNS)
    _write(
        root / "fer2013new.csv",
        f"{header}\nTraining,fer0000000.png,10,0,0,0,0,0,0,0,0,0\nTraining,{name},0,10,0,0,0,0,0,0,0,0\n",
    )
    _png(root / "FER2013Train" / "fer0000000.png")
    return root


@pytest.mark.parametrize("name", OUTSIDE)
def test_ferplus_reader_refuses_names_outside_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(RowError, match=r"fer2013new\.csv:3: .*inside") as caught:
        FerPlusSource(_ferplus_root(tmp_path / "ferplus", name))
    assert name in str(caught.value)
    label_root = tmp_path / "label_csv"
    _write(
        label_root / "FER2013Train" / "label.csv",
        f'fer0000000.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n{name},"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n',
    )
    with pytest.raises(RowError, match=r"label\.csv:2: .*inside"):
        FerPlusSource(label_root)


def test_symlinks_inside_the_root_are_still_read(tmp_path: Path, affectnet_files) -> None:
    from affectnetplus_hf.images import load_image

    elsewhere = _png(tmp_path / "elsewhere" / "x.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "img").mkdir()
    (root / "img" / "link.png").symlink_to(elsewhere)
    _write(
        root / "votes.csv",
        f"{VOTES_HEADER}\nimg/link.png,train,3,0,0,0,0,0,2,0\nimg/./b/../link.png,train,0,1,0,0,0,0,0,0\n",
    )
    records = list(FolderSource(root).records())
    assert [r.image_id for r in records] == ["img/link.png"]  # the same image normalised: the later row kept
    assert load_image(records[0]).size == (8, 8)
    # an AffectNet image folder that is itself a symlink to another disk
    affectnet = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1)], make_images=False
    )
    _png(tmp_path / "disk" / "101" / "a.jpg")
    (affectnet / "Manually_Annotated_Images").symlink_to(tmp_path / "disk", target_is_directory=True)
    [record] = list(AffectNetSource(affectnet).records())
    assert record.image_id == "Manually_Annotated_Images/101/a.jpg" and load_image(record).size == (8, 8)


# ---------------------------------------------------------------------------------------------- 2. errors
def test_truncated_weights_give_a_one_line_error_naming_the_file(
    tmp_path: Path, model_dir: Path, face: Path, caplog
) -> None:
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
    path = _write(
        root / "votes.csv", f"{VOTES_HEADER}\nimg/a.png,train,3,0,0,0,0,0,2,0\nimg/b.png,train,{vote},0,0,0,0,0,0,0\n"
    )
    assert main(["info", str(root)]) == 1
    message = _one_line_error(caplog)
    assert f"{path}:3" in message and "Neutral" in message and "integer" in message


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
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "kind"'
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr and "Exception" not in result.stderr


# ---------------------------------------------------------------------------------------------- 4. modes
def _modes(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
        for p in [folder, *sorted(folder.rglob("*"))]
    }


@pytest.fixture()
def umask():
    previous = os.umask(0o022)
    try:
        yield lambda value: os.umask(value)
    finally:
        os.umask(previous)


def test_labels_and_dataset_follow_the_umask(tmp_path: Path, model_dir: Path, umask, make_sample) -> None:
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    labels, folder = tmp_path / "labels", tmp_path / "ds"
    label_dataset(model_dir, sample, labels, LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False))
    build_dataset(sample, labels, folder, metadata=None, figures=False, progress=False)
    for tree in (labels, folder):
        modes = _modes(tree)
        assert len(modes) > 3
        wrong = {
            name: oct(mode) for name, mode in modes.items() if mode != (0o755 if (tree / name).is_dir() else 0o644)
        }
        assert not wrong, f"{tree}: {wrong}"


def test_atomic_writers_follow_the_umask(tmp_path: Path, umask) -> None:
    import pyarrow as pa

    from affectnetplus_hf.fileio import write_bytes_atomic, write_parquet_deterministic, write_text_atomic

    umask(0o027)
    write_bytes_atomic(tmp_path / "a.json", b"{}")
    write_parquet_deterministic(pa.table({"x": [1]}), tmp_path / "b.parquet")
    write_text_atomic(tmp_path / "c.csv", "x\n")
    table = "image_id,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt\na,0.5,0.5,0,0,0,0,0,0\n"
    _write(tmp_path / "in" / "gt.csv", table)
    assert (
        main(
            [
                "metrics",
                "compute",
                "-r",
                str(tmp_path / "in" / "gt.csv"),
                "-p",
                str(tmp_path / "in" / "gt.csv"),
                "--output",
                str(tmp_path / "d.json"),
            ]
        )
        == 0
    )
    from affectnetplus_hf.models.inference import write_predictions

    write_predictions(pa.table({"path": ["x.png"], "Neutral": [0.5]}), tmp_path / "e.csv")
    from affectnetplus_hf.models import HardFERConfig, HardFERModel

    HardFERModel(HardFERConfig(backbone="test_resnet", image_size=32)).save_pretrained(tmp_path / "model")
    assert {oct(mode) for name, mode in _modes(tmp_path).items() if name.startswith("model/")} == {"0o640"}
    modes = {name: oct(mode) for name, mode in _modes(tmp_path).items() if not name.startswith(("in", "model"))}
    assert modes == {
        ".": oct(stat.S_IMODE(tmp_path.stat().st_mode)),
        "a.json": "0o640",
        "b.parquet": "0o640",
        "c.csv": "0o640",
        "d.json": "0o640",
        "e.csv": "0o640",
    }


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


def test_non_utf8_label_files_are_named(tmp_path: Path, caplog, affectnet_files) -> None:
    folder = _write(
        tmp_path / "folder" / "votes.csv",
        f"{VOTES_HEADER}\nimg/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n",
        encoding="latin-1",
    )
    with pytest.raises(ValueError, match="not UTF-8 text") as caught:
        FolderSource(folder.parent)
    assert str(folder) in str(caught.value)
    assert main(["info", str(folder.parent)]) == 1
    assert str(folder) in _one_line_error(caplog)
    # header fine, a bad byte later in the file (decoded while reading rows)
    later = _write(
        tmp_path / "later" / "votes.csv",
        f"{VOTES_HEADER}\n" + "img/a.png,train,1,0,0,0,0,0,0,0\n" * 3000 + "img/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n",
        encoding="latin-1",
    )
    with pytest.raises(ValueError, match=rf"{later}: not UTF-8 text"):
        FolderSource(later.parent)
    affectnet = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1)], make_images=False
    )
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


# ---------------------------------------------------------------------------------------------- 6. resume rules
def _label_config(**kwargs):
    from affectnetplus_hf.labeling import LabelingConfig

    return LabelingConfig(shard_size=4, batch_size=3, num_threads=1, progress=False, **kwargs)


def test_label_rerun_with_skip_bad_after_a_failed_run(tmp_path: Path, model_dir: Path, make_sample) -> None:
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset, load_labels, read_manifest

    sample = make_sample(tmp_path / "sample", n_train=9, n_val=4)
    bad = list(open_source(sample).records("train"))[5]  # in the second shard: the first one finishes
    Path(bad.image_path).write_bytes(b"not an image")
    out = tmp_path / "labels"
    with pytest.raises(ValueError, match=bad.image_id.rsplit("/", 1)[-1]):
        label_dataset(model_dir, sample, out, _label_config())
    assert [s["name"] for s in read_manifest(out)["finished_shards"]] == ["train-00000"]
    # the finished shard saw no bad image: skipping bad ones changes nothing it holds, so the rerun goes on
    summary = label_dataset(model_dir, sample, out, _label_config(skip_bad=True))
    assert summary["complete"] and [b["image_id"] for b in summary["bad_images"]] == [bad.image_id]
    assert read_manifest(out)["config"]["skip_bad"] is True
    fresh = tmp_path / "fresh"
    label_dataset(model_dir, sample, fresh, _label_config(skip_bad=True))
    assert load_labels(out).equals(load_labels(fresh))
    # back to skip_bad=False: a finished shard left an image out, so that resume refuses naming the setting
    with pytest.raises(ValueError, match=r"skip_bad: was True, now False"):
        label_dataset(model_dir, sample, out, _label_config())
    # any other difference still refuses
    with pytest.raises(ValueError, match=r"batch_size: was 3, now 2"):
        label_dataset(
            model_dir,
            sample,
            out,
            LabelingConfig(shard_size=4, batch_size=2, num_threads=1, progress=False, skip_bad=True),
        )


# ---------------------------------------------------------------------------------------------- 7. build checks
def test_build_refuses_images_changed_after_labeling(tmp_path: Path, model_dir: Path, make_sample) -> None:
    import hashlib

    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset, load_labels

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    labels = tmp_path / "labels"
    label_dataset(model_dir, sample, labels, LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False))
    rows = {r["image_id"]: r for r in load_labels(labels).to_pylist()}
    changed = list(open_source(sample).records("train"))[1]
    data = Path(changed.image_path).read_bytes()
    assert rows[changed.image_id]["image_size_bytes"] == len(data)
    assert rows[changed.image_id]["image_sha256"] == hashlib.sha256(data).hexdigest()
    Path(changed.image_path).write_bytes(data[: len(data) // 2])  # truncated after labeling
    with pytest.raises(ValueError, match=rf"{changed.image_id}.*changed since it was labeled") as caught:
        build_dataset(sample, labels, tmp_path / "ds", metadata=None, figures=False, progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.") and p.is_dir()]  # no staging left
    summary = build_dataset(
        sample, labels, tmp_path / "ds", metadata=None, figures=False, progress=False, skip_bad=True
    )
    statistics = json.loads((tmp_path / "ds" / "statistics.json").read_text())
    assert [b["image_id"] for b in statistics["changed_images"]] == [changed.image_id]
    assert statistics["changed_image_count"] == 1 == summary["changed_image_count"]
    assert summary["splits"]["train"]["rows"] == 3 and summary["splits"]["validation"]["rows"] == 2
    import pyarrow.parquet as pq

    ids = [
        i
        for p in (tmp_path / "ds" / "data").rglob("*.parquet")
        for i in pq.read_table(p).column("image_id").to_pylist()
    ]
    assert len(ids) == 5 and changed.image_id not in ids
    # the CLI flag
    assert (
        main(
            [
                "build",
                str(sample),
                str(labels),
                str(tmp_path / "ds2"),
                "--metadata",
                "none",
                "--no-figures",
                "--no-progress",
                "--skip-bad",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ds2" / "statistics.json").read_text())["changed_image_count"] == 1


def test_build_reads_label_runs_without_image_hashes(tmp_path: Path, model_dir: Path, make_sample) -> None:
    import pyarrow.parquet as pq

    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset
    from affectnetplus_hf.run_folder import file_sha256

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    labels = tmp_path / "labels"
    label_dataset(model_dir, sample, labels, LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False))
    manifest = json.loads((labels / "manifest.json").read_text())
    for entry in manifest["finished_shards"]:  # rewrite the shards as an earlier version wrote them
        path = labels / "shards" / f"{entry['name']}.parquet"
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["image_size_bytes", "image_sha256"]), path)
        entry["sha256"] = file_sha256(path)
        sidecar = labels / "shards" / f"{entry['name']}.json"
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "sha256": entry["sha256"]}))
    (labels / "manifest.json").write_text(json.dumps(manifest))
    summary = build_dataset(sample, labels, tmp_path / "ds", metadata=None, figures=False, progress=False)
    assert summary["splits"]["train"]["rows"] == 4 and summary["changed_image_count"] == 0  # built as before


@pytest.fixture(scope="module")
def labeled(tmp_path_factory, model_dir: Path, make_sample) -> dict[str, Path]:
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    root = tmp_path_factory.mktemp("labeled")
    sample = make_sample(root / "sample", n_train=4, n_val=2)
    label_dataset(
        model_dir, sample, root / "labels", LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False)
    )
    return {"root": root, "sample": sample, "labels": root / "labels"}


def test_build_overwrite_replaces_only_its_own_folders(tmp_path: Path, labeled: dict[str, Path], caplog) -> None:
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.run_folder import MARKER_FILE

    sample, labels = labeled["sample"], labeled["labels"]

    def build(target: Path, **kwargs):
        return build_dataset(sample, labels, target, metadata=None, figures=False, progress=False, **kwargs)

    before = {p: p.stat().st_mtime_ns for p in labeled["root"].rglob("*")}
    for target in (sample, labels, labeled["root"], sample / "."):  # the inputs and a folder above them
        with pytest.raises(ValueError, match=r"(is|contains) (DATA_DIR|LABELS_DIR)"):
            build(target, overwrite=True)
    assert {p: p.stat().st_mtime_ns for p in labeled["root"].rglob("*")} == before  # nothing touched
    mine = tmp_path / "mine"  # a folder the user filled: not replaced
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"is not empty and was not written by `affectnetplus build`"):
        build(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    caplog.clear()
    assert (
        main(
            [
                "build",
                str(sample),
                str(labels),
                str(mine),
                "--metadata",
                "none",
                "--no-figures",
                "--no-progress",
                "--overwrite",
            ]
        )
        == 1
    )
    assert "not written by `affectnetplus build`" in _one_line_error(caplog) and (mine / "notes.txt").is_file()
    built = tmp_path / "built"
    build(built)
    marker = json.loads((built / MARKER_FILE).read_text())
    assert marker["kind"] == "dataset" and marker["complete"] is True
    (built / "extra.txt").write_text("x")
    build(built, overwrite=True)  # a folder this package built is replaced
    assert not (built / "extra.txt").exists() and (built / MARKER_FILE).is_file()


def test_build_removes_staging_left_by_a_killed_build(tmp_path: Path, labeled: dict[str, Path]) -> None:
    import tempfile

    from affectnetplus_hf.dataset import build_dataset

    # what a killed build leaves (atomic_directory's staging and replaced folders); a running build holds the
    # lock, so no second build can meet its staging folder
    stale = [
        Path(tempfile.mkdtemp(prefix=".ds.", suffix=".tmp", dir=tmp_path)),
        Path(tempfile.mkdtemp(prefix=".ds.", suffix=".old", dir=tmp_path)),
    ]
    others = [tmp_path / ".ds2.abcd1234.tmp", tmp_path / ".ds.abcd1234.tmp.keep", tmp_path / "ds.abcd1234.tmp"]
    for folder in [*stale, *others]:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    build_dataset(labeled["sample"], labeled["labels"], tmp_path / "ds", metadata=None, figures=False, progress=False)
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in others), "ds", ".ds.lock"])


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


def test_demo_overwrite_needs_a_demo_folder(tmp_path: Path) -> None:
    from affectnetplus_hf.demo import run_demo

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"is not empty and was not written by `affectnetplus demo`"):
        run_demo(mine, overwrite=True, stages=(), progress=False)
    assert (mine / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    run_demo(empty, overwrite=True, stages=(), progress=False)  # an empty folder is fine
    (empty / "sample").mkdir()
    run_demo(empty, overwrite=True, stages=(), progress=False)  # a demo folder is started over
    assert not (empty / "sample").exists() and (empty / "demo_summary.json").is_file()
    interrupted = tmp_path / "interrupted"  # killed before demo_summary.json: the demo's own marker
    run_demo(interrupted, stages=(), progress=False)
    (interrupted / "demo_summary.json").unlink()
    (interrupted / "sample").mkdir()
    run_demo(interrupted, overwrite=True, stages=(), progress=False)
    assert not (interrupted / "sample").exists()


# ---------------------------------------------------------------------------------------------- 8. training runs
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
    assert "--overwrite" in _one_line_error(caplog)
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


# ---------------------------------------------------------------------------------------------- 9. fuzzed label files
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: Valid label files: (name, header, rows). The images they name exist (img/a.png, img/b.png; FER2013Train/).
VALID_FILES = {
    "votes.csv": (
        VOTES_HEADER.split(","),
        [
            ["img/a.png", "train", "3", "0", "0", "0", "0", "0", "2", "0"],
            ["img/b.png", "validation", "0", "4", "1", "0", "0", "0", "0", "0"],
        ],
    ),
    "annotations.csv": (
        ["image", "annotator", "label", "split"],
        [
            ["img/a.png", "a1", "Neutral", "train"],
            ["img/a.png", "a2", "anger", "train"],
            ["img/b.png", "a1", "3", "test"],
        ],
    ),
    "labels.csv": (["image", "label", "split"], [["img/a.png", "Happy", "train"], ["img/b.png", "none", "val"]]),
    "fer2013new.csv": (
        list(FER2013NEW_COLUMNS),
        [
            ["Training", "fer0000000.png", "10", "0", "0", "0", "0", "0", "0", "0", "0", "0"],
            ["PublicTest", "fer0000001.png", "2", "5", "0", "0", "0", "0", "0", "1", "1", "1"],
            ["Training", "", "0", "0", "0", "0", "0", "0", "0", "0", "5", "5"],
        ],
    ),
}
#: What the readers document: a malformed file or row is a ValueError (RowError, "not UTF-8 text", unknown
#: columns), a missing file a FileNotFoundError.
DOCUMENTED_ERRORS = (ValueError, FileNotFoundError)
PATHS = [
    "../x.png",
    "/abs/x.png",
    "C:/x.png",
    "img\\a.png",
    "img/./a.png",
    "img//a.png",
    "img/../img/a.png",
    ".",
    "",
    " ",
    "img/caf\u00e9.png",
    "img/a.png\x00",
    "a" * 300,
    "img/\u202eevil.png",
    "~/x.png",
    "img/a.png ",
]
NASTY = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""',
            ",",
            "\n",
            "\r",
            "\r\n",
            "\x00",
            "\ufeff",
            "1e309",
            "-0",
            "0x10",
            "1_000",
            "\u0663",
            "nan",
            "9" * 40,
            "Neutral",
            "TRAIN",
            "a,b",
            '"a"b',
            "\t3\t",
        ]
    ),
)
_text_ops = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 10), st.integers(0, 12), NASTY),
    st.tuples(st.just("path"), st.integers(0, 10), st.sampled_from(PATHS)),
    st.tuples(st.just("header"), st.integers(0, 12), NASTY),
    st.tuples(st.just("drop_column"), st.integers(0, 12)),
    st.tuples(st.just("duplicate_column"), st.integers(0, 12)),
    st.tuples(st.just("swap_columns"), st.integers(0, 12), st.integers(0, 12)),
    st.tuples(st.just("header_case"), st.sampled_from(["upper", "lower", "pad"])),
    st.tuples(st.just("drop_row"), st.integers(0, 10)),
    st.tuples(st.just("duplicate_row"), st.integers(0, 10)),
    st.tuples(st.just("short_row"), st.integers(0, 10), st.integers(0, 12)),
    st.tuples(st.just("long_row"), st.integers(0, 10), NASTY),
)
_byte_ops = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 8)),
)
_mutation = st.fixed_dictionaries(
    {
        "name": st.sampled_from(sorted(VALID_FILES)),
        "text_ops": st.lists(_text_ops, max_size=3),
        "quoting": st.sampled_from(["csv", "join"]),
        "newline": st.sampled_from(["\n", "\r\n", "\r", "mixed"]),
        "final_newline": st.booleans(),
        "blank_lines": st.booleans(),
        "encoding": st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
        "byte_ops": st.lists(_byte_ops, max_size=2),
    }
)


def _mutate_table(header: list[str], rows: list[list[str]], ops) -> tuple[list[str], list[list[str]]]:
    header, rows = list(header), [list(r) for r in rows]
    width = len(header)
    for op in ops:
        kind = op[0]
        if kind == "cell" and rows:
            row = rows[op[1] % len(rows)]
            if row:
                row[op[2] % len(row)] = op[3]
        elif kind == "path" and rows:
            column = next((i for i, h in enumerate(header) if h.strip().lower() in ("image", "image name")), 0)
            row = rows[op[1] % len(rows)]
            if column < len(row):
                row[column] = op[2]
        elif kind == "header" and header:
            header[op[1] % len(header)] = op[2]
        elif kind in ("drop_column", "duplicate_column") and header:
            column = op[1] % len(header)
            for line in [header, *rows]:
                if column < len(line):
                    if kind == "drop_column":
                        del line[column]
                    else:
                        line.insert(column, line[column])
        elif kind == "swap_columns" and header:
            a, b = op[1] % width, op[2] % width
            for line in [header, *rows]:
                if a < len(line) and b < len(line):
                    line[a], line[b] = line[b], line[a]
        elif kind == "header_case":
            header = [{"upper": h.upper(), "lower": h.lower(), "pad": f" {h} "}[op[1]] for h in header]
        elif kind == "drop_row" and rows:
            del rows[op[1] % len(rows)]
        elif kind == "duplicate_row" and rows:
            rows.insert(op[1] % len(rows), list(rows[op[1] % len(rows)]))
        elif kind == "short_row" and rows:
            row = rows[op[1] % len(rows)]
            del row[op[2] % max(1, len(row)) :]
        elif kind == "long_row" and rows:
            rows[op[1] % len(rows)].append(op[2])
    return header, rows


def _render(header: list[str], rows: list[list[str]], m: dict) -> bytes:
    import csv
    import io

    lines = []
    for line in [header, *rows]:
        if m["quoting"] == "csv":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(line)
            lines.append(buffer.getvalue())
        else:
            lines.append(",".join(line))
        if m["blank_lines"]:
            lines.append("")
    if m["newline"] == "mixed":
        text = "".join(line + ("\r\n", "\n", "\r")[k % 3] for k, line in enumerate(lines))
        text = text if m["final_newline"] else text.rstrip("\r\n")
    else:
        text = m["newline"].join(lines) + (m["newline"] if m["final_newline"] else "")
    data = text.encode(m["encoding"], errors="replace")
    for op in m["byte_ops"]:
        at = int(op[1] * len(data))
        if op[0] == "truncate":
            data = data[:at]
        elif op[0] == "insert":
            data = data[:at] + op[2] + data[at:]
        else:
            data = data[:at] + data[at + op[2] :]
    return data


def _read_everything(root: Path, name: str) -> None:
    """Open the folder with its reader (and through open_source) and read every record of every split."""
    readers = [lambda: FerPlusSource(root)] if name == "fer2013new.csv" else [lambda: FolderSource(root)]
    readers.append(lambda: open_source(root))
    for reader in readers:
        try:
            source = reader()
            for split in source.splits:
                for record in source.records(split):
                    assert record.image_id and record.split == split
        except DOCUMENTED_ERRORS as error:
            assert str(error)  # an error names what is wrong


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutation)
def test_mutated_label_files_read_or_fail_with_the_readers_errors(m: dict) -> None:
    import tempfile

    header, rows = VALID_FILES[m["name"]]
    header, rows = _mutate_table(header, rows, m["text_ops"])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for image in ("img/a.png", "img/b.png", "FER2013Train/fer0000000.png", "FER2013Valid/fer0000001.png"):
            (root / image).parent.mkdir(parents=True, exist_ok=True)
            (root / image).write_bytes(b"")  # the readers check names, not pixels
        (root / m["name"]).write_bytes(_render(header, rows, m))
        _read_everything(root, m["name"])


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_unmutated_label_files_read(tmp_path: Path, name: str) -> None:
    header, rows = VALID_FILES[name]
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "FER2013Train" / "fer0000000.png")
    _write(tmp_path / name, "\n".join(",".join(line) for line in [header, *rows]) + "\n")
    source = FerPlusSource(tmp_path) if name == "fer2013new.csv" else FolderSource(tmp_path)
    assert sum(1 for split in source.splits for _ in source.records(split)) == 2


def test_metrics_export_overwrite_replaces_only_module_folders(tmp_path: Path) -> None:
    from affectnetplus_hf.metrics import export_modules

    export_modules(tmp_path / "mods", ["w_mae"])
    export_modules(tmp_path / "mods", ["w_mae"], overwrite=True)  # its own folder: replaced
    precious = tmp_path / "mods" / "w_fr"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"is not empty and was not written by `affectnetplus metrics export`"):
        export_modules(tmp_path / "mods", ["w_fr"], overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


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
    message = _one_line_error(caplog)
    assert "model.safetensors" in message and "do not match" in message


def test_labeling_hashes_the_bytes_it_decodes_without_reading_images_again(
    tmp_path: Path, model_dir: Path, monkeypatch, make_sample
) -> None:
    """The image size + sha256 in a label shard come from the bytes the data loader decoded."""
    import hashlib
    from collections import Counter

    import affectnetplus_hf.image_processing as image_processing
    import affectnetplus_hf.labeling as labeling

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    reads: Counter = Counter()
    read_record_bytes = image_processing.read_record_bytes

    def counting_read(record):
        reads[record.image_id] += 1
        return read_record_bytes(record)

    monkeypatch.setattr(image_processing, "read_record_bytes", counting_read)
    labeling.label_dataset(
        model_dir,
        sample,
        tmp_path / "labels",
        labeling.LabelingConfig(shard_size=4, batch_size=3, num_threads=1, progress=False),
    )
    from affectnetplus_hf.sources import open_source

    paths = {r.image_id: r.image_path for r in open_source(sample).records(None)}
    rows = labeling.load_labels(tmp_path / "labels").to_pylist()
    assert len(rows) == 6
    assert sorted(reads) == sorted(paths) and set(reads.values()) == {1}  # each image read once
    for row in rows:
        data = Path(paths[row["image_id"]]).read_bytes()
        assert (row["image_size_bytes"], row["image_sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
