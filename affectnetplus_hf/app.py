"""A web page to look at soft labels: ``affectnetplus app MODEL_DIR`` and the ``spaces/`` Space.

A person uploads a photo (or picks a sample face); the page runs the face stage (`docs/method.md#face-stage`),
numbers the faces from the left and shows, for the chosen face and a saved :class:`~affectnetplus_hf.SoftLabeler`,
the soft label as a bar chart and a table (with the ensemble spread and each family's scores), the subset the
image would fall in for a chosen hard label, and the EBC vs AU family scores.

:func:`build_app` makes the Gradio ``Blocks`` (``pip install "affectnetplus-hf[app]"``) from a loaded
soft-labeler; :func:`launch_app` loads the model, writes a few sample faces and serves it — the CLI command
and ``spaces/app.py`` both call it. The numbers come from :func:`analyse_image` and :func:`analyse_upload`,
which need no Gradio. A failure is one line on the page and in the log (its traceback only at DEBUG).
"""

from __future__ import annotations

import contextlib
import csv
import html
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affectnetplus_hf.emotions import EMOTIONS, NUM_EMOTIONS
from affectnetplus_hf.images import BadImageError

logger = logging.getLogger(__name__)

#: Dropdown entry meaning "use the top emotion as the hard label".
TOP_EMOTION = "top emotion"
#: Sample faces shown as examples by default.
DEFAULT_N_EXAMPLES = 6
TITLE = "AffectNet+ soft labels"
#: Decimals of the values shown in the table (and on the bars).
DECIMALS = 4
#: The "Faces" choice: detect the faces of a photo (the face stage), or label the whole image as one face
#: crop (``predict --detector none``; the sample faces are crops).
DETECT_FACES = "detect faces"
WHOLE_IMAGE = "the image is a face crop"
FACE_MODES = (DETECT_FACES, WHOLE_IMAGE)
#: Box colours, cycled over the faces.
BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4")

_CSS = """
#soft-label-values table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
#soft-label-values th, #soft-label-values td { padding: 2px 8px; text-align: right; }
#soft-label-values th:nth-child(2), #soft-label-values td:nth-child(2) { text-align: left; }
#soft-label-values tr.hard-label td { font-weight: 700; }
#page-message p.problem { color: #b00020; font-weight: 600; }
"""


# ---------------------------------------------------------------------------------------------- numbers


