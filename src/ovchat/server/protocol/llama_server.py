"""llama-server's token routes (/tokenize, /detokenize, /apply-template): their bodies, as llama.cpp's
tools/server README gives them. The work is the engine's (Engine.tokenize, pieces, detokenize,
render): the same tokenizer and template, on the same thread, as a generation's budget checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ovchat.prompt.messages import Message
from ovchat.prompt.tokens import PART, Piece
from ovchat.prompt.tools.use import ToolUse
from ovchat.server.protocol.http_errors import HttpRefusal
from ovchat.server.protocol.openai.requests import ChatMessage, Strict, template_kwargs
from ovchat.server.protocol.openai.tools import ToolSpec, check_tool_turns, tool_use

PieceBody = str | list[int]  # the piece's text, or its bytes when they are not whole UTF-8 characters


class ModelNamed(Strict):
    """llama-server's router mode names the model in the body; without it, the default model."""

    model: str | None = None


class TokenizeRequest(ModelNamed):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False

    def check(self) -> None:
        if not self.parse_special:
            raise HttpRefusal(
                "parse_special false is not supported: special tokens in the text are always parsed",
                param="parse_special",
            )


class DetokenizeRequest(ModelNamed):
    tokens: list[int]


class ApplyTemplateRequest(ModelNamed):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def arguments(self) -> tuple[list[Message], ToolUse | None, dict[str, Any] | None]:
        """The messages, tools and template variables to render, checked."""
        messages = [m.as_dict() for m in self.messages]
        check_tool_turns(messages)
        return messages, tool_use(self.tools, None, None), template_kwargs(self.chat_template_kwargs)


class TokenPiece(BaseModel):
    id: int
    piece: PieceBody


class Tokens(BaseModel):
    tokens: list[int] | list[TokenPiece]


class Detokenized(BaseModel):
    content: str


class TemplatedPrompt(BaseModel):
    prompt: str


def with_pieces(ids: list[int], pieces: list[Piece]) -> Tokens:
    """Each token's text; its bytes instead where it holds part of a character (llama-server's rule,
    which also gives a token's text U+FFFD where even the bytes are unknown)."""
    listed = [
        TokenPiece(id=i, piece=p.text if p.text is not None else (p.bytes or PART))
        for i, p in zip(ids, pieces, strict=True)
    ]
    return Tokens(tokens=listed)
