"""The AffectNet+ dataset: features, export to a hub-ready folder, and the push to the hub.

:func:`build_dataset` joins a source (images and their single-annotator labels), a finished labeling run
(:mod:`affectnetplus_hf.labeling`: soft labels, subsets) and metadata annotators (:mod:`affectnetplus_hf.metadata`,
``docs/method.md#metadata``) into a folder that ``datasets.load_dataset`` reads offline and that
:func:`push_dataset` uploads to a (private, gated) hub repository as is: ``README.md`` (the card: one config per
subset, :mod:`affectnetplus_hf.reports.dataset_card`), ``data/{split}/{subset}-{k:05d}-of-{n:05d}.parquet``
(each row stored once, in its subset's files, images embedded), ``images/subsets_{split}.png``,
``statistics.json`` (:class:`BuildSummary`) and the run-folder marker (:mod:`affectnetplus_hf.run_folder`).

A build is deterministic and atomic (staged beside the folder, swapped in by one rename) and checks its inputs
first: the labels' model, soft labels finite and in [0, 1], and each image's size and sha256 as labeled.
Folder layout and guarantees: ``docs/architecture.md#dataset-folder``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS, SUBSETS
from affectnetplus_hf.fileio import (
    PARQUET_OPTIONS,
    write_json_atomic,
    write_text_atomic,
)
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.reports.dataset_card import (
    COLUMN_DOCS,
    CONFIG_NAMES,
    LICENSE_NOTE_BEGIN,
    LICENSE_NOTE_END,
    card_metadata,
    config_rows,
    render_card,
    write_license_note,
)
from affectnetplus_hf.reports.licenses import LICENSES
from affectnetplus_hf.reports.subsets import subset_table, write_subset_figures
from affectnetplus_hf.run_folder import MARKER_FILE, RunFolder, records_fingerprint

logger = logging.getLogger(__name__)

#: File group of rows without a hard label (``keep_unlabeled=True``); only in the ``default`` config.
UNASSIGNED = "unassigned"
#: Format version of a dataset folder (its run-folder marker, :mod:`affectnetplus_hf.run_folder`).
DATASET_VERSION = 1
PACKAGE_NAME = "affectnetplus-hf"
#: Length of the optional ``votes`` column: FER+'s 8 emotion counts, unknown, NF (Barsoum et al. 2016).
NUM_VOTE_COUNTS = 10
#: Split order in the folder and the card.
SPLIT_ORDER: tuple[str, ...] = ("train", "validation", "test")
#: Rows per Parquet row group (small groups keep random access and the hub viewer fast for images).
ROW_GROUP_SIZE = 100
#: A new Parquet file is started once a file's embedded images reach this many bytes.
DEFAULT_MAX_FILE_BYTES = 500 * 1024 * 1024
#: Parquet writer options: :data:`affectnetplus_hf.fileio.PARQUET_OPTIONS` without dictionary encoding
#: (the columns are mostly distinct image bytes and floats).
PARQUET_WRITER_OPTIONS: dict[str, Any] = {**PARQUET_OPTIONS, "use_dictionary": False}


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------


def affectnetplus_features(with_soft_label_true: bool = False, with_votes: bool = False):
    """``datasets.Features`` of an AffectNet+ row (``docs/method.md#label-space``, ``#subsets``, ``#metadata``).

    ``soft_label``/``soft_label_ebc``/``soft_label_au``/``soft_label_dist``/``soft_label_calibrated``/
    ``spread`` are fixed-length lists of 8 ``float32`` in label-space order (null when the family was not
    used or the soft-labeler is not calibrated); ``expression`` and ``subset`` are ``ClassLabel``\\ s;
    metadata columns follow :func:`affectnetplus_hf.metadata.metadata_features` (null = unknown).
    ``soft_label_true`` (the synthetic sample's ground truth) is added with ``with_soft_label_true``; ``votes``
    (10 ``int32`` annotator counts in FER+ column order, the input of FER+'s training modes, Barsoum et al.
    2016) with ``with_votes``.
    """
    from datasets import ClassLabel, Features, Image, List, Value

    from affectnetplus_hf.metadata import metadata_features

    def eight():
        return List(Value("float32"), length=NUM_EMOTIONS)

    columns: dict[str, Any] = {
        "image": Image(),
        "image_id": Value("string"),
        "face_box": List(Value("float32"), length=4),
        "expression": ClassLabel(names=list(EMOTIONS)),
        "soft_label": eight(),
        "soft_label_ebc": eight(),
        "soft_label_au": eight(),
        "soft_label_dist": eight(),
        "soft_label_calibrated": eight(),
        "spread": eight(),
        "subset": ClassLabel(names=list(SUBSETS)),
        "valence": Value("float32"),
        "arousal": Value("float32"),
    }
    columns.update(dict(metadata_features()))
    if with_soft_label_true:
        columns["soft_label_true"] = eight()
    if with_votes:
        columns["votes"] = List(Value("int32"), length=NUM_VOTE_COUNTS)
    return Features(columns)


# --------------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------------


def _eight_or_none(value: Any, what: str) -> list[float] | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.shape != (NUM_EMOTIONS,):
        raise ValueError(f"{what} must have {NUM_EMOTIONS} values, got {array.size}")
    return array.tolist()


def _soft_label_true(record: FaceRecord) -> list[float] | None:
    value = record.extra.get("soft_label_true") if record.extra else None
    return _eight_or_none(value, f"{record.image_id}: extra['soft_label_true']")


def make_row(
    record: FaceRecord,
    label: Mapping[str, Any],
    metadata: Mapping[str, Any],
    with_soft_label_true: bool,
    with_votes: bool = False,
    image_bytes: bytes | None = None,
) -> dict:
    """One dataset row (python values) from a record, its label row and its metadata cells; with
    ``with_votes`` the ``votes`` cell (:func:`affectnetplus_hf.sources.ferplus.record_raw_votes`).
    ``image_bytes``: the image already read (else read from the record)."""
    from affectnetplus_hf.images import read_record_bytes

    box = None if record.face_box is None else [float(v) for v in record.face_box]
    subset = label.get("subset")
    row = {
        "image": {
            "bytes": read_record_bytes(record) if image_bytes is None else image_bytes,
            "path": record.image_id.rsplit("/", 1)[-1],
        },
        "image_id": record.image_id,
        "face_box": box,
        "expression": record.hard_label,
        "soft_label": _eight_or_none(label["soft_label"], f"{record.image_id}: soft_label"),
        "soft_label_ebc": _eight_or_none(label.get("soft_label_ebc"), f"{record.image_id}: soft_label_ebc"),
        "soft_label_au": _eight_or_none(label.get("soft_label_au"), f"{record.image_id}: soft_label_au"),
        "soft_label_dist": _eight_or_none(label.get("soft_label_dist"), f"{record.image_id}: soft_label_dist"),
        "soft_label_calibrated": _eight_or_none(
            label.get("soft_label_calibrated"), f"{record.image_id}: soft_label_calibrated"
        ),
        "spread": _eight_or_none(label.get("spread"), f"{record.image_id}: spread"),
        "subset": None if subset is None else SUBSETS.index(subset),
        "valence": None if record.valence is None else float(record.valence),
        "arousal": None if record.arousal is None else float(record.arousal),
    }
    for column, value in metadata.items():
        if isinstance(value, np.ndarray):
            value = value.astype(np.float32).tolist()
        row[column] = value
    if with_soft_label_true:
        row["soft_label_true"] = _soft_label_true(record)
    if with_votes:
        from affectnetplus_hf.sources.ferplus import record_raw_votes

        votes = record_raw_votes(record)
        row["votes"] = None if votes is None else votes.tolist()
    return row


class _GroupWriter:
    """Streams the rows of one (split, group) into ``{group}-{k}`` Parquet parts, new part past ``max_bytes``."""

    def __init__(self, folder: Path, group: str, features, max_bytes: int):
        self.folder, self.group, self.features, self.max_bytes = folder, group, features, max_bytes
        self.schema = features.arrow_schema
        self.parts: list[Path] = []
        self.writer = None
        self.part_bytes = 0
        self.buffer: list[dict] = []
        self.rows = 0

    def _open(self) -> None:
        import pyarrow.parquet as pq

        path = self.folder / f".{self.group}-{len(self.parts):05d}.part"
        self.parts.append(path)
        self.writer = pq.ParquetWriter(path, self.schema, **PARQUET_WRITER_OPTIONS)
        self.part_bytes = 0

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.buffer:
            return
        if self.writer is None:
            self._open()
        table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        self.buffer = []
        if self.part_bytes >= self.max_bytes:
            self.writer.close()
            self.writer = None

    def add(self, row: dict) -> None:
        self.buffer.append(self.features.encode_example(row))
        self.rows += 1
        self.part_bytes += len(row["image"]["bytes"])
        if len(self.buffer) >= ROW_GROUP_SIZE or self.part_bytes >= self.max_bytes:
            self._flush()

    def close(self) -> list[Path]:
        """Finish and give the parts their final names; an empty group writes no file. Returns final paths."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        n = len(self.parts)
        final = []
        for k, part in enumerate(self.parts):
            target = self.folder / f"{self.group}-{k:05d}-of-{n:05d}.parquet"
            os.replace(part, target)
            final.append(target)
        return final


# --------------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------------


def _labels_by_key(labels_dir: str | os.PathLike) -> tuple[dict[tuple[str, str], dict], dict]:
    table, manifest = read_checked_labels(labels_dir)
    rows = table.to_pylist()
    return {(row["split"], row["image_id"]): row for row in rows}, manifest


def read_checked_labels(labels_dir: str | os.PathLike):
    """``(table, manifest)`` of a complete labeling run (:func:`affectnetplus_hf.labeling.load_labels`: every
    shard present with the sha256 of the manifest), checked shard by shard: its sidecar must name the
    manifest's model, and every soft-label cell (:data:`~affectnetplus_hf.labeling.SOFT_LABEL_COLUMNS`)
    must be null or 8 finite values in [0, 1]. ``ValueError`` (one line) naming the shard file and the
    image otherwise. Sidecars of label runs older than the model check (no ``model``) are accepted."""
    from affectnetplus_hf.labeling import SHARD_DIR, load_labels, read_manifest

    manifest = read_manifest(labels_dir)
    table = load_labels(labels_dir)
    model = manifest["config"].get("model")
    shard_dir = Path(labels_dir) / SHARD_DIR
    start, unchecked = 0, []
    for entry in manifest["finished_shards"]:
        name = entry["name"]
        sidecar = shard_dir / f"{name}.json"
        try:
            info = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{os.fspath(sidecar)}: the sidecar of shard {name} is missing or unreadable ({error}); "
                "label again into a new folder"
            ) from None
        if "model" not in info:
            unchecked.append(name)
        elif info["model"] != model:
            raise ValueError(
                f"{os.fspath(sidecar)}: shard {name} was labeled by another model "
                f"({str(info['model'])[:12]}...) than the run in {os.fspath(labels_dir)} "
                f"({str(model)[:12]}...); the folder mixes two labeling runs, label again into a new "
                "folder"
            )
        rows = int(entry["rows"])
        check_soft_label_cells(table.slice(start, rows), shard_dir / f"{name}.parquet")
        start += rows
    if start != table.num_rows:
        raise ValueError(
            f"{os.fspath(labels_dir)}: the manifest counts {start} rows but the shards hold "
            f"{table.num_rows}; label again into a new folder"
        )
    if unchecked:
        logger.warning(
            "%s: %d shard sidecar(s) (%s ...) do not name their model (a label run of an earlier version); "
            "not checked against the manifest's",
            os.fspath(labels_dir),
            len(unchecked),
            unchecked[0],
        )
    return table, manifest


def check_soft_label_cells(table, where: str | os.PathLike, columns: Sequence[str] | None = None) -> None:
    """``ValueError`` (one line, naming ``where``, the column and the image) when a soft-label cell of
    ``table`` (Arrow, with ``image_id``) holds NaN, an infinite value or a value outside [0, 1]; null cells
    (a family the soft-labeler lacks) pass."""
    from affectnetplus_hf.labeling import SOFT_LABEL_COLUMNS

    for column in columns or SOFT_LABEL_COLUMNS:
        if column not in table.column_names or table.num_rows == 0:
            continue
        cells = table.column(column).combine_chunks()
        n = len(cells)
        values = cells.values.slice(cells.offset * NUM_EMOTIONS, n * NUM_EMOTIONS)
        values = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, NUM_EMOTIONS)
        valid = np.asarray(cells.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(values) & (values >= 0.0) & (values <= 1.0)
        bad = np.flatnonzero(valid & ~good.all(axis=1))
        if not len(bad):
            continue
        row = int(bad[0])
        cell = values[row]
        what = (
            "NaN"
            if np.isnan(cell).any()
            else "an infinite value"
            if np.isinf(cell).any()
            else f"{float(cell[~good[row]][0]):.6g}, outside [0, 1]"
        )
        image_id = table.column("image_id")[row].as_py()
        more = f" (and {len(bad) - 1} more row(s) of the file)" if len(bad) > 1 else ""
        raise ValueError(
            f"{os.fspath(where)}: {column} of image {image_id!r} holds {what}{more}; soft labels must be "
            "finite and in [0, 1] (the file is damaged or was not written by affectnetplus)"
        )


def check_not_inputs(target: Path, inputs: Mapping[str, str | os.PathLike], what: str) -> None:
    """``ValueError`` when ``target`` is one of ``inputs`` (``{role: path}``) or a folder above one."""
    resolved = Path(target).resolve()
    for role, path in inputs.items():
        if path is None:
            continue
        other = Path(path).resolve()
        if resolved == other or resolved in other.parents:
            relation = "is" if resolved == other else "contains"
            raise ValueError(
                f"{what} {os.fspath(target)!r} {relation} {role} {os.fspath(path)!r}; write it to another folder"
            )


def dataset_identity(
    manifest: Mapping[str, Any],
    source_kind: str,
    metadata: str | None,
    *,
    keep_unlabeled: bool,
    max_file_bytes: int,
    pretty_name: str | None,
    figures: bool,
    skip_bad: bool,
) -> dict[str, Any]:
    """What decides a built dataset (its marker's identity): the labels (model and record-list fingerprints
    of the manifest, and its shards' hashes), the source kind and the build settings."""
    config = manifest["config"]
    return {
        "labels_model": config.get("model"),
        "labels_records": config.get("records"),
        "labels_shards": records_fingerprint((e["name"], e["sha256"]) for e in manifest["finished_shards"]),
        "source_kind": source_kind,
        "metadata": metadata,
        "keep_unlabeled": bool(keep_unlabeled),
        "max_file_bytes": int(max_file_bytes),
        "pretty_name": pretty_name,
        "figures": bool(figures),
        "skip_bad": bool(skip_bad),
    }


@dataclass(frozen=True)
class BuildOptions:
    """The settings of one :func:`build_dataset` run (its keyword arguments, ``metadata`` as text)."""

    metadata: str | None
    keep_unlabeled: bool
    max_file_bytes: int
    pretty_name: str | None
    figures: bool
    progress: bool
    skip_bad: bool

    @property
    def groups(self) -> list[str]:
        """The file groups of a split: the subsets, then :data:`UNASSIGNED` with ``keep_unlabeled``."""
        return list(SUBSETS) + ([UNASSIGNED] if self.keep_unlabeled else [])


@dataclass
class SplitExport:
    """What one split of a build wrote: its rows, rows per file group and the files (relative paths)."""

    rows: int
    rows_per_group: dict[str, int]
    files: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "rows_per_group": self.rows_per_group, "files": self.files}


