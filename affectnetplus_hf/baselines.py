"""Baselines on an exported AffectNet+ dataset and their evaluation (paper Sec. 4.3; ``docs/method.md#baselines``,
``#metrics``).

* :func:`train_baselines` (``affectnetplus baseline``) — Hard-FER and Soft-FER models (and, on a dataset with a
  ``votes`` column, FER+'s four training modes, :data:`FERPLUS_KINDS`) trained on each subset and on all images
  of the ``train`` split, read through ``load_dataset``, into ``OUT/{name}/`` (:func:`model_name`), listed in
  ``OUT/baselines.json``. ``OUT`` is a resumable run folder (:mod:`affectnetplus_hf.run_folder`, kind
  ``baselines``; :func:`baselines_identity`).
* :func:`evaluate_baselines` (``affectnetplus evaluate``) — every baseline on the ``validation`` split, scored
  per subset (hard-label metrics and the ``evaluate`` modules W-MAE / W-FR / W-AUC, Tables 8–11, Fig. 5),
  with soft-label examples and ``OUT/report.md``.
* :func:`evaluate_soft_labels` — a labeling run's soft labels against reference soft labels: the sample's
  ground truth or a multi-annotated source's vote distributions (FER+ test).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.fileio import write_json_atomic, write_text_atomic
from affectnetplus_hf.metrics.functional import DEFAULT_EPSILON, crowd_agreement
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.reports.evaluation import (
    baselines_report,
    ground_truth_markdown,
    soft_label_quality_markdown,
)
from affectnetplus_hf.reports.model_card import KIND_DESCRIPTIONS
from affectnetplus_hf.sources.ferplus import BASELINE_KINDS, FERPLUS_KINDS, VOTE_COLUMNS
from affectnetplus_hf.votes import vote_distributions

logger = logging.getLogger(__name__)

#: What ``affectnetplus baseline`` trains without ``--kinds``: the paper's Hard-FER and Soft-FER.
DEFAULT_KINDS: tuple[str, ...] = ("hard", "soft")
#: Training sets of the baselines: every image, then each subset (paper Tables 8–10 rows).
TRAINING_SETS: tuple[str, ...] = ("all",) + SUBSETS
#: The list of trained models (data; the folder's ownership is its run-folder marker).
MANIFEST = "baselines.json"
#: Format version of a baselines folder (its run-folder marker).
BASELINES_VERSION = 1
#: Fields of a dataset's build identity that decide the rows a baseline trains on (the card title, the
#: figures, the metadata columns and the Parquet file size do not).
DATASET_DATA_FIELDS: tuple[str, ...] = (
    "labels_model",
    "labels_records",
    "labels_shards",
    "source_kind",
    "keep_unlabeled",
    "skip_bad",
)


def model_name(kind: str, trained_on: str) -> str:
    """``hard_fer_easy``, ``soft_fer_all``; FER+ modes ``ferplus_majority_all``,
    ``ferplus_multi_target_easy``, …"""
    if kind in FERPLUS_KINDS:
        return f"ferplus_{kind}_{trained_on}"
    return f"{kind}_fer_{trained_on}"


# --------------------------------------------------------------------------------------------------
# reading the exported dataset
# --------------------------------------------------------------------------------------------------


@dataclass
class DatasetSplit:
    """One split of an exported AffectNet+ dataset as records + label arrays (rows without a hard label
    or subset — AffectNet codes 8–10 kept with ``--keep-unlabeled`` — are left out and counted).

    ``votes`` is ``(N, 10)`` int64 annotator counts in FER+ column order when the dataset has a ``votes``
    column (rows whose cell is null hold -1), else ``None``."""

    records: list[FaceRecord]
    hard_labels: np.ndarray
    soft_labels: np.ndarray
    subsets: np.ndarray
    true_soft_labels: np.ndarray | None
    left_out: int
    votes: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> DatasetSplit:
        """The rows ``rows`` (index array) of this split."""
        return DatasetSplit(
            [self.records[i] for i in rows],
            self.hard_labels[rows],
            self.soft_labels[rows],
            self.subsets[rows],
            None if self.true_soft_labels is None else self.true_soft_labels[rows],
            self.left_out,
            None if self.votes is None else self.votes[rows],
        )


@dataclass
class _SplitRows:
    """The rows of a dataset split gathered into a :class:`DatasetSplit` (:func:`load_split`)."""

    split: str
    subset_names: list[str]
    has_truth: bool
    has_votes: bool
    records: list[FaceRecord] = field(default_factory=list)
    hard: list[int] = field(default_factory=list)
    soft: list[list[float]] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)
    truth: list[list[float] | None] = field(default_factory=list)
    votes: list[list[int]] = field(default_factory=list)
    left_out: int = 0

    def columns(self) -> list[str]:
        """The dataset columns read."""
        columns = ["image", "image_id", "face_box", "expression", "soft_label", "subset"]
        if self.has_truth:
            columns.append("soft_label_true")
        if self.has_votes:
            columns.append("votes")
        return columns

    def add(self, row: dict[str, Any]) -> None:
        """One dataset row; a row without a hard label, subset or soft label is only counted."""
        if row["expression"] is None or row["subset"] is None or row["soft_label"] is None:
            self.left_out += 1
            return
        image = row["image"]
        self.records.append(
            FaceRecord(
                image_id=row["image_id"],
                image_bytes=image["bytes"],
                image_path=None if image["bytes"] is not None else image["path"],
                face_box=tuple(row["face_box"]) if row["face_box"] is not None else None,
                hard_label=int(row["expression"]),
                split=self.split,
                source="affectnetplus",
            )
        )
        self.hard.append(int(row["expression"]))
        self.soft.append(row["soft_label"])
        self.subsets.append(self.subset_names[row["subset"]])
        if self.has_truth:
            self.truth.append(row["soft_label_true"])
        if self.has_votes:
            self.votes.append(row["votes"] if row["votes"] is not None else [-1] * len(VOTE_COLUMNS))

    def to_split(self) -> DatasetSplit:
        true_soft = None
        if self.has_truth and self.truth and all(t is not None for t in self.truth):
            true_soft = np.asarray(self.truth, dtype=np.float32)
        votes = np.asarray(self.votes, dtype=np.int64).reshape(-1, len(VOTE_COLUMNS)) if self.has_votes else None
        return DatasetSplit(
            self.records,
            np.asarray(self.hard, dtype=np.int64),
            np.asarray(self.soft, dtype=np.float32).reshape(-1, NUM_EMOTIONS),
            np.asarray(self.subsets, dtype=str),
            true_soft,
            self.left_out,
            votes,
        )


def load_split(dataset_dir: str | os.PathLike, config_name: str, split: str) -> DatasetSplit | None:
    """``load_dataset(dataset_dir, config_name, split=split)`` as records; ``None`` if the config has no
    such split (empty subsets are not declared in the card)."""
    from datasets import (
        Image,
        get_dataset_config_names,
        get_dataset_split_names,
        load_dataset,
    )

    from affectnetplus_hf.dataset import check_dataset_dir

    folder = check_dataset_dir(dataset_dir)
    if config_name not in get_dataset_config_names(str(folder)) or split not in get_dataset_split_names(
        str(folder), config_name
    ):
        logger.info("%s: no %s/%s declared in the card", folder, config_name, split)
        return None
    table = load_dataset(str(folder), config_name, split=split)
    table = table.cast_column("image", Image(decode=False))
    rows = _SplitRows(
        split,
        table.features["subset"].names,
        has_truth="soft_label_true" in table.column_names,
        has_votes="votes" in table.column_names,
    )
    for row in table.select_columns(rows.columns()):
        rows.add(row)
    if rows.left_out:
        logger.warning(
            "%s %s/%s: %d rows without a hard label, subset or soft label left out",
            folder,
            config_name,
            split,
            rows.left_out,
        )
    _check_soft_labels(folder, split, [r.image_id for r in rows.records], rows.soft)
    return rows.to_split()


def _check_soft_labels(folder: Path, split: str, image_ids: Sequence[str], soft: Sequence) -> None:
    """``ValueError`` (one line) naming the data file and the image of the first soft label of a dataset split
    that is not 8 finite values in [0, 1] (``build`` refuses such labels; an older build let them through)."""
    array = np.asarray([[np.nan if v is None else v for v in cell] for cell in soft], dtype=np.float64).reshape(
        -1, NUM_EMOTIONS
    )
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.all(np.isfinite(array) & (array >= 0.0) & (array <= 1.0), axis=1))
    if not len(bad):
        return
    import pyarrow.parquet as pq

    image_id = image_ids[int(bad[0])]
    where = os.fspath(folder / "data" / split)
    for path in sorted((folder / "data" / split).glob("*.parquet")):
        if image_id in pq.read_table(path, columns=["image_id"]).column("image_id").to_pylist():
            where = os.fspath(path)
            break
    cell = array[int(bad[0])]
    what = "NaN" if np.isnan(cell).any() else "an infinite value" if np.isinf(cell).any() else "a value outside [0, 1]"
    more = f" (and {len(bad) - 1} more row(s) of {split})" if len(bad) > 1 else ""
    raise ValueError(
        f"{where}: soft_label of image {image_id!r} holds {what}{more}; soft labels must be finite and "
        "in [0, 1]: build the dataset again from its labels (`affectnetplus build --overwrite`)"
    )


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def _write_json(path: Path, payload: Any) -> None:
    from accelerate import PartialState

    if PartialState().is_main_process:  # `accelerate launch`: one writer
        write_json_atomic(path, payload)


def _finished(model_dir: Path) -> bool:
    return (model_dir / "model.safetensors").is_file() and (model_dir / "training_summary.json").is_file()


def baselines_identity(dataset_dir: str | os.PathLike, split: str, config) -> dict[str, Any]:
    """The identity of a baselines run (its marker's): the dataset folder, the rows it holds (the data fields
    of its build marker, :data:`DATASET_DATA_FIELDS`; ``None`` for a folder built before the marker), the
    split, and each :class:`~affectnetplus_hf.training.TrainConfig` field that changes results
    (:meth:`~affectnetplus_hf.training.config.TrainConfig.identity`, less ``data``/``kind``, set per model)."""
    from affectnetplus_hf.run_folder import Marker, RunFolderError, records_fingerprint

    try:
        marker = Marker.read(Path(dataset_dir))
    except RunFolderError:
        marker = None
    built = None
    if marker is not None and marker.kind == "dataset":
        data = {key: marker.identity.get(key) for key in DATASET_DATA_FIELDS}
        built = records_fingerprint(sorted(data.items()))
    training = {key: value for key, value in config.identity().items() if key not in ("data", "kind")}
    return {**training, "dataset_dir": str(Path(dataset_dir).resolve()), "dataset build": built, "split": split}


@dataclass
class BaselinesManifest:
    """``OUT/baselines.json``: the models trained (``{"name", "kind", "trained_on", "path", "n_train",
    "seconds"}``, plus ``left_out`` for the FER+ kinds and ``reused`` for a model kept from an earlier run)
    and the training sets (or kinds) skipped for lack of images."""

    dataset_dir: str
    split: str
    preset: str
    models: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float | None = None

    @classmethod
    def resume(
        cls, path: Path, dataset_dir, split: str, preset: str, kinds: Sequence[str], training_sets: Sequence[str]
    ) -> BaselinesManifest:
        """A new manifest; on a resume (``path`` exists), with the models and skips of the earlier run that
        this run does not redo (a run on other kinds/sets adds to them)."""
        manifest = cls(str(Path(dataset_dir).resolve()), split, preset)
        if path.is_file():
            earlier = json.loads(path.read_text(encoding="utf-8"))
            manifest.models = [
                m for m in earlier.get("models", []) if m["kind"] not in kinds or m["trained_on"] not in training_sets
            ]
            manifest.skipped = [s for s in earlier.get("skipped", []) if s["trained_on"] not in training_sets]
        return manifest

    def sort_models(self) -> None:
        """Models in :data:`TRAINING_SETS` order, then :data:`BASELINE_KINDS` order."""
        order = {(k, t): n for n, (t, k) in enumerate((t, k) for t in TRAINING_SETS for k in BASELINE_KINDS)}
        self.models.sort(key=lambda m: order[(m["kind"], m["trained_on"])])

    def to_dict(self) -> dict[str, Any]:
        manifest = {
            "dataset_dir": self.dataset_dir,
            "split": self.split,
            "preset": self.preset,
            "models": self.models,
            "skipped": self.skipped,
        }
        if self.seconds is not None:
            manifest["seconds"] = self.seconds
        return manifest


def train_baselines(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config=None,
    kinds: Sequence[str] = DEFAULT_KINDS,
    training_sets: Sequence[str] = TRAINING_SETS,
    split: str = "train",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the baselines of ``kinds`` on each of ``training_sets`` (``all`` and the subsets) of ``dataset_dir``.

    ``config`` is a :class:`affectnetplus_hf.training.TrainConfig` (preset, backbone, epochs, …; its
    ``data``/``output_dir``/``kind`` are set here). Hard-FER learns the hard labels (class re-weighting
    per ``config.class_balance``), Soft-FER the AffectNet+ soft labels (BCE) — paper Sec. 4.3. The FER+
    kinds (``majority``, ``probability``, ``crossentropy``, ``multi_target``; Barsoum et al. 2016) learn
    targets built from each image's ``votes`` with an 8-way softmax and no class weights; the images FER+
    discards in that mode (and rows without votes) are left out, counted in the model's manifest entry
    (``left_out``) and logged. A training set without images in ``split`` (or, for a FER+ kind, without
    an image FER+ keeps) is skipped and listed. Returns (and writes) the manifest ``OUT/baselines.json``.

    ``output_dir`` is a run folder (:func:`baselines_identity`), locked for the whole run (by the main
    process under ``accelerate launch``): a rerun with the same identity keeps the finished models and adds
    the other kinds/sets to ``baselines.json``; another identity is refused naming each differing field,
    unless ``overwrite``, which empties the folder (ours: it holds the marker) and retrains. A folder
    holding other files without the marker is refused and left as it is, whatever ``overwrite``.

    Raises:
        ValueError: a FER+ kind on a dataset without a ``votes`` column (one line naming the dataset);
            ``output_dir`` being ``dataset_dir``, a folder above it or inside it;
            :class:`~affectnetplus_hf.run_folder.RunFolderError` (a ``ValueError``) for the refusals above
            and for a folder another run holds.
    """
    from accelerate import PartialState

    from affectnetplus_hf.run_folder import RunFolder
    from affectnetplus_hf.training import TrainConfig

    _check_choices(kinds, training_sets)
    config = config or TrainConfig(preset="tiny")
    output = _checked_output_dir(output_dir, dataset_dir)
    state = PartialState()
    folder = RunFolder(output, "baselines", baselines_identity(dataset_dir, split, config), version=BASELINES_VERSION)
    with folder if state.is_main_process else contextlib.nullcontext():  # `accelerate launch`: the main process locks
        if state.is_main_process:
            _start_run_folder(folder, overwrite)
        state.wait_for_everyone()
        manifest = _train_all(dataset_dir, output, config, kinds, training_sets, split)
        state.wait_for_everyone()
        if state.is_main_process:
            folder.mark(complete=True)
    return manifest


