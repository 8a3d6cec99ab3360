"""Soft labels of the faces in image files with a saved soft-labeler: the ``affectnetplus predict`` back-end.

* :func:`predict_files` — a ``pyarrow.Table`` of soft labels, one row per face (the face stage,
  ``docs/method.md#face-stage``), through :func:`affectnetplus_hf.models.runner.iter_soft_labels` (each
  image decoded once by a DataLoader).
* :func:`write_predictions` — that table as ``.csv``/``.jsonl``/``.parquet`` (atomically) or printed.

The runner's names (:func:`iter_soft_labels`, :func:`autocast_context`, :func:`prepare_for_inference`,
:func:`resolve_device`, :func:`as_image_sources`) and :func:`load_soft_labeler` are importable from
here too.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.fileio import atomic_path
from affectnetplus_hf.models.hub import load_soft_labeler
from affectnetplus_hf.models.runner import (
    as_image_sources,
    autocast_context,
    iter_soft_labels,
    prepare_for_inference,
    resolve_device,
)

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".jsonl", ".parquet")


#: Columns of a face row before the soft-label columns (``docs/method.md#face-stage``).
FACE_COLUMNS = ("path", "face", "x0", "y0", "x1", "y1", "score", "status")
#: ``--detector none``: the image is already a face crop (labelled whole, stored pixel grid).
NO_DETECTOR = "none"


def predict_files(
    model_dir: str,
    paths: Sequence[str],
    *,
    batch_size: int = 32,
    device: str = "cpu",
    dtype: str = "auto",
    num_workers: int = 0,
    skip_bad: bool = False,
    with_spread: bool = False,
    detector: str = "auto",
    faces: str = "largest",
    no_face: str = "skip",
):
    """Soft labels of the faces in image files with a saved soft-labeler; returns a ``pyarrow.Table``.

    One row per face (``faces="largest"``: the largest of each photo; ``"all"``: every face, left to
    right), found by the face stage (``docs/method.md#face-stage``: EXIF-upright, detected with
    ``detector``, eyes levelled, framed as the training faces). Columns: :data:`FACE_COLUMNS` (``face``:
    the face's left-to-right index; the box in the upright image's pixels; ``status``: ``face``,
    ``no_face`` or ``whole_image``), the 8 emotions (``docs/method.md#label-space`` order),
    ``<Emotion>_calibrated`` (calibrated models) and, with ``with_spread``, ``<Emotion>_spread``.
    A photo without a face: ``no_face="skip"`` → one ``no_face`` row with null values, ``"whole"`` → the
    whole image labelled (``whole_image``), ``"error"`` → :class:`~affectnetplus_hf.faces.NoFaceError`.
    ``detector="none"``: every image is a face crop, labelled whole (one ``whole_image`` row each).
    With ``skip_bad`` unreadable images are skipped, counted and listed in the log; otherwise the first
    one raises.
    """
    _check_predict_arguments(paths, batch_size, no_face, skip_bad)
    model = load_soft_labeler(model_dir)
    bad: list[tuple[str, str]] = []
    if detector == NO_DETECTOR:
        faces_meta, values = _label_crops(model, paths, batch_size, num_workers, skip_bad, bad, device, dtype)
    else:
        faces_meta, values = _label_photos(
            model, paths, batch_size, num_workers, skip_bad, bad, device, dtype, detector, faces, no_face
        )
    if bad:
        logger.warning(
            "skipped %d unreadable image(s):\n%s", len(bad), "\n".join(f"  {name}: {reason}" for name, reason in bad)
        )
    table = _face_table(model, paths, faces_meta, values, with_spread)
    families = ",".join(model.config.families)
    return table.replace_schema_metadata(
        {"families": families, "cs_mode": model.config.cs_mode, "model": str(model_dir), "detector": str(detector)}
    )


def _check_predict_arguments(paths: Sequence[str], batch_size: int, no_face: str, skip_bad: bool) -> None:
    from affectnetplus_hf.faces.pipeline import NO_FACE_CHOICES

    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not paths:
        raise ValueError("predict needs at least one image path")
    if no_face not in NO_FACE_CHOICES:
        raise ValueError(f"no_face must be one of {', '.join(NO_FACE_CHOICES)}; got {no_face!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and not skip_bad:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"image file not found: {missing[0]}{more}")


def _outputs(output, k: int) -> tuple:
    calibrated = output.soft_label_calibrated
    return (
        output.soft_label[k].numpy(),
        output.spread[k].numpy(),
        None if calibrated is None else calibrated[k].numpy(),
    )


def _label_photos(model, paths, batch_size, num_workers, skip_bad, bad, device, dtype, detector, faces, no_face):
    """``(faces: [(photo, row, PhotoFace)], values: {(photo, row): outputs})`` through the face stage."""
    from affectnetplus_hf.faces.pipeline import FaceFinder
    from affectnetplus_hf.image_processing import make_photo_dataloader

    finder = FaceFinder(detector, faces=faces, processor=model.image_processor)
    logger.info("face detector: %s", finder.detector_name)
    loader = make_photo_dataloader(
        [os.path.abspath(p) for p in paths],
        model.image_processor,
        finder,
        no_face=no_face,
        batch_size=batch_size,
        num_workers=num_workers,
        skip_bad=skip_bad,
    )
    meta: list = []
    values: dict = {}
    for batch, output in iter_soft_labels(model, _collect(loader, bad, meta), device=device, dtype=dtype):
        for k, key in enumerate(batch["keys"]):
            values[key] = _outputs(output, k)
    return meta, values


def _label_crops(model, paths, batch_size, num_workers, skip_bad, bad, device, dtype):
    """``detector="none"``: each image whole, one ``whole_image`` row each."""
    from affectnetplus_hf.faces.pipeline import STATUS_WHOLE, PhotoFace
    from affectnetplus_hf.image_processing import make_dataloader
    from affectnetplus_hf.records import FaceRecord

    records = [FaceRecord(image_id=str(p), image_path=os.path.abspath(p), source="predict") for p in paths]
    loader = make_dataloader(
        records,
        model.image_processor,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        seed=0,
        skip_bad=skip_bad,
    )
    values: dict = {}
    for batch, output in iter_soft_labels(model, _collect_bad(loader, bad), device=device, dtype=dtype):
        for k, index in enumerate(batch["index"].tolist()):
            values[(index, 0)] = _outputs(output, k)
    meta = [(index, 0, PhotoFace(STATUS_WHOLE)) for index, _ in sorted(values)]
    return meta, values


def _face_table(model, paths, faces_meta, values, with_spread: bool):
    """The predictions table: :data:`FACE_COLUMNS`, then the soft-label columns (null for ``no_face``)."""
    import pyarrow as pa

    faces_meta = sorted(faces_meta, key=lambda entry: (entry[0], entry[1]))
    boxes = [face.box for _, _, face in faces_meta]
    columns: dict[str, Any] = {
        "path": pa.array([str(paths[i]) for i, _, _ in faces_meta], type=pa.string()),
        "face": pa.array([face.index for _, _, face in faces_meta], type=pa.int32()),
    }
    for j, name in enumerate(("x0", "y0", "x1", "y1")):
        columns[name] = pa.array([None if box is None else box[j] for box in boxes], type=pa.float32())
    columns["score"] = pa.array([face.score for _, _, face in faces_meta], type=pa.float32())
    columns["status"] = pa.array([face.status for _, _, face in faces_meta], type=pa.string())
    groups = [("", 0, True), ("_calibrated", 2, model.config.calibration is not None), ("_spread", 1, with_spread)]
    keys = [(i, row) for i, row, _ in faces_meta]
    for suffix, position, wanted in groups:
        if wanted:
            for e, emotion in enumerate(EMOTIONS):
                columns[f"{emotion}{suffix}"] = pa.array(
                    [float(values[key][position][e]) if key in values else None for key in keys], type=pa.float32()
                )
    return pa.table(columns)


def _collect(loader, bad: list[tuple[str, str]], meta: list) -> Iterator[dict]:
    for batch in loader:
        bad.extend(batch["bad"])
        meta.extend(batch["faces"])
        yield batch


def _collect_bad(loader, bad: list[tuple[str, str]]) -> Iterator[dict]:
    for batch in loader:
        bad.extend(batch["bad"])
        yield batch


def write_predictions(table, output: str | os.PathLike | None, stream=None) -> None:
    """Write the predictions table to ``.csv``/``.jsonl``/``.parquet`` atomically, or print it.

    ``output=None`` prints an aligned text table to ``stream`` (stdout).
    """
    import pyarrow.parquet as pq

    if output is None:
        _print_table(table, stream or sys.stdout)
        return
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output {str(output)!r}: unknown format {suffix!r}; expected one of {OUTPUT_SUFFIXES}")
    if not output.parent.exists():
        raise FileNotFoundError(f"output folder {str(output.parent)!r} does not exist")
    with atomic_path(output) as temp:
        if suffix == ".parquet":
            pq.write_table(table, temp)
        elif suffix == ".csv":
            with open(temp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(table.column_names)
                for row in zip(*(table.column(c).to_pylist() for c in table.column_names)):
                    writer.writerow([_format(v) for v in row])
        else:
            with open(temp, "w", encoding="utf-8") as handle:
                for row in table.to_pylist():
                    handle.write(json.dumps({k: _round(v) for k, v in row.items()}) + "\n")
    logger.info("wrote %d row(s) to %s", table.num_rows, output)


def _round(value):
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _format(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _print_table(table, stream) -> None:
    names = table.column_names
    columns = (table.column(c).to_pylist() for c in names)
    rows = [["-" if v is None else _format(v) for v in row] for row in zip(*columns)]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    stream.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    for row in rows:
        stream.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


__all__ = [
    "FACE_COLUMNS",
    "NO_DETECTOR",
    "OUTPUT_SUFFIXES",
    "as_image_sources",
    "autocast_context",
    "iter_soft_labels",
    "load_soft_labeler",
    "predict_files",
    "prepare_for_inference",
    "resolve_device",
    "write_predictions",
]
