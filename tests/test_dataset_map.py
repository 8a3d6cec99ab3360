"""Soft labels through ``datasets.map`` (:mod:`affectnetplus_hf.dataset_map`) and ``label --hf-dataset``."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import datasets  # noqa: E402
from datasets import ClassLabel, Features, List, Value  # noqa: E402

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.dataset_map import SoftLabelMap, map_features  # noqa: E402
from affectnetplus_hf.emotions import EMOTIONS  # noqa: E402
from affectnetplus_hf.images import BadImageError  # noqa: E402
from affectnetplus_hf.labeling import SOFT_LABEL_COLUMNS  # noqa: E402
from affectnetplus_hf.subsets import assign_subsets  # noqa: E402

EIGHT = List(Value("float32"), length=8)
NO_LABEL = 2  # the row whose hard label is null


@pytest.fixture(scope="module")
def assets(tmp_path_factory, make_tiny_labeler):
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.sources import open_source
    from affectnetplus_hf.synthetic import write_sample

    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("map")
    write_sample(
        root / "sample", n_train=6, n_val=3, n_mas=2, image_size=40, seed=3, contact_sheet=False, progress=False
    )
    model_dir = make_tiny_labeler(root / "model")
    source = open_source(str(root / "sample"))
    records = [r for split in source.splits for r in source.records(split)]
    paths = [r.image_path for r in records]
    labels = [r.hard_label for r in records]
    labels[NO_LABEL] = None
    boxes = [list(r.face_box) for r in records]
    labeler = SoftLabeler.from_pretrained(str(model_dir))
    expected = labeler.predict(paths, batch_size=4)
    return {
        "root": root,
        "model_dir": model_dir,
        "labeler": labeler,
        "paths": paths,
        "labels": labels,
        "boxes": boxes,
        "expected": expected,
    }


def image_dataset(paths, labels, **extra) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"image": list(paths), "label": list(labels), **extra}).cast_column(
        "image", datasets.Image()
    )


def check_rows(rows: dict, expected, labels=None) -> None:
    for column, field in (
        ("soft_label", "soft_label"),
        ("soft_label_ebc", "ebc_scores"),
        ("soft_label_au", "au_scores"),
        ("spread", "spread"),
    ):
        np.testing.assert_allclose(
            np.asarray(rows[column], dtype=np.float32), getattr(expected, field).numpy(), atol=1e-5
        )
    assert rows["soft_label_dist"] == [None] * len(rows["soft_label"])  # no distribution family
    assert rows["soft_label_calibrated"] == [None] * len(rows["soft_label"])  # not calibrated
    if labels is not None:
        labelled = [k for k, h in enumerate(labels) if h is not None]
        want = assign_subsets(expected.soft_label.numpy()[labelled], np.asarray([labels[k] for k in labelled]))
        assert [rows["subset"][k] for k in labelled] == list(want)
        assert [rows["subset"][k] for k, h in enumerate(labels) if h is None] == [None]


def test_map_equals_predict_with_declared_features(assets):
    ds = image_dataset(assets["paths"], assets["labels"])
    fn = assets["labeler"].map_function(image_column="image", hard_label_column="label")
    out = ds.map(fn, batched=True, batch_size=4, features=fn.map_features(ds.features))
    for name in SOFT_LABEL_COLUMNS:
        assert out.features[name] == EIGHT
    assert out.features["subset"] == Value("string")
    assert out.column_names == ["image", "label", *SOFT_LABEL_COLUMNS, "subset"]
    check_rows(out.to_dict(), assets["expected"], assets["labels"])
    assert fn.skipped == []


def test_map_without_features_and_face_boxes(assets):
    ds = image_dataset(assets["paths"], assets["labels"], face_box=assets["boxes"])
    out = ds.map(assets["labeler"].map_function(image_column="image"), batched=True, batch_size=64)  # the one-liner
    check_rows(out.to_dict(), assets["expected"])
    boxed = ds.map(assets["labeler"].map_function(face_box_column="face_box"), batched=True, batch_size=3)
    expected = assets["labeler"].predict(assets["paths"], face_boxes=assets["boxes"])
    np.testing.assert_allclose(np.asarray(boxed["soft_label"]), expected.soft_label.numpy(), atol=1e-5)
    assert not np.allclose(expected.soft_label.numpy(), assets["expected"].soft_label.numpy(), atol=1e-5)


def test_class_label_column_is_read_by_names(assets):
    """An imagefolder's ClassLabel sorts emotions alphabetically; the subset must use the names."""
    names = sorted(EMOTIONS)
    alphabetical = [None if h is None else names.index(EMOTIONS[h]) for h in assets["labels"]]
    ds = image_dataset(assets["paths"], [-1 if a is None else a for a in alphabetical]).cast_column(
        "label", ClassLabel(names=names)
    )
    fn = assets["labeler"].map_function(hard_label_column="label")
    out = ds.map(fn, batched=True, batch_size=4, features=fn.map_features(ds.features))
    check_rows(out.to_dict(), assets["expected"], assets["labels"])
    # streamed, the names are given
    fn = assets["labeler"].map_function(hard_label_column="label", hard_label_names=names)
    rows = list(ds.to_iterable_dataset().map(fn, batched=True, batch_size=4))
    assert [r["subset"] for r in rows] == out["subset"]
    with pytest.raises(ValueError, match="unknown"):
        assets["labeler"].map_function(hard_label_column="label", hard_label_names=["cat", "dog"])


