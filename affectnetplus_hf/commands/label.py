"""``affectnetplus label``: soft-label every image of a source (:mod:`affectnetplus_hf.labeling`) or of a
Hugging Face dataset (:mod:`affectnetplus_hf.dataset_map`) with a saved soft-labeler; the ``--help`` text is
:data:`DESCRIPTION`."""

from __future__ import annotations

import argparse

NAME = "label"

#: The command's ``--help`` description.
DESCRIPTION = """``affectnetplus label``: soft-label every image of a source with a saved soft-labeler
(``docs/method.md#soft-label``).

Sharded and resumable: OUT_DIR gets ``shards/{split}-NNNNN.parquet`` (+ a JSON sidecar each), an atomic
``manifest.json`` and, once every shard is done, ``summary.json`` and the subset tables
(``subsets.json``/``.md``/``_{split}.png``). Run the same command again to resume a killed run; a resume
with another model, source or settings refuses. Distributed through accelerate::

    accelerate launch --multi_gpu --num_processes 2 -m affectnetplus_hf label MODEL DATA OUT
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m affectnetplus_hf label ...  # CPU

Prints the summary (counts per split, subset and emotion; bad images skipped) as JSON.
See :mod:`affectnetplus_hf.labeling`.

Photos (a folder source without face boxes): ``--detect-faces`` runs the face stage
(``docs/method.md#face-stage``) on every record without an annotated box or landmarks: the largest face,
found on the EXIF-upright image (``--detector``), aligned and framed; each row keeps the box used
(``face_box``). A photo without a face is left out and listed in the summary (``no_face_images``;
``--no-face whole`` labels the whole image, ``--no-face error`` stops). Records with annotated boxes or
landmarks (AffectNet) are used as annotated. The detection settings are part of the run's fingerprint.

A Hugging Face dataset instead (``affectnetplus_hf.dataset_map``)::

    affectnetplus label MODEL_DIR --hf-dataset PATH --image-column image [--hard-label-column label] \
        [--split train] OUT_DIR

PATH is a ``save_to_disk`` folder (read with ``load_from_disk``) or a local folder ``load_dataset`` reads
(``imagefolder``, Parquet, ...). Every row gets the soft-label columns (and ``subset`` with
``--hard-label-column``, ``bad_image`` with ``--skip-bad``); the result is written with ``save_to_disk``
to a temporary sibling of OUT_DIR and renamed into place (OUT_DIR must be new or empty). Load it with
``datasets.load_from_disk(OUT_DIR)``.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="soft-label every image of a dataset (sharded, resumable, distributed)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="saved SoftLabeler directory")
    p.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help="source folder (AffectNet csv/npy, FER+, folder, synthetic sample); with --hf-dataset: OUT_DIR",
    )
    p.add_argument(
        "out_dir", metavar="OUT_DIR", nargs="?", help="output folder (created; resumed when it holds a manifest)"
    )
    hf = p.add_argument_group("Hugging Face dataset input (MODEL_DIR --hf-dataset PATH OUT_DIR)")
    hf.add_argument(
        "--hf-dataset",
        metavar="PATH",
        default=None,
        help="label a save_to_disk folder or a local folder load_dataset reads; OUT_DIR gets save_to_disk",
    )
    hf.add_argument("--image-column", default="image", help="column of images (default: image)")
    hf.add_argument(
        "--hard-label-column",
        default=None,
        help="column of hard labels (emotion indices 0-7 or a ClassLabel of emotion names); adds subset",
    )
    hf.add_argument("--face-box-column", default=None, help="column of (x0, y0, x1, y1) face boxes")
    hf.add_argument("--split", default=None, help="the one split of a DatasetDict to label (default: every split)")
    hf.add_argument("--num-proc", type=int, default=None, help="datasets.map processes (default: 1)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard (default 1024)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--splits", default=None, help="comma-separated splits to label (default: all of the source)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images (listed in summary.json) instead of stopping at the first",
    )
    p.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    p.add_argument(
        "--dtype",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="autocast dtype on GPU (default fp32: exact and reproducible)",
    )
    p.add_argument(
        "--max-shards",
        type=int,
        default=None,
        help="stop after writing this many shards per process (resume later); exit code 3",
    )
    p.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch intra-op threads per process (bit-identical results need the same count)",
    )
    p.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    _add_face_arguments(p)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an OUT_DIR that holds a labeling run with other settings (never another folder)",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.set_defaults(func=run)


def _add_face_arguments(p: argparse.ArgumentParser) -> None:
    """The photo options (``docs/method.md#face-stage``)."""
    faces = p.add_argument_group("photos (docs/method.md#face-stage)")
    faces.add_argument(
        "--detect-faces",
        action="store_true",
        help="detect the largest face of each image without an annotated box (EXIF-upright); "
        "rows keep the box used (face_box)",
    )
    faces.add_argument(
        "--detector",
        default=None,
        metavar="NAME",
        help="with --detect-faces: auto (default: the best installed, mediapipe > dlib > haar), dlib, haar, mediapipe",
    )
    faces.add_argument(
        "--no-face",
        choices=("skip", "whole", "error"),
        default=None,
        help="with --detect-faces, an image without a face: left out and listed (skip, default), "
        "labelled whole, or an error",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import os

    # MKL's conditional numerical reproducibility: sgemm results independent of memory alignment
    # (read when MKL initialises, so before torch runs anything; docs/architecture.md#labeling-run).
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

    from affectnetplus_hf.labeling import label_dataset
    from affectnetplus_hf.models.hub import check_model_dir

    face_only = [
        flag for flag, value in (("--detector", args.detector), ("--no-face", args.no_face)) if value is not None
    ]
    if face_only and not args.detect_faces:
        raise ValueError(f"{', '.join(face_only)}: only with --detect-faces")
    if args.hf_dataset is not None:
        _check_hf_dataset_flags(args)
        check_model_dir(args.model_dir)
        summary = label_hf_dataset(args)
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    _check_source_flags(args)
    check_model_dir(args.model_dir)
    summary = label_dataset(args.model_dir, args.data_dir, args.out_dir, _labeling_config(args), cpu=args.cpu)
    if summary:  # the main process
        print(json.dumps(summary, indent=2, sort_keys=True))
        if not summary.get("complete", False):
            return 3
    return 0


def _check_hf_dataset_flags(args: argparse.Namespace) -> None:
    """``ValueError`` for a flag of source folders given with ``--hf-dataset``."""
    if args.detect_faces:
        raise ValueError(
            "--detect-faces applies to a source folder; for a Hugging Face dataset use "
            "labeler.map_function(..., detect_faces=True)"
        )
    if args.out_dir is not None:
        raise ValueError("with --hf-dataset give MODEL_DIR and OUT_DIR only (the data is --hf-dataset PATH)")
    folder_only = [
        flag
        for flag, value, default in (
            ("--shard-size", args.shard_size, 1024),
            ("--splits", args.splits, None),
            ("--max-shards", args.max_shards, None),
            ("--num-workers", args.num_workers, 0),
        )
        if value != default
    ]
    if folder_only:
        raise ValueError(f"{', '.join(folder_only)} do not apply with --hf-dataset (use --split, --num-proc)")


def _check_source_flags(args: argparse.Namespace) -> None:
    """``ValueError`` without OUT_DIR, or for a flag of ``--hf-dataset`` given with a source folder."""
    if args.out_dir is None:
        raise ValueError("label needs MODEL_DIR DATA_DIR OUT_DIR (or MODEL_DIR --hf-dataset PATH OUT_DIR)")
    hf_only = [
        flag
        for flag, value, default in (
            ("--image-column", args.image_column, "image"),
            ("--hard-label-column", args.hard_label_column, None),
            ("--face-box-column", args.face_box_column, None),
            ("--split", args.split, None),
            ("--num-proc", args.num_proc, None),
        )
        if value != default
    ]
    if hf_only:
        raise ValueError(f"{', '.join(hf_only)} only apply with --hf-dataset")


def _labeling_config(args: argparse.Namespace):
    """The :class:`~affectnetplus_hf.labeling.LabelingConfig` of the command line."""
    from affectnetplus_hf.labeling import LabelingConfig

    return LabelingConfig(
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        splits=[s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None,
        skip_bad=args.skip_bad,
        num_workers=args.num_workers,
        dtype=args.dtype,
        max_shards=args.max_shards,
        num_threads=args.num_threads,
        progress=not args.no_progress,
        detect_faces=args.detect_faces,
        detector=args.detector or "auto",
        no_face=args.no_face or "skip",
        overwrite=args.overwrite,
    )


def label_hf_dataset(args: argparse.Namespace) -> dict:
    """``--hf-dataset``: map the soft-labeler over a Hugging Face dataset
    (:func:`affectnetplus_hf.dataset_map.label_hf_dataset`)."""
    import torch

    from affectnetplus_hf.dataset_map import label_hf_dataset as run_map

    if args.num_threads is not None:
        torch.set_num_threads(int(args.num_threads))
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    return run_map(
        args.model_dir,
        args.hf_dataset,
        args.data_dir,
        image_column=args.image_column,
        hard_label_column=args.hard_label_column,
        face_box_column=args.face_box_column,
        split=args.split,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        device=device,
        dtype=args.dtype,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
