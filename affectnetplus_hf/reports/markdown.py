"""Markdown tables and the card templates, shared by every report and card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent.parent
#: Where templates are looked for, in order: packaged data (``affectnetplus_hf/templates/``, shipped in
#: wheels), then the repository checkout (source checkouts, editable installs).
TEMPLATE_ROOTS: tuple[Path, ...] = (_PACKAGE / "templates", _PACKAGE.parent)


def template_candidates(packaged: str, in_checkout: str) -> tuple[Path, ...]:
    """Paths of a template: ``templates/PACKAGED`` in the package, then ``IN_CHECKOUT`` in the repository."""
    return TEMPLATE_ROOTS[0] / packaged, TEMPLATE_ROOTS[1] / in_checkout


def read_template(candidates: Sequence[Path], what: str) -> str:
    """The text of the first existing path of ``candidates``; ``FileNotFoundError`` naming them all."""
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"{what} template not found; looked for {[str(p) for p in candidates]}")


def cell(value: Any, digits: int = 2) -> str:
    """A table cell: floats with ``digits`` decimals, anything else as ``str``."""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "", digits: int = 2) -> str:
    """A Markdown table (trailing newline). ``align`` has one letter per column, ``l`` or ``r`` (default
    all left); float cells get ``digits`` decimals."""
    rules = ["---:" if (align[k] if k < len(align) else "l") == "r" else "---" for k in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


__all__ = ["TEMPLATE_ROOTS", "cell", "markdown_table", "read_template", "template_candidates"]
