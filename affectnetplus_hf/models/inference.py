"""Soft labels of image files with a saved soft-labeler: the ``affectnetplus predict`` back-end.

* :func:`predict_files` — a ``pyarrow.Table`` of soft labels, one row per image, through
  :func:`affectnetplus_hf.models.runner.iter_soft_labels` (each image decoded once by a DataLoader).
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
from pathlib import Path
from typing import Any, Iterator, Sequence

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
):
    """Soft labels of image files with a saved soft-labeler; returns a ``pyarrow.Table``.

    Columns: ``path``, the 8 emotions (soft label, ``docs/method.md#label-space`` order),
    ``<Emotion>_calibrated`` (the calibrated soft label, when the model is calibrated) and, with
    ``with_spread``, ``<Emotion>_spread``. Each image is decoded once by a DataLoader (``num_workers``
    processes). With ``skip_bad`` unreadable images are skipped, counted and listed in the log; otherwise
    the first one raises.
    """
    import pyarrow as pa

    from affectnetplus_hf.image_processing import make_dataloader
    from affectnetplus_hf.records import FaceRecord

    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not paths:
        raise ValueError("predict needs at least one image path")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and not skip_bad:
        raise FileNotFoundError(f"image file not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    model = load_soft_labeler(model_dir)
    records = [FaceRecord(image_id=str(p), image_path=os.path.abspath(p), source="predict") for p in paths]
    loader = make_dataloader(
        records, model.image_processor, batch_size=batch_size, num_workers=num_workers, shuffle=False, seed=0,
        skip_bad=skip_bad,
    )
    rows: dict[int, tuple[Any, Any, Any]] = {}
    bad: list[tuple[str, str]] = []
    for batch, output in iter_soft_labels(model, _collect_bad(loader, bad), device=device, dtype=dtype):
        calibrated = output.soft_label_calibrated
        for k, index in enumerate(batch["index"].tolist()):
            rows[index] = (output.soft_label[k].numpy(), output.spread[k].numpy(),
                           None if calibrated is None else calibrated[k].numpy())
    if bad:
        logger.warning(
            "skipped %d unreadable image(s):\n%s", len(bad), "\n".join(f"  {name}: {reason}" for name, reason in bad)
        )
    kept = [i for i in range(len(paths)) if i in rows]
    columns: dict[str, Any] = {"path": [str(paths[i]) for i in kept]}
    groups = [("", 0, True), ("_calibrated", 2, model.config.calibration is not None), ("_spread", 1, with_spread)]
    for suffix, position, wanted in groups:
        if wanted:
            for e, emotion in enumerate(EMOTIONS):
                columns[f"{emotion}{suffix}"] = pa.array([float(rows[i][position][e]) for i in kept], type=pa.float32())
    families = ",".join(model.config.families)
    return pa.table(columns).replace_schema_metadata(
        {"families": families, "cs_mode": model.config.cs_mode, "model": str(model_dir)}
    )


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
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _print_table(table, stream) -> None:
    names = table.column_names
    rows = [[_format(v) for v in row] for row in zip(*(table.column(c).to_pylist() for c in names))]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    stream.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    for row in rows:
        stream.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


__all__ = [
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
