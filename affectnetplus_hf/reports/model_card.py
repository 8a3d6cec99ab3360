"""Model cards of trained soft-labelers and baselines: the ``README.md`` of a model directory.

The templates live in ``model_cards/`` at the repository root (``soft_labeler.md``, ``fer_baseline.md``;
packaged as ``affectnetplus_hf/templates/model_cards/``); placeholders are ``{name}`` fields filled by
:func:`render_soft_labeler_card` / :func:`render_baseline_card` from a finished run: backbones, data and
its license (:mod:`affectnetplus_hf.reports.licenses`), hyper-parameters, the measured confidence
scores next to the paper's Table 4 (``docs/method.md#reference-figures``), intended use and limitations.
"""

from __future__ import annotations

import dataclasses
import logging
import string
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.paper import PAPER_TABLE4_CS, PAPER_TABLE8_HARD_FER_ACC, PAPER_TABLE10_SOFT_FER
from affectnetplus_hf.reports.licenses import license_for
from affectnetplus_hf.reports.markdown import markdown_table, read_template, template_candidates

logger = logging.getLogger(__name__)


def find_template(name: str) -> str:
    """The text of model card template ``name`` (e.g. ``"soft_labeler.md"``)."""
    return read_template(template_candidates(f"model_cards/{name}", f"model_cards/{name}"), f"model card {name!r}")


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        logger.warning("model card: no value for {%s}", key)
        return f"(unknown {key})"


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` placeholders (unknown ones are marked, never an error)."""
    return string.Formatter().vformat(template, (), _Defaulting(values))


def _data_info(data: str | None) -> tuple[str, str, str, str]:
    """``(name, kind, license note, model license id)`` of the training data path ``data``."""
    if not data:
        return "(not recorded)", "unknown", "not recorded", license_for(None).model_license
    kind = "unknown"
    try:
        from affectnetplus_hf.sources import detect_source

        kind = detect_source(data)[0]
    except Exception:  # noqa: BLE001 - the card must render even if the data moved
        logger.debug("model card: cannot detect the source kind of %s", data)
    terms = license_for(kind)
    return Path(data).name or str(data), kind, terms.model_note, terms.model_license


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "(time not recorded)"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _augmentation(config) -> str:
    if not config.augment:
        return "none"
    return (f"horizontal flip p={config.hflip}, affine (±{config.rotate_degrees}°, ±{config.translate:.0%} shift, "
            f"scale ±{config.scale_jitter}), colour jitter ±{config.color_jitter}")


def _views(config) -> list[str]:
    """What the distribution members are averaged over at test time (``docs/method.md#distribution-family``)."""
    return (["the mirror image"] if config.test_time_flip else []) + (
        [f"{config.test_time_shift}-pixel shifts"] if config.test_time_shift else [])


def _test_time_views(config) -> str:
    return f"; at test time averaged over {' and '.join(_views(config))}." if _views(config) else "."


def _averaged(config) -> str:
    return f", averaged over {' and '.join(_views(config))}" if _views(config) else ""


def cs_comparison_table(confidences: dict[str, dict[str, Any]], cs_mode: str, ebc_backbones) -> str:
    """Measured CS (Eq. 3, mode ``cs_mode``; EBC also averaged over the J backbones) next to the paper's
    Table 4, in %."""
    scores = confidences.get(cs_mode, {})
    ebc = np.asarray(scores["ebc"], dtype=np.float64) if "ebc" in scores else None
    au = np.asarray(scores["au"], dtype=np.float64) if "au" in scores else None
    header = ["emotion"]
    if ebc is not None:
        header += [f"EBC {backbone}" for backbone in ebc_backbones]
        header += ["EBC mean"] * (len(ebc_backbones) > 1) + ["paper EBC"]
    if au is not None:
        header += ["AU", "paper AU"]
    rows = []
    for e, emotion in enumerate(EMOTIONS):
        paper_ebc, paper_au = PAPER_TABLE4_CS[emotion]
        row: list[Any] = [emotion]
        if ebc is not None:
            row += [100 * float(ebc[j, e]) for j in range(len(ebc))]
            row += [100 * float(ebc[:, e].mean())] * (len(ebc) > 1) + [float(paper_ebc)]
        if au is not None:
            row += [100 * float(au[e]), float(paper_au)]
        rows.append(row)
    return markdown_table(header, rows).rstrip("\n")


def render_soft_labeler_card(
    config,
    families,
    metrics: dict[str, dict[str, Any]],
    confidences: dict[str, dict[str, Any]],
    split_report: dict[str, Any],
    timings: dict[str, float] | None = None,
    bad_images: list[str] | None = None,
    tables_markdown: str = "",
    calibration: dict[str, Any] | None = None,
) -> str:
    """The ``README.md`` of a soft-labeler trained by :func:`affectnetplus_hf.training.train_soft_labeler`."""
    families = tuple(families)
    data_name, data_kind, data_license, model_license = _data_info(config.data)
    rows = []
    if "ebc" in families:
        rows.append(
            f"| EBC (`docs/method.md#ebc-scores`) | {', '.join(f'`{b}`' for b in config.ebc_backbones)} | {8 * len(config.ebc_backbones)} "
            f"binary | Adam lr {config.ebc_learning_rate}, betas ({config.adam_beta1}, {config.adam_beta2}), weight "
            f"decay {config.ebc_weight_decay} | {config.ebc_epochs} | {config.ebc_batch_size} | "
            f"{config.image_size}x{config.image_size} |"
        )
    if "au" in families:
        rows.append(
            f"| AU (`docs/method.md#au-scores`) | `{config.au_backbone}` | 8 binary + 21-AU heads | Adam lr {config.au_learning_rate}, "
            f"betas ({config.adam_beta1}, {config.adam_beta2}), weight decay {config.au_weight_decay} | "
            f"{config.au_epochs} | {config.au_batch_size} | {config.image_size}x{config.image_size} |"
        )
    if "dist" in families:
        rows.append(
            f"| distribution (`docs/method.md#distribution-family`) | `{config.dist_backbone}` | {config.dist_members} "
            f"× 8-way softmax on vote distributions{_averaged(config)} | Adam lr "
            f"{config.dist_learning_rate}, weight decay {config.dist_weight_decay} | {config.dist_epochs} | "
            f"{config.dist_batch_size} | {config.image_size}x{config.image_size} |"
        )
    per_emotion = split_report.get("per_emotion", {})
    split_rows = []
    for emotion in EMOTIONS:
        row = per_emotion.get(emotion, {})
        low = row.get("lowest_agreement_used")
        split_rows.append([emotion, row.get("n_images", "?"), row.get("n_unanimous", "?"), row.get("n_test", "?"),
                           "-" if low is None else float(low)])
    split_table = markdown_table(["emotion", "images", "unanimous", "test-MAS", "lowest agreement used"],
                                 split_rows).rstrip("\n")
    n_members = (8 * len(config.ebc_backbones) if "ebc" in families else 0) + (8 if "au" in families else 0)
    paper = tuple(f for f in ("ebc", "au") if f in families)
    family_sentence = {
        ("ebc", "au"): f"the ensemble of binary classifiers (EBC, Eqs. 4–5) and the AU-based classifiers (Eqs. 7–13), "
                       f"{n_members} members, combined by Eq. 14 (`sl_i = ½ (SC_EB + SC_AU)`).",
        ("ebc",): f"the ensemble of binary classifiers (EBC, Eqs. 4–5) alone, {n_members} members; the soft label is "
                  "SC_EB (no halving).",
        ("au",): "the AU-based classifiers (Eqs. 7–13) alone, 8 members; the soft label is SC_AU (no halving).",
        (): "",
    }[paper]
    members_word = "member" if int(config.dist_members or 0) == 1 else "members"
    if not paper:
        family_sentence = (f"the vote-distribution family alone ({config.dist_members} {members_word}); the soft "
                           "label is its mean probability (no Eq. 14 without the paper's families).")
    elif "dist" in families:
        family_sentence += (f" Also {config.dist_members} {members_word} trained on the annotators' vote "
                            "distributions (`dist_scores`, not part of Eq. 14).")
    soft_label_sentence = ("Each value `sl_i` of the soft label is an independent score in [0, 1] (Eq. 14), not a "
                           "probability distribution." if paper else "The soft label sums to 1.")
    training = []
    if paper:
        training.append(
            f"One-vs-rest training sets (`docs/method.md#sampling`; negatives: 20 % uniform, 80 % by AU overlap with "
            f"the positive emotion, `neg_ratio` = {config.neg_ratio}, overlap table `{config.overlap}`, "
            f"{'negatives re-drawn every epoch' if config.redraw_negatives else 'negatives drawn once'}). "
            f"Augmentation: {_augmentation(config)}.")
    if "au" in families:
        training.append(f"AU classifiers: loss = CE + {config.au_loss_weight} · Eq. 7 (AU score vector `{config.aus}`, "
                        f"Sim_Neutral = {config.neutral_similarity}).")
    if "dist" in families:
        training.append(
            f"Distribution members: soft-target cross-entropy on the vote distribution of every multi-annotated "
            f"image outside test-MAS (`{config.dist_target}` targets). Augmentation: "
            f"{_augmentation(dataclasses.replace(config, translate=float(config.dist_translate or 0)))}"
            + _test_time_views(config))
    limitations = [
        "Confidence scores are measured on a small held-out test-MAS; with few test images per emotion they are noisy.",
    ]
    if config.preset == "tiny":
        limitations.append(
            "Preset `tiny`: small randomly initialised `test_*` timm backbones at low resolution, a few epochs — a "
            "demonstration/CI model, not a model for real faces."
        )
    if data_kind == "synthetic":
        limitations.append("Trained on procedurally rendered faces only; it has never seen a photograph.")
    if bad_images:
        limitations.append(f"{len(bad_images)} unreadable images were skipped: {bad_images[:10]}.")
    pretrained = [p for p in (getattr(config, "pretrained", None) or [])]
    values = {
        "model_license": model_license,
        "families_title": " + ".join(f.upper() for f in families),
        "family_sentence": family_sentence,
        "command": families[0] if families in (("ebc",), ("au",)) else "softlabeler",
        "preset": config.preset,
        "total_time": _duration((timings or {}).get("total_s")),
        "model_dir_name": Path(config.output_dir).name if config.output_dir else "MODEL_DIR",
        "image_size": config.image_size,
        "members_rows": "\n".join(rows),
        "pretrained_note": ("initialised from " + ", ".join(pretrained)) if pretrained else "randomly initialised",
        "data_name": data_name,
        "data_kind": data_kind,
        "data_license": data_license,
        "n_images": split_report.get("n_images", "?"),
        "n_train": split_report.get("n_train", "?"),
        "n_test": split_report.get("n_test", "?"),
        "n_test_per_class": split_report.get("params", {}).get("n_test_per_class", "?"),
        "tie": config.tie,
        "n_dropped": split_report.get("n_dropped", 0),
        "split_table": split_table,
        "cs_mode": config.cs_mode,
        "comparability": "this run's data and models" if config.preset != "paper" or data_kind != "affectnet"
        else "runs on other MAS data",
        "cs_table": cs_comparison_table(confidences, config.cs_mode, list(config.ebc_backbones)) if paper else
        "None: the distribution family has no confidence score (Eq. 3 scores the paper's binary members); its "
        "members' test-MAS accuracy is below.",
        "soft_label_sentence": soft_label_sentence,
        "training_paragraph": " ".join(training),
        "member_tables": tables_markdown,
        "limitations": "\n".join(f"- {line}" for line in limitations),
        "crowd_quality": crowd_quality_section(calibration),
    }
    return render(find_template("soft_labeler.md"), values)


