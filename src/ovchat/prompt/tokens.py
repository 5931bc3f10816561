"""Tokens as an answer reports them: a token's own text or bytes, and the logprob GenAI gave it."""

from __future__ import annotations

from dataclasses import dataclass

PART = "\ufffd"  # what decoding makes of bytes that are not whole characters


@dataclass(frozen=True)
class Piece:
    """One token as text: its characters, or, when it holds part of one, the bytes it holds."""

    text: str | None  # None: the token holds part of a character
    raw: bytes | None  # None: this model's detokenizer cannot say (only ever for a partial token)

    @property
    def bytes(self) -> list[int] | None:
        """Its UTF-8 bytes, as OpenAI's logprobs give them (None where unknown)."""
        if self.raw is not None:
            return list(self.raw)
        return list(self.text.encode()) if self.text is not None else None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token and the logprob GenAI's sampler gave it."""

    token: str  # its text; OpenAI's "bytes:\\x.." form when it holds part of a character
    logprob: float
    bytes: list[int] | None  # its UTF-8 bytes; None where the model's detokenizer cannot say
    offset: int  # where its text starts in the answer, in characters


@dataclass(frozen=True)
class Usage:
    """How many tokens a request read and wrote."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
