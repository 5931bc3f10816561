"""What a checkpoint folder contributes to a build: its own files, wherever the folder lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ovchat_build.errors import BuildError
from ovchat_build.export.plan import checkpoint_name
from ovchat_build.source.inputs import hash_inputs, weight_files
from ovchat_build.source.resolve import Source


def hub_snapshot(root: Path, repo: str = "models--acme--tiny-chat") -> Path:
    """A checkpoint laid out as the Hugging Face cache keeps it: snapshot files link to blobs."""
    cache = root / ".cache" / "huggingface" / "hub" / repo
    snapshot = cache / "snapshots" / ("0123abcd" * 5)
    snapshot.mkdir(parents=True)
    (cache / "blobs").mkdir()
    for name, data in (("config.json", b"{}"), ("model.safetensors", b"weights")):
        blob = cache / "blobs" / f"blob-{name}"
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return snapshot


def test_a_checkpoint_in_the_hugging_face_cache_has_its_files_as_inputs(tmp_path: Path) -> None:
    snapshot = hub_snapshot(tmp_path)
    source, inputs = hash_inputs(Source("hf-folder", str(snapshot), snapshot))
    assert [entry["file"] for entry in inputs] == ["config.json", "model.safetensors"]
    assert len(source.digest) == 64


def test_the_folders_own_dot_cache_is_not_an_input(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download.lock").write_text("hf download's own bookkeeping")
    (folder / "config.json").write_text("{}")
    assert weight_files(Source("hf-folder", str(folder), folder)) == [folder / "config.json"]


def test_a_folder_with_no_files_is_a_build_error_not_an_index_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / ".cache").mkdir(parents=True)
    (empty / ".cache" / "x").write_text("")
    with pytest.raises(BuildError, match="holds no files to build from"):
        hash_inputs(Source("hf-folder", str(empty), empty))


def test_a_snapshot_is_named_after_its_repository(tmp_path: Path) -> None:
    assert checkpoint_name(hub_snapshot(tmp_path)) == "tiny-chat"
    assert checkpoint_name(tmp_path / "my-checkpoint") == "my-checkpoint"
