"""Soft-label every image of a dataset with a saved soft-labeler: sharded, resumable, distributed.

A run reads a source (:func:`affectnetplus_hf.sources.open_source`), runs the soft-labeler through
:func:`affectnetplus_hf.models.runner.iter_soft_labels` and writes ``OUT_DIR/manifest.json`` (the run's identity
and finished shards), ``shards/{split}-{k:05d}.parquet`` (one row per image, :data:`LABEL_COLUMNS`) with a JSON
sidecar each and, once complete, ``summary.json`` and the subset tables and figures (subsets:
``docs/method.md#subsets``, :func:`affectnetplus_hf.subsets.assign_subsets`; null without a hard label).

Shards are fixed chunks of each split (shard ``i`` belongs to process ``i % num_processes``) cut into fixed
batches, so a soft label does not depend on the number of processes; every file is written atomically and a
resumed run ends with the bytes of an uninterrupted one (bit-identical numbers need the same per-process thread
count and ``MKL_CBWR=AUTO,STRICT``). A bad image stops the run unless ``skip_bad``; with ``detect_faces`` photos
go through the face stage (``docs/method.md#face-stage``). Guarantees in full: ``docs/architecture.md#labeling-run``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.fileio import PARQUET_OPTIONS, atomic_path, write_json_atomic
from affectnetplus_hf.pretrained import resolve_model
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.run_folder import (
    RunFolder,
    RunFolderError,
    file_sha256,
    files_fingerprint,
    records_fingerprint,
)

logger = logging.getLogger(__name__)

#: Format tag and version of ``manifest.json``.
MANIFEST_FORMAT = "affectnetplus-labels"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
SHARD_DIR = "shards"

#: The soft-label columns of a label shard (``SoftLabelMap`` adds the same ones to a ``datasets`` row)
#: → the :class:`~affectnetplus_hf.models.SoftLabelerOutput` field that fills them.
SOFT_LABEL_COLUMNS: dict[str, str] = {
    "soft_label": "soft_label",
    "soft_label_ebc": "ebc_scores",
    "soft_label_au": "au_scores",
    "soft_label_dist": "dist_scores",
    "soft_label_calibrated": "soft_label_calibrated",
    "spread": "spread",
}

#: Columns of a label shard, in order.
LABEL_COLUMNS: tuple[str, ...] = (
    "image_id",
    "split",
    "hard_label",
    "soft_label",
    "soft_label_ebc",
    "soft_label_au",
    "soft_label_dist",
    "soft_label_calibrated",
    "spread",
    "subset",
    "image_size_bytes",
    "image_sha256",
    "face_box",
)


# --------------------------------------------------------------------------------------------------
# configuration and plan
# --------------------------------------------------------------------------------------------------


@dataclass
class LabelingConfig:
    """Settings of a labeling run (everything that changes the output is fingerprinted in the manifest).

    Attributes:
        shard_size: images per shard (fixed for the run; a resume with another size refuses).
        batch_size: images per forward pass inside a shard (fixed for the run, for exact results).
        splits: splits to label (default: every split of the source).
        skip_bad: skip unreadable images (listed in the summary) instead of stopping.
        num_workers: image-decoding worker processes of the DataLoader (does not change results).
        dtype: ``"fp32"`` (default, exact) or ``"bf16"``/``"fp16"`` autocast on CUDA.
        max_shards: stop cleanly after this many newly written shards per process (for chunked jobs on
            time-limited schedulers); ``None`` = run to the end.
        num_threads: ``torch.set_num_threads`` in every process (``None`` = leave as is). CPU kernels
            split reductions by thread, so results are bit-identical only between runs with the same
            per-process thread count (``accelerate launch`` on CPU uses 1 per process by default).
        progress: show a tqdm bar (images/s).
        detect_faces: run the face stage on records without an annotated box or landmarks (photos).
        detector: the face detector (a name of ``affectnetplus_hf.faces.DETECTORS`` or ``"auto"``).
        no_face: a photo without a face: ``"skip"`` (left out, listed), ``"whole"`` (the whole image),
            ``"error"`` (stop).
        overwrite: start over in an ``out_dir`` that holds a labeling run (with any settings).
    """

    shard_size: int = 1024
    batch_size: int = 64
    splits: Sequence[str] | None = None
    skip_bad: bool = False
    num_workers: int = 0
    dtype: str = "fp32"
    max_shards: int | None = None
    num_threads: int | None = None
    progress: bool = True
    detect_faces: bool = False
    detector: str = "auto"
    no_face: str = "skip"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if int(self.shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if int(self.num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.dtype not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be 'fp32', 'bf16' or 'fp16', got {self.dtype!r}")
        if self.max_shards is not None and int(self.max_shards) < 1:
            raise ValueError(f"max_shards must be >= 1 (or None), got {self.max_shards}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1 (or None), got {self.num_threads}")
        if self.splits is not None:
            self.splits = tuple(self.splits)
        if self.no_face not in ("skip", "whole", "error"):
            raise ValueError(f"no_face must be 'skip', 'whole' or 'error', got {self.no_face!r}")

    def face_finder(self, processor):
        """The :class:`~affectnetplus_hf.faces.FaceFinder` of a ``detect_faces`` run (largest face), else None."""
        if not self.detect_faces:
            return None
        from affectnetplus_hf.faces.pipeline import FaceFinder

        return FaceFinder(self.detector, faces="largest", processor=processor)

    def face_identity(self, finder) -> dict[str, Any]:
        """The detection settings a resume must match (empty without ``detect_faces``: older runs resume)."""
        if finder is None:
            return {}
        return {
            "detect_faces": True,
            "detector": finder.detector_name,
            "no_face": self.no_face,
            "face_framing": finder.framing.to_dict(),
        }


@dataclass(frozen=True)
class Shard:
    """One unit of work: records ``[start, stop)`` of ``split`` (in the source's order)."""

    name: str
    split: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_shards(records_by_split: Mapping[str, Sequence[FaceRecord]], shard_size: int) -> list[Shard]:
    """The deterministic shard plan: each split's records cut into ``shard_size`` chunks, splits in order."""
    shards: list[Shard] = []
    for split, records in records_by_split.items():
        for k, start in enumerate(range(0, len(records), shard_size)):
            shards.append(Shard(f"{split}-{k:05d}", split, start, min(start + shard_size, len(records))))
    return shards


def shards_for_process(shards: Sequence[Shard], process_index: int, num_processes: int) -> list[Shard]:
    """Shard ``i`` of the plan belongs to process ``i % num_processes``."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index must be in 0..{num_processes - 1}, got {process_index}")
    return [shard for i, shard in enumerate(shards) if i % num_processes == process_index]


# --------------------------------------------------------------------------------------------------
# fingerprints and atomic files
# --------------------------------------------------------------------------------------------------


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """Fingerprint of a saved model directory (:func:`~affectnetplus_hf.run_folder.files_fingerprint`).

    The manifest and every shard's sidecar store it, so that resuming with another model (or changed
    weights) refuses. A shipped name (``"ferplus"``) is its folder
    (:func:`~affectnetplus_hf.pretrained.resolve_model`).
    """
    root = Path(resolve_model(model_dir))
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {os.fspath(model_dir)!r} does not exist")
    try:
        return files_fingerprint(root)
    except FileNotFoundError:
        raise FileNotFoundError(f"model directory {os.fspath(model_dir)!r} is empty") from None


def labeled_records_fingerprint(records_by_split: Mapping[str, Sequence[FaceRecord]]) -> str:
    """Fingerprint of the ordered (split, image_id, hard_label) list: the data a run labels."""
    return records_fingerprint(
        (split, record.image_id, record.hard_label)
        for split, records in records_by_split.items()
        for record in records
    )


def label_schema():
    """Arrow schema of a label shard (soft labels as fixed-size lists of 8 float32)."""
    import pyarrow as pa

    eight = pa.list_(pa.float32(), NUM_EMOTIONS)
    return pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("hard_label", pa.int64()),
            pa.field("soft_label", eight, nullable=False),
            pa.field("soft_label_ebc", eight),
            pa.field("soft_label_au", eight),
            pa.field("soft_label_dist", eight),
            pa.field("soft_label_calibrated", eight),
            pa.field("spread", eight),
            pa.field("subset", pa.string()),
            # the labeled image's bytes (may be null: nothing to compare): `build` refuses changed images
            pa.field("image_size_bytes", pa.int64()),
            pa.field("image_sha256", pa.string()),
            # the face box used, (x0, y0, x1, y1): annotated (stored pixels) or detected (upright pixels);
            # null: whole image
            pa.field("face_box", pa.list_(pa.float32(), 4)),
        ]
    )


# --------------------------------------------------------------------------------------------------
# model outputs
# --------------------------------------------------------------------------------------------------


def _output_field(output: Mapping[str, Any], name: str) -> np.ndarray | None:
    """A field of a model output (CPU tensors) as float32 numpy, ``None`` when absent."""
    value = output.get(name)
    if value is None:
        return None
    return np.asarray(value.float().numpy(), dtype=np.float32)


def _check_output(values: dict[str, np.ndarray | None], n: int) -> None:
    if values["soft_label"] is None:
        raise ValueError("the model output has no 'soft_label'; expected a SoftLabeler-like model")
    for name, value in values.items():
        if value is not None and value.shape != (n, NUM_EMOTIONS):
            raise ValueError(f"model output {name!r} has shape {value.shape}; expected ({n}, {NUM_EMOTIONS})")
        if value is not None and not np.all(np.isfinite(value)):
            raise ValueError(f"model output {name!r} holds NaN or infinite values")


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------


@dataclass
class ShardResult:
    """What one shard produced: its table, the images skipped as unreadable and the photos without a face."""

    table: Any
    bad: list[dict[str, str]] = field(default_factory=list)
    no_face: list[dict[str, str]] = field(default_factory=list)


def _batches(
    records: Sequence[FaceRecord],
    processor,
    config: LabelingConfig,
    bad: list[dict[str, str]],
    on_batch: Callable[[int], None] | None,
    finder=None,
    no_face: list[dict[str, str]] | None = None,
) -> Iterator[dict]:
    """The fixed batches ``{"pixel_values", "index", "bad", "identity"}`` of ``records`` in order
    (:func:`~affectnetplus_hf.image_processing.make_dataloader`; with a face ``finder`` also
    ``"face_box"``); images skipped as bad are appended to ``bad`` as ``{"image_id", "split", "error"}``,
    photos without a face to ``no_face``, both counted by ``on_batch``."""
    from affectnetplus_hf.image_processing import make_dataloader

    split = records[0].split if records else ""
    loader = make_dataloader(
        list(records),
        processor,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        shuffle=False,
        seed=0,
        skip_bad=config.skip_bad,
        with_identity=True,
        finder=finder,
        no_face=config.no_face,
    )
    for batch in loader:
        bad.extend({"image_id": image_id, "split": split, "error": reason} for image_id, reason in batch["bad"])
        faceless = batch.get("no_face") or []
        if no_face is not None:
            no_face.extend({"image_id": image_id, "split": split, "reason": reason} for image_id, reason in faceless)
        if on_batch is not None and (batch["bad"] or faceless):
            on_batch(len(batch["bad"]) + len(faceless))
        yield batch


#: The :class:`~affectnetplus_hf.models.SoftLabelerOutput` fields of the soft-label columns, in column order.
_OUTPUT_FIELDS: tuple[str, ...] = tuple(SOFT_LABEL_COLUMNS.values())


@dataclass
class _ShardOutputs:
    """The model outputs of one shard's batches, gathered by record position (:func:`label_records`)."""

    collected: dict[str, list[np.ndarray | None]] = field(
        default_factory=lambda: {name: [] for name in _OUTPUT_FIELDS}
    )
    indices: list[int] = field(default_factory=list)
    #: (size, sha256) of each good image, from the bytes the loader decoded
    identities: dict[int, tuple[int, str]] = field(default_factory=dict)
    boxes: dict[int, Any] = field(default_factory=dict)

    def add(self, batch: Mapping[str, Any], output: Mapping[str, Any]) -> int:
        """One batch and its model output; returns the number of images."""
        batch_indices = batch["index"].tolist()
        values = {name: _output_field(output, name) for name in _OUTPUT_FIELDS}
        _check_output(values, len(batch_indices))
        for name in _OUTPUT_FIELDS:
            self.collected[name].append(values[name])
        self.indices.extend(batch_indices)
        self.identities.update(zip(batch_indices, batch.get("identity") or ()))
        self.boxes.update(zip(batch_indices, batch.get("face_box") or ()))
        return len(batch_indices)

    def ordered(self) -> tuple[list[int], dict[str, np.ndarray | None]]:
        """``(record positions in order, {output field: (N, 8) array in that order or None})``."""
        if len(set(self.indices)) != len(self.indices):
            raise RuntimeError("the data loader yielded an image twice")
        order = np.argsort(np.asarray(self.indices, dtype=np.int64), kind="stable")
        arrays: dict[str, np.ndarray | None] = {}
        for name in _OUTPUT_FIELDS:
            parts = self.collected[name]
            if not parts or any(p is None for p in parts):
                if any(p is not None for p in parts):
                    raise ValueError(f"model output {name!r} is present for some batches but not others")
                arrays[name] = None
            else:
                arrays[name] = np.concatenate(parts, axis=0)[order]
        return [self.indices[i] for i in order], arrays

    def table(self, records: Sequence[FaceRecord]):
        """The label shard table (:func:`label_schema`) of the labeled records."""
        indices, arrays = self.ordered()
        hard = [records[i].hard_label for i in indices]
        return _label_table(
            [records[i] for i in indices],
            hard,
            _subsets_of(arrays["soft_label"], hard),
            arrays,
            [self.identities[i] for i in indices],
            [_box(self.boxes.get(i, records[i].face_box)) for i in indices],
        )


