"""Writing the synthetic sample to disk in AffectNet's own layouts (:func:`write_sample`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.run_folder import RunFolder
from affectnetplus_hf.sources.affectnet import CSV_COLUMNS as AFFECTNET_CSV_COLUMNS
from affectnetplus_hf.sources.affectnet import (
    CSV_IMAGE_DIRS,
    CSV_LIST_DIR,
    CSV_SPLIT_FILES,
    NPY_SPLIT_DIRS,
)
from affectnetplus_hf.sources.synthetic import (
    GROUND_TRUTH,
    GROUND_TRUTH_COLUMNS,
    MULTI_ANNOTATED_DIR,
    SAMPLE_INFO,
    SAMPLE_KIND,
)
from affectnetplus_hf.synthetic.annotators import AnnotatorPool
from affectnetplus_hf.synthetic.config import (
    DEFAULT_BLEND_FRACTION,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_N_ANNOTATORS,
    DEFAULT_N_MAS,
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    DEFAULT_VA_MISSING_FRACTION,
    SAMPLE_VERSION,
)
from affectnetplus_hf.synthetic.contact_sheet import save_contact_sheet
from affectnetplus_hf.synthetic.items import SampleSpec, make_item

logger = logging.getLogger(__name__)

VOTES_COLUMNS: tuple[str, ...] = ("image", "split", *EMOTIONS)
ANNOTATIONS_COLUMNS: tuple[str, ...] = ("image", "annotator", "label")
AFFECTNET_IMAGE_DIR = CSV_IMAGE_DIRS[0]

#: One rendering job: ``(seed, part, split, index, image_size, pool, n_annotators, blend_fraction,
#: va_missing_fraction, image format, jpeg_quality)`` (a tuple, so that it pickles to worker processes).
RenderTask = tuple[int, str, str, int, int, AnnotatorPool, int, float, float, str, int]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def encode_image(image: Image.Image, image_format: str, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """The bytes of ``image`` as the sample stores it: ``"JPEG"`` (the AffectNet part) or ``"PNG"``."""
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=False, subsampling=2)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _render_task(task: RenderTask) -> tuple[SampleSpec, bytes]:
    (
        seed,
        part,
        split,
        index,
        image_size,
        pool,
        n_annotators,
        blend_fraction,
        va_missing,
        image_format,
        jpeg_quality,
    ) = task
    spec, image = make_item(seed, part, index, image_size, pool, n_annotators, blend_fraction, va_missing, split)
    return spec, encode_image(image, image_format, jpeg_quality)


def _render_all(tasks: list[RenderTask], workers: int, progress: bool) -> list[tuple[SampleSpec, bytes]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="rendering synthetic faces", unit="img", disable=not progress)
    results: list[tuple[SampleSpec, bytes]] = []
    if workers == 1:
        for task in tasks:
            results.append(_render_task(task))
            bar.update(1)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as process_pool:
            for result in process_pool.imap(_render_task, tasks, chunksize=16):
                results.append(result)
                bar.update(1)
    bar.close()
    return results


def _affectnet_name(seed: int, split: str, index: int) -> tuple[str, str]:
    """(subDirectory, file name) looking like AffectNet's: numbered folder, 56 hex digits + .jpg."""
    digest = hashlib.sha224(f"affectnetplus-synthetic:{seed}:{split}:{index}".encode()).hexdigest()
    return str(1 + int(digest[:8], 16) % 40), f"{digest}.jpg"


def _npy_numbers(seed: int, split: str, count: int) -> list[int]:
    """Non-contiguous image numbers (AffectNet's npy release skips numbers too)."""
    rng = np.random.default_rng([int(seed), 4242, 1 if split == "train" else 3])
    steps = rng.choice([1, 1, 1, 2, 3], size=count)
    return (np.cumsum(steps) - 1).tolist()


def _format_landmarks(landmarks: np.ndarray, decimals: int) -> str:
    return ";".join(f"{v:.{decimals}f}" for v in np.asarray(landmarks, dtype=np.float64).reshape(-1))


