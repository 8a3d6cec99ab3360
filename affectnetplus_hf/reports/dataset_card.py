"""The dataset card: the ``README.md`` of a folder written by :func:`affectnetplus_hf.dataset.build_dataset`.

Its YAML header (:func:`card_metadata`) declares the license (:mod:`affectnetplus_hf.reports.licenses`),
the ``configs`` (``default`` and one per subset, ``docs/method.md#subsets``) with their ``data_files`` and
the ``dataset_info`` (features and split sizes); its body is the template ``dataset_card/README.md.template``
(packaged as ``affectnetplus_hf/templates/dataset_card.md.template``, ``$name`` placeholders of
:class:`string.Template`). :func:`write_license_note` adds the publisher's license note that
``affectnetplus push --public`` requires.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectnetplus_hf.emotions import SUBSETS
from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.reports.licenses import license_for
from affectnetplus_hf.reports.markdown import markdown_table, read_template, template_candidates
from affectnetplus_hf.reports.model_card import crowd_quality_section
from affectnetplus_hf.reports.subsets import subset_table_markdown

#: Configs the card declares: ``default`` (every row) and one per subset.
CONFIG_NAMES: tuple[str, ...] = ("default", *SUBSETS)
#: Where the card template is looked for, in order (:func:`affectnetplus_hf.reports.markdown.template_candidates`).
CARD_TEMPLATES: tuple[Path, ...] = template_candidates("dataset_card.md.template", "dataset_card/README.md.template")
#: Markers around the publisher's license note (``affectnetplus push --license-note``).
LICENSE_NOTE_BEGIN = "<!-- affectnetplus:license-note -->"
LICENSE_NOTE_END = "<!-- /affectnetplus:license-note -->"
#: The same markers spelled "licence", which existing cards hold; recognised when a note is replaced.
LICENCE_SPELLED_MARKERS = ("<!-- affectnetplus:licence-note -->", "<!-- /affectnetplus:licence-note -->")

#: What each column holds (the card's column table).
COLUMN_DOCS: dict[str, str] = {
    "image": "the image as the source has it, embedded byte for byte (not re-encoded); crop with `face_box`",
    "image_id": "path of the image relative to the source root (`/`-separated); unique",
    "face_box": "(x0, y0, x1, y1) face box in image pixels, null for the whole image",
    "expression": "hard label (the source's single annotation), `ClassLabel` with the 8 emotions",
    "soft_label": (
        "AffectNet+ soft label (paper Eq. 14, docs/method.md#soft-label): 8 independent scores in "
        "[0, 1], not renormalised"
    ),
    "soft_label_ebc": (
        "semantic scores of the ensemble of binary classifiers (Eq. 5); null if that family was not used"
    ),
    "soft_label_au": "semantic scores of the AU-based classifiers (Eq. 13); null if that family was not used",
    "soft_label_dist": (
        "mean probability of the members trained on annotators' vote distributions (sums to 1; "
        "docs/method.md#distribution-family); null if that family was not used"
    ),
    "soft_label_calibrated": (
        "calibrated soft label: the families' scores mapped onto annotators' vote "
        "distributions (sums to 1; docs/method.md#calibration); null if the soft-labeler "
        "was not calibrated. Its measured agreement with people is in this card"
    ),
    "spread": "per-emotion standard deviation of the ensemble members' probabilities (how much they disagree)",
    "subset": (
        "subset (paper Sec. 3.5.1, docs/method.md#subsets): easy (hard label ranked 1st in the soft label), "
        "challenging (2nd-3rd), difficult"
    ),
    "valence": "valence in [-1, 1], null when not annotated",
    "arousal": "arousal in [-1, 1], null when not annotated",
    "age": "age in years (paper Sec. 3.5.4, docs/method.md#metadata), null when unknown",
    "gender": "Man / Woman, null when unknown",
    "ethnicity": "Asian / Indian / Black / White / Middle-Eastern / Hispanic, null when unknown",
    "landmarks_68": "68 (x, y) landmarks in image pixels (iBUG-300W scheme), null when unknown",
    "landmarks_28": "28-point subset of the 68 (see affectnetplus_hf.metadata.LANDMARKS_28_INDICES)",
    "head_pose_yaw": "head pose yaw in degrees, null when unknown",
    "head_pose_pitch": "head pose pitch in degrees, null when unknown",
    "head_pose_roll": "head pose roll in degrees, null when unknown",
    "soft_label_true": (
        "synthetic sample only: ground-truth soft label (the renderer's blend weights; a weak "
        "face's missing intensity on Neutral)"
    ),
    "votes": (
        "multi-annotated sources only: annotator counts in FER+ column order (neutral, happiness, surprise, "
        "sadness, anger, disgust, fear, contempt, unknown, NF); other vote sources put their non-emotion "
        "votes in unknown and 0 in NF; null for an image without votes. Feeds FER+'s training modes "
        "(Barsoum et al. 2016)"
    ),
}


def config_rows(summary: Mapping[str, Any], config: str, split: str) -> int:
    """Rows of ``split`` in ``config`` (``default`` = every row of the split)."""
    entry = summary["splits"][split]
    return int(entry["rows"] if config == "default" else entry["rows_per_group"].get(config, 0))


def dataset_info_entry(config: str, info) -> dict:
    """The card's ``dataset_info`` entry of one config, ``{"config_name": config, "features": ..., "splits":
    ...}``, as ``datasets`` writes it into a card (``DatasetInfosDict.to_dataset_card_data``, what
    ``push_to_hub`` uses)."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData()
    DatasetInfosDict({config: info}).to_dataset_card_data(card_data)
    entry = dict(card_data["dataset_info"])  # one config: a mapping (the "default" one without its name)
    entry.pop("config_name", None)
    return {"config_name": config, **entry}


