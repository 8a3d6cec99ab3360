"""``affectnetplus build``: export a source + a finished labeling run as a hub-ready dataset folder.

DATASET_DIR gets ``README.md`` (dataset card with YAML ``configs`` default/easy/challenging/difficult
and ``dataset_info``), ``data/{split}/{subset}-NNNNN-of-NNNNN.parquet`` (images embedded),
``images/subsets_{split}.png`` and ``statistics.json``. ``load_dataset(DATASET_DIR)`` and
``load_dataset(DATASET_DIR, "easy")`` then work offline. See :mod:`affectnetplus_hf.dataset`.

The labels are checked first: each shard's sidecar must name the labels' model, and every soft label must
be finite and in [0, 1] (a damaged one stops the build, naming the shard file and the image). DATASET_DIR
is locked while the command runs (a second build on it stops at once, naming the first) and is written
whole, in a staging folder beside it that replaces it at the end; ``--overwrite`` replaces only a folder
an earlier build wrote (its ``.affectnetplus-run.json`` marker), never DATA_DIR, LABELS_DIR or a folder
above them.
"""

from __future__ import annotations

import argparse

NAME = "build"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="export the AffectNet+ dataset folder (Parquet shards + README card)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="the source that was labeled")
    p.add_argument("labels_dir", metavar="LABELS_DIR", help="OUT_DIR of a complete `affectnetplus label` run")
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="folder to write (absent or empty, or --overwrite)")
    p.add_argument(
        "--metadata",
        default="passthrough",
        help="metadata annotator chain, e.g. 'synthetic,solvepnp', 'passthrough', 'csv:PATH', "
        "or 'none' (default: passthrough = the source's own landmarks)",
    )
    p.add_argument(
        "--keep-unlabeled",
        action="store_true",
        help="keep images without a hard label (AffectNet 8-10) in the default config",
    )
    p.add_argument(
        "--max-file-mb", type=float, default=500.0, help="start a new Parquet file past this many MB of images"
    )
    p.add_argument("--name", default=None, help="card title (default from the source kind)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the subset figures")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a DATASET_DIR that an earlier build wrote (never another folder, DATA_DIR or LABELS_DIR)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out images changed (or gone) since labeling, listed in statistics.json, instead of failing",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.dataset import build_dataset

    metadata = None if str(args.metadata).lower() in ("", "none") else args.metadata
    summary = build_dataset(
        args.data_dir,
        args.labels_dir,
        args.dataset_dir,
        metadata=metadata,
        keep_unlabeled=args.keep_unlabeled,
        max_file_bytes=int(args.max_file_mb * 1024 * 1024),
        overwrite=args.overwrite,
        pretty_name=args.name,
        figures=not args.no_figures,
        progress=not args.no_progress,
        skip_bad=args.skip_bad,
    )
    brief = {k: v for k, v in summary.items() if k != "subset_table"}
    print(json.dumps(brief, indent=2, sort_keys=True))
    return 0