def _format_va(value: float | None) -> str:
    return "-2" if value is None else f"{value:.6f}"


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


@dataclass(frozen=True)
class SampleSettings:
    """The checked arguments of :func:`write_sample`; all but ``workers`` decide the files (:meth:`identity`)."""

    layout: str
    n_train: int
    n_val: int
    seed: int
    image_size: int
    n_mas: int
    n_annotators: int
    blend_fraction: float
    annotator_pool_size: int
    va_missing_fraction: float
    jpeg_quality: int
    contact_sheet: bool
    workers: int = 1

    @classmethod
    def checked(
        cls,
        *,
        layout: str,
        n_train: Any,
        n_val: Any,
        seed: Any,
        image_size: Any,
        n_mas: Any,
        n_annotators: Any,
        blend_fraction: float,
        annotator_pool_size: Any,
        va_missing_fraction: float,
        jpeg_quality: Any,
        contact_sheet: bool,
        workers: Any,
    ) -> SampleSettings:
        """The settings, each checked (``ValueError`` naming the first wrong one)."""
        if layout not in ("csv", "npy"):
            raise ValueError(f"layout must be 'csv' or 'npy', got {layout!r}")
        n_train = _check_int("n_train", n_train, 0)
        n_val = _check_int("n_val", n_val, 0)
        n_mas = _check_int("n_mas", n_mas, 0)
        n_annotators = _check_int("n_annotators", n_annotators, 1)
        image_size = _check_int("image_size", image_size, 32)
        seed = _check_int("seed", seed, 0)
        workers = _check_int("workers", workers, 1)
        jpeg_quality = _check_int("jpeg_quality", jpeg_quality, 1)
        if n_train + n_val + n_mas == 0:
            raise ValueError("the sample would be empty: n_train + n_val + n_mas must be > 0")
        if n_mas > 0 and n_annotators < 2:
            raise ValueError(f"a multi-annotated part needs n_annotators >= 2, got {n_annotators}")
        if not 0.0 <= blend_fraction <= 1.0:
            raise ValueError(f"blend_fraction must be in [0, 1], got {blend_fraction}")
        if not 0.0 <= va_missing_fraction <= 1.0:
            raise ValueError(f"va_missing_fraction must be in [0, 1], got {va_missing_fraction}")
        pool_size = annotator_pool_size if annotator_pool_size is not None else max(3 * n_annotators, 12)
        pool_size = _check_int("annotator_pool_size", pool_size, max(n_annotators, 1))
        return cls(
            layout,
            n_train,
            n_val,
            seed,
            image_size,
            n_mas,
            n_annotators,
            blend_fraction,
            pool_size,
            va_missing_fraction,
            jpeg_quality,
            bool(contact_sheet),
            workers,
        )

    def identity(self) -> dict[str, Any]:
        """The sample folder's run-folder identity (the settings that decide its files)."""
        return {
            "layout": self.layout,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "seed": self.seed,
            "image_size": self.image_size,
            "n_mas": self.n_mas,
            "n_annotators": self.n_annotators,
            "blend_fraction": self.blend_fraction,
            "annotator_pool_size": self.annotator_pool_size,
            "va_missing_fraction": self.va_missing_fraction,
            "jpeg_quality": self.jpeg_quality,
            "contact_sheet": self.contact_sheet,
        }

    def render_tasks(self, pool: AnnotatorPool) -> list[RenderTask]:
        """One rendering job per image: the AffectNet part's train and validation images, then the
        multi-annotated part."""
        tasks: list[RenderTask] = []
        for part, split, count in (
            ("affectnet", "train", self.n_train),
            ("affectnet", "validation", self.n_val),
            ("multi_annotated", "train", self.n_mas),
        ):
            image_format = "JPEG" if part == "affectnet" else "PNG"
            tasks += [
                (
                    self.seed,
                    part,
                    split,
                    i,
                    self.image_size,
                    pool,
                    self.n_annotators,
                    self.blend_fraction,
                    self.va_missing_fraction,
                    image_format,
                    self.jpeg_quality,
                )
                for i in range(count)
            ]
        return tasks


