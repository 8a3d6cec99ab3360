"""``affectnetplus demo``: the whole chain on a small synthetic sample."""

from __future__ import annotations

import json
import os

import pytest

from affectnetplus_hf import cli
from affectnetplus_hf.demo import STAGES, _done_dataset, _done_sample, demo_identity, run_demo
from affectnetplus_hf.run_folder import MARKER_FILE, FolderLock, Marker, RunFolderError

# the tests that use the ``demo`` fixture run the whole pipeline (slow); the others run no stage

# the real demo uses the sample's and tiny preset's defaults; here everything is shrunk to seconds
SMALL = dict(
    n_train=48,
    n_val=16,
    n_mas=200,
    progress=False,
    train_overrides={"ebc_epochs": 1, "au_epochs": 1, "epochs": 1, "image_size": 32},
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(out, **SMALL)


@pytest.mark.slow
def test_demo_leaves_dataset_and_report(demo):
    from datasets import load_dataset

    out, summary = demo
    for stage in STAGES:
        assert (out / stage).is_dir(), stage
    assert set(summary["timings_s"]) == set(STAGES) | {"total"}
    rows = summary["load_dataset_rows"]
    assert rows["default"] == {"train": 48, "validation": 16}
    assert sum(n for config in ("easy", "challenging", "difficult") for n in rows.get(config, {}).values()) == 64
    easy = load_dataset(str(out / "dataset"), "easy", split="train")
    assert set(easy["subset"]) == {0} and len(easy[0]["soft_label"]) == 8
    report = (out / "report" / "report.md").read_text()
    assert report.startswith("# AffectNet+ demo on the embedded synthetic sample")
    for needed in (
        "| softlabeler |",
        "Tables 8–9",
        "Table 10",
        "Soft labels against the synthetic ground truth",
        "![soft-label examples](figures/soft_label_examples.png)",
        "`load_dataset` rows per config",
    ):
        assert needed in report, needed
    assert set(summary["soft_label_quality"]) == {"soft_labels", "calibrated_soft_labels", "one_hot_hard_labels"}
    assert json.loads((out / "demo_summary.json").read_text())["load_dataset_rows"] == rows
    marker = Marker.read(out)  # the demo folder and each stage's own folder are marked complete
    assert (marker.kind, marker.complete) == ("demo", True)
    assert marker.identity == demo_identity(0, 48, 16, 200, SMALL["train_overrides"])
    assert Marker.read(out / "sample").kind == "sample" and _done_sample(out / "sample")


@pytest.mark.slow
def test_demo_resumes_without_redoing_finished_stages(demo):
    out, first = demo
    kept = [
        out / "softlabeler" / "model.safetensors",
        out / "baselines" / "hard_fer_all" / "model.safetensors",
        out / "dataset" / "README.md",
    ]
    before = [p.stat().st_mtime_ns for p in kept]
    summary = run_demo(out, **SMALL)
    assert [p.stat().st_mtime_ns for p in kept] == before
    # kept stages report the time they took when they ran, not a re-run
    assert summary["timings_s"]["softlabeler"] == first["timings_s"]["softlabeler"]
    assert Marker.read(out).complete
    with pytest.raises(RunFolderError, match=r"seed: was 0, now 5"):  # no stage is redone with another seed
        run_demo(out, **{**SMALL, "seed": 5})
    assert [p.stat().st_mtime_ns for p in kept] == before


def test_demo_rejects_unknown_stage(tmp_path):
    with pytest.raises(ValueError, match="unknown demo stages"):
        run_demo(tmp_path, stages=("sample", "magic"))


def test_demo_refuses_a_folder_in_use(tmp_path):
    out = tmp_path / "out"
    with FolderLock(out):  # another demo holds OUT_DIR
        with pytest.raises(RunFolderError, match=r"out is in use by process \d+ \(started "):
            run_demo(out, stages=(), progress=False)
        with pytest.raises(RunFolderError, match="is in use by process"):
            run_demo(out, stages=(), progress=False, overwrite=True)
    assert not out.exists()
    run_demo(out, stages=(), progress=False)  # released
    assert Marker.read(out).kind == "demo"


def test_demo_rerun_with_other_settings_refuses_naming_them(tmp_path, caplog):
    out = tmp_path / "out"
    run_demo(out, stages=(), progress=False)
    (out / "sample").mkdir()
    (out / "sample" / "kept.txt").write_text("stage output")
    with pytest.raises(RunFolderError, match=r"other settings \(seed: was 0, now 5\).*--overwrite"):
        run_demo(out, seed=5, stages=(), progress=False)
    with pytest.raises(
        RunFolderError, match=r"n_mas: was None, now 300; train_overrides: was \{\}, now \{'epochs': 1\}"
    ):
        run_demo(out, n_mas=300, train_overrides={"epochs": 1}, stages=(), progress=False)
    assert (out / "sample" / "kept.txt").is_file() and Marker.read(out).identity["seed"] == 0
    caplog.clear()
    assert cli.main(["demo", str(out), "--seed", "5", "--no-progress"]) == 1  # refused before any stage
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "seed: was 0, now 5" in errors[0] and "--overwrite" in errors[0]
    run_demo(out, stages=(), progress=False)  # the same settings resume
    assert (out / "sample" / "kept.txt").is_file()
    run_demo(out, seed=5, stages=(), progress=False, overwrite=True)  # ours: emptied and started over
    assert not (out / "sample").exists() and Marker.read(out).identity["seed"] == 5


def test_demo_overwrite_needs_a_demo_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match=r"not empty and was not written by `affectnetplus demo`"):
            run_demo(mine, overwrite=overwrite, stages=(), progress=False)
    assert sorted(os.listdir(mine)) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    run_demo(empty, overwrite=True, stages=(), progress=False)  # an empty folder is fine
    (empty / "sample").mkdir()
    run_demo(empty, overwrite=True, stages=(), progress=False)  # a demo folder is started over
    assert not (empty / "sample").exists() and (empty / "demo_summary.json").is_file()
    interrupted = tmp_path / "interrupted"  # killed before demo_summary.json: the marker says it is ours
    run_demo(interrupted, stages=(), progress=False)
    (interrupted / "demo_summary.json").unlink()
    (interrupted / "sample").mkdir()
    assert not Marker.read(interrupted).complete  # a demo of no stage is not a finished demo
    run_demo(interrupted, overwrite=True, stages=(), progress=False)
    assert not (interrupted / "sample").exists()


