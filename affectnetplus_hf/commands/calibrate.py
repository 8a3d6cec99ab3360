"""``affectnetplus calibrate``: fit a saved soft-labeler's calibrated soft label to annotators' votes.

  affectnetplus calibrate MODEL_DIR --data FERPLUS_DIR --split validation [--objective kl|w_mae] [--force]

Runs the soft-labeler over the images of one split of a multi-annotated source, fits the map of
``docs/method.md#calibration`` (log-linear pooling of the families' scores + a per-emotion prior shift)
on their vote distributions, stores it in ``MODEL_DIR/config.json`` (weights untouched) and rewrites the
model card's "Quality against people" table. ``soft_label`` (Eq. 14) does not change; labeling runs
made afterwards gain the ``soft_label_calibrated`` column. Calibrate on images no member was trained on:
a split holding images of the MAS recorded in MODEL_DIR (``mas_split/``, else the ``mas_splits`` of
``train_config.json``) is refused unless ``--force``.
"""

from __future__ import annotations

import argparse

NAME = "calibrate"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="fit a soft-labeler's calibrated soft label to the votes of a multi-annotated split",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", help="a saved soft-labeler directory (rewritten in place: config.json, README.md)")
    p.add_argument("--data", required=True, help="multi-annotated source (FER+, a folder with votes)")
    p.add_argument("--split", default="validation", help="split of --data to fit on (default validation)")
    p.add_argument(
        "--objective",
        default="kl",
        choices=("kl", "w_mae"),
        help="minimise KL(votes || calibrated) or a smooth W-MAE (default kl)",
    )
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of failing")
    p.add_argument(
        "--force",
        action="store_true",
        help="calibrate even on images the members were trained on (MODEL_DIR's MAS split)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.models.hub import check_model_dir
    from affectnetplus_hf.training.calibrate import calibrate_model_dir

    check_model_dir(args.model_dir)
    calibration = calibrate_model_dir(
        args.model_dir, args.data, args.split, objective=args.objective, skip_bad=args.skip_bad, force=args.force
    )
    print(
        json.dumps(
            {
                "model_dir": args.model_dir,
                "inputs": calibration["inputs"],
                "weights": calibration["weights"],
                "fitted_on": calibration["fitted_on"],
                "w_mae": {k: round(v["w_mae"], 2) for k, v in calibration["quality"].items()},
            },
            indent=2,
        )
    )
    return 0
