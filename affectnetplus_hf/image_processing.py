"""The face image processor and torch data pipeline shared by training, labeling and prediction.

* :class:`AffectNetPlusImageProcessor` — a ``transformers`` image processor (saved with every model as
  ``preprocessor_config.json``): crop the face box, resize to ``size["height"]`` × ``size["width"]``
  (bilinear), rescale to [0, 1], normalise → ``pixel_values`` ``(B, 3, H, W)`` float32;
* :class:`FaceImageDataset` / :func:`make_dataloader` — a torch ``Dataset`` over records and a
  ``DataLoader`` whose batches are ``{"pixel_values", "index", "bad"}``.

Face boxes are clamped to the image when it is decoded (:func:`clamp_box`); JPEGs that will be downscaled
are decoded in draft mode (``jpeg_draft``). Both choices: ``docs/architecture.md#images``. Image loading
lives in :mod:`affectnetplus_hf.images`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from transformers import AutoImageProcessor, BaseImageProcessor, BatchFeature

from affectnetplus_hf.images import (
    BadImageError,
    ImageSource,
    decode_image,
    describe_source,
    image_identity,
    open_image,
    read_record_bytes,
)
from affectnetplus_hf.models.configuration_affectnetplus import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AUExpressionClassifierConfig,
    BinaryExpressionClassifierConfig,
    DistributionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
    SoftLabelerConfig,
)
from affectnetplus_hf.records import FaceRecord

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 112
#: Largest square side accepted (pixels): a bigger ``size``/``image_size`` is a broken config, and one
#: resized face at 100000 px would need tens of GB.
MAX_IMAGE_SIZE = 4096

Box = tuple[float, float, float, float]


def clamp_box(box: Sequence[float] | None, width: int, height: int, where: str = "image") -> Box:
    """Clamp a face box ``(x0, y0, x1, y1)`` to a ``width`` × ``height`` image; ``None`` → whole image.

    Raises:
        ValueError: the box is not 4 finite numbers, has ``x1 <= x0`` / ``y1 <= y0``, or lies entirely
            outside the image.
    """
    if box is None:
        return (0.0, 0.0, float(width), float(height))
    values = [float(v) for v in box]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: face box must be 4 finite numbers (x0, y0, x1, y1), got {tuple(box)}")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{where}: face box {tuple(values)} is empty; expected x1 > x0 and y1 > y0")
    cx0, cy0 = max(0.0, x0), max(0.0, y0)
    cx1, cy1 = min(float(width), x1), min(float(height), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"{where}: face box {tuple(values)} lies outside the {width}x{height} image")
    return (cx0, cy0, cx1, cy1)


def _checked_framing(face_framing: dict | None) -> dict[str, dict[str, float]] | None:
    """``face_framing`` as plain JSON values, each entry checked (``ValueError`` naming the bad one)."""
    if face_framing is None:
        return None
    from affectnetplus_hf.faces.types import FaceFraming

    if not isinstance(face_framing, dict):
        raise ValueError(
            f"face_framing must map detector names to {{scale, dx, dy}}, got {type(face_framing).__name__}"
        )
    return {
        str(name): (
            value if isinstance(value, FaceFraming) else FaceFraming.from_dict(dict(value), f"face_framing[{name!r}]")
        ).to_dict()
        for name, value in face_framing.items()
    }


def _size_dict(size: int | Mapping[str, int] | None) -> dict[str, int]:
    """``size`` as transformers writes it, ``{"height": h, "width": w}``: an int (configs saved before)
    is a square side; ``{"shortest_edge": s}`` is read as the square ``s`` × ``s``."""
    if isinstance(size, Mapping):
        if set(size) == {"height", "width"}:
            sides = {"height": size["height"], "width": size["width"]}
        elif set(size) == {"shortest_edge"}:
            sides = {"height": size["shortest_edge"], "width": size["shortest_edge"]}
        else:
            raise ValueError(f"size must be {{'height': h, 'width': w}} (or one square side), got {dict(size)}")
    else:
        sides = {"height": size, "width": size}
    for side in sides.values():
        if side is None or isinstance(side, bool) or int(side) != side or int(side) < 1:
            raise ValueError(
                f"size must be a positive integer (square side in pixels) or {{'height': h, 'width': w}}, got {size!r}"
            )
        if int(side) > MAX_IMAGE_SIZE:
            raise ValueError(
                f"image size {int(side)} is too large: expected a side of at most {MAX_IMAGE_SIZE} pixels "
                "(check image_size in the model's config.json and size in preprocessor_config.json)"
            )
    return {key: int(side) for key, side in sides.items()}


class AffectNetPlusImageProcessor(BaseImageProcessor):
    r"""Face crop → resize → rescale → normalise, the preprocessing of every AffectNet+ model.

    Saved with :meth:`save_pretrained` as ``preprocessor_config.json`` and loaded back with
    :meth:`from_pretrained` (`docs/method.md#baselines`: 224 px for the paper preset; the default here, 112 px, is the
    ``tiny`` preset's). Follows transformers' conventions (``size`` dict, ``do_*`` flags); a
    ``preprocessor_config.json`` saved before, with an int ``size``, loads as that square.

    Args:
        size: ``{"height": h, "width": w}`` of the output in pixels (1 to :data:`MAX_IMAGE_SIZE` each), or
            an int for a square. The models take squares: :attr:`image_size` is the side.
        image_mean, image_std: per-channel normalisation (ImageNet defaults).
        do_crop_face: crop the face box (clamped to the image) before resizing; boxes of ``None`` use the
            whole image.
        do_resize: resize the crop to ``size`` (else it keeps its own size).
        do_rescale: multiply the pixel values by ``rescale_factor`` (default ``1/255``: [0, 1]).
        do_normalize: apply ``(x - mean) / std`` after rescaling; if False (and ``do_rescale``) the output
            is ``x / 255`` in [0, 1].
        jpeg_draft: decode JPEG files/bytes at a reduced DCT scale when they are downscaled by at least
            2 (faster, deterministic; see the module docstring).
        resample: Pillow resampling filter (default bilinear, ``Image.Resampling.BILINEAR`` = 2).
        face_framing: ``{detector name: {"scale", "dx", "dy"}}``, the framing of the training faces
            relative to each detector's boxes (`docs/method.md#face-framing`); ``None`` (every model saved
            before the face stage): the defaults measured on FER+ training faces.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: int | dict[str, int] | None = None,
        image_mean: Sequence[float] | None = IMAGENET_MEAN,
        image_std: Sequence[float] | None = IMAGENET_STD,
        do_crop_face: bool = True,
        do_resize: bool = True,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        jpeg_draft: bool = True,
        resample: int = int(Image.Resampling.BILINEAR),
        face_framing: dict[str, dict[str, float]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        self.size = _size_dict(DEFAULT_IMAGE_SIZE if size is None else size)
        self.image_mean = [float(v) for v in (image_mean if image_mean is not None else IMAGENET_MEAN)]
        self.image_std = [float(v) for v in (image_std if image_std is not None else IMAGENET_STD)]
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(f"image_mean and image_std must have 3 values, got {self.image_mean}, {self.image_std}")
        if any(v <= 0 for v in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}")
        if not (math.isfinite(float(rescale_factor)) and float(rescale_factor) > 0):
            raise ValueError(f"rescale_factor must be a positive number, got {rescale_factor!r}")
        self.do_crop_face = bool(do_crop_face)
        self.do_resize = bool(do_resize)
        self.do_rescale = bool(do_rescale)
        self.rescale_factor = float(rescale_factor)
        self.do_normalize = bool(do_normalize)
        self.jpeg_draft = bool(jpeg_draft)
        self.resample = int(resample)
        self.face_framing = _checked_framing(face_framing)

    @property
    def image_size(self) -> int:
        """Side of the square output in pixels (``size["height"] == size["width"]``), what a model's
        ``config.image_size`` must equal; ``ValueError`` for a non-square ``size``."""
        height, width = self.size["height"], self.size["width"]
        if height != width:
            raise ValueError(f"this image processor produces {height}x{width} images, not squares")
        return height

    # ------------------------------------------------------------------ single image
    def crop_and_resize(
        self, source: ImageSource, face_box: Sequence[float] | None = None, location: str | None = None
    ) -> Image.Image:
        """Decode ``source`` and return the RGB face crop, resized to ``size`` (no rescaling)."""
        where = describe_source(source, location)
        if isinstance(source, FaceRecord) and face_box is None:
            face_box = source.face_box
        image = open_image(source, where)
        box = face_box if self.do_crop_face else None
        width, height = image.size
        try:
            clamped = clamp_box(box, width, height, where)
        except ValueError as error:
            raise BadImageError(str(error)) from error
        owned = not isinstance(source, Image.Image)  # never change the mode of a caller's image object
        out_height, out_width = self.size["height"], self.size["width"]
        if self.do_resize and self.jpeg_draft and owned and image.format == "JPEG" and image.mode in ("RGB", "L"):
            crop_w, crop_h = clamped[2] - clamped[0], clamped[3] - clamped[1]
            request = (
                max(1, math.ceil(width * out_width / crop_w)),
                max(1, math.ceil(height * out_height / crop_h)),
            )
            if request[0] * 2 <= width and request[1] * 2 <= height:
                try:
                    result = image.draft(image.mode, request)
                except (OSError, ValueError) as error:
                    raise BadImageError(f"{where}: cannot decode JPEG header ({error})") from error
                if result is not None:
                    sx, sy = image.size[0] / width, image.size[1] / height
                    clamped = clamp_box(
                        (clamped[0] * sx, clamped[1] * sy, clamped[2] * sx, clamped[3] * sy),
                        image.size[0],
                        image.size[1],
                        where,
                    )
        rgb = decode_image(image, where)
        x0, y0 = int(round(clamped[0])), int(round(clamped[1]))
        x1 = min(rgb.size[0], max(x0 + 1, int(round(clamped[2]))))
        y1 = min(rgb.size[1], max(y0 + 1, int(round(clamped[3]))))
        if (x0, y0, x1, y1) != (0, 0, *rgb.size):
            rgb = rgb.crop((x0, y0, x1, y1))  # crop first: no pixel outside the box leaks into the face
        if not self.do_resize:
            return rgb
        return rgb.resize((out_width, out_height), resample=Image.Resampling(self.resample))

    def to_pixel_values(self, image: Image.Image) -> np.ndarray:
        """RGB image → ``(3, H, W)`` float32, rescaled and normalised (as the flags say)."""
        array = np.asarray(image, dtype=np.float32)
        if self.do_rescale:
            # divided by 1 / rescale_factor: for the default 1/255 an exact division by 255
            array = array / (1.0 / self.rescale_factor)
        if self.do_normalize:
            array = (array - np.asarray(self.image_mean, dtype=np.float32)) / np.asarray(
                self.image_std, dtype=np.float32
            )
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)

    def process_one(
        self, source: ImageSource, face_box: Sequence[float] | None = None, location: str | None = None
    ) -> np.ndarray:
        """One image → ``(3, H, W)`` float32 pixel values (crop, resize, rescale, normalise)."""
        return self.to_pixel_values(self.crop_and_resize(source, face_box, location))

    # ------------------------------------------------------------------ batch API
    def preprocess(  # type: ignore[override]
        self,
        images: ImageSource | Sequence[ImageSource],
        face_boxes: Sequence[Sequence[float] | None] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Images → ``BatchFeature(pixel_values=(B, 3, H, W) float32)``, ``(H, W)`` from ``size``.

        Args:
            images: one image or a list (paths, bytes, PIL images, uint8 arrays, FaceRecords). A single
                numpy array is one image.
            face_boxes: one ``(x0, y0, x1, y1)`` or ``None`` per image; ``None`` (the argument) uses each
                FaceRecord's own box and the whole image otherwise.
            return_tensors: ``"pt"`` (torch), ``"np"`` or ``None`` (numpy).
        """
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(f"AffectNetPlusImageProcessor.preprocess got unexpected arguments: {unknown}")
        if isinstance(images, (str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, FaceRecord)):
            images = [images]
            if (
                face_boxes is not None
                and len(face_boxes) == 4
                and all(isinstance(v, (int, float, np.integer, np.floating)) for v in face_boxes)
            ):
                face_boxes = [face_boxes]  # a single box for a single image
        images = list(images)
        if face_boxes is not None:
            face_boxes = list(face_boxes)
            if len(face_boxes) != len(images):
                raise ValueError(f"got {len(images)} images but {len(face_boxes)} face boxes; expected one per image")
        else:
            face_boxes = [None] * len(images)
        pixels = [self.process_one(image, box) for image, box in zip(images, face_boxes)]
        empty = (0, 3, self.size["height"], self.size["width"])
        batch = np.stack(pixels) if pixels else np.zeros(empty, dtype=np.float32)
        tensor_type = None if return_tensors in (None, "np") else return_tensors
        return BatchFeature(data={"pixel_values": batch}, tensor_type=tensor_type)

    def __call__(self, images, *args, **kwargs) -> BatchFeature:  # type: ignore[override]
        return self.preprocess(images, *args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = {key: value for key, value in self.__dict__.items() if not key.startswith("_")}
        output = {k: (list(v) if isinstance(v, tuple) else v) for k, v in output.items()}
        output["image_processor_type"] = type(self).__name__
        return output


# ---------------------------------------------------------------------- torch data pipeline
class FaceImageDataset(Dataset):
    """A map-style torch dataset over :class:`FaceRecord`\\ s: item ``i`` is the processed face of record ``i``.

    Each item is a dict ``{"pixel_values": (3, H, W) float32 tensor or None, "index": i, "bad": None or
    (image_id, reason)}``. With ``skip_bad=False`` a bad image raises :class:`BadImageError` naming the
    file; with ``skip_bad=True`` the item is marked bad and :func:`collate_faces` leaves it out of the
    batch and lists it in ``batch["bad"]`` (the consumer counts them).

    With ``with_identity=True`` each good item also carries ``"identity"``: ``(size in bytes, sha256)`` of
    the encoded image, computed from the bytes it is decoded from (the file is read once).

    With a ``finder`` (:class:`~affectnetplus_hf.faces.FaceFinder`, ``docs/method.md#face-stage``), a record
    without an annotated box or landmarks is a photo: its largest face is detected on the EXIF-upright
    image and cropped; a record with annotations is used as annotated. Each item then also carries
    ``"face_box"`` (the box used, ``None``: the whole stored image) and ``"no_face"`` (``(image_id,
    reason)`` for a photo without a face under ``no_face="skip"``, left out of the batch like a bad image).
    """

    def __init__(
        self,
        records: Iterable[FaceRecord],
        processor: AffectNetPlusImageProcessor,
        skip_bad: bool = False,
        with_identity: bool = False,
        finder=None,
        no_face: str = "skip",
    ) -> None:
        self.records = records if isinstance(records, Sequence) else list(records)
        self.processor = processor
        self.skip_bad = bool(skip_bad)
        self.with_identity = bool(with_identity)
        self.finder, self.no_face = finder, no_face

    def _process(self, record: FaceRecord) -> tuple[np.ndarray | None, tuple[int, str] | None, Any]:
        """``(pixels or None for no face, identity, face box used or None)``."""
        if self.finder is not None and record.face_box is None and record.landmarks is None:
            return self._detected(record)
        if not self.with_identity:
            return self.processor.process_one(record), None, record.face_box
        data = read_record_bytes(record)
        pixels = self.processor.process_one(data, record.face_box, location=record.location)
        return pixels, image_identity(data), record.face_box

    def _detected(self, record: FaceRecord) -> tuple[np.ndarray | None, tuple[int, str] | None, Any]:
        """A photo record through the face stage: its largest face (or the ``no_face`` policy's row)."""
        from affectnetplus_hf.faces.pipeline import photo_faces

        data = read_record_bytes(record)
        row = photo_faces(self.finder, self.processor, data, record.location, no_face=self.no_face)[0]
        return row.pixel_values, image_identity(data) if self.with_identity else None, row.box

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            pixels, identity, box = self._process(record)
        except BadImageError as error:
            if not self.skip_bad:
                raise
            logger.debug("skipping bad image %s: %s", record.image_id, error)
            return {"pixel_values": None, "index": int(index), "bad": (record.image_id, str(error))}
        item = {"pixel_values": None if pixels is None else torch.from_numpy(pixels), "index": int(index), "bad": None}
        if self.with_identity:
            item["identity"] = identity
        if self.finder is not None:
            item["face_box"] = None if box is None else tuple(float(v) for v in box)
            item["no_face"] = (
                None
                if pixels is not None
                else (record.image_id, f"{record.location}: no face found by the {self.finder.detector_name} detector")
            )
        return item


def collate_faces(items: list[dict[str, Any]], size: int | tuple[int, int] | None = None) -> dict[str, Any]:
    """Stack good items: ``{"pixel_values": (B, 3, H, W), "index": (B,) long, "bad": [(image_id, reason)]}``;
    items from a dataset with a face finder add ``"face_box"`` (per good item) and ``"no_face"``
    (``[(image_id, reason)]``, left out like bad items). ``size``: ``(H, W)`` (or a square side) of an
    empty batch."""
    detected = any("no_face" in item for item in items)
    good = [item for item in items if item["bad"] is None and item.get("no_face") is None]
    bad = [item["bad"] for item in items if item["bad"] is not None]
    if good:
        pixel_values = torch.stack([item["pixel_values"] for item in good])
    else:
        height, width = (size or 0, size or 0) if not isinstance(size, tuple) else size
        pixel_values = torch.zeros((0, 3, height, width), dtype=torch.float32)
    index = torch.tensor([item["index"] for item in good], dtype=torch.long)
    batch = {"pixel_values": pixel_values, "index": index, "bad": bad}
    if any("identity" in item for item in items):
        batch["identity"] = [item["identity"] for item in good]
    if detected:
        batch["face_box"] = [item["face_box"] for item in good]
        batch["no_face"] = [item["no_face"] for item in items if item.get("no_face") is not None]
    return batch


class _Collate:
    """Picklable collate function (for worker processes)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_faces(items, self.size)


def make_dataloader(
    records: Iterable[FaceRecord],
    processor: AffectNetPlusImageProcessor,
    batch_size: int = 32,
    num_workers: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    skip_bad: bool = False,
    drop_last: bool = False,
    with_identity: bool = False,
    finder=None,
    no_face: str = "skip",
):
    """A ``torch.utils.data.DataLoader`` over ``records`` yielding ``{"pixel_values", "index", "bad"}``
    (with a face ``finder``: also ``"face_box"``, ``"no_face"``; :class:`FaceImageDataset`).

    ``index`` holds positions into ``records`` (so labels are looked up by the consumer); ``bad`` lists
    ``(image_id, reason)`` of images left out with ``skip_bad=True``. Shuffling uses a ``torch.Generator``
    seeded with ``seed`` (same seed ⇒ same order); decoding is deterministic, so batches do not depend on
    ``num_workers``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = FaceImageDataset(
        records, processor, skip_bad=skip_bad, with_identity=with_identity, finder=finder, no_face=no_face
    )
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=_Collate((processor.size["height"], processor.size["width"])),
        generator=generator,
        drop_last=drop_last,
        persistent_workers=False,
    )


# ---------------------------------------------------------------------- photos: the face stage
class PhotoFaceDataset(Dataset):
    """A torch dataset over photo files: item ``i`` holds every face row of photo ``i``
    (:func:`affectnetplus_hf.faces.pipeline.photo_faces`: detected, aligned, framed; or a ``no_face`` /
    ``whole_image`` row), ``docs/method.md#face-stage``.

    Each item is ``{"pixel_values": (k, 3, S, S), "faces": [PhotoFace without pixels], "index": i,
    "bad": None or (path, reason)}``; ``skip_bad`` as in :class:`FaceImageDataset`.
    """

    def __init__(
        self,
        paths: Sequence[ImageSource],
        processor: AffectNetPlusImageProcessor,
        finder,
        no_face: str = "skip",
        skip_bad: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.processor, self.finder = processor, finder
        self.no_face, self.skip_bad = no_face, bool(skip_bad)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from affectnetplus_hf.faces.pipeline import photo_faces

        source = self.paths[index]
        try:
            rows = photo_faces(self.finder, self.processor, source, no_face=self.no_face)
        except BadImageError as error:
            if not self.skip_bad:
                raise
            return {
                "pixel_values": None,
                "faces": [],
                "index": int(index),
                "bad": (describe_source(source, None), str(error)),
            }
        pixels = [row.pixel_values for row in rows if row.pixel_values is not None]
        empty = (0, 3, self.processor.size["height"], self.processor.size["width"])
        stacked = np.stack(pixels) if pixels else np.zeros(empty, dtype=np.float32)
        for row in rows:
            row.pixel_values, row.crop = None, None  # the metadata travels alone
        return {"pixel_values": torch.from_numpy(stacked), "faces": rows, "index": int(index), "bad": None}


def collate_photo_faces(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"pixel_values": (B, 3, S, S), "keys": [(photo, row) per pixel row], "faces": [(photo, row,
    PhotoFace)], "bad": [...]}``: every face of the batch's photos, ``faces`` listing no-face rows too."""
    good = [item for item in items if item["bad"] is None]
    pixels, keys, faces = [], [], []
    for item in good:
        with_pixels = iter(range(item["pixel_values"].shape[0]))
        for row, face in enumerate(item["faces"]):
            faces.append((item["index"], row, face))
            if face.status != "no_face":
                next(with_pixels)
                keys.append((item["index"], row))
        pixels.append(item["pixel_values"])
    pixel_values = torch.cat(pixels) if pixels else torch.zeros((0, 3, 1, 1), dtype=torch.float32)
    return {
        "pixel_values": pixel_values,
        "keys": keys,
        "faces": faces,
        "bad": [item["bad"] for item in items if item["bad"] is not None],
    }


def make_photo_dataloader(
    paths: Sequence[ImageSource],
    processor: AffectNetPlusImageProcessor,
    finder,
    no_face: str = "skip",
    batch_size: int = 32,
    num_workers: int = 0,
    skip_bad: bool = False,
):
    """A ``DataLoader`` of :class:`PhotoFaceDataset` batches (:func:`collate_photo_faces`); ``batch_size``
    counts photos, each worker builds its own detector."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = PhotoFaceDataset(paths, processor, finder, no_face=no_face, skip_bad=skip_bad)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_photo_faces,
        persistent_workers=False,
    )


for _config_class in (
    BinaryExpressionClassifierConfig,
    AUExpressionClassifierConfig,
    DistributionClassifierConfig,
    HardFERConfig,
    SoftFERConfig,
    SoftLabelerConfig,
):
    AutoImageProcessor.register(
        _config_class, image_processor_classes={"pil": AffectNetPlusImageProcessor}, exist_ok=True
    )


__all__ = [
    "AffectNetPlusImageProcessor",
    "PhotoFaceDataset",
    "collate_photo_faces",
    "make_photo_dataloader",
    "FaceImageDataset",
    "clamp_box",
    "collate_faces",
    "make_dataloader",
]
