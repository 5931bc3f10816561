"""ChatSession and GenerationOptions against the real model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ovchat.chat.session import ChatSession, complete_raw
from ovchat.errors import ContextError, TranscriptError
from ovchat.model.device import DeviceConfig
from ovchat.model.pipeline import Model, open_model
from ovchat.options import GenerationOptions

GREEDY = GenerationOptions(max_new_tokens=48, temperature=0.0)


def test_second_turn_answers_in_the_context_of_the_first(model: Model) -> None:
    # SmolLM2-135M cannot recall a name reliably (llama.cpp on the same GGUF cannot either), but it
    # does answer a follow-up in context: "its" tower is only Paris's when the first turn is there.
    session = ChatSession(model, GREEDY)
    session.send("What is the capital of France?")
    answer = session.send("And what is its most famous tower?")
    assert "Paris" in answer.text
    prompt = session.templated_prompt(session.messages[:-1])
    assert "capital of France?" in prompt and "most famous tower?" in prompt
    # Control: without the first turn the model has no city to speak of.
    assert "Paris" not in ChatSession(model, GREEDY).send("And what is its most famous tower?").text


def test_answer_streams_in_pieces_that_make_up_the_text(model: Model) -> None:
    pieces: list[str] = []
    reply = ChatSession(model, GREEDY).send("Name three colours.", on_text=pieces.append)
    assert len(pieces) > 3
    assert "".join(pieces) == reply.text
    assert reply.metrics.output_tokens > 3 and reply.metrics.input_tokens > 10
    assert reply.metrics.ttft_ms > 0 and reply.metrics.tpot_ms > 0


def test_cancel_stops_within_a_token_and_keeps_the_partial_answer(model: Model) -> None:
    session = ChatSession(model, GenerationOptions(max_new_tokens=200, temperature=0.0))
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 5:
            cancel.set()

    reply = session.send("Write a long story about a dragon.", on_text, cancel)
    assert reply.finish_reason == "cancelled"
    assert len(pieces) <= 6
    assert session.messages[-1] == {"role": "assistant", "content": reply.text}
    assert session.send("Say OK.").finish_reason in ("stop", "length")


def test_max_new_tokens_limits_the_answer_and_says_length(model: Model) -> None:
    reply = ChatSession(model, GREEDY.replace(max_new_tokens=5)).send("Tell me about the sea.")
    assert reply.finish_reason == "length"
    assert reply.metrics.output_tokens == 5


def test_stop_string_ends_the_answer(model: Model) -> None:
    options = GREEDY.replace(stop=("5",))
    reply = ChatSession(model, options).send("Count from 1 to 10, separated by commas.")
    assert "1, 2, 3, 4" in reply.text and "6" not in reply.text
    assert reply.finish_reason == "stop"


def test_seeded_sampling_is_reproducible(model: Model) -> None:
    options = GenerationOptions(max_new_tokens=24, temperature=1.0, top_p=0.95, seed=7)
    first = ChatSession(model, options).send("Invent a word.").text
    assert ChatSession(model, options).send("Invent a word.").text == first


def test_system_prompt_reset_and_set(model: Model) -> None:
    session = ChatSession(model, GREEDY, system_prompt="You are terse.")
    session.send("Hi")
    session.reset()
    assert session.messages == [{"role": "system", "content": "You are terse."}]
    session.set_system_prompt(None)
    assert session.messages == []
    assert "You are a helpful AI assistant named SmolLM" in session.templated_prompt(
        [{"role": "user", "content": "x"}]
    )


def test_raw_completion_continues_text_without_template(model: Model) -> None:
    reply = complete_raw(model, "The capital of Japan is", GREEDY.replace(max_new_tokens=6))
    assert "Tokyo" in reply.text
    assert reply.metrics.input_tokens == model.count_tokens("The capital of Japan is")


def test_save_then_load_restores_the_conversation(model: Model, tmp_path: Path) -> None:
    session = ChatSession(model, GREEDY, system_prompt="Be brief.")
    session.send("My name is Alice.")
    path = tmp_path / "chat.json"
    session.save(path)
    restored = ChatSession(model, GREEDY)
    restored.load(path)
    assert restored.messages == session.messages
    assert json.loads(path.read_text())["format"] == "ovchat-transcript"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"format": "other"}', "not an ovchat conversation"),
        (
            '{"format": "ovchat-transcript", "messages": [{"role": "robot", "content": "x"}]}',
            "has role 'robot'",
        ),
        ('{"format": "ovchat-transcript", "messages": [{"role": "user", "content": 5}]}', "text 'content'"),
        ('{"format": "ovchat-transcript", "messages": "hi"}', "must be a list"),
    ],
)
def test_load_rejects_bad_transcripts(model: Model, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    session = ChatSession(model, GREEDY)
    session.send("Hello")
    before = session.messages
    with pytest.raises(TranscriptError, match=message):
        session.load(path)
    assert session.messages == before


def test_overflowing_conversation_drops_oldest_turns_but_keeps_system(small_context_model: Path) -> None:
    small = open_model(small_context_model, DeviceConfig(attention_backend="SDPA"))
    assert small.files.context_length == 160
    session = ChatSession(
        small, GenerationOptions(max_new_tokens=24, temperature=0.0), system_prompt="Be brief."
    )
    replies = [session.send(f"Tell me one fact about the number {n}.") for n in range(1, 6)]
    assert any(r.dropped_messages for r in replies)
    assert session.messages[0] == {"role": "system", "content": "Be brief."}
    assert "number 1." not in session.templated_prompt()
    assert small.count_tokens(session.templated_prompt()) <= 160


def test_prompt_that_cannot_fit_is_a_clear_error(small_context_model: Path) -> None:
    small = open_model(small_context_model, DeviceConfig(attention_backend="SDPA"))
    session = ChatSession(small, GREEDY)
    with pytest.raises(ContextError, match="context window is 160"):
        session.send("word " * 400)
    assert session.messages == []


def test_warm_up_leaves_the_next_answer_unchanged(model: Model) -> None:
    expected = ChatSession(model, GREEDY).send("Name a large animal.").text
    session = ChatSession(model, GREEDY)
    session.warm_up()
    assert session.messages == []
    assert session.send("Name a large animal.").text == expected
