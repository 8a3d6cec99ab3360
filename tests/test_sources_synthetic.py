"""Reading a written synthetic sample: AffectNet part in both layouts, the multi-annotated part, ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from affectnetplus_hf.cli import main
from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.run_folder import MARKER_FILE
from affectnetplus_hf.sources import detect_source, open_multi_annotated, open_source
from affectnetplus_hf.sources.affectnet import AffectNetSource
from affectnetplus_hf.sources.folder import FolderSource
from affectnetplus_hf.synthetic import write_sample

N_TRAIN, N_VAL, N_MAS = 10, 4, 12


@pytest.fixture(scope="module", params=["csv", "npy"])
def sample(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp(f"sample_{request.param}") / "sample"
    write_sample(
        root,
        layout=request.param,
        n_train=N_TRAIN,
        n_val=N_VAL,
        n_mas=N_MAS,
        image_size=40,
        seed=3,
        progress=False,
        contact_sheet=False,
    )
    return root


def _ground_truth(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "ground_truth.csv", newline="") as handle:
        return {row["image_id"]: row for row in csv.DictReader(handle)}


def test_affectnet_part(sample: Path) -> None:
    layout = json.loads((sample / "sample_info.json").read_text())["layout"]
    assert (sample / MARKER_FILE).is_file()  # the writer's run-folder marker does not hide the layout
    assert detect_source(sample) == ("synthetic", layout)
    source = open_source(sample)
    assert (source.kind, source.layout, source.splits) == ("synthetic", layout, ["train", "validation"])
    records = list(source.records())
    assert len(records) == N_TRAIN + N_VAL and not source.skipped.total
    assert sum(r.split == "validation" for r in records) == N_VAL
    truth = _ground_truth(sample)
    for record in records:
        assert record.source == "synthetic" and record.hard_label is not None
        row = truth[record.image_id]
        soft = np.asarray([float(row[name]) for name in EMOTIONS], dtype=np.float32)
        np.testing.assert_array_equal(record.extra["soft_label_true"], soft)
        assert record.extra["soft_label_true"].dtype == np.float32 and record.extra["soft_label_true"].shape == (8,)
        assert record.extra["head_pose"] == (float(row["yaw"]), float(row["pitch"]), float(row["roll"]))
        assert record.landmarks.shape == (68, 2) and Path(record.image_path).is_file()
        if layout == "csv":
            assert record.face_box is not None
    # the same folder read by the plain AffectNet reader gives the same records, without ground truth
    plain = list(AffectNetSource(sample).records())
    assert [r.image_id for r in plain] == [r.image_id for r in records] and plain[0].extra == {}


def test_multi_annotated_part(sample: Path) -> None:
    source = open_multi_annotated(sample)
    assert isinstance(source, FolderSource) and source.has_votes and source.layout == "votes"
    records = list(source.records())
    assert len(records) == N_MAS
    info = json.loads((sample / "sample_info.json").read_text())
    truth = _ground_truth(sample)
    for record in records:
        assert record.votes.sum() + record.non_emotion_votes == info["n_annotators"]
        assert f"multi_annotated/{record.image_id}" in truth
        assert record.extra["soft_label_true"].shape == (8,)
    # the per-annotation file gives the same votes
    per_annotation = FolderSource(sample / "multi_annotated", csv_path="annotations.csv")
    annotations = {r.image_id: r for r in per_annotation.records()}
    for record in records:
        np.testing.assert_array_equal(annotations[record.image_id].votes, record.votes)


def test_info_on_sample(sample: Path, capsys) -> None:
    assert main(["info", str(sample)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "synthetic"
    assert sum(summary["splits"]["train"][name] for name in EMOTIONS) == N_TRAIN
    assert summary["splits"]["validation"]["total"] == N_VAL
    assert summary["multi_annotated"]["kind"] == "folder" and summary["multi_annotated"]["has_votes"]
    assert summary["multi_annotated"]["splits"]["train"]["total"] == N_MAS


def test_missing_ground_truth_row(sample: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sample, copy)
    lines = (copy / "ground_truth.csv").read_text().splitlines()
    (copy / "ground_truth.csv").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match="has no ground-truth row"):
        list(open_source(copy).records())
