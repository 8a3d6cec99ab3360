"""AffectNet readers, both distributed layouts (label space: ``docs/method.md#label-space``).

* ``csv`` (the original release): ``Manually_Annotated_file_lists/{training,validation}.csv`` (splits
  ``train``/``validation``; columns :data:`CSV_COLUMNS`) and ``Manually_Annotated_Images/<subDirectory_filePath>``;
  the face box ``(face_x, face_y, face_x + face_width, face_y + face_height)`` is yielded as written (clamped
  when the image is decoded), landmarks ``(68, 2)``.
* ``npy`` (the cropped 224×224 release): ``{train_set,val_set}/images/N.jpg`` and
  ``annotations/N_{exp,val,aro,lnd}.npy``, read in numeric order of N; ``face_box`` is ``None``; a missing
  ``_val``/``_aro``/``_lnd`` leaves that field ``None`` (listed with ``kept=True``).

Codes 0–7 map to label-space indices; codes 8–10 (None, Uncertain, Non-Face) are skipped and counted in
``source.skipped`` (``non_emotion:<name>``), or yielded with ``hard_label=None`` with ``keep_non_emotion``.
Valence/arousal -2 ("not annotated") become ``None``. The layouts in full: ``docs/architecture.md#affectnet``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import (
    AFFECTNET_MAX_CODE,
    AFFECTNET_NON_EMOTION_CODES,
    AFFECTNET_VA_MISSING,
    affectnet_code_to_index,
)
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.sources.base import (
    RowError,
    Source,
    open_csv,
    relative_path_inside,
)

logger = logging.getLogger(__name__)

CSV_COLUMNS: tuple[str, ...] = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
CSV_LIST_DIR = "Manually_Annotated_file_lists"
CSV_IMAGE_DIRS: tuple[str, ...] = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
CSV_SPLIT_FILES: dict[str, str] = {"train": "training.csv", "validation": "validation.csv"}
NPY_SPLIT_DIRS: dict[str, str] = {"train": "train_set", "validation": "val_set"}
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
NUM_LANDMARKS = 68


def detect_layout(root: str | Path) -> str | None:
    """``"csv"``, ``"npy"`` or ``None`` for a folder."""
    root = Path(root)
    if any((root / CSV_LIST_DIR / name).is_file() for name in CSV_SPLIT_FILES.values()):
        return "csv"
    for directory in NPY_SPLIT_DIRS.values():
        if (root / directory / "images").is_dir() and (root / directory / "annotations").is_dir():
            return "npy"
    return None


# ---------------------------------------------------------------------------------------------- parsing
def parse_expression(value: Any, where: str) -> tuple[int, int | None]:
    """AffectNet ``expression`` → ``(code, label-space index or None)``; codes outside 0–10 raise."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise RowError(
            where,
            f"expression {text!r} is not a number; expected an integer code 0-{AFFECTNET_MAX_CODE} "
            "(0-7 emotions, 8 None, 9 Uncertain, 10 Non-Face)",
        ) from None
    if not math.isfinite(number) or number != int(number) or not 0 <= number <= AFFECTNET_MAX_CODE:
        raise RowError(
            where,
            f"expression code {text} out of range; expected an integer 0-{AFFECTNET_MAX_CODE} "
            "(0-7 emotions, 8 None, 9 Uncertain, 10 Non-Face)",
        )
    code = int(number)
    return code, affectnet_code_to_index(code)


def parse_valence_arousal(value: Any, name: str, where: str) -> float | None:
    """Valence/arousal: -2 (AffectNet's "not annotated") → ``None``; otherwise a number in [-1, 1]."""
    text = str(value).strip()
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise RowError(
            where, f"{name} {text!r} is not a number; expected a value in [-1, 1] or -2 (not annotated)"
        ) from None
    if number == AFFECTNET_VA_MISSING:
        return None
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise RowError(where, f"{name} {text} out of range; expected a value in [-1, 1] or -2 (not annotated)")
    return number


