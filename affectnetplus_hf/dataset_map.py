"""Soft-label any 🤗 ``datasets`` dataset in place: a batched map function.

::

    fn = labeler.map_function(image_column="image", hard_label_column="label")
    ds = ds.map(fn, batched=True, batch_size=64, features=fn.map_features(ds.features))

:class:`SoftLabelMap` adds the columns of a label shard (:data:`~affectnetplus_hf.labeling.SOFT_LABEL_COLUMNS`,
8 ``float32`` in ``docs/method.md#label-space`` order; null for what the soft-labeler lacks), ``subset`` (with
``hard_label_column``) and ``bad_image`` (with ``skip_bad``). Every batch goes through the model's image
processor and :func:`affectnetplus_hf.models.runner.iter_soft_labels`, so a row gets the soft label
:meth:`SoftLabeler.predict <affectnetplus_hf.models.SoftLabeler.predict>` gives its image. Pass
``features=fn.map_features(ds.features)`` (``datasets`` infers types from the first batch) and
``batched=True``. How images, bad images, rows, hard labels and processes are handled:
``docs/architecture.md#map-function``. :func:`label_hf_dataset` is ``affectnetplus label --hf-dataset``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import NUM_EMOTIONS
from affectnetplus_hf.labeling import SOFT_LABEL_COLUMNS
from affectnetplus_hf.pretrained import resolve_model

logger = logging.getLogger(__name__)

SUBSET_COLUMN = "subset"
BAD_IMAGE_COLUMN = "bad_image"
#: With ``detect_faces=True``: the face box used, ``(x0, y0, x1, y1)`` in the upright image (null: no face).
FACE_BOX_COLUMN = "face_box"


def map_features(
    features, *, hard_label_column: str | None = None, skip_bad: bool = False, detect_faces: bool = False
):
    """``features`` plus the columns :class:`SoftLabelMap` adds, for ``ds.map(..., features=...)``.

    The soft-label columns are ``List(Value("float32"), length=8)`` (as in
    :func:`affectnetplus_hf.dataset.affectnetplus_features`), ``subset`` (with ``hard_label_column``) and
    ``bad_image`` (with ``skip_bad``) are strings, ``face_box`` (with ``detect_faces``) 4 float32. A column
    of the same name in ``features`` is replaced.
    ``features=None`` (a streamed dataset of unknown columns) gives ``None``.
    """
    if features is None:
        return None
    from datasets import Features, List, Value

    result = Features(dict(features))
    for name in SOFT_LABEL_COLUMNS:
        result[name] = List(Value("float32"), length=NUM_EMOTIONS)
    if hard_label_column is not None:
        result[SUBSET_COLUMN] = Value("string")
    if skip_bad:
        result[BAD_IMAGE_COLUMN] = Value("string")
    if detect_faces:
        result[FACE_BOX_COLUMN] = List(Value("float32"), length=4)
    return result


def _directory_identity(path: str) -> list | str:
    """Names, sizes and modification times of a model directory's files (a hub id: the id)."""
    if not os.path.isdir(path):
        return path
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            stat = os.stat(os.path.join(root, name))
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    return entries


def _is_pretrained(model) -> bool:
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


class _PortableModel:
    """A ``PreTrainedModel`` pickled as (class, config, safetensors bytes of its weights, image processor).

    ``datasets`` fingerprints a map function by pickling it with ``dill``; walking a model's modules that
    way takes seconds even for a tiny ensemble, while its weights as one ``bytes`` object hash at memory
    speed. Unpickled (in a ``num_proc`` worker) it rebuilds the model with the same tensors.
    """

    def __init__(self, model) -> None:
        self.model = model

    def __reduce__(self):
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        return _rebuild_model, (type(self.model), self.model.config.to_dict(), save(state), self.model.image_processor)


def _rebuild_model(cls, config: dict, weights: bytes, processor):
    from safetensors.torch import load

    model = cls.from_state_dict(cls.config_class.from_dict(config), load(weights))
    model.image_processor = processor
    return model


