"""ChatSession: one user's conversation with a model, streamed, cancellable, saveable."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from pathlib import Path

from ovchat.chat.core import Streamer, TextCallback, generate, reset_kv_state
from ovchat.chat.reply import Reply
from ovchat.chat.transcript import read_transcript, write_transcript
from ovchat.errors import OvchatError
from ovchat.model.pipeline import Model, warm_up_pipeline
from ovchat.options import GenerationOptions
from ovchat.prompt.answer import assistant_turn
from ovchat.prompt.messages import Message, is_text
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.tools.use import ToolUse


def complete_raw(
    model: Model,
    prompt: str,
    options: GenerationOptions,
    on_text: TextCallback | None = None,
    cancel: threading.Event | None = None,
) -> Reply:
    """Continue `prompt` as-is: no chat template, no special tokens added."""
    return generate(model, GenerationRequest(options, prompt=prompt), on_text, cancel)[0]


class ChatSession:
    """A multi-turn chat with one model. Not thread-safe: one send() at a time.

    The history keeps OpenAI's shapes: an assistant message with `tool_calls` (arguments as JSON
    text), `role: tool` messages with `tool_call_id`."""

    def __init__(
        self, model: Model, options: GenerationOptions | None = None, system_prompt: str | None = None
    ) -> None:
        self.model = model
        self.options = options or GenerationOptions()
        self._messages: list[Message] = (
            [{"role": "system", "content": system_prompt}] if system_prompt else []
        )
        self.last_reply: Reply | None = None
        self.busy = threading.Lock()  # one generate() at a time on the pipeline

    @property
    def messages(self) -> list[Message]:
        return list(self._messages)

    @property
    def system_prompt(self) -> str | None:
        messages = self._messages
        return messages[0]["content"] if messages and messages[0]["role"] == "system" else None

    def set_system_prompt(self, text: str | None) -> None:
        """Replace (or with None remove) the system prompt, keeping the turns."""
        turns = [m for m in self._messages if m["role"] != "system"]
        self._messages = ([{"role": "system", "content": text}] if text else []) + turns

    def reset(self) -> None:
        """Forget every turn; the system prompt stays."""
        system = self.system_prompt
        self._messages = [{"role": "system", "content": system}] if system else []
        self.last_reply = None

    def templated_prompt(self, messages: list[Message] | None = None) -> str:
        """The exact text the model sees for `messages` (default: the history), ready to answer."""
        with self.busy:  # the tokenizer is never used from two threads at once (ovchat.chat.core)
            return self.model.text_tokenizer.render(self._messages if messages is None else messages)

    def send(
        self,
        text: str,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
        tools: ToolUse | None = None,
        on_reasoning: TextCallback | None = None,
    ) -> Reply:
        """Add a user turn and generate the answer, streaming its content to `on_text` (and its
        reasoning, if it thinks, to `on_reasoning`).

        Setting `cancel` stops generation after the current token; the partial answer is kept in the
        history (it is what the user saw). With `tools` the answer may call them (Reply.tool_calls);
        answer the calls with send_tool_results. A conversation that outgrows the context window
        loses its oldest exchanges (Reply.dropped_messages), never the system prompt."""
        if not text.strip():
            raise OvchatError("the message is empty")
        if not is_text(text):
            raise OvchatError("the message is not valid UTF-8 text")
        return self._turn(
            [*self._messages, {"role": "user", "content": text}], tools, on_text, cancel, on_reasoning
        )

    def send_tool_results(
        self,
        results: dict[str, str],
        tools: ToolUse | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
        on_reasoning: TextCallback | None = None,
    ) -> Reply:
        """Answer the last reply's calls ({call id: result text}) and generate what the model says next."""
        made = {call.id for call in self.last_reply.tool_calls} if self.last_reply else set()
        unknown = [call_id for call_id in results if call_id not in made]
        if unknown or not results:
            raise OvchatError(f"no call of the last answer has the id {(unknown or [''])[0]!r}")
        answers = [{"role": "tool", "tool_call_id": i, "content": text} for i, text in results.items()]
        return self._turn([*self._messages, *answers], tools, on_text, cancel, on_reasoning)

    def _turn(
        self,
        conversation: list[Message],
        tools: ToolUse | None,
        on_text: TextCallback | None,
        cancel: threading.Event | None,
        on_reasoning: TextCallback | None,
    ) -> Reply:
        request = GenerationRequest(self.options, messages=conversation, tools=tools)
        reply, planned = generate(
            self.model, request, on_text, cancel, on_reasoning=on_reasoning, lock=self.busy
        )
        self._messages = [*(planned.messages or conversation), assistant_turn(reply.text, reply.tool_calls)]
        self.last_reply = reply
        return reply

    def warm_up(self, cancel: threading.Event | None = None) -> None:
        """Pay OpenVINO's one-time set-up now rather than in the first answer (model.warm_up_pipeline).

        Setting `cancel` stops it after the prompt step, the part that pays the set-up."""
        with self.busy:
            warm_up_pipeline(
                self.model.pipeline, Streamer(None, cancel, self.model.settle_memory), self.model.device
            )
            self.model.settle_memory()
            reset_kv_state(self.model.pipeline)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation as JSON (atomically: a failed write never clobbers a file)."""
        write_transcript(Path(path), self.model.files.name, asdict(self.options), self.messages)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the conversation with one saved by save()."""
        self._messages = read_transcript(Path(path))
        self.last_reply = None