def label_records(
    model,
    processor,
    records: Sequence[FaceRecord],
    config: LabelingConfig,
    device=None,
    on_batch: Callable[[int], None] | None = None,
    finder=None,
) -> ShardResult:
    """Soft-label ``records`` (one shard) with ``model``; returns a table with :data:`LABEL_COLUMNS`.

    Batches are the fixed chunks of ``config.batch_size`` records (minus skipped bad images), so the
    result depends only on the records, the model and the batch size. ``device``: default the model's.
    ``finder``: the face stage for photo records (``config.detect_faces``; default
    :meth:`LabelingConfig.face_finder`).
    """
    from affectnetplus_hf.models.runner import iter_soft_labels, resolve_device

    device = resolve_device(device, model)
    outputs = _ShardOutputs()
    bad: list[dict[str, str]] = []
    no_face: list[dict[str, str]] = []
    finder = finder if finder is not None else config.face_finder(processor)
    batches = _batches(records, processor, config, bad, on_batch, finder, no_face)
    for batch, output in iter_soft_labels(
        model, batches, device=device, dtype=config.dtype, channels_last=device.type == "cuda"
    ):
        labeled = outputs.add(batch, output)
        if on_batch is not None:
            on_batch(labeled)
    return ShardResult(table=outputs.table(records), bad=bad, no_face=no_face)


