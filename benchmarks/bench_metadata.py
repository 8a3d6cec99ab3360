"""Accuracy of the offline metadata backends on the synthetic sample's ground truth (`docs/method.md#metadata`).

Renders a synthetic sample (``synthetic.writer.write_sample``) into a temporary folder and scores,
on its AffectNet part (which has face boxes):

* head pose from the **ground-truth** landmarks with ``solvepnp`` (each point set and focal
  factor): mean absolute yaw / pitch / roll error in degrees;
* each landmark backend that imports here (``dlib`` HOG / CNN / box, ``mediapipe`` mesh / box):
  detection rate, landmark NME (mean point error / ground-truth outer-eye-corner distance, 68 and 28
  points) on the faces it found, seconds per image, and the pose error of ``solvepnp`` on its
  landmarks.

Results are merged into ``benchmarks/results/metadata.json`` (a run in another environment, e.g. a
mediapipe venv, adds its backends without removing the others). Nothing is asserted: the numbers
are measured and written. ``--fit-mediapipe-mapping`` instead derives the 468 -> 68 index table of
``metadata.landmarks.MEDIAPIPE_TO_68`` on a sample of another seed and prints it.

    python benchmarks/bench_metadata.py --n-train 200
    PYTHONPATH=. /tmp/mpvenv/bin/python benchmarks/bench_metadata.py --backends mediapipe,mediapipe:box
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.metadata import (
    HEAD_POSE_COLUMNS,
    LANDMARKS_28_INDICES,
    OUTER_EYE_CORNERS,
    annotate,
    build_annotator,
)
from affectnetplus_hf.metadata.headpose import POINT_SETS, estimate_head_pose
from affectnetplus_hf.metadata.passthrough import read_synthetic_ground_truth
from affectnetplus_hf.records import FaceRecord

logger = logging.getLogger("bench_metadata")

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "metadata.json"
DEFAULT_BACKENDS = "dlib,dlib:box,dlib:cnn,mediapipe,mediapipe:box"
POSE_VARIANTS = [("all", 1.0), ("all", 10.0), ("rigid", 1.0), ("rigid", 10.0)]


def make_sample(
    directory: Path, n_train: int, seed: int, image_size: int
) -> tuple[list[FaceRecord], dict[str, dict[str, Any]]]:
    """Write a synthetic sample; return the AffectNet-part records (with face boxes) and the ground truth."""
    from affectnetplus_hf.synthetic.writer import write_sample

    write_sample(directory, n_train=n_train, n_val=0, n_mas=8, seed=seed, image_size=image_size,
                 progress=False, contact_sheet=False)  # fmt: skip
    records = []
    with open(directory / "Manually_Annotated_file_lists" / "training.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            x, y, w, h = (float(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
            image_id = f"Manually_Annotated_Images/{row['subDirectory_filePath']}"
            records.append(FaceRecord(image_id, image_path=str(directory / image_id), face_box=(x, y, x + w, y + h)))
    return records, read_synthetic_ground_truth(directory)


def nme(predicted: np.ndarray, truth: np.ndarray, indices: list[int] | None = None) -> float:
    """Mean point error normalised by the ground-truth outer-eye-corner distance."""
    inter_ocular = float(np.linalg.norm(truth[OUTER_EYE_CORNERS[0]] - truth[OUTER_EYE_CORNERS[1]]))
    if indices is not None:
        predicted, truth = predicted[indices], truth[indices]
    return float(np.linalg.norm(predicted - truth, axis=1).mean() / inter_ocular)


def pose_errors(
    landmark_sets: list[np.ndarray], truths: list[tuple[float, float, float]], image_size: int
) -> dict[str, Any]:
    """solvePnP pose error per variant on the given landmarks."""
    out: dict[str, Any] = {}
    for points, focal in POSE_VARIANTS:
        errors, failed = [], 0
        for landmarks, truth in zip(landmark_sets, truths):
            pose = estimate_head_pose(landmarks, (image_size, image_size), focal_length_factor=focal,
                                      point_indices=POINT_SETS[points])  # fmt: skip
            if pose is None:
                failed += 1
                continue
            diff = (np.array(pose) - np.array(truth) + 180.0) % 360.0 - 180.0
            errors.append(np.abs(diff))
        mae = np.mean(errors, axis=0) if errors else np.full(3, np.nan)
        out[f"{points}@f{focal:g}"] = {
            "n": len(errors),
            "solver_failures": failed,
            "mae_yaw": round(float(mae[0]), 3),
            "mae_pitch": round(float(mae[1]), 3),
            "mae_roll": round(float(mae[2]), 3),
            "mae_mean": round(float(mae.mean()), 3),
        }
    return out


def bench_landmarks(
    spec: str, records: list[FaceRecord], truth: dict[str, dict[str, Any]], image_size: int, limit: int | None
) -> dict[str, Any]:
    annotator = build_annotator(spec)
    use_box = spec.endswith(":box")
    subset = records[:limit] if limit else records
    inputs = [
        FaceRecord(r.image_id, image_path=r.image_path, face_box=r.face_box if use_box else None) for r in subset
    ]
    start = time.perf_counter()
    out = annotate(inputs, [annotator], batch_size=16, progress=False)
    seconds = time.perf_counter() - start
    found = [(r, lm) for r, lm in zip(subset, out["landmarks_68"]) if lm is not None]
    nme68 = [nme(lm, truth[r.image_id]["landmarks_68"]) for r, lm in found]
    nme28 = [nme(lm, truth[r.image_id]["landmarks_68"], list(LANDMARKS_28_INDICES)) for r, lm in found]
    result: dict[str, Any] = {
        "images": len(subset),
        "detected": len(found),
        "detection_rate": round(len(found) / max(1, len(subset)), 4),
        "seconds_per_image": round(seconds / max(1, len(subset)), 4),
        "face_box_given": use_box,
    }
    if found:
        result.update({
            "nme68_mean": round(float(np.mean(nme68)), 4),
            "nme68_median": round(float(np.median(nme68)), 4),
            "nme68_failure_rate_0.10": round(float(np.mean(np.array(nme68) > 0.10)), 4),
            "nme28_mean": round(float(np.mean(nme28)), 4),
            "pose_from_these_landmarks": pose_errors(
                [lm for _, lm in found],
                [tuple(truth[r.image_id][c] for c in HEAD_POSE_COLUMNS) for r, _ in found],
                image_size,
            ),
        })  # fmt: skip
    return result


def _loops(edges: frozenset) -> list[set[int]]:
    """Connected components of a mesh edge set."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for v in list(parent):
        groups.setdefault(find(v), set()).add(v)
    return list(groups.values())


