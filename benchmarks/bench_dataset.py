"""Dataset export and loading speed.

Renders a synthetic sample, labels it with a random-weight tiny soft-labeler, then measures:

* **export**: ``build_dataset`` (metadata ``synthetic``) images/s;
* **load_dataset(folder)**: first load (fresh cache: Parquet -> Arrow cache) in seconds, then
  iteration rows/s over ``train`` with images decoded (PIL) and without (``image`` column dropped);
* the same for ``load_dataset("imagefolder", data_dir=...)`` over the same image files laid out as
  ``train/<emotion>/<file>``;
* ``load_dataset(folder, "easy")`` first load.

Results are merged into ``benchmarks/results/dataset.json``.

    python benchmarks/bench_dataset.py --n-train 1000 --n-val 200
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "dataset.json"
sys.path.insert(0, str(REPO / "benchmarks"))

logger = logging.getLogger("bench_dataset")


def iterate(dataset, decode: bool) -> float:
    """Rows/s of a full pass (images decoded to RGB when ``decode``)."""
    start = time.perf_counter()
    n = 0
    if not decode:
        dataset = dataset.remove_columns("image")
    for row in dataset:
        if decode:
            row["image"].convert("RGB")
        n += 1
    return n / (time.perf_counter() - start)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench_labeling import make_model

    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.emotions import EMOTIONS
    from affectnetplus_hf.fileio import write_json_atomic
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset
    from affectnetplus_hf.sources import open_source
    from affectnetplus_hf.synthetic import write_sample

    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        root = Path(tmp)
        os.environ["HF_HOME"] = str(root / "hf-home")
        import datasets

        datasets.disable_progress_bars()
        write_sample(
            root / "sample",
            n_train=args.n_train,
            n_val=args.n_val,
            n_mas=2,
            image_size=args.image_size,
            seed=0,
            contact_sheet=False,
            progress=False,
            workers=min(4, os.cpu_count() or 1),
        )
        make_model(root / "model", ["test_resnet"], None, 32)
        label_dataset(
            root / "model",
            root / "sample",
            root / "labels",
            LabelingConfig(shard_size=512, batch_size=64, progress=False),
        )
        total = args.n_train + args.n_val
        _, export_s = timed(
            lambda: build_dataset(root / "sample", root / "labels", root / "ds", metadata="synthetic", progress=False)
        )
        folder_bytes = sum(p.stat().st_size for p in (root / "ds").rglob("*.parquet"))

        source = open_source(root / "sample")
        image_root = root / "imagefolder"
        for split in ("train", "validation"):
            for record in source.records(split):
                target = image_root / split / EMOTIONS[record.hard_label] / record.image_id.replace("/", "__")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(record.image_path, target)

        from datasets import load_dataset

        parquet, parquet_first = timed(lambda: load_dataset(str(root / "ds")))
        _, parquet_cached = timed(lambda: load_dataset(str(root / "ds")))
        _, easy_first = timed(lambda: load_dataset(str(root / "ds"), "easy"))
        folder, folder_first = timed(lambda: load_dataset("imagefolder", data_dir=str(image_root)))
        _, folder_cached = timed(lambda: load_dataset("imagefolder", data_dir=str(image_root)))
        entry = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu(s), {platform.python_version()}",
            "datasets": datasets.__version__,
            "images": total,
            "image_size": args.image_size,
            "export_s": round(export_s, 2),
            "export_images_per_s": round(total / export_s, 1),
            "parquet_mb": round(folder_bytes / 2**20, 2),
            "affectnetplus_folder": {
                "first_load_s": round(parquet_first, 2),
                "cached_load_s": round(parquet_cached, 2),
                "easy_config_first_load_s": round(easy_first, 2),
                "iterate_rows_per_s_decoded": round(iterate(parquet["train"], True), 1),
                "iterate_rows_per_s_no_image": round(iterate(parquet["train"], False), 1),
                "columns": len(parquet["train"].column_names),
            },
            "imagefolder": {
                "first_load_s": round(folder_first, 2),
                "cached_load_s": round(folder_cached, 2),
                "iterate_rows_per_s_decoded": round(iterate(folder["train"], True), 1),
                "iterate_rows_per_s_no_image": round(iterate(folder["train"], False), 1),
                "columns": len(folder["train"].column_names),
            },
        }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[f"synthetic-{total}@{args.image_size}px"] = entry
    write_json_atomic(path, results)
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