@dataclass
class BuildSummary:
    """The summary of a build (``statistics.json``; :func:`build_dataset` returns its :meth:`to_dict`).

    ``not_labelled``, ``metadata_skipped`` and ``changed_images`` list ``{"split", "image_id"[, "error"]}``
    of the images left out (or left without metadata); ``without_hard_label`` counts per split the images
    left out for lack of a hard label; ``subset_table`` is the Table 5-like count per split.
    """

    source_kind: str
    source_layout: str | None
    labels_model: str | None
    families: list[str] | None
    label_quality: Any
    metadata: str | None
    splits: dict[str, SplitExport] = field(default_factory=dict)
    not_labelled: list[dict[str, str]] = field(default_factory=list)
    without_hard_label: dict[str, int] = field(default_factory=dict)
    metadata_skipped: list[dict[str, str]] = field(default_factory=list)
    changed_images: list[dict[str, str]] = field(default_factory=list)
    subset_table: dict[str, Any] | None = None

    @classmethod
    def start(cls, source, source_kind: str, manifest: Mapping[str, Any], metadata: str | None) -> BuildSummary:
        """An empty summary of a build of ``source`` with the labels of ``manifest``."""
        config = manifest["config"]
        return cls(
            source_kind=source_kind,
            source_layout=getattr(source, "layout", None),
            labels_model=config.get("model"),
            families=config.get("families"),
            label_quality=config.get("calibration"),
            metadata=metadata,
        )

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values, in the key order of ``statistics.json``'s earlier versions."""
        return {
            "source_kind": self.source_kind,
            "source_layout": self.source_layout,
            "labels_model": self.labels_model,
            "families": self.families,
            "label_quality": self.label_quality,
            "metadata": self.metadata,
            "splits": {split: export.to_dict() for split, export in self.splits.items()},
            "not_labelled": self.not_labelled,
            "without_hard_label": self.without_hard_label,
            "metadata_skipped": self.metadata_skipped,
            "changed_images": self.changed_images,
            "changed_image_count": len(self.changed_images),
            "subset_table": self.subset_table,
        }


