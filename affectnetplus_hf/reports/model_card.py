"""Model cards of trained soft-labelers and baselines: the ``README.md`` of a model directory.

The templates live in ``model_cards/`` at the repository root (``soft_labeler.md``, ``fer_baseline.md``;
packaged as ``affectnetplus_hf/templates/model_cards/``); placeholders are ``{name}`` fields filled by
:func:`render_soft_labeler_card` / :func:`render_baseline_card` from a finished run: backbones, data and
its license (:mod:`affectnetplus_hf.reports.licenses`), hyper-parameters, the measured confidence
scores next to the paper's Table 4 (``docs/method.md#reference-figures``), intended use and limitations.
The sentences and rows that depend on the run (its families, its baseline kind) are fragments in
``affectnetplus_hf/templates/model_card_parts/``, filled the same way.
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


def _part(name: str, **values: Any) -> str:
    """Card fragment ``name`` (``affectnetplus_hf/templates/model_card_parts/NAME.md``) filled by :func:`render`,
    without its file's final newline."""
    path = f"model_card_parts/{name}.md"
    text = read_template(template_candidates(path, f"affectnetplus_hf/templates/{path}"), f"model card part {name!r}")
    return render(text.removesuffix("\n"), values)


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
    return (
        f"horizontal flip p={config.hflip}, affine (±{config.rotate_degrees}°, ±{config.translate:.0%} shift, "
        f"scale ±{config.scale_jitter}), colour jitter ±{config.color_jitter}"
    )


def _views(config) -> list[str]:
    """What the distribution members are averaged over at test time (``docs/method.md#distribution-family``)."""
    return (["the mirror image"] if config.test_time_flip else []) + (
        [f"{config.test_time_shift}-pixel shifts"] if config.test_time_shift else []
    )


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


def _member_rows(config, families: tuple[str, ...]) -> str:
    """The rows of the card's members table, one per family."""
    rows = []
    if "ebc" in families:
        rows.append(
            _part(
                "soft_labeler_member_ebc",
                config=config,
                n_members=8 * len(config.ebc_backbones),
                backbones=", ".join(f"`{b}`" for b in config.ebc_backbones),
            )
        )
    if "au" in families:
        rows.append(_part("soft_labeler_member_au", config=config))
    if "dist" in families:
        rows.append(_part("soft_labeler_member_dist", config=config, averaged=_averaged(config)))
    return "\n".join(rows)


def _split_table(split_report: dict[str, Any]) -> str:
    """Images, unanimous images, test-MAS images and the lowest agreement used, per emotion."""
    per_emotion = split_report.get("per_emotion", {})
    rows = []
    for emotion in EMOTIONS:
        row = per_emotion.get(emotion, {})
        low = row.get("lowest_agreement_used")
        rows.append(
            [
                emotion,
                row.get("n_images", "?"),
                row.get("n_unanimous", "?"),
                row.get("n_test", "?"),
                "-" if low is None else float(low),
            ]
        )
    header = ["emotion", "images", "unanimous", "test-MAS", "lowest agreement used"]
    return markdown_table(header, rows).rstrip("\n")


def _family_sentence(config, families: tuple[str, ...], paper: tuple[str, ...]) -> str:
    """What the soft label is made of: the paper's families (Eq. 14) and/or the distribution family."""
    members_word = "member" if int(config.dist_members or 0) == 1 else "members"
    if not paper:
        return _part("soft_labeler_families_dist", config=config, members_word=members_word)
    n_members = (8 * len(config.ebc_backbones) if "ebc" in families else 0) + (8 if "au" in families else 0)
    sentence = _part(f"soft_labeler_families_{'_'.join(paper)}", n_members=n_members)
    if "dist" in families:
        sentence += " " + _part("soft_labeler_families_also_dist", config=config, members_word=members_word)
    return sentence


def _training_paragraph(config, families: tuple[str, ...], paper: tuple[str, ...]) -> str:
    """How the members were trained: the one-vs-rest sets, the AU loss, the distribution members."""
    training = []
    if paper:
        negatives = "negatives re-drawn every epoch" if config.redraw_negatives else "negatives drawn once"
        training.append(
            _part(
                "soft_labeler_training_sampling",
                config=config,
                negatives=negatives,
                augmentation=_augmentation(config),
            )
        )
    if "au" in families:
        training.append(_part("soft_labeler_training_au", config=config))
    if "dist" in families:
        augmentation = _augmentation(dataclasses.replace(config, translate=float(config.dist_translate or 0)))
        training.append(
            _part(
                "soft_labeler_training_dist",
                config=config,
                augmentation=augmentation,
                test_time_views=_test_time_views(config),
            )
        )
    return " ".join(training)


