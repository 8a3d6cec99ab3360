"""Training datasets: decode-once image caches, on-the-fly decoding, seeded augmentation.

Images go through the same preprocessing as inference (face crop, resize, normalisation of
:class:`affectnetplus_hf.image_processing.AffectNetPlusImageProcessor`), so a member sees
at training time what the soft-labeler feeds it later. Augmentation then works on the normalised tensor
(colour jitter on the de-normalised copy). Every random draw of the augmentation is seeded by
``(seed, epoch, image index)``: a resumed run sees exactly the images an uninterrupted one sees, and the
result does not depend on worker processes or on which batches were skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor
from affectnetplus_hf.images import BadImageError
from affectnetplus_hf.models.configuration_affectnetplus import IMAGENET_MEAN, IMAGENET_STD
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.training.config import AugmentConfig

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


class FacePreprocessor:
    """Record → normalised ``(3, S, S)`` float tensor, exactly as the soft-labeler's image processor does it.

    Wraps :class:`affectnetplus_hf.image_processing.AffectNetPlusImageProcessor` (face crop, resize,
    normalisation); ``processor`` is a model's own processor, else one is made from ``size``,
    ``image_mean`` and ``image_std``. A record that cannot be decoded raises
    :class:`~affectnetplus_hf.images.BadImageError` naming it.
    """

    def __init__(
        self,
        size: int,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        processor: AffectNetPlusImageProcessor | None = None,
    ):
        if processor is None:
            processor = AffectNetPlusImageProcessor(
                size=int(size), image_mean=list(image_mean), image_std=list(image_std)
            )
        self.processor = processor
        self.size = processor.image_size
        self.image_mean = tuple(float(v) for v in processor.image_mean)
        self.image_std = tuple(float(v) for v in processor.image_std)

    def __call__(self, record: FaceRecord) -> torch.Tensor:
        return torch.from_numpy(self.processor.process_one(record))


def decode_records(
    records: Sequence[FaceRecord],
    preprocess: FacePreprocessor,
    skip_bad: bool = False,
    progress: bool = True,
    desc: str = "decoding images",
) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Decode every record once: ``(pixel_values (N, 3, S, S) float32, kept row indices, bad locations)``.

    A record that cannot be decoded raises :class:`~affectnetplus_hf.images.BadImageError` naming it,
    unless ``skip_bad``: then it is left out, counted and listed (warning) in the return value.
    """
    from tqdm.auto import tqdm

    tensors: list[torch.Tensor] = []
    kept: list[int] = []
    bad: list[str] = []
    for row, record in enumerate(tqdm(records, desc=desc, disable=not progress, leave=False)):
        try:
            tensors.append(preprocess(record))
            kept.append(row)
        except BadImageError as error:
            if not skip_bad:
                raise
            bad.append(f"{record.location}: {error}")
    if bad:
        logger.warning("skipped %d unreadable images: %s", len(bad), bad[:20])
    if not tensors:
        raise ValueError("no image could be decoded")
    return torch.stack(tensors), np.asarray(kept, dtype=np.int64), bad


# --------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------


class SeededAugmenter:
    """Flip, small affine warp and colour jitter of a normalised image, seeded per (seed, epoch, index)."""

    def __init__(self, config: AugmentConfig, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, seed: int = 0):
        self.config = config
        self.seed = int(seed)
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        config = self.config
        if not config.augment:
            return image
        rng = np.random.default_rng([self.seed, int(epoch), int(index), 0x417567])
        draws = rng.random(8)
        out = image
        if draws[0] < config.hflip:
            out = out.flip(-1)
        if config.rotate_degrees or config.translate or config.scale_jitter:
            side = out.shape[-1]
            angle = float((2 * draws[1] - 1) * config.rotate_degrees)
            shift = [
                int(round((2 * draws[2] - 1) * config.translate * side)),
                int(round((2 * draws[3] - 1) * config.translate * side)),
            ]
            scale = float(1 + (2 * draws[4] - 1) * config.scale_jitter)
            out = tvf.affine(
                out,
                angle=angle,
                translate=shift,
                scale=scale,
                shear=[0.0, 0.0],
                interpolation=InterpolationMode.BILINEAR,
            )
        if config.color_jitter:
            rgb = (out * self.std + self.mean).clamp(0, 1)
            rgb = tvf.adjust_brightness(rgb, float(1 + (2 * draws[5] - 1) * config.color_jitter))
            rgb = tvf.adjust_contrast(rgb, float(1 + (2 * draws[6] - 1) * config.color_jitter))
            rgb = tvf.adjust_saturation(rgb, float(1 + (2 * draws[7] - 1) * config.color_jitter))
            out = (rgb - self.mean) / self.std
        return out.contiguous()


