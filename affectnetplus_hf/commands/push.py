"""``affectnetplus push``: upload a dataset folder to the Hugging Face Hub (private by default)."""

from __future__ import annotations

import argparse

NAME = "push"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="upload a dataset folder to the hub (private unless --public)",
                              description=__doc__)
    p.add_argument("dataset_dir", metavar="DATASET_DIR")
    p.add_argument("repo_id", metavar="REPO_ID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("affectnetplus push is being written")
