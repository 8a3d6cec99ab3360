"""``affectnetplus build``: export a source + labeling run as a hub-ready dataset folder (Parquet + card)."""

from __future__ import annotations

import argparse

NAME = "build"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="export the AffectNet+ dataset folder (Parquet shards + README card)",
                              description=__doc__)
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("labels_dir", metavar="LABELS_DIR")
    p.add_argument("dataset_dir", metavar="DATASET_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("affectnetplus build is being written")