def card_metadata(
    summary: Mapping[str, Any],
    features,
    splits: Sequence[str],
    source_kind: str,
    pretty_name: str,
    keep_unlabeled: bool,
) -> dict:
    """The YAML header of the card: license (and gating), ``configs`` (data_files per split) and
    ``dataset_info``."""
    from datasets import DatasetInfo, SplitDict, SplitInfo

    terms = license_for(source_kind)
    configs = []
    infos = []
    for config in CONFIG_NAMES:
        entry: dict[str, Any] = {"config_name": config}
        if config == "default":
            entry["default"] = True
        pattern = "*" if config == "default" else f"{config}-*"
        present = [split for split in splits if config_rows(summary, config, split) > 0]
        if not present:
            continue
        entry["data_files"] = [{"split": split, "path": f"data/{split}/{pattern}.parquet"} for split in present]
        configs.append(entry)
        split_dict = SplitDict()
        for split in present:
            split_dict.add(SplitInfo(name=split, num_examples=config_rows(summary, config, split)))
        infos.append(dataset_info_entry(config, DatasetInfo(features=features, splits=split_dict)))
    total = sum(summary["splits"][s]["rows"] for s in splits)
    size = (
        "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K" if total < 100_000 else "100K<n<1M"
    )
    header: dict[str, Any] = {"pretty_name": pretty_name, "license": terms.license}
    if terms.license_name:
        header["license_name"] = terms.license_name
    header.update(
        {
            "task_categories": ["image-classification"],
            "tags": ["facial-expression-recognition", "soft-labels", "affectnet-plus", "emotion"],
            "size_categories": [size],
        }
    )
    if terms.gated_prompt:
        header["extra_gated_prompt"] = terms.gated_prompt
        header["extra_gated_fields"] = {terms.gated_checkbox: "checkbox"}
    header["configs"] = configs
    header["dataset_info"] = infos
    return header


def columns_table(features) -> str:
    """The card's column table: name, type and :data:`COLUMN_DOCS` of each feature."""
    rows = []
    for name, feature in features.items():
        kind = type(feature).__name__
        if kind == "Value":
            kind = feature.dtype
        elif kind == "List":
            inner = feature.feature
            inner_kind = getattr(inner, "dtype", type(inner).__name__)
            kind = f"{inner_kind}[{feature.length}]" if feature.length != -1 else "list"
            if type(inner).__name__ == "List":
                kind = f"float32[{feature.length}][{inner.length}]"
        rows.append([f"`{name}`", kind, COLUMN_DOCS.get(name, "")])
    return markdown_table(["column", "type", "meaning"], rows).rstrip("\n")


