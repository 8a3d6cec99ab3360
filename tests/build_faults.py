"""Run ``affectnetplus build`` that, holding the folder's lock, waits for a file (test helper, not a test).

    python tests/build_faults.py HOLD_FILE -- affectnetplus-arguments...

The build stops just before it writes the dataset card (its folder locked, its staging folder written)
until ``HOLD_FILE`` exists, so that a test can start a second build of the same folder meanwhile. It
gives up waiting after 10 minutes (a test that died does not leave it running for ever).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _install(hold: Path) -> None:
    from affectnetplus_hf import dataset

    render_card = dataset.render_card

    def render_card_when_released(*args, **kwargs):
        deadline = time.monotonic() + 600
        while not hold.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{hold} did not appear within 10 minutes")
            time.sleep(0.05)
        return render_card(*args, **kwargs)

    dataset.render_card = render_card_when_released


def main(argv: list[str]) -> int:
    hold, _, *command = argv
    _install(Path(hold))
    from affectnetplus_hf.cli import main as cli_main

    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
