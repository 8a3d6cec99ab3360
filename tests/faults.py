"""Run the ``affectnetplus`` CLI with a fault injected by monkeypatching (test helper, not a test).

    python tests/faults.py KILL_AT [HOLD_FILE] -- affectnetplus-arguments...

``KILL_AT`` is ``-`` (no kill), or ``N:point``: SIGKILL this process at ``point`` of the ``N``-th shard a
labeling run writes: ``tmp`` (its temporary Parquet file written, not yet renamed), ``parquet`` (renamed,
before the sidecar) or ``sidecar`` (after the sidecar). With ``HOLD_FILE`` (not ``-``), the run waits
after its first shard until that file exists (so a test can start a second run while this one holds
the folder's lock).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _install(kill: tuple[int, str] | None, hold: Path | None) -> None:
    import pyarrow.parquet as pq

    from affectnetplus_hf import labeling

    written = {"shards": 0}
    write_table = pq.write_table
    write_shard = labeling.LabelRun.write_shard

    def point(name: str) -> None:
        if kill is not None and written["shards"] == kill[0] and name == kill[1]:
            os.kill(os.getpid(), signal.SIGKILL)

    def write_table_then_maybe_kill(*args, **kwargs):
        write_table(*args, **kwargs)
        point("tmp")

    def write_shard_with_faults(self, shard, result):
        written["shards"] += 1
        pq.write_table = write_table_then_maybe_kill
        try:
            sidecar_write = labeling.write_json_atomic

            def sidecar_then_maybe_kill(target, payload):
                if Path(target) == self.sidecar_path(shard):
                    point("parquet")
                    sidecar_write(target, payload)
                    point("sidecar")
                else:
                    sidecar_write(target, payload)

            labeling.write_json_atomic = sidecar_then_maybe_kill
            try:
                info = write_shard(self, shard, result)
            finally:
                labeling.write_json_atomic = sidecar_write
        finally:
            pq.write_table = write_table
        if hold is not None and written["shards"] == 1:
            while not hold.exists():
                time.sleep(0.05)
        return info

    labeling.LabelRun.write_shard = write_shard_with_faults


def main(argv: list[str]) -> int:
    kill_at, hold, _, *command = argv
    kill = None if kill_at == "-" else (int(kill_at.split(":")[0]), kill_at.split(":")[1])
    _install(kill, None if hold == "-" else Path(hold))
    from affectnetplus_hf.cli import main as cli_main

    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
