"""Labeling throughput: images/s of ``affectnetplus label`` with 1 and N processes.

Renders a synthetic sample and a random-weight soft-labeler (``--ebc-backbones`` x 8 binary members +
8 AU members on ``--au-backbone``) into a temporary folder, then runs the real CLI:

* 1 process: ``python -m affectnetplus_hf label ...`` (``--num-threads`` intra-op threads);
* N processes: ``accelerate launch --multi_gpu --num_processes N -m affectnetplus_hf label ...``
  (``ACCELERATE_USE_CPU=1`` on CPU, 1 thread per process).

Reported per run: wall time of the command (start-up included), the steady labeling rate (images /
slowest process's labeling time, from the processes' log lines) and whether the label files are
byte-identical to the 1-process run. Results are merged into ``benchmarks/results/labeling.json``
under a key naming the device and model.

    python benchmarks/bench_labeling.py --n-train 256 --n-val 64 --processes 1,2
    python benchmarks/bench_labeling.py --device cuda --ebc-backbones resnet50,efficientnet_b3 --image-size 224
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "labeling.json"
RATE = re.compile(r"process (\d+): (\d+) images in ([0-9.]+) s")

logger = logging.getLogger("bench_labeling")


def make_model(directory: Path, ebc: list[str], au: str | None, image_size: int) -> None:
    import torch

    from affectnetplus_hf.models import SoftLabeler, SoftLabelerConfig

    torch.manual_seed(0)
    scores = {"ebc": [[0.8] * 8 for _ in ebc]} if ebc else {}
    if au:
        scores["au"] = [0.8] * 8
    config = SoftLabelerConfig(
        ebc_backbones=ebc, au_backbones=au, image_size=image_size, confidence_scores={"balanced": scores}
    )
    SoftLabeler(config).eval().save_pretrained(directory)


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".parquet", ".json"):
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def run_label(model: Path, sample: Path, out: Path, processes: int, args) -> dict:
    common = [
        "-m",
        "affectnetplus_hf",
        "label",
        str(model),
        str(sample),
        str(out),
        "--shard-size",
        str(args.shard_size),
        "--batch-size",
        str(args.batch_size),
        "--no-progress",
        "--num-workers",
        str(args.num_workers),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), MKL_CBWR="AUTO,STRICT")
    common += ["--dtype", args.dtype]
    if args.device == "cpu":
        common.append("--cpu")
    if processes == 1:
        threads = args.threads
        command = [sys.executable, *common, "--num-threads", str(threads)]
    else:
        threads = 1
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            *common,
            "--num-threads",
            "1",
        ]
        if args.device == "cpu":
            env["ACCELERATE_USE_CPU"] = "1"
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"labeling failed ({result.returncode}):\n{result.stderr[-3000:]}")
    per_process = [(int(p), int(n), float(t)) for p, n, t in RATE.findall(result.stderr)]
    images = sum(n for _, n, _ in per_process)
    slowest = max(t for _, _, t in per_process)
    return {
        "processes": processes,
        "threads_per_process": threads,
        "images": images,
        "wall_s": round(wall, 2),
        "labeling_s": round(slowest, 2),
        "images_per_s": round(images / slowest, 2),
        "images_per_s_incl_startup": round(images / wall, 2),
        "digest": tree_digest(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--n-val", type=int, default=64)
    parser.add_argument("--sample-image-size", type=int, default=112)
    parser.add_argument("--image-size", type=int, default=64, help="model input size")
    parser.add_argument("--ebc-backbones", default="resnet10t")
    parser.add_argument("--au-backbone", default="resnet10t", help="'' for no AU family")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the 1-process run")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="labeling autocast dtype")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from affectnetplus_hf.synthetic import write_sample

    ebc = [b for b in args.ebc_backbones.split(",") if b]
    with tempfile.TemporaryDirectory(prefix="bench-labeling-") as tmp:
        root = Path(tmp)
        write_sample(
            root / "sample",
            n_train=args.n_train,
            n_val=args.n_val,
            n_mas=2,
            image_size=args.sample_image_size,
            seed=0,
            contact_sheet=False,
            progress=False,
            workers=min(4, os.cpu_count() or 1),
        )
        make_model(root / "model", ebc, args.au_backbone or None, args.image_size)
        runs = []
        for processes in [int(p) for p in args.processes.split(",")]:
            logger.info("labeling with %d process(es)", processes)
            runs.append(run_label(root / "model", root / "sample", root / f"out{processes}", processes, args))
            logger.info("%s", runs[-1])
    reference = runs[0]["digest"]
    for run in runs:
        run["identical_to_first"] = run.pop("digest") == reference
    members = len(ebc) * 8 + (8 if args.au_backbone else 0)
    key = f"{args.device}:{'+'.join(ebc) or '-'}|au={args.au_backbone or '-'}@{args.image_size}px"
    if args.dtype != "fp32":
        key += f"/{args.dtype}"
    entry = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s), {platform.python_version()}",
        "device": args.device,
        "members": members,
        "images": args.n_train + args.n_val,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
        "dtype": args.dtype,
        "runs": runs,
    }
    if args.device == "cuda":
        import torch

        entry["gpu"] = torch.cuda.get_device_name(0)
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = entry
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps({key: entry}, indent=2))


if __name__ == "__main__":
    main()
