"""The whole AffectNet+ pipeline on the embedded synthetic sample (``affectnetplus demo OUT_DIR``).

Stages, each writing a folder of ``OUT_DIR`` that the next one reads:

1. ``sample/`` — the synthetic FER sample (AffectNet CSV layout + multi-annotated part + ground truth);
2. ``softlabeler/`` — the tiny soft-labeler (8 EBC + 8 AU members, confidence scores, model card);
3. ``labels/`` — resumable sharded labeling of every sample image;
4. ``dataset/`` — the AffectNet+ dataset folder (Parquet + card), checked with ``load_dataset`` per subset;
5. ``baselines/`` — tiny Hard-FER / Soft-FER per subset and on all, trained through ``load_dataset``;
6. ``report/`` — ``report.md`` with the tables and figures (evaluation, ground-truth comparison).

``OUT_DIR`` is a run folder of kind ``"demo"`` (:func:`run_demo`): a stage whose output is already complete is
kept, so an interrupted demo resumes where it stopped. ``demo_summary.json`` holds the timings and key numbers
of the last run (:class:`DemoSummary`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.run_folder import Marker, RunFolder, RunFolderError

logger = logging.getLogger(__name__)

#: The demo's soft-labeler: the paper's two families (Eq. 14) plus the vote-distribution family, with the
#: calibrated soft label fitted on a held-out tenth of the multi-annotated part
#: (``docs/method.md#distribution-family``, ``#calibration``).
DEMO_SOFTLABELER: dict[str, object] = {"families": ["ebc", "au", "dist"], "calibration_split": "holdout"}

STAGES: tuple[str, ...] = ("sample", "softlabeler", "labels", "dataset", "baselines", "report")


def _marked_complete(path: Path, kind: str) -> bool:
    """Whether a stage's folder is finished: its run-folder marker (written by the stage's own command) is of
    ``kind`` and complete. An unreadable marker is left to the stage's command to report."""
    try:
        marker = Marker.read(path) if path.is_dir() else None
    except RunFolderError:
        return False
    return marker is not None and marker.kind == kind and marker.complete


def _done_sample(path: Path) -> bool:
    return _marked_complete(path, "sample")  # affectnetplus_hf.synthetic.write_sample


def _done_softlabeler(path: Path) -> bool:
    return _marked_complete(path, "soft-labeler")  # affectnetplus_hf.training.softlabeler.train_soft_labeler


def _done_dataset(path: Path) -> bool:
    return _marked_complete(path, "dataset")  # affectnetplus_hf.dataset.build_dataset


