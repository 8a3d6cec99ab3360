"""Benchmark: rendering speed of the synthetic sample (affectnetplus_hf.synthetic).

Measures, single process, at 112 px (default):
* ``render``: labels + face drawing (:func:`make_item`) per second,
* ``render_jpeg`` / ``render_png``: the same plus encoding as the AffectNet part (JPEG) / MAS part (PNG),
* ``write_sample_workers{1,2}``: the whole writer (files, CSVs, contact sheet) per image, a mixed sample
  (1/2 AffectNet train, 1/8 validation, 3/8 multi-annotated), with 1 and 2 rendering processes.
Wall-clock and process CPU time are both reported (the machine may be shared: CPU time is the rate one
free core would give). Results go to ``benchmarks/results/synthetic.json``.

With ``--learnability``, it also writes a default-sized multi-annotated part (``--mas`` images, 5
annotators) at ``--cnn-size`` px, holds out 20 unanimous images per emotion (a test-MAS in the sense
of ``docs/method.md#mas-split``), trains a tiny 4-layer CNN on the rest (soft targets = vote shares, one-cycle AdamW,
``--epochs`` epochs, 2 CPU threads) and records the per-emotion test accuracy, plus the same for a
logistic regression on 24x24 grey pixels (no alignment) as a floor.

Usage: ``python benchmarks/bench_synthetic.py [--image-size 112] [--n 1000] [--learnability]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from affectnetplus_hf import synthetic as S


def _rate(n: int, fn) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images_per_s_wall": round(n / wall, 1), "images_per_s_cpu": round(n / cpu, 1)}


def learnability(n_mas: int, size: int, epochs: int, seed: int = 0) -> dict:
    """Tiny-CNN and logistic-regression accuracy per emotion on 20 unanimous images per emotion."""
    import csv

    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    from affectnetplus_hf.emotions import EMOTIONS

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "s"
        S.write_sample(
            root, n_train=0, n_val=0, n_mas=n_mas, image_size=size, seed=seed, progress=False, contact_sheet=False
        )
        with open(root / "multi_annotated" / "votes.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        x = np.stack(
            [
                np.asarray(Image.open(root / "multi_annotated" / r["image"]).convert("RGB"), np.float32) / 255
                for r in rows
            ]
        )
    votes = np.array([[int(r[e]) for e in EMOTIONS] for r in rows])
    majority = votes.argmax(1)
    unanimous = votes.max(1) == votes.sum(1)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(rows), bool)
    for e in range(len(EMOTIONS)):
        test[rng.permutation(np.flatnonzero(unanimous & (majority == e)))[:20]] = True
    train = np.flatnonzero(~test)
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    images = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    targets = torch.tensor(votes / votes.sum(1, keepdims=True), dtype=torch.float32)

    def per_emotion(pred: np.ndarray) -> dict[str, float]:
        truth = majority[test]
        return {name: round(float((pred[truth == e] == e).mean()), 3) for e, name in enumerate(EMOTIONS)}

    grey = nn.functional.interpolate(images.mean(1, keepdim=True), size=(24, 24), mode="area").flatten(1)
    grey = (grey - grey[train].mean(0)) / (grey[train].std(0) + 1e-2)
    linear = nn.Linear(grey.shape[1], len(EMOTIONS))
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        (-(targets[train] * linear(grey[train]).log_softmax(1)).sum(1).mean()).backward()
        optimizer.step()
    with torch.no_grad():
        logistic = per_emotion(linear(grey[test]).argmax(1).numpy())

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]

    net = nn.Sequential(
        *block(3, 16),
        nn.MaxPool2d(2),
        *block(16, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        nn.MaxPool2d(2),
        *block(64, 96),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(96, 8),
    )
    optimizer = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    steps = epochs * ((len(train) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(train)
        for b in range(0, len(order), 64):
            idx = torch.tensor(order[b : b + 64])
            batch = images[idx]
            flip = torch.rand(len(idx)) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
            optimizer.zero_grad()
            (-(targets[idx] * net(batch).log_softmax(1)).sum(1).mean()).backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        predicted = net(images[torch.tensor(np.flatnonzero(test))]).argmax(1).numpy()
    cnn = per_emotion(predicted)
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=int)
    for true, pred in zip(majority[test], predicted):
        confusion[true, pred] += 1
    return {
        "n_mas": n_mas,
        "image_size": size,
        "test_images_per_emotion": 20,
        "train_images": int(len(train)),
        "unanimous_per_emotion": {n: int((unanimous & (majority == e)).sum()) for e, n in enumerate(EMOTIONS)},
        "cnn": {
            "epochs": epochs,
            "train_seconds": round(seconds, 1),
            "accuracy_per_emotion": cnn,
            "mean": round(float(np.mean(list(cnn.values()))), 3),
            "min": min(cnn.values()),
            "confusion_rows_true_cols_predicted": confusion.tolist(),
        },
        "logistic_regression_24px": {
            "accuracy_per_emotion": logistic,
            "mean": round(float(np.mean(list(logistic.values()))), 3),
        },
        "chance": round(1 / len(EMOTIONS), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--n", type=int, default=1000, help="images per measurement")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    parser.add_argument("--learnability", action="store_true", help="also train the tiny CNN probe")
    parser.add_argument("--mas", type=int, default=S.DEFAULT_N_MAS)
    parser.add_argument("--cnn-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
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
                    S.encode_image(image, fmt, S.DEFAULT_JPEG_QUALITY)

        return run

    results = {
        "render": _rate(n, render(None)),
        "render_jpeg": _rate(n, render("JPEG")),
        "render_png": _rate(n, render("PNG")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        n_train, n_val, n_mas = n // 2, n // 8, n - n // 2 - n // 8
        for workers in (1, 2):
            results[f"write_sample_workers{workers}"] = _rate(
                n,
                lambda: S.write_sample(
                    Path(tmp) / f"s{workers}",
                    n_train=n_train,
                    n_val=n_val,
                    n_mas=n_mas,
                    image_size=size,
                    progress=False,
                    workers=workers,
                ),
            )
        results["write_sample_workers2"].pop("images_per_s_cpu")  # the workers' CPU time is not counted
    if args.learnability:
        results["learnability"] = learnability(args.mas, args.cnn_size, args.epochs)
    report = {
        "benchmark": "synthetic sample rendering (single process)",
        "image_size": size,
        "images_per_measurement": n,
        "target_images_per_s": 200,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