@dataclass
class _SubsetTableRows:
    """The (split, hard label, subset) of every exported row: the input of the subset table."""

    split: list[str] = field(default_factory=list)
    hard_label: list[int | None] = field(default_factory=list)
    subset: list[str | None] = field(default_factory=list)

    def add(self, split: str, hard_label: int | None, subset: str | None) -> None:
        self.split.append(split)
        self.hard_label.append(hard_label)
        self.subset.append(subset)

    def columns(self) -> dict[str, list]:
        return {"split": self.split, "hard_label": self.hard_label, "subset": self.subset}


@dataclass(frozen=True)
class _RowColumns:
    """The dataset's features and its optional columns (decided by the source's records)."""

    features: Any
    with_truth: bool
    with_votes: bool

    @classmethod
    def of(cls, records_by_split: Mapping[str, Sequence[FaceRecord]]) -> _RowColumns:
        records = [r for split_records in records_by_split.values() for r in split_records]
        with_truth = any(_soft_label_true(r) is not None for r in records)
        with_votes = any(r.votes is not None or "ferplus_votes" in (r.extra or {}) for r in records)
        return cls(
            affectnetplus_features(with_soft_label_true=with_truth, with_votes=with_votes), with_truth, with_votes
        )


def build_dataset(
    data_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    metadata: str | Sequence[str] | None = "passthrough",
    *,
    keep_unlabeled: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    overwrite: bool = False,
    pretty_name: str | None = None,
    figures: bool = True,
    progress: bool = True,
    skip_bad: bool = False,
) -> dict:
    """Export the AffectNet+ dataset folder (module docstring) and return its build summary.

    Args:
        data_dir: the source (any layout :func:`affectnetplus_hf.sources.open_source` reads).
        labels_dir: a complete labeling run of that source (``affectnetplus label``).
        dataset_dir: the folder to write (absent or empty unless ``overwrite``). ``overwrite`` replaces
            only a folder an earlier build wrote (its run-folder marker, kind ``dataset``), never
            ``data_dir``, ``labels_dir`` or a folder above them (``ValueError``); a folder holding other
            files is refused and left as it is. A second build on the same folder while one runs stops
            at once naming the first (:class:`~affectnetplus_hf.run_folder.RunFolderError`, a ``ValueError``).
        skip_bad: an image whose size or sha256 differs from the one recorded at labeling (or that is
            gone) is left out, counted and listed in ``statistics.json`` (``changed_images``); without
            it such an image raises ``ValueError`` naming it. A label run without image hashes is
            embedded unchecked.
        metadata: annotator chain for the metadata columns (``docs/method.md#metadata``)
            (``"synthetic,solvepnp"``, ``"passthrough"``, ``"csv:PATH"``, ...; see
            :mod:`affectnetplus_hf.metadata`), or ``None`` for all-null metadata.
        keep_unlabeled: keep images without a hard label (AffectNet codes 8–10) in the ``default``
            config (``data/{split}/unassigned-*``); otherwise they are left out and counted.
        max_file_bytes: start a new Parquet file when a file's images reach this size.
        pretty_name: the card title (default from the source kind).
        figures: draw the Fig. 4-like figures into ``images/``.
    """
    from affectnetplus_hf.labeling import read_manifest
    from affectnetplus_hf.sources import open_source

    dataset_dir = Path(os.path.abspath(os.path.expanduser(os.fspath(dataset_dir))))
    check_not_inputs(dataset_dir, {"DATA_DIR": data_dir, "LABELS_DIR": labels_dir}, "dataset folder")
    manifest = read_manifest(labels_dir)
    source = open_source(os.fspath(data_dir))
    options = BuildOptions(
        metadata if isinstance(metadata, str) or metadata is None else ",".join(metadata),
        keep_unlabeled,
        max_file_bytes,
        pretty_name,
        figures,
        progress,
        skip_bad,
    )
    identity = dataset_identity(
        manifest,
        getattr(source, "kind", None) or "unknown",
        options.metadata,
        keep_unlabeled=keep_unlabeled,
        max_file_bytes=max_file_bytes,
        pretty_name=pretty_name,
        figures=figures,
        skip_bad=skip_bad,
    )
    with RunFolder(dataset_dir, "dataset", identity, version=DATASET_VERSION) as run:  # locked for the whole build
        if run.start(overwrite=overwrite, resume=False) == "replace":
            logger.info("replacing the dataset folder %s (built earlier)", dataset_dir)
        summary = _build(source, data_dir, labels_dir, run, options)
    logger.info(
        "dataset written to %s (%s)",
        dataset_dir,
        ", ".join(f"{split}: {export.rows} rows" for split, export in summary.splits.items()),
    )
    return summary.to_dict()


