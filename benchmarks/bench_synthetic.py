"""Benchmark: rendering speed of the synthetic sample (sources/synthetic.py).

Measures, single process, at 112 px (default):
* ``render``: labels + face drawing (:func:`make_item`) per second,
* ``render_jpeg`` / ``render_png``: the same plus encoding as the AffectNet part (JPEG) / MAS part (PNG),
* ``write_sample_workers{1,2}``: the whole writer (files, CSVs, contact sheet) per image, a mixed sample
  (1/2 AffectNet train, 1/8 validation, 3/8 multi-annotated), with 1 and 2 rendering processes.
Wall-clock and process CPU time are both reported (the machine may be shared: CPU time is the rate one
free core would give). Results go to ``benchmarks/results/synthetic.json``.

Usage: ``python benchmarks/bench_synthetic.py [--image-size 112] [--n 400]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from affectnetplus_hf.sources import synthetic as S


def _rate(n: int, fn) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images_per_s_wall": round(n / wall, 1), "images_per_s_cpu": round(n / cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--n", type=int, default=1000, help="images per measurement")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    args = parser.parse_args(argv)
    size, n = args.image_size, args.n
    pool = S.AnnotatorPool.create(15, 0)
    for i in range(20):  # warm-up (imports, caches)
        S.make_item(0, "multi_annotated", i, size, pool, 5)

    def render(fmt: str | None):
        def run():
            for i in range(n):
                _, image = S.make_item(0, "multi_annotated", i, size, pool, 5)
                if fmt:
                    S._encode(image, fmt, S.DEFAULT_JPEG_QUALITY)
        return run

    results = {
        "render": _rate(n, render(None)),
        "render_jpeg": _rate(n, render("JPEG")),
        "render_png": _rate(n, render("PNG")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        n_train, n_val, n_mas = n // 2, n // 8, n - n // 2 - n // 8
        for workers in (1, 2):
            results[f"write_sample_workers{workers}"] = _rate(n, lambda: S.write_sample(
                Path(tmp) / f"s{workers}", n_train=n_train, n_val=n_val, n_mas=n_mas, image_size=size,
                progress=False, workers=workers))
        results["write_sample_workers2"].pop("images_per_s_cpu")  # the workers' CPU time is not counted
    report = {
        "benchmark": "synthetic sample rendering (single process)",
        "image_size": size,
        "images_per_measurement": n,
        "target_images_per_s": 200,
        "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