def _row(value) -> list[float] | None:
    """First row of an (N, 8) tensor/array as Python floats, or None."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1, NUM_EMOTIONS)[0]]


def predict_scores(labeler, image) -> dict[str, list[float] | None]:
    """Run ``labeler.predict`` on one image (path, PIL image, bytes or uint8 array); returns the 8 values of
    each output: ``soft_label``, ``spread``, ``ebc``, ``au``, ``dist``, ``calibrated`` (None when absent)."""
    import torch

    with torch.inference_mode():
        output = labeler.predict(image)
    return {
        "soft_label": _row(output.soft_label),
        "spread": _row(output.spread),
        "ebc": _row(output.ebc_scores),
        "au": _row(output.au_scores),
        "dist": _row(output.dist_scores),
        "calibrated": _row(output.soft_label_calibrated),
    }


def _hard_label_index(hard_label, soft_label: Sequence[float]) -> int:
    if hard_label is None or hard_label == "" or hard_label == TOP_EMOTION:
        return int(np.argmax(np.asarray(soft_label)))
    if isinstance(hard_label, str):
        if hard_label not in EMOTIONS:
            raise ValueError(f"unknown hard label {hard_label!r}; expected one of {', '.join(EMOTIONS)}")
        return EMOTIONS.index(hard_label)
    index = int(hard_label)
    if not 0 <= index < NUM_EMOTIONS:
        raise ValueError(f"hard label index must be in 0..{NUM_EMOTIONS - 1}, got {index}")
    return index


def analyse_scores(scores: dict[str, Any], hard_label=None) -> dict[str, Any]:
    """Ranking, hard label, its rank and subset for :func:`predict_scores`' output.

    ``hard_label``: an emotion name, an index, or None / :data:`TOP_EMOTION` for the top emotion.
    The rank and subset come from :func:`affectnetplus_hf.subsets.hard_label_ranks` and
    :func:`~affectnetplus_hf.subsets.assign_subsets` (rank 1 → easy, 2–3 → challenging, else difficult).
    """
    from affectnetplus_hf.subsets import assign_subsets, hard_label_ranks

    soft = np.asarray(scores["soft_label"], dtype=np.float64)
    hard = _hard_label_index(hard_label, soft)
    ranking = [int(i) for i in np.argsort(-soft, kind="stable")]
    rank = int(hard_label_ranks(soft[None, :], np.asarray([hard]))[0])
    subset = str(assign_subsets(soft[None, :], np.asarray([hard]))[0])
    return {
        **scores,
        "hard_label": hard,
        "hard_label_name": EMOTIONS[hard],
        "rank": rank,
        "subset": subset,
        "ranking": ranking,
        "top": ranking[0],
    }


def analyse_image(labeler, image, hard_label=None) -> dict[str, Any]:
    """Everything the page shows for one image: :func:`predict_scores` + :func:`analyse_scores`."""
    return analyse_scores(predict_scores(labeler, image), hard_label)


def _scores_of(output, k: int) -> dict[str, list[float] | None]:
    """Row ``k`` of a soft-labeler output as :func:`predict_scores` gives it."""
    fields = {
        "soft_label": "soft_label",
        "spread": "spread",
        "ebc": "ebc_scores",
        "au": "au_scores",
        "dist": "dist_scores",
        "calibrated": "soft_label_calibrated",
    }
    return {key: _row(None if output.get(name) is None else output[name][k : k + 1]) for key, name in fields.items()}


def face_scores(labeler, pixel_values: np.ndarray) -> list[dict[str, list[float] | None]]:
    """:func:`predict_scores` of each face of one photo, from its ``(k, 3, S, S)`` network inputs, through
    the runner ``predict`` uses (:func:`~affectnetplus_hf.models.runner.iter_soft_labels`)."""
    import torch

    from affectnetplus_hf.models.runner import iter_soft_labels

    batch = {"pixel_values": torch.from_numpy(np.ascontiguousarray(pixel_values, dtype=np.float32))}
    return [
        _scores_of(output, k)
        for _, output in iter_soft_labels(labeler, [batch])
        for k in range(output["soft_label"].shape[0])
    ]


def analyse_upload(
    labeler, finder, path: str | os.PathLike, mode: str = DETECT_FACES, name: str | None = None
) -> dict[str, Any]:
    """Every face of an uploaded file: ``{"image": the image shown, "faces": [{"number", "box", "score",
    "scores"}], "detector"}``, faces numbered from 1 left to right (`docs/method.md#face-stage`).

    ``mode``: :data:`DETECT_FACES` (the face stage on the EXIF-upright image, every face) or
    :data:`WHOLE_IMAGE` (the stored image labelled whole, one "face" over all of it, as ``predict
    --detector none``). ``name``: how messages name the file. Raises
    :class:`~affectnetplus_hf.images.BadImageError` for a file that is not a readable image.
    """
    from affectnetplus_hf.faces.pipeline import STATUS_FACE, photo_faces
    from affectnetplus_hf.images import load_image

    if mode not in FACE_MODES:
        raise ValueError(f"unknown face mode {mode!r}; expected one of {', '.join(FACE_MODES)}")
    name = name or os.path.basename(os.fspath(path))
    if mode == WHOLE_IMAGE:
        image = load_image(path, name)
        return {
            "image": image,
            "detector": None,
            "faces": [
                {
                    "number": 1,
                    "box": (0.0, 0.0, float(image.size[0]), float(image.size[1])),
                    "score": None,
                    "scores": predict_scores(labeler, os.fspath(path)),
                }
            ],
        }
    image = load_image(path, name, upright=True)
    rows = [
        row
        for row in photo_faces(finder, labeler.image_processor, path, name, no_face="skip", image=image)
        if row.status == STATUS_FACE
    ]
    scores = face_scores(labeler, np.stack([row.pixel_values for row in rows])) if rows else []
    faces = [
        {"number": row.index + 1, "box": tuple(row.box), "score": row.score, "scores": values}
        for row, values in zip(rows, scores)
    ]
    return {"image": image, "faces": faces, "detector": finder.detector_name}


def largest_face(faces: Sequence[dict[str, Any]]) -> int | None:
    """Number of the largest face (``predict``'s default choice), None without faces."""
    if not faces:
        return None
    return max(faces, key=lambda f: ((f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]), -f["number"]))[
        "number"
    ]


