"""Metadata annotators for paper Sec. 3.5.4: age, gender, ethnicity, 68/28 landmarks, head pose.

Typical use::

    from affectnetplus_hf.metadata import annotate
    columns = annotate(records, "synthetic,solvepnp", batch_size=64)   # or "passthrough,dlib,solvepnp"
    columns["head_pose_yaw"]  # list aligned with records, None where unknown

Backends import their heavy dependencies only when built (see :mod:`.registry` for the names and
the optional extras they need).
"""

from __future__ import annotations

from .base import (
    AGE_COLUMN,
    ETHNICITY_COLUMN,
    GENDER_COLUMN,
    HEAD_POSE_COLUMNS,
    IMAGE_SIZE_KEY,
    LANDMARKS_28_COLUMN,
    LANDMARKS_28_FLIP,
    LANDMARKS_28_INDICES,
    LANDMARKS_68_COLUMN,
    LANDMARKS_68_FLIP,
    METADATA_COLUMNS,
    OUTER_EYE_CORNERS,
    Annotator,
    MetadataColumns,
    landmarks_28_from_68,
    load_rgb_image,
    metadata_features,
    parse_landmarks,
    read_image_size,
    validate_value,
)
from .chain import annotate
from .registry import available_annotators, build_annotator, build_annotators, register_annotator

__all__ = [
    "AGE_COLUMN",
    "ETHNICITY_COLUMN",
    "GENDER_COLUMN",
    "HEAD_POSE_COLUMNS",
    "IMAGE_SIZE_KEY",
    "LANDMARKS_28_COLUMN",
    "LANDMARKS_28_FLIP",
    "LANDMARKS_28_INDICES",
    "LANDMARKS_68_COLUMN",
    "LANDMARKS_68_FLIP",
    "METADATA_COLUMNS",
    "OUTER_EYE_CORNERS",
    "Annotator",
    "MetadataColumns",
    "annotate",
    "available_annotators",
    "build_annotator",
    "build_annotators",
    "landmarks_28_from_68",
    "load_rgb_image",
    "metadata_features",
    "parse_landmarks",
    "read_image_size",
    "register_annotator",
    "validate_value",
]
