"""Benchmark: vectorised W-MAE / W-FR (paper Eq. 15, `docs/method.md#metrics`) against the plain per-sample
Python loop.

    python benchmarks/bench_metrics.py [--rows 1000000] [--loop-rows 20000] [--repeats 5]

The vectorised functions run on ``--rows`` × 8 float32 soft labels (best of ``--repeats``); the loop
(:func:`affectnetplus_hf.metrics.weighted_error_single`, one Python call per sample) runs on the first
``--loop-rows`` rows and its time is scaled to ``--rows``. Targets: vectorised ≥ 100× the loop, and
< 1 s for 1 M rows. Writes ``benchmarks/results/metrics.json`` (atomically) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from affectnetplus_hf.fileio import write_text_atomic
from affectnetplus_hf.metrics import (
    DEFAULT_EPSILON,
    soft_label_metrics,
    w_fr,
    w_mae,
    weighted_error_single,
    weighted_errors,
)

RESULTS = Path(__file__).resolve().parent / "results" / "metrics.json"
TARGET_SPEEDUP = 100.0
TARGET_SECONDS_PER_MILLION = 1.0


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random soft labels: uniform scores, a quarter of the rows with tied zeros (as real soft labels have)."""
    rng = np.random.default_rng(seed)
    references = rng.random((rows, 8), dtype=np.float32)
    references[::4, 4:] = 0.0
    noise = rng.normal(0.0, 0.2, size=(rows, 8)).astype(np.float32)
    predictions = np.clip(references + noise, 0.0, 1.0)
    return references, predictions


def best_time(function, repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def loop_w_mae(references: list, predictions: list) -> float:
    errors = [weighted_error_single(r, p) for r, p in zip(references, predictions)]
    return 100.0 * sum(errors) / len(errors)


def loop_w_fr(references: list, predictions: list, epsilon: float = DEFAULT_EPSILON) -> float:
    failures = sum(weighted_error_single(r, p) > epsilon for r, p in zip(references, predictions))
    return 100.0 * failures / len(references)


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
    }


def write_json_atomically(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--loop-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.rows < 1 or not 1 <= args.loop_rows <= args.rows or args.repeats < 1:
        parser.error("need rows >= loop-rows >= 1 and repeats >= 1")

    references, predictions = make_data(args.rows)
    ref_list = references[: args.loop_rows].tolist()
    pred_list = predictions[: args.loop_rows].tolist()
    scale = args.rows / args.loop_rows

    results: dict = {
        "rows": args.rows,
        "columns": 8,
        "dtype": "float32",
        "loop_rows": args.loop_rows,
        "repeats": args.repeats,
        "epsilon": DEFAULT_EPSILON,
        "machine": machine_info(),
        "metrics": {},
    }
    for name, vectorised, loop in (("w_mae", w_mae, loop_w_mae), ("w_fr", w_fr, loop_w_fr)):
        seconds, value = best_time(lambda: vectorised(references, predictions), args.repeats)
        loop_seconds, loop_value = best_time(lambda: loop(ref_list, pred_list), 1)
        subsample_value = vectorised(references[: args.loop_rows], predictions[: args.loop_rows])
        loop_scaled = loop_seconds * scale
        results["metrics"][name] = {
            "value_percent": value,
            "vectorised_seconds": seconds,
            "vectorised_rows_per_second": args.rows / seconds,
            "loop_seconds_on_subsample": loop_seconds,
            "loop_seconds_scaled": loop_scaled,
            "speedup": loop_scaled / seconds,
            "subsample_abs_difference_percent": abs(subsample_value - loop_value),
        }
    seconds, _ = best_time(lambda: soft_label_metrics(references, predictions), args.repeats)
    results["soft_label_metrics_seconds"] = seconds
    seconds, _ = best_time(lambda: weighted_errors(references, predictions, ties="average"), args.repeats)
    results["weighted_errors_average_ties_seconds"] = seconds
    references64, predictions64 = references.astype(np.float64), predictions.astype(np.float64)
    results["weighted_errors_float64_seconds"], _ = best_time(
        lambda: weighted_errors(references64, predictions64), args.repeats
    )

    per_million = {name: m["vectorised_seconds"] * 1_000_000 / args.rows for name, m in results["metrics"].items()}
    results["targets"] = {
        "speedup_at_least": TARGET_SPEEDUP,
        "seconds_per_million_rows_below": TARGET_SECONDS_PER_MILLION,
        "met": all(m["speedup"] >= TARGET_SPEEDUP for m in results["metrics"].values())
        and all(s < TARGET_SECONDS_PER_MILLION for s in per_million.values()),
    }
    write_json_atomically(results, args.output)

    print(
        f"{args.rows:,} x 8 float32 soft labels on {results['machine']['platform']} "
        f"({results['machine']['usable_cpus']} usable CPUs), numpy {np.__version__}"
    )
    for name, m in results["metrics"].items():
        print(
            f"  {name}: vectorised {m['vectorised_seconds'] * 1000:.1f} ms, loop {m['loop_seconds_scaled']:.1f} s "
            f"(scaled from {args.loop_rows:,} rows) -> {m['speedup']:.0f}x; value {m['value_percent']:.4f} %"
        )
    print(
        f"  all three metrics (soft_label_metrics): {results['soft_label_metrics_seconds'] * 1000:.1f} ms; "
        f"ties='average': {results['weighted_errors_average_ties_seconds'] * 1000:.1f} ms; "
        f"float64 input: {results['weighted_errors_float64_seconds'] * 1000:.1f} ms"
    )
    print(
        f"  targets (>= {TARGET_SPEEDUP:.0f}x, < {TARGET_SECONDS_PER_MILLION:.0f} s per 1 M rows): "
        f"{'met' if results['targets']['met'] else 'NOT met'}; written to {args.output}"
    )
    return 0 if results["targets"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
