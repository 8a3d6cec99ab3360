"""Ensemble inference benchmark: the soft-labeler decodes each image once and feeds every member.

Labels a synthetic sample with a random-weight 32-member soft-labeler (3 EBC backbones x 8 emotions + 8
AU members, built with ``SoftLabeler.from_members``) and times:

* **decode-once**: ``iter_soft_labels`` over ``make_dataloader`` — every image decoded once, all 32
  members fed from the same batch (``--num-workers`` DataLoader processes decode while the main process
  computes; also measured with 0 workers, decode and compute in series);
* **one pass per member**: each member classifier alone, with its own DataLoader pass over the images
  (every image decoded 32 times), member probabilities combined with ``SoftLabeler.combine``; the soft
  labels must equal decode-once's to 1e-5;
* **member compute alone**: the soft-labeler on pre-decoded tensors (no decoding at all), as the
  ceiling of the end-to-end rate; variants: members stacked with ``torch.func.vmap``
  (``member_execution="vmap"``) vs sequential, and ``channels_last`` vs contiguous.

Ratios (best of ``--repeats`` runs each): ``per-member / decode-once`` (target >= 1.7) and
``decode-once / compute-only`` (target <= 1.10). Results are merged into
``benchmarks/results/ensemble.json`` under ``<device>:<preset>``.

    python benchmarks/bench_ensemble.py                       # tiny preset, CPU
    python benchmarks/bench_ensemble.py --preset paper --device cuda
        # ResNet-50/EfficientNet-B3/Xception, 224 px, bf16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "ensemble.json"
TARGET_DECODE_ONCE = 1.7  # per-member passes / decode-once
TARGET_OVERHEAD = 1.10  # end-to-end / compute alone

logger = logging.getLogger("bench_ensemble")


def presets() -> dict[str, dict]:
    from affectnetplus_hf.paper import PAPER_AU_BACKBONE, PAPER_EBC_BACKBONES

    return {
        "tiny": {
            "ebc_backbones": ["test_resnet", "test_efficientnet", "test_convnext"],
            "au_backbone": "test_resnet",
            "image_size": 64,
            "sample_image_size": 112,
            "n_images": 512,
            "batch_size": 32,
            "dtype": "fp32",
        },
        "paper": {
            "ebc_backbones": list(PAPER_EBC_BACKBONES),
            "au_backbone": PAPER_AU_BACKBONE,
            "image_size": 224,
            "sample_image_size": 256,
            "n_images": 1024,
            "batch_size": 128,
            "dtype": "bf16",
        },
    }


# ---------------------------------------------------------------------------------------------- setup


def build_members(ebc_backbones: list[str], au_backbone: str | None, image_size: int, seed: int = 0):
    """Random-weight members; heads spread (std 0.5) so that the members' outputs really differ."""
    import torch

    from affectnetplus_hf.emotions import EMOTIONS
    from affectnetplus_hf.models import (
        AUExpressionClassifier,
        AUExpressionClassifierConfig,
        BinaryExpressionClassifier,
        BinaryExpressionClassifierConfig,
    )

    def spread(model):
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "classifier" in name:
                    parameter.normal_(0.0, 0.5)
        return model.eval()

    ebc, au = {}, {}
    k = seed
    for backbone in ebc_backbones:
        for emotion in EMOTIONS:
            torch.manual_seed(k)
            k += 1
            config = BinaryExpressionClassifierConfig(backbone=backbone, emotion=emotion, image_size=image_size)
            ebc[(backbone, emotion)] = spread(BinaryExpressionClassifier(config))
    if au_backbone:
        for emotion in EMOTIONS:
            torch.manual_seed(k)
            k += 1
            config = AUExpressionClassifierConfig(backbone=au_backbone, emotion=emotion, image_size=image_size)
            au[emotion] = spread(AUExpressionClassifier(config))
    return ebc, au


def build_labeler(ebc, au, n_backbones: int):
    import numpy as np

    from affectnetplus_hf.models import SoftLabeler

    rng = np.random.default_rng(0)
    confidences = {"ebc": rng.uniform(0.6, 0.95, (n_backbones, 8))} if ebc else {}
    if au:
        confidences["au"] = rng.uniform(0.6, 0.95, 8)
    return SoftLabeler.from_members(ebc or None, au or None, confidences)


