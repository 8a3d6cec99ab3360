"""One annotator interface for the metadata columns (paper Sec. 3.5.4, `docs/method.md#metadata`).

An :class:`Annotator` turns a batch of :class:`~affectnetplus_hf.records.FaceRecord` (and, when it asks for
them, the decoded RGB images) into columns; :mod:`affectnetplus_hf.metadata.chain` runs a chain of annotators
over records. Columns (unknown is ``None``, never a sentinel)::

    age               float >= 0 (years)         | None
    gender            one of GENDERS             | None
    ethnicity         one of ETHNICITIES         | None
    landmarks_68      (68, 2) float32, x/y px    | None   (iBUG-300W 68-point scheme)
    landmarks_28      (28, 2) float32, x/y px    | None   (LANDMARKS_28_INDICES of the 68)
    head_pose_yaw     float degrees              | None   (conventions: metadata.headpose)
    head_pose_pitch   float degrees              | None
    head_pose_roll    float degrees              | None
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..emotions import ETHNICITIES, GENDERS
from ..images import open_record_image
from ..records import FaceRecord

logger = logging.getLogger(__name__)

AGE_COLUMN = "age"
GENDER_COLUMN = "gender"
ETHNICITY_COLUMN = "ethnicity"
LANDMARKS_68_COLUMN = "landmarks_68"
LANDMARKS_28_COLUMN = "landmarks_28"
HEAD_POSE_COLUMNS: tuple[str, str, str] = ("head_pose_yaw", "head_pose_pitch", "head_pose_roll")

#: Every metadata column, in export order.
METADATA_COLUMNS: tuple[str, ...] = (
    AGE_COLUMN,
    GENDER_COLUMN,
    ETHNICITY_COLUMN,
    LANDMARKS_68_COLUMN,
    LANDMARKS_28_COLUMN,
    *HEAD_POSE_COLUMNS,
)

#: The 28-point landmark set, as indices (0-based) into the iBUG-300W 68-point scheme.
#:
#: The paper (Sec. 3.5.4) ships a 28-point set from Fard & Mahoor's model without defining it; this
#: package defines it as a fixed subset of the 68 so that it can be derived from any 68-point
#: source. The points keep what expression and pose analysis need — the brows (AU1/2/4), the lid
#: opening (AU5/7/43), the nose (AU9) and the lips (AU12/15/20/25/26) — and three outline points for
#: face width and chin (pose, normalisation)::
#:
#:     jaw   0, 8, 16                    outline ends (ear level) and chin            (3)
#:     brows 17, 19, 21 | 22, 24, 26     outer end, arch, inner end of each brow      (6)
#:     nose  27, 30, 31, 33, 35          nasion, tip, nostril wings, subnasale        (5)
#:     eyes  36, 37, 39, 41 | 42, 44, 45, 46
#:                                       both corners, upper and lower lid of each    (8)
#:     mouth 48, 51, 54, 57, 62, 66      corners, outer lip mid top/bottom,
#:                                       inner lip mid top/bottom (mouth opening)     (6)
#:
#: The set is closed under the 68 scheme's left-right mirror (0↔16, 17↔26, 19↔24, 21↔22, 31↔35,
#: 36↔45, 37↔44, 39↔42, 41↔46, 48↔54; the rest lie on the midline), so horizontal-flip augmentation
#: maps it onto itself (:data:`LANDMARKS_28_FLIP`).
LANDMARKS_28_INDICES: tuple[int, ...] = (
    0, 8, 16,
    17, 19, 21, 22, 24, 26,
    27, 30, 31, 33, 35,
    36, 37, 39, 41, 42, 44, 45, 46,
    48, 51, 54, 57, 62, 66,
)  # fmt: skip

#: Mirror partner of every iBUG-68 point (index i of a left-right flipped face is point FLIP[i]).
LANDMARKS_68_FLIP: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # lower nose
    45, 44, 43, 42, 47, 46,  # right eye -> left eye
    39, 38, 37, 36, 41, 40,  # left eye -> right eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)  # fmt: skip

#: Mirror partner, as a position in the 28-point set, of every 28-point landmark.
LANDMARKS_28_FLIP: tuple[int, ...] = tuple(
    LANDMARKS_28_INDICES.index(LANDMARKS_68_FLIP[i]) for i in LANDMARKS_28_INDICES
)

#: Key of ``known`` holding ``(width, height)`` per record for annotators that need image sizes.
IMAGE_SIZE_KEY = "_image_size"

#: iBUG-68 outer eye corners, used to normalise landmark errors (inter-ocular NME).
OUTER_EYE_CORNERS: tuple[int, int] = (36, 45)


def landmarks_28_from_68(landmarks_68: np.ndarray) -> np.ndarray:
    """Derive the 28-point set (:data:`LANDMARKS_28_INDICES`) from ``(..., 68, 2)`` landmarks."""
    points = np.asarray(landmarks_68)
    if points.shape[-2:] != (68, 2):
        raise ValueError(f"expected landmarks of shape (..., 68, 2), got {points.shape}")
    return np.ascontiguousarray(points[..., list(LANDMARKS_28_INDICES), :]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# value validation


def parse_landmarks(value: Any, n_points: int = 68, *, where: str = "") -> np.ndarray:
    """Turn ``value`` (an ``(n, 2)`` array, a flat sequence of ``2n`` numbers, or the
    ``"x0;y0;x1;y1;..."`` string of the synthetic sample / CSV import) into ``(n, 2)`` float32.

    Raises ``ValueError`` naming ``where`` for a wrong count, a non-number or a non-finite value.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, str):
        text = value.strip()
        parts = [p for p in text.replace(",", ";").replace(" ", ";").split(";") if p != ""]
        try:
            flat = np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError as err:
            raise ValueError(
                f"{prefix}landmarks must be {2 * n_points} numbers separated by ';', got {text[:80]!r}"
            ) from err
    else:
        try:
            flat = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{prefix}landmarks must be numbers, got {type(value).__name__}") from err
    if flat.size != 2 * n_points:
        raise ValueError(
            f"{prefix}landmarks must have {2 * n_points} numbers ({n_points} x/y points), got {flat.size}"
        )
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"{prefix}landmarks contain NaN or infinite values")
    return flat.reshape(n_points, 2).astype(np.float32)


