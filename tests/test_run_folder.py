"""The run-folder contract (``affectnetplus_hf.run_folder``): lock, marker, resume check, staged publish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from affectnetplus_hf.run_folder import (
    MARKER_FILE,
    FolderLock,
    Marker,
    RunFolder,
    RunFolderError,
    describe_differences,
    files_fingerprint,
    records_fingerprint,
)

REPO = Path(__file__).resolve().parent.parent
HOLD = (
    "from affectnetplus_hf.run_folder import FolderLock\n"
    "import sys, time\n"
    "FolderLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def _holder(folder: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_stops_at_once_naming_the_holder(tmp_path):
    holder = _holder(tmp_path / "out")
    try:
        with pytest.raises(RunFolderError, match=rf"out is in use by process {holder.pid} \(started .*\); wait"):
            with RunFolder(tmp_path / "out", "labels", {}):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over_and_said(tmp_path, caplog):
    holder = _holder(tmp_path / "out")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with FolderLock(tmp_path / "out") as lock:
        assert lock.taken_over["pid"] == holder.pid
        assert json.loads((tmp_path / ".out.lock").read_text())["pid"] == os.getpid()
    assert f"took over the lock of process {holder.pid}" in caplog.text
    assert (tmp_path / ".out.lock").read_text() == ""  # released cleanly: nothing to take over next time
    caplog.clear()
    with FolderLock(tmp_path / "out") as lock:
        assert lock.taken_over is None and "took over" not in caplog.text


def test_start_new_resume_replace_and_refusals(tmp_path):
    out = tmp_path / "out"
    with RunFolder(out, "labels", {"seed": 0, "model": "a" * 64}) as folder:
        assert folder.start() == "new"
        folder.mark(complete=True)
    marker = json.loads((out / MARKER_FILE).read_text())
    assert marker == {
        "format": "affectnetplus-run",
        "kind": "labels",
        "version": 1,
        "complete": True,
        "identity": {"model": "a" * 64, "seed": 0},
    }
    with RunFolder(out, "labels", {"seed": 0, "model": "a" * 64}) as folder:
        assert folder.start() == "resume"
    with RunFolder(out, "labels", {"seed": 5, "model": "a" * 64}) as folder:
        with pytest.raises(RunFolderError, match=r"other settings \(seed: was 0, now 5\); resume with the same"):
            folder.start()
        assert folder.start(accept=lambda fields: fields == ["seed"]) == "resume"
        assert folder.start(overwrite=True) == "replace"
    with RunFolder(out, "labels", {"seed": 0, "model": "a" * 64}) as folder:  # a finished folder of a kind
        with pytest.raises(RunFolderError, match="already holds a finished run.*--overwrite"):  # that never resumes
            folder.start(resume=False)
    with RunFolder(out, "dataset", {}) as folder:
        with pytest.raises(RunFolderError, match="written by `affectnetplus label`, not by `affectnetplus build`"):
            folder.start(overwrite=True)


def test_a_folder_it_did_not_write_is_refused_and_kept(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".git").mkdir()  # hidden files count
    for overwrite in (False, True):
        with RunFolder(mine, "sample", {}) as folder:
            with pytest.raises(RunFolderError, match=r"not empty and was not written by .*found \['.git'\]"):
                folder.start(overwrite=overwrite)
    assert (mine / ".git").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file; expected a folder"):
        RunFolder(tmp_path / "file", "sample", {}).__enter__()


def test_clear_empties_only_its_own_kind(tmp_path):
    out = tmp_path / "out"
    with RunFolder(out, "demo", {}) as folder:
        folder.start()
        folder.mark()
        (out / "stage").mkdir()
        (out / "stage" / "x").write_text("x")
        folder.clear()
        assert list(out.iterdir()) == []
    with RunFolder(tmp_path / "other", "demo", {}) as folder:
        with pytest.raises(RunFolderError, match="refusing to empty"):
            folder.clear()


def test_publish_swaps_in_whole_and_removes_killed_staging(tmp_path):
    stale = Path(tempfile.mkdtemp(prefix=".ds.", suffix=".tmp", dir=tmp_path))
    foreign = tmp_path / ".ds2.abcdefgh.tmp"
    foreign.mkdir()
    with RunFolder(tmp_path / "ds", "dataset", {"a": 1}) as folder:
        folder.start()
        with pytest.raises(RuntimeError), folder.publish() as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("killed")
        assert not (tmp_path / "ds").exists() and not stale.exists()
        with folder.publish() as staging:
            (staging / "data").write_text("x")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [MARKER_FILE, "data"]
    assert Marker.read(tmp_path / "ds").complete and foreign.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.lock", ".ds2.abcdefgh.tmp", "ds"]


def test_folders_of_earlier_versions_are_read_as_version_0(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / ".affectnetplus-dataset").write_text("{}")
    assert Marker.read(old) == Marker("dataset", {}, version=0)
    with RunFolder(old, "dataset", {"a": 1}) as folder:
        with pytest.raises(RunFolderError, match="format version: was 0, now 1"):
            folder.start()
        assert folder.start(overwrite=True) == "replace"
    (old / MARKER_FILE).write_text("not json")
    with pytest.raises(RunFolderError, match="unreadable marker"):
        Marker.read(old)


def test_fingerprints_and_differences():
    assert records_fingerprint([("a", 1), ("b", None)]) == records_fingerprint([["a", "1"], ["b", "None"]])
    assert records_fingerprint([("a", 1)]) != records_fingerprint([("a", 2)])
    text = describe_differences({"seed": 0, "model": "x" * 100}, {"seed": 5, "model": "y" * 100, "new": 1})
    assert text.startswith("model: was 'xxxxx") and "seed: was 0, now 5" in text and "new: was None, now 1" in text
    assert len(text) < 200  # long values shortened


def test_files_fingerprint_names_and_contents(tmp_path):
    (tmp_path / "a").write_text("1")
    (tmp_path / ".hidden").write_text("ignored")
    first = files_fingerprint(tmp_path)
    (tmp_path / ".hidden").write_text("changed")
    assert files_fingerprint(tmp_path) == first
    (tmp_path / "a").write_text("2")
    assert files_fingerprint(tmp_path) != first
    with pytest.raises(FileNotFoundError, match="holds no files"):
        files_fingerprint(tmp_path / "empty")
