"""A conversation saved as JSON and read back: written whole and atomically, read and checked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ovchat.errors import TranscriptError
from ovchat.prompt.messages import Message, check_messages

TRANSCRIPT_FORMAT = "ovchat-transcript"
TRANSCRIPT_VERSION = 1


def write_transcript(target: Path, model: str, options: dict[str, Any], messages: list[Message]) -> None:
    """Write the conversation; a failed write never clobbers a file."""
    data = {
        "format": TRANSCRIPT_FORMAT,
        "version": TRANSCRIPT_VERSION,
        "model": model,
        "options": options,
        "messages": messages,
    }
    # A whole new file, flushed to disk, then renamed over the old one: a crash or a kill at any
    # moment leaves the old conversation or the new one, never half of one.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise TranscriptError(f"cannot save to {target}: {exc.strerror}") from None


def read_transcript(path: Path) -> list[Message]:
    """The messages of a saved conversation, checked."""
    try:
        data: Any = json.loads(path.read_text())
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise TranscriptError(f"{path} is not a saved conversation (invalid JSON)") from None
    if not isinstance(data, dict) or data.get("format") != TRANSCRIPT_FORMAT:
        raise TranscriptError(f"{path} is not an ovchat conversation file")
    try:
        return check_messages(data.get("messages"))
    except ValueError as exc:
        raise TranscriptError(f"{path}: {exc}") from None
