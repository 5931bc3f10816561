"""llama-server's token routes (/tokenize, /detokenize, /apply-template): their bodies, as
llama.cpp's tools/server README gives them, and the work each does on the engine thread.

The work goes through Engine.on_tokenizer: the same tokenizer and template, on the same thread,
as the budget checks of a generation, between two steps (so never more than one step's wait).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ovchat.errors import RequestRejected
from ovchat.server.engine.token_bytes import PART, decode_kept
from ovchat.server.protocol.openai.requests import ChatMessage, HttpRefusal, Strict, template_kwargs
from ovchat.server.protocol.openai.tools import ToolSpec, check_tool_turns, tool_use

if TYPE_CHECKING:
    from ovchat.server.engine.scheduler import Scheduler

Work = Callable[["Scheduler"], dict[str, Any]]  # what Engine.on_tokenizer runs
PieceBody = str | list[int]  # the piece's text, or its bytes when they are not whole UTF-8 characters


class TokenizeRequest(Strict):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False

    def work_for(self) -> Work:
        """The work, once the request is checked here, on the event loop."""
        if not self.parse_special:
            raise HttpRefusal(
                "parse_special false is not supported: special tokens in the text are always parsed",
                param="parse_special",
            )
        return self.work

    def work(self, batch: Scheduler) -> dict[str, Any]:
        ids = encode(batch, self.content, self.add_special)
        if not self.with_pieces:
            return {"tokens": ids}
        return {"tokens": [{"id": i, "piece": p} for i, p in zip(ids, pieces(batch, ids), strict=True)]}


class DetokenizeRequest(Strict):
    tokens: list[int]

    def work_for(self) -> Work:
        return self.work

    def work(self, batch: Scheduler) -> dict[str, Any]:
        vocabulary = batch.token_bytes.vocab_size()
        for number, token in enumerate(self.tokens):
            if token < 0 or (vocabulary is not None and token >= vocabulary):
                raise RequestRejected(
                    f"tokens[{number}]: {token} is not a token of this model "
                    f"(ids go from 0 to {(vocabulary or 2**31) - 1})",
                    param="tokens",
                )
        return {"content": decode(batch, self.tokens)}


class ApplyTemplateRequest(Strict):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def work_for(self) -> Work:
        """The work, once the messages are checked here, on the event loop."""
        messages = [m.as_dict() for m in self.messages]
        check_tool_turns(messages)
        tools = tool_use(self.tools, None, None)
        context = template_kwargs(self.chat_template_kwargs)

        def work(batch: Scheduler) -> dict[str, str]:
            try:
                return {"prompt": batch.chat_prompt(messages, tools, context)}
            except RuntimeError as exc:
                raise RequestRejected(
                    "the model's chat template refused the messages", param="messages"
                ) from exc

        return work


class TokenPiece(BaseModel):
    id: int
    piece: PieceBody


class Tokens(BaseModel):
    tokens: list[int] | list[TokenPiece]


class Detokenized(BaseModel):
    content: str


class TemplatedPrompt(BaseModel):
    prompt: str


def encode(batch: Scheduler, text: str, add_special: bool) -> list[int]:
    """The ids of `text` as a prompt's budget check counts them (with the BOS etc. if `add_special`)."""
    if not add_special:
        return batch.tokenizer.encode(text)
    ids = batch.tokenizer.tokenizer.encode(text, add_special_tokens=True).input_ids
    return [int(i) for i in ids.data[0]]


def decode(batch: Scheduler, ids: list[int]) -> str:
    """The text of `ids`, special tokens included (so that tokenize and detokenize round-trip)."""
    return decode_kept(batch.tokenizer, ids)


def pieces(batch: Scheduler, ids: list[int]) -> list[PieceBody]:
    """Each token's text; its bytes instead where it holds part of a character (llama-server's rule,
    which also gives a token's text U+FFFD where even the bytes are unknown)."""
    return [
        p.text if p.text is not None else (p.bytes or PART)
        for p in batch.token_bytes.pieces(batch.tokenizer, ids)
    ]