def _check_choices(kinds: Sequence[str], training_sets: Sequence[str]) -> None:
    for kind in kinds:
        if kind not in BASELINE_KINDS:
            raise ValueError(f"kinds: {kind!r} is not one of {BASELINE_KINDS}")
    for name in training_sets:
        if name not in TRAINING_SETS:
            raise ValueError(f"training_sets: {name!r} is not one of {TRAINING_SETS}")


def _checked_output_dir(output_dir: str | os.PathLike, dataset_dir: str | os.PathLike) -> Path:
    """The absolute baselines folder; ``ValueError`` when it is, holds or lies inside the dataset folder
    (``build --overwrite`` would delete it, ``push`` upload it), ``FileNotFoundError`` for a missing dataset."""
    from affectnetplus_hf.dataset import check_dataset_dir, check_not_inputs

    output = Path(os.path.abspath(os.path.expanduser(os.fspath(output_dir))))
    check_not_inputs(output, {"DATASET_DIR": dataset_dir}, "baselines folder")
    if Path(dataset_dir).resolve() in output.resolve().parents:
        raise ValueError(
            f"baselines folder {os.fspath(output_dir)!r} is inside DATASET_DIR "
            f"{os.fspath(dataset_dir)!r}; write it to another folder"
        )
    check_dataset_dir(dataset_dir)
    return output


