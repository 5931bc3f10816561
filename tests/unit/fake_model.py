"""A stand-in for an opened model, so the CLI and the REPL run in milliseconds (like the engine's `opener`).

The pipeline answers "echo: <the last user message>", streamed piece by piece; it takes token ids,
as GenAI's LLMPipeline does through ovchat's one generation path, and honours max_new_tokens and a
streamer's STOP. The tokenizer is lossless and counts about one token per word (a word and the
space before it); the template frames each message as `<role>content</role> `, so the pipeline reads
back which conversation it was asked to answer. Everything ovchat builds around the pipeline
(ChatSession, the prompt plan, Repl, the click commands, GenerationConfig) is the real thing; what
only the real model proves (its answers, GenAI's streaming, the chat template) stays in the
end-to-end tests.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openvino_genai as ov_genai

from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.model.pipeline import Model
from ovchat.prompt.messages import Message

PIECE = re.compile(r"\s*\S+|\s+")  # a word with the space before it (as BPE tokens), or an end of spaces
TURN = re.compile(r"<(system|user|assistant|tool)>(.*?)</\1> ", re.S)
VOCABULARY: dict[str, int] = {}
PIECES: dict[int, str] = {}


class FakeTokenizer:
    """Lossless: decode(encode(text)) == text; one id per word and the space before it."""

    chat_template = "{{ fake: frames each message as <role>content</role> }}"

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        ids = []
        for piece in PIECE.findall(text):
            if piece not in VOCABULARY:
                VOCABULARY[piece] = len(VOCABULARY)
                PIECES[VOCABULARY[piece]] = piece
            ids.append(VOCABULARY[piece])
        return SimpleNamespace(input_ids=SimpleNamespace(data=[ids]))

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(PIECES[i] for i in ids)

    def apply_chat_template(
        self,
        messages: list[Message],
        add_generation_prompt: bool = True,
        tools: Any = None,
        extra_context: Any = None,
    ) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}> " for m in messages) + "<assistant>"


def read_back(prompt: str) -> list[Message]:
    """The messages a prompt of FakeTokenizer's template holds."""
    return [{"role": role, "content": content} for role, content in TURN.findall(prompt)]


def timing(value: float) -> Any:
    return SimpleNamespace(mean=value)


@dataclass
class FakePipeline:
    """Echoes the last user message; `answers` records every conversation it was given."""

    reply: Callable[[list[Message]], str] = lambda messages: "echo: " + messages[-1]["content"]
    answers: list[list[Message]] = field(default_factory=list)

    def get_generation_config(self) -> ov_genai.GenerationConfig:
        return ov_genai.GenerationConfig()

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def finish_chat(self) -> None:
        pass

    def generate(self, inputs: Any, config: ov_genai.GenerationConfig, streamer: Any = None) -> Any:
        tokenizer = FakeTokenizer()
        messages = read_back(tokenizer.decode([int(i) for i in inputs.data[0]]))
        users = [m for m in messages if m["role"] == "user"]
        self.answers.append(messages)
        answer = self.reply(users) if users else "more text"
        ids = tokenizer.encode(answer).input_ids.data[0]
        out: list[int] = []
        reason = ov_genai.GenerationFinishReason.STOP
        for number, token in enumerate(ids):
            if number == config.max_new_tokens:
                reason = ov_genai.GenerationFinishReason.LENGTH
                break
            out.append(token)
            if streamer is not None and streamer(tokenizer.decode([token])) == ov_genai.StreamingStatus.STOP:
                break
        perf = SimpleNamespace(
            get_num_input_tokens=lambda: sum(len(m["content"].split()) for m in messages),
            get_num_generated_tokens=lambda: len(out),
            get_ttft=lambda: timing(1.0),
            get_tpot=lambda: timing(2.0),
            get_throughput=lambda: timing(500.0),
            get_generate_duration=lambda: timing(3.0),
        )
        return SimpleNamespace(tokens=[out], finish_reasons=[reason], perf_metrics=perf)


def fake_model(context_length: int | None = 1000, name: str = "fake-model") -> Model:
    """An opened model whose pipeline is a FakePipeline."""
    return Model(
        ModelFiles(Path("/models") / name, False, context_length),
        FakePipeline(),  # type: ignore[arg-type]
        DeviceConfig(),
        load_seconds=0.0,
    )


def typed_lines(
    out: io.StringIO, *lines: str, each: Callable[[], None] | None = None
) -> Callable[[str], str]:
    """An input() that prints its prompt to `out`, returns `lines` in turn (calling `each` before
    each one), then raises EOFError: a person typing, then pressing Ctrl-D."""
    typed = iter(lines)

    def typing(prompt: str = "") -> str:
        out.write(prompt)
        line = next(typed, None)
        if line is None:
            raise EOFError
        if each is not None:
            each()
        return line

    return typing
