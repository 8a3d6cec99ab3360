"""``affectnetplus baseline``: Hard-FER and Soft-FER per subset and on all (paper Sec. 4.3)."""

from __future__ import annotations

import argparse

#: The ``--help`` description.
DESCRIPTION = """``affectnetplus baseline DATASET_DIR OUT_DIR``: Hard-FER and Soft-FER per subset and on all
(paper Sec. 4.3).

Reads the exported AffectNet+ folder through ``load_dataset`` (``default`` config for "all", the
``easy``/``challenging``/``difficult`` configs for the subsets), trains every (kind, training set) pair
of the ``train`` split and saves each model in ``OUT_DIR/{kind}_fer_{set}/`` with ``OUT_DIR/baselines.json``
listing them. Kinds ``majority``, ``probability``, ``crossentropy`` and ``multi_target`` are FER+'s four
training modes (Barsoum et al. 2016; 8-way softmax models in ``OUT_DIR/ferplus_{mode}_{set}/``); they
need a dataset built from a multi-annotated source (its ``votes`` column). OUT_DIR is locked while the
command runs (a second run on it stops at once, naming the first). Run again with the same DATASET_DIR,
split and training settings, it keeps the finished models (resume) and adds other --kinds/--sets; with
other settings it stops naming each difference, unless ``--overwrite`` (OUT_DIR is emptied and every model
retrained). A folder that ``affectnetplus baseline`` did not write is never written into nor emptied.
Training options are ``TrainConfig`` fields (``--preset tiny|paper``, ``--backbone``, ``--epochs``,
``--class-balance``, ``--config FILE.yaml`` …; see ``affectnetplus train baseline --help``).

  affectnetplus baseline demo_output/dataset demo_output/baselines --preset tiny
  affectnetplus baseline DATASET_DIR OUT_DIR --kinds hard --sets all easy --preset paper
  affectnetplus baseline FERPLUS_DATASET OUT_DIR --kinds hard soft majority probability crossentropy multi_target
"""

NAME = "baseline"


def _own_flags() -> argparse.ArgumentParser:
    from affectnetplus_hf.baselines import BASELINE_KINDS, DEFAULT_KINDS, TRAINING_SETS

    own = argparse.ArgumentParser(add_help=False)
    own.add_argument(
        "--kinds",
        nargs="+",
        choices=BASELINE_KINDS,
        default=list(DEFAULT_KINDS),
        help="hard, soft and/or FER+'s modes majority, probability, crossentropy, multi_target "
        "(these need the dataset's votes column; default: hard soft)",
    )
    own.add_argument(
        "--sets",
        nargs="+",
        choices=TRAINING_SETS,
        default=list(TRAINING_SETS),
        help="training sets: all and/or the subsets (default: all four)",
    )
    own.add_argument("--split", default="train", help="split to train on (default: train)")
    own.add_argument(
        "--overwrite",
        action="store_true",
        help="empty an OUT_DIR an earlier `affectnetplus baseline` wrote and train every model again "
        "(never another folder)",
    )
    return own


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="train Hard-FER/Soft-FER (and FER+ mode) baselines per subset on an exported dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_own_flags()],
    )
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="folder written by `affectnetplus build`")
    p.add_argument("output_dir", metavar="OUT_DIR", help="where the baseline models go")
    p.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="TrainConfig fields: --preset tiny|paper --backbone NAME --epochs N --config FILE ...",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.baselines import train_baselines
    from affectnetplus_hf.commands.train import parse_train_config

    # flags after the positionals land in ``options``: take ours out, the rest are TrainConfig fields
    own, rest = _own_flags().parse_known_args(list(args.options))
    for name in ("kinds", "sets", "split"):
        if getattr(own, name) == _own_flags().get_default(name):
            setattr(own, name, getattr(args, name))
    config = parse_train_config(rest, prog="affectnetplus baseline DATASET_DIR OUT_DIR")
    manifest = train_baselines(
        args.dataset_dir,
        args.output_dir,
        config,
        kinds=own.kinds,
        training_sets=own.sets,
        split=own.split,
        overwrite=own.overwrite or args.overwrite,
    )
    print(json.dumps({k: manifest[k] for k in ("models", "skipped", "seconds")}, indent=2))
    return 0
