"""Memory as a pool of models sees it: what this process holds, what the machine (or the container's
cgroup) can still give, what a model will take, and giving memory back after an unload.

Linux only in what it reads (/proc, /sys/fs/cgroup); elsewhere the figures are unknown (None) and a
pool is bounded by its model count alone.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

from ovchat.model.device import CGROUP_ROOT, own_cgroup
from ovchat.model.files import ModelFiles
from ovchat.model.gguf_head import GGUFFormatError, read_gguf_head

MB = 1024**2
GB = 1024**3
# What a loaded model takes beyond its weight files: the compiled model's own buffers, the tokenizer,
# the first KV blocks (the cache grows as it is used, up to the engine's bound, counted apart).
LOAD_OVERHEAD = 1.25


def resident_bytes() -> int | None:
    """This process's resident memory now (VmRSS)."""
    return process_status("VmRSS").get("VmRSS")


def process_status(*names: str) -> dict[str, int]:
    """Fields of /proc/self/status in bytes (VmRSS, VmHWM, ...), from one read; {} without /proc."""
    found: dict[str, int] = {}
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(":")
        if key in names:
            found[key] = int(value.split()[0]) * 1024
    return found


def available_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """What the machine can still give this process: MemAvailable, or less when its cgroup (a
    container's memory limit) leaves less room."""
    limits: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    folder = root / own_cgroup().lstrip("/")
    for place in (folder, *folder.parents):
        room = _cgroup_room(place)
        if room is not None:
            limits.append(room)
        if place == root:
            break
    return min(limits) if limits else None


def _cgroup_room(folder: Path) -> int | None:
    """memory.max − memory.current of one cgroup (v2), or None when it sets no limit."""
    try:
        limit = (folder / "memory.max").read_text().strip()
        current = int((folder / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(0, int(limit) - current)


def default_budget() -> int | None:
    """The memory a pool may fill by default: what this process holds now plus 90% of what the
    machine or cgroup can still give (the rest is left to the kernel and the requests' KV cache)."""
    room = available_bytes()
    if room is None:
        return None
    return (resident_bytes() or 0) + int(room * 0.9)


def model_bytes(files: ModelFiles, kv_cache_bytes: int = 0) -> int:
    """What loading `files` is expected to take: its weights (IR .bin files, or the .gguf) with the
    compiled model's overhead, plus the KV cache bound the engine is given."""
    paths = [files.path] if files.is_gguf else list(files.path.glob("*.bin"))
    weights = sum(_size(path) for path in paths)
    return int(weights * LOAD_OVERHEAD) + kv_cache_bytes


FALLBACK_KV_TOKEN_BYTES = 128 * 1024  # when the model does not say its shape: a 7 B model's, f16


def kv_token_bytes(files: ModelFiles) -> int:
    """The KV cache one token takes at 16-bit precision (an upper bound: the CPU may keep it in 8
    bits): layers × KV heads × head size × 2 (keys and values) × 2 bytes."""
    try:
        layers, kv_heads, head_size = _attention_shape(files)
        return layers * kv_heads * head_size * 2 * 2
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError, GGUFFormatError):
        return FALLBACK_KV_TOKEN_BYTES


def _attention_shape(files: ModelFiles) -> tuple[int, int, int]:
    """Layers, KV heads and head size, from the GGUF's metadata or the folder's config.json."""
    if files.is_gguf:
        meta = read_gguf_head(files.path).metadata
        arch = meta["general.architecture"]
        layers, heads = int(meta[f"{arch}.block_count"]), int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        head_size = int(
            meta.get(f"{arch}.attention.key_length", int(meta[f"{arch}.embedding_length"]) // heads)
        )
        return layers, kv_heads, head_size
    config = json.loads((files.path / "config.json").read_text())
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_size = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    return int(config["num_hidden_layers"]), kv_heads, head_size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def give_back() -> None:
    """After an unload: collect what the dropped model left in reference cycles, so that its memory
    goes now. (Measured: RSS then falls back to within ~60 MB of a fresh process, the pages of the
    libraries OpenVINO loaded, and stays flat over 20 cycles at 135 M and 1.1 B; glibc's malloc_trim
    returned 1-2 MB more, MALLOC_ARENA_MAX=2 about 10 MB: scripts/bench/probes/unload_memory.py.)"""
    gc.collect()