# ---------------------------------------------------------------------------------------------- views


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.{DECIMALS}f}"


def values_html(result: dict[str, Any] | None) -> str:
    """The soft label as an HTML table in ranking order (ids ``soft-label-<Emotion>``, 4 decimals)."""
    if not result:
        return '<div id="soft-label-values"><p>Upload a photo or pick a sample face.</p></div>'
    columns = [
        ("spread", "± spread"),
        ("ebc", "EBC"),
        ("au", "AU"),
        ("dist", "Distribution"),
        ("calibrated", "Calibrated"),
    ]
    columns = [(key, name) for key, name in columns if result.get(key) is not None]
    head = "".join(f"<th>{name}</th>" for _, name in columns)
    rows = []
    for position, index in enumerate(result["ranking"], start=1):
        emotion = EMOTIONS[index]
        value = result["soft_label"][index]
        hard = index == result["hard_label"]
        cells = "".join(
            f'<td class="{key}" id="{key}-{emotion}">{_fmt(result[key][index])}</td>' for key, _ in columns
        )
        mark = " ← hard label" if hard else ""
        rows.append(
            f'<tr data-emotion="{emotion}"{" class=hard-label" if hard else ""}><td>{position}</td>'
            f"<td>{html.escape(emotion)}{mark}</td>"
            f'<td class="soft-label" id="soft-label-{emotion}" data-value="{value!r}">{_fmt(value)}</td>{cells}</tr>'
        )
    return (
        '<div id="soft-label-values"><table><thead><tr><th>Rank</th><th>Emotion</th><th>Soft label</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def summary_html(result: dict[str, Any] | None) -> str:
    """One line: top emotion, the hard label's rank and its subset (id ``subset-name``)."""
    if not result:
        return '<div id="summary-line"></div>'
    top = EMOTIONS[result["top"]]
    return (
        f'<div id="summary-line"><p>Top emotion: <b id="top-emotion">{top}</b> '
        f'({_fmt(result["soft_label"][result["top"]])}). Hard label <b id="hard-label-name">'
        f'{result["hard_label_name"]}</b> is ranked <b id="hard-label-rank">{result["rank"]}</b> of 8 → subset '
        f'<b id="subset-name">{result["subset"]}</b> (rank 1: easy, 2–3: challenging, 4–8: difficult).</p></div>'
    )


def draw_faces(image, faces: Sequence[dict[str, Any]]):
    """A copy of ``image`` with each face's box and number drawn (line width and font follow the image size)."""
    from PIL import ImageDraw, ImageFont

    shown = image.convert("RGB").copy()
    draw = ImageDraw.Draw(shown)
    width = max(2, round(max(shown.size) / 250))
    size = max(12, round(max(shown.size) / 30))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        font = ImageFont.load_default()
    for face in faces:
        colour = BOX_COLOURS[(face["number"] - 1) % len(BOX_COLOURS)]
        x0, y0, x1, y1 = face["box"]
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        label = str(face["number"])
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tx, ty = x0, max(0.0, y0 - (bottom - top) - 2 * width)
        draw.rectangle((tx, ty, tx + right - left + 2 * width, ty + bottom - top + 2 * width), fill=colour)
        draw.text((tx + width - left, ty + width - top), label, fill="white", font=font)
    return shown


def faces_html(photo: dict[str, Any] | None) -> str:
    """The faces of an upload as a list (id ``faces-found``; each item ``data-box`` = x0,y0,x1,y1)."""
    if not photo or not photo["faces"]:
        return '<div id="faces-found"></div>'
    items = "".join(
        f'<li class="face" data-face="{face["number"]}" data-box="{",".join(f"{v:.2f}" for v in face["box"])}">'
        f"face {face['number']}: box ({', '.join(f'{v:.0f}' for v in face['box'])})"
        + ("" if face["score"] is None else f", detector score {face['score']:.2f}")
        + "</li>"
        for face in photo["faces"]
    )
    return f'<div id="faces-found"><ol>{items}</ol></div>'


def message_html(text: str | None, problem: bool = False) -> str:
    """The page's one-line message (id ``page-message``; class ``problem`` for a failure or no face)."""
    if not text:
        return '<div id="page-message"></div>'
    return f'<div id="page-message"><p class="{"problem" if problem else "info"}">{html.escape(text)}</p></div>'


def photo_message(photo: dict[str, Any], name: str) -> tuple[str, bool]:
    """``(message, is a problem)`` for an analysed upload."""
    count = len(photo["faces"])
    if photo["detector"] is None:
        return f"{name}: the whole image labelled as one face crop.", False
    if not count:
        return (
            f"No face found in {name} (the {photo['detector']} detector). If the image is already a face "
            f"crop, choose '{WHOLE_IMAGE}'.",
            True,
        )
    return (
        f"{count} face{'s' if count > 1 else ''} found in {name} (the {photo['detector']} detector), "
        "numbered from the left; choose one to see its soft label.",
        False,
    )


def soft_label_figure(result: dict[str, Any]):
    """Horizontal bars of the soft label in ranking order (top first), the ensemble spread as error bars and
    the hard label's bar highlighted."""
    from matplotlib.figure import Figure

    order = result["ranking"]
    values = np.asarray(result["soft_label"])[order]
    spread = None if result.get("spread") is None else np.asarray(result["spread"])[order]
    colours = ["#d62728" if i == result["hard_label"] else "#1f77b4" for i in order]
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(order))
    axis.barh(positions, values, xerr=spread, color=colours, capsize=3, ecolor="#555555")
    axis.set_yticks(positions, [f"{rank}. {EMOTIONS[i]}" for rank, i in enumerate(order, start=1)])
    axis.invert_yaxis()
    ends = values + (spread if spread is not None else 0.0)
    for position, value, end in zip(positions, values, ends):
        axis.text(end, position, f"  {value:.{DECIMALS}f}", va="center", fontsize=8)
    upper = float(np.max(ends))
    axis.set_xlim(0, max(upper * 1.25, 0.05))
    axis.set_xlabel("soft label (error bar: ensemble spread)")
    axis.set_title(f"hard label {result['hard_label_name']}: rank {result['rank']} → {result['subset']}", fontsize=10)
    return figure