def _label_index(names: Sequence[str], where: str = "hard_label_names") -> list[int | None]:
    """Class names (of a ``ClassLabel``) → emotion index (``docs/method.md#label-space``) or ``None``."""
    from affectnetplus_hf.sources.folder import parse_emotion_label

    return [parse_emotion_label(str(name), where) for name in names]


@dataclass
class _BatchPixels:
    """A batch's preprocessed images: ``pixel_values`` of the ``good`` rows (positions in the batch), the
    reason of each bad image by position, and with ``detect_faces`` the face box of each row."""

    pixel_values: Any
    bad: dict[int, str]
    good: list[int]
    face_boxes: list | None = None


_forked = {"pending": False}


def _note_fork() -> None:
    _forked["pending"] = True


os.register_at_fork(after_in_child=_note_fork)


def _one_thread_in_forked_worker() -> None:
    """In a process forked from one whose OpenMP thread pool was in use (``map(num_proc=N)`` workers), one
    intra-op thread, as DataLoader workers do: GNU OpenMP is not fork-safe, and a forked child that enters
    a parallel region waits forever."""
    if _forked["pending"]:
        import torch

        torch.set_num_threads(1)
        _forked["pending"] = False


class SoftLabelMap:
    """A batched ``datasets`` map function adding AffectNet+ soft labels (see the module docstring).

    Args:
        model: a :class:`~affectnetplus_hf.models.SoftLabeler` or its saved directory (loaded lazily,
            once per process, with :func:`affectnetplus_hf.models.hub.load_soft_labeler`).
        image_column: the column of images (``Image`` feature, PIL images, ``{"bytes", "path"}`` dicts,
            paths, encoded bytes or uint8 arrays).
        hard_label_column: a column of hard labels (emotion indices 0–7 in label-space order, a
            ``ClassLabel`` of emotion names, or names); adds ``subset``.
        hard_label_names: class names of ``hard_label_column`` (default: read from a ``Dataset``'s
            ``ClassLabel``); each name must be an emotion (any case), an index, or a non-emotion label.
        face_box_column: a column of ``(x0, y0, x1, y1)`` face boxes in image pixels (null: whole image).
        id_column: a column naming rows in :attr:`skipped` and messages (default: the row index when
            ``map`` is called with ``with_indices=True``, else ``None``: messages name the row's position in
            its batch and its image).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: the model's device (CPU for a directory).
        dtype: autocast dtype, ``"fp32"`` (default: exact, as ``affectnetplus label``), ``"bf16"``,
            ``"fp16"`` or ``"auto"`` (bf16 on CUDA).
        skip_bad: give unreadable images null soft labels and a ``bad_image`` reason instead of raising.
        detect_faces: run the face stage first (``docs/method.md#face-stage``: EXIF-upright, detected,
            eyes levelled, framed), label the largest face, and add ``face_box``; a row without a face
            gets null soft labels and a null ``face_box`` (``no_face="whole"``: the whole image,
            ``"error"``: raise). The same path as ``affectnetplus predict``.
        detector: the face detector's name (``"auto"``: the best installed).
        no_face: ``"skip"``, ``"whole"`` or ``"error"`` (see ``detect_faces``).
    """

    def __init__(
        self,
        model,
        image_column: str = "image",
        *,
        hard_label_column: str | None = None,
        hard_label_names: Sequence[str] | None = None,
        face_box_column: str | None = None,
        id_column: str | None = None,
        device: str | None = None,
        dtype: str = "fp32",
        skip_bad: bool = False,
        detect_faces: bool = False,
        detector: str = "auto",
        no_face: str = "skip",
    ) -> None:
        from affectnetplus_hf.faces.pipeline import NO_FACE_CHOICES
        from affectnetplus_hf.models.runner import check_dtype

        check_dtype(dtype)
        if detect_faces and face_box_column is not None:
            raise ValueError("give face_box_column (annotated boxes) or detect_faces=True, not both")
        if no_face not in NO_FACE_CHOICES:
            raise ValueError(f"no_face must be one of {', '.join(NO_FACE_CHOICES)}; got {no_face!r}")
        if isinstance(model, (str, os.PathLike)):
            self.model_dir: str | None = resolve_model(model)
            self._model = None
            self._model_identity = _directory_identity(self.model_dir)
        else:
            if not hasattr(model, "image_processor") or not callable(model):
                raise TypeError(f"model must be a SoftLabeler or its saved directory, got {type(model).__name__}")
            self.model_dir = None
            self._model = model
            self._model_identity = None
        self.image_column = str(image_column)
        self.hard_label_column = hard_label_column
        self.hard_label_names = list(hard_label_names) if hard_label_names is not None else None
        self._label_index = _label_index(self.hard_label_names) if self.hard_label_names is not None else None
        self.face_box_column = face_box_column
        self.id_column = id_column
        self.device = None if device is None else str(device)
        self.dtype = dtype
        self.skip_bad = bool(skip_bad)
        self.detect_faces, self.detector, self.no_face = bool(detect_faces), str(detector), no_face
        self._finder = None
        #: ``(index or id, reason)`` of every row this process gave null soft labels (``skip_bad``).
        self.skipped: list[tuple[Any, str]] = []
        #: The hint of a bad image's error (``label --hf-dataset`` names its flag, ``--skip-bad``).
        self.skip_bad_hint = "pass skip_bad=True to give it null soft labels"

    # ---- pickling (num_proc) and fingerprinting (the datasets cache) -------------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["skipped"] = []
        state["_finder"] = None
        if self.model_dir is not None:
            state["_model"] = None  # reloaded in the process that runs the callable
        elif _is_pretrained(self._model):
            state["_model"] = _PortableModel(self._model)
            if self.device is None:
                state["device"] = str(next(self._model.parameters()).device)
        return state

    @property
    def model(self):
        """The soft-labeler (loaded from :attr:`model_dir` on first use)."""
        if self._model is None:
            from affectnetplus_hf.models.hub import load_soft_labeler

            self._model = load_soft_labeler(self.model_dir)
        return self._model

    def map_features(self, features):
        """:func:`map_features` for this callable's columns:
        ``ds.map(fn, ..., features=fn.map_features(ds.features))``."""
        return map_features(
            features, hard_label_column=self.hard_label_column, skip_bad=self.skip_bad, detect_faces=self.detect_faces
        )

    # ---- the map function --------------------------------------------------------------------------

    def __call__(self, batch: Mapping[str, Any], indices: Sequence[int] | None = None) -> dict[str, list]:
        """Soft labels of one batch (``{column: [values]}``); ``indices`` when ``map(with_indices=True)``."""
        _one_thread_in_forked_worker()
        self._check_batch(batch)
        sources, names = self._images(batch)
        n = len(sources)
        rows = self._rows(batch, indices, n)
        boxes = self._face_boxes(batch)
        model = self.model
        pixels = self._pixels(model.image_processor, sources, boxes, names, rows)
        result = self._soft_labels(model, pixels.pixel_values, pixels.good, n)
        if self.hard_label_column is not None:
            result[SUBSET_COLUMN] = self._subsets(batch, result["soft_label"], pixels.good)
        if self.skip_bad:
            result[BAD_IMAGE_COLUMN] = [pixels.bad.get(k) for k in range(n)]
        if self.detect_faces:
            result[FACE_BOX_COLUMN] = pixels.face_boxes
        return result

    def _check_batch(self, batch: Mapping[str, Any]) -> None:
        """``KeyError`` for a column the batch lacks, ``TypeError`` for one row (``map`` without ``batched``)."""
        for column in (self.image_column, self.hard_label_column, self.face_box_column, self.id_column):
            if column is not None and column not in batch:
                raise KeyError(f"column {column!r} not in the dataset (it has {sorted(batch.keys())})")
        if _is_one_row(batch, self.image_column):
            raise TypeError(
                f"SoftLabelMap is a batched map function: call ds.map(fn, batched=True) (column "
                f"{self.image_column!r} holds one image, not a batch of them)"
            )

    def _face_boxes(self, batch: Mapping[str, Any]) -> list[list[float] | None] | None:
        """The annotated face boxes of ``face_box_column`` (``None`` without it)."""
        if self.face_box_column is None:
            return None
        return [None if box is None else [float(v) for v in box] for box in batch[self.face_box_column]]

    def _pixels(self, processor, sources, boxes, names, rows) -> _BatchPixels:
        """The batch's images preprocessed (through the face stage with ``detect_faces``)."""
        if self.detect_faces:
            pixel_values, bad, face_boxes = self._detect(processor, sources, names, rows)
            good = [k for k in range(len(sources)) if k not in bad and face_boxes[k] is not None]
            return _BatchPixels(pixel_values, bad, good, face_boxes)
        pixel_values, bad = self._preprocess(processor, sources, boxes, names, rows)
        return _BatchPixels(pixel_values, bad, [k for k in range(len(sources)) if k not in bad])

    def _soft_labels(self, model, pixel_values, good: Sequence[int], n: int) -> dict[str, list]:
        """``{soft-label column: n cells}``: the model's outputs for the ``good`` rows, null elsewhere."""
        from affectnetplus_hf.models.runner import iter_soft_labels

        result: dict[str, list] = {column: [None] * n for column in SOFT_LABEL_COLUMNS}
        if not good:
            return result
        for _, output in iter_soft_labels(
            model, [{"pixel_values": pixel_values}], device=self.device, dtype=self.dtype
        ):
            for column, field_name in SOFT_LABEL_COLUMNS.items():
                value = getattr(output, field_name)
                if value is None:
                    continue
                values = value.float().numpy()
                for j, k in enumerate(good):
                    result[column][k] = values[j]
        return result

    def _subsets(self, batch: Mapping[str, Any], soft_labels: Sequence, good: Sequence[int]) -> list[str | None]:
        """The subset of each good row with an emotion hard label (``docs/method.md#subsets``), else None."""
        from affectnetplus_hf.subsets import assign_subsets

        hard = self._hard_labels(batch)
        subsets: list[str | None] = [None] * len(soft_labels)
        labelled = [k for k in good if hard[k] is not None]
        if labelled:
            soft = np.stack([soft_labels[k] for k in labelled])
            names_out = assign_subsets(soft, np.asarray([hard[k] for k in labelled], dtype=np.int64))
            for k, subset in zip(labelled, names_out):
                subsets[k] = str(subset)
        return subsets

    # ---- helpers -----------------------------------------------------------------------------------

    def _rows(self, batch: Mapping[str, Any], indices: Sequence[int] | None, n: int) -> list[tuple[Any, str]]:
        """``(key in skipped, text naming the row)`` of each row: its index in the dataset being mapped
        (``map(with_indices=True)``), its ``id_column`` value, else ``None`` and its position in the batch
        (a map function is not told where its batch starts, and one callable may map several datasets)."""
        if indices is not None:
            return [(int(i), f"row {int(i)}") for i in indices]
        if self.id_column is not None:
            return [(key, f"row {self.id_column}={key!r}") for key in batch[self.id_column]]
        return [(None, f"row {k} of its batch") for k in range(n)]

    def _images(self, batch: Mapping[str, Any]) -> tuple[list, list[str | None]]:
        """``(sources for the image processor, path of each image or None)``."""
        from affectnetplus_hf.models.runner import as_image_sources

        values = _undecoded_images(batch, self.image_column)
        if values is None:
            values = list(batch[self.image_column])
        sources, names = [], []
        for value in values:
            if isinstance(value, Mapping):  # an Image cell: {"bytes": ..., "path": ...}
                data, path = value.get("bytes"), value.get("path")
                sources.append(data if data is not None else path)
                names.append(path)
            elif isinstance(value, (str, os.PathLike)):
                sources.append(value)
                names.append(os.fspath(value))
            else:
                sources.append(as_image_sources([value])[0])
                names.append(getattr(value, "filename", None) or None)
        return sources, names

    def _preprocess(self, processor, sources, boxes, names, rows):
        """``(pixel_values of the good images, {position: reason} of the bad ones)``."""
        from affectnetplus_hf.images import BadImageError

        try:
            return processor.preprocess(sources, face_boxes=boxes, return_tensors="pt")["pixel_values"], {}
        except BadImageError:
            pass  # find which images are bad, one at a time
        import torch

        pieces, bad = [], {}
        for k, source in enumerate(sources):
            box = None if boxes is None else boxes[k]
            try:
                pieces.append(processor.preprocess([source], face_boxes=[box], return_tensors="pt")["pixel_values"])
            except BadImageError as error:
                bad[k] = self._bad_reason(error, k, names, rows)
        if pieces:
            pixel_values = torch.cat(pieces)
        else:
            pixel_values = torch.zeros((0, 3, processor.size["height"], processor.size["width"]), dtype=torch.float32)
        return pixel_values, bad

    def _bad_reason(self, error, k: int, names, rows) -> str:
        """The named reason of a bad image (``rows``: :meth:`_rows`); raised unless ``skip_bad``, else
        logged and listed."""
        from affectnetplus_hf.images import BadImageError

        key, row = rows[k]
        where = f"{self.image_column!r} of {row}"
        if names[k] and names[k] not in str(error):
            where += f" ({names[k]})"
        reason = f"{where}: {error}"
        if not self.skip_bad:
            hint = self.skip_bad_hint
            if key is None:
                hint += "; map with with_indices=True to name rows by their index"
            raise BadImageError(f"{reason}; {hint}") from error
        logger.warning("bad image, null soft labels: %s", reason)
        self.skipped.append((key, reason))
        return reason

    def _detect(self, processor, sources, names, rows):
        """``(pixel_values of the rows with a face, {position: reason} of bad images, face box per row)``."""
        import torch

        from affectnetplus_hf.faces.pipeline import FaceFinder, photo_faces
        from affectnetplus_hf.images import BadImageError

        if self._finder is None:
            self._finder = FaceFinder(self.detector, faces="largest", processor=processor)
        pieces, bad, face_boxes = [], {}, []
        for k, source in enumerate(sources):
            try:
                (row,) = photo_faces(self._finder, processor, source, names[k] or rows[k][1], no_face=self.no_face)
            except BadImageError as error:
                bad[k] = self._bad_reason(error, k, names, rows)
                face_boxes.append(None)
                continue
            face_boxes.append(None if row.pixel_values is None else [float(v) for v in row.box])
            if row.pixel_values is not None:
                pieces.append(torch.from_numpy(row.pixel_values)[None])
        empty = (0, 3, processor.size["height"], processor.size["width"])
        pixel_values = torch.cat(pieces) if pieces else torch.zeros(empty, dtype=torch.float32)
        return pixel_values, bad, face_boxes

    def _hard_labels(self, batch: Mapping[str, Any]) -> list[int | None]:
        """The batch's hard labels as emotion indices 0–7 (``None``: no emotion label)."""
        from affectnetplus_hf.sources.folder import parse_emotion_label

        index = self._label_index
        if index is None:
            names = _class_label_names(batch, self.hard_label_column)
            where = f"ClassLabel names of column {self.hard_label_column!r} (pass hard_label_names= to override)"
            index = _label_index(names, where) if names is not None else None
        labels: list[int | None] = []
        for value in batch[self.hard_label_column]:
            if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
                labels.append(None)
            elif isinstance(value, str):
                labels.append(parse_emotion_label(value, f"column {self.hard_label_column!r}"))
            elif isinstance(value, (bool, np.bool_)) or not float(value).is_integer():
                raise ValueError(f"column {self.hard_label_column!r}: hard label {value!r} is not an emotion index")
            else:
                value = int(value)
                if index is not None:
                    labels.append(index[value] if 0 <= value < len(index) else None)
                else:
                    labels.append(value if 0 <= value < NUM_EMOTIONS else None)
        return labels


