"""``affectnetplus app [MODEL_DIR]``: a web page to look at a soft-labeler's soft labels (Gradio).

Upload a photo (its faces are found on the EXIF-upright image, boxed and numbered from the left; see
docs/method.md#face-stage), or pick one of the synthetic sample's face crops, and see the chosen face's soft
label as a bar chart in hard-label ranking order, the subset it would fall in for a chosen hard label, the
ensemble spread per emotion and the EBC vs AU family scores. Serves on http://HOST:PORT until Ctrl-C or
SIGTERM (``kill``, a container stopping): either closes the server and removes its temporary sample faces.
Needs the ``app`` extra: pip install "affectnetplus-hf[app]".
"""

from __future__ import annotations

import argparse

from affectnetplus_hf.pretrained import DEFAULT_MODEL

NAME = "app"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="serve a web page that shows a soft-labeler's soft labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"a shipped soft-labeler's name (default {DEFAULT_MODEL!r}), a directory written by "
        "SoftLabeler.save_pretrained, or a hub id",
    )
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 to be reachable from other machines)",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--examples", type=int, default=6, help="sample faces offered as examples (default 6; 0: none)")
    p.add_argument(
        "--detector",
        default="auto",
        metavar="NAME",
        help="face detector for uploads: auto (the best installed: mediapipe > dlib > haar), dlib, haar, mediapipe",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from affectnetplus_hf.models.hub import check_model_dir

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.examples < 0:
        raise ValueError(f"--examples must be >= 0, got {args.examples}")
    check_model_dir(args.model_dir)
    from affectnetplus_hf.faces import create_detector

    create_detector(args.detector)  # an unknown or missing detector: one line before the model loads
    from affectnetplus_hf.app import launch_app

    launch_app(
        args.model_dir,
        host=args.host,
        port=args.port,
        device=args.device,
        n_examples=args.examples,
        detector=args.detector,
    )
    return 0
