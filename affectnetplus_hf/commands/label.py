"""``affectnetplus label``: soft-label every image of a source with a saved soft-labeler (SPEC §8).

Sharded and resumable: OUT_DIR gets ``shards/{split}-NNNNN.parquet`` (+ a JSON sidecar each), an atomic
``manifest.json`` and, once every shard is done, ``summary.json`` and the subset tables
(``subsets.json``/``.md``/``_{split}.png``). Run the same command again to resume a killed run; a resume
with another model, source or settings refuses. Distributed through accelerate::

    accelerate launch --multi_gpu --num_processes 2 -m affectnetplus_hf label MODEL DATA OUT
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m affectnetplus_hf label ...  # CPU

Prints the summary (counts per split, subset and emotion; bad images skipped) as JSON.
See :mod:`affectnetplus_hf.labeling`.
"""

from __future__ import annotations

import argparse

NAME = "label"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="soft-label every image of a dataset (sharded, resumable, distributed)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="saved SoftLabeler directory")
    p.add_argument("data_dir", metavar="DATA_DIR", help="source folder (AffectNet csv/npy, FER+, folder, synthetic sample)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created; resumed when it holds a manifest)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard (default 1024)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--splits", default=None, help="comma-separated splits to label (default: all of the source)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images (listed in summary.json) instead of stopping at the first")
    p.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast dtype on GPU (default fp32: exact and reproducible)")
    p.add_argument("--max-shards", type=int, default=None,
                   help="stop after writing this many shards per process (resume later); exit code 3")
    p.add_argument("--num-threads", type=int, default=None,
                   help="torch intra-op threads per process (bit-identical results need the same count)")
    p.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    # MKL's conditional numerical reproducibility: sgemm results independent of memory alignment
    # (read when MKL initialises, so before torch runs anything; see labeling.py "Deterministic").
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

    from affectnetplus_hf.commands.predict import check_model_dir
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    check_model_dir(args.model_dir)
    config = LabelingConfig(
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        splits=[s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None,
        skip_bad=args.skip_bad,
        num_workers=args.num_workers,
        dtype=args.dtype,
        max_shards=args.max_shards,
        num_threads=args.num_threads,
        progress=not args.no_progress,
    )
    summary = label_dataset(args.model_dir, args.data_dir, args.out_dir, config, cpu=args.cpu)
    if summary:  # the main process
        print(json.dumps(summary, indent=2, sort_keys=True))
        if not summary.get("complete", False):
            return 3
    return 0
