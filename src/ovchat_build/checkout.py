"""Where the build writes: the checkout's generated build/ folder (git-ignored)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "models"
SOURCES_CACHE = ROOT / "build" / "sources"  # GGUF files converted to checkpoints, once
GATE_CACHE = ROOT / "build" / "gate-cache"  # the fidelity gate's figures of each source


def portable(text: str) -> str:
    """A path as the manifest records it: relative to the checkout when inside it, else its name
    alone. A model folder travels (a wheel, an image, another machine): the build machine's
    absolute paths would only leak its layout. Anything that is not an absolute path is kept."""
    path = Path(text)
    if not path.is_absolute():
        return text
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