def test_iterable_dataset_gives_the_same_values(assets):
    ds = image_dataset(assets["paths"], assets["labels"])
    fn = assets["labeler"].map_function(hard_label_column="label")
    ids = ds.to_iterable_dataset(num_shards=2)
    rows = list(ids.map(fn, batched=True, batch_size=4, features=fn.map_features(ids.features)))
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    check_rows(columns, assets["expected"], assets["labels"])


def test_num_proc_gives_the_same_values(assets):
    ds = image_dataset(assets["paths"], assets["labels"])
    for model in (assets["labeler"], str(assets["model_dir"])):
        fn = SoftLabelMap(model, "image", hard_label_column="label")
        out = ds.map(fn, batched=True, batch_size=2, num_proc=2, features=fn.map_features(ds.features))
        check_rows(out.to_dict(), assets["expected"], assets["labels"])
    fn = SoftLabelMap(str(assets["model_dir"]), skip_bad=True)
    fn.skipped.append((0, "x"))
    state = pickle.loads(pickle.dumps(fn)).__dict__
    assert state["_model"] is None and state["skipped"] == []  # the model directory is reloaded, not pickled


def test_fingerprint_follows_the_weights(assets):
    """``datasets`` caches map results by the function's hash: same weights, same hash; new weights, new."""
    import torch
    from datasets.fingerprint import Hasher

    labeler = assets["labeler"]
    fn = labeler.map_function(hard_label_column="label")
    assert Hasher.hash(fn) == Hasher.hash(labeler.map_function(hard_label_column="label"))
    assert Hasher.hash(fn) != Hasher.hash(labeler.map_function(hard_label_column="other"))
    copy = pickle.loads(pickle.dumps(fn)).model  # rebuilt from the pickled weights
    assert copy is not labeler
    torch.testing.assert_close(copy.predict(assets["paths"][:3]).soft_label, assets["expected"].soft_label[:3])
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert Hasher.hash(copy.map_function(hard_label_column="label")) != Hasher.hash(fn)


def test_corrupt_image_raises_naming_it_or_is_skipped(assets):
    bad = assets["root"] / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    paths = list(assets["paths"])
    paths[4] = str(bad)
    ds = image_dataset(paths, assets["labels"])
    with pytest.raises(BadImageError, match="corrupt.jpg") as error:
        ds.map(assets["labeler"].map_function(), batched=True, batch_size=4, with_indices=True)
    assert "row 4" in str(error.value)

    fn = assets["labeler"].map_function(hard_label_column="label", skip_bad=True)
    out = ds.map(fn, batched=True, batch_size=4, features=fn.map_features(ds.features))
    assert out.num_rows == len(paths)  # never dropped
    assert [k for k, r in enumerate(out["bad_image"]) if r is not None] == [4]
    assert "corrupt.jpg" in out["bad_image"][4]
    assert [key for key, _ in fn.skipped] == [None] and "corrupt.jpg" in fn.skipped[0][1]  # no index given
    rows = out.to_dict()
    assert all(rows[name][4] is None for name in (*SOFT_LABEL_COLUMNS, "subset"))
    good = [k for k in range(len(paths)) if k != 4]
    np.testing.assert_allclose(
        np.asarray([rows["soft_label"][k] for k in good]), assets["expected"].soft_label.numpy()[good], atol=1e-5
    )
    # with_indices names the row by its index; id_column by its id
    fn = assets["labeler"].map_function(skip_bad=True, id_column="label")
    ds.select(range(3, 6)).map(fn, batched=True, features=fn.map_features(ds.features))
    assert [key for key, _ in fn.skipped] == [assets["labels"][4]]
    fn = assets["labeler"].map_function(skip_bad=True)
    ds.map(fn, batched=True, batch_size=3, with_indices=True, features=fn.map_features(ds.features))
    assert [key for key, _ in fn.skipped] == [4]