def _subsets_of(soft: np.ndarray | None, hard: Sequence[int | None]) -> list[str | None]:
    """The subset of each image with a hard label (:func:`affectnetplus_hf.subsets.assign_subsets`), else None."""
    from affectnetplus_hf.subsets import assign_subsets

    subsets: list[str | None] = [None] * len(hard)
    labelled = [k for k, h in enumerate(hard) if h is not None]
    if labelled:
        names = assign_subsets(soft[labelled], np.asarray([hard[k] for k in labelled], dtype=np.int64))
        for k, subset in zip(labelled, names):
            subsets[k] = str(subset)
    return subsets


def _label_table(
    records: Sequence[FaceRecord],
    hard: Sequence[int | None],
    subsets: Sequence[str | None],
    arrays: Mapping[str, np.ndarray | None],
    identities: Sequence[tuple[int, str]],
    boxes: Sequence[list[float] | None],
):
    """The Arrow table of a label shard (:func:`label_schema`), one row per record."""
    import pyarrow as pa

    n = len(records)
    schema = label_schema()

    def eight(array: np.ndarray | None):
        if array is None:
            return pa.nulls(n, type=schema.field("soft_label").type)
        flat = pa.array(np.ascontiguousarray(array, dtype=np.float32).reshape(-1), type=pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, NUM_EMOTIONS)

    soft = arrays["soft_label"] if arrays["soft_label"] is not None else np.zeros((0, NUM_EMOTIONS), np.float32)
    return pa.Table.from_arrays(
        [
            pa.array([record.image_id for record in records], type=pa.string()),
            pa.array([record.split for record in records], type=pa.string()),
            pa.array(hard, type=pa.int64()),
            eight(soft),
            *(eight(arrays[name]) for name in _OUTPUT_FIELDS[1:]),
            pa.array(subsets, type=pa.string()),
            pa.array([size for size, _ in identities], type=pa.int64()),
            pa.array([digest for _, digest in identities], type=pa.string()),
            pa.array(boxes, type=schema.field("face_box").type),
        ],
        schema=schema,
    )


