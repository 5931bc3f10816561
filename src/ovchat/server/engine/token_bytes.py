"""Each token's own bytes, for the token routes' pieces and the logprobs' `bytes`.

GenAI's decode() returns text: a token that holds part of a character (byte-level BPE splits an
emoji over several) comes back as U+FFFD, and its bytes are lost. The model folder's detokenizer IR
holds them: read up to its UTF8Validate op (the one that replaces invalid bytes), it returns each
token's bytes as they are. Loaded on first use, on the engine thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import openvino as ov

from ovchat.prompt.tokens import PART, Piece

log = logging.getLogger("ovchat.server")
DETOKENIZER = "openvino_detokenizer.xml"


class Decoder(Protocol):
    def decode(self, ids: list[int], *, keep_special: bool = False) -> str: ...


class TokenBytes:
    """The raw bytes of tokens, from the detokenizer IR in `folder` (none for a .gguf file, or an IR
    without the expected UTF-8 check: then `of` answers None and callers keep the decoded text)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._model: Any = None
        self._kept: list[Any] = []  # the IR the compiled model was cut from: freeing it first crashes
        self._tried = False
        self._vocabulary: int | None = None

    def of(self, ids: list[int]) -> list[bytes] | None:
        """The bytes of each id, or None where this model's detokenizer cannot say."""
        model = self._compiled()
        if model is None or not ids:
            return None if model is None else []
        outputs = model([np.array([[i] for i in ids], dtype=np.int64)])
        begins, ends, chars = (outputs[port] for port in model.outputs)
        raw = bytes(chars)
        return [raw[int(b) : int(e)] for b, e in zip(begins, ends, strict=True)]

    def pieces(self, decoder: Decoder, ids: list[int]) -> list[Piece]:
        """Each token of `ids` on its own: its text when whole, else the bytes the IR holds for it."""
        texts = [decoder.decode([i], keep_special=True) for i in ids]
        raw = self.of(ids) if any(PART in t for t in texts) else None
        out = []
        for number, text in enumerate(texts):
            if PART not in text:
                out.append(Piece(text, None))
                continue
            held = raw[number] if raw is not None else None
            try:
                out.append(Piece(held.decode("utf-8"), None) if held else Piece(None, held))
            except UnicodeDecodeError:
                out.append(Piece(None, held))
        return out

    def vocab_size(self) -> int | None:
        """How many ids the model's vocabulary holds, when its detokenizer IR says."""
        self._compiled()
        return self._vocabulary

    def _compiled(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                self._model = self._load()
            except Exception as exc:  # an IR of another shape: the decoded text will have to do
                log.warning("token bytes unavailable for this model: %s", exc)
        return self._model

    def _load(self) -> Any:
        if self.folder is None or not (self.folder / DETOKENIZER).is_file():
            return None
        import openvino_tokenizers  # noqa: F401  # registers the detokenizer's ops with new Cores

        core = ov.Core()
        model = core.read_model(self.folder / DETOKENIZER)
        checks = [op for op in model.get_ordered_ops() if op.get_type_name() == "UTF8Validate"]
        if len(checks) != 1 or checks[0].get_input_size() != 3:
            return None
        vocabularies = [op for op in model.get_ordered_ops() if op.get_type_name() == "VocabDecoder"]
        if len(vocabularies) == 1 and vocabularies[0].get_input_partial_shape(1).is_static:
            self._vocabulary = int(vocabularies[0].get_input_shape(1)[0])  # one text offset per id
        check = checks[0]
        ragged = [check.input(i).get_source_output() for i in range(3)]  # begins, ends, bytes
        raw = ov.Model(ragged, model.get_parameters(), "token_bytes")
        self._kept = [core, model, raw]
        return core.compile_model(raw, "CPU")