def sample_records(root: Path, n_images: int, image_size: int, workers: int):
    """``n_images`` FaceRecords (with face boxes) of a freshly written synthetic sample."""
    from affectnetplus_hf.sources import open_source
    from affectnetplus_hf.synthetic import write_sample

    n_val = max(1, n_images // 8)
    write_sample(
        root,
        n_train=n_images - n_val,
        n_val=n_val,
        n_mas=2,
        image_size=image_size,
        seed=0,
        contact_sheet=False,
        progress=False,
        workers=workers,
    )
    records = list(open_source(root).records())[:n_images]
    if len(records) < n_images:
        raise RuntimeError(f"{root}: the synthetic sample holds {len(records)} records, {n_images} requested")
    return records


# ---------------------------------------------------------------------------------------------- runs


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (DataLoader workers) so far."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Interleaved:
    """Round-robin timing of several variants (one run of each per round), so that the load of a shared
    machine drifting over minutes hits every variant alike. Keeps wall time (best, median), CPU time
    (this process + DataLoader workers) and the last result of each; CUDA-synchronised around each run."""

    def __init__(self, device) -> None:
        import torch

        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.variants: list[tuple[str, str, object, int, object, object]] = []

    def add(self, key: str, label: str, fn, repeats: int, setup=None, teardown=None) -> None:
        self.variants.append((key, label, fn, repeats, setup, teardown))

    def run(self) -> tuple[dict[str, dict], dict[str, object]]:
        walls: dict[str, list[float]] = {key: [] for key, *_ in self.variants}
        cpus: dict[str, list[float]] = {key: [] for key, *_ in self.variants}
        results: dict[str, object] = {}
        rounds = max(repeats for *_, repeats, _, _ in self.variants)
        for r in range(rounds):
            for key, label, fn, repeats, setup, teardown in self.variants:
                if r >= repeats:
                    continue
                if setup:
                    setup()
                self.sync()
                cpu, start = _cpu_seconds(), time.perf_counter()
                results[key] = fn()
                self.sync()
                walls[key].append(time.perf_counter() - start)
                cpus[key].append(_cpu_seconds() - cpu)
                if teardown:
                    teardown()
                logger.info("round %d  %-40s %.3f s wall, %.3f s cpu", r + 1, label, walls[key][-1], cpus[key][-1])
        timings = {
            key: {
                "best_s": round(min(walls[key]), 4),
                "median_s": round(statistics.median(walls[key]), 4),
                "cpu_s_best": round(min(cpus[key]), 4),
                "runs": len(walls[key]),
            }
            for key in walls
        }
        return timings, results


def decode_once(labeler, records, args, device, num_workers: int):
    """End-to-end: DataLoader (decode once) -> every member -> soft labels (CPU tensor (N, 8))."""
    import torch

    from affectnetplus_hf.image_processing import make_dataloader
    from affectnetplus_hf.models.runner import iter_soft_labels

    loader = make_dataloader(records, labeler.image_processor, batch_size=args.batch_size, num_workers=num_workers)
    return torch.cat([out.soft_label for _, out in iter_soft_labels(labeler, loader, device=device, dtype=args.dtype)])


def per_member_passes(labeler, members: list, records, args, device, num_workers: int):
    """Baseline: one full DataLoader pass per member (each image decoded once per member), then the
    soft-labeler's own combination of the member probabilities (Eqs. 4–14)."""
    import torch

    from affectnetplus_hf.image_processing import make_dataloader
    from affectnetplus_hf.models import AUExpressionClassifier
    from affectnetplus_hf.models.runner import autocast_context, prepare_for_inference

    ebc_columns, au_binary, au_probs = [], [], []
    for member in members:
        prepare_for_inference(member, device)
        loader = make_dataloader(records, labeler.image_processor, batch_size=args.batch_size, num_workers=num_workers)
        positive, aus = [], []
        with torch.inference_mode():
            for batch in loader:
                x = batch["pixel_values"].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                with autocast_context(device, args.dtype):
                    if isinstance(member, AUExpressionClassifier):
                        out = member(x, return_p_au=False)
                        aus.append(out.au_probs.float().cpu())
                    else:
                        out = member(x)
                positive.append(out.positive_probs.float().cpu())
        if isinstance(member, AUExpressionClassifier):
            au_binary.append(torch.cat(positive))
            au_probs.append(torch.cat(aus))
        else:
            ebc_columns.append(torch.cat(positive))
    result = labeler.combine(
        ebc_probs=torch.stack(ebc_columns, 1) if ebc_columns else None,
        au_binary_probs=torch.stack(au_binary, 1) if au_binary else None,
        au_probs=torch.stack(au_probs, 1) if au_probs else None,
    )
    return torch.as_tensor(result["soft_label"], dtype=torch.float32)


def predecode(labeler, records, args, device, num_workers: int = 0):
    """All batches decoded up front, on ``device`` (what 'member compute alone' consumes)."""
    from affectnetplus_hf.image_processing import make_dataloader

    loader = make_dataloader(records, labeler.image_processor, batch_size=args.batch_size, num_workers=num_workers)
    return [batch["pixel_values"].to(device) for batch in loader]


def compute_only(labeler, batches, args, device, *, execution: str = "loop", channels_last: bool = True):
    """The soft-labeler's forward over pre-decoded tensors (model and inputs in the given layout)."""
    import torch

    from affectnetplus_hf.models.runner import autocast_context

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    labeler.member_execution = execution
    outputs = []
    try:
        with torch.inference_mode():
            for x in batches:
                with autocast_context(device, args.dtype):
                    outputs.append(labeler(x.contiguous(memory_format=fmt)).soft_label.cpu())
    finally:
        labeler.member_execution = "loop"
    return torch.cat(outputs)


def set_layout(labeler, device, channels_last: bool) -> None:
    import torch

    labeler.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ---------------------------------------------------------------------------------------------- main


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cpu(s))"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--n-images", type=int, help="images labelled (preset: tiny 512, paper 1024)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), help="autocast dtype (preset: tiny fp32, paper bf16)"
    )
    parser.add_argument("--ebc-backbones", help="comma-separated timm names (overrides the preset)")
    parser.add_argument("--au-backbone", help="timm name, '' for no AU family (overrides the preset)")
    parser.add_argument("--image-size", type=int, help="model input size (overrides the preset)")
    parser.add_argument("--sample-image-size", type=int, help="side of the synthetic JPEGs (overrides the preset)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="DataLoader processes decoding while the main process computes; every run is also "
        "done with 0 (serial). Default: 1 on CPU, min(8, cpus - 1) on CUDA",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads of the main process (default: cpus - workers, >= 1)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds: runs per measurement (best and median kept)")
    parser.add_argument("--per-member-repeats", type=int, default=2, help="runs of the (slow) per-member baseline")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--no-save", action="store_true", help="print only, do not touch the results file")
    parser.add_argument(
        "--record-not-run",
        metavar="REASON",
        help="run nothing: record under '<device>:<preset>' that this run could not be done, why, "
        "and the closest earlier GPU numbers from benchmarks/results/labeling.json",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.record_not_run:
        return record_not_run(args)

    import torch

    from affectnetplus_hf.models.runner import resolve_device

    preset = presets()[args.preset]
    for key in ("n_images", "batch_size", "dtype", "image_size", "sample_image_size"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    ebc_backbones = (
        [b for b in args.ebc_backbones.split(",") if b] if args.ebc_backbones is not None else preset["ebc_backbones"]
    )
    au_backbone = (args.au_backbone or None) if args.au_backbone is not None else preset["au_backbone"]
    if args.n_images < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--n-images, --batch-size and --repeats must be positive")
    device = resolve_device(args.device)
    cpus = os.cpu_count() or 1
    if args.num_workers is None:
        args.num_workers = 1 if device.type == "cpu" else max(1, min(8, cpus - 1))
    if args.num_workers < 0:
        parser.error("--num-workers must be >= 0")
    threads = args.threads or max(1, cpus - args.num_workers)
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    load_before = os.getloadavg()
    worker_settings = sorted({0, args.num_workers})

    with tempfile.TemporaryDirectory(prefix="bench-ensemble-") as tmp:
        records = sample_records(Path(tmp) / "sample", args.n_images, args.sample_image_size, min(4, cpus))
        logger.info("building %d EBC + %d AU members", 8 * len(ebc_backbones), 8 if au_backbone else 0)
        ebc, au = build_members(ebc_backbones, au_backbone, args.image_size)
        labeler = build_labeler(ebc, au, len(ebc_backbones))
        members = [ebc[(b, e)] for b in ebc_backbones for e in _emotions()] + [au[e] for e in _emotions() if au]
        n_members = len(members)
        n = len(records)

        # warm-up (allocator, cudnn autotuning, vmap stacking) on the first batch
        set_layout(labeler, device, True)
        batches = predecode(labeler, records, args, device)
        compute_only(labeler, batches[:1], args, device)
        compute_only(labeler, batches[:1], args, device, execution="vmap")

        bench = Interleaved(device)
        bench.add(
            "compute_only",
            "member compute alone (loop, channels_last)",
            lambda: compute_only(labeler, batches, args, device),
            args.repeats,
        )
        bench.add(
            "compute_only_vmap",
            "member compute alone (vmap, channels_last)",
            lambda: compute_only(labeler, batches, args, device, execution="vmap"),
            args.repeats,
        )
        bench.add(
            "compute_only_contiguous",
            "member compute alone (loop, contiguous)",
            lambda: compute_only(labeler, batches, args, device, channels_last=False),
            args.repeats,
            setup=lambda: set_layout(labeler, device, False),
            teardown=lambda: set_layout(labeler, device, True),
        )
        bench.add(
            "decode_only",
            "decode alone (0 workers)",
            lambda: predecode(labeler, records, args, torch.device("cpu")),
            args.repeats,
        )
        for w in worker_settings:
            bench.add(
                f"decode_once_{w}w",
                f"decode-once ({w} worker(s))",
                lambda w=w: decode_once(labeler, records, args, device, w),
                args.repeats,
            )
            bench.add(
                f"per_member_passes_{w}w",
                f"one pass per member ({w} worker(s))",
                lambda w=w: per_member_passes(labeler, members, records, args, device, w),
                args.per_member_repeats,
            )
        set_layout(labeler, device, False)  # warm-up of the contiguous layout
        compute_only(labeler, batches[:1], args, device, channels_last=False)
        set_layout(labeler, device, True)
        runs, outputs = bench.run()
        outputs.pop("decode_only")

    tol = 1e-5 if args.dtype == "fp32" else 1e-2
    reference = outputs["compute_only"]
    diffs = {
        f"{name}_vs_compute_only": float((value - reference).abs().max())
        for name, value in outputs.items()
        if name != "compute_only"
    }
    best = {key: value["best_s"] for key, value in runs.items()}
    cpu = {key: value["cpu_s_best"] for key, value in runs.items()}
    speedups = {f"{w}_workers": best[f"per_member_passes_{w}w"] / best[f"decode_once_{w}w"] for w in worker_settings}
    overheads = {f"{w}_workers": best[f"decode_once_{w}w"] / best["compute_only"] for w in worker_settings}
    entry = {
        "run": True,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "device": str(device),
        "device_name": device_name(device),
        "machine": f"{platform.machine()} {cpus} cpu(s), python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "preset": args.preset,
        "ebc_backbones": ebc_backbones,
        "au_backbone": au_backbone,
        "members": n_members,
        "image_size": args.image_size,
        "sample_image_size": args.sample_image_size,
        "images": n,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "channels_last": True,
        "num_workers": worker_settings,
        "torch_threads": threads,
        "timings": runs,
        "images_per_s": {key: round(n / value, 2) for key, value in best.items()},
        "max_abs_diff": diffs,
        "tolerance": tol,
        "same_outputs": all(value <= tol for value in diffs.values()),
        "ratios": {
            "decode_once_speedup_vs_per_member_passes": {k: round(v, 3) for k, v in speedups.items()},
            "end_to_end_over_compute_only": {k: round(v, 3) for k, v in overheads.items()},
            "serial_model_speedup": round(_serial_model(best, n_members), 3),
            "decode_over_compute": round(best["decode_only"] / best["compute_only"], 4),
            "vmap_speedup_vs_loop": round(best["compute_only"] / best["compute_only_vmap"], 3),
            "channels_last_speedup_vs_contiguous": round(best["compute_only_contiguous"] / best["compute_only"], 3),
        },
        # the same ratios in CPU seconds (process + workers): total work, robust to other users' load;
        # with workers it is not a latency (the worker's decode overlaps the main process's compute)
        "ratios_cpu_time": {
            "decode_once_speedup_vs_per_member_passes": {
                f"{w}_workers": round(cpu[f"per_member_passes_{w}w"] / cpu[f"decode_once_{w}w"], 3)
                for w in worker_settings
            },
            "end_to_end_over_compute_only": {
                f"{w}_workers": round(cpu[f"decode_once_{w}w"] / cpu["compute_only"], 3) for w in worker_settings
            },
            "vmap_speedup_vs_loop": round(cpu["compute_only"] / cpu["compute_only_vmap"], 3),
            "channels_last_speedup_vs_contiguous": round(cpu["compute_only_contiguous"] / cpu["compute_only"], 3),
        },
        "targets": {
            f"decode_once_speedup>={TARGET_DECODE_ONCE}": {k: v >= TARGET_DECODE_ONCE for k, v in speedups.items()},
            "end_to_end_within_10%_of_compute": {k: v <= TARGET_OVERHEAD for k, v in overheads.items()},
        },
        "timing_method": f"variants interleaved round-robin, best wall time of {args.repeats} rounds (per-member "
        f"baseline: {args.per_member_repeats}); images/s = images / best wall time; median wall and "
        "best CPU time (process + DataLoader workers) in timings",
    }
    entry["notes"] = _notes(entry, best, n_members, worker_settings)
    if device.type == "cuda":
        entry["gpu"] = torch.cuda.get_device_name(device)
    key = f"{device.type}:{args.preset}"
    if not args.no_save:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        results = json.loads(path.read_text()) if path.is_file() else {}
        results[key] = entry
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        logger.info("wrote %s[%r]", path, key)
    print(f"{key} on {entry['device_name']}: {n} images, {n_members} members, {threads} thread(s), {args.dtype}")
    for w in worker_settings:
        k = f"{w}_workers"
        print(
            f"  {w} worker(s): decode-once vs one pass per member {speedups[k]:.2f}x (target >= {TARGET_DECODE_ONCE}: "
            f"{'met' if speedups[k] >= TARGET_DECODE_ONCE else 'MISSED'}); end-to-end / member compute alone "
            f"{overheads[k]:.3f} "
            f"(target <= {TARGET_OVERHEAD}: {'met' if overheads[k] <= TARGET_OVERHEAD else 'MISSED'})"
        )
    ratios = entry["ratios"]
    print(
        f"  vmap vs loop {ratios['vmap_speedup_vs_loop']:.2f}x; channels_last vs contiguous "
        f"{ratios['channels_last_speedup_vs_contiguous']:.2f}x; same outputs (<= {tol}): {entry['same_outputs']}"
    )
    print(f"  in CPU time: {json.dumps(entry['ratios_cpu_time'])}")
    print(f"  images/s: {json.dumps(entry['images_per_s'])}")
    for note in entry["notes"]:
        print(f"  - {note}")
    if not entry["same_outputs"]:
        bad = {k: v for k, v in diffs.items() if v > tol}
        raise SystemExit(f"soft labels differ between execution paths beyond {tol}: {bad}")
    return entry


def record_not_run(args) -> dict:
    """Write a ``{"run": false, ...}`` entry (e.g. the paper preset on a GPU when no GPU was lent)."""
    device = args.device.split(":")[0]
    labeling = REPO / "benchmarks" / "results" / "labeling.json"
    earlier = {}
    if labeling.is_file():
        for key, value in json.loads(labeling.read_text()).items():
            if key.startswith("cuda:"):
                earlier[key] = {
                    "gpu": value.get("gpu"),
                    "date": value.get("date"),
                    "members": value.get("members"),
                    "dtype": value.get("dtype"),
                    "images": value.get("images"),
                    "images_per_s": [run["images_per_s"] for run in value.get("runs", [])],
                }
    argv = ["--preset", args.preset, "--device", args.device]
    entry = {
        "run": False,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "reason": args.record_not_run,
        "command": f"python benchmarks/bench_ensemble.py {' '.join(argv)}",
        "earlier_gpu_labeling_runs": earlier,
        "earlier_note": "benchmarks/results/labeling.json: affectnetplus label (decode-once pipeline, 1 process) "
        "with 16 ResNet-50 members (8 EBC + 8 AU), 224 px, channels_last - not this benchmark's "
        "32-member ResNet-50/EfficientNet-B3/Xception ensemble",
    }
    key = f"{device}:{args.preset}"
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get(key, {}).get("run", True) and key in results:
        raise SystemExit(f"{path} already holds a measured {key!r} entry; not overwriting it with a not-run record")
    results[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps({key: entry}, indent=2))
    return entry


def _emotions():
    from affectnetplus_hf.emotions import EMOTIONS

    return EMOTIONS


def _serial_model(best: dict, n_members: int) -> float:
    """Speed-up of decode-once over the per-member baseline with decode and compute in series:
    ``(M·D + C) / (D + C)`` from the measured decode-alone ``D`` and compute-alone ``C``."""
    d, c = best["decode_only"], best["compute_only"]
    return (n_members * d + c) / (d + c)


def _notes(entry: dict, best: dict, n_members: int, worker_settings: list[int]) -> list[str]:
    """Plain-language reading of the measured numbers (why a target is met or missed)."""
    d, c = best["decode_only"], best["compute_only"]
    model = _serial_model(best, n_members)
    notes = [
        f"decode alone {d:.3f} s vs member compute alone {c:.3f} s for {entry['images']} images: decoding is "
        f"{100 * d / c:.1f}% of the {n_members}-member compute. A serial model predicts the per-member baseline "
        f"({n_members}·D + C) at {model:.2f}x decode-once (D + C); the target {TARGET_DECODE_ONCE}x needs "
        f"D >= {(TARGET_DECODE_ONCE - 1) / (n_members - TARGET_DECODE_ONCE):.3f}·C."
    ]
    for w in worker_settings:
        k = f"{w}_workers"
        speedup = best[f"per_member_passes_{w}w"] / best[f"decode_once_{w}w"]
        overhead = best[f"decode_once_{w}w"] / c
        if speedup < TARGET_DECODE_ONCE:
            notes.append(
                f"{k}: decode-once speed-up {speedup:.2f}x < {TARGET_DECODE_ONCE}: decode is too cheap relative to "
                f"{n_members} members' compute for a larger ratio."
            )
        if overhead > TARGET_OVERHEAD:
            why = (
                "decode runs in series with compute"
                if w == 0
                else "DataLoader worker start-up and decode are not fully hidden behind compute "
                f"(load average {entry['load_average_1min']} on {os.cpu_count()} shared cpu(s))"
            )
            notes.append(f"{k}: end-to-end {100 * (overhead - 1):.1f}% over compute alone: {why}.")
        elif w and overhead < 1:
            notes.append(
                f"{k}: end-to-end faster than compute alone ({overhead:.3f}): the DataLoader worker decodes in "
                f"parallel and the pre-decoded compute run holds all {entry['images']} decoded images in memory; "
                f"on a shared machine the load also differs between runs (interleaving limits, not removes, this)."
            )
    if len(worker_settings) > 1 and best[f"per_member_passes_{worker_settings[-1]}w"] > best["per_member_passes_0w"]:
        notes.append(
            f"the per-member baseline is slower with {worker_settings[-1]} worker(s) than with 0: each of its "
            f"{n_members} passes starts its own DataLoader workers."
        )
    if entry["ratios"]["vmap_speedup_vs_loop"] < 1:
        notes.append("vmap-stacked members are slower than the sequential loop here: keep member_execution='loop'.")
    return notes


if __name__ == "__main__":
    main()
