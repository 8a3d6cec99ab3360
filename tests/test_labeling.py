"""Labeling: shards, manifest, resume after kill -9, 2 processes, bad images.

Runs a tiny random soft-labeler (timm ``test_resnet`` members, 32 px) over a small synthetic sample.
Every run uses one intra-op thread (``num_threads=1``) so that in-process and subprocess runs give the
same bits (CPU kernels split reductions by thread count; see docs/architecture.md#labeling-run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import os
import shutil
import signal

import pyarrow.parquet as pq
from helpers import accelerate_cpu_launch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.sources import open_source  # noqa: E402

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from affectnetplus_hf.emotions import EMOTIONS, SUBSETS  # noqa: E402
from affectnetplus_hf.fileio import check_writable_dir, write_parquet_deterministic  # noqa: E402
from affectnetplus_hf.labeling import (  # noqa: E402
    LABEL_COLUMNS,
    LabelingConfig,
    collect_records,
    label_dataset,
    load_labels,
    plan_shards,
    read_manifest,
    shards_for_process,
)
from affectnetplus_hf.records import FaceRecord  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARD_SIZE, BATCH_SIZE = 4, 3


def config(**kwargs) -> LabelingConfig:
    return LabelingConfig(shard_size=SHARD_SIZE, batch_size=BATCH_SIZE, num_threads=1, progress=False, **kwargs)


def cli_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_CBWR="AUTO,STRICT", PYTHONPATH=str(REPO))


@pytest.fixture(scope="module")
def assets(tmp_path_factory, make_sample, make_tiny_labeler):
    root = tmp_path_factory.mktemp("labeling")
    model = make_tiny_labeler(root / "model")
    sample = make_sample(root / "sample")
    reference = root / "reference"
    summary = label_dataset(model, sample, reference, config())
    return {"root": root, "model": model, "sample": sample, "reference": reference, "summary": summary}


# ---------------------------------------------------------------------------------------------- plan


def test_plan_cuts_each_split_and_assigns_round_robin():
    records = {
        "train": [FaceRecord(f"t{i}") for i in range(10)],
        "validation": [FaceRecord(f"v{i}") for i in range(3)],
    }
    shards = plan_shards(records, 4)
    assert [(s.name, s.start, s.stop) for s in shards] == [
        ("train-00000", 0, 4),
        ("train-00001", 4, 8),
        ("train-00002", 8, 10),
        ("validation-00000", 0, 3),
    ]
    assert [s.name for s in shards_for_process(shards, 1, 2)] == ["train-00001", "validation-00000"]
    mine = [s.name for k in range(3) for s in shards_for_process(shards, k, 3)]
    assert sorted(mine) == sorted(s.name for s in shards)  # every shard exactly once
    with pytest.raises(ValueError, match="process_index"):
        shards_for_process(shards, 2, 2)


def test_config_rejects_bad_values():
    for kwargs, message in (
        ({"shard_size": 0}, "shard_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"dtype": "fp64"}, "dtype"),
        ({"max_shards": 0}, "max_shards"),
    ):
        with pytest.raises(ValueError, match=message):
            LabelingConfig(**kwargs)


# ---------------------------------------------------------------------------------------------- outputs


def test_outputs_match_the_model_and_the_subset_rule(assets):
    import torch

    from affectnetplus_hf.image_processing import make_dataloader
    from affectnetplus_hf.models.hub import load_soft_labeler
    from affectnetplus_hf.sources import open_source
    from affectnetplus_hf.subsets import assign_subsets

    out = assets["reference"]
    manifest = read_manifest(out)
    assert manifest["complete"] and manifest["total_shards"] == 4  # train 9 -> 3 shards, validation 4 -> 1
    assert manifest["config"]["families"] == ["ebc", "au"]
    table = load_labels(out)
    assert table.column_names == list(LABEL_COLUMNS)
    records = collect_records(open_source(assets["sample"]))
    expected_ids = [(r.split, r.image_id) for split in records for r in records[split]]
    assert list(zip(table.column("split").to_pylist(), table.column("image_id").to_pylist())) == expected_ids
    soft = np.asarray(table.column("soft_label").to_pylist(), dtype=np.float32)
    assert soft.shape == (13, 8) and np.all((soft >= 0) & (soft <= 1))
    assert pq.read_schema(out / "shards" / "train-00000.parquet").field("soft_label").type.list_size == 8

    # same numbers as the model on the same fixed batches (first shard: batches of 3 + 1)
    model = load_soft_labeler(assets["model"])
    processor = model.image_processor
    first = records["train"][:SHARD_SIZE]
    rows = []
    with torch.inference_mode():
        for batch in make_dataloader(first, processor, batch_size=BATCH_SIZE):
            rows.append(model(batch["pixel_values"]).soft_label.numpy())
    np.testing.assert_allclose(soft[:SHARD_SIZE], np.concatenate(rows), rtol=0, atol=1e-6)

    hard = np.asarray(table.column("hard_label").to_pylist())
    assert list(table.column("subset").to_pylist()) == list(assign_subsets(soft, hard))
    ebc = np.asarray(table.column("soft_label_ebc").to_pylist())
    au = np.asarray(table.column("soft_label_au").to_pylist())
    np.testing.assert_allclose(soft, (ebc + au) / 2, atol=1e-6)  # Eq. 14 with both families

    summary = json.loads((out / "summary.json").read_text())
    assert summary == assets["summary"]
    assert summary["images_per_split"] == {"train": 9, "validation": 4} and summary["bad_images"] == []
    for split in ("train", "validation"):
        counted = sum(summary["counts"][split][s][e] for s in SUBSETS for e in EMOTIONS)
        assert counted == summary["images_per_split"][split]
    table5 = json.loads((out / "subsets.json").read_text())
    assert table5["train"]["counts"]["all"]["Overall"] == 9
    assert "| easy |" in (out / "subsets.md").read_text()
    assert (out / "subsets_train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- resume


def test_stop_after_max_shards_then_resume_gives_identical_files(assets, tmp_path, capsys, tree_bytes):

    out = tmp_path / "run"
    argv = [
        "label",
        str(assets["model"]),
        str(assets["sample"]),
        str(out),
        "--shard-size",
        str(SHARD_SIZE),
        "--batch-size",
        str(BATCH_SIZE),
        "--num-threads",
        "1",
        "--no-progress",
    ]
    assert main([*argv, "--max-shards", "2"]) == 3  # stopped early: exit code 3
    partial = json.loads(capsys.readouterr().out)
    assert partial["complete"] is False and len(partial["missing_shards"]) == 2
    manifest = read_manifest(out)
    assert not manifest["complete"]
    assert [s["name"] for s in manifest["finished_shards"]] == ["train-00000", "train-00001"]
    with pytest.raises(ValueError, match="not complete"):
        load_labels(out)
    label_dataset(assets["model"], assets["sample"], out, config())
    assert tree_bytes(out) == tree_bytes(assets["reference"])


def test_damaged_shard_is_redone(assets, tmp_path, tree_bytes):
    out = tmp_path / "run"
    shutil.copytree(assets["reference"], out)
    (out / "shards" / "train-00001.parquet").write_bytes(b"garbage")  # hash mismatch
    (out / "shards" / "train-00002.json").unlink()  # parquet renamed, killed before the sidecar
    (out / "shards" / ".train-00000.parquet.x.tmp").write_bytes(b"half")  # stale temp file
    label_dataset(assets["model"], assets["sample"], out, config())
    assert tree_bytes(out) == tree_bytes(assets["reference"])


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_is_byte_identical(assets, tmp_path, tree_bytes):
    """SIGKILL between writing shard 2's temp file and renaming it (the other kill points -- after the
    rename, after the sidecar -- leave states covered by the two tests above)."""
    point = "tmp"
    out = tmp_path / "run"
    command = _faults(f"2:{point}", "-", _label_argv(assets["model"], assets["sample"], out))
    killed = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    manifest = read_manifest(out)
    assert not manifest["complete"]
    assert {p.stem for p in (out / "shards").glob("*.json")} == {"train-00000"}
    assert list((out / "shards").glob(".*.tmp")), "the kill should leave the temp file behind"
    label_dataset(assets["model"], assets["sample"], out, config())  # resume in-process
    assert tree_bytes(out) == tree_bytes(assets["reference"])


def test_resume_with_other_model_or_settings_refuses(assets, tmp_path):
    other = tmp_path / "other-model"
    shutil.copytree(assets["model"], other)
    (other / "README.md").write_text("changed\n")  # any file change changes the fingerprint
    with pytest.raises(ValueError, match="model: was"):
        label_dataset(other, assets["sample"], assets["reference"], config())
    with pytest.raises(ValueError, match="shard_size"):
        label_dataset(
            assets["model"],
            assets["sample"],
            assets["reference"],
            LabelingConfig(shard_size=5, batch_size=BATCH_SIZE, num_threads=1, progress=False),
        )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        label_dataset(assets["model"], assets["sample"], foreign, config())


# ---------------------------------------------------------------------------------------------- one OUT, two runs


def _label_argv(model, sample, out, batch_size: int = BATCH_SIZE, overwrite: bool = False) -> list[str]:
    return [
        "label",
        str(model),
        str(sample),
        str(out),
        "--shard-size",
        str(SHARD_SIZE),
        "--batch-size",
        str(batch_size),
        "--num-threads",
        "1",
        "--no-progress",
        *(["--overwrite"] if overwrite else []),
    ]


def _faults(kill: str, hold: Path | str, argv: list[str]) -> list[str]:
    return [sys.executable, str(REPO / "tests" / "faults.py"), kill, str(hold), "--", *argv]


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("second", ["same model", "other model"])
def test_two_label_runs_on_one_out_one_waits_out(assets, tmp_path, tree_bytes, second):
    """The first run holds OUT's lock (paused after its first shard); the second stops at once naming it,
    and the finished OUT equals an uninterrupted run's."""
    model = assets["model"]
    if second == "other model":
        model = tmp_path / "other-model"
        shutil.copytree(assets["model"], model)
        (model / "README.md").write_text("another model\n")
    out, hold = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen(
        _faults("-", hold, _label_argv(assets["model"], assets["sample"], out)),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(out / "shards" / "train-00000.json", first)
        refused = subprocess.run(
            [sys.executable, "-m", "affectnetplus_hf", *_label_argv(model, assets["sample"], out)],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert refused.returncode == 1, refused.stderr[-2000:]
        assert f"is in use by process {first.pid} (started" in refused.stderr
        assert "Traceback" not in refused.stderr and not (out / "shards" / "train-00001.json").exists()
    finally:
        hold.touch()
        _, errors = first.communicate(timeout=300)
    assert first.returncode == 0, errors[-2000:]
    assert tree_bytes(out) == tree_bytes(assets["reference"])


# ------------------------------------------------------------------------------ the contract, property-based


@pytest.fixture(scope="module")
def references(assets, tmp_path_factory):
    """Uninterrupted runs with the two settings the property test switches between (batch size 3 and 2)."""
    other = tmp_path_factory.mktemp("other-settings") / "run"
    label_dataset(
        assets["model"],
        assets["sample"],
        other,
        LabelingConfig(shard_size=SHARD_SIZE, batch_size=2, num_threads=1, progress=False),
    )
    return {3: assets["reference"], 2: other}


_RUN = st.tuples(st.just("run"), st.sampled_from([3, 2]), st.booleans())
_KILL = st.tuples(
    st.just("kill"),
    st.sampled_from([3, 2]),
    st.booleans(),
    st.integers(1, 4),
    st.sampled_from(["tmp", "parquet", "sidecar"]),
)


@pytest.mark.slow
@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.one_of(_RUN, _KILL), min_size=2, max_size=3))
@example(steps=[("kill", 3, False, 2, "tmp"), ("run", 2, False), ("kill", 2, True, 1, "parquet"), ("run", 3, False)])
def test_label_folder_contract_under_random_kills_and_resumes(assets, references, tree_bytes, steps):
    """Random start / kill -9 / resume / resume with other settings / overwrite: a refused run changes
    nothing, nothing beside OUT is touched, and the folder a run finishes equals an uninterrupted run."""
    import tempfile

    from affectnetplus_hf.run_folder import RunFolderError

    root = Path(tempfile.mkdtemp(dir=assets["root"]))
    out, foreign = root / "run", root / "notes.txt"
    foreign.write_text("mine")
    marked = None  # the batch size of the run the folder holds
    for action, batch_size, overwrite, *kill in steps:
        before = tree_bytes(out) if out.exists() else None
        refused = marked is not None and marked != batch_size and not overwrite
        if action == "run":
            if refused:
                with pytest.raises(RunFolderError, match=f"batch_size: was {marked}, now {batch_size}"):
                    label_dataset(
                        assets["model"],
                        assets["sample"],
                        out,
                        config(overwrite=overwrite)
                        if batch_size == 3
                        else LabelingConfig(
                            shard_size=SHARD_SIZE, batch_size=2, num_threads=1, progress=False, overwrite=overwrite
                        ),
                    )
            else:
                label_dataset(
                    assets["model"],
                    assets["sample"],
                    out,
                    LabelingConfig(
                        shard_size=SHARD_SIZE,
                        batch_size=batch_size,
                        num_threads=1,
                        progress=False,
                        overwrite=overwrite,
                    ),
                )
                assert tree_bytes(out) == tree_bytes(references[batch_size])
                marked = batch_size
        else:
            shard, point = kill
            result = subprocess.run(
                _faults(
                    f"{shard}:{point}", "-", _label_argv(assets["model"], assets["sample"], out, batch_size, overwrite)
                ),
                env=cli_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            if refused:
                assert result.returncode == 1 and "other settings" in result.stderr, result.stderr[-2000:]
            else:
                assert result.returncode in (-signal.SIGKILL, 0), result.stderr[-2000:]
                if result.returncode == 0:  # fewer shards than `shard` were left to write
                    assert tree_bytes(out) == tree_bytes(references[batch_size])
                marked = batch_size
        if refused:
            assert tree_bytes(out) == before
        assert foreign.read_text() == "mine"
    final = marked or 3
    label_dataset(
        assets["model"],
        assets["sample"],
        out,
        LabelingConfig(shard_size=SHARD_SIZE, batch_size=final, num_threads=1, progress=False),
    )
    assert tree_bytes(out) == tree_bytes(references[final])
    shutil.rmtree(root)


# ---------------------------------------------------------------------------------------------- distributed


@pytest.mark.slow
def test_two_processes_give_the_same_files_as_one(assets, tmp_path, tree_bytes):
    out = tmp_path / "two"
    command = [
        *accelerate_cpu_launch(29500 + os.getpid() % 1000),
        "-m",
        "affectnetplus_hf",
        "label",
        str(assets["model"]),
        str(assets["sample"]),
        str(out),
        "--shard-size",
        str(SHARD_SIZE),
        "--batch-size",
        str(BATCH_SIZE),
        "--num-threads",
        "1",
        "--no-progress",
    ]
    env = dict(cli_env(), ACCELERATE_USE_CPU="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2" in result.stderr  # really two processes
    assert tree_bytes(out) == tree_bytes(assets["reference"])


# ---------------------------------------------------------------------------------------------- bad input


def _corrupt_one_image(sample: Path) -> str:
    from affectnetplus_hf.sources import open_source

    record = next(open_source(sample).records("train"))
    Path(record.image_path).write_bytes(b"this is not a jpeg")
    return record.image_id


def test_corrupt_image_stops_or_is_skipped_and_listed(assets, tmp_path):
    sample = tmp_path / "sample"
    shutil.copytree(assets["sample"], sample)
    bad_id = _corrupt_one_image(sample)
    with pytest.raises(ValueError, match=bad_id.rsplit("/", 1)[-1]):
        label_dataset(assets["model"], sample, tmp_path / "strict", config())
    summary = label_dataset(assets["model"], sample, tmp_path / "lenient", config(skip_bad=True))
    assert summary["bad_image_count"] == 1 and summary["bad_images"][0]["image_id"] == bad_id
    assert summary["bad_images"][0]["split"] == "train" and summary["bad_images"][0]["error"]
    table = load_labels(tmp_path / "lenient")
    assert table.num_rows == 12 and bad_id not in table.column("image_id").to_pylist()
    # the other images keep their reference labels (up to float rounding: their batch lost one image)
    reference = {r["image_id"]: r["soft_label"] for r in load_labels(assets["reference"]).to_pylist()}
    for row in table.to_pylist():
        np.testing.assert_allclose(row["soft_label"], reference[row["image_id"]], atol=1e-5)


def test_output_folder_errors_name_the_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_writable_dir(blocker / "out")
    # Tests run as root, where chmod does not block writes: simulate an unwritable folder via os.access.
    target = tmp_path / "readonly"
    target.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="readonly"):
        check_writable_dir(target)


def test_parquet_writes_are_deterministic_without_timestamps(tmp_path):
    import pyarrow as pa

    table = pa.table({"a": pa.array([1, 2, 3]), "b": pa.array(["x", None, "z"])})
    write_parquet_deterministic(table, tmp_path / "one.parquet")
    write_parquet_deterministic(table, tmp_path / "two.parquet")
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()
    metadata = pq.read_metadata(tmp_path / "one.parquet").metadata
    assert set(metadata) == {b"ARROW:schema"}
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------- Table 5


def test_subset_table_counts_and_percentages_hand_worked(tmp_path):
    from affectnetplus_hf.reports.subsets import subset_table, subset_table_markdown, write_subset_report

    labels = {
        "split": ["train"] * 6 + ["validation"],
        "hard_label": [1, 1, 1, 2, 7, None, 1],
        "subset": ["easy", "easy", "difficult", "challenging", "challenging", None, "easy"],
    }
    table = subset_table(labels)
    train = table["train"]
    assert train["counts"]["all"]["Happy"] == 3 and train["counts"]["all"]["Overall"] == 5
    assert train["percent"]["easy"]["Happy"] == pytest.approx(66.67)
    assert train["percent"]["difficult"]["Happy"] == pytest.approx(33.33)
    assert train["percent"]["challenging"]["Contempt"] == 100.0
    assert train["percent"]["easy"]["Neutral"] == 0.0  # no Neutral image: 0, not NaN
    assert train["percent"]["easy"]["Overall"] == 40.0 and train["without_hard_label"] == 1
    assert table["validation"]["counts"]["easy"]["Overall"] == 1
    markdown = subset_table_markdown(train)
    assert "| easy | 0 (0.00%) | 2 (66.67%) |" in markdown and "1 image(s) without a hard label" in markdown
    paths = write_subset_report(table, tmp_path, prefix="t5")
    assert json.loads(Path(paths["json"]).read_text()) == table
    assert Path(paths["figure:validation"]).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="unknown subset"):
        subset_table({"split": ["train"], "hard_label": [0], "subset": ["medium"]})


