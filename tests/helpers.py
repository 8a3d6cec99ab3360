"""Small helpers shared by test modules (import with ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

#: The header of a folder source's votes file (``affectnetplus_hf.sources.folder``).
VOTES_HEADER = "image,split,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt"


def png(path: Path) -> Path:
    """An 8x8 black PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    return path


def write_encoded(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """``text`` written to ``path`` in ``encoding`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def logged_errors(caplog) -> list[logging.LogRecord]:
    """The ERROR (and worse) records captured."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def one_line_error(caplog) -> str:
    """The one error logged: one line, no traceback; its message."""
    found = logged_errors(caplog)
    assert len(found) == 1, [r.getMessage() for r in found]
    message = found[0].getMessage()
    assert "\n" not in message and not found[0].exc_info and "Traceback" not in caplog.text
    return message


def accelerate_cpu_launch(port: int) -> list[str]:
    """The command prefix of ``accelerate launch`` with 2 CPU processes (set ``ACCELERATE_USE_CPU=1``)."""
    import sys

    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]