def _start_run_folder(folder, overwrite: bool) -> None:
    """Main process: check, empty (``overwrite``) or resume the baselines folder and mark it incomplete."""
    mode = folder.start(overwrite=overwrite)
    if mode == "replace":
        logger.info("baselines: --overwrite: emptying %s and training again", folder.path)
        folder.clear()
    elif mode == "resume":
        logger.info("baselines: resuming in %s (finished models are kept)", folder.path)
    folder.mark(complete=False)


def _train_all(
    dataset_dir, output: Path, config, kinds: Sequence[str], training_sets: Sequence[str], split: str
) -> dict[str, Any]:
    """The training of :func:`train_baselines`, in its checked and locked ``output`` folder."""
    manifest = BaselinesManifest.resume(output / MANIFEST, dataset_dir, split, config.preset, kinds, training_sets)
    needs_votes = [kind for kind in kinds if kind in FERPLUS_KINDS]
    started = time.perf_counter()
    for trained_on in training_sets:
        data = _training_data(dataset_dir, trained_on, split, config, needs_votes, manifest)
        if data is None:
            continue
        for kind in kinds:
            entry = _train_model(data, kind, trained_on, dataset_dir, output, config, manifest)
            if entry is not None:
                manifest.models.append(entry)
                _write_json(output / MANIFEST, manifest.to_dict())
    manifest.seconds = round(time.perf_counter() - started, 1)
    manifest.sort_models()
    _write_json(output / MANIFEST, manifest.to_dict())
    if not manifest.models:
        raise ValueError(f"{dataset_dir}: no training images in split {split!r} for {list(training_sets)}")
    return manifest.to_dict()