def parse_landmarks(value: Any, where: str) -> np.ndarray | None:
    """``"x0;y0;x1;y1;..."`` (or a flat/(68, 2) array) → ``(68, 2)`` float32; empty → ``None``."""
    if isinstance(value, np.ndarray):
        array = value.astype(np.float64).reshape(-1) if value.dtype.kind in "fiu" else None
        if array is None:
            raise RowError(where, f"landmarks array has dtype {value.dtype}; expected numbers")
    else:
        text = str(value).strip().strip(";")
        if text == "":
            return None
        try:  # fast path (AffectNet's lists hold ~400k landmark strings)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                array = np.fromstring(text, dtype=np.float64, sep=";")
        except (ValueError, DeprecationWarning):
            parts = [p for p in re.split(r"[;\s]+", text) if p]
            try:
                array = np.asarray([float(p) for p in parts], dtype=np.float64)
            except ValueError:
                raise RowError(where, "facial_landmarks must be numbers separated by ';'") from None
    if array.size != 2 * NUM_LANDMARKS:
        raise RowError(
            where,
            f"facial_landmarks has {array.size} numbers; expected {2 * NUM_LANDMARKS} ({NUM_LANDMARKS} x,y pairs)",
        )
    if not np.all(np.isfinite(array)):
        raise RowError(where, "facial_landmarks contains NaN or infinite values")
    return array.reshape(NUM_LANDMARKS, 2).astype(np.float32)


def parse_face_box(x: Any, y: Any, w: Any, h: Any, where: str) -> tuple[float, float, float, float] | None:
    """AffectNet ``face_x, face_y, face_width, face_height`` → ``(x0, y0, x1, y1)``; all empty → ``None``."""
    texts = [str(v).strip() for v in (x, y, w, h)]
    if all(t == "" for t in texts):
        return None
    try:
        fx, fy, fw, fh = (float(t) for t in texts)
    except ValueError:
        raise RowError(
            where, f"face box {texts} must be 4 numbers (face_x, face_y, face_width, face_height)"
        ) from None
    if not all(math.isfinite(v) for v in (fx, fy, fw, fh)) or fw <= 0 or fh <= 0:
        raise RowError(where, f"face box {texts} invalid; expected finite numbers with face_width, face_height > 0")
    return (fx, fy, fx + fw, fy + fh)


def _npy_scalar(path: Path) -> Any:
    array = np.load(path, allow_pickle=False)
    if array.size != 1:
        raise RowError(str(path), f"expected a single value, got an array of shape {array.shape}")
    value = array.reshape(-1)[0].item()
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return value


def _numeric_key(path: Path) -> tuple[int, int, str]:
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


