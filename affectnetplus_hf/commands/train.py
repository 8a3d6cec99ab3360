"""``affectnetplus train``: train soft-labeler members or a FER baseline (work in progress)."""

from __future__ import annotations

import argparse

NAME = "train"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="train soft-labeler members (ebc|au|softlabeler) or a baseline")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("affectnetplus train is not implemented yet")
