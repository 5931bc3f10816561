"""What `make bench-embed` embeds: texts of an exact length in MiniLM's tokens, new for every request,
made the same way on every run; and the fixed set every engine's vectors are compared on.

A text is common words of the model's own vocabulary, each one token (WordPiece keeps a word that is
in its vocabulary whole), so that `tokens - 2` words make `tokens` tokens with [CLS] and [SEP]: the
lengths are exact by construction, and check_lengths proves it with the `tokenizers` library on the
model's tokenizer.json. Word salad costs an encoder what prose of the same length does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SPECIALS = 2  # [CLS] and [SEP]
COMMON = 10_000  # BERT's vocabulary lists whole words about in order of frequency below this id

# Prose for the fidelity set: what an embedding model is asked in practice (questions, passages).
SENTENCES = (
    "How do I reset my password if I no longer have access to my email?",
    "The lighthouse keeper climbed the stairs every evening to light the lamp before the storm.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "What is the capital of Australia?",
    "Canberra was chosen as the capital as a compromise between Sydney and Melbourne.",
    "A quick brown fox jumps over the lazy dog.",
    "Interest rates rose for the third time this year, and mortgage applications fell sharply.",
    "def add(a, b): return a + b",
    "The patient reported mild headaches and dizziness after the new medication was started.",
    "Our team won the championship after a dramatic penalty shootout in the final minutes.",
    "Returns are accepted within thirty days of purchase with the original receipt.",
    "Embeddings map texts to vectors so that similar meanings end up close together.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "The recipe calls for two cups of flour, one egg, and a pinch of salt.",
    "Can you recommend a good book about the history of Rome?",
    "Error 404: the requested page could not be found on this server.",
)


def vocabulary(tokenizer_json: Path) -> list[str]:
    """Common whole words that are one token each (lowercase ASCII letters, 3 to 10 of them)."""
    vocab: dict[str, int] = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    words = [w for w, i in vocab.items() if i < COMMON and w.isascii() and w.isalpha() and w.islower()]
    return sorted((w for w in words if 3 <= len(w) <= 10), key=vocab.__getitem__)


def text(words: list[str], rng: random.Random, tokens: int) -> str:
    """A text of exactly `tokens` tokens, [CLS] and [SEP] included."""
    return " ".join(rng.choices(words, k=tokens - SPECIALS))


def requests(words: list[str], tag: str, tokens: int, batch: int, count: int) -> list[list[str]]:
    """`count` requests of `batch` texts each, all different, the same for the same tag: a round's
    engines get the same texts, and every request is new to the process answering it."""
    rng = random.Random(f"{tag}/{tokens}/{batch}")
    return [[text(words, rng, tokens) for _ in range(batch)] for _ in range(count)]


def fidelity_set(words: list[str], lengths: tuple[int, ...] = (16, 64, 250), each: int = 8) -> list[str]:
    """The texts every engine's vectors are compared on: the prose above, and generated texts at
    each length (the long ones near the model's 256-token limit)."""
    rng = random.Random("fidelity")
    return [*SENTENCES, *(text(words, rng, n) for n in lengths for _ in range(each))]


def check_lengths(tokenizer_json: Path, texts: list[str], tokens: int) -> None:
    """Every text has exactly `tokens` tokens by the model's own tokenizer (no truncation, no padding:
    its tokenizer.json ships both, at 128)."""
    from tokenizers import Tokenizer  # the runtime venv has it (a dev dependency's)

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = {len(encoding.ids) for encoding in tokenizer.encode_batch(texts)}
    if lengths != {tokens}:
        raise SystemExit(f"texts meant to be {tokens} tokens long have {sorted(lengths)}")
