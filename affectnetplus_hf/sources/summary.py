"""Per-split label counts of a source (the ``affectnetplus info`` output)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from affectnetplus_hf.emotions import AFFECTNET_NON_EMOTION_CODES, EMOTIONS
from affectnetplus_hf.sources.base import Source


def summarize_source(source: Source, check_images: bool = False) -> dict[str, Any]:
    """Per-split counts by hard label (the ``affectnetplus info`` output).

    Each split maps emotion name → count, plus ``non_emotion`` (AffectNet codes 8–10 by name, FER+/folder
    images without a majority emotion as ``no_majority``) and ``total``. With ``check_images`` every image
    is decoded and failures are listed under ``bad``.
    """
    from affectnetplus_hf.images import BadImageError, load_image

    splits: dict[str, Any] = {}
    bad: list[dict[str, str]] = []
    for split in source.splits:
        counts = Counter()
        non_emotion = Counter()
        total = 0
        for record in source.records(split):
            total += 1
            if record.hard_label is not None:
                counts[EMOTIONS[record.hard_label]] += 1
            elif record.raw_label is not None and record.raw_label in AFFECTNET_NON_EMOTION_CODES:
                non_emotion[AFFECTNET_NON_EMOTION_CODES[record.raw_label]] += 1
            else:
                non_emotion["no_majority" if record.votes is not None else "unlabelled"] += 1
            if check_images:
                try:
                    load_image(record)
                except BadImageError as error:
                    bad.append({"image_id": record.image_id, "reason": str(error)})
        entry: dict[str, Any] = {name: counts.get(name, 0) for name in EMOTIONS}
        entry["non_emotion"] = dict(sorted(non_emotion.items()))
        entry["total"] = total
        splits[split] = entry
    return {
        "kind": source.kind,
        "layout": source.layout,
        "root": str(source.root),
        "has_votes": source.has_votes,
        "splits": splits,
        "skipped": source.skipped.as_dict(max_items=100),
        "bad": bad,
    }


__all__ = ["summarize_source"]