def write_sample(
    directory: str | os.PathLike,
    layout: Literal["csv", "npy"] = "csv",
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    n_mas: int = DEFAULT_N_MAS,
    n_annotators: int = DEFAULT_N_ANNOTATORS,
    *,
    blend_fraction: float = DEFAULT_BLEND_FRACTION,
    annotator_pool_size: int | None = None,
    va_missing_fraction: float = DEFAULT_VA_MISSING_FRACTION,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    workers: int = 1,
    overwrite: bool = False,
    contact_sheet: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Render and write the synthetic sample into ``directory``; returns the ``sample_info.json`` content.

    Layout (the on-disk contract every reader relies on):

    * ``sample_info.json``: kind, version, layout, seed, image_size, n_train, n_val, n_mas, n_annotators
      (what the readers recognise a sample by: :func:`affectnetplus_hf.sources.synthetic.detect_layout`).
    * AffectNet part (single annotator: hard label, valence/arousal, landmarks, face box), JPEG images:
      ``layout="csv"``: ``Manually_Annotated_file_lists/{training,validation}.csv`` with AffectNet's columns
      and ``Manually_Annotated_Images/<subDirectory_filePath>``; ``layout="npy"``:
      ``{train_set,val_set}/images/N.jpg`` and ``annotations/N_{exp,val,aro,lnd}.npy`` (``_exp``, ``_val``,
      ``_aro`` are numpy string scalars like AffectNet's, ``_lnd`` 136 float64; N not contiguous).
      A fraction ``va_missing_fraction`` of images has valence/arousal -2 (not annotated).
    * Multi-annotated part: ``multi_annotated/images/mas_NNNNN.png``, ``multi_annotated/votes.csv``
      (image, split, one count column per emotion) and ``multi_annotated/annotations.csv`` (image,
      annotator, label) with ``n_annotators`` votes per image. All of it is in split ``"train"``: the
      test-MAS is selected from it (``docs/method.md#mas-split``).
    * ``ground_truth.csv``: image_id, part, split, the 8 soft-label columns
      (:func:`~affectnetplus_hf.synthetic.expressions.soft_label_of`), primary, secondary, blend_weight (the
      secondary's weight), intensity (the expression intensity; below 1 its missing share is on Neutral),
      yaw, pitch, roll (degrees), landmarks (136 floats); read by
      :func:`affectnetplus_hf.sources.synthetic.read_ground_truth`.
    * ``sample_grid.png``: contact sheet, one row per emotion.

    ``directory`` is a run folder of kind ``"sample"`` (marker ``.affectnetplus-run.json`` holding
    :meth:`SampleSettings.identity`): locked while it is written (a second writer stops at once), it must be
    absent or empty, or hold a sample this function wrote, which is replaced only with ``overwrite`` (else
    :class:`~affectnetplus_hf.run_folder.RunFolderError`, a ``ValueError``); a folder with other files is never
    replaced. The sample is written under a temporary name and renamed when complete. Same arguments =>
    byte-identical files, whatever ``workers``.
    """
    settings = SampleSettings.checked(
        layout=layout,
        n_train=n_train,
        n_val=n_val,
        seed=seed,
        image_size=image_size,
        n_mas=n_mas,
        n_annotators=n_annotators,
        blend_fraction=blend_fraction,
        annotator_pool_size=annotator_pool_size,
        va_missing_fraction=va_missing_fraction,
        jpeg_quality=jpeg_quality,
        contact_sheet=contact_sheet,
        workers=workers,
    )
    with RunFolder(directory, "sample", settings.identity(), version=SAMPLE_VERSION) as folder:
        folder.start(overwrite=overwrite, resume=False)
        return _write_sample(folder, settings, progress)


def _write_sample(folder: RunFolder, settings: SampleSettings, progress: bool) -> dict[str, Any]:
    """Render every image and publish the sample into ``folder`` (locked and checked by the caller)."""
    pool = AnnotatorPool.create(settings.annotator_pool_size, settings.seed)
    tasks = settings.render_tasks(pool)
    with folder.publish() as staging:
        results = _render_all(tasks, settings.workers, progress)
        info = _write_files(staging, settings, results, pool)
        if settings.contact_sheet:
            save_contact_sheet(staging, staging / "sample_grid.png", specs=[spec for spec, _ in results])
    logger.info("wrote the synthetic sample (%d images, layout %s) to %s", len(results), settings.layout, folder.path)
    return info


@dataclass
class _SampleFiles:
    """The images and label rows of a sample being written into ``root`` (:func:`_write_files`)."""

    root: Path
    settings: SampleSettings
    affectnet_rows: dict[str, list[list[Any]]] = field(default_factory=lambda: {"train": [], "validation": []})
    npy_numbers: dict[str, list[int]] = field(default_factory=dict)
    vote_rows: list[list[Any]] = field(default_factory=list)
    annotation_rows: list[list[Any]] = field(default_factory=list)
    truth_rows: list[list[Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=lambda: {"train": 0, "validation": 0, "mas": 0})

    def __post_init__(self) -> None:
        seed = self.settings.seed
        self.npy_numbers = {
            "train": _npy_numbers(seed, "train", self.settings.n_train),
            "validation": _npy_numbers(seed, "validation", self.settings.n_val),
        }

    def add(self, spec: SampleSpec, data: bytes) -> None:
        """Name ``spec`` (its ``image_id``), write its image and note its label rows."""
        if spec.part == "affectnet":
            self._add_affectnet(spec)
        else:
            self._add_multi_annotated(spec)
        path = self.root / spec.image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.truth_rows.append(
            [
                spec.image_id,
                spec.part,
                spec.split,
                *(f"{v:.4f}" for v in spec.soft_label),
                spec.primary_name,
                spec.secondary_name or "",
                f"{spec.blend_weight:.4f}",
                f"{spec.intensity:.4f}",
                f"{spec.yaw:.3f}",
                f"{spec.pitch:.3f}",
                f"{spec.roll:.3f}",
                _format_landmarks(spec.landmarks, 3),
            ]
        )

    def _add_affectnet(self, spec: SampleSpec) -> None:
        """An AffectNet-part image: a row of its split's CSV list, or its four ``.npy`` annotation files."""
        k = self.counters[spec.split]
        self.counters[spec.split] += 1
        if self.settings.layout == "csv":
            subdirectory, name = _affectnet_name(self.settings.seed, spec.split, k)
            relative = f"{subdirectory}/{name}"
            spec.image_id = f"{AFFECTNET_IMAGE_DIR}/{relative}"
            box = spec.face_box
            self.affectnet_rows[spec.split].append(
                [
                    relative,
                    box[0],
                    box[1],
                    box[2],
                    box[3],
                    _format_landmarks(spec.landmarks, 2),
                    spec.hard_label,
                    _format_va(spec.valence),
                    _format_va(spec.arousal),
                ]
            )
            return
        folder = NPY_SPLIT_DIRS[spec.split]
        number = self.npy_numbers[spec.split][k]
        spec.image_id = f"{folder}/images/{number}.jpg"
        annotations = self.root / folder / "annotations"
        annotations.mkdir(parents=True, exist_ok=True)
        np.save(annotations / f"{number}_exp.npy", np.array(str(spec.hard_label)))
        np.save(annotations / f"{number}_val.npy", np.array(_format_va(spec.valence)))
        np.save(annotations / f"{number}_aro.npy", np.array(_format_va(spec.arousal)))
        np.save(annotations / f"{number}_lnd.npy", np.round(spec.landmarks.astype(np.float64).reshape(-1), 2))

    def _add_multi_annotated(self, spec: SampleSpec) -> None:
        """A multi-annotated image: its row of ``votes.csv`` and one row of ``annotations.csv`` per vote."""
        k = self.counters["mas"]
        self.counters["mas"] += 1
        relative = f"images/mas_{k:05d}.png"
        spec.image_id = f"{MULTI_ANNOTATED_DIR}/{relative}"
        self.vote_rows.append([relative, spec.split, *(int(v) for v in spec.votes)])
        self.annotation_rows += [
            [relative, name, EMOTIONS[label]] for name, label in zip(spec.annotators, spec.labels)
        ]

    def write_label_files(self) -> None:
        """The AffectNet lists (header-only when a split is empty, so that the layout is recognisable) or
        ``npy`` folders, the multi-annotated part's CSV files and ``ground_truth.csv``."""
        root = self.root
        if self.settings.layout == "csv":
            (root / AFFECTNET_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
            for split, name in CSV_SPLIT_FILES.items():
                _write_csv(root / CSV_LIST_DIR / name, AFFECTNET_CSV_COLUMNS, self.affectnet_rows[split])
        else:
            for folder in NPY_SPLIT_DIRS.values():
                (root / folder / "images").mkdir(parents=True, exist_ok=True)
                (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
        if self.settings.n_mas > 0:
            _write_csv(root / MULTI_ANNOTATED_DIR / "votes.csv", VOTES_COLUMNS, self.vote_rows)
            _write_csv(root / MULTI_ANNOTATED_DIR / "annotations.csv", ANNOTATIONS_COLUMNS, self.annotation_rows)
        _write_csv(root / GROUND_TRUTH, GROUND_TRUTH_COLUMNS, self.truth_rows)


def _write_files(
    root: Path, settings: SampleSettings, results: list[tuple[SampleSpec, bytes]], pool: AnnotatorPool
) -> dict[str, Any]:
    """Write the images, label files, ground truth and ``sample_info.json``; fills each spec's ``image_id``."""
    files = _SampleFiles(root, settings)
    for spec, data in results:
        files.add(spec, data)
    files.write_label_files()
    info = _sample_info(settings, pool, [spec for spec, _ in results])
    (root / SAMPLE_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _sample_info(settings: SampleSettings, pool: AnnotatorPool, specs: list[SampleSpec]) -> dict[str, Any]:
    """The content of ``sample_info.json``."""
    counts = {
        name: int(sum(1 for s in specs if s.primary == e and s.secondary is None)) for e, name in enumerate(EMOTIONS)
    }
    counts["blends"] = int(sum(1 for s in specs if s.secondary is not None))
    return {
        "kind": SAMPLE_KIND,
        "version": SAMPLE_VERSION,
        "layout": settings.layout,
        "seed": settings.seed,
        "image_size": settings.image_size,
        "n_train": settings.n_train,
        "n_val": settings.n_val,
        "n_mas": settings.n_mas,
        "n_annotators": settings.n_annotators,
        "blend_fraction": settings.blend_fraction,
        "annotator_pool": len(pool.names),
        "jpeg_quality": settings.jpeg_quality,
        "emotions": list(EMOTIONS),
        "pure_images_per_emotion": counts,
        "label_noise": label_noise(specs),
    }


def label_noise(specs: list[SampleSpec]) -> dict[str, float | None]:
    """How noisy the simulated annotators are, to compare with real data (``sample_info.json``).

    ``pairwise_agreement``: share of agreeing annotator pairs over the multi-annotated images;
    ``hard_label_matches_truth``: share of AffectNet-part images whose hard label is the largest emotion
    of the ground-truth soft label. ``None`` when a part is empty.
    """
    pairs = [
        a == b for s in specs if s.part == "multi_annotated" for i, a in enumerate(s.labels) for b in s.labels[i + 1 :]
    ]
    hard = [s.hard_label == int(np.argmax(s.soft_label)) for s in specs if s.part == "affectnet"]
    return {
        "pairwise_agreement": round(float(np.mean(pairs)), 4) if pairs else None,
        "hard_label_matches_truth": round(float(np.mean(hard)), 4) if hard else None,
    }


__all__ = ["ANNOTATIONS_COLUMNS", "VOTES_COLUMNS", "SampleSettings", "encode_image", "label_noise", "write_sample"]
