"""The face stage on photos: detectors' recall, false faces, box IoU and speed, and the soft labels
through the whole photo pipeline (`docs/method.md#face-stage`).

* ``--measure-framing``: the framing of FER+ training faces per installed detector
  (:func:`affectnetplus_hf.faces.measure_framing`, ``--framing-faces`` FER2013Train faces).
* set (a), real photos (``../shared/data/photos``): dlib's ``examples/faces`` with their 43 annotated
  boxes (+ ``dogs.jpg``, no human face), and deepface's 63 test photos of one face (``couple.jpg``: two;
  ``selfie-many-people.jpg`` is left out: its faces are not counted). Recall = annotated faces matched by
  a detection (IoU ≥ 0.3) or, for the deepface photos, the expected number of faces found; false faces =
  unmatched detections (deepface: detections beyond the expected count) per photo.
* set (b), built here from FER+ PublicTest: ``--n-faces`` faces upscaled and pasted into 640×480 grey
  backgrounds (face 15–60 % of the frame height, in-plane rotation ±20°), a quarter stored sideways with
  an EXIF orientation tag (6 or 8), a fifth with a second face, plus ``--n-empty`` face-free photos.
  Soft labels of the faces found, through the photo pipeline, against the crowd's votes (W-MAE,
  majority accuracy), next to the same faces' original 48×48 crops.
* speed: photos/s at 640×480 for detection alone and end to end (decode + detect + align + label), one
  photo at a time and through ``predict_files`` (batched, with and without one DataLoader worker).

Each detector runs as :class:`~affectnetplus_hf.faces.FaceFinder` uses it by default: dlib upsamples only
when needed; ``--retry`` also searches a photo without a face again turned by ±20°, and
``--fallback-threshold T`` searches it again with dlib's threshold lowered to T (each written to its own
``faces_<variant>.json``).

Writes ``benchmarks/results/faces.json``::

    OMP_NUM_THREADS=1 python benchmarks/bench_faces.py --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import platform
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "faces.json"
SHARED = REPO.parent / "shared" / "data"
logger = logging.getLogger("bench_faces")


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list, found: list, threshold: float = 0.3) -> tuple[int, int, list[float]]:
    """``(matched, false detections, IoUs of the matches)``, greedy by IoU."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t, used_f, ious = set(), set(), []
    for value, i, j in pairs:
        if value >= threshold and i not in used_t and j not in used_f:
            used_t.add(i), used_f.add(j), ious.append(value)
    return len(used_t), len(found) - len(used_f), ious


# ---------------------------------------------------------------------------------------------- set (a)


def real_photos(root: Path) -> list[tuple[str, Image.Image, list | None, int]]:
    """``(name, upright image, annotated boxes or None, expected face count)``."""
    from affectnetplus_hf.images import load_image

    photos = []
    for xml in ("training.xml", "testing.xml"):
        for node in ET.parse(root / "dlib_faces" / xml).getroot().iter("image"):
            boxes = [
                (
                    int(b.get("left")),
                    int(b.get("top")),
                    int(b.get("left")) + int(b.get("width")),
                    int(b.get("top")) + int(b.get("height")),
                )
                for b in node.iter("box")
            ]
            photos.append(
                (node.get("file"), load_image(root / "dlib_faces" / node.get("file"), upright=True), boxes, len(boxes))
            )
    photos.append(("dogs.jpg", load_image(root / "dlib_faces" / "dogs.jpg", upright=True), [], 0))
    for path in sorted((root / "deepface_faces").glob("*.jpg")):
        if path.name != "selfie-many-people.jpg":
            photos.append((path.name, load_image(path, upright=True), None, 2 if path.name == "couple.jpg" else 1))
    return photos


def score_real(finder, photos) -> dict:
    found_faces = expected = false = 0
    ious = []
    for _, image, boxes, count in photos:
        found = [f.box for f in finder.detect(image)]
        if boxes is not None:
            hit, extra, matched = match(boxes, found)
            ious += matched
        else:
            hit, extra = min(len(found), count), max(0, len(found) - count)
        found_faces, expected, false = found_faces + hit, expected + count, false + extra
    return {
        "recall": round(found_faces / expected, 4),
        "faces": expected,
        "photos": len(photos),
        "false_per_photo": round(false / len(photos), 4),
        "box_iou": round(float(np.mean(ious)), 4),
    }


