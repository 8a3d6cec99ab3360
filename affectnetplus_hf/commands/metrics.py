"""``affectnetplus metrics``: export the evaluate modules, compute W-MAE / W-FR / W-AUC (SPEC §9)."""

from __future__ import annotations

import argparse

NAME = "metrics"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="soft-label metrics (W-MAE, W-FR, W-AUC)", description=__doc__)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise ValueError("affectnetplus metrics: not implemented yet")
