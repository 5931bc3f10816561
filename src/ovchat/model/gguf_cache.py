"""Open a .gguf file through openvino-genai's own reader: what that reader takes, and the IR it
converts the file to, kept once per file so later starts skip the conversion.

GenAI converts a GGUF file to an OpenVINO model on every start (seconds at 135 M, minutes at a few
billion weights). With `enable_save_ov_model` it writes the converted IR and tokenizers into the
folder that holds the file, which would mix models in a user's downloads folder and never be reused.
So the file is opened through a symbolic link inside a private folder of the cache, the IR lands
there, and the folder is published (renamed into place) once complete; the next start opens it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ovchat.errors import ModelError
from ovchat.model.contract import BUILD_COMMAND
from ovchat.model.gguf_head import GGUFHead

# What openvino-genai 2026.4's own GGUF reader takes (its gguf.cpp and gguf_modeling.cpp); any
# other tensor type fails inside it as "gguf_tensor_to_f16 failed".
GENAI_TENSOR_TYPES = frozenset({"F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"})
GENAI_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3"})
CONVERTED_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_detokenizer.xml",
)
STAMP = "ovchat-gguf.json"  # written last: a folder without it is incomplete


def check_genai_reads(path: Path, head: GGUFHead) -> None:
    """Refuse, in one line naming the way out, a file openvino-genai's reader cannot open."""
    arch = head.metadata.get("general.architecture")
    build = f"build an OpenVINO model from it once: `{BUILD_COMMAND} SOURCE={path}`"
    if arch not in GENAI_ARCHITECTURES:
        raise ModelError(
            f"{path.name} is a '{arch}' model; openvino-genai opens only "
            f"{', '.join(sorted(GENAI_ARCHITECTURES))} GGUF files directly: {build}"
        )
    unread = sorted({kind for kind in head.tensor_types.values() if kind not in GENAI_TENSOR_TYPES})
    if unread:
        raise ModelError(
            f"{path.name} holds {', '.join(unread)} tensors, which openvino-genai cannot open directly: "
            f"{build}"
        )


def gguf_cache_home() -> Path:
    """Per-user folder for the IRs converted from GGUF files: $XDG_CACHE_HOME/ovchat/gguf."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovchat" / "gguf"


def _identity(path: Path) -> dict[str, object]:
    """What names one version of a file without reading it: a changed file gets a new folder."""
    stat = path.stat()
    return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def converted_folder(path: Path, root: Path | None = None) -> Path:
    """The cache folder for this version of `path` (it may not exist yet)."""
    key = hashlib.sha256(json.dumps(_identity(path), sort_keys=True).encode()).hexdigest()[:16]
    return (root or gguf_cache_home()) / f"{path.stem}-{key}"


def cached_ir(path: Path, root: Path | None = None) -> Path | None:
    """The complete converted IR of this version of `path`, if a start has made one."""
    folder = converted_folder(path, root)
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if stamp != _identity(path) or not all((folder / name).is_file() for name in CONVERTED_FILES):
        return None
    return folder


class Conversion:
    """One conversion into the cache: `link` is what GenAI opens (with enable_save_ov_model), and
    publish() moves the result into place once GenAI has written it."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        self.target = converted_folder(path, root)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f".{self.target.name}-", dir=self.target.parent))
        self.link = self.work / path.name
        self.link.symlink_to(path.resolve())

    def publish(self) -> Path | None:
        """Put the converted IR in place; None (and nothing left behind) if GenAI wrote no IR."""
        self.link.unlink(missing_ok=True)
        if not all((self.work / name).is_file() for name in CONVERTED_FILES):
            self.discard()
            return None
        (self.work / STAMP).write_text(json.dumps(_identity(self.path), sort_keys=True))
        shutil.rmtree(self.target, ignore_errors=True)  # an incomplete folder of an earlier start
        try:
            self.work.rename(self.target)
        except OSError:  # another start published it first
            self.discard()
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def start_conversion(path: Path, root: Path | None = None) -> Conversion | None:
    """A Conversion, or None when the cache cannot be written (then GenAI converts without saving)."""
    try:
        return Conversion(path, root)
    except OSError:
        return None
