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

import contextlib
import os
import shutil
from pathlib import Path

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


def _module_files(name: str) -> list[Path]:
    """The files of the packaged module ``name`` that an export copies."""
    source = Path(module_path(name))
    return [
        source / pattern.format(name=name)
        for pattern in _MODULE_FILES
        if (source / pattern.format(name=name)).is_file()
    ]


def module_identity(name: str) -> dict[str, str]:
    """What an exported module folder's run-folder marker records: the module name and a fingerprint of the
    files copied (names and sha256), so a re-export of other files is told apart."""
    from affectnetplus_hf.run_folder import file_sha256, records_fingerprint

    return {
        "module": name,
        "files": records_fingerprint((file.name, file_sha256(file)) for file in _module_files(name)),
    }


def export_modules(
    directory: str | os.PathLike, names: tuple[str, ...] | list[str] | None = None, *, overwrite: bool = False
) -> list[str]:
    """Copy the ``evaluate`` module folders (``<name>/<name>.py`` + ``README.md``) into ``directory``.

    Afterwards ``evaluate.load("<directory>/w_mae")`` works, and so does ``evaluate.load("w_mae")`` when
    the current directory is ``directory`` (see the README). Each module folder is a run folder of kind
    ``"metric-module"`` (:class:`~affectnetplus_hf.run_folder.RunFolder`: locked while written, a hidden
    marker inside, published whole). Every folder is checked before any is written: an existing module
    folder is replaced only with ``overwrite=True``, a folder this function did not write never
    (:class:`~affectnetplus_hf.run_folder.RunFolderError`, a ``ValueError``). Returns the created folders.
    """
    from affectnetplus_hf.run_folder import RunFolder

    names = tuple(dict.fromkeys(MODULE_NAMES if names is None else names))  # each once
    for name in names:
        _check_module_name(name)
    target_root = Path(directory)
    if target_root.exists() and not target_root.is_dir():
        raise NotADirectoryError(f"export target exists and is not a directory: {target_root}")
    with contextlib.ExitStack() as stack:
        folders = [
            stack.enter_context(RunFolder(target_root / name, "metric-module", module_identity(name)))
            for name in names
        ]
        for folder in folders:  # all checked before any is written
            folder.start(overwrite=overwrite, resume=False)
        created = []
        for name, folder in zip(names, folders):
            with folder.publish() as staging:
                for file in _module_files(name):
                    shutil.copy2(file, staging / file.name)
            created.append(str(folder.path))
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
    "module_identity",
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
