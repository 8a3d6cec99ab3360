"""Throughput of the ``datasets.map`` path against ``affectnetplus label``, on the same images.

Renders a synthetic sample (``--n-images`` AffectNet-style JPEGs) and a random-weight soft-labeler (by
default the tiny one of the tests: ``test_resnet`` x 8 binary members + 8 AU members at 32 px, so that
the comparison measures the pipelines rather than the convolutions), then times, in this process, with
the same batch size and one process each:

* ``label``: :func:`affectnetplus_hf.labeling.label_dataset` on the sample folder (what
  ``affectnetplus label MODEL DATA OUT`` runs: model load, shards, manifest, summary, subset tables);
* ``map``: ``load_from_disk`` of the same images saved as a ``datasets.Dataset`` (``Image`` column,
  hard labels), then ``ds.map(SoftLabelMap(MODEL_DIR, hard_label_column="label"), batched=True,
  features=...)`` writing its Arrow cache file (model load included).

Each is run ``--repeats`` times, alternating; the best time counts (the first runs pay the imports).
Writes ``benchmarks/results/map.json``::

    OMP_NUM_THREADS=1 python benchmarks/bench_map.py
    python benchmarks/bench_map.py --ebc-backbones resnet10t --au-backbone resnet10t --image-size 64
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "map.json"
sys.path.insert(0, str(REPO / "benchmarks"))

logger = logging.getLogger("bench_map")


def time_label(model: Path, sample: Path, out: Path, args) -> float:
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    config = LabelingConfig(shard_size=args.n_images, batch_size=args.batch_size, progress=False)
    start = time.perf_counter()
    summary = label_dataset(model, sample, out, config, cpu=True)
    elapsed = time.perf_counter() - start
    assert summary["images"] == args.n_images, summary["images"]
    return elapsed


def time_map(model: Path, saved: Path, cache: Path, args) -> float:
    from datasets import load_from_disk

    from affectnetplus_hf.dataset_map import SoftLabelMap

    start = time.perf_counter()
    ds = load_from_disk(str(saved))
    fn = SoftLabelMap(str(model), "image", hard_label_column="label", device="cpu", dtype="fp32")
    out = ds.map(
        fn,
        batched=True,
        batch_size=args.batch_size,
        features=fn.map_features(ds.features),
        cache_file_name=str(cache),
        load_from_cache_file=False,
    )
    elapsed = time.perf_counter() - start
    assert out.num_rows == args.n_images and out[0]["soft_label"] is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--sample-image-size", type=int, default=112)
    parser.add_argument("--image-size", type=int, default=32, help="model input size")
    parser.add_argument("--ebc-backbones", default="test_resnet")
    parser.add_argument("--au-backbone", default="test_resnet", help="'' for no AU family")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    import datasets
    import torch
    from bench_labeling import make_model

    from affectnetplus_hf.sources import open_source
    from affectnetplus_hf.synthetic import write_sample

    datasets.disable_progress_bars()
    ebc = [b for b in args.ebc_backbones.split(",") if b]
    n_val = args.n_images // 5
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        root = Path(tmp)
        write_sample(
            root / "sample",
            n_train=args.n_images - n_val,
            n_val=n_val,
            n_mas=2,
            image_size=args.sample_image_size,
            seed=0,
            contact_sheet=False,
            progress=False,
            workers=min(4, os.cpu_count() or 1),
        )
        make_model(root / "model", ebc, args.au_backbone or None, args.image_size)
        source = open_source(str(root / "sample"))
        records = [r for split in source.splits for r in source.records(split)]
        assert len(records) == args.n_images, len(records)
        datasets.Dataset.from_dict(
            {"image": [r.image_path for r in records], "label": [r.hard_label for r in records]}
        ).cast_column("image", datasets.Image()).save_to_disk(str(root / "saved"))
        label_s, map_s = [], []
        for k in range(args.repeats):
            label_s.append(time_label(root / "model", root / "sample", root / f"labels{k}", args))
            map_s.append(time_map(root / "model", root / "saved", root / f"map{k}.arrow", args))
            logger.info("repeat %d: label %.2f s, map %.2f s", k, label_s[-1], map_s[-1])
    label_rate = args.n_images / min(label_s)
    map_rate = args.n_images / min(map_s)
    entry = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s), {platform.python_version()}",
        "images": args.n_images,
        "sample_image_size": args.sample_image_size,
        "model": f"{'+'.join(ebc) or '-'}|au={args.au_backbone or '-'}@{args.image_size}px",
        "batch_size": args.batch_size,
        "processes": 1,
        "torch_threads": torch.get_num_threads(),
        "label_images_per_s": round(label_rate, 2),
        "map_images_per_s": round(map_rate, 2),
        "ratio": round(map_rate / label_rate, 3),
        "label_s": [round(t, 2) for t in label_s],
        "map_s": [round(t, 2) for t in map_s],
        "note": (
            "best of the repeats; both include loading the model. label: label_dataset on the sample folder "
            "(shards, manifest, summary, subset tables); map: load_from_disk + Dataset.map(SoftLabelMap) "
            "with features= and its Arrow cache file. Both decode each JPEG once (draft mode)."
        ),
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    print(json.dumps(entry, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