def _training_data(
    dataset_dir, trained_on: str, split: str, config, needs_votes: Sequence[str], manifest: BaselinesManifest
) -> DatasetSplit | None:
    """The rows of one training set (at most ``config.max_images``, drawn with ``config.seed``); ``None``
    (listed in ``manifest.skipped``) when it has none."""
    data = load_split(dataset_dir, "default" if trained_on == "all" else trained_on, split)
    if data is None or not data.records:
        manifest.skipped.append({"trained_on": trained_on, "reason": f"no {split} images"})
        logger.warning("baselines: %s has no %s images; skipped", trained_on, split)
        return None
    if needs_votes and data.votes is None:  # before any model is trained
        raise ValueError(
            f"{dataset_dir}: kinds {list(needs_votes)} (FER+ training modes) need each image's annotator votes, "
            "but this dataset has no `votes` column; build it from a multi-annotated source (FER+, a folder of "
            "vote counts) or train --kinds hard soft"
        )
    if config.max_images is not None and len(data.records) > config.max_images:  # reduced runs
        keep = np.sort(np.random.default_rng(config.seed).choice(len(data.records), config.max_images, replace=False))
        data = data.take(keep)
    return data


def _train_model(
    data: DatasetSplit, kind: str, trained_on: str, dataset_dir, output: Path, config, manifest: BaselinesManifest
) -> dict[str, Any] | None:
    """Train (or keep, when finished earlier) one baseline; its manifest entry, or ``None`` when a FER+
    kind keeps no image (listed in ``manifest.skipped``)."""
    name = model_name(kind, trained_on)
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "trained_on": trained_on,
        "path": name,
        "n_train": len(data.records),
    }
    if kind in FERPLUS_KINDS:
        kept = _ferplus_rows(data, kind, name)
        if kept is None:
            manifest.skipped.append(
                {
                    "trained_on": trained_on,
                    "kind": kind,
                    "reason": f"no {manifest.split} image with a FER+ {kind} target",
                }
            )
            logger.warning("baselines: %s has no image with a FER+ %s target; skipped", trained_on, kind)
            return None
        entry.update(kept)
    return {**entry, **_fit_model(data, kind, name, output / name, dataset_dir, config, entry["n_train"])}