def _is_one_row(batch: Mapping[str, Any], column: str) -> bool:
    """Whether ``map`` passed one row (no ``batched=True``): a ``Dataset``'s ``LazyRow``, or a single image
    (path, ``{"bytes", "path"}`` cell, PIL image, ...) where a batch holds a list of them."""
    try:
        from datasets.formatting.formatting import LazyBatch, LazyRow
    except ImportError:  # pragma: no cover - another datasets layout
        LazyBatch = LazyRow = ()
    if isinstance(batch, LazyRow):
        return True
    if isinstance(batch, LazyBatch):
        return False  # reading the column here would decode its images
    value = batch[column]
    return isinstance(value, (str, bytes, bytearray, os.PathLike, Mapping)) or not hasattr(value, "__len__")


def _arrow_table(batch: Mapping[str, Any]):
    """The Arrow table behind a ``Dataset.map`` batch (a ``datasets`` LazyBatch), else ``None``."""
    try:
        from datasets.formatting.formatting import LazyDict
    except ImportError:  # pragma: no cover - another datasets layout
        return None
    return getattr(batch, "pa_table", None) if isinstance(batch, LazyDict) else None


def _undecoded_images(batch: Mapping[str, Any], column: str) -> list | None:
    """An ``Image`` column's ``{"bytes", "path"}`` cells read from Arrow, not yet decoded by ``datasets``;
    ``None`` when the batch is not a lazy ``Dataset`` batch, the column is already decoded or not an image
    struct, or a cell's image lives at a non-local path (``datasets`` decodes those itself)."""
    table = _arrow_table(batch)
    if table is None or column not in getattr(batch, "keys_to_format", ()) or column not in table.column_names:
        return None
    import pyarrow as pa

    array = table.column(column)
    if not pa.types.is_struct(array.type) or {"bytes", "path"} - {f.name for f in array.type}:
        return None
    cells = array.to_pylist()
    for cell in cells:
        if cell is not None and cell.get("bytes") is None and not (cell.get("path") and os.path.isfile(cell["path"])):
            return None
    return cells