# --------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------


class _EpochAware:
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


def _check_targets(targets: dict[str, Any], n: int) -> dict[str, torch.Tensor]:
    checked = {}
    for key, value in targets.items():
        tensor = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
        if tensor.shape[0] != n:
            raise ValueError(f"target {key!r} has {tensor.shape[0]} rows but there are {n} images; expected equal")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            row = int(torch.nonzero(~torch.isfinite(tensor.reshape(n, -1)).all(dim=1))[0])
            raise ValueError(f"target {key!r} holds a NaN/inf at row {row}")
        checked[key] = tensor
    return checked


class TensorImageDataset(_EpochAware, Dataset):
    """Images already decoded into one ``(N, 3, S, S)`` tensor, with per-row targets (tiny preset).

    Items are ``{"pixel_values": (3, S, S), **{key: targets[key][i]}}``; augmented when ``augmenter``
    is given, with the draws seeded by ``(seed, epoch, i)`` (:meth:`set_epoch`).
    """

    def __init__(
        self,
        pixel_values: torch.Tensor,
        targets: dict[str, Any] | None = None,
        augmenter: SeededAugmenter | None = None,
    ):
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be (N, C, H, W), got shape {tuple(pixel_values.shape)}")
        self.pixel_values = pixel_values
        self.targets = _check_targets(targets or {}, len(pixel_values))
        self.augmenter = augmenter

    def __len__(self) -> int:
        return len(self.pixel_values)

    def with_targets(self, targets: dict[str, Any], augmenter: SeededAugmenter | None = None) -> TensorImageDataset:
        """The same images (shared memory) with other targets, e.g. one member's one-vs-rest labels."""
        return TensorImageDataset(self.pixel_values, targets, augmenter if augmenter is not None else self.augmenter)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.pixel_values[index]
        if self.augmenter is not None:
            image = self.augmenter(image, self.epoch, index)
        item = {"pixel_values": image}
        for key, value in self.targets.items():
            item[key] = value[index]
        return item


class RecordImageDataset(_EpochAware, Dataset):
    """Images decoded on demand from FaceRecords (paper preset, large sets; works with worker processes).

    A record that cannot be decoded raises (naming it) unless ``skip_bad``: then the item carries
    ``bad=True`` and a zero image, and the loop leaves it out of the loss (it is counted and listed).
    """

    def __init__(
        self,
        records: Sequence[FaceRecord],
        preprocess: FacePreprocessor,
        targets: dict[str, Any] | None = None,
        augmenter: SeededAugmenter | None = None,
        skip_bad: bool = False,
    ):
        self.records = list(records)
        self.preprocess = preprocess
        self.targets = _check_targets(targets or {}, len(self.records))
        self.augmenter = augmenter
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.records)

    def with_targets(self, targets: dict[str, Any], augmenter: SeededAugmenter | None = None) -> RecordImageDataset:
        return RecordImageDataset(
            self.records,
            self.preprocess,
            targets,
            augmenter if augmenter is not None else self.augmenter,
            self.skip_bad,
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        bad = False
        try:
            image = self.preprocess(record)
        except BadImageError as error:
            if not self.skip_bad:
                raise
            logger.warning("skipping unreadable image %s", error)
            image = torch.zeros(3, self.preprocess.size, self.preprocess.size)
            bad = True
        if self.augmenter is not None and not bad:
            image = self.augmenter(image, self.epoch, index)
        item = {"pixel_values": image}
        if self.skip_bad:
            item["bad"] = torch.tensor(bad)
        for key, value in self.targets.items():
            item[key] = value[index]
        return item
