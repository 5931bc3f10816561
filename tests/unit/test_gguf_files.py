"""Which .gguf files openvino-genai's own reader can open, read from the file's head alone."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from ovchat.errors import ModelError
from ovchat.model.files import find_model
from ovchat.model.gguf_cache import CONVERTED_FILES, Conversion, cached_ir, converted_folder
from ovchat.model.gguf_head import read_gguf_head


def gguf_head(path: Path, arch: str, tensors: dict[str, int]) -> Path:
    """A GGUF v3 head: the architecture, a context length and tensor infos (name -> ggml type id)."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value)) + value.encode()

    body = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 2)
    body += text("general.architecture") + struct.pack("<I", 8) + text(arch)
    body += text(f"{arch}.context_length") + struct.pack("<II", 4, 2048)
    for name, kind in tensors.items():
        body += text(name) + struct.pack("<IQQIQ", 2, 576, 576, kind, 0)
    path.write_bytes(body)
    return path


def test_the_head_names_each_tensor_type(tmp_path: Path) -> None:
    head = read_gguf_head(gguf_head(tmp_path / "m.gguf", "llama", {"a": 8, "b": 13, "c": 0}), tensors=True)
    assert head.tensor_types == {"a": "Q8_0", "b": "Q5_K", "c": "F32"}
    assert head.metadata["general.architecture"] == "llama"


def test_a_file_of_types_genai_reads_is_taken(tmp_path: Path) -> None:
    model = find_model(gguf_head(tmp_path / "m.gguf", "qwen2", {"a": 12, "b": 14, "c": 8, "d": 1}))
    assert model.is_gguf and model.context_length == 2048


@pytest.mark.parametrize(
    ("arch", "tensors", "said"),
    [
        (
            "llama",
            {"a": 12, "b": 6, "c": 7},
            "holds Q5_0, Q5_1 tensors, which openvino-genai cannot open directly",
        ),
        ("llama", {"a": 10}, "holds Q2_K tensors"),
        ("phi3", {"a": 8}, "is a 'phi3' model; openvino-genai opens only llama, qwen2, qwen3 GGUF files"),
    ],
)
def test_a_file_genai_cannot_read_is_refused_naming_the_build(
    tmp_path: Path, arch: str, tensors: dict[str, int], said: str
) -> None:
    path = gguf_head(tmp_path / "m.gguf", arch, tensors)
    with pytest.raises(ModelError) as refused:
        find_model(path)
    message = str(refused.value)
    assert said in message and f"`make model SOURCE={path}`" in message and "\n" not in message


def test_a_kept_ir_belongs_to_one_version_of_the_file(tmp_path: Path) -> None:
    path, cache = gguf_head(tmp_path / "m.gguf", "llama", {"a": 8}), tmp_path / "cache"
    conversion = Conversion(path, cache)
    assert conversion.link.resolve() == path.resolve()
    assert conversion.publish() is None and list(cache.iterdir()) == []  # GenAI wrote nothing: no folder
    conversion = Conversion(path, cache)
    for name in CONVERTED_FILES:
        (conversion.work / name).write_text("ir")
    assert cached_ir(path, cache) is None  # not yet published
    assert conversion.publish() == converted_folder(path, cache) == cached_ir(path, cache)
    assert [p.name for p in cache.iterdir()] == [converted_folder(path, cache).name]  # no work folder left
    (converted_folder(path, cache) / "openvino_model.bin").unlink()
    assert cached_ir(path, cache) is None  # a damaged folder is not opened
    os.utime(path, ns=(0, 0))
    assert converted_folder(path, cache).name != next(p.name for p in cache.iterdir())
