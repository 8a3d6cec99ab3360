"""The one atomic writer: outputs follow the umask although they are written through temporary files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from helpers import write_encoded

from affectnetplus_hf.cli import main  # noqa: E402


def _modes(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
        for p in [folder, *sorted(folder.rglob("*"))]
    }


@pytest.fixture()
def umask():
    previous = os.umask(0o022)
    try:
        yield lambda value: os.umask(value)
    finally:
        os.umask(previous)


def test_labels_and_dataset_follow_the_umask(tmp_path: Path, model_dir: Path, umask, make_sample) -> None:
    from affectnetplus_hf.dataset import build_dataset
    from affectnetplus_hf.labeling import LabelingConfig, label_dataset

    sample = make_sample(tmp_path / "sample", n_train=4, n_val=2)
    labels, folder = tmp_path / "labels", tmp_path / "ds"
    label_dataset(model_dir, sample, labels, LabelingConfig(shard_size=4, batch_size=4, num_threads=1, progress=False))
    build_dataset(sample, labels, folder, metadata=None, figures=False, progress=False)
    for tree in (labels, folder):
        modes = _modes(tree)
        assert len(modes) > 3
        wrong = {
            name: oct(mode) for name, mode in modes.items() if mode != (0o755 if (tree / name).is_dir() else 0o644)
        }
        assert not wrong, f"{tree}: {wrong}"


def test_atomic_writers_follow_the_umask(tmp_path: Path, umask) -> None:
    import pyarrow as pa

    from affectnetplus_hf.fileio import write_bytes_atomic, write_parquet_deterministic, write_text_atomic

    umask(0o027)
    write_bytes_atomic(tmp_path / "a.json", b"{}")
    write_parquet_deterministic(pa.table({"x": [1]}), tmp_path / "b.parquet")
    write_text_atomic(tmp_path / "c.csv", "x\n")
    table = "image_id,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt\na,0.5,0.5,0,0,0,0,0,0\n"
    write_encoded(tmp_path / "in" / "gt.csv", table)
    assert (
        main(
            [
                "metrics",
                "compute",
                "-r",
                str(tmp_path / "in" / "gt.csv"),
                "-p",
                str(tmp_path / "in" / "gt.csv"),
                "--output",
                str(tmp_path / "d.json"),
            ]
        )
        == 0
    )
    from affectnetplus_hf.models.inference import write_predictions

    write_predictions(pa.table({"path": ["x.png"], "Neutral": [0.5]}), tmp_path / "e.csv")
    from affectnetplus_hf.models import HardFERConfig, HardFERModel

    HardFERModel(HardFERConfig(backbone="test_resnet", image_size=32)).save_pretrained(tmp_path / "model")
    assert {oct(mode) for name, mode in _modes(tmp_path).items() if name.startswith("model/")} == {"0o640"}
    modes = {name: oct(mode) for name, mode in _modes(tmp_path).items() if not name.startswith(("in", "model"))}
    assert modes == {
        ".": oct(stat.S_IMODE(tmp_path.stat().st_mode)),
        "a.json": "0o640",
        "b.parquet": "0o640",
        "c.csv": "0o640",
        "d.json": "0o640",
        "e.csv": "0o640",
    }
