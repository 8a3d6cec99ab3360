"""The one table of data licenses, by source kind (``affectnetplus_hf.sources``: ``Source.kind``).

Each entry gives what the dataset card's YAML header declares (``license``, ``license_name``, gating),
the dataset card's "License and access" text, the license id of models trained on such data, and the
note on the training data that model cards carry. AffectNet's license forbids redistributing its
images: a dataset folder built from it is gated and says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataLicense:
    """License terms of one kind of source data."""

    #: the card's YAML ``license`` (a hub license id, ``other`` when none fits)
    license: str
    #: the card's YAML ``license_name`` with ``license: other`` ("" for none)
    license_name: str
    #: the dataset card's "License and access" paragraph
    dataset_text: str
    #: the YAML ``license`` of models trained on this data
    model_license: str
    #: the model card's note on the training data's license
    model_note: str
    #: the dataset card's ``extra_gated_prompt`` and checkbox label ("" for an ungated dataset)
    gated_prompt: str = ""
    gated_checkbox: str = ""


_SUPPLIED_DATA = (
    "The images come from a dataset you supplied; its own license applies. Keep hub repositories "
    "private unless that license allows redistribution."
)

LICENSES: dict[str, DataLicense] = {
    "affectnet": DataLicense(
        license="other",
        license_name="affectnet-research-license",
        dataset_text=(
            "**This folder contains AffectNet images. Do not redistribute it.** AffectNet is distributed "
            "by its authors (Mollahosseini, Hasani and Mahoor) under a research-only license that forbids "
            "sharing the images or derived copies. Keep any hub repository of this folder **private** (or "
            "gated to people who hold an AffectNet license) and point users to "
            "http://mohammadmahoor.com/affectnet/ to obtain the license. `affectnetplus push` creates "
            "private repositories by default."
        ),
        model_license="other",
        model_note=(
            "AffectNet — academic research license of its authors (University of Denver); no "
            "redistribution, no commercial use. Weights trained on it inherit these terms."
        ),
        gated_prompt=(
            "This dataset contains AffectNet images, which may only be used under the AffectNet "
            "license. Confirm that you hold an AffectNet license."
        ),
        gated_checkbox="I hold an AffectNet license",
    ),
    "synthetic": DataLicense(
        license="mit",
        license_name="",
        dataset_text=(
            "This folder was built from the **synthetic sample** rendered by `affectnetplus sample` "
            "(procedurally drawn faces, no real person). It is freely shareable under the MIT license of "
            "the `affectnetplus-hf` package. The `soft_label_true` column (ground-truth soft label) "
            "exists only for this sample."
        ),
        model_license="mit",
        model_note="procedurally rendered faces of the embedded AffectNet+ sample (this package, MIT); "
        "no real person.",
    ),
    "ferplus": DataLicense(
        license="other",
        license_name="fer2013-and-ferplus",
        dataset_text=(
            "This folder contains FER2013 images (Kaggle challenge terms) with FER+ votes (MIT, Microsoft). "
            "Check the FER2013 terms before sharing the images; keep hub repositories private otherwise."
        ),
        model_license="mit",
        model_note=(
            "FER+ labels (Microsoft, MIT license) on FER2013 images (ICML 2013 challenge, research use; "
            "image copyright with their owners)."
        ),
    ),
    "folder": DataLicense(
        license="other",
        license_name="source-dataset-license",
        dataset_text=_SUPPLIED_DATA,
        model_license="other",
        model_note="a user-supplied folder; its license is the data owner's — "
        "state it here before sharing these weights.",
    ),
}

#: Terms of a source of another (or unknown) kind.
UNKNOWN_LICENSE = DataLicense(
    license="other",
    license_name="source-dataset-license",
    dataset_text=_SUPPLIED_DATA,
    model_license="other",
    model_note="unknown — check the data owner's terms.",
)


def license_for(source_kind: str | None) -> DataLicense:
    """The :class:`DataLicense` of a source kind (:data:`UNKNOWN_LICENSE` for any other kind)."""
    return LICENSES.get(source_kind or "", UNKNOWN_LICENSE)


__all__ = ["LICENSES", "UNKNOWN_LICENSE", "DataLicense", "license_for"]
