"""``affectnetplus evaluate``: the paper's evaluation tables and figures (Sec. 4.3, Tables 8–11, Figs. 1, 5)."""

from __future__ import annotations

import argparse

#: The ``--help`` description.
DESCRIPTION = """``affectnetplus evaluate``: the paper's evaluation tables and figures
(Sec. 4.3, Tables 8–11, Figs. 1, 5).

Two modes:

  affectnetplus evaluate DATASET_DIR --baselines BASELINES_DIR --output REPORT_DIR
      every baseline of BASELINES_DIR on the validation split: accuracy, average accuracy, P/R/F1 and
      confusion matrices per subset; W-MAE/W-FR/W-AUC per subset and per emotion (the evaluate
      modules); CED curves; soft-label examples; on the synthetic sample the soft labels against the
      ground truth. Writes REPORT_DIR/report.md, tables/*.md|json, figures/*.png.

  affectnetplus evaluate DATA_DIR --labels LABELS_DIR --output REPORT_DIR [--reference truth|votes]
      a labeling run's soft labels (and one-hot hard labels, for comparison) against reference soft
      labels: the synthetic sample's ground truth or the vote distributions of a multi-annotated source
      (e.g. FER+ test). Writes REPORT_DIR/soft_label_quality.md|json.

A soft label that is not 8 finite values in [0, 1] stops either mode in one line naming the file (the
label shard, or the dataset's Parquet file) and the image.
"""

NAME = "evaluate"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="evaluation tables/figures of baselines, or soft labels vs references",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data",
        metavar="DATASET_DIR|DATA_DIR",
        help="exported dataset (with --baselines) or the labeled source (with --labels)",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--baselines", metavar="BASELINES_DIR", help="OUT_DIR of `affectnetplus baseline`")
    mode.add_argument("--labels", metavar="LABELS_DIR", help="OUT_DIR of `affectnetplus label`")
    p.add_argument("--output", "-o", required=True, metavar="REPORT_DIR", help="folder for the report")
    p.add_argument("--split", default="validation", help="split to evaluate on (with --baselines)")
    p.add_argument(
        "--reference",
        choices=("auto", "truth", "votes"),
        default="auto",
        help="with --labels: ground truth (synthetic), vote distributions, or auto",
    )
    p.add_argument("--epsilon", type=float, default=None, help="ε of W-FR / W-AUC (default 0.3, paper Eq. 15)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from affectnetplus_hf import baselines

    if args.labels:
        result = baselines.evaluate_soft_labels(
            args.labels, args.data, args.output, reference=args.reference, epsilon=args.epsilon
        )
        print(result["markdown"])
        return 0
    result = baselines.evaluate_baselines(
        args.data,
        args.baselines,
        args.output,
        split=args.split,
        epsilon=args.epsilon,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        progress=not args.no_progress,
    )
    brief = {
        name: {"accuracy": m["hard"]["all"]["accuracy"], **({"w_mae": m["soft"]["all"]["w_mae"]} if m["soft"] else {})}
        for name, m in result["models"].items()
        if "all" in m["hard"]
    }
    print(json.dumps({"report": result["report"], "all": brief}, indent=2, default=float))
    return 0
