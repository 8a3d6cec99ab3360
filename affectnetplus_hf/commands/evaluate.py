"""`affectnetplus evaluate` (work in progress)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="(in progress)")
    parser.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("affectnetplus evaluate is not implemented yet")