_QUALITY_START, _QUALITY_END = "<!-- crowd-quality:start -->", "<!-- crowd-quality:end -->"


def crowd_quality_section(calibration: dict[str, Any] | None) -> str:
    """The card's "Quality against people" section from a stored calibration
    (``docs/method.md#quality-against-people``), between markers so that ``affectnetplus calibrate`` can
    replace it."""
    from affectnetplus_hf.calibration import QUALITY_ROWS

    lines = [_QUALITY_START, "## Quality against people", ""]
    if not calibration or not calibration.get("quality"):
        lines += ["Not measured: this soft-labeler was not calibrated on a multi-annotated split "
                  "(`--calibration_split`, or `affectnetplus calibrate MODEL_DIR --data DIR --split validation`), "
                  "so it has no `soft_label_calibrated` output.", _QUALITY_END]
        return "\n".join(lines)
    fitted = calibration.get("fitted_on", {})
    weights = ", ".join(f"{f} {w:.3f}" for f, w in zip(calibration["inputs"], calibration["weights"]))
    lines += [
        f"Every output against the annotators' vote distributions of `{fitted.get('data', '?')}` split "
        f"`{fitted.get('split', '?')}` ({fitted.get('n', '?')} faces), each normalised to sum 1: W-MAE, W-FR, W-AUC "
        "(Eq. 15, %), KL(votes ‖ prediction) and the share of faces whose top emotion is the annotators' "
        "majority. The calibrated soft label was fitted on this same split "
        f"(objective `{calibration.get('objective', 'kl')}`, family weights {weights}).",
        "",
    ]
    quality = calibration["quality"]
    paper = any(f in calibration["inputs"] for f in ("ebc", "au"))
    rows = []
    for key, label in QUALITY_ROWS:
        row = quality.get(key)
        if row is None or (key == "soft_label" and not paper):  # without EBC/AU it is the distribution row
            continue
        kl = "–" if row.get("kl") is None else f"{row['kl']:.3f}"
        rows.append([label, float(row["w_mae"]), float(row["w_fr"]), float(row["w_auc"]), kl,
                     f"{row['majority_acc']:.3f}"])
    lines.append(markdown_table(["output", "W-MAE ↓", "W-FR ↓", "W-AUC ↑", "KL ↓", "majority acc ↑"], rows).rstrip("\n"))
    lines.append(_QUALITY_END)
    return "\n".join(lines)


