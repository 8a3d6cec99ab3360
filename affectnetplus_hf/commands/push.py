"""``affectnetplus push``: upload a dataset folder to the Hugging Face Hub — private by default.

AffectNet's license forbids redistributing its images, so the repository is created **private**
(``create_repo(private=True)``) unless ``--public`` is given, and ``--public`` is refused without
``--license-note TEXT`` (added to the card) saying why the data may be shared (e.g. the synthetic
sample is MIT). Pushing without ``--public`` into an existing public repository is refused too.
Uses ``huggingface_hub`` (token from ``HF_TOKEN`` / ``huggingface-cli login`` or ``--token``).
The folder is locked while it is pushed (a build replacing it meanwhile is refused, and a push of a
folder a build holds stops naming it); its ``.affectnetplus-run.json`` marker (local bookkeeping of the
build) is not uploaded.
"""

from __future__ import annotations

import argparse

NAME = "push"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="upload a dataset folder to the hub (private unless --public)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="folder written by `affectnetplus build`")
    p.add_argument("repo_id", metavar="REPO_ID", help="hub dataset repository, owner/name")
    p.add_argument("--public", action="store_true", help="create a public repository (needs --license-note)")
    p.add_argument(
        "--license-note",
        default=None,
        metavar="TEXT",
        help="why these images may be redistributed; added to the card (required with --public)",
    )
    p.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--message", default="Upload AffectNet+ dataset folder", help="commit message")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from affectnetplus_hf.dataset import push_dataset

    url = push_dataset(
        args.dataset_dir,
        args.repo_id,
        public=args.public,
        license_note=args.license_note,
        token=args.token,
        commit_message=args.message,
    )
    print(url)
    return 0
