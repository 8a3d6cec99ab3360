"""``affectnetplus demo OUT_DIR``: the whole pipeline on the embedded synthetic sample (README quick start).

sample → tiny soft-labeler → labeling → dataset folder (checked with ``load_dataset`` per subset) →
tiny Hard-/Soft-FER baselines → evaluation report. Leaves ``OUT_DIR/dataset/`` (the ``load_dataset``
folder) and ``OUT_DIR/report/report.md`` (tables + PNG figures). OUT_DIR is locked while the demo runs.
Finished stages are kept when the command is run again with the same settings (--seed, --n-train,
--n-val, --n-mas); other settings are refused naming them, unless --overwrite (the demo folder is
emptied and the demo starts over). About 6–8 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse

NAME = "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="run the whole pipeline on the embedded synthetic sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output_dir", metavar="OUT_DIR", help="folder for every stage's output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="sample size (default: the sample's 800)")
    parser.add_argument("--n-val", type=int, default=None, help="validation images (default 200)")
    parser.add_argument("--n-mas", type=int, default=None, help="multi-annotated images (default 1200)")
    parser.add_argument(
        "--overwrite", action="store_true", help="empty OUT_DIR (a folder an earlier demo wrote) and start over"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf.demo import run_demo

    summary = run_demo(
        args.output_dir,
        seed=args.seed,
        n_train=args.n_train,
        n_val=args.n_val,
        n_mas=args.n_mas,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    brief = {k: summary[k] for k in ("timings_s", "soft_label_quality", "baselines_accuracy") if k in summary}
    brief["report"] = f"{args.output_dir}/report/report.md"
    print(json.dumps(brief, indent=2, default=float))
    return 0