def _build(source, data_dir, labels_dir, run: RunFolder, options: BuildOptions) -> BuildSummary:
    """The build itself, under ``run``'s lock: checks the labels against the source, then writes the folder
    into ``run``'s staging folder (:meth:`RunFolder.publish`)."""
    labels, manifest = _labels_by_key(labels_dir)
    splits = _label_splits(manifest, source, data_dir)
    records_by_split = _labeled_records(source, splits, manifest, data_dir, labels_dir)
    columns = _RowColumns.of(records_by_split)
    summary = BuildSummary.start(source, run.identity["source_kind"], manifest, options.metadata)
    table_rows = _SubsetTableRows()
    with run.publish() as staging:
        for split in splits:
            kept = _kept_records(split, records_by_split[split], labels, summary, options)
            metadata_rows = _metadata_rows(split, kept, summary, options)
            summary.splits[split] = _export_split(
                staging, split, kept, metadata_rows, columns, summary, table_rows, options
            )
        _warn_left_out(summary)
        summary.subset_table = subset_table(table_rows.columns(), splits=splits)
        _write_reports(staging, summary, columns, splits, options)
    return summary


def _label_splits(manifest: Mapping[str, Any], source, data_dir) -> list[str]:
    """The labeled splits in :data:`SPLIT_ORDER` (others after); ``ValueError`` when the source lacks one."""
    label_splits = list(manifest["config"]["splits"])
    splits = [s for s in SPLIT_ORDER if s in label_splits] + [s for s in label_splits if s not in SPLIT_ORDER]
    missing_splits = [s for s in splits if s not in source.splits]
    if missing_splits:
        raise ValueError(
            f"the labels hold split(s) {missing_splits} that the source at {os.fspath(data_dir)!r} does not have"
        )
    return splits


