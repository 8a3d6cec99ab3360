"""Readers of raw FER datasets → one stream of :class:`~affectnetplus_hf.records.FaceRecord`.

Kinds (auto-detected by :func:`detect_source`, layouts in :data:`LOOKED_FOR`): ``affectnet`` (``csv`` and
``npy`` releases, :mod:`.affectnet`), ``ferplus`` (:mod:`.ferplus`), ``folder`` (per-image votes, one row per
annotation, or one label per image, :mod:`.folder`) and ``synthetic`` (the embedded sample, :mod:`.synthetic`;
its multi-annotated part via :func:`open_multi_annotated`).

Every source reads lazily (records are yielded one by one; images are never decoded by a reader) and keeps a
:class:`SkipReport` (``source.skipped``) of every row it did not yield and why, so nothing is dropped silently.
Rows that are wrong (bad codes, values out of range, malformed landmarks, negative or non-integer votes, image
paths that are absolute or lead out of the data folder) raise :class:`ValueError` naming the file and line,
unless the source was opened with ``skip_bad_rows=True``: then they are skipped and listed in the report.
Label files must be UTF-8 text. The layouts: ``docs/architecture.md#sources``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from affectnetplus_hf.sources import affectnet, ferplus, folder, synthetic
from affectnetplus_hf.sources.base import (
    RowError,
    SkippedItem,
    SkipReport,
    Source,
    relative_path_inside,
    utf8_lines,
)
from affectnetplus_hf.sources.summary import summarize_source
from affectnetplus_hf.sources.synthetic import SAMPLE_KIND as SYNTHETIC_SAMPLE_KIND
from affectnetplus_hf.sources.synthetic import (
    open_synthetic,
    read_ground_truth,
    read_sample_info,
)
from affectnetplus_hf.votes import hard_label_from_votes

#: The readers, in detection order: kind → (its ``detect_layout(root)``, its opener ``(root, **options)``).
READERS: dict[str, tuple[Callable[[Path], str | None], Callable[..., Source]]] = {
    "synthetic": (synthetic.detect_layout, synthetic.open_synthetic),
    "affectnet": (affectnet.detect_layout, affectnet.AffectNetSource),
    "ferplus": (ferplus.detect_layout, ferplus.FerPlusSource),
    "folder": (folder.detect_layout, folder.FolderSource),
}
KINDS: tuple[str, ...] = tuple(sorted(READERS))

#: What :func:`detect_source` looks for, in order (used in error messages).
LOOKED_FOR: tuple[str, ...] = (
    "synthetic sample: sample_info.json with kind 'affectnetplus-synthetic-sample'",
    "affectnet csv: Manually_Annotated_file_lists/{training,validation}.csv",
    "affectnet npy: {train_set,val_set}/images/*.jpg + annotations/*_exp.npy",
    "ferplus: fer2013new.csv, or FER2013{Train,Valid,Test}/label.csv",
    "folder: votes.csv, annotations.csv or labels.csv (image column + votes or annotator labels)",
)


def detect_source(path: str | Path) -> tuple[str, str]:
    """Detect ``(kind, layout)`` of a dataset folder.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: no known layout was found (the message lists what was looked for).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder; expected a dataset folder")
    for kind, (detect_layout, _) in READERS.items():
        layout = detect_layout(root)
        if layout is not None:
            return kind, layout
    empty = not any(root.iterdir())
    looked = "\n  - ".join(LOOKED_FOR)
    raise ValueError(f"{root}: {'folder is empty' if empty else 'unknown dataset layout'}; looked for:\n  - {looked}")


def open_source(path: str | Path, kind: str | None = None, **options: Any) -> Source:
    """Open a dataset folder as a :class:`Source` (kind auto-detected unless given).

    ``options`` go to the kind's reader: ``keep_non_emotion`` (all kinds), ``skip_bad_rows``,
    ``check_files``; AffectNet: ``layout``; FER+: ``labels``, ``images``; folder: ``csv_path``,
    ``allow_missing_emotions``. See :class:`~.affectnet.AffectNetSource`, :class:`~.ferplus.FerPlusSource`,
    :class:`~.folder.FolderSource`.
    """
    root = Path(path)
    if kind is None:
        kind, _ = detect_source(root)
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {KINDS}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    _, opener = READERS[kind]
    return opener(root, **options)


def open_multi_annotated(path: str | Path, **options: Any) -> Source:
    """The multi-annotated (votes) source of a folder, for training soft-labelers (``docs/method.md#mas-split``).

    * synthetic sample → the folder source of ``DIR/multi_annotated/`` (``votes.csv``), with the
      ground truth joined into ``record.extra`` as for the AffectNet part;
    * FER+ or a folder with votes → that source itself.

    Raises:
        ValueError: the folder holds no multi-annotated source.
    """
    root = Path(path)
    kind, _ = detect_source(root)
    if kind == "synthetic":
        return synthetic.open_multi_annotated_part(root, **options)
    source = open_source(root, kind=kind, **options)
    if not source.has_votes:
        raise ValueError(
            f"{root}: is a {source.kind} source ({source.layout}) with one label per image; a multi-annotated "
            "source is needed (FER+, a folder with votes or per-annotator labels, or a synthetic sample)"
        )
    return source


__all__ = [
    "KINDS",
    "LOOKED_FOR",
    "READERS",
    "SYNTHETIC_SAMPLE_KIND",
    "RowError",
    "SkipReport",
    "SkippedItem",
    "Source",
    "detect_source",
    "hard_label_from_votes",
    "open_multi_annotated",
    "open_source",
    "open_synthetic",
    "read_ground_truth",
    "read_sample_info",
    "relative_path_inside",
    "summarize_source",
    "utf8_lines",
]
