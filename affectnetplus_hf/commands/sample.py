"""``affectnetplus sample``: write the embedded synthetic FER sample.

The sample is rendered procedurally (faces drawn from the action units of ``docs/method.md#action-units``,
blends of two emotions, simulated annotators) and written in AffectNet's own on-disk layouts plus a
multi-annotated part, so every reader and command runs on it unchanged. See
:func:`affectnetplus_hf.synthetic.write_sample`.
"""

from __future__ import annotations

import argparse

NAME = "sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="write the synthetic FER sample (AffectNet csv/npy layout + multi-annotated part)",
        description="Render the embedded synthetic FER sample into DIR, in AffectNet's csv or npy "
        "layout, with a multi-annotated (MAS) part, ground truth (soft labels, landmarks, head pose) "
        "and a contact sheet DIR/sample_grid.png.",
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="output directory (created; must be empty if it exists, or a sample "
        "`affectnetplus sample` wrote, replaced with --overwrite)",
    )
    parser.add_argument(
        "--layout",
        choices=("csv", "npy"),
        default="csv",
        help="AffectNet layout of the single-annotator part (default: csv)",
    )
    parser.add_argument("--n-train", type=int, default=None, help="AffectNet-part training images (default 800)")
    parser.add_argument("--n-val", type=int, default=None, help="AffectNet-part validation images (default 200)")
    parser.add_argument("--n-mas", type=int, default=None, help="multi-annotated images (default 1200)")
    parser.add_argument("--n-annotators", type=int, default=None, help="annotators per MAS image (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed => same bytes (default 0)")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels (default 112)")
    parser.add_argument(
        "--blend-fraction", type=float, default=None, help="share of images blending two emotions (default 0.3)"
    )
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the sample DIR holds (only a folder `affectnetplus sample` wrote)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.synthetic import write_sample

    kwargs = {
        name: getattr(args, name)
        for name in ("n_train", "n_val", "n_mas", "n_annotators", "image_size", "blend_fraction")
        if getattr(args, name) is not None
    }
    info = write_sample(
        args.directory,
        layout=args.layout,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        **kwargs,
    )
    print(json.dumps(info, indent=2))
    return 0
