"""Dataset export: features, Parquet layout, card, ``load_dataset`` offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import os

import yaml

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.sources import open_source  # noqa: E402

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf.dataset import (  # noqa: E402
    CONFIG_NAMES,
    affectnetplus_features,
    build_dataset,
    render_card,
)
from affectnetplus_hf.emotions import EMOTIONS, SUBSETS  # noqa: E402
from affectnetplus_hf.labeling import LabelingConfig, label_dataset, load_labels  # noqa: E402
from affectnetplus_hf.run_folder import MARKER_FILE, Marker, RunFolderError  # noqa: E402


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
    assert configs["default"]["data_files"] == [
        {"split": "train", "path": "data/train/*.parquet"},
        {"split": "validation", "path": "data/validation/*.parquet"},
    ]
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
    with pytest.raises(RunFolderError, match=r"already holds a finished run of `affectnetplus build`.*--overwrite"):
        build_dataset(built["sample"], built["labels"], again, metadata="synthetic", progress=False)
    with pytest.raises(RunFolderError, match=r"other settings \(metadata: was 'synthetic', now None\).*--overwrite"):
        build_dataset(built["sample"], built["labels"], again, metadata=None, progress=False)
    assert tree_bytes(again) == tree_bytes(built["folder"])  # refusals touch nothing
    build_dataset(built["sample"], built["labels"], again, metadata=None, progress=False, overwrite=True)
    assert tree_bytes(again) != tree_bytes(built["folder"])  # metadata columns now null
    # no staging left behind; the lock file beside the folder is empty (released)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".again.lock"]
    assert (tmp_path / ".again.lock").read_text() == ""


def _build(built, target, **kwargs):
    return build_dataset(
        built["sample"], built["labels"], target, metadata=None, figures=False, progress=False, **kwargs
    )


def test_build_overwrite_replaces_only_its_own_folders(built, tmp_path, caplog):
    from affectnetplus_hf.cli import main

    root, sample, labels = built["root"], built["sample"], built["labels"]
    before = {p: p.stat().st_mtime_ns for p in [*sample.rglob("*"), *labels.rglob("*")]}
    for target in (sample, labels, root, sample / "."):  # the inputs and a folder above them
        with pytest.raises(ValueError, match=r"(is|contains) (DATA_DIR|LABELS_DIR)"):
            _build(built, target, overwrite=True)
    assert {p: p.stat().st_mtime_ns for p in [*sample.rglob("*"), *labels.rglob("*")]} == before  # nothing touched
    mine = tmp_path / "mine"  # a folder the user filled: never replaced
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match=r"mine is not empty and was not written by `affectnetplus build`"):
            _build(built, mine, overwrite=overwrite)
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
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "not written by `affectnetplus build`" in errors[0]
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "sub").is_dir()
    other = tmp_path / "other"  # a folder another command wrote
    other.mkdir()
    Marker("baselines", {"split": "train"}).write(other)
    with pytest.raises(RunFolderError, match=r"written by `affectnetplus baseline`, not by `affectnetplus build`"):
        _build(built, other, overwrite=True)
    target = tmp_path / "built"
    summary = _build(built, target)
    marker = json.loads((target / MARKER_FILE).read_text())
    assert marker["kind"] == "dataset" and marker["complete"] is True and marker["version"] == 1
    identity = marker["identity"]
    manifest = json.loads((labels / "manifest.json").read_text())
    assert identity["labels_model"] == manifest["config"]["model"] == summary["labels_model"]
    assert identity["labels_records"] == manifest["config"]["records"]
    assert {k: identity[k] for k in ("metadata", "figures", "skip_bad", "keep_unlabeled", "source_kind")} == {
        "metadata": None,
        "figures": False,
        "skip_bad": False,
        "keep_unlabeled": False,
        "source_kind": "synthetic",
    }
    (target / "extra.txt").write_text("x")
    _build(built, target, overwrite=True)  # a folder this package built is replaced whole
    assert not (target / "extra.txt").exists() and (target / MARKER_FILE).is_file()
    empty = tmp_path / "empty"  # an empty folder is new
    empty.mkdir()
    _build(built, empty)
    assert (empty / "README.md").is_file()


def test_build_removes_staging_left_by_a_killed_build(built, tmp_path):
    import tempfile

    # what atomic_directory leaves when its process is killed: a staging folder, or the replaced folder
    stale = [
        Path(tempfile.mkdtemp(prefix=".ds.", suffix=".tmp", dir=tmp_path)),
        Path(tempfile.mkdtemp(prefix=".ds.", suffix=".old", dir=tmp_path)),
    ]
    others = [tmp_path / ".ds2.abcd1234.tmp", tmp_path / "ds.abcd1234.tmp", tmp_path / ".ds.abcd1234.tmp.keep"]
    for folder in [*stale, *others]:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    _build(built, tmp_path / "ds")
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in others), "ds", ".ds.lock"])


def test_a_build_holds_the_folder_for_the_whole_run(built, tmp_path, monkeypatch):
    """While a build runs, a second build of the same folder stops at once naming the first's process."""
    from affectnetplus_hf import dataset
    from affectnetplus_hf.run_folder import FolderLock

    target = tmp_path / "ds"
    seen = []

    def render_while_checking(*args, **kwargs):  # inside the first build: its lock is held
        with pytest.raises(RunFolderError, match=rf"is in use by process {os.getpid()} \(started "):
            _build(built, target)
        seen.append(json.loads((tmp_path / ".ds.lock").read_text())["pid"])
        return render(*args, **kwargs)

    render = dataset.render_card
    monkeypatch.setattr(dataset, "render_card", render_while_checking)
    _build(built, target)
    assert seen == [os.getpid()] and (target / "README.md").is_file()
    monkeypatch.setattr(dataset, "render_card", render)
    with FolderLock(target):
        with pytest.raises(RunFolderError, match="is in use by process"):
            _build(built, target, overwrite=True)


