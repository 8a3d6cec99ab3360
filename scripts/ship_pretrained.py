"""Ship a trained soft-labeler inside the package: ``affectnetplus_hf/pretrained/NAME/`` (run by
``scripts/train_pretrained.sh``; see ``docs/method.md#shipped-soft-labeler``).

    python scripts/ship_pretrained.py TRAINED_DIR [--name ferplus] [--data ../shared/data/ferplus]

Steps: copy the files every shipped folder holds (with the detectors' framing of FER+ faces in the image
processor); store the weight matrices as float16, keeping a family float32 where float16 would move an
output by more than 1e-3 on the evaluation split; measure the second-panel check there and add it, with
the training data's terms, to the model card; check the size bound; render the test faces (synthetic
sample, no real person) and store the shipped model's predictions on them for ``tests/test_pretrained.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ferplus"
FIXTURES = REPO / "tests" / "fixtures" / "pretrained"
#: Largest change float16 storage may cause in any output.
FLOAT16_TOLERANCE = 1e-3
#: The weights of each family's members (kept float32 as a whole when float16 moves its scores too much).
FAMILY_TENSORS = {"ebc": "ebc_members.", "au": "au_members.", "dist": "dist_members."}
#: Synthetic sample faces the tests score (emotion of each: see ``expected.json``).
N_TEST_FACES = 4

logger = logging.getLogger("ship_pretrained")


def evaluation_scores(model_dir: Path, records) -> dict[str, np.ndarray | None]:
    from affectnetplus_hf.models.hub import load_soft_labeler
    from affectnetplus_hf.training.calibrate import soft_labeler_scores
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    model = load_soft_labeler(model_dir)
    preprocess = FacePreprocessor(model.config.image_size, processor=model.image_processor)
    pixels, kept, _ = decode_records(records, preprocess, desc="decoding the evaluation split")
    if len(kept) != len(records):
        raise ValueError(f"{len(records) - len(kept)} evaluation images could not be decoded")
    return soft_labeler_scores(model, pixels)


def copy_files(trained: Path, target: Path) -> None:
    from affectnetplus_hf.pretrained import SHIPPED_FILES

    missing = [name for name in SHIPPED_FILES if not (trained / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{trained} lacks {missing}; expected a finished `affectnetplus train` folder")
    target.mkdir(parents=True)
    for name in (*SHIPPED_FILES, "confidence_scores.json"):
        shutil.copy2(trained / name, target / name)


def store_face_framing(target: Path) -> None:
    """Record in the image processor how the detectors frame the training faces (FER+ faces,
    ``docs/method.md#face-framing``), so that a detected face is cropped like a training face."""
    from affectnetplus_hf.faces.framing import DEFAULT_FRAMINGS, framing_config
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    processor = AffectNetPlusImageProcessor.from_pretrained(str(target))
    processor.face_framing = framing_config(DEFAULT_FRAMINGS)
    processor.save_pretrained(str(target))


def store_weights(trained: Path, staging: Path, records, before: dict) -> tuple[dict, float, list[str]]:
    """float16 weights where they move no output by more than ``FLOAT16_TOLERANCE``: all families first,
    then the family whose own scores moved most is kept float32, until every output stays within it.
    Returns (the outputs as shipped, the largest change, the families kept float32)."""
    from affectnetplus_hf.pretrained import store_float16

    kept: list[str] = []
    while True:
        shutil.copy2(trained / "model.safetensors", staging / "model.safetensors")
        store_float16(staging, keep_float32=tuple(FAMILY_TENSORS[family] for family in kept))
        after = evaluation_scores(staging, records)
        moved = {k: float(np.abs(before[k] - after[k]).max()) for k in before if before[k] is not None}
        worst = max(moved.values())
        logger.info(
            "float16 except %s: largest change %.1e (%s)",
            kept or "nothing",
            worst,
            ", ".join(f"{k} {v:.1e}" for k, v in moved.items()),
        )
        if worst <= FLOAT16_TOLERANCE:
            return after, worst, kept
        candidates = [family for family in FAMILY_TENSORS if family not in kept and moved.get(family) is not None]
        if not candidates:
            raise ValueError(f"float16 storage moves an output by {worst:.2e} > {FLOAT16_TOLERANCE}")
        kept.append(max(candidates, key=moved.get))


def panel_section(
    records, scores: dict, data_name: str, split: str, float16_change: float, float32: list[str], seconds: float
) -> str:
    """The card's section on the shipped model: data and terms, recipe, time, second-panel check."""
    from affectnetplus_hf.mas.split import mas_arrays
    from affectnetplus_hf.metrics.functional import second_panel_check
    from affectnetplus_hf.reports.licenses import license_for

    votes, non_emotion, _ = mas_arrays(records)
    rows = []
    check = None
    for key, label in (
        ("soft_label_calibrated", "`soft_label_calibrated`"),
        ("dist", "distribution family"),
        ("soft_label", "`soft_label` (Eq. 14)"),
    ):
        if scores.get(key) is None:
            continue
        check = second_panel_check(votes, non_emotion, scores[key])
        model = check["model"]
        rows.append(
            f"| {label} | {model['w_mae']:.2f} | {model['w_fr']:.2f} | {model['kl']:.3f} | "
            f"{model['majority_acc']:.3f} |"
        )
    panel = check["panel_a"]
    rows.append(
        f"| a second panel of 5 people | {panel['w_mae']:.2f} | {panel['w_fr']:.2f} | – | "
        f"{panel['majority_acc']:.3f} |"
    )
    terms = license_for("ferplus").model_note
    return "\n".join(
        [
            "## Shipped with affectnetplus-hf",
            "",
            "This soft-labeler ships inside the package: `affectnetplus predict ferplus face.jpg`, "
            "`affectnetplus label ferplus DATA OUT`, `affectnetplus app`, or "
            '`AutoModel.from_pretrained(affectnetplus_hf.pretrained_path("ferplus"))`, offline.',
            "",
            f"- **Training data**: FER+ `Training` votes (10 crowd votes per face), {terms} The weights are "
            "released under MIT with the package; the FER2013 images are not part of it.",
            f"- **Selection and calibration**: FER+ `PublicTest` (`{data_name}` split `{split}`) only; `PrivateTest` "
            "was never used.",
            "- **Recipe**: `scripts/train_pretrained.sh` "
            "(`affectnetplus train softlabeler --preset small --mas_splits "
            f"train --calibration_split validation`), {seconds / 60:.0f} min on a 2-core CPU.",
            f"- **Storage**: weight matrices in float16{storage_note(float32)} (loaded as float32; every output moves "
            f"by at most {float16_change:.1e}).",
            "",
            "**Second-panel check** (`docs/method.md#quality-against-people`): each face's 10 votes are split at "
            "random into two panels of 5; the model and panel A are both scored against panel B (mean of 5 "
            "splits). A model as close to panel B as panel A is agrees with people as well as another group of "
            "people does.",
            "",
            "| scored against panel B | W-MAE ↓ | W-FR ↓ | KL ↓ | majority acc ↑ |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def storage_note(float32: list[str]) -> str:
    names = {"ebc": "EBC", "au": "AU", "dist": "distribution"}
    return f", the {' and '.join(names[f] for f in float32)} members' in float32" if float32 else ""


def record_training_time(target: Path, train_seconds: float | None) -> float:
    """The training's wall time; ``train_seconds`` (a run resumed across sessions) is stored next to the
    last session's own ``total_s`` in ``confidence_scores.json`` as ``all_sessions_s``."""
    from affectnetplus_hf.fileio import write_json_atomic

    path = target / "confidence_scores.json"
    payload = json.loads(path.read_text())
    if train_seconds is None:
        return float(payload["timings"]["total_s"])
    payload["timings"]["all_sessions_s"] = float(train_seconds)
    write_json_atomic(path, payload)
    return float(train_seconds)


def write_card(target: Path, section: str, train_seconds: float | None, trained_name: str, name: str) -> None:
    """Append ``section`` to the model card (replacing an earlier one); its usage examples name the shipped
    model (``name``) instead of the training folder; ``train_seconds`` replaces the training time of its
    first line when the training ran as several resumed sessions."""
    from affectnetplus_hf.fileio import write_text_atomic

    marker = "## Shipped with affectnetplus-hf"
    card = (target / "README.md").read_text(encoding="utf-8")
    card = card.split(marker)[0].rstrip("\n")
    card = card.replace(f'from_pretrained("{trained_name}")', f'from_pretrained("{name}")').replace(
        f"affectnetplus predict {trained_name} ", f"affectnetplus predict {name} "
    )
    if train_seconds is not None:
        card = re.sub(
            r"(Trained with `affectnetplus train [a-z]+` \(preset `[a-z]+`\) in )[0-9.]+ (min|s)\.",
            rf"\g<1>{train_seconds / 60:.1f} min (wall time of all its sessions).",
            card,
            count=1,
        )
    write_text_atomic(target / "README.md", card + "\n\n" + section + "\n")


def write_test_faces(target: Path, fixtures: Path) -> None:
    """A few synthetic sample faces and the shipped model's outputs on them (``tests/test_pretrained.py``)."""
    from transformers import AutoModel

    import affectnetplus_hf
    from affectnetplus_hf.fileio import write_json_atomic
    from affectnetplus_hf.synthetic import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        write_sample(
            Path(tmp),
            layout="csv",
            n_train=N_TEST_FACES,
            n_val=0,
            n_mas=0,
            image_size=96,
            seed=11,
            contact_sheet=False,
            progress=False,
        )
        images = sorted(Path(tmp).rglob("*.jpg"))[:N_TEST_FACES]
        fixtures.mkdir(parents=True, exist_ok=True)
        for old in [*fixtures.glob("face_*"), fixtures / "expected.json"]:  # only what this script writes
            old.unlink(missing_ok=True)
        names = []
        for i, image in enumerate(images):
            name = f"face_{i}{image.suffix}"
            shutil.copy2(image, fixtures / name)
            names.append(name)
    affectnetplus_hf.register_auto_classes()
    model = AutoModel.from_pretrained(str(target))
    batch = model.image_processor([str(fixtures / n) for n in names], return_tensors="pt")
    output = model(**batch)
    expected = {
        "images": names,
        **{
            key: getattr(output, key).tolist()
            for key in ("soft_label", "dist_scores", "soft_label_calibrated", "ebc_scores", "au_scores")
        },
    }
    write_json_atomic(fixtures / "expected.json", expected)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    from affectnetplus_hf.pretrained import MAX_SHIPPED_BYTES, PRETRAINED_ROOT, SHIPPED
    from affectnetplus_hf.training.calibrate import vote_records

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trained_dir", help="folder written by `affectnetplus train softlabeler`")
    parser.add_argument("--name", default="ferplus", choices=sorted(SHIPPED))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the multi-annotated data (default FER+)")
    parser.add_argument("--split", default="validation", help="evaluation split (default validation = PublicTest)")
    parser.add_argument("--target", default=None, help="folder to write (default: the package's folder for --name)")
    parser.add_argument("--fixtures", default=str(FIXTURES), help="test faces and expected outputs (default tests/)")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="wall time of the whole training when it ran as several resumed sessions (default: the "
        "time the finished run recorded)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    trained = Path(args.trained_dir)
    target = Path(args.target) if args.target else PRETRAINED_ROOT / SHIPPED[args.name]
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    copy_files(trained, staging)
    store_face_framing(staging)
    records = vote_records(args.data, args.split)
    before = evaluation_scores(staging, records)
    after, change, kept = store_weights(trained, staging, records, before)
    seconds = record_training_time(staging, args.train_seconds)
    write_card(
        staging,
        panel_section(records, after, Path(args.data).name, args.split, change, kept, seconds),
        args.train_seconds,
        trained.name,
        args.name,
    )
    size = folder_bytes(staging)
    if size > MAX_SHIPPED_BYTES:
        raise ValueError(f"{staging} holds {size / 2**20:.1f} MiB > {MAX_SHIPPED_BYTES / 2**20:.0f} MiB")
    if target.exists():
        if not (target / "config.json").is_file():
            raise FileExistsError(f"{target} exists and holds no model; not replacing it")
        shutil.rmtree(target)
    staging.rename(target)
    write_test_faces(target, Path(args.fixtures))
    logger.info("shipped %s: %.1f MiB, float16 change %.1e, float32 families %s", target, size / 2**20, change, kept)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
