"""Run a chain of metadata annotators over records (paper Sec. 3.5.4, `docs/method.md#metadata`).

Chaining rule: annotators are applied in the given order and **the first non-null value wins** —
a later annotator only fills cells that are still null. ``passthrough,dlib`` therefore keeps
AffectNet's own landmarks and runs dlib only where there are none, and ``synthetic,solvepnp`` keeps
the synthetic ground-truth pose. An annotator may read the columns filled so far (``solvepnp``
reads ``landmarks_68``). ``landmarks_28`` is derived from ``landmarks_68`` wherever it is still
null after the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..images import BadImageError
from ..records import FaceRecord
from .base import (
    IMAGE_SIZE_KEY,
    LANDMARKS_28_COLUMN,
    LANDMARKS_68_COLUMN,
    METADATA_COLUMNS,
    Annotator,
    MetadataColumns,
    landmarks_28_from_68,
    load_rgb_image,
    read_image_size,
    validate_value,
)
from .registry import build_annotators

logger = logging.getLogger(__name__)


def annotate(
    records: Iterable[FaceRecord],
    annotators: Sequence[Annotator | str] | str,
    batch_size: int = 32,
    *,
    on_error: str = "raise",
    progress: bool = True,
) -> MetadataColumns:
    """Run ``annotators`` (objects or registry specs such as ``"synthetic,solvepnp"``) over
    ``records`` in batches; return :class:`MetadataColumns` with every metadata column.

    Args:
        records: the records (any iterable; consumed once).
        annotators: in priority order (first non-null value wins).
        batch_size: records per ``annotate_batch`` call.
        on_error: ``"raise"`` (default) stops at the first unreadable image with an error naming
            it; ``"skip"`` leaves that record's image-based cells null, and logs and lists it in
            ``result.skipped``. Invalid annotator output always raises.
        progress: show a tqdm bar.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chain = build_annotators(annotators)
    _check_chain(chain)
    result = MetadataColumns({"image_id": [], **{c: [] for c in METADATA_COLUMNS}})

    from tqdm.auto import tqdm

    bar = tqdm(desc="metadata", unit="img", disable=not progress)
    batch: list[FaceRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) == batch_size:
            _annotate_one_batch(batch, chain, result, on_error)
            bar.update(len(batch))
            batch = []
    if batch:
        _annotate_one_batch(batch, chain, result, on_error)
        bar.update(len(batch))
    bar.close()
    if result.skipped:
        logger.warning(
            "metadata: %d record(s) skipped (unreadable image): %s",
            len(result.skipped),
            ", ".join(f"{i} ({why})" for i, why in result.skipped),
        )
    return result


def _check_chain(chain: Sequence[Annotator]) -> None:
    provided: set[str] = set()
    for annotator in chain:
        missing = [c for c in annotator.requires if c not in provided]
        if missing:
            raise ValueError(
                f"metadata annotator {annotator.name!r} needs {missing} from an earlier annotator "
                f"(e.g. 'synthetic', 'passthrough', 'csv:PATH', 'dlib' or 'mediapipe' before it)"
            )
        provided.update(annotator.columns)


def _annotate_one_batch(
    batch: list[FaceRecord], chain: Sequence[Annotator], result: MetadataColumns, on_error: str
) -> None:
    n = len(batch)
    known: dict[str, list[Any]] = {c: [None] * n for c in METADATA_COLUMNS}
    images, sizes, readable = _read_images(batch, chain, result, on_error)
    for annotator in chain:
        if annotator.needs_images or annotator.needs_image_size:
            rows = readable
            if not rows:
                continue
            sub_known = {c: [v[i] for i in rows] for c, v in known.items()}
            sub_known[IMAGE_SIZE_KEY] = [sizes[i] for i in rows]
            sub_images = [images[i] for i in rows] if annotator.needs_images else None
            produced = annotator.annotate_batch([batch[i] for i in rows], sub_images, sub_known)
        else:
            rows = list(range(n))
            produced = annotator.annotate_batch(batch, None, known)
        _fill_nulls(known, produced, rows, annotator, batch)
    for row in range(n):
        if known[LANDMARKS_28_COLUMN][row] is None and known[LANDMARKS_68_COLUMN][row] is not None:
            known[LANDMARKS_28_COLUMN][row] = landmarks_28_from_68(known[LANDMARKS_68_COLUMN][row])
    result["image_id"].extend(r.image_id for r in batch)
    for column in METADATA_COLUMNS:
        result[column].extend(known[column])


def _read_images(
    batch: list[FaceRecord], chain: Sequence[Annotator], result: MetadataColumns, on_error: str
) -> tuple[list[np.ndarray | None], list[tuple[int, int] | None], list[int]]:
    """``(images, sizes, readable rows)`` of the batch: pixels and/or sizes only when an annotator needs them.

    An unreadable image raises, or with ``on_error="skip"`` is left out of the readable rows and listed in
    ``result.skipped``."""
    n = len(batch)
    need_pixels = any(a.needs_images for a in chain)
    need_sizes = any(a.needs_image_size for a in chain)
    images: list[np.ndarray | None] = [None] * n
    sizes: list[tuple[int, int] | None] = [None] * n
    if not (need_pixels or need_sizes):
        return images, sizes, list(range(n))
    readable = []
    for i, record in enumerate(batch):
        try:
            if need_pixels:
                images[i] = load_rgb_image(record)
                sizes[i] = (images[i].shape[1], images[i].shape[0])
            else:
                sizes[i] = read_image_size(record)
            readable.append(i)
        except BadImageError as err:
            if on_error == "raise":
                raise
            result.skipped.append((record.image_id, str(err)))
    return images, sizes, readable


def _fill_nulls(
    known: dict[str, list[Any]],
    produced: dict[str, list[Any]],
    rows: list[int],
    annotator: Annotator,
    batch: list[FaceRecord],
) -> None:
    """Check an annotator's columns and write its validated values into the cells of ``rows`` still null."""
    for column, values in produced.items():
        if column not in annotator.columns:
            raise ValueError(f"annotator {annotator.name!r} returned column {column!r} it does not declare")
        if len(values) != len(rows):
            raise ValueError(
                f"annotator {annotator.name!r} returned {len(values)} values for {column!r}, expected {len(rows)}"
            )
        for row, value in zip(rows, values):
            if known[column][row] is None and value is not None:
                where = f"{batch[row].image_id} ({annotator.name})"
                known[column][row] = validate_value(column, value, where=where)
