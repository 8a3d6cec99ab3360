"""``affectnetplus label``: soft-label every image of a source with a saved soft-labeler (SPEC §8).

Sharded, resumable, distributed (``accelerate launch``). See :mod:`affectnetplus_hf.labeling`.
"""

from __future__ import annotations

import argparse

NAME = "label"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="soft-label every image of a dataset (sharded, resumable, distributed)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("affectnetplus label is being written")