def _box(box) -> list[float] | None:
    return None if box is None else [float(v) for v in box]


class LabelRun:
    """One labeling run over ``records_by_split`` into ``out_dir`` (see the module docstring).

    Args:
        out_dir: output folder (created).
        records_by_split: ``{split: [FaceRecord, ...]}`` in the order to label.
        config: :class:`LabelingConfig`.
        run_info: identity of the run for the manifest (e.g. ``{"model": fingerprint, "source": kind}``);
            a resume whose ``run_info`` or settings differ refuses.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        records_by_split: Mapping[str, Sequence[FaceRecord]],
        config: LabelingConfig,
        run_info: Mapping[str, Any],
        finder=None,
    ):
        self.out_dir = Path(out_dir)
        self.records_by_split = {split: list(records) for split, records in records_by_split.items()}
        self.config = config
        self.shards = plan_shards(self.records_by_split, config.shard_size)
        self.finder = finder
        self._verified: dict[str, dict] = {}
        self.identity = {
            **dict(run_info),
            "records": labeled_records_fingerprint(self.records_by_split),
            "splits": {split: len(records) for split, records in self.records_by_split.items()},
            "shard_size": int(config.shard_size),
            "batch_size": int(config.batch_size),
            "skip_bad": bool(config.skip_bad),
            "dtype": config.dtype,
            **config.face_identity(finder),
        }

    # ---- files -----------------------------------------------------------------------------------

    @property
    def shard_dir(self) -> Path:
        return self.out_dir / SHARD_DIR

    def shard_path(self, shard: Shard) -> Path:
        return self.shard_dir / f"{shard.name}.parquet"

    def sidecar_path(self, shard: Shard) -> Path:
        return self.shard_dir / f"{shard.name}.json"

    def finished(self, shard: Shard) -> dict | None:
        """The sidecar of a finished shard (its Parquet file present with the recorded sha256), else None.

        A shard verified once (or written by this process) is not hashed again while the files stay.
        """
        sidecar, path = self.sidecar_path(shard), self.shard_path(shard)
        if not sidecar.is_file() or not path.is_file():
            self._verified.pop(shard.name, None)
            return None
        if shard.name in self._verified:
            return self._verified[shard.name]
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            logger.warning("%s is unreadable; shard %s will be redone", sidecar, shard.name)
            return None
        if info.get("sha256") != file_sha256(path):
            logger.warning("%s does not match its sidecar hash; shard %s will be redone", path, shard.name)
            return None
        if info.get("model") != self.identity.get("model"):
            raise RunFolderError(
                f"{sidecar}: shard {shard.name} was written by another model than this run's; "
                "the folder mixes two runs, label into a new OUT_DIR"
            )
        self._verified[shard.name] = info
        return info

    def shards_with_bad_images(self) -> list[str]:
        """Names of the finished shards whose sidecar lists images skipped as bad."""
        names = []
        for shard in self.shards:
            info = self.finished(shard)
            if info is not None and info.get("bad"):
                names.append(shard.name)
        return names

    def manifest(self, complete: bool) -> dict:
        finished = []
        for shard in self.shards:
            info = self.finished(shard)
            if info is not None:
                finished.append(
                    {
                        **{k: info[k] for k in ("name", "split", "rows", "sha256", "bad")},
                        "no_face": info.get("no_face", []),
                    }
                )
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "config": self.identity,
            "columns": list(LABEL_COLUMNS),
            "emotions": list(EMOTIONS),
            "total_shards": len(self.shards),
            "finished_shards": finished,
            "complete": bool(complete),
        }

    # ---- phases ------------------------------------------------------------------------------------

    def prepare(self, folder: RunFolder) -> None:
        """Main process, holding ``folder``'s lock: check that ``out_dir`` is new or this run's, mark it and
        write a fresh manifest."""
        state = folder.start(overwrite=self.config.overwrite, accept=self._accept_changed)
        if state == "resume":
            logger.info("resuming the labeling run in %s", self.out_dir)
        elif state == "replace":
            logger.info("overwrite: starting the labeling run in %s over", self.out_dir)
            folder.clear()
            self._verified.clear()
        folder.mark(complete=False)
        self.shard_dir.mkdir(exist_ok=True)
        for stale in self.shard_dir.glob(".*.tmp"):
            stale.unlink()
        write_json_atomic(self.out_dir / MANIFEST_FILE, self.manifest(complete=False))

    def _accept_changed(self, fields: list[str]) -> bool:
        """A resume may switch ``skip_bad`` alone while no finished shard left out a bad image: such a shard
        holds the same bytes either way."""
        if fields != ["skip_bad"]:
            return False
        dependent = self.shards_with_bad_images()
        if dependent:
            raise RunFolderError(
                f"{self.out_dir} holds a labeling run with other settings (skip_bad: was "
                f"{not self.config.skip_bad}, now {self.config.skip_bad}; finished shard(s) "
                f"{dependent[:5]} left out bad images); resume with the same settings, pass "
                "--overwrite (overwrite=True) to start over, or use another OUT_DIR"
            )
        logger.info(
            "%s: skip_bad is now %s; no finished shard met a bad image, resuming", self.out_dir, self.config.skip_bad
        )
        return True

    def write_shard(self, shard: Shard, result: ShardResult) -> dict:
        """The shard's Parquet file, then its sidecar (which makes it finished)."""
        path = self.shard_path(shard)
        import pyarrow.parquet as pq

        with atomic_path(path) as temp:
            pq.write_table(result.table, temp, **PARQUET_OPTIONS)
        info = {
            "model": self.identity["model"],
            "name": shard.name,
            "split": shard.split,
            "start": shard.start,
            "stop": shard.stop,
            "rows": result.table.num_rows,
            "sha256": file_sha256(path),
            "bad": result.bad,
            "no_face": result.no_face,
        }
        write_json_atomic(self.sidecar_path(shard), info)
        self._verified[shard.name] = info
        return info

    def run_process(self, model, processor, process_index: int = 0, num_processes: int = 1, device=None) -> int:
        """Label this process's unfinished shards; returns the number of shards written."""
        mine = shards_for_process(self.shards, process_index, num_processes)
        todo = [shard for shard in mine if self.finished(shard) is None]
        logger.info(
            "process %d/%d: %d shard(s) assigned, %d already finished, %d to do",
            process_index,
            num_processes,
            len(mine),
            len(mine) - len(todo),
            len(todo),
        )
        if self.config.max_shards is not None:
            todo = todo[: int(self.config.max_shards)]
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(shard.size for shard in todo),
            unit="img",
            desc=f"labeling [{process_index}]",
            position=process_index,
            disable=not self.config.progress,
            dynamic_ncols=True,
        )
        written = 0
        start_time = time.perf_counter()
        images = 0
        for shard in todo:
            records = self.records_by_split[shard.split][shard.start : shard.stop]
            result = label_records(
                model, processor, records, self.config, device=device, on_batch=bar.update, finder=self.finder
            )
            written += 1
            images += shard.size
            self.write_shard(shard, result)
            if process_index == 0:
                write_json_atomic(self.out_dir / MANIFEST_FILE, self.manifest(complete=False))
        bar.close()
        elapsed = time.perf_counter() - start_time
        if images:
            logger.info(
                "process %d: %d images in %.1f s (%.1f images/s)",
                process_index,
                images,
                elapsed,
                images / max(elapsed, 1e-9),
            )
        return written

    def finish(self, folder: RunFolder) -> dict:
        """Main process, after every process is done: the final manifest, summary, subset tables and marker."""
        missing = [shard.name for shard in self.shards if self.finished(shard) is None]
        manifest = self.manifest(complete=not missing)
        write_json_atomic(self.out_dir / MANIFEST_FILE, manifest)
        if missing:
            logger.warning("%d shard(s) not finished yet (%s ...); run again to resume", len(missing), missing[0])
            return {"complete": False, "missing_shards": missing}
        summary = summarize(self.out_dir)
        write_json_atomic(self.out_dir / SUMMARY_FILE, summary)
        from affectnetplus_hf.reports.subsets import subset_table, write_subset_report

        table = subset_table(load_labels(self.out_dir))
        write_subset_report(table, self.out_dir, prefix="subsets")
        folder.mark(complete=True)
        return summary