def test_demo_folder_of_an_earlier_version_is_replaced_only_with_overwrite(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / ".affectnetplus-demo").write_text('{"format": "affectnetplus-demo"}')
    (old / "sample").mkdir()
    with pytest.raises(RunFolderError, match=r"format version: was 0, now 1"):
        run_demo(old, stages=(), progress=False)
    assert (old / "sample").is_dir()
    assert (old / ".affectnetplus-demo").exists()  # a refused run changes nothing
    run_demo(old, overwrite=True, stages=(), progress=False)
    assert sorted(os.listdir(old)) == [MARKER_FILE, "demo_summary.json"]
    summary_only = tmp_path / "summary_only"  # a file of that name alone does not make a folder the demo's
    summary_only.mkdir()
    (summary_only / "demo_summary.json").write_text("{}")
    with pytest.raises(RunFolderError, match="not written by `affectnetplus demo`"):
        run_demo(summary_only, overwrite=True, stages=(), progress=False)


def test_stage_done_checks_read_the_markers(tmp_path):
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "sample_info.json").write_text("{}")
    assert not _done_sample(sample)  # files alone do not make a finished sample
    Marker("sample", {}, complete=False).write(sample)
    assert not _done_sample(sample)
    Marker("sample", {}, complete=True).write(sample)
    assert _done_sample(sample) and not _done_sample(tmp_path / "absent")
    Marker("dataset", {}, complete=True).write(sample)
    assert not _done_sample(sample)  # another kind's folder
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "README.md").write_text("card")
    (dataset / "statistics.json").write_text("{}")
    assert not _done_dataset(dataset)
    Marker("dataset", {}, complete=True).write(dataset)
    assert _done_dataset(dataset)
    (dataset / MARKER_FILE).write_text("not json")
    assert not _done_dataset(dataset)  # left to build_dataset to report
