"""``affectnetplus metrics``: the soft-label metrics W-MAE, W-FR, W-AUC (`docs/method.md#metrics`).

affectnetplus metrics export DIR
    copy the three ``evaluate`` modules (w_mae/, w_fr/, w_auc/) into DIR, for
    ``evaluate.load("DIR/w_mae")`` or, from inside DIR, ``evaluate.load("w_mae")``.

affectnetplus metrics compute --references GT.csv --predictions PRED.csv [--by subset]
    compare two tables (.csv, .tsv, .parquet, .jsonl) that hold the 8 emotion-named columns
    (Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt). Rows are matched by the
    ``image_id`` column when both tables have it, else by position (the row counts must agree).
    Prints JSON: the overall W-MAE / W-FR / W-AUC (percent) and one table per ``--by`` column.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

NAME = "metrics"

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="soft-label metrics (W-MAE, W-FR, W-AUC): export the evaluate modules, compute from files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="metrics_command", metavar="ACTION")

    export = actions.add_parser("export", help="copy the evaluate modules w_mae/, w_fr/, w_auc/ into DIR")
    export.add_argument("directory", metavar="DIR", help="target folder (created if missing)")
    export.add_argument(
        "--names",
        nargs="+",
        default=None,
        choices=("w_mae", "w_fr", "w_auc"),
        help="modules to export (default: all three)",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace module folders an earlier export wrote (a folder with other files is never replaced)",
    )
    export.set_defaults(func=run_export)

    _register_compute(actions)

    parser.set_defaults(func=_missing_action(parser))


def _register_compute(actions) -> None:
    """``affectnetplus metrics compute``."""
    compute = actions.add_parser(
        "compute", help="W-MAE / W-FR / W-AUC between a ground-truth and a prediction table (JSON on stdout)"
    )
    compute.add_argument(
        "--references",
        "-r",
        required=True,
        metavar="FILE",
        help="ground-truth soft labels: .csv | .tsv | .parquet | .jsonl with the 8 emotion columns",
    )
    compute.add_argument(
        "--predictions",
        "-p",
        required=True,
        metavar="FILE",
        help="predicted soft labels, same format (e.g. the output of `affectnetplus predict`)",
    )
    compute.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="COLUMN",
        help="also report per value of COLUMN (e.g. subset, hard_label); repeatable; "
        "looked up in the references first, then in the predictions",
    )
    compute.add_argument(
        "--id-column",
        default="image_id",
        help="column that matches rows between the two files (default image_id; "
        "rows are matched by position when either file lacks it)",
    )
    compute.add_argument(
        "--ignore-extra-predictions",
        action="store_true",
        help="allow prediction rows whose id is not in the references (they are counted and ignored)",
    )
    compute.add_argument(
        "--epsilon", type=float, default=None, help="W-FR threshold and W-AUC upper limit (default 0.3, the paper's)"
    )
    compute.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="weighted mean e_k (default); --no-normalize uses the paper's printed 1/8 form",
    )
    compute.add_argument(
        "--ties",
        choices=("ordinal", "average"),
        default="ordinal",
        help="rank ties in the references (default ordinal: lower emotion index first)",
    )
    compute.add_argument("--clip", action="store_true", help="clip scores outside [0, 1] instead of failing")
    compute.add_argument(
        "--output", "-o", default=None, metavar="FILE.json", help="also write the JSON to this file (atomically)"
    )
    compute.set_defaults(func=run_compute)


def _missing_action(parser: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return run


def run_export(args: argparse.Namespace) -> int:
    from affectnetplus_hf.metrics import export_modules

    created = export_modules(args.directory, names=args.names, overwrite=args.overwrite)
    print(json.dumps({"exported": created}, indent=2))
    return 0


# --------------------------------------------------------------------------------------------------
# compute
# --------------------------------------------------------------------------------------------------
def read_table(path: str):
    """A pandas DataFrame from ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` / ``.json`` (JSON lines)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json", ".ndjson"):
            return pd.read_json(path, lines=True)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: could not read the {suffix} table: {error}") from None
    raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .csv, .tsv, .parquet or .jsonl")


def soft_label_columns(frame, path: str) -> list[str]:
    """The frame's column names for the 8 emotions in label-space order (exact names, else case-insensitive)."""
    from affectnetplus_hf.emotions import EMOTIONS

    by_lower = {str(c).lower(): c for c in frame.columns}
    names, missing = [], []
    for emotion in EMOTIONS:
        if emotion in frame.columns:
            names.append(emotion)
        elif emotion.lower() in by_lower:
            names.append(by_lower[emotion.lower()])
        else:
            missing.append(emotion)
    if missing:
        raise ValueError(
            f"{path}: missing emotion columns {missing}; expected the 8 columns {list(EMOTIONS)} "
            f"(found columns: {[str(c) for c in frame.columns]})"
        )
    return names


def soft_label_matrix(frame, path: str, id_column: str | None):
    """``(N, 8)`` float array of the emotion columns; non-numeric cells and NaN raise, naming file, row and id."""
    import numpy as np
    import pandas as pd

    columns = soft_label_columns(frame, path)
    values = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        numeric = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(numeric))
        if bad.size:
            row = int(bad[0])
            where = f"row {row}" + (f" ({id_column}={frame[id_column].iloc[row]!r})" if id_column else "")
            raise ValueError(
                f"{path}: column {column!r} has {bad.size} missing or non-numeric value(s), first at {where}: "
                f"{frame[column].iloc[row]!r}; expected a number in [0, 1]"
            )
        values[:, j] = numeric
    return values


def match_rows(references, predictions, reference_path: str, prediction_path: str, id_column: str, ignore_extra: bool):
    """Align the prediction rows with the reference rows; returns ``(predictions aligned, how, n_extra)``."""
    has_ids = id_column in references.columns and id_column in predictions.columns
    if not has_ids:
        if id_column in references.columns or id_column in predictions.columns:
            logger.warning("only one file has a %r column: matching rows by position", id_column)
        if len(references) != len(predictions):
            raise ValueError(
                f"{prediction_path} has {len(predictions)} rows but {reference_path} has {len(references)}; "
                f"without an {id_column!r} column in both files the rows are matched by position, "
                "so the counts must agree"
            )
        return predictions.reset_index(drop=True), "position", 0
    for frame, path in ((references, reference_path), (predictions, prediction_path)):
        ids = frame[id_column]
        if ids.isna().any():
            row = int(ids.isna().to_numpy().nonzero()[0][0])
            raise ValueError(f"{path}: empty {id_column!r} at row {row}")
        duplicated = ids[ids.duplicated()]
        if len(duplicated):
            raise ValueError(
                f"{path}: {len(duplicated)} duplicated {id_column!r} value(s), e.g. {duplicated.iloc[:3].tolist()}"
            )
    reference_ids = references[id_column].astype(str)
    prediction_ids = predictions[id_column].astype(str)
    indexed = predictions.set_index(prediction_ids)
    missing = ~reference_ids.isin(indexed.index)
    if missing.any():
        raise ValueError(
            f"{prediction_path}: no prediction for {int(missing.sum())} of the {len(references)} reference images, "
            f"e.g. {reference_ids[missing].iloc[:3].tolist()}"
        )
    extra = int((~prediction_ids.isin(set(reference_ids))).sum())
    if extra and not ignore_extra:
        raise ValueError(
            f"{prediction_path}: {extra} prediction row(s) have an {id_column!r} not in {reference_path}; "
            "pass --ignore-extra-predictions to skip them"
        )
    if extra:
        logger.warning("ignoring %d prediction row(s) whose %s is not in %s", extra, id_column, reference_path)
    aligned = indexed.loc[reference_ids.to_numpy()].reset_index(drop=True)
    return aligned, id_column, extra


def _read_tables(references_path: str, predictions_path: str, by: list[str] | tuple[str, ...] = ()):
    """The two tables (:func:`read_table`), checked non-empty and holding every ``by`` column between them."""
    references = read_table(references_path)
    predictions = read_table(predictions_path)
    if len(references) == 0:
        raise ValueError(f"{references_path}: the table has no rows")
    if len(predictions) == 0:
        raise ValueError(f"{predictions_path}: the table has no rows")
    for column in by:
        if column not in references.columns and column not in predictions.columns:
            raise ValueError(
                f"--by column {column!r} is in neither {references_path} nor {predictions_path} "
                f"(reference columns: {[str(c) for c in references.columns]})"
            )
    return references, predictions


def compute_from_files(
    references_path: str,
    predictions_path: str,
    *,
    by: list[str] | tuple[str, ...] = (),
    id_column: str = "image_id",
    ignore_extra_predictions: bool = False,
    epsilon: float | None = None,
    normalize: bool = True,
    ties: str = "ordinal",
    clip: bool = False,
) -> dict:
    """The ``metrics compute`` result as a dict (JSON-ready); see the module docstring."""
    from affectnetplus_hf.metrics.functional import DEFAULT_EPSILON, soft_label_metrics

    epsilon = DEFAULT_EPSILON if epsilon is None else epsilon
    references, predictions = _read_tables(references_path, predictions_path, by)
    aligned, matched_by, n_extra = match_rows(
        references, predictions, references_path, predictions_path, id_column, ignore_extra_predictions
    )
    ids = id_column if id_column in references.columns else None
    reference_values = soft_label_matrix(references, references_path, ids)
    prediction_values = soft_label_matrix(aligned, predictions_path, ids if id_column in aligned.columns else None)
    options = {"epsilon": float(epsilon), "normalize": bool(normalize), "ties": ties, "clip": bool(clip)}
    result: dict = {
        "references": str(references_path),
        "predictions": str(predictions_path),
        "matched_by": matched_by,
        "n": int(len(references)),
        "n_extra_predictions_ignored": n_extra,
        "options": options,
        "metrics": soft_label_metrics(reference_values, prediction_values, **options),
        "by": {},
    }
    for column in by:
        source = references if column in references.columns else aligned
        keys = source[column].to_numpy()
        table = soft_label_metrics(reference_values, prediction_values, by=keys, **options)
        result["by"][column] = {str(group): row for group, row in table.items()}
    return result


def run_compute(args: argparse.Namespace) -> int:
    from affectnetplus_hf.fileio import write_text_atomic

    result = compute_from_files(
        args.references,
        args.predictions,
        by=args.by,
        id_column=args.id_column,
        ignore_extra_predictions=args.ignore_extra_predictions,
        epsilon=args.epsilon,
        normalize=args.normalize,
        ties=args.ties,
        clip=args.clip,
    )
    text = json.dumps(result, indent=2)
    if args.output:
        Path(args.output).absolute().parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.output, text + "\n")
    print(text)
    return 0
