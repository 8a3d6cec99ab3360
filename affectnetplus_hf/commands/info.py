"""``affectnetplus info DIR``: detect a dataset folder's kind/layout and count its labels.

Prints one JSON object::

    {"kind": "affectnet", "layout": "csv", "root": "...", "has_votes": false,
     "splits": {"train": {"Neutral": 12, ..., "Contempt": 3, "non_emotion": {"None": 1, ...},
                          "unlabelled": 0, "total": 40}, ...},
     "skipped": {...}, "bad": [...]}

Counts are by hard label (label-space names, ``docs/method.md#label-space``); non-emotion labels
(AffectNet codes 8-10 by name, vote sources' images without a majority emotion as ``no_majority``) are
counted separately, and every row a reader skipped is counted and listed under ``skipped``: nothing is
dropped silently. For a synthetic sample the multi-annotated part is summarised too
(``"multi_annotated"``).
"""

from __future__ import annotations

import argparse

NAME = "info"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="detect a dataset folder's kind/layout and print label counts per split as JSON",
        description="Detect the kind (affectnet, ferplus, folder, synthetic) and layout of DIR, read "
        "every record's labels (images are not decoded unless --check-images) and print JSON with "
        "per-split counts by hard label, non-emotion counts, and what was skipped and why.",
    )
    parser.add_argument("directory", metavar="DIR", help="dataset folder")
    parser.add_argument(
        "--kind",
        choices=("affectnet", "ferplus", "folder", "synthetic"),
        default=None,
        help="force the source kind instead of detecting it",
    )
    parser.add_argument(
        "--check-images", action="store_true", help="also decode every image and list the bad ones (slow on big sets)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.sources import open_multi_annotated, open_source, summarize_source

    source = open_source(args.directory, kind=args.kind, keep_non_emotion=True)
    summary = summarize_source(source, check_images=args.check_images)
    if source.kind == "synthetic":  # the sample's multi-annotated part, as training reads it
        summary["multi_annotated"] = summarize_source(
            open_multi_annotated(args.directory), check_images=args.check_images
        )
    print(json.dumps(summary, indent=2))
    return 0