def validate_value(column: str, value: Any, *, where: str = "") -> Any:
    """Check and normalise one cell of a metadata column; ``None`` passes through.

    Returns the normalised value (float for age/pose, str for gender/ethnicity, float32 arrays for
    landmarks); raises ``ValueError`` naming ``where`` and what was expected otherwise.
    """
    if value is None:
        return None
    prefix = f"{where}: " if where else ""
    if column == AGE_COLUMN:
        age = _finite_float(value, column, prefix)
        if age < 0:
            raise ValueError(f"{prefix}age must be a number >= 0, got {value!r}")
        return age
    if column == GENDER_COLUMN:
        if value not in GENDERS:
            raise ValueError(f"{prefix}gender must be one of {list(GENDERS)}, got {value!r}")
        return str(value)
    if column == ETHNICITY_COLUMN:
        if value not in ETHNICITIES:
            raise ValueError(f"{prefix}ethnicity must be one of {list(ETHNICITIES)}, got {value!r}")
        return str(value)
    if column == LANDMARKS_68_COLUMN:
        return parse_landmarks(value, 68, where=where)
    if column == LANDMARKS_28_COLUMN:
        return parse_landmarks(value, 28, where=where)
    if column in HEAD_POSE_COLUMNS:
        angle = _finite_float(value, column, prefix)
        if not -180.0 <= angle <= 180.0:
            raise ValueError(f"{prefix}{column} must be degrees in [-180, 180], got {value!r}")
        return angle
    raise ValueError(f"{prefix}unknown metadata column {column!r}; expected one of {list(METADATA_COLUMNS)}")


