"""``affectnetplus predict``: soft labels for face images with a saved soft-labeler (SPEC §8).

One row per image: the path, the 8 soft-label values named after the emotions (SPEC §1 order) and,
with ``--spread``, the per-emotion standard deviation of the ensemble members' probabilities.
Written to ``--output`` (``.csv``, ``.jsonl`` or ``.parquet``, atomically) or printed as a table.
"""

from __future__ import annotations

import argparse

NAME = "predict"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="soft-label face images with a saved soft-labeler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", help="directory written by SoftLabeler.save_pretrained (or a hub id)")
    p.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    p.add_argument("--output", "-o", default=None, help="FILE.csv | FILE.jsonl | FILE.parquet (default: table on stdout)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast dtype; auto = bf16 on CUDA, fp32 on CPU")
    p.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes")
    p.add_argument("--spread", action="store_true", help="add <Emotion>_spread columns (std of the members)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images (counted and listed in the log) instead of failing")
    p.set_defaults(func=run)


def check_model_dir(model_dir: str) -> None:
    """Fail early, naming the file, on a local model folder that cannot be loaded.

    A path that does not exist and looks local (absolute, ``./``, ``../``, ``~``, or more than one ``/``)
    is a missing folder, not a hub id; an existing path must be a folder whose ``config.json`` is JSON
    and whose safetensors weights have a complete header (read without loading the tensors). Anything
    else (``name`` or ``org/name``) is left to the hub.
    """
    import json
    import os

    path = os.path.expanduser(model_dir)
    if not os.path.exists(path):
        if os.path.isabs(path) or model_dir.startswith((".", "~")) or model_dir.count("/") > 1 or (
                os.sep != "/" and os.sep in model_dir):
            raise FileNotFoundError(
                f"model directory {model_dir!r} does not exist (expected a folder with config.json and "
                "model.safetensors, written by SoftLabeler.save_pretrained)"
            )
        return
    if not os.path.isdir(path):
        raise NotADirectoryError(f"model directory {model_dir!r} is not a directory (expected a folder with "
                                 "config.json and model.safetensors)")
    config = os.path.join(path, "config.json")
    if os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as handle:
                json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{config}: not valid JSON ({error})") from None
    weights = sorted(name for name in os.listdir(path) if name.endswith(".safetensors"))
    if weights:
        from safetensors import SafetensorError, safe_open

        for name in weights:
            file = os.path.join(path, name)
            try:
                with safe_open(file, framework="pt"):
                    pass
            except (SafetensorError, OSError) as error:
                raise ValueError(f"{file}: not a complete safetensors file ({error}); save the model again") from None


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
    )
    write_predictions(table, args.output)
    return 0
