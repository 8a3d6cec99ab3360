"""``affectnetplus train``: train soft-labeler members or a FER baseline (``docs/method.md``)."""

from __future__ import annotations

import argparse

#: The ``--help`` description.
DESCRIPTION = """``affectnetplus train``: train soft-labeler members or a FER baseline (``docs/method.md``).

  affectnetplus train softlabeler --data DIR --preset tiny --output MODEL_DIR   EBC + AU members + CS
  affectnetplus train softlabeler --data DIR --families ebc au dist --calibration_split validation ...
  affectnetplus train ebc         --data DIR --preset paper --output MODEL_DIR  EBC family only
  affectnetplus train au          --data DIR --output MODEL_DIR                 AU family only
  affectnetplus train baseline    --kind hard|soft --data DIR --output MODEL_DIR  Hard-/Soft-FER

Every option is a field of ``affectnetplus_hf.training.TrainConfig`` (parsed by transformers'
HfArgumentParser); ``--config FILE.yaml|.json`` loads them from a file, flags given as well override it.
Options left unset take the preset's values (``tiny``: small test_* timm models at 48 px for a CPU;
``paper``: the paper's settings). ``affectnetplus train FAMILY --help`` lists them all. The resolved config is saved
as ``train_config.json`` in the model directory. Distributed: ``accelerate launch [--multi_gpu
--num_processes N] -m affectnetplus_hf train ...``.

A soft-labeler's model directory is locked while it trains (a second run on it stops at once, naming the
process); a re-run resumes an interrupted run with the same settings and data, refuses other ones naming
each difference, and replaces a finished model only with ``--overwrite`` (README "Reliability").
"""

NAME = "train"
FAMILIES = ("softlabeler", "ebc", "au", "baseline")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="train soft-labeler members (softlabeler|ebc|au) or a baseline (Hard-/Soft-FER)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("family", choices=FAMILIES, help="what to train")
    p.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="--data DIR --output MODEL_DIR [--preset tiny|paper] [--config FILE] [any TrainConfig field]",
    )
    p.set_defaults(func=run)


def parse_train_config(options: list[str], prog: str = "affectnetplus train"):
    """``--config FILE`` + flags → a :class:`TrainConfig` (flags override the file)."""
    import json
    from pathlib import Path

    import yaml
    from transformers import HfArgumentParser

    from affectnetplus_hf.training.config import TrainConfig

    parser = HfArgumentParser(TrainConfig, prog=prog)
    parser.add_argument("--config", default=None, help="YAML or JSON file with TrainConfig fields")
    known, _ = parser.parse_known_args(options)
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        text = path.read_text(encoding="utf-8")
        try:
            values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ValueError(
                f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})"
            ) from None
        if not isinstance(values, dict):
            raise ValueError(f"--config {path}: expected a mapping of option names to values")
        fields = {f for f in TrainConfig.__dataclass_fields__}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"--config {path}: unknown options {unknown}; expected TrainConfig fields")
        parser.set_defaults(**values)
    namespace = parser.parse_args(options)
    data = {k: v for k, v in vars(namespace).items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**data)


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from affectnetplus_hf.training import NonFiniteLossError

    logger = logging.getLogger("affectnetplus.train")
    config = parse_train_config(list(args.options), prog=f"affectnetplus train {args.family}")
    if not config.data or not config.output_dir:
        raise ValueError("affectnetplus train needs --data DIR and --output MODEL_DIR (or both in --config)")
    try:
        if args.family == "baseline":
            from affectnetplus_hf.training.baseline import train_baseline_from_source

            result = train_baseline_from_source(config)
            summary = {"output_dir": str(result.output_dir), "kind": config.kind, "seconds": round(result.seconds, 1)}
        else:
            from affectnetplus_hf.training.softlabeler import train_soft_labeler

            families = {"softlabeler": None, "ebc": ("ebc",), "au": ("au",)}[args.family]
            result = train_soft_labeler(config, families=families)
            calibration = result.model.config.calibration
            summary = {
                "output_dir": str(result.output_dir),
                "families": list(result.model.config.families),
                "seconds": round(result.seconds, 1),
                "cs_mode": config.cs_mode,
                "mean_confidence": {
                    family: float(sum(map(float, _flat(v))) / max(1, len(_flat(v))))
                    for family, v in result.confidence_scores[config.cs_mode].items()
                },
            }
            if calibration is not None:
                summary["quality_against_votes"] = {k: round(v["w_mae"], 2) for k, v in calibration["quality"].items()}
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _flat(values) -> list:
    out = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, (list, tuple)) else [v])
    return out
