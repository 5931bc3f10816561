"""The fidelity gate's eval set: the shipped texts and chats as token windows, and its chat prompts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXTS_DIR = Path(__file__).resolve().with_name("texts")
PROMPTS_FILE = "prompts.json"
CHATS_FILE = "chats.json"
MAX_SEQUENCE_TOKENS = 512


@dataclass(frozen=True)
class EvalSequence:
    name: str
    token_ids: list[int]


def load_sequences(tokenizer: Any, texts_dir: Path = TEXTS_DIR) -> list[EvalSequence]:
    """Tokenize the eval texts (.txt raw, chats through the template), cut to MAX_SEQUENCE_TOKENS."""
    sequences = []
    for path in sorted(texts_dir.glob("*.txt")):
        ids = tokenizer(path.read_text(), add_special_tokens=False).input_ids
        sequences += _windows(path.stem, ids)
    chats = json.loads((texts_dir / CHATS_FILE).read_text())
    for number, messages in enumerate(chats):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        sequences += _windows(f"chat{number}", tokenizer(text, add_special_tokens=False).input_ids)
    return sequences


def _windows(name: str, ids: list[int]) -> list[EvalSequence]:
    step = MAX_SEQUENCE_TOKENS
    return [
        EvalSequence(f"{name}:{i}", ids[i : i + step]) for i in range(0, len(ids), step) if len(ids) > i + 1
    ]


def load_prompts(tokenizer: Any, texts_dir: Path = TEXTS_DIR) -> list[list[int]]:
    """The fixed generation prompts as chat-templated token ids."""
    prompts = json.loads((texts_dir / PROMPTS_FILE).read_text())
    return [
        tokenizer(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            ),
            add_special_tokens=False,
        ).input_ids
        for p in prompts
    ]