def replace_card_section(card: str, section: str) -> str:
    """``card`` with its crowd-quality section replaced by ``section`` (appended when it has none)."""
    start, end = card.find(_QUALITY_START), card.find(_QUALITY_END)
    if start == -1 or end == -1:
        return card.rstrip("\n") + "\n\n" + section + "\n"
    return card[:start] + section + card[end + len(_QUALITY_END):]


#: What each FER+ training mode learns (Barsoum et al. 2016), for the baseline card.
FERPLUS_MODE_DESCRIPTIONS: dict[str, str] = {
    "majority": "cross-entropy on the majority emotion of the annotators' votes (one-hot)",
    "probability": "cross-entropy on an emotion drawn from the votes' label distribution, a fresh seeded draw "
                   "per image per epoch",
    "crossentropy": "cross-entropy with the votes' label distribution as soft target, -Σ t log p",
    "multi_target": "the multi-target loss -log Σ t p, t = 1 on every emotion of the label distribution "
                    "(smoothed by 0.001)",
}


#: One line per baseline kind (paper Sec. 4.3 and FER+'s modes), for the evaluation report.
KIND_DESCRIPTIONS: dict[str, str] = {
    "hard": "Hard-FER: 8-way softmax, cross-entropy on the hard labels (paper Sec. 4.3)",
    "soft": "Soft-FER: 8 sigmoids, binary cross-entropy on the AffectNet+ soft labels (paper Sec. 4.3)",
    **{mode: f"FER+ {mode}: 8-way softmax, {loss}" for mode, loss in FERPLUS_MODE_DESCRIPTIONS.items()},
}


