"""The ``evaluate`` modules w_mae / w_fr / w_auc: offline loading, same numbers as the functions, combine, export."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


import doctest
import os

import evaluate

from affectnetplus_hf import cli
from affectnetplus_hf.metrics import MODULE_NAMES, export_modules, module_identity, module_path, w_auc, w_fr, w_mae
from affectnetplus_hf.run_folder import MARKER_FILE, FolderLock, Marker, RunFolderError

FUNCTIONS = {"w_mae": w_mae, "w_fr": w_fr, "w_auc": w_auc}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    refs = rng.random((40, 8), dtype=np.float32)
    refs[::4, 3:] = 0.0  # ties
    preds = np.clip(refs + rng.normal(0, 0.25, refs.shape).astype(np.float32), 0, 1)
    return refs, preds


@pytest.fixture(scope="module")
def modules():
    return {name: evaluate.load(module_path(name)) for name in MODULE_NAMES}


def test_loading_is_offline_and_by_path():
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("HF_EVALUATE_OFFLINE") == "1"
    for name in MODULE_NAMES:
        path = Path(module_path(name))
        assert path.is_absolute() and (path / f"{name}.py").is_file() and (path / "README.md").is_file()
    with pytest.raises(ValueError, match="unknown metric module 'w_rmse'"):
        module_path("w_rmse")


def test_module_info(modules):
    for name, module in modules.items():
        assert module.name == name
        info = module.info
        assert "AffectNet+: A Database for Enhancing Facial Expression Recognition with Soft-Labels" in info.citation
        assert "Fard" in info.citation and "Mahoor" in info.citation
        assert info.features["predictions"].length == 8 and info.features["references"].length == 8
        assert info.features["predictions"].feature.dtype == "float32"
        assert "Examples:" in info.inputs_description and "epsilon" in info.inputs_description


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_docstring_examples_run(modules, name):
    test = doctest.DocTestParser().get_doctest(modules[name].info.inputs_description, {}, name, None, 0)
    assert len(test.examples) >= 5
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize("name", MODULE_NAMES)
@pytest.mark.parametrize(
    "options",
    [{}, {"normalize": False}, {"ties": "average"}, {"epsilon": 0.15}, {"normalize": False, "epsilon": 0.1}],
)
def test_same_numbers_as_functions(modules, data, name, options):
    refs, preds = data
    result = modules[name].compute(predictions=preds.tolist(), references=refs.tolist(), **options)
    function_options = dict(options)
    if name == "w_mae":
        function_options.pop("epsilon", None)
    assert result == {name: FUNCTIONS[name](refs, preds, **function_options)}


def test_add_batch_accumulates(modules, data):
    refs, preds = data
    module = modules["w_fr"]
    for start in range(0, 40, 16):
        module.add_batch(predictions=preds[start : start + 16].tolist(), references=refs[start : start + 16].tolist())
    assert module.compute(epsilon=0.2) == {"w_fr": w_fr(refs, preds, epsilon=0.2)}


def test_by_groups_through_evaluate(modules, data):
    refs, preds = data
    groups = ["easy", "difficult"] * 20
    result = modules["w_mae"].compute(predictions=preds.tolist(), references=refs.tolist(), by=groups)
    assert result["w_mae_by"] == w_mae(refs, preds, by=groups)
    assert list(result["w_mae_by"]) == ["easy", "difficult"]


def test_load_time_defaults_and_compute_override(data):
    refs, preds = data
    w_fr_loose = evaluate.load(module_path("w_fr"), epsilon=0.5, ties="average")
    assert w_fr_loose.compute(predictions=preds, references=refs) == {
        "w_fr": w_fr(refs, preds, epsilon=0.5, ties="average")
    }
    assert w_fr_loose.compute(predictions=preds, references=refs, epsilon=0.1) == {
        "w_fr": w_fr(refs, preds, epsilon=0.1, ties="average")
    }
    with pytest.raises(ValueError, match="ties must be one of"):
        evaluate.load(module_path("w_mae"), ties="dense")
    with pytest.raises(ValueError, match="epsilon must be a finite number"):
        evaluate.load(module_path("w_auc"), epsilon=-1.0)


def test_combine(modules, data):
    refs, preds = data
    combined = evaluate.combine([modules[name] for name in MODULE_NAMES])
    assert combined.compute(predictions=preds, references=refs) == {
        "w_mae": w_mae(refs, preds),
        "w_fr": w_fr(refs, preds),
        "w_auc": w_auc(refs, preds),
    }
    # compute kwargs go to every module (w_mae accepts and ignores epsilon)
    assert combined.compute(predictions=preds, references=refs, epsilon=0.2, normalize=False) == {
        "w_mae": w_mae(refs, preds, normalize=False),
        "w_fr": w_fr(refs, preds, epsilon=0.2, normalize=False),
        "w_auc": w_auc(refs, preds, epsilon=0.2, normalize=False),
    }
    # different epsilon per module: set them when loading
    mixed = evaluate.combine(
        [evaluate.load(module_path("w_fr"), epsilon=0.1), evaluate.load(module_path("w_auc"), epsilon=0.4)]
    )
    assert mixed.compute(predictions=preds, references=refs) == {
        "w_fr": w_fr(refs, preds, epsilon=0.1),
        "w_auc": w_auc(refs, preds, epsilon=0.4),
    }


def test_bad_input_through_evaluate(modules):
    good = [[0.125] * 8] * 3
    with pytest.raises(ValueError, match="expected format"):
        modules["w_mae"].compute(predictions=[[0.1] * 7] * 3, references=good)
    nan_row = [[0.125] * 8, [0.125] * 7 + [float("nan")], [0.125] * 8]
    with pytest.raises(ValueError, match="references has NaN or infinite values at row 1"):
        modules["w_mae"].compute(predictions=good, references=nan_row)
    with pytest.raises(ValueError, match=r"predictions has values outside \[0, 1\] at row 2"):
        modules["w_auc"].compute(predictions=good[:2] + [[2.0] * 8], references=good)
    assert modules["w_auc"].compute(predictions=good[:2] + [[2.0] * 8], references=good, clip=True)["w_auc"] < 100
    with pytest.raises(ValueError, match="normalize must be True or False"):
        modules["w_fr"].compute(predictions=good, references=good, normalize="no")


def test_export_modules_and_load_by_path_and_by_name(tmp_path, monkeypatch, data):
    refs, preds = data
    created = export_modules(tmp_path / "metrics")
    assert [Path(p).name for p in created] == list(MODULE_NAMES)
    for name in MODULE_NAMES:
        # the module files and the run-folder marker, hidden: evaluate.load reads the folder as before
        assert sorted(os.listdir(tmp_path / "metrics" / name)) == [MARKER_FILE, "README.md", f"{name}.py"]
        marker = Marker.read(tmp_path / "metrics" / name)
        assert (marker.kind, marker.complete, marker.identity) == ("metric-module", True, module_identity(name))
        loaded = evaluate.load(str(tmp_path / "metrics" / name))
        assert loaded.compute(predictions=preds, references=refs) == {name: FUNCTIONS[name](refs, preds)}
    # a bare name resolves to ./<name>/<name>.py relative to the current directory before the Hub
    monkeypatch.chdir(tmp_path / "metrics")
    assert evaluate.load("w_mae").compute(predictions=preds, references=refs) == {"w_mae": w_mae(refs, preds)}
    with pytest.raises(RunFolderError, match=r"already holds a finished run.*--overwrite \(overwrite=True\)"):
        export_modules(tmp_path / "metrics")
    assert len(export_modules(tmp_path / "metrics", ["w_fr"], overwrite=True)) == 1
    assert evaluate.load(str(tmp_path / "metrics" / "w_fr")).compute(predictions=preds, references=refs) == {
        "w_fr": w_fr(refs, preds)
    }
    with pytest.raises(ValueError, match="unknown metric module"):
        export_modules(tmp_path / "other", ["accuracy"])


def test_export_replaces_only_folders_it_wrote(tmp_path):
    """A module folder without the export's marker (another tool's, or hand-made) is refused even with
    overwrite, and nothing is written when any requested folder is refused."""
    root = tmp_path / "metrics"
    (root / "w_fr").mkdir(parents=True)
    (root / "w_fr" / "w_fr.py").write_text("# mine\n")
    for overwrite in (False, True):
        with pytest.raises(
            RunFolderError, match=r"is not empty and was not written by `affectnetplus metrics export`"
        ):
            export_modules(root, overwrite=overwrite)
    assert sorted(os.listdir(root)) == [".w_auc.lock", ".w_fr.lock", ".w_mae.lock", "w_fr"]  # w_mae not written
    assert os.listdir(root / "w_fr") == ["w_fr.py"] and (root / "w_fr" / "w_fr.py").read_text() == "# mine\n"
    (root / "w_auc").mkdir()
    (root / "w_auc" / MARKER_FILE).write_text('{"format": "affectnetplus-run", "kind": "sample", "complete": true}')
    with pytest.raises(
        RunFolderError, match=r"written by `affectnetplus sample`, not by `affectnetplus metrics export`"
    ):
        export_modules(root, ["w_auc"], overwrite=True)


def test_export_refuses_a_folder_in_use(tmp_path):
    with FolderLock(tmp_path / "w_mae"):
        with pytest.raises(RunFolderError, match=r"w_mae is in use by process \d+ \(started "):
            export_modules(tmp_path, ["w_mae"])
    assert not (tmp_path / "w_mae").exists()
    assert export_modules(tmp_path, ["w_mae"]) == [str(tmp_path / "w_mae")]  # released


def test_bare_name_without_local_folder_fails_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # no ./w_mae/w_mae.py here, and offline the Hub (evaluate-metric/w_mae, ...) cannot be asked
    with pytest.raises(FileNotFoundError, match="w_mae/w_mae.py"):
        evaluate.load("w_mae")


def test_cli_export(tmp_path, capsys, caplog):
    assert cli.main(["metrics", "export", str(tmp_path / "mods"), "--names", "w_auc"]) == 0
    assert (tmp_path / "mods" / "w_auc" / "w_auc.py").is_file()
    assert not (tmp_path / "mods" / "w_mae").exists()
    assert '"exported"' in capsys.readouterr().out
    caplog.clear()
    assert cli.main(["metrics", "export", str(tmp_path / "mods"), "--names", "w_auc"]) == 1  # exists
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "pass --overwrite" in errors[0], errors
    assert cli.main(["metrics", "export", str(tmp_path / "mods"), "--names", "w_auc", "--overwrite"]) == 0


def test_n_classes_at_load_time():
    three = evaluate.load(module_path("w_mae"), n_classes=3)
    assert three.info.features["references"].length == 3
    # |d| = [0.1, 0.1, 0]; weights 1, 1/2, 1/3 -> 0.15 / (11/6)
    result = three.compute(predictions=[[0.6, 0.3, 0.1]], references=[[0.7, 0.2, 0.1]])
    assert result["w_mae"] == pytest.approx(100 * 0.15 / (11 / 6), rel=1e-6)
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        evaluate.load(module_path("w_mae"), n_classes=0)


def test_metrics_export_overwrite_replaces_only_module_folders(tmp_path: Path) -> None:
    from affectnetplus_hf.metrics import export_modules

    export_modules(tmp_path / "mods", ["w_mae"])
    export_modules(tmp_path / "mods", ["w_mae"], overwrite=True)  # its own folder: replaced
    precious = tmp_path / "mods" / "w_fr"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"is not empty and was not written by `affectnetplus metrics export`"):
        export_modules(tmp_path / "mods", ["w_fr"], overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"
