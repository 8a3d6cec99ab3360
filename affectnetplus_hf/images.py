"""Image loading: every image input, and every :class:`~affectnetplus_hf.records.FaceRecord`, to an RGB image.

* :func:`open_record_image` — a record's image (its ``image_bytes``, else its ``image_path`` file), the
  one record → image loader of the package; :func:`read_record_bytes` gives the encoded bytes
  themselves and :func:`image_identity` their ``(size, sha256)``;
* :func:`load_image` — any image input (path, encoded bytes, PIL image, ``uint8`` numpy array,
  record) → RGB :class:`PIL.Image.Image`, fully decoded.

Every failure raises :class:`BadImageError` naming the image and the reason. Colour modes and EXIF
orientation: ``docs/architecture.md#images``. Needs only Pillow and numpy.
"""

from __future__ import annotations

import hashlib
import io
import os
from struct import error as struct_error
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from affectnetplus_hf.records import FaceRecord

ImageSource = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | FaceRecord


class BadImageError(ValueError):
    """An image that cannot be used: missing file, truncated or corrupt data, unsupported array.

    The message starts with the image's location (file path, record location or given name).
    """


class MissingImageError(BadImageError, FileNotFoundError):
    """A :class:`BadImageError` for an image file that does not exist (also a ``FileNotFoundError``)."""


def describe_source(source: Any, location: str | None) -> str:
    """How error messages name an image input: ``location`` if given, else the path, record location or kind."""
    if location:
        return str(location)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, FaceRecord):
        return source.location
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} image bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (see the module docstring for the 16-bit rule)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I"):  # I, I;16, I;16B, I;16L, I;16N
        values = np.asarray(image, dtype=np.float64)
        grey = np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        grey = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0, 255)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def _array_to_image(array: np.ndarray, where: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise BadImageError(f"{where}: expected a uint8 array (H, W) or (H, W, 3), got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), mode="RGB")
    channels = array.shape[2] if array.ndim == 3 else None
    raise BadImageError(
        f"{where}: expected an array of shape (H, W) or (H, W, 3) (channels last, 1 or 3 channels), "
        f"got shape {array.shape}" + (f" with {channels} channels" if channels is not None else "")
    )


def _record_source(record: FaceRecord, where: str) -> bytes | str:
    """Where a record's image is: its ``image_bytes`` if it has them, else its ``image_path``."""
    if record.image_bytes is not None:
        return bytes(record.image_bytes)
    if record.image_path is not None:
        return record.image_path
    raise BadImageError(f"{where}: record has neither image_path nor image_bytes")


def read_record_bytes(record: FaceRecord) -> bytes:
    """The encoded image of ``record``: its ``image_bytes``, else its ``image_path`` file read whole.

    Raises:
        MissingImageError: the file does not exist.
        BadImageError: the record has no image, or the file cannot be read.
    """
    source = _record_source(record, record.location)
    if isinstance(source, bytes):
        return source
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise MissingImageError(f"{record.location}: image file missing (no such file)") from None
    except OSError as error:
        raise BadImageError(f"{record.location}: cannot read image file ({error})") from error


def image_identity(data: bytes) -> tuple[int, str]:
    """``(size in bytes, sha256 hex digest)`` of encoded image bytes: how a label run recognises its images."""
    return len(data), hashlib.sha256(data).hexdigest()


def _open_encoded(source: Any, where: str) -> Image.Image:
    """Open a path or encoded bytes lazily (header only)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream: Any = io.BytesIO(bytes(source))
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MissingImageError(f"{where}: image file missing (no such file)")
        stream = path
    try:
        return Image.open(stream)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadImageError(f"{where}: not a readable image ({type(error).__name__}: {error})") from error


def open_record_image(record: FaceRecord, *, decode: bool = True, location: str | None = None) -> Image.Image:
    """Open ``record``'s image, whole (no face crop): its ``image_bytes``, else its ``image_path`` file.

    Args:
        record: the record.
        decode: True → fully decoded 8-bit RGB image (as :func:`load_image`); False → opened lazily,
            header only (size, format, JPEG draft mode), in its own mode; close it when done.
        location: name used in error messages (default ``record.location``).

    Raises:
        MissingImageError: the file does not exist (a :class:`BadImageError` and a ``FileNotFoundError``).
        BadImageError: no image in the record, unreadable, truncated or corrupt data, or an image larger
            than Pillow's decompression-bomb limit.
    """
    where = location or record.location
    image = _open_encoded(_record_source(record, where), where)
    return decode_image(image, where) if decode else image


def open_image(source: ImageSource, location: str | None = None) -> Image.Image:
    """Open ``source`` lazily (header only) as a PIL image without converting it.

    Used by :func:`load_image` and by the draft-mode path; raises :class:`BadImageError` when the file
    is missing or is not an image. Arrays and PIL images are returned as images directly.
    """
    if isinstance(source, FaceRecord):
        return open_record_image(source, decode=False, location=location)
    where = describe_source(source, location)
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _array_to_image(source, where)
    if not isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        raise BadImageError(
            f"{where}: unsupported image input {type(source).__name__}; expected a path, encoded bytes, "
            "a PIL image, a uint8 numpy array or a FaceRecord"
        )
    return _open_encoded(source, where)


def decode_image(image: Image.Image, where: str) -> Image.Image:
    """Fully decode a lazily opened image into 8-bit RGB; :class:`BadImageError` naming ``where`` if corrupt."""
    try:
        image.load()
        return _to_rgb(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise BadImageError(
            f"{where}: cannot decode image, truncated or corrupt ({type(error).__name__}: {error})"
        ) from error


def upright_image(image: Image.Image, where: str = "image") -> Image.Image:
    """``image`` turned as its EXIF orientation tag says (tags 2-8; no tag or 1: unchanged), fully decoded.

    The EXIF block is read from the image's header; a corrupt one is a :class:`BadImageError` naming
    ``where``.
    """
    try:
        orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, TypeError, struct_error) as error:
        raise BadImageError(f"{where}: unreadable EXIF block ({type(error).__name__}: {error})") from error
    if orientation in (None, 1):
        return image
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise BadImageError(
            f"{where}: cannot decode image, truncated or corrupt ({type(error).__name__}: {error})"
        ) from error


def load_image(source: ImageSource, location: str | None = None, *, upright: bool = False) -> Image.Image:
    """Load any image input as a fully decoded RGB PIL image.

    Args:
        source: a file path, encoded image bytes (PNG/JPEG/...), a PIL image, a ``uint8`` numpy array
            ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (RGB), or a :class:`FaceRecord` (its
            ``image_path`` or ``image_bytes``).
        location: name used in error messages (default: the path / record location).
        upright: apply the EXIF orientation tag (:func:`upright_image`); the default keeps the stored
            pixel grid, which label-file annotations refer to.

    Raises:
        BadImageError: the file is missing, the data is truncated or corrupt (decoding is forced with
            ``img.load()``), or an array has the wrong dtype or channel count.
    """
    where = describe_source(source, location)
    image = open_image(source, location)
    if upright:
        image = upright_image(image, where)
    return decode_image(image, where)


__all__ = [
    "BadImageError",
    "ImageSource",
    "MissingImageError",
    "decode_image",
    "describe_source",
    "image_identity",
    "load_image",
    "open_image",
    "open_record_image",
    "read_record_bytes",
    "upright_image",
]
