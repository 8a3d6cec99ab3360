"""`affectnetplus baseline` (work in progress)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="(in progress)")
    parser.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("affectnetplus baseline is not implemented yet")
