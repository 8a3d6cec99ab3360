"""``affectnetplus predict``: soft labels for the faces in photos with a saved soft-labeler.

Each photo goes through the face stage (``docs/method.md#face-stage``): EXIF orientation applied, faces
detected (``--detector``), eyes levelled, each face cropped as the model's training faces were framed.
One row per face: path, face (left-to-right index), box x0 y0 x1 y1 (upright image pixels), detector
score, status (face | no_face | whole_image), the 8 soft-label values (``docs/method.md#soft-label``)
named after the emotions (label-space order), ``<Emotion>_calibrated`` when the model is calibrated
and, with ``--spread``, the per-emotion standard deviation of the ensemble members' probabilities.
A photo without a face gets a no_face row with empty values (``--no-face skip``, the default), its
whole image labelled (``--no-face whole``) or an error (``--no-face error``). Images that are already
face crops (FER+, AffectNet's cropped faces): ``--detector none``.
Written to ``--output`` (``.csv``, ``.jsonl`` or ``.parquet``, atomically) or printed as a table.
"""

from __future__ import annotations

import argparse

from affectnetplus_hf.models.hub import check_model_dir

NAME = "predict"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="soft-label the faces in photos with a saved soft-labeler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", help="directory written by SoftLabeler.save_pretrained (or a hub id)")
    p.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    p.add_argument(
        "--output", "-o", default=None, help="FILE.csv | FILE.jsonl | FILE.parquet (default: table on stdout)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast dtype; auto = bf16 on CUDA, fp32 on CPU",
    )
    p.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes")
    p.add_argument("--spread", action="store_true", help="add <Emotion>_spread columns (std of the members)")
    p.add_argument(
        "--faces",
        choices=("largest", "all"),
        default="largest",
        help="the largest face of each photo (default) or all faces, left to right",
    )
    p.add_argument(
        "--no-face",
        choices=("skip", "whole", "error"),
        default="skip",
        help="a photo without a face: a no_face row with empty values (default), the whole image, or an error",
    )
    p.add_argument(
        "--detector",
        default="auto",
        metavar="NAME",
        help="face detector: auto (the best installed: mediapipe > dlib > haar), dlib, haar, mediapipe, "
        "or none (the images are face crops, labelled whole)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images (counted and listed in the log) instead of failing",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from affectnetplus_hf.models.inference import predict_files, write_predictions

    check_model_dir(args.model_dir)
    table = predict_files(
        args.model_dir,
        args.images,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        num_workers=args.num_workers,
        skip_bad=args.skip_bad,
        with_spread=args.spread,
        detector=args.detector,
        faces=args.faces,
        no_face=args.no_face,
    )
    write_predictions(table, args.output)
    return 0