# ---------------------------------------------------------------------------------------------- set (b)


def ferplus_faces(data: Path, split: str, n: int, seed: int):
    """``(images, vote distributions)`` of ``n`` seeded faces of a FER+ split with emotion votes."""
    from affectnetplus_hf.images import load_image
    from affectnetplus_hf.mas.split import record_vote_distributions
    from affectnetplus_hf.training.calibrate import vote_records

    records = vote_records(data, split)
    chosen = sorted(np.random.default_rng(seed).choice(len(records), size=min(n, len(records)), replace=False))
    records = [records[i] for i in chosen]
    return [load_image(r) for r in records], record_vote_distributions(records).astype(np.float64)


def paste(canvas: Image.Image, face: Image.Image, rng, taken: list) -> tuple | None:
    """Paste ``face`` upscaled and rotated at a free random place; its square box, or None."""
    height = canvas.size[1]
    for _ in range(20):
        side = int(rng.uniform(0.15, 0.6) * height)
        angle = float(rng.uniform(-20, 20))
        x0 = int(rng.integers(0, canvas.size[0] - side)), int(rng.integers(0, height - side))
        box = (x0[0], x0[1], x0[0] + side, x0[1] + side)
        if any(
            iou(box, other) > 0
            or not (box[2] <= other[0] or other[2] <= box[0] or box[3] <= other[1] or other[3] <= box[1])
            for other in taken
        ):
            continue
        big = face.convert("L").resize((side, side), Image.Resampling.BICUBIC).convert("RGBA")
        turned = big.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        offset = ((side - turned.size[0]) // 2 + box[0], (side - turned.size[1]) // 2 + box[1])
        canvas.paste(turned, offset, turned)
        return box
    return None


def background(rng, size=(640, 480)) -> Image.Image:
    noise = rng.normal(0, 1, (size[1] // 16, size[0] // 16))
    smooth = Image.fromarray(np.uint8(np.clip(128 + 40 * noise, 0, 255))).resize(size, Image.Resampling.BICUBIC)
    ramp = np.linspace(-30, 30, size[0])[None, :] * rng.choice([-1, 1])
    return Image.fromarray(np.uint8(np.clip(np.asarray(smooth, dtype=np.float64) + ramp, 0, 255))).convert("RGB")


def build_photos(faces: list, n_empty: int, seed: int) -> list[tuple[bytes, list[tuple[int, tuple]]]]:
    """``(PNG bytes, [(face index, box in the upright photo)])`` per photo."""
    rng = np.random.default_rng(seed)
    photos, k = [], 0
    while k < len(faces):
        canvas, placed = background(rng), []
        for _ in range(2 if rng.random() < 0.2 and k + 1 < len(faces) else 1):
            box = paste(canvas, faces[k], rng, [b for _, b in placed])
            if box is not None:
                placed.append((k, box))
            k += 1
        photos.append((encode(canvas, rng), placed))
    photos += [(encode(background(rng), rng), []) for _ in range(n_empty)]
    return photos


def encode(canvas: Image.Image, rng) -> bytes:
    """PNG bytes; a quarter stored sideways with the EXIF tag that turns them upright."""
    buffer = io.BytesIO()
    roll = rng.random()
    if roll < 0.25:
        orientation, turn = (6, Image.Transpose.ROTATE_90) if roll < 0.125 else (8, Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[0x0112] = orientation
        canvas.transpose(turn).save(buffer, format="PNG", exif=exif)
    else:
        canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def score_built(finder, photos, n_faces: int) -> tuple[dict, dict]:
    """Detection scores on set (b) and ``{face index: detected box}`` of the faces found."""
    from affectnetplus_hf.images import load_image

    hits = false = 0
    ious, found_of = [], {}
    for data, placed in photos:
        image = load_image(data, "photo", upright=True)
        found = finder.detect(image)
        truth = [box for _, box in placed]
        hit, extra, matched = match(truth, [f.box for f in found])
        hits, false, ious = hits + hit, false + extra, ious + matched
        for k, box in placed:
            best = max(found, key=lambda f: iou(box, f.box), default=None)
            if best is not None and iou(box, best.box) >= 0.3:
                found_of[k] = best
    return (
        {
            "recall": round(hits / n_faces, 4),
            "faces": n_faces,
            "photos": len(photos),
            "false_per_photo": round(false / len(photos), 4),
            "box_iou": round(float(np.mean(ious)), 4),
        },
        found_of,
    )


def soft_labels_built(model, finder, photos, faces, reference) -> dict:
    """W-MAE / majority accuracy of the faces found through the photo pipeline vs their original crops."""
    from affectnetplus_hf.faces.align import aligned_crop
    from affectnetplus_hf.images import load_image
    from affectnetplus_hf.metrics.functional import crowd_agreement

    def soft(output):
        return (
            output.soft_label_calibrated if output.soft_label_calibrated is not None else output.soft_label
        ).numpy()

    crops, keys = [], []
    for data, placed in photos:
        image = load_image(data, "photo", upright=True)
        found = finder.detect(image)
        for k, box in placed:
            best = max(found, key=lambda f: iou(box, f.box), default=None)
            if best is not None and iou(box, best.box) >= 0.3:
                crops.append(aligned_crop(image, best, finder.framing)[0])
                keys.append(k)
    photo = soft(model.predict(crops, dtype="fp32"))
    original = soft(model.predict([faces[k] for k in keys], dtype="fp32"))
    everything = soft(model.predict(list(faces), dtype="fp32"))
    ref = reference[keys]
    pipe, crop = crowd_agreement(ref, photo), crowd_agreement(ref, original)
    return {
        "faces_found": len(keys),
        "photo_pipeline": {"w_mae": round(pipe["w_mae"], 3), "majority_acc": round(pipe["majority_acc"], 4)},
        "original_crops_same_faces": {
            "w_mae": round(crop["w_mae"], 3),
            "majority_acc": round(crop["majority_acc"], 4),
        },
        "original_crops_all_faces": {
            k: round(v, 4) for k, v in crowd_agreement(reference, everything).items() if k in ("w_mae", "majority_acc")
        },
        "w_mae_gap": round(pipe["w_mae"] - crop["w_mae"], 3),
    }


# ---------------------------------------------------------------------------------------------- speed


def speed(finder, model, photos_640: list[bytes], repeats: int = 1) -> dict:
    from affectnetplus_hf.faces.pipeline import photo_faces
    from affectnetplus_hf.images import load_image

    images = [load_image(data, "photo", upright=True) for data in photos_640]
    finder.detect(images[0])  # build the detector
    start = time.perf_counter()
    for image in images * repeats:
        finder.detect(image)
    detect_s = (time.perf_counter() - start) / (len(images) * repeats)
    result = {"detect_photos_per_s": round(1 / detect_s, 2)}
    if model is not None:
        import torch

        start = time.perf_counter()
        with torch.inference_mode():
            for data in photos_640 * repeats:
                rows = photo_faces(finder, model.image_processor, data, "photo")
                pixels = [r.pixel_values for r in rows if r.pixel_values is not None]
                if pixels:
                    model(torch.from_numpy(np.stack(pixels)))
        result["end_to_end_photos_per_s"] = round(len(photos_640) * repeats / (time.perf_counter() - start), 2)
    return result


def predict_speed(model_dir: str, photos_640: list[bytes], copies: int = 3) -> dict:
    """Photos/s of ``predict_files`` (what ``affectnetplus predict MODEL photos… --faces all`` runs: decode,
    EXIF, detect, align, label in batches; the model load included) on ``copies`` × the photos as files,
    with the face stage in the main process and in one DataLoader worker (``--num-workers 1``)."""
    import tempfile

    from affectnetplus_hf.models.inference import predict_files

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(photos_640 * copies):
            path = Path(tmp) / f"photo_{i:04d}.png"
            path.write_bytes(data)
            paths.append(str(path))
        for workers in (0, 1):
            start = time.perf_counter()
            predict_files(model_dir, paths, faces="all", num_workers=workers)
            result[f"predict_photos_per_s_workers_{workers}"] = round(len(paths) / (time.perf_counter() - start), 2)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=None, help="soft-labeler for set (b) and the end-to-end speed (default: none)"
    )
    parser.add_argument(
        "--speed-model", default=None, help="a soft-labeler used only for the end-to-end speed (no soft-label quality)"
    )
    parser.add_argument("--photos", default=str(SHARED / "photos"))
    parser.add_argument("--ferplus", default=str(SHARED / "ferplus"))
    parser.add_argument("--detectors", default=None, help="comma-separated (default: every installed one)")
    parser.add_argument("--n-faces", type=int, default=200)
    parser.add_argument("--n-empty", type=int, default=20)
    parser.add_argument("--measure-framing", action="store_true")
    parser.add_argument("--framing-faces", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--retry", action="store_true", help="search copies turned by ±20° when no face is found")
    parser.add_argument(
        "--fallback-threshold",
        type=float,
        default=None,
        help="dlib: search again at this (lower) threshold when no face is found",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="default benchmarks/results/faces.json; faces_retry.json, faces_fallback_T.json for the "
        "non-default settings",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        variant = "".join(
            [
                *(["_retry"] if args.retry else []),
                *([f"_fallback_{args.fallback_threshold:g}"] if args.fallback_threshold is not None else []),
            ]
        )
        args.output = str(RESULTS.with_name(f"faces{variant}.json"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from affectnetplus_hf.faces import FaceFinder, available_detectors, create_detector, measure_framing
    from affectnetplus_hf.fileio import write_text_atomic

    torch.set_num_threads(args.threads)
    detectors = args.detectors.split(",") if args.detectors else available_detectors()
    model = timed_model = None
    if args.model or args.speed_model:
        from affectnetplus_hf.models.hub import load_soft_labeler

        model = load_soft_labeler(args.model) if args.model else None
        timed_model = model if model is not None else load_soft_labeler(args.speed_model)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "threads": args.threads,
        "model": args.model,
        "speed_model": args.speed_model,
        "retry_angles": [20.0, -20.0] if args.retry else [],
        "fallback_threshold": args.fallback_threshold,
        "detectors": {},
    }
    if args.measure_framing:
        train_faces, _ = ferplus_faces(Path(args.ferplus), "train", args.framing_faces, args.seed)
        results["framing"] = {}
        for name in detectors:
            framing, counts = measure_framing(create_detector(name), train_faces, seed=args.seed)
            results["framing"][name] = {**framing.to_dict(), **counts}
            logger.info("framing %s: %s", name, results["framing"][name])
    photos_a = real_photos(Path(args.photos))
    faces, reference = ferplus_faces(Path(args.ferplus), "validation", args.n_faces, args.seed)
    photos_b = build_photos(faces, args.n_empty, args.seed)
    timing = [data for data, _ in photos_b[:40]]
    for name in detectors:
        processor = None if model is None else model.image_processor
        options = {"retry_angles": (20.0, -20.0)} if args.retry else {}
        if args.fallback_threshold is not None and name == "dlib":
            options["fallback_threshold"] = args.fallback_threshold
        finder = FaceFinder(name, faces="all", processor=processor, **options)
        entry = {"real_photos": score_real(finder, photos_a)}
        entry["ferplus_photos"], _ = score_built(finder, photos_b, len(faces))
        entry["speed_640x480"] = speed(finder, timed_model, timing)
        if args.model is not None and not args.retry and args.fallback_threshold is None:
            entry["speed_640x480"].update(predict_speed(args.model, timing))
        if model is not None:
            entry["ferplus_photos"]["soft_labels"] = soft_labels_built(model, finder, photos_b, faces, reference)
        results["detectors"][name] = entry
        logger.info("%s: %s", name, json.dumps(entry))
    previous = Path(args.output)
    if "framing" not in results and previous.is_file():  # a run without --measure-framing keeps the last one
        results["framing"] = json.loads(previous.read_text()).get("framing")
    write_text_atomic(Path(args.output), json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
