"""Soft labels against people on real faces: FER+ (Barsoum et al. 2016), 10 crowd votes per face.

Trains every predictor on the FER+ ``Training`` votes with the package's own training code
(``train_soft_labeler``), then compares each one's predictions on the evaluation split (default
``validation`` = FER+ PublicTest) with the crowd's vote distributions (each emotion's share of the
emotion votes), every prediction normalised to sum 1 (``crowd_agreement``: W-MAE, W-FR, W-AUC of Eq. 15,
KL(crowd ‖ prediction), majority accuracy). Rows (``rows`` in ``benchmarks/results/ferplus.json``):

* ``uniform`` — 1/8 everywhere; ``majority_onehot`` — one-hot of the crowd's own majority;
* ``single_ce_majority`` — one network of the ensemble's backbone, softmax trained on majority labels
  (``dist_target="majority"``) for as many epochs as ``recommended``;
* ``single_ce_votes`` — the same network trained on the vote distributions of every Training face (FER+
  "crossentropy" mode): the recommended model's own network, read without mirror averaging or
  calibration — so the same compute budget by construction;
* ``paper_ensemble`` — the paper's EBC + AU soft-labeler, Eq. 14 (normalised for the comparison);
* improvements: ``paper_ensemble_calibrated`` (calibration of ``docs/method.md#calibration`` fitted on the
  evaluation split), ``dist_flip`` (+ mirror averaging), ``dist_flip_calibrated_w_mae`` (the calibration's
  W-MAE objective instead of KL), ``dist_ensemble_2_flip_calibrated`` (two members of half the epochs
  each: the same budget spent on an ensemble), ``dist_plus_paper_calibrated`` (distribution + EBC + AU
  scores pooled by the calibration);
* ``recommended`` — the tiny recipe (:data:`RECOMMENDED`: ``single_ce_votes`` + mirror averaging + KL
  calibration), as saved by training;
* ``small_dist_6_epochs_calibrated`` — a lever: the ``small`` preset's distribution member (``resnet10t``,
  affine + colour augmentation) for 6 epochs;
* the shipped ``ferplus`` soft-labeler (``affectnetplus_hf.pretrained_path("ferplus")``, scored as shipped)
  and what each of its inference-time levers gives: ``ferplus_eq14`` (its Eq. 14), ``ferplus_dist_plain``,
  ``ferplus_dist_flip``, ``ferplus_dist_flip_shift`` (its distribution member without / with mirror and
  shift averaging), ``ferplus_calibrated_without_shift``, ``ferplus_calibrated_dist_only`` and ``ferplus``
  (its ``soft_label_calibrated``: every family pooled).

Every row also carries the **second-panel check** (``docs/method.md#quality-against-people``): each face's
votes split at random into two panels of half the votes, the prediction scored against panel B
(``panel_b_w_mae``, ``panel_b_majority_acc``; mean of 5 splits); ``second_panel`` gives panel A against
panel B, what a second group of people reaches.

Calibrated rows are fitted on the split they are scored on (as shipped: select and calibrate on
PublicTest); ``w_mae_crossfit`` gives their W-MAE when the calibration is fitted on one half of the split
and scored on the other (2 folds), which shows how much of the gain survives on unseen faces.

Each trained model is kept under ``--work-dir`` (one folder per predictor); a rerun reuses finished
ones, so the table is reproduced from the saved models in minutes. Training from scratch takes about
1 h on 2 CPU cores (tiny preset).

    python benchmarks/bench_ferplus.py                       # ../shared/data/ferplus, tiny preset
    python benchmarks/bench_ferplus.py --preset tiny --eval-split validation --paper-epochs 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ferplus"
RESULTS = REPO / "benchmarks" / "results" / "ferplus.json"
DEFAULT_WORK = REPO / "benchmarks" / ".cache" / "ferplus"

#: The recipe shipped as the default for multi-annotated data: the vote-distribution family, mirror
#: averaging, calibration on a held-out multi-annotated split (TrainConfig fields; the preset fills the rest).
RECOMMENDED: dict[str, Any] = {"families": ["dist"], "test_time_flip": True, "calibration_objective": "kl"}
#: Members of the equal-budget ensemble ablation (each trained ``dist_epochs / ENSEMBLE_MEMBERS`` epochs).
ENSEMBLE_MEMBERS = 2

logger = logging.getLogger("bench_ferplus")


def train(
    name: str, *, work: Path, data: Path, preset: str, max_images: int | None, skip_missing: bool = False, **options
) -> Path | None:
    """Train one predictor with the package (kept: a finished model folder is reused; ``skip_missing``:
    ``None`` instead of training)."""
    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training.softlabeler import train_soft_labeler

    out = work / name
    if (out / "config.json").is_file() and (out / "confidence_scores.json").is_file():
        logger.info("%s: reusing %s", name, out)
        return out
    if skip_missing:
        logger.warning("%s: not trained under %s; skipped (--skip-missing)", name, work)
        return None
    config = TrainConfig(
        data=str(data),
        output_dir=str(out),
        preset=preset,
        mas_splits=["train"],
        progress=False,
        log_with="none",
        max_images=max_images,
        **options,
    )
    logger.info("%s: training (%s)", name, options)
    train_soft_labeler(config)
    return out


def trained_cost(model_dir: Path) -> tuple[float, int]:
    """(training wall seconds, sample-passes) recorded by the training run."""
    payload = json.loads((model_dir / "confidence_scores.json").read_text())
    timings = payload["timings"]
    total = timings.get("all_sessions_s", timings["total_s"])  # a run resumed across sessions: all of them
    return float(total - timings.get("calibration_s", 0.0)), int(payload["sample_passes"])


def scores_of(
    model_dir: Path, pixel_values, flip: bool | None = None, shift: int | None = None
) -> dict[str, np.ndarray | None]:
    """Every output of a saved soft-labeler (``flip`` / ``shift``: override its test-time augmentation)."""
    from transformers import AutoModel

    import affectnetplus_hf
    from affectnetplus_hf.training.calibrate import soft_labeler_scores

    affectnetplus_hf.register_auto_classes()
    model = AutoModel.from_pretrained(str(model_dir))
    if flip is not None:
        model.config.test_time_flip = flip
    if shift is not None:
        model.config.test_time_shift = shift
    return soft_labeler_scores(model, pixel_values)


def calibrated(scores: dict, reference: np.ndarray, inputs: list[str], objective: str) -> tuple[np.ndarray, float]:
    """Calibrated predictions fitted on the whole split, and the 2-fold cross-fitted W-MAE."""
    from affectnetplus_hf.calibration import apply_calibration, fit_calibration
    from affectnetplus_hf.metrics.functional import crowd_agreement

    fit = fit_calibration({f: scores[f] for f in inputs}, reference, inputs=inputs, objective=objective)
    folds = np.random.default_rng(0).permutation(len(reference)) % 2
    crossfit = np.zeros_like(reference)
    for fold in (0, 1):
        train_rows, test_rows = folds != fold, folds == fold
        part = fit_calibration(
            {f: scores[f][train_rows] for f in inputs}, reference[train_rows], inputs=inputs, objective=objective
        )
        crossfit[test_rows] = apply_calibration({f: scores[f][test_rows] for f in inputs}, part)
    return apply_calibration(scores, fit), crowd_agreement(reference, crossfit)["w_mae"]


class Scorer:
    """One row per predictor: :func:`crowd_agreement` against the whole crowd, and the second-panel check
    (the prediction and panel A against panel B, mean of 5 splits) next to it."""

    def __init__(self, reference: np.ndarray, votes: np.ndarray, non_emotion: np.ndarray):
        self.reference, self.votes, self.non_emotion = reference, votes, non_emotion

    def row(self, prediction, train_s: float, sample_passes: int, **extra) -> dict[str, Any]:
        from affectnetplus_hf.metrics.functional import crowd_agreement, second_panel_check

        out = crowd_agreement(self.reference, prediction)
        panel = second_panel_check(self.votes, self.non_emotion, prediction)
        return {
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()},
            "panel_b_w_mae": round(panel["model"]["w_mae"], 4),
            "panel_b_majority_acc": round(panel["model"]["majority_acc"], 4),
            "train_s": round(train_s, 1),
            "sample_passes": int(sample_passes),
            **extra,
        }

    def panel_a(self) -> dict[str, Any]:
        from affectnetplus_hf.metrics.functional import second_panel_check

        panel = second_panel_check(self.votes, self.non_emotion, self.reference)["panel_a"]
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in panel.items()}


def markdown(rows: dict[str, dict[str, Any]], panel_a: dict[str, Any]) -> str:
    lines = [
        "| predictor | W-MAE ↓ | W-FR ↓ | W-AUC ↑ | KL ↓ | majority acc ↑ | vs panel B: W-MAE ↓ | train | "
        "sample-passes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in rows.items():
        kl = "–" if r["kl"] is None else f"{r['kl']:.3f}"
        train_time = "–" if not r["train_s"] else f"{r['train_s'] / 60:.1f} min"
        passes = "–" if not r["sample_passes"] else f"{r['sample_passes'] / 1e6:.2f} M"
        panel = "–" if r.get("panel_b_w_mae") is None else f"{r['panel_b_w_mae']:.2f}"
        lines.append(
            f"| `{key}` | {r['w_mae']:.2f} | {r['w_fr']:.2f} | {r['w_auc']:.2f} | {kl} | "
            f"{r['majority_acc']:.3f} | {panel} | {train_time} | {passes} |"
        )
    lines.append(f"| *panel A (5 people)* | | | | | | {panel_a['w_mae']:.2f} | | |")
    return "\n".join(lines)


def train_all(args, work: Path, data: Path) -> dict[str, Path]:
    """Every trained predictor (each kept under ``work``; a rerun reuses it)."""
    from affectnetplus_hf.training.config import TrainConfig, resolve_preset

    preset = resolve_preset(TrainConfig(preset=args.preset))
    k, epochs = int(preset.dist_members), int(preset.dist_epochs)
    common = dict(work=work, data=data, preset=args.preset, max_images=args.max_images, skip_missing=args.skip_missing)
    return {
        "recommended": train("recommended", calibration_split=args.eval_split, **RECOMMENDED, **common),
        "single_ce_majority": train(
            "single_ce_majority", families=["dist"], dist_target="majority", test_time_flip=False, **common
        ),
        "dist_ensemble": train(
            "dist_ensemble",
            families=["dist"],
            dist_members=ENSEMBLE_MEMBERS,
            dist_epochs=max(1, k * epochs // ENSEMBLE_MEMBERS),
            **common,
        ),
        "paper_ensemble": train(
            "paper_ensemble",
            families=["ebc", "au"],
            ebc_epochs=args.paper_epochs,
            au_epochs=args.paper_epochs,
            **common,
        ),
        # lever: the small preset's backbone and augmentation at a third of its epochs
        "small_dist_6_epochs": train(
            "small_dist_6_epochs",
            **{**common, "preset": "small"},
            families=["dist"],
            dist_epochs=6,
            calibration_split=args.eval_split,
        ),
    }


def shipped_rows(scorer: Scorer, pixels, objective: str) -> dict[str, dict[str, Any]]:
    """The shipped ``ferplus`` soft-labeler, and what each of its inference-time levers gives."""
    from affectnetplus_hf import pretrained_path

    model_dir = pretrained_path("ferplus")
    cost = trained_cost(model_dir)
    shipped = scores_of(model_dir, pixels)
    plain = scores_of(model_dir, pixels, flip=False, shift=0)
    flip_only = scores_of(model_dir, pixels, shift=0)
    rows = {
        "ferplus_eq14": scorer.row(shipped["soft_label"], *cost),
        "ferplus_dist_plain": scorer.row(plain["dist"], *cost),
        "ferplus_dist_flip": scorer.row(flip_only["dist"], *cost),
        "ferplus_dist_flip_shift": scorer.row(shipped["dist"], *cost),
    }
    prediction, crossfit = calibrated(flip_only, scorer.reference, ["ebc", "au", "dist"], objective)
    rows["ferplus_calibrated_without_shift"] = scorer.row(prediction, *cost, w_mae_crossfit=round(crossfit, 4))
    prediction, crossfit = calibrated(shipped, scorer.reference, ["dist"], objective)
    rows["ferplus_calibrated_dist_only"] = scorer.row(prediction, *cost, w_mae_crossfit=round(crossfit, 4))
    _, crossfit = calibrated(shipped, scorer.reference, ["ebc", "au", "dist"], objective)
    rows["ferplus"] = scorer.row(shipped["soft_label_calibrated"], *cost, w_mae_crossfit=round(crossfit, 4))
    return rows


def tiny_rows(
    scorer: Scorer, models: dict[str, Path | None], pixels, objective: str, previous: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The tiny-preset predictors (and the small-preset lever) of the table. A row whose models are not
    trained (``--skip-missing``) keeps its previous result, marked ``rerun: false`` (no second-panel check)."""
    reference = scorer.reference
    available = {name: path for name, path in models.items() if path is not None}
    cost = {name: trained_cost(path) for name, path in available.items()}
    scores: dict[str, dict] = {}

    def of(name: str, **view) -> dict:
        key = f"{name}{sorted(view.items())}"
        if key not in scores:
            scores[key] = scores_of(available[name], pixels, **view)
        return scores[key]

    def calibrated_row(score: dict, inputs: list[str], spent, goal: str = objective) -> dict[str, Any]:
        prediction, crossfit = calibrated(score, reference, inputs, goal)
        return scorer.row(prediction, *spent, w_mae_crossfit=round(crossfit, 4))

    def summed(*names: str) -> tuple[float, int]:
        return sum(cost[n][0] for n in names), sum(cost[n][1] for n in names)

    recipes = {  # row -> (models it needs, how it is scored)
        "uniform": ((), lambda: scorer.row(np.full_like(reference, 1 / 8), 0, 0)),
        "majority_onehot": ((), lambda: scorer.row(np.eye(8)[reference.argmax(axis=1)], 0, 0)),
        "single_ce_majority": (
            ("single_ce_majority",),
            lambda: scorer.row(of("single_ce_majority")["soft_label"], *cost["single_ce_majority"]),
        ),
        # one network on the vote distributions = the recommended model without its two inference add-ons
        "single_ce_votes": (
            ("recommended",),
            lambda: scorer.row(of("recommended", flip=False)["dist"], *cost["recommended"]),
        ),
        "paper_ensemble": (
            ("paper_ensemble",),
            lambda: scorer.row(of("paper_ensemble")["soft_label"], *cost["paper_ensemble"]),
        ),
        "paper_ensemble_calibrated": (
            ("paper_ensemble",),
            lambda: calibrated_row(of("paper_ensemble"), ["ebc", "au"], cost["paper_ensemble"]),
        ),
        "dist_flip": (("recommended",), lambda: scorer.row(of("recommended")["dist"], *cost["recommended"])),
        "dist_flip_calibrated_w_mae": (
            ("recommended",),
            lambda: calibrated_row(of("recommended"), ["dist"], cost["recommended"], "w_mae"),
        ),
        f"dist_ensemble_{ENSEMBLE_MEMBERS}_flip_calibrated": (
            ("dist_ensemble",),
            lambda: calibrated_row(of("dist_ensemble", flip=True), ["dist"], cost["dist_ensemble"]),
        ),
        "dist_plus_paper_calibrated": (
            ("recommended", "paper_ensemble"),
            lambda: calibrated_row(
                {
                    "dist": of("recommended")["dist"],
                    "ebc": of("paper_ensemble")["ebc"],
                    "au": of("paper_ensemble")["au"],
                },
                ["dist", "ebc", "au"],
                summed("recommended", "paper_ensemble"),
            ),
        ),
        "recommended": (("recommended",), lambda: calibrated_row(of("recommended"), ["dist"], cost["recommended"])),
        "small_dist_6_epochs_calibrated": (
            ("small_dist_6_epochs",),
            lambda: calibrated_row(of("small_dist_6_epochs"), ["dist"], cost["small_dist_6_epochs"]),
        ),
    }
    rows: dict[str, dict[str, Any]] = {}
    for name, (needs, score) in recipes.items():
        if all(n in available for n in needs):
            rows[name] = score()
        elif name in previous:
            logger.warning("%s: models %s not trained (--skip-missing); previous result kept", name, needs)
            rows[name] = {**previous[name], "rerun": False}
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="FER+ folder (default ../shared/data/ferplus)")
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=("tiny", "small", "paper"),
        help="preset of the compared recipes (the shipped model is always scored as shipped)",
    )
    parser.add_argument(
        "--eval-split",
        default="validation",
        help="split scored (and calibrated on); default validation = FER+ PublicTest",
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK), help="trained models (reused when present)")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--paper-epochs", type=int, default=4, help="EBC and AU epochs of paper_ensemble")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="score only the predictors already trained under --work-dir; the other rows keep the "
        "previous result of --output, marked rerun: false",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="train and score on at most this many images (a quick check of the script, not a result)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from affectnetplus_hf.fileio import write_text_atomic
    from affectnetplus_hf.mas.split import mas_arrays, record_vote_distributions
    from affectnetplus_hf.training.calibrate import vote_records
    from affectnetplus_hf.training.config import TrainConfig, resolve_preset
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    if args.threads:
        torch.set_num_threads(args.threads)
    data, work = Path(args.data), Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    preset = resolve_preset(TrainConfig(preset=args.preset))
    started = time.perf_counter()
    models = train_all(args, work, data)

    records = vote_records(data, args.eval_split)
    if args.max_images is not None:
        records = records[: args.max_images]
    votes, non_emotion, _ = mas_arrays(records)
    scorer = Scorer(record_vote_distributions(records).astype(np.float64), votes, non_emotion)
    pixels, kept, _ = decode_records(records, FacePreprocessor(preset.image_size), desc=f"decoding {args.eval_split}")
    if len(kept) != len(records):
        raise ValueError(f"{len(records) - len(kept)} images of {args.eval_split} could not be decoded")
    logger.info("%s: %d faces with emotion votes", args.eval_split, len(records))
    objective = RECOMMENDED["calibration_objective"]
    previous = json.loads(Path(args.output).read_text()).get("rows", {}) if Path(args.output).is_file() else {}
    rows = {**tiny_rows(scorer, models, pixels, objective, previous), **shipped_rows(scorer, pixels, objective)}
    panel_a = scorer.panel_a()

    table = markdown(rows, panel_a)
    print(table)
    payload = {
        "benchmark": "soft labels vs FER+ crowd vote distributions",
        "data": str(data),
        "eval_split": args.eval_split,
        "n_faces": len(records),
        "preset": args.preset,
        "recommended_recipe": {
            **RECOMMENDED,
            "dist_members": int(preset.dist_members),
            "dist_epochs": int(preset.dist_epochs),
            "calibration_split": args.eval_split,
            "mas_splits": ["train"],
        },
        "paper_ensemble_epochs": args.paper_epochs,
        "calibration_objective": objective,
        "rows": rows,
        "second_panel": {
            "panel_a_vs_panel_b": panel_a,
            "seeds": [0, 1, 2, 3, 4],
            "panel_size": "half the votes (5 of 10)",
        },
        "markdown": table,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "note": "train_s: wall time of each training run on this machine (see README for the conditions); "
        "sample_passes: images through forward+backward in training; calibrated rows are fitted on the "
        "evaluation split, w_mae_crossfit fits on one half and scores the other; panel_b_*: the "
        "prediction against panel B of the second-panel check (mean of 5 splits), panel A alongside",
        "seconds": round(time.perf_counter() - started, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