# ---------------------------------------------------------------------------------------------- source
class AffectNetSource(Source):
    """AffectNet in its ``csv`` or ``npy`` layout (auto-detected).

    Args:
        root: the AffectNet folder.
        layout: ``"csv"`` / ``"npy"``, or ``None`` to detect.
        keep_non_emotion: yield codes 8–10 with ``hard_label=None`` instead of skipping (and counting) them.
        skip_bad_rows: skip malformed rows (listed in ``skipped`` as ``bad_row``) instead of raising.
        check_files: check that each image file exists while reading (missing → error, or
            ``missing_image`` skip with ``skip_bad_rows``); off by default (one ``stat`` per image).
        extra_by_id: ``{image_id: dict}`` joined into ``record.extra`` (the synthetic sample's ground
            truth); an image without an entry is an error.
    """

    kind = "affectnet"
    has_votes = False

    def __init__(
        self,
        root: str | Path,
        layout: str | None = None,
        keep_non_emotion: bool = False,
        skip_bad_rows: bool = False,
        check_files: bool = False,
        extra_by_id: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        root = Path(os.path.abspath(root))
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: AffectNet folder does not exist")
        detected = detect_layout(root)
        if layout is None:
            layout = detected
        if layout not in ("csv", "npy"):
            raise ValueError(
                f"{root}: no AffectNet layout found (layout={layout!r}); looked for "
                f"{CSV_LIST_DIR}/{{training,validation}}.csv (csv layout) and "
                "{train_set,val_set}/images + annotations/ (npy layout)"
            )
        self.layout = layout
        self.keep_non_emotion = bool(keep_non_emotion)
        self.skip_bad_rows = bool(skip_bad_rows)
        self.check_files = bool(check_files)
        self.extra_by_id = extra_by_id
        if layout == "csv":
            splits = [s for s, name in CSV_SPLIT_FILES.items() if (root / CSV_LIST_DIR / name).is_file()]
            if not splits:
                raise FileNotFoundError(
                    f"{root / CSV_LIST_DIR}: neither training.csv nor validation.csv found (csv layout)"
                )
            self.image_dir = next((root / d for d in CSV_IMAGE_DIRS if (root / d).is_dir()), root / CSV_IMAGE_DIRS[0])
        else:
            splits = [s for s, d in NPY_SPLIT_DIRS.items() if (root / d / "images").is_dir()]
            if not splits:
                raise FileNotFoundError(f"{root}: neither train_set/images nor val_set/images found (npy layout)")
        super().__init__(root, splits)
        self._image_prefix = self.image_dir.relative_to(root).as_posix() if layout == "csv" else ""

    # ------------------------------------------------------------------ shared
    def _label(self, code: int, index: int | None, split: str, where: str) -> bool:
        """Whether to yield a record with this code; non-emotion codes are counted when skipped."""
        if index is not None or self.keep_non_emotion:
            return True
        name = AFFECTNET_NON_EMOTION_CODES[code]
        self.skipped.add(split, where, f"non_emotion:{name}", f"expression code {code} ({name})")
        return False

    def _extra(self, image_id: str, where: str) -> dict[str, Any]:
        if self.extra_by_id is None:
            return {}
        entry = self.extra_by_id.get(image_id)
        if entry is None:
            raise RowError(where, f"image {image_id!r} has no ground-truth row")
        return dict(entry)

    def _bad_row(self, split: str, error: RowError) -> None:
        if not self.skip_bad_rows:
            raise error
        logger.warning("skipping %s", error)
        self.skipped.add(split, error.location, "bad_row", error.detail)

    def _records(self, split: str) -> Iterator[FaceRecord]:
        if self.layout == "csv":
            yield from self._csv_records(split)
        else:
            yield from self._npy_records(split)

    # ------------------------------------------------------------------ csv layout
    def _csv_records(self, split: str) -> Iterator[FaceRecord]:
        path = self.root / CSV_LIST_DIR / CSV_SPLIT_FILES[split]
        with open_csv(path, CSV_COLUMNS) as (header, reader):
            col = {name: header.index(name) for name in CSV_COLUMNS}
            for line, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{path}:{line}"
                try:
                    record = self._csv_record(row, col, len(header), split, where)
                except RowError as error:
                    self._bad_row(split, error)
                    continue
                if record is not None:
                    yield record

    def _csv_record(
        self, row: list[str], col: dict[str, int], width: int, split: str, where: str
    ) -> FaceRecord | None:
        if len(row) < width:
            raise RowError(where, f"row has {len(row)} fields; expected {width} (as the header)")
        rel = row[col["subDirectory_filePath"]].strip()
        if not rel:
            raise RowError(where, "subDirectory_filePath is empty; expected the image path")
        rel = relative_path_inside(rel, where, "subDirectory_filePath", f"the image folder {self.image_dir}")
        code, index = parse_expression(row[col["expression"]], where)
        if not self._label(code, index, split, where):
            return None
        image_path = self.image_dir / rel
        image_id = f"{self._image_prefix}/{rel}"
        if self.check_files and not image_path.is_file():
            if not self.skip_bad_rows:
                raise FileNotFoundError(f"{where}: image file {image_path} missing")
            self.skipped.add(split, where, "missing_image", f"image file {image_path} missing")
            return None
        return FaceRecord(
            image_id=image_id,
            image_path=str(image_path),
            face_box=parse_face_box(
                row[col["face_x"]], row[col["face_y"]], row[col["face_width"]], row[col["face_height"]], where
            ),
            hard_label=index,
            raw_label=code,
            non_emotion_votes=0 if index is not None else 1,
            valence=parse_valence_arousal(row[col["valence"]], "valence", where),
            arousal=parse_valence_arousal(row[col["arousal"]], "arousal", where),
            landmarks=parse_landmarks(row[col["facial_landmarks"]], where),
            split=split,
            source=self.kind,
            extra=self._extra(image_id, where),
        )

    # ------------------------------------------------------------------ npy layout
    def _npy_records(self, split: str) -> Iterator[FaceRecord]:
        directory = self.root / NPY_SPLIT_DIRS[split]
        images = sorted(
            (
                entry
                for entry in (directory / "images").iterdir()
                if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES
            ),
            key=_numeric_key,
        )
        annotations = directory / "annotations"
        for image in images:
            n = image.stem
            where = str(image)
            try:
                record = self._npy_record(image, annotations, n, split, where)
            except RowError as error:
                self._bad_row(split, error)
                continue
            if record is not None:
                yield record

    def _optional(self, path: Path, split: str, where: str) -> Any:
        if not path.is_file():
            self.skipped.add(
                split, str(path), "missing_annotation", f"{path.name} missing; field left null", kept=True
            )
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise RowError(str(path), f"cannot read .npy file ({error})") from error

    def _npy_record(self, image: Path, annotations: Path, n: str, split: str, where: str) -> FaceRecord | None:
        exp_path = annotations / f"{n}_exp.npy"
        if not exp_path.is_file():
            raise RowError(where, f"annotation {exp_path} missing; expected {n}_exp.npy beside {n}_val/_aro/_lnd.npy")
        try:
            code_value = _npy_scalar(exp_path)
        except (OSError, ValueError) as error:
            if isinstance(error, RowError):
                raise
            raise RowError(str(exp_path), f"cannot read .npy file ({error})") from error
        code, index = parse_expression(code_value, str(exp_path))
        if not self._label(code, index, split, where):
            return None
        valence = arousal = None
        val = self._optional(annotations / f"{n}_val.npy", split, where)
        if val is not None:
            valence = parse_valence_arousal(
                _flat_scalar(val, annotations / f"{n}_val.npy"), "valence", str(annotations / f"{n}_val.npy")
            )
        aro = self._optional(annotations / f"{n}_aro.npy", split, where)
        if aro is not None:
            arousal = parse_valence_arousal(
                _flat_scalar(aro, annotations / f"{n}_aro.npy"), "arousal", str(annotations / f"{n}_aro.npy")
            )
        lnd = self._optional(annotations / f"{n}_lnd.npy", split, where)
        landmarks = None
        if lnd is not None:
            if lnd.dtype.kind in "US":
                lnd = np.asarray([float(v) for v in re.split(r"[;,\s]+", str(lnd.reshape(-1)[0]).strip()) if v])
            landmarks = parse_landmarks(lnd, str(annotations / f"{n}_lnd.npy"))
        image_id = image.relative_to(self.root).as_posix()
        return FaceRecord(
            image_id=image_id,
            image_path=str(image),
            face_box=None,
            hard_label=index,
            raw_label=code,
            non_emotion_votes=0 if index is not None else 1,
            valence=valence,
            arousal=arousal,
            landmarks=landmarks,
            split=split,
            source=self.kind,
            extra=self._extra(image_id, where),
        )


def _flat_scalar(array: np.ndarray, path: Path) -> Any:
    if array.size != 1:
        raise RowError(str(path), f"expected a single value, got an array of shape {array.shape}")
    value = array.reshape(-1)[0].item()
    return value.decode("ascii", errors="replace") if isinstance(value, bytes) else value


__all__ = [
    "CSV_COLUMNS",
    "AffectNetSource",
    "detect_layout",
    "parse_expression",
    "parse_face_box",
    "parse_landmarks",
    "parse_valence_arousal",
]