def demo_identity(
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_mas: int | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a demo folder's marker records: the settings that change the results (not progress or stages)."""
    return {
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "n_mas": n_mas,
        "train_overrides": dict(train_overrides or {}),
    }


def check_subsets_load(dataset_dir: Path) -> dict[str, dict[str, int]]:
    """``load_dataset(dataset_dir, config)`` for every declared config: rows per split (what a user sees)."""
    from datasets import get_dataset_config_names, load_dataset

    counts: dict[str, dict[str, int]] = {}
    for config_name in get_dataset_config_names(str(dataset_dir)):
        loaded = load_dataset(str(dataset_dir), config_name)
        counts[config_name] = {split: loaded[split].num_rows for split in loaded}
    return counts


def run_demo(
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_mas: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stages: tuple[str, ...] = STAGES,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline (module docstring) into ``output_dir``; returns the stage timings and key numbers.

    ``output_dir`` is locked for the run (a second demo on it stops at once). It must be new, empty or a
    demo folder (its run-folder marker); a demo folder with other settings (:func:`demo_identity`) is
    refused naming each differing field unless ``overwrite``, which empties it first. A folder with other
    files and no demo marker is never emptied (:class:`~affectnetplus_hf.run_folder.RunFolderError`, a
    ``ValueError``). ``n_train``/``n_val``/``n_mas`` shrink the sample and ``train_overrides``
    (``TrainConfig`` fields, e.g. ``{"ebc_epochs": 1}``) the tiny preset — for tests; the defaults are the
    sample's and preset's own.
    """
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown demo stages {unknown}; expected some of {STAGES}")
    out = Path(output_dir)
    identity = demo_identity(seed, n_train, n_val, n_mas, train_overrides)
    with RunFolder(out, "demo", identity) as folder:  # locked until the report is written
        if folder.start(overwrite=overwrite) == "replace":
            logger.info("demo: overwrite: emptying %s", out)
            folder.clear()
        folder.mark(complete=False)
        summary = _run_stages(
            out,
            seed=seed,
            n_train=n_train,
            n_val=n_val,
            n_mas=n_mas,
            progress=progress,
            stages=stages,
            train_overrides=train_overrides,
        )
        folder.mark(complete=set(STAGES) <= set(stages))
    return summary


@dataclass
class DemoSummary:
    """``demo_summary.json``: the stage timings and key numbers of the last run (a number is absent when its
    stage did not run)."""

    output_dir: str
    timings_s: dict[str, float] = field(default_factory=dict)
    labels: dict[str, Any] | None = None
    load_dataset_rows: dict[str, dict[str, int]] | None = None
    soft_label_quality: dict[str, float] | None = None
    baselines_accuracy: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"output_dir": self.output_dir, "timings_s": self.timings_s}
        for key in ("labels", "load_dataset_rows", "soft_label_quality", "baselines_accuracy"):
            if getattr(self, key) is not None:
                summary[key] = getattr(self, key)
        return summary


@dataclass
class _StageRunner:
    """Runs the selected stages in turn, keeping a stage whose output is complete, and times each."""

    paths: dict[str, Path]
    selected: tuple[str, ...]
    timings: dict[str, float]
    #: the timings of the previous run (``demo_summary.json``), reported for the stages it finished
    earlier: dict[str, float]

    def run(self, name: str, done: bool, work: Callable[[], Any]) -> None:
        if name not in self.selected:
            return
        t0 = time.perf_counter()
        if done:
            logger.info("demo: %s already complete in %s; kept", name, self.paths[name])
            if name in self.earlier:  # report the time it took when it ran
                self.timings[name] = self.earlier[name]
                return
        else:
            logger.info("demo: %s ...", name)
            work()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        logger.info("demo: %s done in %.1f s", name, self.timings[name])


def _run_stages(
    out: Path,
    *,
    seed: int,
    n_train: int | None,
    n_val: int | None,
    n_mas: int | None,
    progress: bool,
    stages: tuple[str, ...],
    train_overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """The stages of :func:`run_demo` into ``out`` (locked and marked by the caller)."""
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.synthetic import write_sample

    paths = {name: out / name for name in STAGES}
    summary = DemoSummary(str(out))
    previous_summary = out / "demo_summary.json"
    earlier = json.loads(previous_summary.read_text()).get("timings_s", {}) if previous_summary.is_file() else {}
    runner = _StageRunner(paths, stages, summary.timings_s, earlier)
    started = time.perf_counter()
    overrides = dict(train_overrides or {})
    sample_kwargs = {k: v for k, v in (("n_train", n_train), ("n_val", n_val), ("n_mas", n_mas)) if v is not None}
    runner.run(
        "sample",
        _done_sample(paths["sample"]),
        lambda: write_sample(
            paths["sample"], seed=seed, workers=min(2, os.cpu_count() or 1), progress=progress, **sample_kwargs
        ),
    )
    runner.run(
        "softlabeler",
        _done_softlabeler(paths["softlabeler"]),
        lambda: _train_softlabeler(paths, seed, progress, overrides),
    )
    runner.run("labels", False, lambda: _label_sample(paths, progress, summary))
    runner.run(
        "dataset",
        _done_dataset(paths["dataset"]),
        lambda: build_dataset(
            paths["sample"],
            paths["labels"],
            paths["dataset"],
            metadata="synthetic",
            overwrite=True,
            pretty_name="AffectNet+ demo (synthetic sample)",
            progress=progress,
        ),
    )
    if "dataset" in stages:
        summary.load_dataset_rows = check_subsets_load(paths["dataset"])
        logger.info("demo: load_dataset rows per config/split: %s", summary.load_dataset_rows)
    runner.run(
        "baselines",
        False,  # finished baseline models are kept by train_baselines
        lambda: _train_baselines(paths, seed, progress, overrides),
    )
    runner.run("report", False, lambda: _write_report(out, paths, summary, started, progress))
    summary.timings_s["total"] = round(time.perf_counter() - started, 1)
    write_text_atomic(out / "demo_summary.json", json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    logger.info("demo finished in %.1f s; report: %s", summary.timings_s["total"], paths["report"] / "report.md")
    return summary.to_dict()


def _train_softlabeler(paths: dict[str, Path], seed: int, progress: bool, overrides: dict[str, Any]) -> None:
    """The tiny soft-labeler of :data:`DEMO_SOFTLABELER`, trained on the sample."""
    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training.softlabeler import train_soft_labeler

    train_soft_labeler(
        TrainConfig(
            data=str(paths["sample"]),
            output_dir=str(paths["softlabeler"]),
            preset="tiny",
            seed=seed,
            progress=progress,
            log_with="none",
            **{**DEMO_SOFTLABELER, **overrides},
        )
    )


def _label_sample(paths: dict[str, Path], progress: bool, summary: DemoSummary) -> None:
    """Label every sample image (label_dataset resumes by itself: finished shards are kept)."""
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    summary.labels = label_dataset(
        paths["softlabeler"], paths["sample"], paths["labels"], LabelingConfig(shard_size=256, progress=progress)
    )


def _train_baselines(paths: dict[str, Path], seed: int, progress: bool, overrides: dict[str, Any]) -> None:
    from affectnetplus_hf.baselines import train_baselines
    from affectnetplus_hf.training import TrainConfig

    train_baselines(
        paths["dataset"],
        paths["baselines"],
        TrainConfig(preset="tiny", seed=seed, progress=progress, log_with="none", **overrides),
    )


def _write_report(out: Path, paths: dict[str, Path], summary: DemoSummary, started: float, progress: bool) -> None:
    """Evaluate the baselines and the soft labels; ``report.md`` with the demo's preamble on top."""
    from affectnetplus_hf.baselines import evaluate_baselines, evaluate_soft_labels

    results = evaluate_baselines(paths["dataset"], paths["baselines"], paths["report"], progress=progress)
    quality = evaluate_soft_labels(paths["labels"], paths["sample"], paths["report"], reference="truth")
    summary.soft_label_quality = {
        k: quality[k]["w_mae"]
        for k in ("soft_labels", "calibrated_soft_labels", "one_hot_hard_labels")
        if k in quality
    }
    summary.baselines_accuracy = {
        name: m["hard"]["all"]["accuracy"] for name, m in results["models"].items() if "all" in m["hard"]
    }
    summary.timings_s["total"] = round(time.perf_counter() - started, 1)
    report_path = paths["report"] / "report.md"
    write_text_atomic(
        report_path,
        demo_preamble(out, summary.timings_s, summary.to_dict())
        + report_path.read_text(encoding="utf-8")
        + "\n"
        + quality["markdown"].replace("# ", "## ", 1),
    )


def demo_preamble(out: Path, timings: dict[str, float], summary: dict[str, Any]) -> str:
    """The demo's own section at the top of ``report.md``: what each folder holds and how long it took."""
    report_dir = out / "report"

    def link(name: str, what: str) -> str:
        return f"- [`{name}`]({Path(os.path.relpath(out / name, report_dir)).as_posix()}) — {what}"

    lines = [
        "# AffectNet+ demo on the embedded synthetic sample",
        "",
        "Every stage of the pipeline ran on this machine; each folder is the input of the next.",
        "",
        link(
            "sample",
            "synthetic FER sample in AffectNet's CSV layout, a multi-annotated part, ground truth "
            "(`sample_grid.png` shows one row per emotion)",
        ),
        link(
            "softlabeler",
            "the tiny soft-labeler (`confidence_scores.md`: per-member test-MAS metrics and CS, "
            "`README.md`: model card); load with `AutoModel.from_pretrained`",
        ),
        link("labels", "sharded, resumable labeling run (`manifest.json`, `summary.json`, Parquet shards)"),
        link("dataset", "the AffectNet+ dataset folder: `load_dataset(path, 'easy')` works offline"),
        link("baselines", "Hard-FER / Soft-FER per subset and on all (`baselines.json`)"),
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [
        f"| {'this run, wall time until the report' if name == 'total' else name} | {seconds:.1f} |"
        for name, seconds in timings.items()
    ]
    rows = summary.get("load_dataset_rows")
    if rows:
        per_config = (
            f"{config}: " + ", ".join(f"{split} {n}" for split, n in splits.items()) for config, splits in rows.items()
        )
        lines += ["", "`load_dataset` rows per config: " + "; ".join(per_config)]
    return "\n".join(lines) + "\n\n"