def _labeled_records(
    source, splits: Sequence[str], manifest: Mapping[str, Any], data_dir, labels_dir
) -> dict[str, list[FaceRecord]]:
    """``{split: records}`` of the source, checked to be the record list the labels were made from."""
    from affectnetplus_hf.labeling import labeled_records_fingerprint

    records_by_split = {split: list(source.records(split)) for split in splits}
    if labeled_records_fingerprint(records_by_split) != manifest["config"].get("records"):
        raise ValueError(
            f"the source at {os.fspath(data_dir)!r} is not the one labeled in {os.fspath(labels_dir)!r} "
            "(its image ids, splits or hard labels differ); label it again"
        )
    return records_by_split


def _kept_records(
    split: str,
    records: Sequence[FaceRecord],
    labels: Mapping[tuple[str, str], dict],
    summary: BuildSummary,
    options: BuildOptions,
) -> list[tuple[FaceRecord, dict]]:
    """The records of ``split`` with their label rows; those without a label row, or without a hard label
    (unless ``keep_unlabeled``), are left out and counted in ``summary``."""
    kept: list[tuple[FaceRecord, dict]] = []
    without = 0
    for record in records:
        label = labels.get((split, record.image_id))
        if label is None:
            summary.not_labelled.append({"split": split, "image_id": record.image_id})
        elif record.hard_label is None and not options.keep_unlabeled:
            without += 1
        else:
            kept.append((record, label))
    summary.without_hard_label[split] = without
    return kept