def _class_label_names(batch: Mapping[str, Any], column: str) -> list[str] | None:
    """Class names of a ``ClassLabel`` column, from the features stored with a ``Dataset`` batch."""
    table = _arrow_table(batch)
    if table is None or not table.schema.metadata:
        return None
    try:
        from datasets import ClassLabel, Features

        feature = Features.from_arrow_schema(table.schema).get(column)
    except Exception:  # noqa: BLE001 - no readable features: the values are taken as indices
        return None
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``save_to_disk`` folder (of a ``Dataset`` or a ``DatasetDict``)."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or (
        os.path.isfile(os.path.join(path, "state.json")) and os.path.isfile(os.path.join(path, "dataset_info.json"))
    )


@dataclass(frozen=True)
class _HfLabelOptions:
    """The settings of ``label --hf-dataset`` (:func:`label_hf_dataset`) that reach the map function."""

    image_column: str
    hard_label_column: str | None
    face_box_column: str | None
    split: str | None
    batch_size: int
    num_proc: int | None
    device: str
    dtype: str
    skip_bad: bool

    def identity(self, model_dir: str | os.PathLike) -> dict[str, Any]:
        """The output folder's run-folder identity: the model and the settings that change the rows."""
        from affectnetplus_hf.labeling import model_fingerprint

        return {
            "model": model_fingerprint(model_dir),
            "image_column": self.image_column,
            "split": self.split,
            "hard_label_column": self.hard_label_column,
            "face_box_column": self.face_box_column,
            "batch_size": int(self.batch_size),
            "dtype": self.dtype,
            "skip_bad": bool(self.skip_bad),
        }