def test_map_features():
    base = Features({"image": datasets.Image(), "subset": ClassLabel(names=["a"])})
    assert map_features(None) is None
    features = map_features(base, hard_label_column="label", skip_bad=True)
    assert list(features) == ["image", "subset", *SOFT_LABEL_COLUMNS, "bad_image"]
    assert features["subset"] == Value("string") and features["soft_label"] == EIGHT
    assert list(map_features(base)) == ["image", "subset", *SOFT_LABEL_COLUMNS]


def test_cli_hf_dataset_round_trip(assets, capsys):
    root = assets["root"]
    ds = image_dataset(assets["paths"], assets["labels"])
    ds.save_to_disk(str(root / "saved"))
    out = root / "labelled"
    args = [
        "label",
        str(assets["model_dir"]),
        "--hf-dataset",
        str(root / "saved"),
        "--image-column",
        "image",
        "--hard-label-column",
        "label",
        "--batch-size",
        "4",
        "--no-progress",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == {"data": len(assets["paths"])} and summary["subsets"]["data"]["none"] == 1
    loaded = datasets.load_from_disk(str(out))
    assert loaded.features["soft_label"] == EIGHT and isinstance(loaded.features["image"], datasets.Image)
    check_rows(loaded.to_dict(), assets["expected"], assets["labels"])
    # no staging left
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".labelled")) == [".labelled.lock"]
    assert not any(name.startswith("cache-") for name in os.listdir(root / "saved"))  # nothing written by the source
    assert main(args) == 1  # a finished OUT_DIR is refused ...
    (out / "extra.txt").write_text("x")
    assert main([*args, "--overwrite"]) == 0 and not (out / "extra.txt").exists()  # ... replaced with --overwrite
    assert json.loads((out / ".affectnetplus-run.json").read_text())["kind"] == "hf-labels"
    check_rows(datasets.load_from_disk(str(out)).to_dict(), assets["expected"], assets["labels"])
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main([*args[:-1], str(foreign), "--overwrite"]) == 1 and (foreign / "notes.txt").read_text() == "mine"
    assert main(["label", str(assets["model_dir"]), str(root / "saved")]) == 1  # positional form needs OUT_DIR