def test_two_build_processes_on_one_folder(built, tmp_path, tree_bytes):
    """Two `affectnetplus build` processes on one OUT: the second stops at once (exit 1, "is in use by process
    PID" of the first), the first finishes, and OUT equals a sequential build's folder byte for byte."""
    import time

    out, hold = tmp_path / "ds", tmp_path / "release"
    lock = tmp_path / ".ds.lock"
    argv = ["build", str(built["sample"]), str(built["labels"]), str(out), "--metadata", "synthetic", "--no-progress"]
    helper = Path(__file__).parent / "build_faults.py"
    first = subprocess.Popen(
        [sys.executable, str(helper), str(hold), "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        owner = {}
        while "pid" not in owner:  # the first holds the lock (it waits for `hold` inside the build)
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first build did not take the lock"
            time.sleep(0.1)
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):
                owner = {}
        assert owner["pid"] == first.pid
        second = subprocess.run(
            [sys.executable, "-m", "affectnetplus_hf", *argv], capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 1, second.stderr
        errors = [line for line in second.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and f"is in use by process {first.pid} (started " in errors[0], second.stderr
        assert not out.exists()  # the second wrote nothing; the first has not published yet
        hold.touch()
        stdout, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert tree_bytes(out) == tree_bytes(built["folder"])  # the fixture's sequential, in-process build
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.lock", "ds", "release"]


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


# ---------------------------------------------------------------------------------------------- damaged label shards
def _damage_labels(
    labels: Path,
    dest: Path,
    column: str = "soft_label",
    value: float = float("nan"),
    row: int = 2,
    shard: str = "train-00000",
) -> tuple[Path, str]:
    """A copy of a complete labeling run whose shard ``shard`` holds ``value`` in ``column`` of row ``row``, with
    the sidecar and manifest sha256 rewritten to match (the damage is in the values, not in the hashes).
    Returns the damaged folder and the image id of that row."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from affectnetplus_hf.fileio import PARQUET_OPTIONS
    from affectnetplus_hf.run_folder import file_sha256

    shutil.copytree(labels, dest)
    path = dest / "shards" / f"{shard}.parquet"
    table = pq.read_table(path)
    cells = table.column(column).to_pylist()
    cells[row] = [value] + list(cells[row][1:])
    table = table.set_column(
        table.schema.get_field_index(column),
        table.schema.field(column),
        pa.array(cells, type=table.schema.field(column).type),
    )
    pq.write_table(table, path, **PARQUET_OPTIONS)
    sha = file_sha256(path)
    sidecar = dest / "shards" / f"{shard}.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "sha256": sha}))
    manifest = json.loads((dest / "manifest.json").read_text())
    for entry in manifest["finished_shards"]:
        if entry["name"] == shard:
            entry["sha256"] = sha
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest, table.column("image_id")[row].as_py()


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("soft_label", float("nan"), "NaN"),
        ("soft_label_ebc", float("inf"), "infinite"),
        ("soft_label_au", 1.5, r"outside \[0, 1\]"),
        ("spread", -0.25, r"outside \[0, 1\]"),
    ],
)
def test_build_refuses_soft_labels_that_are_not_finite_probabilities(built, tmp_path, column, value, what):
    labels, image_id = _damage_labels(built["labels"], tmp_path / "labels", column, value)
    with pytest.raises(ValueError, match=rf"train-00000\.parquet.*{column}.*{image_id}.*{what}") as caught:
        build_dataset(built["sample"], labels, tmp_path / "ds", metadata=None, figures=False, progress=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "ds").exists()


def test_evaluate_names_the_shard_and_image_of_a_nan_soft_label(built, tmp_path, caplog):
    from affectnetplus_hf.cli import main

    labels, image_id = _damage_labels(built["labels"], tmp_path / "labels")
    caplog.clear()
    assert main(["evaluate", str(built["sample"]), "--labels", str(labels), "--output", str(tmp_path / "q")]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert "train-00000.parquet" in errors[0] and image_id in errors[0] and "NaN" in errors[0]


def test_evaluate_names_the_file_and_image_of_a_nan_soft_label_in_a_dataset(built, tmp_path):
    """A dataset folder holding a NaN soft label (written by hand, or by a build before the check)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from affectnetplus_hf import baselines

    folder = tmp_path / "damaged"
    shutil.copytree(built["folder"], folder)
    path = sorted((folder / "data" / "validation").glob("*.parquet"))[0]
    table = pq.read_table(path)
    cells = table.column("soft_label").to_pylist()
    cells[0] = [float("nan")] * 8
    field = table.schema.field("soft_label")
    table = table.set_column(table.schema.get_field_index("soft_label"), field, pa.array(cells, type=field.type))
    pq.write_table(table, path)
    image_id = table.column("image_id")[0].as_py()
    with pytest.raises(ValueError, match=rf"{path.name}.*{image_id}.*NaN") as caught:
        baselines.load_split(folder, "default", "validation")
    assert "\n" not in str(caught.value)


def test_build_refuses_a_shard_labeled_by_another_model(built, tmp_path):
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(built["labels"], labels)
    sidecar = labels / "shards" / "validation-00000.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "model": "0" * 64}))
    with pytest.raises(ValueError, match=r"validation-00000.*another model") as caught:
        build_dataset(built["sample"], labels, tmp_path / "ds", metadata=None, figures=False, progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "ds").exists()


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