def _metadata_rows(
    split: str, kept: Sequence[tuple[FaceRecord, dict]], summary: BuildSummary, options: BuildOptions
) -> list[dict[str, Any]]:
    """The metadata cells of each kept record (all null without ``metadata``); images an annotator could
    not annotate are listed in ``summary.metadata_skipped``."""
    from affectnetplus_hf.metadata import METADATA_COLUMNS, annotate

    if not options.metadata:
        return [{c: None for c in METADATA_COLUMNS} for _ in kept]
    columns = annotate([r for r, _ in kept], options.metadata, on_error="skip", progress=options.progress)
    summary.metadata_skipped.extend({"split": split, "image_id": i, "error": e} for i, e in columns.skipped)
    return [{c: columns[c][k] for c in METADATA_COLUMNS} for k in range(len(kept))]


def _export_split(
    staging: Path,
    split: str,
    kept: Sequence[tuple[FaceRecord, dict]],
    metadata_rows: Sequence[dict[str, Any]],
    columns: _RowColumns,
    summary: BuildSummary,
    table_rows: _SubsetTableRows,
    options: BuildOptions,
) -> SplitExport:
    """Write the rows of one split into ``staging/data/{split}/``, one file group per subset; an image
    changed since labeling raises, or with ``skip_bad`` is left out and listed in ``summary``."""
    from tqdm.auto import tqdm

    folder = staging / "data" / split
    folder.mkdir(parents=True)
    writers = {g: _GroupWriter(folder, g, columns.features, options.max_file_bytes) for g in options.groups}
    bar = tqdm(total=len(kept), unit="img", desc=f"export {split}", disable=not options.progress)
    changed = 0
    for (record, label), metadata in zip(kept, metadata_rows):
        data, problem = _read_checked(record, label)
        if problem is not None:
            if not options.skip_bad:
                raise ValueError(f"{problem}; label it again, or pass skip_bad=True (--skip-bad) to leave it out")
            summary.changed_images.append({"split": split, "image_id": record.image_id, "error": problem})
            changed += 1
        else:
            row = make_row(record, label, metadata, columns.with_truth, columns.with_votes, image_bytes=data)
            writers[label["subset"] or UNASSIGNED].add(row)
            table_rows.add(split, record.hard_label, label["subset"])
        bar.update(1)
    bar.close()
    files = {g: [p.relative_to(staging).as_posix() for p in w.close()] for g, w in writers.items()}
    return SplitExport(len(kept) - changed, {g: w.rows for g, w in writers.items()}, files)


