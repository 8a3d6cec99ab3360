"""``affectnetplus demo``: the whole chain on a small synthetic sample."""

from __future__ import annotations

import json

import pytest

from affectnetplus_hf.demo import STAGES, run_demo

pytestmark = pytest.mark.slow  # runs the whole pipeline

# the real demo uses the sample's and tiny preset's defaults; here everything is shrunk to seconds
SMALL = dict(n_train=48, n_val=16, n_mas=200, progress=False,
             train_overrides={"ebc_epochs": 1, "au_epochs": 1, "epochs": 1, "image_size": 32})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(out, **SMALL)


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
    for needed in ("| softlabeler |", "Tables 8–9", "Table 10", "Soft labels against the synthetic ground truth",
                   "![soft-label examples](figures/soft_label_examples.png)", "`load_dataset` rows per config"):
        assert needed in report, needed
    assert set(summary["soft_label_quality"]) == {"soft_labels", "calibrated_soft_labels", "one_hot_hard_labels"}
    assert json.loads((out / "demo_summary.json").read_text())["load_dataset_rows"] == rows


def test_demo_resumes_without_redoing_finished_stages(demo):
    out, first = demo
    kept = [out / "softlabeler" / "model.safetensors", out / "baselines" / "hard_fer_all" / "model.safetensors",
            out / "dataset" / "README.md"]
    before = [p.stat().st_mtime_ns for p in kept]
    summary = run_demo(out, **SMALL)
    assert [p.stat().st_mtime_ns for p in kept] == before
    # kept stages report the time they took when they ran, not a re-run
    assert summary["timings_s"]["softlabeler"] == first["timings_s"]["softlabeler"]


def test_demo_rejects_unknown_stage(tmp_path):
    with pytest.raises(ValueError, match="unknown demo stages"):
        run_demo(tmp_path, stages=("sample", "magic"))
