"""FER+ reader on fixtures built from the real FER+ label rows (tests/fixtures/ferplus, MIT)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf.emotions import EMOTION_TO_INDEX
from affectnetplus_hf.sources import detect_source, open_multi_annotated, open_source
from affectnetplus_hf.sources.ferplus import FerPlusSource, ferplus_label_distribution, ferplus_target, pixels_to_png

FIXTURES = Path(__file__).parent / "fixtures" / "ferplus"


def test_fer2013new_with_folders(tmp_path: Path, ferplus_files) -> None:
    root = ferplus_files.build(tmp_path / "ferplus")
    assert detect_source(root) == ("ferplus", "fer2013new+folders")
    source = open_source(root)
    assert isinstance(source, FerPlusSource) and source.has_votes
    assert source.splits == ["train", "validation", "test"]
    train = list(source.records("train"))
    # 60 real rows - 1 dropped - 3 empty names; the appended duplicate replaces the earlier fer0000030 row
    assert len(train) == 56
    ids = [r.image_id for r in train]
    assert ids[0] == "FER2013Train/fer0000000.png" and len(set(ids)) == 56
    assert "FER2013Train/fer0000017.png" not in ids and f"FER2013Train/{ferplus_files.dropped}" not in ids
    first = train[0]
    # FER+ order neutral,happiness,surprise,sadness,anger,disgust,fear,contempt = 4,0,0,1,3,2,0,0
    expected = np.zeros(8, dtype=np.int64)
    expected[[EMOTION_TO_INDEX[e] for e in ("Neutral", "Sad", "Anger", "Disgust")]] = [4, 1, 3, 2]
    np.testing.assert_array_equal(first.votes, expected)
    assert first.votes.dtype == np.int64 and first.hard_label == EMOTION_TO_INDEX["Neutral"]
    assert first.extra["ferplus_votes"].tolist() == [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]
    assert Image.open(first.image_path).size == (48, 48)
    by_name = {r.extra["ferplus_name"]: r for r in source.records()}
    # duplicated name: the later row's votes are kept
    assert by_name["fer0000030.png"].votes[EMOTION_TO_INDEX["Happy"]] == 6
    assert by_name["fer0000030.png"].non_emotion_votes == 4
    # fer0000003.png: neutral 4, sadness 4 -> tie -> no hard label; unknown/NF go to non_emotion_votes
    assert by_name["fer0000003.png"].hard_label is None and by_name["fer0000003.png"].non_emotion_votes == 1
    # a majority of NF votes: no hard label
    assert by_name["fer0032298.png"].hard_label is None and by_name["fer0032298.png"].split == "test"
    assert by_name["fer0028709.png"].hard_label == EMOTION_TO_INDEX["Anger"]
    assert by_name["fer0028709.png"].image_id == "FER2013Valid/fer0028709.png"
    counts = source.skipped.counts()
    assert counts == {"duplicate_name": 1, "empty_image_name": 4}
    duplicate = [i for i in source.skipped.items if i.reason == "duplicate_name"][0]
    assert duplicate.location.endswith("fer2013new.csv:31") and "votes differ" in duplicate.detail
    empty_lines = sorted(
        int(i.location.rsplit(":", 1)[1]) for i in source.skipped.items if i.reason == "empty_image_name"
    )
    assert empty_lines == [18, 24, 60, 65]
    assert source.duplicates == [duplicate.location]
    assert open_multi_annotated(root).kind == "ferplus"


def test_fer2013_csv_pixels_joined_by_row_not_by_name(tmp_path: Path, ferplus_files) -> None:
    root = ferplus_files.build(tmp_path / "ferplus", folders=False, fer2013=True)
    assert detect_source(root) == ("ferplus", "fer2013new+fer2013csv")
    source = open_source(root)
    records = {r.image_id: r for r in source.records()}
    assert len(records) == 56 + 2 + 2
    record = records["fer0000006.png"]
    assert record.image_path is None and record.image_bytes is not None
    image = Image.open(io.BytesIO(record.image_bytes))
    assert image.size == (48, 48) and image.mode == "L"
    # fer0000006.png is on data row 5 (fer0000005 was dropped): its pixels are row 5's, not row 6's
    assert np.asarray(image)[0, 0] == ferplus_files.row_value(5) != ferplus_files.row_value(6)
    # the duplicated name takes the pixels of its later row (index 59 in the built file)
    header, rows = ferplus_files.rows()
    later = [i for i, r in enumerate(rows) if r[1] == "fer0000030.png"][-1]
    pixels = np.asarray(Image.open(io.BytesIO(records["fer0000030.png"].image_bytes)))
    assert pixels[0, 0] == ferplus_files.row_value(later)
    assert records["fer0032300.png"].split == "test"


def test_fer2013_csv_mismatches(tmp_path: Path, ferplus_files) -> None:
    root = ferplus_files.build(tmp_path / "short", folders=False, fer2013=True)
    lines = (root / "fer2013.csv").read_text().splitlines()
    (root / "fer2013.csv").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(
        ValueError, match=r"fer2013.csv: has 62 data rows but fer2013new.csv needs row 65; expected the same"
    ):
        list(open_source(root).records("test"))
    root = ferplus_files.build(tmp_path / "usage", folders=False, fer2013=True)
    lines = (root / "fer2013.csv").read_text().splitlines()
    lines[3] = lines[3].replace("Training", "PublicTest")
    (root / "fer2013.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"fer2013.csv:4: Usage 'PublicTest' differs from .*fer2013new.csv:4"):
        list(open_source(root).records("train"))
    with pytest.raises(ValueError, match=r"row 7: pixels has 2303 values; expected 2304"):
        pixels_to_png(" ".join(["1"] * 2303), "row 7")
    with pytest.raises(ValueError, match=r"pixel values must be in 0-255"):
        pixels_to_png(" ".join(["256"] * 2304))


def test_label_csv_layout(tmp_path: Path) -> None:
    root = tmp_path / "ferplus"
    train = root / "FER2013Train"
    train.mkdir(parents=True)
    text = (FIXTURES / "FER2013Train.label.head.csv").read_text()
    (train / "label.csv").write_text(text)
    for line in text.splitlines():
        Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(train / line.split(",")[0])
    assert detect_source(root) == ("ferplus", "label_csv+folders")
    source = open_source(root, check_files=True)
    records = list(source.records())
    assert source.splits == ["train"] and len(records) == 20
    assert records[0].face_box == (0.0, 0.0, 48.0, 48.0)
    assert records[-1].image_id == "FER2013Train/fer0000020.png"
    assert records[7].hard_label == EMOTION_TO_INDEX["Happy"]
    np.testing.assert_array_equal(
        # label-space order Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt
        records[0].votes,
        [4, 0, 1, 0, 0, 2, 3, 0],
    )


def test_bad_vote_rows(tmp_path: Path, ferplus_files) -> None:
    root = ferplus_files.build(tmp_path / "neg")
    lines = (root / "fer2013new.csv").read_text().splitlines()
    lines[2] = "Training,fer0000001.png,6,0,-1,1,0,0,0,0,2,0"
    (root / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"fer2013new.csv:3: vote count surprise=-1 is negative; expected a count >= 0"
    ):
        open_source(root)
    source = open_source(root, skip_bad_rows=True)
    assert source.skipped.counts()["bad_row"] == 1 and len(list(source.records("train"))) == 55
    lines[2] = "Training,fer0000001.png,6,0,x,1,0,0,0,0,2,0"
    lines[3] = "Holdout,fer0000002.png,5,0,0,3,1,0,0,0,1,0"
    (root / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    source = open_source(root, skip_bad_rows=True)
    details = [i.detail for i in source.skipped.items if i.reason == "bad_row"]
    assert "vote count surprise='x' is not a number" in details[0]
    assert "Usage 'Holdout' unknown" in details[1]
    lines[0] = lines[0].replace(",NF", "")
    (root / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"fer2013new.csv: missing columns \['NF'\]"):
        open_source(root)


def test_missing_images(tmp_path: Path, ferplus_files) -> None:
    root = tmp_path / "noimages"
    root.mkdir()
    (root / "fer2013new.csv").write_text((FIXTURES / "fer2013new.head.csv").read_text())
    with pytest.raises(FileNotFoundError, match=r"no FER\+ image folders; expected FER2013Train"):
        open_source(root)
    root = ferplus_files.build(tmp_path / "ferplus")
    (root / "FER2013Train" / "fer0000004.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"fer2013new.csv:6: image file .*fer0000004.png missing"):
        list(open_source(root, check_files=True).records())


# ---------------------------------------------------------------------------------------------- targets
def _spec(**values: float) -> np.ndarray:
    out = np.zeros(8)
    for name, value in values.items():
        out[EMOTION_TO_INDEX[name]] = value
    return out


@pytest.mark.parametrize(
    ("raw", "mode", "expected"),
    [
        # fer0000000: outlier removal drops sadness=1 -> 4,3,2 of 9: no majority (4 <= 4.5)
        ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "majority", None),
        # ... crossentropy takes neutral (4) then anger (3): 7 >= 0.75 * 9
        ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "crossentropy", _spec(Neutral=4 / 7, Anger=3 / 7)),
        # ... multi_target keeps counts >= 0.3 * 9 = 2.7: neutral 4, anger 3
        ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "multi_target", 0.999 * _spec(Neutral=1, Anger=1) + 0.001),
        # fer0000001: surprise/sadness single votes dropped; neutral 6 of 8
        ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], "majority", _spec(Neutral=1)),
        ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], "crossentropy", _spec(Neutral=1)),
        # fer0000009: surprise 6, fear 4
        ([0, 0, 6, 0, 0, 0, 4, 0, 0, 0], "majority", _spec(Surprise=1)),
        ([0, 0, 6, 0, 0, 0, 4, 0, 0, 0], "crossentropy", _spec(Surprise=0.6, Fear=0.4)),
        ([0, 0, 6, 0, 0, 0, 4, 0, 0, 0], "multi_target", 0.999 * _spec(Surprise=1, Fear=1) + 0.001),
        # NF is the top count: discarded
        ([3, 0, 0, 0, 0, 0, 0, 0, 3, 4], "crossentropy", None),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "majority", None),
        # neutral 6 taken, then unknown/NF reached after an emotion: dropped, neutral kept (6 > 5)
        ([6, 0, 0, 0, 0, 0, 0, 0, 2, 2], "crossentropy", _spec(Neutral=1)),
        # five emotions tied at 2: more than 3 taken -> discarded
        ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], "crossentropy", None),
        # all single votes: nothing left after outlier removal
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "multi_target", None),
    ],
)
def test_ferplus_targets_hand_worked(raw, mode, expected) -> None:
    result = ferplus_target(np.asarray(raw), mode)
    if expected is None:
        assert result is None
    else:
        np.testing.assert_allclose(result, expected, atol=1e-12)


def test_probability_mode_draws_from_the_distribution() -> None:
    raw = np.asarray([0, 0, 6, 0, 0, 0, 4, 0, 0, 0])
    assert ferplus_label_distribution(raw, "probability") is not None
    draws = np.stack([ferplus_target(raw, "probability", rng=np.random.default_rng(7 + i)) for i in range(400)])
    assert set(draws.sum(axis=1)) == {1.0}
    share = draws.mean(axis=0)
    assert share[EMOTION_TO_INDEX["Surprise"]] == pytest.approx(0.6, abs=0.08)
    assert share[EMOTION_TO_INDEX["Surprise"]] + share[EMOTION_TO_INDEX["Fear"]] == 1.0
    same = [ferplus_target(raw, "probability", rng=np.random.default_rng(3)) for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    with pytest.raises(ValueError, match="pass rng"):
        ferplus_target(raw, "probability")
    with pytest.raises(ValueError, match="mode must be one of"):
        ferplus_target(raw, "soft")
    with pytest.raises(ValueError, match="non-negative"):
        ferplus_target(np.asarray([-1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "majority")
