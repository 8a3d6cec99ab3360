"""``affectnetplus push``: private by default, public only with a license note (no network: HfApi is faked)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from affectnetplus_hf.cli import main
from affectnetplus_hf.dataset import LICENSE_NOTE_BEGIN, push_dataset


class FakeApi:
    """Records the calls ``push_dataset`` makes; ``existing_public`` simulates a public repository."""

    instances: list[FakeApi] = []

    def __init__(self, token=None, existing_public: bool = False):
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        self.private: bool | None = None if not existing_public else False
        FakeApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.private is None:
            self.private = kwargs["private"]
        return f"https://huggingface.co/datasets/{repo_id}"

    def repo_info(self, repo_id, **kwargs):
        self.calls.append(("repo_info", {"repo_id": repo_id, **kwargs}))
        return SimpleNamespace(private=self.private)

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return SimpleNamespace(commit_url=f"https://huggingface.co/datasets/{kwargs['repo_id']}/commit/abc")

    def names(self):
        return [name for name, _ in self.calls]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    (tmp_path / "statistics.json").write_text('{"source_kind": "affectnet"}')
    return tmp_path


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.instances = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_cli_push_is_private_by_default(folder, fake_hub, capsys):
    assert main(["push", str(folder), "lab/affectnet-plus"]) == 0
    api = fake_hub.instances[-1]
    create = dict(api.calls)["create_repo"]
    assert create["private"] is True and create["repo_type"] == "dataset"
    upload = dict(api.calls)["upload_folder"]
    assert upload["folder_path"] == str(folder) and upload["repo_type"] == "dataset"
    assert "commit/abc" in capsys.readouterr().out


def test_public_needs_a_license_note_and_nothing_is_created(folder, fake_hub):
    assert main(["push", str(folder), "lab/affectnet-plus", "--public"]) == 1
    assert fake_hub.instances == []  # refused before any hub call
    with pytest.raises(ValueError, match="license-note"):
        push_dataset(folder, "lab/x", public=True, license_note="   ", api=FakeApi())


def test_public_with_note_creates_public_repo_and_records_the_note(folder, fake_hub):
    note = "Synthetic faces only; MIT."
    assert main(["push", str(folder), "lab/sample", "--public", "--license-note", note]) == 0
    api = fake_hub.instances[-1]
    assert dict(api.calls)["create_repo"]["private"] is False
    card = (folder / "README.md").read_text()
    assert LICENSE_NOTE_BEGIN in card and note in card
    # pushing again replaces the note instead of stacking a second one
    push_dataset(folder, "lab/sample", public=True, license_note="second", api=FakeApi())
    card = (folder / "README.md").read_text()
    assert card.count(LICENSE_NOTE_BEGIN) == 1 and "second" in card and note not in card


def test_private_push_into_existing_public_repo_refuses_without_upload(folder):
    api = FakeApi(existing_public=True)
    with pytest.raises(ValueError, match="already exists and is public"):
        push_dataset(folder, "lab/affectnet-plus", api=api)
    assert "upload_folder" not in api.names()
    assert dict(api.calls)["create_repo"]["private"] is True


def test_bad_arguments(folder, tmp_path):
    with pytest.raises(ValueError, match="owner/name"):
        push_dataset(folder, "no-slash", api=FakeApi())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_dataset(tmp_path / "missing", "lab/x", api=FakeApi())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="README.md"):
        push_dataset(empty, "lab/x", api=FakeApi())


def test_push_without_network_is_one_line(folder, monkeypatch, caplog):
    """No network (the hub unreachable): one ERROR line naming what failed, exit 1, no traceback."""
    import huggingface_hub
    import requests

    class OfflineApi(FakeApi):
        def create_repo(self, repo_id, **kwargs):
            raise requests.exceptions.ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    assert main(["push", str(folder), "lab/affectnet-plus"]) == 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "huggingface.co" in errors[0].getMessage()
    assert not errors[0].exc_info


def test_push_leaves_out_the_run_marker_and_waits_for_no_build(folder, fake_hub):
    """The run-folder marker is local bookkeeping (not uploaded); a folder a build holds is not pushed."""
    from affectnetplus_hf.run_folder import MARKER_FILE, FolderLock

    (folder / MARKER_FILE).write_text("{}")
    assert main(["push", str(folder), "lab/affectnet-plus"]) == 0
    upload = dict(fake_hub.instances[-1].calls)["upload_folder"]
    assert MARKER_FILE in upload["ignore_patterns"]
    with FolderLock(folder):  # a build (or another push) of this folder is running
        with pytest.raises(ValueError, match=rf"is in use by process {os.getpid()}"):
            push_dataset(folder, "lab/affectnet-plus", api=FakeApi())
    assert not (folder.parent / f".{folder.name}.lock").read_text()  # released