def fit_mediapipe_mapping(seed: int, n_train: int, image_size: int) -> list[int]:
    """Derive :data:`~affectnetplus_hf.metadata.landmarks.MEDIAPIPE_TO_68` on a synthetic sample.

    Each iBUG point is matched to the vertex, among MediaPipe's own semantic contour of the same
    part (``face_mesh_connections``: face oval for the jaw, eyebrows, nose, eyes, outer / inner lip
    loop), with the smallest median distance (in inter-ocular units) to it over the faces found.
    Inner-lip points are fitted on open mouths only (ground-truth lip gap > 5 % of the inter-ocular
    distance), where upper and lower inner lips are distinguishable.
    """
    import mediapipe as mp

    from affectnetplus_hf.metadata.base import load_rgb_image
    from affectnetplus_hf.metadata.landmarks import MediaPipeLandmarksAnnotator

    c = mp.solutions.face_mesh_connections
    vertices = lambda edges: sorted({v for e in edges for v in e})  # noqa: E731
    lip_loops = _loops(c.FACEMESH_LIPS)
    annotator = MediaPipeLandmarksAnnotator.__new__(MediaPipeLandmarksAnnotator)
    annotator._setup(detector="mesh", mapping=None)
    with tempfile.TemporaryDirectory() as tmp:
        records, truth = make_sample(Path(tmp) / "fit", n_train, seed, image_size)
        distances, open_mouth, meshes = [], [], []
        for record in records:
            found = annotator.meshes(load_rgb_image(record))
            if not found:
                continue
            mesh = found[0]
            gt = truth[record.image_id]["landmarks_68"]
            iod = np.linalg.norm(gt[OUTER_EYE_CORNERS[0]] - gt[OUTER_EYE_CORNERS[1]])
            distances.append(np.linalg.norm(gt[:, None, :] - mesh[None, :, :], axis=2) / iod)  # (68, 468)
            open_mouth.append(np.linalg.norm(gt[66] - gt[62]) / iod > 0.05)
            meshes.append(mesh)
    distances_all, open_mouth = np.stack(distances), np.array(open_mouth)
    mean_mesh = np.mean(meshes, axis=0)
    area = lambda loop: np.ptp(mean_mesh[sorted(loop)], axis=0).prod()  # noqa: E731
    outer_lips, inner_lips = sorted(lip_loops, key=area, reverse=True)[:2]
    groups = {
        range(0, 17): vertices(c.FACEMESH_FACE_OVAL),
        range(17, 27): vertices(c.FACEMESH_RIGHT_EYEBROW | c.FACEMESH_LEFT_EYEBROW),
        range(27, 36): vertices(c.FACEMESH_NOSE),
        range(36, 48): vertices(c.FACEMESH_RIGHT_EYE | c.FACEMESH_LEFT_EYE),
        range(48, 60): sorted(outer_lips),
        range(60, 68): sorted(inner_lips),
    }
    logger.info("fit on %d faces (%d with open mouth)", len(distances_all), int(open_mouth.sum()))
    mapping = []
    for points, candidates in groups.items():
        for k in points:
            use = distances_all[open_mouth] if k >= 60 and open_mouth.sum() >= 10 else distances_all
            median = np.median(use[:, k, candidates], axis=0)
            mapping.append(int(candidates[int(median.argmin())]))
    return mapping