def _warn_left_out(summary: BuildSummary) -> None:
    """Log the images left out because they changed since labeling or have no label row."""
    if summary.changed_images:
        logger.warning(
            "%d image(s) changed since they were labeled and are left out: %s",
            len(summary.changed_images),
            ", ".join(i["image_id"] for i in summary.changed_images[:10]),
        )
    if summary.not_labelled:
        logger.warning(
            "%d image(s) of the source have no label row (skipped as bad at labeling?) and are left out: %s",
            len(summary.not_labelled),
            ", ".join(i["image_id"] for i in summary.not_labelled[:10]),
        )


def _write_reports(
    staging: Path, summary: BuildSummary, columns: _RowColumns, splits: Sequence[str], options: BuildOptions
) -> None:
    """The subset figures, ``statistics.json`` and the card of a build (its ``subset_table`` filled)."""
    figure_paths = {}
    if options.figures:
        figure_paths = {
            split: Path(path).relative_to(staging).as_posix()
            for split, path in write_subset_figures(summary.subset_table, staging / "images").items()
        }
    statistics = summary.to_dict()
    write_json_atomic(staging / "statistics.json", statistics)
    card = render_card(
        statistics,
        columns.features,
        splits,
        figure_paths,
        summary.source_kind,
        options.pretty_name,
        options.keep_unlabeled,
    )
    write_text_atomic(staging / "README.md", card)