# ---------------------------------------------------------------------------------------------- photos


def _photo_source(folder: Path) -> Path:
    """A folder source of photos without face boxes: a synthetic face on a grey frame, the same photo stored
    sideways with EXIF orientation 6, and a face-free gradient."""

    from affectnetplus_hf.faces import FaceFinder
    from affectnetplus_hf.synthetic import make_face

    finder, rng = FaceFinder("auto"), np.random.default_rng(0)
    for attempt in range(60):
        face = make_face(rng, attempt % 8, image_size=160, pose=(0.0, 0.0, 0.0))[0].convert("RGB")
        photo = Image.new("RGB", (240, 280), (128, 128, 128))
        photo.paste(face, (40, 60))
        if len(finder.detect(photo)) == 1:
            break
    else:
        pytest.fail("the default detector found no synthetic face in 60 renders")
    (folder / "images").mkdir(parents=True)
    photo.save(folder / "images" / "face.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, displayed upright
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "images" / "face_exif6.png", exif=exif)
    gradient = np.tile(np.linspace(40, 220, 240, dtype=np.uint8), (200, 1))
    Image.fromarray(gradient).save(folder / "images" / "empty.png")
    (folder / "labels.csv").write_text(
        "image,label\nimages/face.png,Happy\nimages/face_exif6.png,Happy\nimages/empty.png,Sad\n"
    )
    return folder