def family_figure(result: dict[str, Any]):
    """Grouped bars of the family scores (EBC, AU, distribution: those the soft-labeler has) per emotion."""
    from matplotlib.figure import Figure

    families = [
        (key, name, colour)
        for key, name, colour in (
            ("ebc", "EBC", "#1f77b4"),
            ("au", "AU", "#ff7f0e"),
            ("dist", "Distribution", "#2ca02c"),
        )
        if result.get(key) is not None
    ]
    figure = Figure(figsize=(6.4, 3.0), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(NUM_EMOTIONS)
    width = 0.8 / max(len(families), 1)
    for k, (key, name, colour) in enumerate(families):
        axis.bar(positions + (k - (len(families) - 1) / 2) * width, result[key], width, label=name, color=colour)
    axis.plot(positions, result["soft_label"], "k_", markersize=14, label="soft label")
    axis.set_xticks(positions, EMOTIONS, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("score")
    top = max(float(np.max([result[key] for key, _, _ in families] + [result["soft_label"]])), 0.05)
    axis.set_ylim(0, top * 1.3)
    axis.legend(fontsize=8, ncols=len(families) + 1, loc="upper center")
    axis.set_title("family scores", fontsize=10)
    return figure


# ---------------------------------------------------------------------------------------------- sample faces


def write_sample_faces(directory: str | os.PathLike, n: int = DEFAULT_N_EXAMPLES, seed: int = 0) -> list[str]:
    """Render a small synthetic sample into ``directory`` (which must not exist yet) and return the paths of
    ``n`` of its faces, faces of different primary emotions first."""
    from affectnetplus_hf.synthetic import write_sample

    if n <= 0:
        return []
    directory = Path(directory)
    write_sample(
        directory,
        layout="csv",
        n_train=max(2 * n, 8),
        n_val=0,
        n_mas=0,
        seed=seed,
        contact_sheet=False,
        progress=False,
    )
    primary: dict[str, str] = {}
    truth = directory / "ground_truth.csv"
    if truth.is_file():
        with open(truth, newline="", encoding="utf-8") as handle:
            primary = {row["image_id"]: row.get("primary", "") for row in csv.DictReader(handle)}
    faces = sorted(
        p
        for p in directory.rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.name != "sample_grid.png"
    )
    emotions = [primary.get(p.relative_to(directory).as_posix(), "") for p in faces]
    first = [i for i, emotion in enumerate(emotions) if emotion not in emotions[:i]]  # one per emotion, then the rest
    order = first + [i for i in range(len(faces)) if i not in first]
    return [str(faces[i]) for i in order[:n]]


# ---------------------------------------------------------------------------------------------- Gradio


def _log_page_error(level: int, text: str) -> None:
    """Log a page error as one line; its traceback only when this logger is at DEBUG (call in ``except``)."""
    logger.log(level, "%s", text, exc_info=logger.isEnabledFor(logging.DEBUG))


def _payload_path(value) -> str | None:
    """The file of an input Gradio did not preprocess (``preprocess=False``): a ``FileData`` dict or a path."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return None if value is None else os.fspath(value)
    if isinstance(value, dict):
        return value.get("path")
    return str(getattr(value, "path", "") or "") or None


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ImportError('the app needs gradio: pip install "affectnetplus-hf[app]"') from None
    return gradio


def theme():
    """Gradio's default theme with the fonts Gradio ships (no font download)."""
    gr = _gradio()
    return gr.themes.Default(
        font=(gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"),
    )


def _page_handlers(gr, labeler, finder):
    """The page's two steps, ``(analyse, render)``: an upload → the faces' scores, and the chosen face's
    scores → the soft-label views. A failure is one line on the page and in the log, never a traceback."""
    no_choice = gr.update(choices=[], value=None, visible=False)

    def failed(text: str):
        return None, None, no_choice, faces_html(None), message_html(text, problem=True)

    def analyse(path, mode):
        """The upload → (state, image with boxes, face choice, faces list, message): every output replaced."""
        if path is None:
            return None, None, no_choice, faces_html(None), message_html(None)
        name = os.path.basename(os.fspath(path))
        try:
            photo = analyse_upload(labeler, finder, path, mode, name)
        except BadImageError as error:
            reason = str(error).replace(os.fspath(path), name)  # Gradio's upload folder says nothing to the user
            _log_page_error(logging.WARNING, f"upload: {reason}")
            return failed(f"Could not read the upload: {reason}")
        except Exception as error:  # one line on the page and in the log; the traceback only at DEBUG
            _log_page_error(logging.ERROR, f"upload {name}: {type(error).__name__}: {error}")
            return failed(f"Could not analyse {name}: {type(error).__name__}: {error}")
        text, problem = photo_message(photo, name)
        if problem:
            logger.info("upload: %s", text)
        faces = photo["faces"]
        choice = gr.update(
            choices=[(f"face {f['number']}", str(f["number"])) for f in faces],
            value=None if not faces else str(largest_face(faces)),
            visible=len(faces) > 1,
        )
        shown = draw_faces(photo["image"], faces if photo["detector"] else [])
        state = {"faces": {str(f["number"]): f["scores"] for f in faces}} if faces else None
        return state, shown, choice, faces_html(photo if photo["detector"] else None), message_html(text, problem)

    def render(state, choice, hard_label):
        scores = None if not state else state["faces"].get(str(choice)) or next(iter(state["faces"].values()))
        if scores is None:
            return summary_html(None), None, values_html(None), None
        try:
            result = analyse_scores(scores, hard_label)
            return summary_html(result), soft_label_figure(result), values_html(result), family_figure(result)
        except Exception as error:  # e.g. an unknown hard label sent to the API: one line, no traceback
            _log_page_error(logging.WARNING, f"soft label view: {type(error).__name__}: {error}")
            raise gr.Error(str(error), print_exception=False) from None

    return analyse, render


def _introduction(title: str, detector_name: str, labeler) -> str:
    """The Markdown at the top of the page: what it does with an upload."""
    names = {"ebc": "EBC", "au": "AU", "dist": "distribution"}
    families = " + ".join(names.get(f, f) for f in getattr(labeler.config, "families", ()) or ()) or "its"
    return (
        f"# {title}\nUpload a photo (or pick a sample face): its faces are found (the {detector_name} "
        "detector, the photo turned upright by its EXIF orientation) and numbered from the left; the "
        f"soft-labeler ({families} members) gives the chosen face's soft label over the 8 emotions. Choose "
        "a hard label to see its rank and the subset the face would fall in."
    )


def _input_column(gr, examples: list[str]) -> dict[str, Any]:
    """The left column: upload button, face mode, the faces found, the face and hard-label choices, the
    sample faces. Returns its components by name."""
    with gr.Column(scale=2):
        with gr.Column(elem_id="face-input"):  # the button's file input lies next to it, in here
            upload = gr.UploadButton(
                "Upload a photo", file_count="single", type="filepath", variant="primary", elem_id="upload-button"
            )
        mode = gr.Radio(choices=list(FACE_MODES), value=DETECT_FACES, label="Faces", elem_id="face-mode")
        shown = gr.Image(label="Faces found", type="pil", interactive=False, height=300, elem_id="faces-image")
        choice = gr.Radio(choices=[], value=None, label="Face", visible=False, elem_id="face-choice")
        found = gr.HTML(faces_html(None), elem_id="faces-list")
        hard = gr.Dropdown(
            choices=[TOP_EMOTION, *EMOTIONS], value=TOP_EMOTION, label="Hard label", elem_id="hard-label"
        )
        sample = gr.Image(type="filepath", visible=False, elem_id="sample-input")
        if examples:
            gr.Examples(
                examples=[[path] for path in examples],
                inputs=[sample],
                label="Faces from the synthetic sample (face crops, labelled whole)",
                examples_per_page=len(examples),
                elem_id="sample-faces",
            )
    return {
        "upload": upload,
        "mode": mode,
        "shown": shown,
        "choice": choice,
        "found": found,
        "hard": hard,
        "sample": sample,
    }


def _result_column(gr) -> dict[str, Any]:
    """The right column: message, summary, soft-label chart and table, family chart, by name."""
    with gr.Column(scale=3):
        return {
            "message": gr.HTML(message_html(None), elem_id="message"),
            "summary": gr.HTML(summary_html(None), elem_id="summary"),
            "chart": gr.Plot(label="Soft label (hard-label ranking)", elem_id="soft-label-chart"),
            "values": gr.HTML(values_html(None), elem_id="soft-label-table"),
            "families_plot": gr.Plot(label="EBC vs AU family scores", elem_id="family-chart"),
        }


def _connect_events(gr, page: dict[str, Any], analyse, render) -> None:
    """Upload, face mode, sample pick, face choice and hard label → analyse and/or render, in one queue."""
    state, source = gr.State(None), gr.State(None)  # the faces' scores; the file analysed last
    outputs = [page["summary"], page["chart"], page["values"], page["families_plot"]]
    analysed = [state, page["shown"], page["choice"], page["found"], page["message"]]
    shown_face = [state, page["choice"], page["hard"]]
    # one queue: the last request wins. Inputs reach the functions unprocessed (``preprocess=False``): the
    # sample image is not opened by Gradio, nor a choice checked, so analyse/render report what is wrong
    # in one line instead of Gradio printing a traceback.
    queue = {"concurrency_id": "analyse", "concurrency_limit": 1, "preprocess": False}

    def analyse_upload_event(payload):  # a new upload is a photo first; "face crop" then re-labels it whole
        path = _payload_path(payload)
        return (path, DETECT_FACES, *analyse(path, DETECT_FACES))

    def analyse_sample_event(payload):
        path = _payload_path(payload)
        if not path:
            return (gr.update(),) * (len(analysed) + 2)
        return (path, WHOLE_IMAGE, *analyse(path, WHOLE_IMAGE))

    upload, mode, sample = page["upload"], page["mode"], page["sample"]
    upload.upload(analyse_upload_event, inputs=upload, outputs=[source, mode, *analysed], **queue).then(
        render, inputs=shown_face, outputs=outputs, **queue
    )
    mode.input(analyse, inputs=[source, mode], outputs=analysed, **queue).then(
        render, inputs=shown_face, outputs=outputs, **queue
    )
    sample.change(analyse_sample_event, inputs=sample, outputs=[source, mode, *analysed], **queue).then(
        render, inputs=shown_face, outputs=outputs, **queue
    )
    page["choice"].input(render, inputs=shown_face, outputs=outputs, **queue)
    page["hard"].change(render, inputs=shown_face, outputs=outputs, **queue)


def build_app(labeler, examples: Sequence[str | os.PathLike] = (), title: str = TITLE, detector: str = "auto"):
    """The page for ``labeler`` (a loaded SoftLabeler) as a ``gradio.Blocks``; ``examples``: face crops
    offered below the upload box (a pick is labelled in the :data:`WHOLE_IMAGE` mode); ``detector``: the face
    detector (`docs/method.md#face-stage`). :func:`launch_app` serves it (with :func:`theme`)."""
    gr = _gradio()
    from affectnetplus_hf.faces import FaceFinder

    finder = FaceFinder(detector, faces="all", processor=labeler.image_processor)
    analyse, render = _page_handlers(gr, labeler, finder)
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(_introduction(title, finder.detector_name, labeler))
        with gr.Row():
            page = _input_column(gr, [os.fspath(path) for path in examples])
            page.update(_result_column(gr))
        _connect_events(gr, page, analyse, render)
    return blocks


def load_labeler(model: str | os.PathLike, device: str = "cpu"):
    """The saved soft-labeler ``model`` (a folder or a hub id; :func:`~affectnetplus_hf.models.hub.load_soft_labeler`)
    in eval mode on ``device``."""
    from affectnetplus_hf.models.hub import load_soft_labeler

    return load_soft_labeler(model).to(device)


def launch_app(
    model,
    *,
    host: str | None = None,
    port: int | None = None,
    device: str = "cpu",
    n_examples: int = DEFAULT_N_EXAMPLES,
    title: str = TITLE,
    block: bool = True,
    quiet: bool = False,
    detector: str = "auto",
):
    """Load ``model`` (a SoftLabeler, a folder or a hub id), write ``n_examples`` sample faces to a temporary
    folder, build the page and serve it on ``host:port`` (None: Gradio's ``GRADIO_SERVER_NAME`` /
    ``GRADIO_SERVER_PORT`` or 127.0.0.1:7860). ``block=False`` returns the running ``Blocks`` at once;
    ``detector``: the face detector (`docs/method.md#face-stage`).

    Blocking, it serves until Ctrl-C or SIGTERM (:func:`sigterm_as_interrupt`), then removes the sample
    faces; with ``block=False`` they go with the returned app."""
    if not block:
        return _serve(model, host, port, device, n_examples, title, False, quiet, detector)
    with sigterm_as_interrupt():
        return _serve(model, host, port, device, n_examples, title, True, quiet, detector)


def _serve(model, host, port, device, n_examples, title, block, quiet, detector):
    """:func:`launch_app`'s work; blocking, the sample faces are removed however it stops."""
    labeler = model if hasattr(model, "predict") else load_labeler(model, device)
    faces_dir = tempfile.TemporaryDirectory(prefix="affectnetplus-app-")
    try:
        examples = write_sample_faces(Path(faces_dir.name) / "sample", n_examples)
        blocks = build_app(labeler, examples, title=title, detector=detector)
        blocks._affectnetplus_faces = faces_dir  # removed with the app
        blocks.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=not block,
            quiet=quiet,
            show_error=True,
            allowed_paths=[faces_dir.name],
            theme=theme(),
            css=_CSS,
        )
    finally:
        if block:
            faces_dir.cleanup()
    return blocks


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (``kill``, a container stopping) raises ``KeyboardInterrupt`` in the main thread,
    so the page stops exactly as on Ctrl-C: Gradio closes the server and the ``finally`` clauses clean up.
    The previous handler is restored on leaving; outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