def render_baseline_card(config, kind: str, n_images: int, class_counts, epoch_losses, seconds: float | None,
                         left_out: dict[str, int] | None = None) -> str:
    """The ``README.md`` of a Hard-FER / Soft-FER baseline (paper Sec. 4.3) or of a FER+ training mode
    (``majority``, ``probability``, ``crossentropy``, ``multi_target``; Barsoum et al. 2016), whose
    ``left_out`` counts the images FER+ discards and those without votes."""
    data_name, data_kind, data_license, model_license = _data_info(config.data)
    command = f"affectnetplus train baseline --kind {kind}"
    reproduce = "affectnetplus train baseline --config train_config.json"
    if kind == "hard":
        title, description = "Hard-FER baseline", (
            "An 8-way softmax classifier trained with cross-entropy on hard labels (paper Sec. 4.3, "
            "`docs/method.md#baselines`).")
        paper = ", ".join(f"{k} {v:.2f} %" for k, v in PAPER_TABLE8_HARD_FER_ACC.items()) + " accuracy (Table 8)"
        balance = config.class_balance
    elif kind in FERPLUS_MODE_DESCRIPTIONS:
        title = f"FER+ {kind} baseline"
        description = (
            f"An 8-way softmax classifier trained with FER+'s `{kind}` mode (Barsoum et al. 2016, \"Training deep "
            "networks for facial expression recognition with crowd-sourced label distribution\"): "
            f"{FERPLUS_MODE_DESCRIPTIONS[kind]}. Targets come from each image's annotator votes (the dataset's "
            "`votes` column). Evaluated like Hard-FER (accuracy on its argmax) and, on its softmax, with the "
            "AffectNet+ soft-label metrics W-MAE / W-FR / W-AUC (paper Sec. 4.3).")
        counted = left_out or {}
        if any(counted.values()):
            description += (f" Left out of training: {counted.get('discarded', 0)} images FER+ discards in this mode "
                            f"(no majority, too little agreement, or unknown/NF on top) and "
                            f"{counted.get('without_votes', 0)} without votes.")
        paper = ("no AffectNet+ paper number for this training mode; Hard-FER (ResNet-50) reaches "
                 + ", ".join(f"{k} {v:.2f} %" for k, v in PAPER_TABLE8_HARD_FER_ACC.items()) + " accuracy (Table 8)")
        balance = "none (FER+ targets, no class weights)"
        command = f"affectnetplus baseline DATASET_DIR OUT_DIR --kinds {kind}"
        reproduce = f"affectnetplus baseline DATASET_DIR OUT_DIR --kinds {kind} --config train_config.json"
    else:
        title, description = "Soft-FER baseline", (
            "8 sigmoid outputs trained with binary cross-entropy against soft labels; predicts a soft label "
            "(paper Sec. 4.3, `docs/method.md#baselines`), evaluated with W-MAE / W-FR / W-AUC (Eq. 15, "
            "`docs/method.md#metrics`).")
        ref = PAPER_TABLE10_SOFT_FER["resnet50"]
        paper = "W-MAE " + ", ".join(f"{k} {v:.2f}" for k, v in ref["w_mae"].items()) + " (Table 10)"
        balance = "none (soft targets)"
    values = {
        "model_license": model_license,
        "title": title, "description": description, "kind": kind, "preset": config.preset,
        "total_time": _duration(seconds),
        "model_dir_name": Path(config.output_dir).name if config.output_dir else "MODEL_DIR",
        "backbone": config.backbone, "learning_rate": config.learning_rate, "adam_beta1": config.adam_beta1,
        "adam_beta2": config.adam_beta2, "weight_decay": config.weight_decay, "epochs": config.epochs,
        "batch_size": config.batch_size, "image_size": config.image_size, "balance": balance,
        "data_name": data_name, "data_kind": data_kind, "data_license": data_license, "n_images": n_images,
        "class_counts": ", ".join(f"{e} {int(c)}" for e, c in zip(EMOTIONS, class_counts)),
        "augmentation": _augmentation(config),
        "epoch_losses": ", ".join(f"{v:.4f}" for v in epoch_losses) or "-",
        "paper_reference": paper,
        "command": command,
        "reproduce": reproduce,
    }
    return render(find_template("fer_baseline.md"), values)


__all__ = [
    "FERPLUS_MODE_DESCRIPTIONS",
    "KIND_DESCRIPTIONS",
    "crowd_quality_section",
    "cs_comparison_table",
    "find_template",
    "render",
    "render_baseline_card",
    "render_soft_labeler_card",
    "replace_card_section",
]