def test_detect_faces_labels_photos_keeps_the_box_and_lists_face_free_images(assets, tmp_path, capsys):
    from affectnetplus_hf.models.inference import predict_files

    data = _photo_source(tmp_path / "photos")
    out = tmp_path / "labels"
    argv = [
        "label",
        str(assets["model"]),
        str(data),
        str(out),
        "--shard-size",
        "2",
        "--batch-size",
        "2",
        "--num-threads",
        "1",
        "--no-progress",
        "--detect-faces",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["no_face_count"] == 1 and summary["no_face_images"][0]["image_id"] == "images/empty.png"
    assert "no face found" in summary["no_face_images"][0]["reason"] and summary["bad_image_count"] == 0
    rows = {row["image_id"]: row for row in load_labels(out).to_pylist()}
    assert sorted(rows) == ["images/face.png", "images/face_exif6.png"]
    predicted = predict_files(str(assets["model"]), [str(data / "images" / "face.png")]).to_pylist()[0]
    for row in rows.values():  # the EXIF-6 copy is seen upright: the same face, box and soft label
        assert row["face_box"] == pytest.approx([predicted[c] for c in ("x0", "y0", "x1", "y1")], abs=1e-3)
        np.testing.assert_allclose(row["soft_label"], [predicted[e] for e in EMOTIONS], atol=1e-6)
    config_seen = read_manifest(out)["config"]
    assert config_seen["detect_faces"] is True and config_seen["no_face"] == "skip"
    assert config_seen["detector"] in ("dlib", "haar", "mediapipe")

    # a resume with other detection settings, or without detection, refuses and names them
    with pytest.raises(ValueError, match="no_face: was 'skip', now 'whole'"):
        label_dataset(assets["model"], data, out, config(detect_faces=True, no_face="whole"))
    with pytest.raises(ValueError, match="detect_faces: was True, now None"):
        label_dataset(assets["model"], data, out, config())
    other = "haar" if config_seen["detector"] != "haar" else "dlib"
    with pytest.raises(ValueError, match=f"detector: was '{config_seen['detector']}', now '{other}'"):
        label_dataset(assets["model"], data, out, config(detect_faces=True, detector=other))

    # --no-face whole labels the face-free image whole (its box: the whole image); error stops, naming it
    whole = label_dataset(assets["model"], data, tmp_path / "whole", config(detect_faces=True, no_face="whole"))
    assert whole["no_face_count"] == 0 and whole["images"] == 3
    empty = [row for row in load_labels(tmp_path / "whole").to_pylist() if row["image_id"] == "images/empty.png"]
    assert empty[0]["face_box"] == [0.0, 0.0, 240.0, 200.0]
    with pytest.raises(ValueError, match="empty.png: no face found by the"):
        label_dataset(assets["model"], data, tmp_path / "error", config(detect_faces=True, no_face="error"))
    assert main([*argv[:3], str(tmp_path / "x"), "--detector", "haar"]) == 1  # --detector needs --detect-faces


def test_detect_faces_keeps_annotated_boxes_as_annotated(assets, tmp_path):
    """Records with an annotated box and landmarks (the synthetic sample, AffectNet-like) are not detected:
    the same soft labels as without --detect-faces, and the annotated box kept."""
    out = tmp_path / "annotated"
    label_dataset(assets["model"], assets["sample"], out, config(detect_faces=True))
    detected, reference = load_labels(out), load_labels(assets["reference"])
    assert detected.column("soft_label").to_pylist() == reference.column("soft_label").to_pylist()
    assert detected.column("face_box").to_pylist() == reference.column("face_box").to_pylist()
    assert all(box is not None for box in detected.column("face_box").to_pylist())


def test_labeling_restores_torch_thread_count(assets, tmp_path):
    import torch

    before = torch.get_num_threads()
    label_dataset(assets["model"], assets["sample"], tmp_path / "run", config())  # num_threads=1 for the run
    assert torch.get_num_threads() == before and not torch.backends.cudnn.benchmark


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
