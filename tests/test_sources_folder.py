"""Generic folder reader: votes, per-annotation and labels CSV layouts, with their bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf.emotions import EMOTION_TO_INDEX
from affectnetplus_hf.sources import detect_source, open_multi_annotated, open_source
from affectnetplus_hf.sources.folder import FolderSource, parse_emotion_label

VOTES_HEADER = "image,split,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt"


def _folder(root: Path, csv_name: str, text: str, images: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / csv_name).write_text(text)
    for name in images:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / name)
    return root


def test_votes_layout(tmp_path: Path) -> None:
    text = (
        "\n".join(
            [
                "image,split,neutral,HAPPY,Sad,Surprise,Fear,Disgust,Anger,Contempt,unknown",
                "img/a.png,train,3,0,0,0,0,0,2,0,0",
                "img/b.png,validation,0,2,2,0,0,0,0,0,0",  # tie -> no hard label
                "img/c.png,test,1,0,0,0,0,0,0,0,3",  # non-emotion majority -> no hard label
                "img/d.png,val,0,0,0,0,0,0,0,4,1",
            ]
        )
        + "\n"
    )
    root = _folder(tmp_path / "f", "votes.csv", text, ("img/a.png", "img/b.png", "img/c.png", "img/d.png"))
    assert detect_source(root) == ("folder", "votes")
    source = open_source(root, check_files=True)
    assert isinstance(source, FolderSource) and source.has_votes
    assert source.splits == ["train", "validation", "test"]
    records = {r.image_id: r for r in source.records()}
    a = records["img/a.png"]
    assert a.hard_label == EMOTION_TO_INDEX["Neutral"] and a.votes.tolist() == [3, 0, 0, 0, 0, 0, 2, 0]
    assert a.votes.dtype == np.int64 and Path(a.image_path) == root / "img" / "a.png"
    assert records["img/b.png"].hard_label is None and records["img/b.png"].split == "validation"
    assert records["img/c.png"].hard_label is None and records["img/c.png"].non_emotion_votes == 3
    assert records["img/d.png"].hard_label == EMOTION_TO_INDEX["Contempt"]
    assert records["img/d.png"].split == "validation"
    assert open_multi_annotated(root) is not None


def test_annotations_layout_matches_votes(tmp_path: Path) -> None:
    text = (
        "\n".join(
            [
                "image,annotator,label",
                "x.png,a1,Neutral",
                "x.png,a2,neutral",
                "x.png,a3,6",
                "y.png,a1,happy",
                "y.png,a2,Uncertain",
                "y.png,a1,Surprise",  # a1 changes their mind: last kept
                "z.png,a1,NF",
                "z.png,a2,nf",
            ]
        )
        + "\n"
    )
    root = _folder(tmp_path / "f", "annotations.csv", text)
    assert detect_source(root) == ("folder", "annotations")
    source = open_source(root)
    records = {r.image_id: r for r in source.records()}
    assert records["x.png"].votes.tolist() == [2, 0, 0, 0, 0, 0, 1, 0] and records["x.png"].hard_label == 0
    assert records["x.png"].extra["annotator_labels"] == {"a1": "Neutral", "a2": "neutral", "a3": "6"}
    y = records["y.png"]
    assert y.votes.tolist() == [0, 0, 0, 1, 0, 0, 0, 0] and y.non_emotion_votes == 1 and y.hard_label is None
    assert records["z.png"].votes.sum() == 0 and records["z.png"].non_emotion_votes == 2
    assert source.skipped.counts() == {"duplicate_annotation": 1}
    assert source.skipped.items[0].location.endswith("annotations.csv:7")
    assert [r.split for r in records.values()] == ["train"] * 3


def test_labels_layout_is_not_multi_annotated(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f", "labels.csv", "image,label\np.png,Fear\nq.png,contempt\n")
    assert detect_source(root) == ("folder", "labels")
    source = open_source(root)
    assert not source.has_votes
    assert [(r.hard_label, r.votes) for r in source.records()] == [(4, None), (7, None)]
    with pytest.raises(ValueError, match="a multi-annotated source is needed"):
        open_multi_annotated(root)
    _folder(root, "labels.csv", "image,label\np.png,Fear\np.png,Sad\n")
    with pytest.raises(ValueError, match=r"labels.csv:3: image p.png labelled again"):
        open_source(root)


@pytest.mark.parametrize(
    ("csv_name", "text", "message"),
    [
        (
            "votes.csv",
            VOTES_HEADER + "\na.png,train,1,-2,0,0,0,0,0,0\n",
            r"votes.csv:2: Happy=-2 invalid; expected a vote count >= 0",
        ),
        ("votes.csv", VOTES_HEADER + "\na.png,train,1,x,0,0,0,0,0,0\n", r"votes.csv:2: Happy='x' is not a number"),
        ("votes.csv", VOTES_HEADER + "\na.png,holdout,1,0,0,0,0,0,0,0\n", r"votes.csv:2: split 'holdout' unknown"),
        ("votes.csv", VOTES_HEADER + "\na.png,train,1,0\n", r"votes.csv:2: row has 4 fields; expected 10"),
        ("votes.csv", "image,Neutral,Happy\na.png,1,0\n", r"missing vote columns \['Sad', 'Surprise'"),
        (
            "annotations.csv",
            "image,annotator,label\na.png,a1,joy\n",
            r"annotations.csv:2: label 'joy' unknown; expected an emotion name",
        ),
        ("annotations.csv", "image,annotator,label\na.png,a1,9\n", r"label '9' unknown"),
        (
            "annotations.csv",
            "image,annotator,label,split\na.png,a1,Sad,train\na.png,a2,Sad,test\n",
            r"annotations.csv:3: image a.png has split 'test' here but 'train'",
        ),
        ("annotations.csv", "image,annotator,label\n,a1,Sad\n", r"annotations.csv:2: image is empty"),
        (
            "votes.csv",
            "picture,Neutral\nx.png,1\n",
            r"votes.csv: unknown columns \['picture', 'Neutral'\]; expected 'image'",
        ),
    ],
)
def test_bad_folder_csv(tmp_path: Path, csv_name: str, text: str, message: str) -> None:
    root = _folder(tmp_path / "f", csv_name, text)
    with pytest.raises(ValueError, match=message):
        FolderSource(root)


def test_skip_bad_rows_and_missing_emotions(tmp_path: Path) -> None:
    text = "image,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger\na.png,1,0,0,0,0,0,3\nb.png,0,-1,0,0,0,0,0\n"
    root = _folder(tmp_path / "f", "votes.csv", text)
    with pytest.raises(ValueError, match=r"missing vote columns \['Contempt'\]"):
        FolderSource(root)
    source = FolderSource(root, allow_missing_emotions=True, skip_bad_rows=True)
    records = list(source.records())
    assert [r.image_id for r in records] == ["a.png"] and records[0].hard_label == EMOTION_TO_INDEX["Anger"]
    assert source.skipped.counts() == {"bad_row": 1} and source.skipped.items[0].location.endswith("votes.csv:3")


def test_duplicate_image_and_missing_files(tmp_path: Path) -> None:
    text = VOTES_HEADER + "\na.png,train,1,0,0,0,0,0,0,0\na.png,train,0,2,0,0,0,0,0,0\nb.png,train,0,0,3,0,0,0,0,0\n"
    root = _folder(tmp_path / "f", "votes.csv", text, ("a.png",))
    source = FolderSource(root)
    records = list(source.records())
    assert records[0].votes.tolist() == [0, 2, 0, 0, 0, 0, 0, 0]
    assert source.skipped.counts() == {"duplicate_image": 1}
    with pytest.raises(FileNotFoundError, match=r"votes.csv:4: image file .*b.png missing"):
        list(FolderSource(root, check_files=True).records())
    source = FolderSource(root, check_files=True, skip_bad_rows=True)
    assert len(list(source.records())) == 1
    assert source.skipped.counts() == {"duplicate_image": 1, "missing_image": 1}


def test_no_csv(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    with pytest.raises(
        FileNotFoundError, match="no label CSV; expected one of votes.csv, annotations.csv, labels.csv"
    ):
        FolderSource(tmp_path / "f")


def test_parse_emotion_label() -> None:
    labels = ("Neutral", "HAPPY", "sadness", "3", "0", "7", "None", "Non-Face")
    assert [parse_emotion_label(x, "w") for x in labels] == [0, 1, 2, 3, 0, 7, None, None]
    with pytest.raises(ValueError, match="w: label '8' unknown"):
        parse_emotion_label("8", "w")
