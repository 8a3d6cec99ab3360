"""``affectnetplus sample``: write the embedded synthetic FER sample (DESIGN "The embedded sample").

The sample is rendered procedurally (faces drawn from SPEC §2 action units, blends of two emotions,
simulated annotators) and written in AffectNet's own on-disk layouts plus a multi-annotated part, so
every reader and command runs on it unchanged. See :func:`affectnetplus_hf.sources.synthetic.write_sample`.
"""

from __future__ import annotations

import argparse

NAME = "sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="write the synthetic FER sample (AffectNet csv/npy layout + multi-annotated part)",
        description="Render the embedded synthetic FER sample into DIR, in AffectNet's csv or npy "
        "layout, with a multi-annotated (MAS) part, ground truth (soft labels, landmarks, head pose) "
        "and a contact sheet DIR/sample_grid.png.",
    )
    p.add_argument("directory", metavar="DIR", help="output directory (created; must be empty if it exists)")
    p.add_argument("--layout", choices=("csv", "npy"), default="csv",
                   help="AffectNet layout of the single-annotator part (default: csv)")
    p.add_argument("--n-train", type=int, default=None, help="AffectNet-part training images (default 800)")
    p.add_argument("--n-val", type=int, default=None, help="AffectNet-part validation images (default 200)")
    p.add_argument("--n-mas", type=int, default=None, help="multi-annotated images (default 1200)")
    p.add_argument("--n-annotators", type=int, default=None, help="annotators per MAS image (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed => same bytes (default 0)")
    p.add_argument("--image-size", type=int, default=None, help="image side in pixels (default 112)")
    p.add_argument("--blend-fraction", type=float, default=None,
                   help="share of images blending two emotions (default 0.3)")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.sources.synthetic import write_sample

    kwargs = {
        name: getattr(args, name)
        for name in ("n_train", "n_val", "n_mas", "n_annotators", "image_size", "blend_fraction")
        if getattr(args, name) is not None
    }
    info = write_sample(
        args.directory, layout=args.layout, seed=args.seed, workers=args.workers,
        overwrite=args.overwrite, **kwargs,
    )
    print(json.dumps(info, indent=2))
    return 0
