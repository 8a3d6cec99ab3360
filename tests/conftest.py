"""Test-wide settings (everything offline, a private HF cache, one float-reduction order) and the
builders of test inputs that several test files share, as fixtures."""

import csv
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="affectnetplus-hf-home-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # the same float bits in every process (labeling, round trips)

from affectnetplus_hf.sources.affectnet import CSV_COLUMNS  # noqa: E402  (after the offline settings)

# ---------------------------------------------------------------------------------------------- shared builders
# Inputs several test files build: a tiny random soft-labeler, a small synthetic sample, AffectNet CSV
# folders and FER+ folders, each offered as a fixture.

HEADER = list(CSV_COLUMNS)
FERPLUS_FIXTURES = Path(__file__).parent / "fixtures" / "ferplus"


def make_tiny_labeler(directory: Path) -> Path:
    """A random-weight SoftLabeler with both families (test_resnet members, 32 px), saved to ``directory``."""
    import torch

    from affectnetplus_hf.models import SoftLabeler, SoftLabelerConfig

    torch.manual_seed(0)
    config = SoftLabelerConfig(
        ebc_backbones=["test_resnet"],
        au_backbones="test_resnet",
        image_size=32,
        confidence_scores={"balanced": {"ebc": [[0.9, 0.8, 0.7, 0.8, 0.6, 0.7, 0.8, 0.5]], "au": [0.7] * 8}},
    )
    SoftLabeler(config).eval().save_pretrained(directory)
    return directory


def make_sample(directory: Path, n_train: int = 9, n_val: int = 4) -> Path:
    from affectnetplus_hf.synthetic import write_sample

    write_sample(
        directory,
        layout="csv",
        n_train=n_train,
        n_val=n_val,
        n_mas=2,
        image_size=40,
        seed=3,
        contact_sheet=False,
        progress=False,
    )
    return directory


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _landmarks(seed: int, n: int = 136) -> str:
    values = np.random.default_rng(seed).uniform(0, 60, n).round(2)
    return ";".join(f"{v:.2f}" for v in values)


def _jpeg(path: Path, size=(64, 48), value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path, format="JPEG")