def _ferplus_rows(data: DatasetSplit, kind: str, name: str) -> dict[str, Any] | None:
    """``{"n_train", "left_out"}`` of a FER+ kind (the images its rule keeps), ``None`` when it keeps none."""
    from affectnetplus_hf.training.baseline import ferplus_training_targets

    kept = ferplus_training_targets(data.votes, kind)
    if kept.discarded or kept.without_votes:
        logger.warning(
            "baselines: %s leaves out %d of %d images (%d discarded by FER+'s %s rule, %d without votes)",
            name,
            kept.discarded + kept.without_votes,
            len(data.records),
            kept.discarded,
            kind,
            kept.without_votes,
        )
    if not len(kept.rows):
        return None
    return {"n_train": len(kept.rows), "left_out": {"discarded": kept.discarded, "without_votes": kept.without_votes}}


def _fit_model(
    data: DatasetSplit, kind: str, name: str, model_dir: Path, dataset_dir, config, n_train: int
) -> dict[str, Any]:
    """Train one baseline into ``model_dir`` unless it is finished there; ``{"seconds"[, "reused"]}``."""
    from affectnetplus_hf.training.baseline import train_baseline

    if _finished(model_dir):
        logger.info("baselines: %s already trained in %s; kept", name, model_dir)
        return {"seconds": json.loads((model_dir / "training_summary.json").read_text())["seconds"], "reused": True}
    logger.info("baselines: training %s on %d images", name, n_train)
    if kind in FERPLUS_KINDS:  # the votes; train_baseline builds the mode's targets
        targets = data.votes
    else:
        targets = data.hard_labels if kind == "hard" else np.clip(data.soft_labels, 0.0, 1.0)
    # the saved TrainConfig keeps a kind `affectnetplus train baseline` reads: FER+ models are
    # 8-way softmax classifiers ("hard"); their mode is in the manifest, summary and card
    run = train_baseline(
        data.records,
        targets,
        replace(
            config, data=str(dataset_dir), output_dir=str(model_dir), kind=kind if kind in DEFAULT_KINDS else "hard"
        ),
        kind=kind,
    )
    return {"seconds": round(run.seconds, 1)}