def _limitations(config, data_kind: str, bad_images: list[str] | None) -> str:
    """The card's limitations, one Markdown bullet each."""
    limitations = [_part("soft_labeler_limitation_noisy_scores")]
    if config.preset == "tiny":
        limitations.append(_part("soft_labeler_limitation_tiny"))
    if data_kind == "synthetic":
        limitations.append(_part("soft_labeler_limitation_synthetic"))
    if bad_images:
        limitations.append(
            _part("soft_labeler_limitation_bad_images", n_bad=len(bad_images), first_bad=bad_images[:10])
        )
    return "\n".join(f"- {line}" for line in limitations)


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
    paper = tuple(f for f in ("ebc", "au") if f in families)
    data_name, data_kind, data_license, model_license = _data_info(config.data)
    pretrained = list(getattr(config, "pretrained", None) or [])
    comparable = config.preset != "paper" or data_kind != "affectnet"
    values = {
        "model_license": model_license,
        "families_title": " + ".join(f.upper() for f in families),
        "family_sentence": _family_sentence(config, families, paper),
        "command": families[0] if families in (("ebc",), ("au",)) else "softlabeler",
        "preset": config.preset,
        "total_time": _duration((timings or {}).get("total_s")),
        "model_dir_name": Path(config.output_dir).name if config.output_dir else "MODEL_DIR",
        "image_size": config.image_size,
        "members_rows": _member_rows(config, families),
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
        "split_table": _split_table(split_report),
        "cs_mode": config.cs_mode,
        "comparability": "this run's data and models" if comparable else "runs on other MAS data",
        "cs_table": cs_comparison_table(confidences, config.cs_mode, list(config.ebc_backbones))
        if paper
        else _part("soft_labeler_no_cs_table"),
        "soft_label_sentence": _part(
            "soft_labeler_soft_label_scores" if paper else "soft_labeler_soft_label_distribution"
        ),
        "training_paragraph": _training_paragraph(config, families, paper),
        "member_tables": tables_markdown,
        "limitations": _limitations(config, data_kind, bad_images),
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
        lines += [
            "Not measured: this soft-labeler was not calibrated on a multi-annotated split "
            "(`--calibration_split`, or `affectnetplus calibrate MODEL_DIR --data DIR --split validation`), "
            "so it has no `soft_label_calibrated` output.",
            _QUALITY_END,
        ]
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
        rows.append(
            [label, float(row["w_mae"]), float(row["w_fr"]), float(row["w_auc"]), kl, f"{row['majority_acc']:.3f}"]
        )
    header = ["output", "W-MAE ↓", "W-FR ↓", "W-AUC ↑", "KL ↓", "majority acc ↑"]
    lines.append(markdown_table(header, rows).rstrip("\n"))
    lines.append(_QUALITY_END)
    return "\n".join(lines)


def replace_card_section(card: str, section: str) -> str:
    """``card`` with its crowd-quality section replaced by ``section`` (appended when it has none)."""
    start, end = card.find(_QUALITY_START), card.find(_QUALITY_END)
    if start == -1 or end == -1:
        return card.rstrip("\n") + "\n\n" + section + "\n"
    return card[:start] + section + card[end + len(_QUALITY_END) :]


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


def _baseline_kind_values(config, kind: str, left_out: dict[str, int] | None) -> dict[str, Any]:
    """The card values that depend on the baseline's kind: title, description, paper figures, imbalance
    handling and the commands."""
    hard_fer = ", ".join(f"{k} {v:.2f} %" for k, v in PAPER_TABLE8_HARD_FER_ACC.items()) + " accuracy (Table 8)"
    commands = {
        "command": f"affectnetplus train baseline --kind {kind}",
        "reproduce": "affectnetplus train baseline --config train_config.json",
    }
    if kind == "hard":
        return {
            "title": "Hard-FER baseline",
            "description": _part("baseline_hard"),
            "paper_reference": hard_fer,
            "balance": config.class_balance,
            **commands,
        }
    if kind in FERPLUS_MODE_DESCRIPTIONS:
        description = _part("baseline_ferplus", kind=kind, loss=FERPLUS_MODE_DESCRIPTIONS[kind])
        counted = left_out or {}
        if any(counted.values()):
            description += " " + _part(
                "baseline_ferplus_left_out",
                discarded=counted.get("discarded", 0),
                without_votes=counted.get("without_votes", 0),
            )
        command = f"affectnetplus baseline DATASET_DIR OUT_DIR --kinds {kind}"
        return {
            "title": f"FER+ {kind} baseline",
            "description": description,
            "paper_reference": "no AffectNet+ paper number for this training mode; Hard-FER (ResNet-50) "
            "reaches " + hard_fer,
            "balance": "none (FER+ targets, no class weights)",
            "command": command,
            "reproduce": f"{command} --config train_config.json",
        }
    w_mae = PAPER_TABLE10_SOFT_FER["resnet50"]["w_mae"]
    return {
        "title": "Soft-FER baseline",
        "description": _part("baseline_soft"),
        "paper_reference": "W-MAE " + ", ".join(f"{k} {v:.2f}" for k, v in w_mae.items()) + " (Table 10)",
        "balance": "none (soft targets)",
        **commands,
    }


def render_baseline_card(
    config,
    kind: str,
    n_images: int,
    class_counts,
    epoch_losses,
    seconds: float | None,
    left_out: dict[str, int] | None = None,
) -> str:
    """The ``README.md`` of a Hard-FER / Soft-FER baseline (paper Sec. 4.3) or of a FER+ training mode
    (``majority``, ``probability``, ``crossentropy``, ``multi_target``; Barsoum et al. 2016), whose
    ``left_out`` counts the images FER+ discards and those without votes."""
    data_name, data_kind, data_license, model_license = _data_info(config.data)
    values = {
        "model_license": model_license,
        "kind": kind,
        "preset": config.preset,
        "total_time": _duration(seconds),
        "model_dir_name": Path(config.output_dir).name if config.output_dir else "MODEL_DIR",
        "backbone": config.backbone,
        "learning_rate": config.learning_rate,
        "adam_beta1": config.adam_beta1,
        "adam_beta2": config.adam_beta2,
        "weight_decay": config.weight_decay,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "image_size": config.image_size,
        "data_name": data_name,
        "data_kind": data_kind,
        "data_license": data_license,
        "n_images": n_images,
        "class_counts": ", ".join(f"{e} {int(c)}" for e, c in zip(EMOTIONS, class_counts)),
        "augmentation": _augmentation(config),
        "epoch_losses": ", ".join(f"{v:.4f}" for v in epoch_losses) or "-",
        **_baseline_kind_values(config, kind, left_out),
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