def test_cli_hf_dataset_imagefolder_split(assets, capsys):
    """``load_dataset`` on a local imagefolder: a DatasetDict whose ClassLabel is alphabetical."""
    import shutil

    root = assets["root"]
    folder = root / "imagefolder"
    rows = [k for k, h in enumerate(assets["labels"]) if h is not None]
    for k in rows:
        target = folder / "train" / EMOTIONS[assets["labels"][k]].lower() / f"{k:02d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(assets["paths"][k], target)
    out = root / "labelled_folder"
    assert (
        main(
            [
                "label",
                str(assets["model_dir"]),
                "--hf-dataset",
                str(folder),
                "--hard-label-column",
                "label",
                "--split",
                "train",
                "--no-progress",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    loaded = datasets.load_from_disk(str(out))
    names = loaded.features["label"].names
    assert names == sorted(names)
    cells = loaded.cast_column("image", datasets.Image(decode=False))["image"]
    order = [int(Path(cell["path"]).stem) for cell in cells]
    assert sorted(order) == rows
    assert [names[label] for label in loaded["label"]] == [EMOTIONS[assets["labels"][k]].lower() for k in order]
    want = assign_subsets(
        assets["expected"].soft_label.numpy()[order], np.asarray([assets["labels"][k] for k in order])
    )
    assert loaded["subset"] == list(want)


def corrupt_dataset(assets, row: int) -> datasets.Dataset:
    bad = assets["root"] / "corrupt_bytes.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG either")
    paths = list(assets["paths"])
    paths[row] = str(bad)
    return image_dataset(paths, assets["labels"])


def test_rows_are_numbered_within_the_dataset_mapped(assets):
    """A reused function (or a fresh one without indices) never names a row the dataset does not have."""
    ds = corrupt_dataset(assets, 1).select(range(3))
    fn = assets["labeler"].map_function()
    image_dataset(assets["paths"], assets["labels"]).map(fn, batched=True, batch_size=4)  # 9 rows seen before
    with pytest.raises(BadImageError) as error:
        ds.map(fn, batched=True, batch_size=2, with_indices=True)
    message = str(error.value)
    assert re.search(r"\brow 1\b", message) and "row 9" not in message and "\n" not in message
    with pytest.raises(BadImageError) as error:  # the same function again, no indices: its batch and image
        ds.map(fn, batched=True, batch_size=2)
    message = str(error.value)
    assert "row 1 of its batch" in message and "corrupt_bytes.jpg" in message and "with_indices=True" in message
    assert "row 10" not in message and "row 11" not in message
    fn = assets["labeler"].map_function(skip_bad=True)
    ds.map(fn, batched=True, batch_size=2, with_indices=True)
    ds.map(fn, batched=True, batch_size=2, with_indices=True)
    assert [key for key, _ in fn.skipped] == [1, 1]
    fn = assets["labeler"].map_function(skip_bad=True)
    ds.map(fn, batched=True, batch_size=2)
    assert [key for key, _ in fn.skipped] == [None] and "corrupt_bytes.jpg" in fn.skipped[0][1]


def test_non_batched_map_says_batched_true(assets):
    ds = datasets.Dataset.from_dict({"image": list(assets["paths"][:2])})
    fn = assets["labeler"].map_function()
    for data in (ds, ds.cast_column("image", datasets.Image()), ds.to_iterable_dataset()):
        with pytest.raises(TypeError, match=r"batched=True") as error:
            list(data.map(fn))
        assert "\n" not in str(error.value) and "missing" not in str(error.value)


def test_hints_name_the_callers_options(assets, capsys, caplog):
    """The Python API hints ``skip_bad=True``; ``label --hf-dataset`` hints ``--skip-bad``."""
    ds = corrupt_dataset(assets, 4)
    with pytest.raises(BadImageError, match=r"skip_bad=True") as error:
        ds.map(assets["labeler"].map_function(), batched=True, batch_size=4)
    assert "--skip-bad" not in str(error.value)
    root = assets["root"]
    ds.save_to_disk(str(root / "saved_corrupt"))
    caplog.clear()
    assert (
        main(
            [
                "label",
                str(assets["model_dir"]),
                "--hf-dataset",
                str(root / "saved_corrupt"),
                "--batch-size",
                "4",
                "--no-progress",
                str(root / "labelled_corrupt"),
            ]
        )
        == 1
    )
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "--skip-bad" in line and "skip_bad=True" not in line and "\n" not in line
    assert re.search(r"\brow 4\b", line) and "with_indices" not in line
    alphabet = ds.cast_column("label", ClassLabel(names=["cat", *EMOTIONS[1:]]))
    alphabet.save_to_disk(str(root / "saved_cat"))
    caplog.clear()
    assert (
        main(
            [
                "label",
                str(assets["model_dir"]),
                "--hf-dataset",
                str(root / "saved_cat"),
                "--hard-label-column",
                "label",
                "--no-progress",
                str(root / "labelled_cat"),
            ]
        )
        == 1
    )
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "'cat'" in line and "hard_label_names" not in line


def test_num_proc_after_the_parent_used_its_thread_pool(assets, tmp_path):
    """GNU OpenMP is not fork-safe: map workers forked after the parent ran a multi-threaded torch op must
    still finish (each uses one intra-op thread)."""
    import subprocess
    import sys

    image_dataset(assets["paths"], assets["labels"]).save_to_disk(str(tmp_path / "ds"))
    script = (
        "import sys, torch, datasets\n"
        "from affectnetplus_hf.dataset_map import SoftLabelMap\n"
        "torch.set_num_threads(2); x = torch.randn(512, 512); (x @ x).sum()\n"
        "ds = datasets.load_from_disk(sys.argv[1]); fn = SoftLabelMap(sys.argv[2], 'image')\n"
        "out = ds.map(fn, batched=True, batch_size=2, num_proc=2, features=fn.map_features(ds.features))\n"
        "print(out.num_rows)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ds"), str(assets["model_dir"])],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0 and result.stdout.strip() == str(len(assets["paths"])), result.stderr[-2000:]