# --------------------------------------------------------------------------------------------------
# reading a finished run
# --------------------------------------------------------------------------------------------------


def read_manifest(out_dir: str | os.PathLike) -> dict:
    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(out_dir)!r} holds no {MANIFEST_FILE}: not a labeling output folder")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a labeling manifest (format {manifest.get('format')!r})")
    return manifest


def load_labels(out_dir: str | os.PathLike, require_complete: bool = True, verify: bool = True):
    """All label rows of a run as one ``pyarrow.Table``, shards concatenated in plan order.

    Raises ``ValueError`` when the run is unfinished (unless ``require_complete=False``) or a shard's
    hash does not match the manifest (``verify``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = read_manifest(out_dir)
    if require_complete and not manifest.get("complete"):
        raise ValueError(
            f"labeling run in {os.fspath(out_dir)!r} is not complete ({len(manifest['finished_shards'])} of "
            f"{manifest['total_shards']} shards); run `affectnetplus label` again to finish it"
        )
    tables = []
    for entry in manifest["finished_shards"]:
        path = Path(out_dir) / SHARD_DIR / f"{entry['name']}.parquet"
        if verify and file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path} does not match the sha256 in the manifest; the file was changed")
        tables.append(pq.read_table(path, schema=label_schema()))
    if not tables:
        return label_schema().empty_table()
    return pa.concat_tables(tables)


def summarize(out_dir: str | os.PathLike) -> dict:
    """Counts per split, subset and emotion, plus every image skipped as bad (summary.json)."""
    manifest = read_manifest(out_dir)
    table = load_labels(out_dir, require_complete=False)
    splits = table.column("split").to_pylist()
    hard = table.column("hard_label").to_pylist()
    subsets = table.column("subset").to_pylist()
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split in manifest["config"]["splits"]:
        counts[split] = {subset: {emotion: 0 for emotion in EMOTIONS} for subset in SUBSETS}
    no_label: dict[str, int] = {split: 0 for split in counts}
    for split, label, subset in zip(splits, hard, subsets):
        if label is None or subset is None:
            no_label[split] += 1
        else:
            counts[split][subset][EMOTIONS[label]] += 1
    bad = [item for entry in manifest["finished_shards"] for item in entry["bad"]]
    no_face = [item for entry in manifest["finished_shards"] for item in entry.get("no_face", [])]
    return {
        "images": len(splits),
        "images_per_split": {split: splits.count(split) for split in counts},
        "without_hard_label": no_label,
        "counts": counts,
        "bad_images": bad,
        "bad_image_count": len(bad),
        "no_face_images": no_face,
        "no_face_count": len(no_face),
        "families": manifest["config"].get("families"),
        "complete": bool(manifest.get("complete")),
    }


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------


def collect_records(source, splits: Sequence[str] | None = None) -> dict[str, list[FaceRecord]]:
    """``{split: records}`` of a source, in the source's order; unknown splits raise ``ValueError``."""
    available = list(source.splits)
    wanted = list(splits) if splits else available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise ValueError(f"split(s) {unknown} not in the source (it has {available})")
    records_by_split = {}
    for split in wanted:
        records = list(source.records(split))
        seen: set[str] = set()
        for record in records:
            if record.image_id in seen:
                raise ValueError(f"image id {record.image_id!r} appears twice in split {split!r}")
            seen.add(record.image_id)
        records_by_split[split] = records
    return records_by_split


