"""AffectNet readers (csv and npy layouts), detection, open_source errors and the ``info`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf.cli import main
from affectnetplus_hf.sources import (
    LOOKED_FOR,
    detect_source,
    open_multi_annotated,
    open_source,
    summarize_source,
)
from affectnetplus_hf.sources.affectnet import AffectNetSource


@pytest.fixture()
def csv_root(tmp_path: Path, affectnet_files) -> Path:
    train = [
        affectnet_files.row("101/a.jpg", 1, 0.8, 0.3, seed=1),
        affectnet_files.row("101/b.jpg", 8, seed=2),  # None: skipped by default
        affectnet_files.row("102/c.jpg", 6, -2, -2, seed=3),  # V/A not annotated
        affectnet_files.row("102/d.jpg", 10, seed=4),  # Non-Face
        affectnet_files.row("103/e.jpg", 7, -0.5, 0.9, box=(50, 40, 30, 30), seed=5),  # box past the 64x48 image
    ]
    val = [affectnet_files.row("201/f.jpg", 0, 0.0, 0.0, seed=6), affectnet_files.row("201/g.jpg", 9, seed=7)]
    return affectnet_files.write_csv_layout(tmp_path / "affectnet", train, val)


def test_csv_layout_records(csv_root: Path, affectnet_files) -> None:
    assert detect_source(csv_root) == ("affectnet", "csv")
    source = open_source(csv_root)
    assert isinstance(source, AffectNetSource)
    assert (source.kind, source.layout, source.splits, source.has_votes) == (
        "affectnet",
        "csv",
        ["train", "validation"],
        False,
    )
    train = list(source.records("train"))
    assert [r.image_id for r in train] == [
        "Manually_Annotated_Images/101/a.jpg",
        "Manually_Annotated_Images/102/c.jpg",
        "Manually_Annotated_Images/103/e.jpg",
    ]
    first = train[0]
    assert first.hard_label == 1 and first.raw_label == 1 and first.split == "train" and first.source == "affectnet"
    assert first.face_box == (4.0, 2.0, 44.0, 32.0)  # (x, y, x + w, y + h)
    assert first.valence == pytest.approx(0.8) and first.arousal == pytest.approx(0.3)
    expected = np.asarray([float(v) for v in affectnet_files.landmarks(1).split(";")], dtype=np.float32).reshape(68, 2)
    assert first.landmarks.shape == (68, 2) and first.landmarks.dtype == np.float32
    np.testing.assert_allclose(first.landmarks, expected)
    assert Path(first.image_path).is_file() and Path(first.image_path).is_absolute()
    assert train[1].valence is None and train[1].arousal is None and train[1].hard_label == 6
    # codes 8 and 10 were skipped and counted, nothing silently dropped
    assert source.skipped.counts() == {"non_emotion:Non-Face": 1, "non_emotion:None": 1}
    val = list(source.records("validation"))
    assert [r.hard_label for r in val] == [0]
    assert source.skipped.counts() == {"non_emotion:Non-Face": 1, "non_emotion:None": 1, "non_emotion:Uncertain": 1}
    # reading again does not double the counts
    list(source.records())
    assert source.skipped.total == 3


def test_keep_non_emotion(csv_root: Path) -> None:
    source = open_source(csv_root, keep_non_emotion=True)
    records = list(source.records())
    assert len(records) == 7 and not source.skipped
    by_id = {r.image_id.split("/")[-1]: r for r in records}
    assert by_id["b.jpg"].hard_label is None and by_id["b.jpg"].raw_label == 8
    assert by_id["b.jpg"].non_emotion_votes == 1
    assert by_id["g.jpg"].raw_label == 9 and by_id["d.jpg"].raw_label == 10


def test_out_of_image_box_is_clamped_at_load_time(csv_root: Path) -> None:
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    record = [r for r in open_source(csv_root).records("train") if r.image_id.endswith("e.jpg")][0]
    assert record.face_box == (50.0, 40.0, 80.0, 70.0)  # as written; the image is 64x48
    pixels = AffectNetPlusImageProcessor(size=16).process_one(record)
    assert pixels.shape == (3, 16, 16) and np.isfinite(pixels).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.__setitem__(6, 12), "expression code 12 out of range; expected an integer 0-10"),
        (lambda r: r.__setitem__(6, "happy"), "expression 'happy' is not a number"),
        (lambda r: r.__setitem__(7, 3.0), "valence 3.0 out of range; expected a value in [-1, 1] or -2"),
        (lambda r: r.__setitem__(8, "nan"), "arousal nan out of range"),
        (lambda r: r.__setitem__(5, ";".join(["1.00"] * 135)), "facial_landmarks has 135 numbers; expected 136"),
        (
            lambda r: r.__setitem__(5, ";".join(["1.00"] * 135) + ";x"),
            "facial_landmarks must be numbers separated by ';'",
        ),
        (lambda r: r.__setitem__(3, -5), "face_width, face_height > 0"),
    ],
)
def test_bad_csv_rows_name_file_and_line(tmp_path: Path, mutate, message: str, affectnet_files) -> None:
    rows = [affectnet_files.row("1/a.jpg", 1), affectnet_files.row("1/b.jpg", 2)]
    mutate(rows[1])
    root = affectnet_files.write_csv_layout(tmp_path, rows)
    source = open_source(root)
    with pytest.raises(ValueError) as info:
        list(source.records())
    text = str(info.value)
    assert "training.csv:3" in text and message in text
    # skip_bad_rows: the row is skipped, counted and listed
    source = open_source(root, skip_bad_rows=True)
    assert [r.image_id for r in source.records()] == ["Manually_Annotated_Images/1/a.jpg"]
    assert source.skipped.counts() == {"bad_row": 1}
    assert source.skipped.items[0].location.endswith("training.csv:3")


def test_records_are_read_lazily(tmp_path: Path, affectnet_files) -> None:
    root = affectnet_files.write_csv_layout(
        tmp_path, [affectnet_files.row("1/a.jpg", 1), affectnet_files.row("1/b.jpg", 12)]
    )
    records = open_source(root).records()
    assert next(records).image_id.endswith("1/a.jpg")  # the bad second row is not parsed yet
    with pytest.raises(ValueError, match="training.csv:3: expression code 12"):
        next(records)


def test_missing_csv_column(tmp_path: Path, affectnet_files) -> None:
    header = [h for h in affectnet_files.header if h != "arousal"]
    root = affectnet_files.write_csv_layout(tmp_path, [affectnet_files.row("1/a.jpg", 1)[:-1]], header=header)
    with pytest.raises(ValueError, match=r"training.csv: missing columns \['arousal'\]; expected columns"):
        list(open_source(root).records())


def test_missing_image_file(tmp_path: Path, affectnet_files) -> None:
    root = affectnet_files.write_csv_layout(
        tmp_path, [affectnet_files.row("1/a.jpg", 1), affectnet_files.row("1/missing.jpg", 2)], make_images=False
    )
    affectnet_files.jpeg(root / "Manually_Annotated_Images" / "1" / "a.jpg")
    assert len(list(open_source(root).records())) == 2  # not checked by default: found at load time
    with pytest.raises(FileNotFoundError, match=r"training.csv:3: image file .*missing.jpg missing"):
        list(open_source(root, check_files=True).records())
    source = open_source(root, check_files=True, skip_bad_rows=True)
    assert len(list(source.records())) == 1 and source.skipped.counts() == {"missing_image": 1}


# ---------------------------------------------------------------------------------------------- npy layout
def write_npy_layout(root: Path, split_dir: str, items: dict[int, dict]) -> Path:
    images, annotations = root / split_dir / "images", root / split_dir / "annotations"
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    for n, item in items.items():
        Image.fromarray(np.full((32, 32, 3), 100, dtype=np.uint8)).save(images / f"{n}.jpg", format="JPEG")
        for suffix in ("exp", "val", "aro", "lnd"):
            if suffix in item:
                np.save(annotations / f"{n}_{suffix}.npy", item[suffix])
    return root


def test_npy_layout(tmp_path: Path) -> None:
    lnd = np.arange(136, dtype=np.float64)
    items = {
        10: {"exp": np.array("3"), "val": np.array("0.25"), "aro": np.array(-0.5), "lnd": lnd},
        2: {"exp": np.array("9"), "val": np.array(-2.0), "aro": np.array(-2.0), "lnd": lnd},
        7: {"exp": np.array(5), "val": np.array(0.1), "aro": np.array(0.2)},  # no landmarks file
        100: {"exp": np.array("0"), "val": np.array(-2), "aro": np.array(0.0), "lnd": lnd},
    }
    root = write_npy_layout(tmp_path / "an", "train_set", items)
    write_npy_layout(
        root, "val_set", {0: {"exp": np.array("1"), "val": np.array(0.0), "aro": np.array(0.0), "lnd": lnd}}
    )
    assert detect_source(root) == ("affectnet", "npy")
    source = open_source(root)
    assert source.splits == ["train", "validation"]
    train = list(source.records("train"))
    # numeric order (2 < 7 < 10 < 100), code 9 skipped and counted
    assert [r.image_id for r in train] == [
        "train_set/images/7.jpg",
        "train_set/images/10.jpg",
        "train_set/images/100.jpg",
    ]
    assert [r.hard_label for r in train] == [5, 3, 0]
    assert train[1].valence == pytest.approx(0.25) and train[1].arousal == pytest.approx(-0.5)
    np.testing.assert_array_equal(train[1].landmarks, lnd.reshape(68, 2).astype(np.float32))
    assert train[1].landmarks[1].tolist() == [2.0, 3.0]  # flat [x0, y0, x1, y1, ...]
    assert train[2].valence is None and train[0].landmarks is None and train[0].face_box is None
    counts = source.skipped.counts()
    assert counts == {"missing_annotation": 1, "non_emotion:Uncertain": 1}
    assert source.skipped.total == 1  # the missing _lnd record was kept
    val = list(source.records("validation"))
    assert val[0].split == "validation" and val[0].hard_label == 1


def test_npy_bad_values(tmp_path: Path) -> None:
    root = write_npy_layout(
        tmp_path / "an",
        "train_set",
        {
            1: {"exp": np.array("12"), "val": np.array(0.0), "aro": np.array(0.0)},
            2: {"exp": np.array(1), "val": np.array(3.0), "aro": np.array(0.0)},
            3: {"exp": np.array(1), "val": np.array(0.0), "aro": np.array(0.0), "lnd": np.zeros(135)},
        },
    )
    (root / "train_set" / "images" / "4.jpg").write_bytes((root / "train_set" / "images" / "1.jpg").read_bytes())
    source = open_source(root, skip_bad_rows=True)
    assert list(source.records()) == []
    details = {Path(i.location).name: i.detail for i in source.skipped.items if i.reason == "bad_row"}
    assert "expression code 12 out of range" in details["1_exp.npy"]
    assert "valence 3.0 out of range" in details["2_val.npy"]
    assert "facial_landmarks has 135 numbers; expected 136" in details["3_lnd.npy"]
    assert "4_exp.npy missing" in details["4.jpg"]
    with pytest.raises(ValueError, match=r"1_exp.npy: expression code 12 out of range"):
        list(open_source(root).records())


def test_npy_object_array_is_not_unpickled(tmp_path: Path) -> None:
    root = write_npy_layout(tmp_path / "an", "train_set", {1: {"val": np.array(0.0), "aro": np.array(0.0)}})
    np.save(root / "train_set" / "annotations" / "1_exp.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"1_exp.npy: cannot read .npy file"):
        list(open_source(root).records())


# ---------------------------------------------------------------------------------------------- detection
def test_empty_and_unknown_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError) as info:
        detect_source(empty)
    assert str(empty) in str(info.value) and "folder is empty" in str(info.value)
    assert all(item in str(info.value) for item in LOOKED_FOR)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"unknown dataset layout; looked for"):
        open_source(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown source kind"):
        open_source(other, kind="rafdb")


def test_multi_annotated_rejects_single_label(csv_root: Path) -> None:
    with pytest.raises(ValueError, match=r"a multi-annotated source is needed \(FER\+, a folder with votes"):
        open_multi_annotated(csv_root)


def test_unknown_option_is_an_error(csv_root: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'keep_nonemotion'"):
        open_source(csv_root, keep_nonemotion=True)


def test_summary_and_info_command(csv_root: Path, capsys) -> None:
    summary = summarize_source(open_source(csv_root, keep_non_emotion=True), check_images=True)
    assert summary["splits"]["train"]["Happy"] == 1 and summary["splits"]["train"]["Anger"] == 1
    assert summary["splits"]["train"]["non_emotion"] == {"None": 1, "Non-Face": 1}
    assert summary["splits"]["validation"]["non_emotion"] == {"Uncertain": 1}
    assert summary["splits"]["train"]["total"] == 5 and summary["bad"] == []
    (csv_root / "Manually_Annotated_Images" / "101" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert main(["info", str(csv_root), "--check-images"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "affectnet" and printed["layout"] == "csv"
    assert printed["splits"]["validation"]["Neutral"] == 1
    assert [b["image_id"] for b in printed["bad"]] == ["Manually_Annotated_Images/101/a.jpg"]