@dataclass
class HfLabelSummary:
    """What :func:`label_hf_dataset` returns (as :meth:`to_dict`): rows and subset counts per split, and
    the rows given null soft labels (``{"split", "row", "error"}``)."""

    source: str
    out_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)
    bad_images: list[dict[str, Any]] = field(default_factory=list)

    def add_part(self, key: str, result, hard_label_column: str | None, skip_bad: bool) -> None:
        """One mapped split's rows, subset counts and images given null soft labels."""
        self.rows[key] = result.num_rows
        if hard_label_column:
            subsets = result[SUBSET_COLUMN]
            self.subsets[key] = {s: subsets.count(s) for s in ("easy", "challenging", "difficult")}
            self.subsets[key]["none"] = subsets.count(None)
        if skip_bad:
            self.bad_images.extend(
                {"split": key, "row": row, "error": reason}
                for row, reason in enumerate(result[BAD_IMAGE_COLUMN])
                if reason is not None
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "out_dir": self.out_dir,
            "rows": self.rows,
            "subsets": self.subsets,
            "bad_images": self.bad_images,
            "bad_image_count": len(self.bad_images),
        }


def label_hf_dataset(
    model_dir: str | os.PathLike,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_column: str = "image",
    hard_label_column: str | None = None,
    face_box_column: str | None = None,
    split: str | None = None,
    batch_size: int = 64,
    num_proc: int | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Soft-label a local 🤗 dataset and ``save_to_disk`` it to ``out_dir`` (``affectnetplus label --hf-dataset``).

    ``path``: a ``save_to_disk`` folder (``load_from_disk``) or a local folder ``load_dataset`` reads;
    ``split`` picks one split of a ``DatasetDict`` (default: all). ``out_dir`` is a run folder
    (:class:`affectnetplus_hf.run_folder.RunFolder`: locked, new or empty, replaced only with ``overwrite``
    when an earlier run wrote it); the result is staged beside it and swapped in. Nothing is written next
    to ``path`` (the ``map`` cache lives in a temporary sibling of ``out_dir``). Returns a summary: rows and
    subset counts per split, images given null soft labels. Messages name the ``label`` command's flags
    (``--skip-bad``, ...) and a row by its index in its split.
    """
    import tempfile

    from affectnetplus_hf.run_folder import RunFolder

    if int(batch_size) < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    source = _checked_hf_source(path)
    options = _HfLabelOptions(
        image_column, hard_label_column, face_box_column, split, batch_size, num_proc, device, dtype, skip_bad
    )
    identity = options.identity(model_dir)
    folder = RunFolder(out_dir, "hf-labels", identity)
    with (
        _progress_bars(progress),
        folder,
        tempfile.TemporaryDirectory(
            prefix=f".{folder.path.name}.hf-", dir=folder.lock.path.parent, ignore_cleanup_errors=True
        ) as work,
    ):
        folder.start(overwrite=overwrite, resume=False)
        summary = _label_and_save(model_dir, source, folder, work, identity, options)
    logger.info("wrote the soft-labelled dataset to %s", folder.path)
    return summary.to_dict()


def _checked_hf_source(path: str | os.PathLike) -> str:
    source = os.fspath(path)
    if not os.path.isdir(source):
        raise FileNotFoundError(
            f"--hf-dataset {source!r} is not a folder; expected a save_to_disk folder or a local folder that "
            "datasets.load_dataset reads (imagefolder, Parquet, ...)"
        )
    return source


@contextlib.contextmanager
def _progress_bars(progress: bool) -> Iterator[None]:
    """``datasets``' progress bars off inside (unless ``progress``), as they were after."""
    import datasets

    bars_were_on = not datasets.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not progress and bars_were_on:
            datasets.enable_progress_bars()


def _label_and_save(
    model_dir, source: str, folder, work: str, identity: dict[str, Any], options: _HfLabelOptions
) -> HfLabelSummary:
    """Map every split of ``source`` (its ``map`` cache in ``work``) and publish the result into ``folder``."""
    from datasets import DatasetDict

    from affectnetplus_hf.models.hub import load_soft_labeler
    from affectnetplus_hf.run_folder import records_fingerprint

    data = _load_hf_source(source, options.split, work)
    parts = dict(data) if isinstance(data, DatasetDict) else {None: data}
    # one model for every split; worker processes (num_proc > 1) load their own from the folder
    model = load_soft_labeler(model_dir) if not options.num_proc or options.num_proc <= 1 else os.fspath(model_dir)
    summary = HfLabelSummary(source, os.fspath(folder.path))
    mapped = {}
    for name, part in parts.items():
        fn = _cli_map_function(model, part, source, name, options)
        mapped[name] = part.map(
            fn,
            batched=True,
            with_indices=True,
            batch_size=int(options.batch_size),
            num_proc=options.num_proc,
            features=fn.map_features(part.features),
            cache_file_name=os.path.join(work, f"map-{name or 'data'}.arrow"),
            load_from_cache_file=False,
            new_fingerprint=records_fingerprint([sorted(identity.items()), [name]]),  # no hashing of the model
            desc=f"soft labels{f' {name}' if name else ''}",
        )
        summary.add_part(name or "data", mapped[name], options.hard_label_column, options.skip_bad)
    output = DatasetDict(mapped) if isinstance(data, DatasetDict) else mapped[None]
    with folder.publish() as staged:
        output.save_to_disk(os.fspath(staged))
    del output, mapped, data, parts  # the memory-mapped cache files, before the cache is removed
    return summary


def _load_hf_source(source: str, split: str | None, work: str):
    """The dataset at ``source`` (``load_from_disk`` or ``load_dataset`` with its cache in ``work``), one split of it
    when ``split`` is given."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    if is_saved_dataset(source):
        data = load_from_disk(source)
    else:
        data = load_dataset(source, cache_dir=os.path.join(work, "cache"))
    if split is None:
        return data
    if not isinstance(data, DatasetDict):
        raise ValueError(f"--split {split!r}: {source!r} holds one dataset, not a DatasetDict")
    if split not in data:
        raise ValueError(f"--split {split!r} not in {source!r} (it has {sorted(data)})")
    return data[split]


def _cli_map_function(model, part, source: str, name: str | None, options: _HfLabelOptions) -> SoftLabelMap:
    """The :class:`SoftLabelMap` for one split of ``label --hf-dataset``: its columns checked, hints naming the
    flags."""
    from datasets import ClassLabel

    columns = (options.image_column, options.hard_label_column, options.face_box_column)
    missing = [c for c in columns if c and c not in part.column_names]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in {source!r}"
            + (f" split {name!r}" if name else "")
            + f" (it has {part.column_names})"
        )
    feature = part.features.get(options.hard_label_column) if options.hard_label_column else None
    class_names = feature.names if isinstance(feature, ClassLabel) else None
    if class_names is not None:
        _label_index(class_names, f"ClassLabel names of --hard-label-column {options.hard_label_column!r}")
    fn = SoftLabelMap(
        model,
        options.image_column,
        hard_label_column=options.hard_label_column,
        hard_label_names=class_names,
        face_box_column=options.face_box_column,
        device=options.device,
        dtype=options.dtype,
        skip_bad=options.skip_bad,
    )
    fn.skip_bad_hint = "pass --skip-bad to give it null soft labels"
    return fn


__all__ = [
    "BAD_IMAGE_COLUMN",
    "FACE_BOX_COLUMN",
    "SUBSET_COLUMN",
    "SoftLabelMap",
    "is_saved_dataset",
    "label_hf_dataset",
    "map_features",
]