def environment() -> dict[str, Any]:
    versions = {}
    for name in ("numpy", "cv2", "dlib", "mediapipe", "onnxruntime", "deepface"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(), **versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=200, help="AffectNet-part images of the sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--backends", default=DEFAULT_BACKENDS, help="landmark backends, comma-separated")
    parser.add_argument("--cnn-limit", type=int, default=100, help="images for the slow dlib:cnn")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fit-mediapipe-mapping", type=int, metavar="SEED", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.fit_mediapipe_mapping is not None:
        mapping = fit_mediapipe_mapping(args.fit_mediapipe_mapping, args.n_train, args.image_size)
        print(json.dumps(mapping))
        return 0

    results: dict[str, Any] = {}
    if args.out.is_file():
        results = json.loads(args.out.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        records, truth = make_sample(Path(tmp) / "sample", args.n_train, args.seed, args.image_size)
        truths = [tuple(truth[r.image_id][c] for c in HEAD_POSE_COLUMNS) for r in records]
        results["benchmark"] = "metadata backends on the synthetic sample's ground truth"
        results["sample"] = {
            "seed": args.seed, "images": len(records), "image_size": args.image_size, "part": "affectnet (csv layout)",
            "pose_range_deg": "yaw/pitch/roll drawn uniformly in +-25/+-15/+-15",
        }  # fmt: skip
        try:
            importlib.import_module("cv2")
            results["pose_from_ground_truth_landmarks"] = pose_errors(
                [truth[r.image_id]["landmarks_68"] for r in records], truths, args.image_size
            )
        except ImportError:
            logger.warning("cv2 not installed: pose not measured")
        landmarks = results.setdefault("landmarks", {})
        for spec in [s.strip() for s in args.backends.split(",") if s.strip()]:
            try:
                limit = args.cnn_limit if spec == "dlib:cnn" else None
                landmarks[spec] = bench_landmarks(spec, records, truth, args.image_size, limit)
                landmarks[spec]["environment"] = environment()
                logger.info("%s: %s", spec, {k: v for k, v in landmarks[spec].items() if not isinstance(v, dict)})
            except (ImportError, NotImplementedError, FileNotFoundError) as err:
                logger.warning("%s not measured: %s", spec, err)
                landmarks.setdefault(spec, {"not_measured": str(err)})
    results["environment"] = environment()
    results["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
