"""Hugging Face Space: the AffectNet+ soft-label page, the same page as ``affectnetplus app MODEL_DIR``.

The soft-labeler comes from the ``MODEL_DIR`` variable: a hub repo id (downloaded by
:func:`affectnetplus_hf.models.hub.load_soft_labeler`) or a folder. The ``affectnetplus_hf`` package is taken from the installed
package, or from a copy next to this file (the Space) or one folder up (a checkout of the repository).
Run locally: ``MODEL_DIR=path/to/soft_labeler python spaces/app.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _use_package_next_to_this_file() -> None:
    """Put the folder that holds ``affectnetplus_hf/`` (this one or its parent) on ``sys.path`` when the
    package is not installed."""
    if importlib.util.find_spec("affectnetplus_hf") is not None:
        return
    for folder in (HERE, HERE.parent):
        if (folder / "affectnetplus_hf" / "__init__.py").is_file():
            sys.path.insert(0, str(folder))
            return
    raise SystemExit("affectnetplus_hf not found: install it (pip install affectnetplus-hf) or copy its "
                     "affectnetplus_hf/ folder next to app.py")


def main() -> None:
    model = os.environ.get("MODEL_DIR", "").strip()
    if not model:
        raise SystemExit("set MODEL_DIR to a soft-labeler: a hub repo id or a folder written by "
                         "SoftLabeler.save_pretrained")
    _use_package_next_to_this_file()
    from affectnetplus_hf.app import launch_app

    # host and port: Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set by Spaces), else 127.0.0.1:7860
    launch_app(model, device=os.environ.get("DEVICE", "cpu"))


if __name__ == "__main__":
    main()
