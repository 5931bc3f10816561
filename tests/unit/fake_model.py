"""A stand-in for an opened model, so the CLI and the REPL run in milliseconds (like the engine's `opener`).

The pipeline answers "echo: <the last user message>", one word a token, streamed word by word; it
honours max_new_tokens and a streamer's STOP, as GenAI's LLMPipeline does. The tokenizer counts
one token per word. Everything ovchat builds around the pipeline (ChatSession, Repl, the click
commands, GenerationConfig, ChatHistory) is the real thing; what only the real model proves (its
answers, GenAI's streaming, the chat template) stays in the end-to-end tests.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openvino_genai as ov_genai

from ovchat.model.device import DeviceConfig
from ovchat.model.pipeline import Model, ModelFiles
from ovchat.prompt.messages import Message


class FakeTokenizer:
    """One token per word; the template frames each message as `<role> content`."""

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        ids = [len(word) for word in text.split()]
        return SimpleNamespace(input_ids=SimpleNamespace(data=[ids]))

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join("x" * i for i in ids)

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        return " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"


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
        messages = inputs.get_messages() if isinstance(inputs, ov_genai.ChatHistory) else []
        self.answers.append(messages)
        words = self.reply(messages).split() if messages else ["more", "text"]
        out: list[str] = []
        reason = ov_genai.GenerationFinishReason.STOP
        for number, word in enumerate(words):
            if number == config.max_new_tokens:
                reason = ov_genai.GenerationFinishReason.LENGTH
                break
            out.append(word)
            piece = word if number == 0 else " " + word
            if streamer is not None and streamer(piece) == ov_genai.StreamingStatus.STOP:
                break
        perf = SimpleNamespace(
            get_num_input_tokens=lambda: sum(len(m["content"].split()) for m in messages),
            get_num_generated_tokens=lambda: len(out),
            get_ttft=lambda: timing(1.0),
            get_tpot=lambda: timing(2.0),
            get_throughput=lambda: timing(500.0),
            get_generate_duration=lambda: timing(3.0),
        )
        return SimpleNamespace(texts=[" ".join(out)], finish_reasons=[reason], perf_metrics=perf)


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