def _read_checked(record: FaceRecord, label: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    """``(image bytes, None)``, or ``(None, why)`` when the image is gone or differs from the size and
    sha256 recorded when it was labeled (label runs without them are not checked)."""
    from affectnetplus_hf.images import BadImageError, image_identity, read_record_bytes

    expected_size, expected_sha = label.get("image_size_bytes"), label.get("image_sha256")
    where = record.image_path if record.image_path is not None else record.image_id
    try:
        data = read_record_bytes(record)
    except BadImageError as error:
        if expected_sha is None:
            raise
        return None, f"{record.image_id}: image {where} is gone since it was labeled ({error})"
    if expected_sha is None:
        return data, None
    size, sha = image_identity(data)
    if (expected_size is not None and size != expected_size) or sha != expected_sha:
        return None, (
            f"{record.image_id}: image {where} changed since it was labeled ({expected_size} bytes, "
            f"sha256 {expected_sha[:12]}... then; {len(data)} bytes now)"
        )
    return data, None


# --------------------------------------------------------------------------------------------------
# push
# --------------------------------------------------------------------------------------------------


def check_dataset_dir(dataset_dir: str | os.PathLike) -> Path:
    """``FileNotFoundError`` unless ``dataset_dir`` looks like a built dataset folder (README.md + data/)."""
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {os.fspath(dataset_dir)!r} does not exist")
    for needed in ("README.md", "data"):
        if not (folder / needed).exists():
            raise FileNotFoundError(
                f"{os.fspath(folder / needed)!r} is missing: {os.fspath(dataset_dir)!r} is not "
                "a folder written by `affectnetplus build`"
            )
    return folder


def _card_source_kind(folder: Path) -> str | None:
    statistics = folder / "statistics.json"
    if statistics.is_file():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            return json.loads(statistics.read_text()).get("source_kind")
    return None


def push_dataset(
    dataset_dir: str | os.PathLike,
    repo_id: str,
    *,
    public: bool = False,
    license_note: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload AffectNet+ dataset folder",
    api=None,
) -> str:
    """Upload a dataset folder to the hub with :mod:`huggingface_hub`; returns the commit URL.

    The repository is created **private** unless ``public=True``, and a public push needs a
    ``license_note`` (added to the card, :func:`~affectnetplus_hf.reports.dataset_card.write_license_note`)
    saying why the data may be redistributed — AffectNet's license forbids it. Pushing without ``public``
    into an existing *public* repository refuses too.

    The folder's lock (:class:`~affectnetplus_hf.run_folder.FolderLock`) is held while the card is edited and
    the files are uploaded, so a push never uploads a folder that a build is replacing (and a build waits for
    no push: it stops naming it). The run-folder marker (:data:`~affectnetplus_hf.run_folder.MARKER_FILE`) is
    local bookkeeping (which labels and settings built the folder, so that ``build --overwrite`` may replace
    it) and is not uploaded; ``statistics.json`` carries the build summary for hub users.
    """
    from huggingface_hub import HfApi

    from affectnetplus_hf.run_folder import FolderLock

    folder = check_dataset_dir(dataset_dir)
    _check_push(folder, repo_id, public, license_note)
    api = api or HfApi(token=token)
    with FolderLock(os.path.abspath(folder)):
        _create_repo(api, repo_id, public)
        if license_note:
            write_license_note(folder / "README.md", license_note)
        result = api.upload_folder(
            folder_path=os.fspath(folder),
            repo_id=repo_id,
            repo_type="dataset",
            commit_message=commit_message,
            ignore_patterns=[MARKER_FILE],
        )
    return str(getattr(result, "commit_url", result))


def _check_push(folder: Path, repo_id: str, public: bool, license_note: str | None) -> None:
    """``ValueError`` for a malformed ``repo_id`` or a public push without a license note; a warning for a
    public push of AffectNet images."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    if public and not (license_note and license_note.strip()):
        raise ValueError(
            "a public push needs --license-note TEXT saying why these images may be redistributed "
            "(AffectNet's license forbids redistribution; the synthetic sample is MIT)"
        )
    if public and _card_source_kind(folder) == "affectnet":
        logger.warning("pushing a dataset built from AffectNet publicly; the license note says: %s", license_note)


def _create_repo(api, repo_id: str, public: bool) -> None:
    """Create the dataset repository (private unless ``public``); refuse a private push into a public one."""
    api.create_repo(repo_id, repo_type="dataset", private=not public, exist_ok=True)
    info = api.repo_info(repo_id, repo_type="dataset")
    if not public and not getattr(info, "private", True):
        raise ValueError(
            f"dataset repository {repo_id!r} already exists and is public; refusing to upload without "
            "--public and --license-note (or make the repository private first)"
        )


__all__ = [
    "COLUMN_DOCS",
    "CONFIG_NAMES",
    "LICENSES",
    "LICENSE_NOTE_BEGIN",
    "LICENSE_NOTE_END",
    "BuildOptions",
    "BuildSummary",
    "SplitExport",
    "affectnetplus_features",
    "build_dataset",
    "card_metadata",
    "check_dataset_dir",
    "check_not_inputs",
    "check_soft_label_cells",
    "config_rows",
    "dataset_identity",
    "make_row",
    "push_dataset",
    "read_checked_labels",
    "render_card",
]