def _finite_float(value: Any, column: str, prefix: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{prefix}{column} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{prefix}{column} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ValueError(f"{prefix}{column} must be a finite number, got {value!r}")
    return number


# --------------------------------------------------------------------------------------------
# images


def load_rgb_image(record: FaceRecord) -> np.ndarray:
    """A record's whole image as an ``(H, W, 3)`` uint8 RGB array.

    Raises :class:`~affectnetplus_hf.images.BadImageError` naming the record (a
    ``MissingImageError``, also a ``FileNotFoundError``, for a missing file).
    """
    return np.asarray(open_record_image(record))


def read_image_size(record: FaceRecord) -> tuple[int, int]:
    """``(width, height)`` of a record's image, reading only the header; errors as :func:`load_rgb_image`."""
    with open_record_image(record, decode=False) as image:
        return image.size


# --------------------------------------------------------------------------------------------
# the interface


class Annotator(ABC):
    """Fills some metadata columns for a batch of records.

    Subclasses set :attr:`name`, :attr:`columns` (what they fill), :attr:`needs_images` (whether
    :meth:`annotate_batch` receives decoded RGB images), :attr:`needs_image_size` (whether
    ``known[IMAGE_SIZE_KEY]`` holds each image's ``(width, height)``, read from the file header
    when the pixels are not needed) and :attr:`requires` (columns an earlier
    annotator must provide, e.g. ``landmarks_68`` for head pose), and implement
    :meth:`annotate_batch`. Heavy dependencies are imported in ``__init__``/first use, never at
    module import.
    """

    name: str = ""
    columns: tuple[str, ...] = ()
    needs_images: bool = False
    needs_image_size: bool = False
    requires: tuple[str, ...] = ()

    @abstractmethod
    def annotate_batch(
        self,
        records: Sequence[FaceRecord],
        images: Sequence[np.ndarray] | None,
        known: dict[str, list[Any]],
    ) -> dict[str, list[Any]]:
        """Return ``{column: values}`` for some of :attr:`columns`, each list aligned with
        ``records``; ``None`` where the value is unknown (e.g. no face found).

        Args:
            records: the batch.
            images: ``(H, W, 3)`` uint8 RGB arrays aligned with ``records`` when
                :attr:`needs_images`, else ``None``.
            known: the columns filled so far by earlier annotators (same alignment; read-only),
                plus ``IMAGE_SIZE_KEY`` when :attr:`needs_images` or :attr:`needs_image_size`.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MetadataColumns(dict):
    """``{column: list}`` for :data:`METADATA_COLUMNS` plus ``image_id``, aligned with the
    records; :attr:`skipped` lists ``(image_id, reason)`` of records whose image could not be read
    when :func:`annotate` ran with ``on_error="skip"`` (the cells of annotators that need the
    image or its size are null for them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[tuple[str, str]] = []

    def to_arrow(self):
        """A ``pyarrow.Table`` (landmarks as ``list<list<float32>>``) for ``datasets``/parquet."""
        import pyarrow as pa

        arrays = {}
        for column, values in self.items():
            if column in (LANDMARKS_68_COLUMN, LANDMARKS_28_COLUMN):
                arrays[column] = pa.array(
                    [None if v is None else np.asarray(v, np.float32).tolist() for v in values],
                    type=pa.list_(pa.list_(pa.float32(), 2)),
                )
            elif column in (GENDER_COLUMN, ETHNICITY_COLUMN, "image_id"):
                arrays[column] = pa.array(values, type=pa.string())
            else:
                arrays[column] = pa.array(values, type=pa.float32())
        return pa.table(arrays)


def metadata_features():
    """``datasets.Features`` of the metadata columns (for the dataset export)."""
    from datasets import Features, Value
    from datasets import Sequence as HFSequence

    def points(n: int):
        return HFSequence(HFSequence(Value("float32"), length=2), length=n)

    return Features(
        {
            AGE_COLUMN: Value("float32"),
            GENDER_COLUMN: Value("string"),
            ETHNICITY_COLUMN: Value("string"),
            LANDMARKS_68_COLUMN: points(68),
            LANDMARKS_28_COLUMN: points(28),
            **{c: Value("float32") for c in HEAD_POSE_COLUMNS},
        }
    )