def label_dataset(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: LabelingConfig | None = None,
    *,
    cpu: bool = False,
    model=None,
    processor=None,
) -> dict:
    """Label every image of the source at ``data_dir`` with the soft-labeler saved in ``model_dir``.

    Runs in the current process or, under ``accelerate launch``, in each launched process (each takes
    its own shards). ``model``/``processor`` override loading from ``model_dir`` (which still
    fingerprints the run). Returns the summary (``{"complete": False, ...}`` when stopped by
    ``max_shards``); only the main process returns the full summary, the others ``{}``. torch's thread
    count and cuDNN flags are set for the run and restored afterwards.
    """
    config = config or LabelingConfig()
    with _deterministic_torch(config):
        return _label(model_dir, data_dir, out_dir, config, cpu=cpu, model=model, processor=processor)


@contextlib.contextmanager
def _deterministic_torch(config: LabelingConfig):
    """``config.num_threads`` intra-op threads and fixed cuDNN kernels while labeling, restored afterwards."""
    import torch

    saved = torch.get_num_threads(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    if config.num_threads is not None:
        torch.set_num_threads(int(config.num_threads))
    torch.backends.cudnn.benchmark = False  # the same soft labels on every run
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1:]


def _label(model_dir, data_dir, out_dir, config: LabelingConfig, *, cpu: bool, model, processor) -> dict:
    """:func:`label_dataset` under :func:`_deterministic_torch`."""
    from affectnetplus_hf.sources import open_source

    accelerator = _accelerator(cpu)
    is_main = accelerator.is_main_process
    source = open_source(os.fspath(data_dir))
    records_by_split = collect_records(source, config.splits)
    model, processor = _soft_labeler(model_dir, model, processor)
    run = LabelRun(
        out_dir, records_by_split, config, _run_info(model_dir, model, source), finder=config.face_finder(processor)
    )
    folder = RunFolder(out_dir, "labels", run.identity, version=MANIFEST_VERSION)
    with folder if is_main else contextlib.nullcontext():  # the main process locks OUT_DIR for the whole run
        if is_main:
            run.prepare(folder)
        accelerator.wait_for_everyone()
        run.run_process(
            model, processor, accelerator.process_index, accelerator.num_processes, device=accelerator.device
        )
        accelerator.wait_for_everyone()
        summary = run.finish(folder) if is_main else {}
        accelerator.wait_for_everyone()
    return summary