def read_manifest(baselines_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(baselines_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `affectnetplus baseline DATASET_DIR {baselines_dir}` first")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------


def predict_records(
    model,
    records: Sequence[FaceRecord],
    batch_size: int = 64,
    device: str = "cpu",
    dtype: str = "auto",
    progress: bool = True,
    cache: dict | None = None,
) -> np.ndarray:
    """``(N, 8)`` probabilities of a baseline (softmax of Hard-FER and the FER+ modes, sigmoids of Soft-FER);
    images decoded once per processor (``cache``)."""
    import torch

    from affectnetplus_hf.models.runner import autocast_context, prepare_for_inference
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    processor = getattr(model, "image_processor", None)
    if processor is not None:
        key = json.dumps(processor.to_dict(), sort_keys=True, default=str)
    else:
        key = str(model.config.image_size)
    if cache is not None and key in cache:
        pixels = cache[key]
    else:
        preprocess = FacePreprocessor(model.config.image_size, processor=processor)
        pixels, _, _ = decode_records(records, preprocess, progress=progress, desc="decoding validation images")
        if cache is not None:
            cache[key] = pixels
    prepare_for_inference(model, device)
    outputs = []
    with torch.inference_mode(), autocast_context(device, dtype):
        for start in range(0, len(pixels), batch_size):
            batch = pixels[start : start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
            outputs.append(model(pixel_values=batch).probs.float().cpu())
    return torch.cat(outputs).numpy()


def _example_indices(data: DatasetSplit, per_subset: int = 3) -> list[int]:
    """A few validation faces of each subset (first of each emotion in turn), deterministic."""
    chosen: list[int] = []
    for subset in SUBSETS:
        emotions_shown: set[int] = set()
        for row in np.flatnonzero(data.subsets == subset):
            if len(emotions_shown) == per_subset:
                break
            if int(data.hard_labels[row]) not in emotions_shown:
                emotions_shown.add(int(data.hard_labels[row]))
                chosen.append(int(row))
    return chosen


def _face_image(record: FaceRecord, size: int = 96):
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    array = AffectNetPlusImageProcessor(size=size, do_normalize=False).process_one(record)
    return np.clip(array.transpose(1, 2, 0), 0.0, 1.0)


def evaluate_baselines(
    dataset_dir: str | os.PathLike,
    baselines_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    split: str = "validation",
    epsilon: float | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    dtype: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Score every baseline of ``baselines_dir`` on ``split`` of ``dataset_dir``; write tables, figures and
    ``OUT/report.md`` (see the module docstring). Returns the evaluation results."""
    from affectnetplus_hf.evaluation import EvaluationData, evaluate_predictions

    epsilon = DEFAULT_EPSILON if epsilon is None else float(epsilon)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(baselines_dir)
    data = load_split(dataset_dir, "default", split)
    if data is None or not data.records:
        raise ValueError(f"{dataset_dir}: no {split!r} images with a hard label to evaluate on")
    predictions = _predict_baselines(
        manifest, baselines_dir, data, split, batch_size=batch_size, device=device, dtype=dtype, progress=progress
    )
    evaluation = EvaluationData(
        data.hard_labels,
        data.soft_labels,
        data.subsets,
        data.true_soft_labels,
        image_ids=[r.image_id for r in data.records],
    )
    results = evaluate_predictions(evaluation, predictions, output, epsilon=epsilon)
    results["example_figure"] = _example_figure(data, output)
    report = baselines_report(results, dataset_dir, manifest, output, split, ground_truth_markdown(results))
    write_text_atomic(output / "report.md", report)
    results["report"] = str(output / "report.md")
    return results


def _predict_baselines(
    manifest: dict[str, Any],
    baselines_dir,
    data: DatasetSplit,
    split: str,
    *,
    batch_size: int,
    device: str,
    dtype: str,
    progress: bool,
) -> list:
    """The :class:`~affectnetplus_hf.evaluation.ModelPredictions` of every model of ``manifest`` on ``data``."""
    from transformers import AutoModel

    from affectnetplus_hf.evaluation import ModelPredictions
    from affectnetplus_hf.models import register_auto_classes

    predictions: list[ModelPredictions] = []
    cache: dict = {}
    for entry in manifest["models"]:
        model_dir = Path(baselines_dir) / entry["path"]
        if not _finished(model_dir):
            raise FileNotFoundError(
                f"{model_dir}: baseline {entry['name']} is listed in {MANIFEST} but has no "
                "model.safetensors/training_summary.json; rerun `affectnetplus baseline`"
            )
        register_auto_classes()
        model = AutoModel.from_pretrained(str(model_dir))
        scores = predict_records(
            model, data.records, batch_size=batch_size, device=device, dtype=dtype, progress=progress, cache=cache
        )
        predictions.append(ModelPredictions(entry["name"], entry["kind"], scores, trained_on=entry["trained_on"]))
        logger.info("evaluated %s on %d %s images", entry["name"], len(data.records), split)
    return predictions


def _example_figure(data: DatasetSplit, output: Path) -> str | None:
    """Fig. 1-like soft-label examples of a few faces of each subset (``None`` when there are none)."""
    from affectnetplus_hf.plots import plot_soft_label_examples

    examples = _example_indices(data)
    if not examples:
        return None
    return plot_soft_label_examples(
        [_face_image(data.records[i]) for i in examples],
        data.soft_labels[examples],
        output / "figures" / "soft_label_examples.png",
        titles=[f"{EMOTIONS[data.hard_labels[i]]} · {data.subsets[i]}" for i in examples],
        references=data.true_soft_labels[examples] if data.true_soft_labels is not None else None,
        columns=min(len(examples), 5),
    )


@dataclass
class _ReferencePairs:
    """Labeled images paired with their reference soft label (:func:`evaluate_soft_labels`)."""

    groups: list[str] = field(default_factory=list)  # "split/subset"
    references: list[np.ndarray] = field(default_factory=list)
    soft: list[np.ndarray] = field(default_factory=list)
    hard: list[int] = field(default_factory=list)
    calibrated: list[np.ndarray | None] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # images without a reference (or hard label)
    used: set[str] = field(default_factory=set)  # the reference kinds met: "truth", "votes"

    def add(self, row: dict[str, Any], record: FaceRecord, reference: str) -> None:
        """One label row; left out (``missing``) when it lacks a finite reference, soft or hard label."""
        truth = record.extra.get("soft_label_true")
        use = reference if reference != "auto" else ("truth" if truth is not None else "votes")
        if use == "truth":
            ref = None if truth is None else np.asarray(truth, dtype=np.float32)
        else:
            ref = None if record.votes is None else vote_distributions(np.asarray(record.votes)[None])[0]
        if ref is None or not np.all(np.isfinite(ref)) or row["soft_label"] is None or row["hard_label"] is None:
            self.missing.append(row["image_id"])
            return
        self.used.add(use)
        calibrated = row.get("soft_label_calibrated")
        self.groups.append(f"{row['split']}/{row['subset']}")
        self.references.append(ref)
        self.soft.append(np.asarray(row["soft_label"], dtype=np.float32))
        self.hard.append(int(row["hard_label"]))
        self.calibrated.append(None if calibrated is None else np.asarray(calibrated, dtype=np.float32))

    def predictions(self) -> dict[str, np.ndarray]:
        """What is scored against the references: the soft labels, the one-hot hard labels and, when every
        image has them, the calibrated soft labels."""
        predictions = {
            "soft_labels": np.clip(np.stack(self.soft), 0.0, 1.0),
            "one_hot_hard_labels": np.eye(NUM_EMOTIONS, dtype=np.float32)[self.hard],
        }
        if all(c is not None for c in self.calibrated):
            predictions["calibrated_soft_labels"] = np.stack(self.calibrated)
        return predictions


def evaluate_soft_labels(
    labels_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    reference: str = "auto",
    epsilon: float | None = None,
) -> dict[str, Any]:
    """A labeling run's soft labels against references: ``"truth"`` (synthetic ground truth),
    ``"votes"`` (vote distributions of a multi-annotated source) or ``"auto"`` (truth when present).

    Compares, with the ``evaluate`` modules, the soft labels, the calibrated soft labels (when the run
    has them) and the one-hot hard labels to the references, per split and subset, and adds their
    agreement with the references after normalising each to sum 1 (``crowd_agreement``: W-MAE, W-FR,
    W-AUC, KL, majority accuracy; ``docs/method.md#quality-against-people``); writes
    ``OUT/soft_label_quality.md|json``.
    """
    from affectnetplus_hf.evaluation import soft_metrics

    epsilon = DEFAULT_EPSILON if epsilon is None else float(epsilon)
    if reference not in ("auto", "truth", "votes"):
        raise ValueError(f"reference must be auto, truth or votes; got {reference!r}")
    pairs = _reference_pairs(labels_dir, data_dir, reference)
    references = np.stack(pairs.references)
    predictions = pairs.predictions()
    result = {
        "reference": pairs.used.pop(),
        "epsilon": epsilon,
        "n_images": len(pairs.references),
        "left_out": len(pairs.missing),
    }
    for key, values in predictions.items():
        result[key] = soft_metrics(references, values, by=pairs.groups, epsilon=epsilon)
    result["normalised"] = {
        key: crowd_agreement(references, values, epsilon=epsilon) for key, values in predictions.items()
    }
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _write_json(output / "soft_label_quality.json", result)
    text = soft_label_quality_markdown(result)
    write_text_atomic(output / "soft_label_quality.md", text)
    result["markdown"] = text
    return result


def _reference_pairs(labels_dir, data_dir, reference: str) -> _ReferencePairs:
    """Every label row of ``labels_dir`` paired with its image's reference in the source at ``data_dir``;
    ``ValueError`` for an image not in the source, no pair at all, or a mix of truth and votes."""
    from affectnetplus_hf.dataset import read_checked_labels
    from affectnetplus_hf.sources import open_source

    labels = read_checked_labels(labels_dir)[0].to_pylist()  # a damaged soft label is named by shard and image
    source = open_source(os.fspath(data_dir))
    records = {(r.split, r.image_id): r for split in {row["split"] for row in labels} for r in source.records(split)}
    pairs = _ReferencePairs()
    for row in labels:
        record = records.get((row["split"], row["image_id"]))
        if record is None:
            raise ValueError(f"{labels_dir}: image {row['image_id']!r} ({row['split']}) is not in {data_dir}")
        pairs.add(row, record, reference)
    if not pairs.references:
        raise ValueError(f"{data_dir}: no image has both a soft label in {labels_dir} and a {reference} reference")
    if pairs.missing:
        logger.warning(
            "%d labeled images without a reference (or hard label) left out: %s",
            len(pairs.missing),
            pairs.missing[:10],
        )
    if len(pairs.used) > 1:
        raise ValueError(
            f"{data_dir}: some images have a ground-truth soft label and others not; "
            "choose reference='truth' or 'votes'"
        )
    return pairs


__all__ = [
    "BASELINE_KINDS",
    "DEFAULT_KINDS",
    "FERPLUS_KINDS",
    "KIND_DESCRIPTIONS",
    "MANIFEST",
    "TRAINING_SETS",
    "BaselinesManifest",
    "DatasetSplit",
    "baselines_identity",
    "evaluate_baselines",
    "evaluate_soft_labels",
    "load_split",
    "model_name",
    "predict_records",
    "read_manifest",
    "train_baselines",
    "vote_distributions",
]
