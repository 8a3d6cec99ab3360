"""Soft-label metrics W-MAE / W-FR / W-AUC and hard-label metrics (paper Sec. 4.3, `docs/method.md#metrics`),
plus their ``evaluate`` modules.

The plain functions live in :mod:`affectnetplus_hf.metrics.functional` (re-exported here). The same
metrics are packaged as three ``evaluate`` modules — folders ``w_mae/``, ``w_fr/``, ``w_auc/`` next to
this file — that ``evaluate.load`` reads offline::

    import evaluate
    from affectnetplus_hf.metrics import module_path

    w_mae = evaluate.load(module_path("w_mae"))
    w_mae.compute(references=[[0.9, 0.1, 0, 0, 0, 0, 0, 0]], predictions=[[0.7, 0.2, 0, 0, 0, 0, 0, 0]])

The module scripts import :mod:`affectnetplus_hf.metrics.functional`, so ``affectnetplus-hf`` must be
installed wherever they are loaded (``evaluate`` copies the script into its cache before importing it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from affectnetplus_hf.fileio import atomic_directory
from affectnetplus_hf.metrics.functional import (
    DEFAULT_EPSILON,
    MetricTable,
    accuracy,
    average_accuracy,
    ced_auc,
    ced_curve,
    check_soft_label_options,
    confusion_matrix,
    failure_rate,
    ground_truth_weights,
    hard_label_metrics,
    mean_error,
    precision_recall_f1,
    soft_label_metrics,
    validate_soft_labels,
    w_auc,
    w_fr,
    w_mae,
    weighted_error_single,
    weighted_errors,
)

#: The evaluate modules shipped with the package (folder name = script name = metric name).
MODULE_NAMES: tuple[str, ...] = ("w_mae", "w_fr", "w_auc")
_MODULE_FILES: tuple[str, ...] = ("{name}.py", "README.md")
_HERE = Path(__file__).resolve().parent


def _check_module_name(name: str) -> str:
    if name not in MODULE_NAMES:
        raise ValueError(f"unknown metric module {name!r}; expected one of {list(MODULE_NAMES)}")
    return name


def module_path(name: str) -> str:
    """Absolute path of the folder holding the ``evaluate`` module ``name`` (``w_mae``, ``w_fr`` or ``w_auc``).

    ``evaluate.load(module_path("w_fr"))`` loads it without network access: a local folder that
    contains ``<name>.py`` is always read from disk.
    """
    folder = _HERE / _check_module_name(name)
    script = folder / f"{name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"metric module script missing from the installed package: {script}")
    return str(folder)


def export_modules(directory: str | os.PathLike, names: tuple[str, ...] | list[str] | None = None,
                   *, overwrite: bool = False) -> list[str]:
    """Copy the ``evaluate`` module folders (``<name>/<name>.py`` + ``README.md``) into ``directory``.

    Afterwards ``evaluate.load("<directory>/w_mae")`` works, and so does ``evaluate.load("w_mae")`` when
    the current directory is ``directory`` (see the README). Existing module folders are replaced only
    with ``overwrite=True`` (else :class:`FileExistsError`). Returns the created folders.
    """
    names = tuple(MODULE_NAMES if names is None else names)
    for name in names:
        _check_module_name(name)
    target_root = Path(directory)
    if target_root.exists() and not target_root.is_dir():
        raise NotADirectoryError(f"export target exists and is not a directory: {target_root}")
    if not overwrite:
        clashes = [str(target_root / name) for name in names if (target_root / name).exists()]
        if clashes:
            raise FileExistsError(
                f"metric module folders already exist: {clashes} "
                "(pass overwrite=True, or --overwrite on the command line)"
            )
    foreign = [str(target_root / name) for name in names
               if (target_root / name).exists() and not (target_root / name / f"{name}.py").is_file()]
    if foreign:  # --overwrite replaces only module folders this function wrote
        raise FileExistsError(f"{foreign} exist but are not exported metric modules (no <name>.py inside): "
                              "refusing to replace them")
    target_root.mkdir(parents=True, exist_ok=True)
    created = []
    for name in names:
        source = Path(module_path(name))
        target = target_root / name
        with atomic_directory(target) as staging:
            for pattern in _MODULE_FILES:
                file = source / pattern.format(name=name)
                if file.is_file():
                    shutil.copy2(file, staging / file.name)
        created.append(str(target))
    return created


__all__ = [
    "DEFAULT_EPSILON",
    "MODULE_NAMES",
    "MetricTable",
    "accuracy",
    "average_accuracy",
    "ced_auc",
    "ced_curve",
    "check_soft_label_options",
    "confusion_matrix",
    "export_modules",
    "failure_rate",
    "ground_truth_weights",
    "hard_label_metrics",
    "mean_error",
    "module_path",
    "precision_recall_f1",
    "soft_label_metrics",
    "validate_soft_labels",
    "w_auc",
    "w_fr",
    "w_mae",
    "weighted_error_single",
    "weighted_errors",
]