def write_csv_layout(
    root: Path,
    train_rows: list[list],
    val_rows: list[list] | None = None,
    header: list[str] = HEADER,
    make_images: bool = True,
) -> Path:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for name, rows in (("training.csv", train_rows), ("validation.csv", val_rows)):
        if rows is None:
            continue
        with open(lists / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        if make_images:
            for row in rows:
                _jpeg(root / "Manually_Annotated_Images" / row[0])
    return root


def row(path: str, code, valence=0.5, arousal=-0.25, box=(4, 2, 40, 30), landmarks=None, seed=0) -> list:
    return [path, *box, _landmarks(seed) if landmarks is None else landmarks, code, valence, arousal]


DROPPED = "fer0000005.png"  # removed from both files so that names drift from row indices
EXTRA_ROWS = [
    "Training,fer0000030.png,0,6,0,0,0,0,0,0,4,0",  # duplicated name, different votes: the later row wins
    "PublicTest,fer0028709.png,0,0,0,0,10,0,0,0,0,0",
    "PublicTest,fer0028710.png,0,0,0,7,0,0,0,0,3,0",
    "PrivateTest,fer0032298.png,0,0,0,0,0,0,0,2,0,8",
    "PrivateTest,,0,0,0,0,0,0,0,0,0,10",
    "PrivateTest,fer0032300.png,0,0,3,0,0,0,7,0,0,0",
]
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


def _rows() -> tuple[str, list[list[str]]]:
    lines = (FERPLUS_FIXTURES / "fer2013new.head.csv").read_text().splitlines()
    data = [line for line in lines[1:] if line.split(",")[1] != DROPPED] + EXTRA_ROWS
    return lines[0], [line.split(",") for line in data]


def _row_value(index: int) -> int:
    return (index * 4 + 3) % 256


def build(root: Path, folders: bool = True, fer2013: bool = False) -> Path:
    header, rows = _rows()
    root.mkdir(parents=True, exist_ok=True)
    (root / "fer2013new.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    if folders:
        for usage, name, *_ in rows:
            if name:
                folder = root / FOLDERS[usage]
                folder.mkdir(exist_ok=True)
                value = int(name[3:10]) % 256
                Image.fromarray(np.full((48, 48), value, dtype=np.uint8)).save(folder / name)
    if fer2013:
        with open(root / "fer2013.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["emotion", "pixels", "Usage"])
            for i, (usage, *_rest) in enumerate(rows):
                writer.writerow([0, " ".join([str(_row_value(i))] * 2304), usage])
    return root


def detectable_faces(n: int = 2) -> list[Image.Image]:
    """The first ``n`` frontal synthetic sample faces (200×240, padded) in which the default detector finds
    exactly one face."""
    from affectnetplus_hf.faces import FaceFinder
    from affectnetplus_hf.synthetic import make_face

    finder, faces = FaceFinder("auto", faces="all"), []
    rng = np.random.default_rng(0)
    for attempt in range(60):
        image = make_face(rng, attempt % 8, image_size=160, pose=(0.0, 0.0, 0.0))[0].convert("RGB")
        padded = Image.new("RGB", (200, 240), (128, 128, 128))
        padded.paste(image, (20, 40))
        if len(finder.detect(padded)) == 1:
            faces.append(padded)
            if len(faces) == n:
                return faces
    pytest.fail("the default detector found no synthetic face in 60 renders")


@pytest.fixture(scope="session", name="make_tiny_labeler")
def _make_tiny_labeler_fixture():
    """``make_tiny_labeler(directory)``: a random-weight two-family soft-labeler saved to ``directory``."""
    return make_tiny_labeler


@pytest.fixture(scope="session", name="make_sample")
def _make_sample_fixture():
    """``make_sample(directory, n_train=9, n_val=4)``: a small synthetic sample (csv layout, 40 px)."""
    return make_sample


@pytest.fixture(scope="session", name="tree_bytes")
def _tree_bytes_fixture():
    """``tree_bytes(folder)``: every file's bytes by relative path."""
    return tree_bytes


@pytest.fixture(scope="session")
def affectnet_files():
    """Builders of AffectNet CSV-layout folders: ``row(path, code, ...)``, ``write_csv_layout(root,
    train_rows, val_rows=None, ...)``, ``jpeg(path, size, value)``, ``landmarks(seed, n)``, ``header``."""
    return SimpleNamespace(row=row, write_csv_layout=write_csv_layout, jpeg=_jpeg, landmarks=_landmarks, header=HEADER)


@pytest.fixture(scope="session")
def ferplus_files():
    """Builders of FER+ folders from the real label rows in ``tests/fixtures/ferplus``: ``build(root,
    folders=True, fer2013=False)``, ``rows()``, ``row_value(index)``, ``dropped`` (a name left out)."""
    return SimpleNamespace(build=build, rows=_rows, row_value=_row_value, dropped=DROPPED)


@pytest.fixture(scope="session")
def face_photos():
    """``.faces``: two synthetic faces the default detector finds; ``.pair``: a 440×260 photo of both, left to
    right."""
    left, right = detectable_faces(2)
    pair = Image.new("RGB", (440, 260), (90, 110, 100))
    pair.paste(left, (10, 10))
    pair.paste(right, (230, 10))
    return SimpleNamespace(faces=[left, right], pair=pair)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random soft-labeler of this test module (:func:`make_tiny_labeler`)."""
    return make_tiny_labeler(tmp_path_factory.mktemp("tiny-labeler") / "model")


@pytest.fixture()
def face(tmp_path: Path) -> Path:
    """An 8x8 PNG face file."""
    from helpers import png

    return png(tmp_path / "face.png")


@pytest.fixture(scope="module")
def labeled(tmp_path_factory, model_dir: Path) -> dict[str, Path]:
    """A small synthetic sample and its complete labeling run."""
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    root = tmp_path_factory.mktemp("labeled")
    sample = make_sample(root / "sample", n_train=4, n_val=2)
    label_dataset(
        model_dir, sample, root / "labels", LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False)
    )
    return {"root": root, "sample": sample, "labels": root / "labels"}