def _accelerator(cpu: bool):
    """The run's :class:`accelerate.Accelerator` (logged with the intra-op thread count)."""
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=cpu)
    logger.info(
        "labeling on %s, process %d of %d, %d intra-op thread(s)",
        accelerator.device,
        accelerator.process_index,
        accelerator.num_processes,
        torch.get_num_threads(),
    )
    return accelerator


def _soft_labeler(model_dir: str | os.PathLike, model, processor):
    """``(model, image processor)``: ``model`` (which needs ``processor``) or the one saved in ``model_dir``."""
    from affectnetplus_hf.models.hub import load_soft_labeler

    if model is None:
        model = load_soft_labeler(model_dir)
        processor = processor or model.image_processor
    if processor is None:
        raise ValueError("label_dataset needs an image processor (pass processor= with model=)")
    return model, processor


def _run_info(model_dir: str | os.PathLike, model, source) -> dict[str, Any]:
    """The model and source part of a run's identity (:class:`LabelRun`'s ``run_info``)."""
    model_config = getattr(model, "config", None)
    return {
        "model": model_fingerprint(model_dir),
        "families": list(getattr(model_config, "families", ()) or ()),
        "source_kind": getattr(source, "kind", None),
        "source_layout": getattr(source, "layout", None),
        "calibration": getattr(model_config, "calibration", None),
    }


__all__ = [
    "LABEL_COLUMNS",
    "SOFT_LABEL_COLUMNS",
    "LabelRun",
    "LabelingConfig",
    "Shard",
    "collect_records",
    "label_dataset",
    "label_records",
    "label_schema",
    "labeled_records_fingerprint",
    "load_labels",
    "model_fingerprint",
    "plan_shards",
    "read_manifest",
    "shards_for_process",
    "summarize",
]