def render_card(
    summary: Mapping[str, Any],
    features,
    splits: Sequence[str],
    figure_paths: Mapping[str, str],
    source_kind: str,
    pretty_name: str | None = None,
    keep_unlabeled: bool = False,
    template_path: str | os.PathLike | None = None,
) -> str:
    """The dataset card ``README.md``: YAML header (:func:`card_metadata`) + the template (``template_path``,
    default :data:`CARD_TEMPLATES`) filled in."""
    import yaml

    pretty_name = pretty_name or {
        "affectnet": "AffectNet+",
        "synthetic": "AffectNet+ synthetic sample",
    }.get(source_kind, f"AffectNet+-style soft labels ({source_kind})")
    header = card_metadata(summary, features, splits, source_kind, pretty_name, keep_unlabeled)
    license_text = license_for(source_kind).dataset_text
    tables = "\n".join(subset_table_markdown(summary["subset_table"][split], title=f"{split}") for split in splits)
    figures = "\n".join(f"![{split} subsets]({path})" for split, path in figure_paths.items()) or "(figures not drawn)"
    template = read_template((Path(template_path),) if template_path else CARD_TEMPLATES, "dataset card")
    body = string.Template(template).substitute(
        pretty_name=pretty_name,
        license_text=license_text,
        licence_text=license_text,  # the placeholder's spelling in templates users copied
        source_kind=source_kind,
        families=", ".join(summary.get("families") or []) or "unknown",
        labels_model=summary.get("labels_model") or "unknown",
        metadata=summary.get("metadata") or "none",
        label_quality=crowd_quality_section(summary.get("label_quality")).replace("## Quality", "### Quality"),
        sizes_table=_sizes_table(summary, splits),
        subset_tables=tables,
        figures=figures,
        columns_table=columns_table(features),
        left_out="\n".join(_left_out_lines(summary, splits, keep_unlabeled)) or "- nothing",
        splits=", ".join(f"`{s}`" for s in splits),
    )
    yaml_text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{yaml_text}---\n\n{body}"


def _sizes_table(summary: Mapping[str, Any], splits: Sequence[str]) -> str:
    """The rows of the card's sizes table: each split's rows, in all and per subset."""
    return "\n".join(
        f"| {split} | {summary['splits'][split]['rows']:,} | "
        + " | ".join(f"{summary['splits'][split]['rows_per_group'].get(s, 0):,}" for s in SUBSETS)
        + " |"
        for split in splits
    )


def _left_out_lines(summary: Mapping[str, Any], splits: Sequence[str], keep_unlabeled: bool) -> list[str]:
    """The card's "left out" list: images without a hard label, empty configs, changed and unlabelled images."""
    left_out = []
    for split, n in summary.get("without_hard_label", {}).items():
        if n:
            left_out.append(
                f"- {split}: {n:,} image(s) without a hard label (AffectNet codes 8-10) "
                + ("kept in `default` (`unassigned-*` files)" if keep_unlabeled else "left out")
            )
    for config in CONFIG_NAMES:
        empty = [split for split in splits if config_rows(summary, config, split) == 0]
        if empty:
            absent = "the config is absent" if len(empty) == len(splits) else "those splits are absent from it"
            left_out.append(f"- config `{config}` has no image in split(s) {', '.join(empty)}: " + absent)
    if summary.get("changed_images"):
        left_out.append(
            f"- {len(summary['changed_images']):,} image(s) changed since they were labeled, left out "
            "(listed in `statistics.json`)"
        )
    if summary.get("not_labelled"):
        left_out.append(
            f"- {len(summary['not_labelled']):,} image(s) with no soft label (unreadable at labeling), "
            "left out (listed in `statistics.json`)"
        )
    return left_out


def replace_license_note(card: str, note: str) -> str:
    """``card`` with the publisher's license note set to ``note``: the block between the license-note
    markers (either spelling) is replaced, or appended when the card has none."""
    block = f"{LICENSE_NOTE_BEGIN}\n## License note (publisher)\n\n{note.strip()}\n{LICENSE_NOTE_END}"
    for begin, end in ((LICENSE_NOTE_BEGIN, LICENSE_NOTE_END), LICENCE_SPELLED_MARKERS):
        if begin in card and end in card:
            start = card.index(begin)
            return card[:start] + block + card[card.index(end) + len(end) :]
    return card.rstrip("\n") + "\n\n" + block + "\n"


def write_license_note(readme: str | os.PathLike, note: str) -> None:
    """Set the publisher's license note of the card ``readme`` (:func:`replace_license_note`), atomically."""
    readme = Path(readme)
    write_text_atomic(readme, replace_license_note(readme.read_text(encoding="utf-8"), note))


__all__ = [
    "CARD_TEMPLATES",
    "COLUMN_DOCS",
    "CONFIG_NAMES",
    "LICENSE_NOTE_BEGIN",
    "LICENSE_NOTE_END",
    "card_metadata",
    "columns_table",
    "config_rows",
    "dataset_info_entry",
    "render_card",
    "replace_license_note",
    "write_license_note",
]
