"""ChatSession: a conversation over openvino_genai.ChatHistory, streamed, cancellable, saveable."""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai

from ovchat.chat.tool_session import answer_with_tools
from ovchat.errors import GenerationError, OvchatError, TranscriptError, plain_message
from ovchat.model.pipeline import Model, warm_up_pipeline
from ovchat.options import GenerationOptions
from ovchat.prompt.budget import answer_budget, fit_conversation
from ovchat.prompt.endings import finish_reason
from ovchat.prompt.messages import Message, check_messages, is_text
from ovchat.prompt.tools.fallback import Turn, has_tool_turns
from ovchat.prompt.tools.hermes import ToolCall
from ovchat.prompt.tools.use import ToolUse

TRANSCRIPT_FORMAT = "ovchat-transcript"
TRANSCRIPT_VERSION = 1
TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class TurnMetrics:
    """Figures for one answer, from GenAI's perf_metrics (times in milliseconds)."""

    input_tokens: int
    output_tokens: int
    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float
    generate_ms: float


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str  # stop | length | cancelled
    metrics: TurnMetrics
    dropped_messages: int = 0  # oldest messages dropped to fit the context window
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the answer makes (send(..., tools=...))


class Streamer:
    """The streamer callback GenAI calls with each new piece of text; stops when `cancel` is set."""

    def __init__(
        self,
        on_text: TextCallback | None,
        cancel: threading.Event | None,
        on_first: Callable[[], None] | None = None,
    ) -> None:
        self.on_text = on_text
        self.cancel = cancel
        self.cancelled = False
        self.on_first = on_first

    def __call__(self, piece: str) -> ov_genai.StreamingStatus:
        if self.on_first is not None:
            self.on_first()
            self.on_first = None
        if self.on_text is not None:
            self.on_text(piece)
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            return ov_genai.StreamingStatus.STOP
        return ov_genai.StreamingStatus.RUNNING


def _reset_kv_state(pipeline: ov_genai.LLMPipeline) -> None:
    with warnings.catch_warnings():
        # Deprecated in favour of ChatHistory, but still the only way to drop the kept state.
        warnings.simplefilter("ignore", DeprecationWarning)
        pipeline.finish_chat()


def complete_raw(
    model: Model,
    prompt: str,
    options: GenerationOptions,
    on_text: TextCallback | None = None,
    cancel: threading.Event | None = None,
) -> Reply:
    """Continue `prompt` as-is: no chat template, no special tokens added."""
    inputs = model.tokenizer.encode(prompt, add_special_tokens=False)
    prompt_tokens = int(inputs.input_ids.get_shape()[1])
    max_new = answer_budget(prompt_tokens, model.files.context_length, options.max_new_tokens)
    config = options.to_config(model.pipeline.get_generation_config(), max_new)
    config.apply_chat_template = False
    streamer = Streamer(on_text, cancel, model.settle_memory)
    # The SDPA (stateful) pipeline keeps the KV cache of the last ChatHistory call: token input
    # after chat reuses it (wrong text) and chat after token input crashes. finish_chat() on
    # both sides resets that state; with paged attention it is harmless.
    _reset_kv_state(model.pipeline)
    try:
        result = model.pipeline.generate(inputs, config, streamer)
    except RuntimeError as exc:
        raise GenerationError(f"generation failed: {plain_message(exc)}") from None
    finally:
        _reset_kv_state(model.pipeline)
        model.settle_memory()  # also when no text came out
    text = model.tokenizer.decode(list(result.tokens[0]), skip_special_tokens=True)
    reason = finish_reason(None, streamer.cancelled, generated=len(result.tokens[0]), budget=max_new)
    return Reply(text, reason, _metrics(result.perf_metrics))


class ChatSession:
    """A multi-turn chat with one model. Not thread-safe: one send() at a time."""

    def __init__(
        self, model: Model, options: GenerationOptions | None = None, system_prompt: str | None = None
    ) -> None:
        self.model = model
        self.options = options or GenerationOptions()
        self.history = ov_genai.ChatHistory()
        self.last_reply: Reply | None = None
        self.busy = threading.Lock()  # one generate() at a time on the pipeline
        if system_prompt:
            self.history.append({"role": "system", "content": system_prompt})

    @property
    def messages(self) -> list[Message]:
        return list(self.history.get_messages())

    @property
    def system_prompt(self) -> str | None:
        messages = self.messages
        return messages[0]["content"] if messages and messages[0]["role"] == "system" else None

    def set_system_prompt(self, text: str | None) -> None:
        """Replace (or with None remove) the system prompt, keeping the turns."""
        turns = [m for m in self.messages if m["role"] != "system"]
        self.history = ov_genai.ChatHistory(([{"role": "system", "content": text}] if text else []) + turns)

    def reset(self) -> None:
        """Forget every turn; the system prompt stays."""
        system = self.system_prompt
        self.history = ov_genai.ChatHistory()
        self.set_system_prompt(system)
        self.last_reply = None

    def templated_prompt(self, messages: list[Message] | None = None) -> str:
        """The exact text the model sees for `messages` (default: the history), ready to answer."""
        chosen = self.messages if messages is None else messages
        return self.model.text_tokenizer.chat_prompt(chosen)

    def send(
        self,
        text: str,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
        tools: ToolUse | None = None,
    ) -> Reply:
        """Add a user turn and generate the answer, streaming text pieces to `on_text`.

        Setting `cancel` stops generation after the current token; the partial answer is kept
        in the history (it is what the user saw). With `tools` the answer may call them
        (Reply.tool_calls); answer the calls with send_tool_results.
        """
        if not text.strip():
            raise OvchatError("the message is empty")
        if not is_text(text):
            raise OvchatError("the message is not valid UTF-8 text")
        if tools is not None or has_tool_turns(self.messages):
            return self._tool_turn(
                [*self.messages, {"role": "user", "content": text}], tools, on_text, cancel
            )
        conversation: list[Message] = [*self.messages, {"role": "user", "content": text}]
        fit = fit_conversation(
            conversation,
            self.model.text_tokenizer,
            self.model.files.context_length,
            self.options.max_new_tokens,
        )
        history = ov_genai.ChatHistory(fit.messages)
        config = self.options.to_config(self.model.pipeline.get_generation_config(), fit.max_new_tokens)
        streamer = Streamer(on_text, cancel, self.model.settle_memory)
        try:
            with self.busy:
                result = self.model.pipeline.generate(history, config, streamer)
        except RuntimeError as exc:
            raise GenerationError(f"generation failed: {plain_message(exc)}") from None
        finally:
            self.model.settle_memory()  # also when no text came out
        answer = result.texts[0]
        history.append({"role": "assistant", "content": answer})
        self.history = history
        reason = finish_reason(result.finish_reasons[0].name, streamer.cancelled)
        self.last_reply = Reply(answer, reason, _metrics(result.perf_metrics), fit.dropped)
        return self.last_reply

    def send_tool_results(
        self,
        results: dict[str, str],
        tools: ToolUse | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Reply:
        """Answer the last reply's calls ({call id: result text}) and generate what the model says next."""
        made = {call.id for call in self.last_reply.tool_calls} if self.last_reply else set()
        unknown = [call_id for call_id in results if call_id not in made]
        if unknown or not results:
            raise OvchatError(f"no call of the last answer has the id {(unknown or [''])[0]!r}")
        answers = [{"role": "tool", "tool_call_id": i, "content": text} for i, text in results.items()]
        return self._tool_turn([*self.messages, *answers], tools, on_text, cancel)

    def _tool_turn(
        self,
        conversation: list[Turn],
        tools: ToolUse | None,
        on_text: TextCallback | None,
        cancel: threading.Event | None,
    ) -> Reply:
        reply, turn = answer_with_tools(self, conversation, tools, on_text, cancel)
        self.history = ov_genai.ChatHistory([*conversation, turn])
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
            _reset_kv_state(self.model.pipeline)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation as JSON (atomically: a failed write never clobbers a file)."""
        target = Path(path)
        data = {
            "format": TRANSCRIPT_FORMAT,
            "version": TRANSCRIPT_VERSION,
            "model": self.model.files.name,
            "options": asdict(self.options),
            "messages": self.messages,
        }
        # A whole new file, flushed to disk, then renamed over the old one: a crash or a kill at any
        # moment leaves the old conversation or the new one, never half of one.
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise TranscriptError(f"cannot save to {target}: {exc.strerror}") from None

    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the conversation with one saved by save()."""
        self.history = ov_genai.ChatHistory(read_transcript(Path(path)))
        self.last_reply = None


def read_transcript(path: Path) -> list[Message]:
    """The messages of a saved conversation, checked."""
    try:
        data: Any = json.loads(path.read_text())
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise TranscriptError(f"{path} is not a saved conversation (invalid JSON)") from None
    if not isinstance(data, dict) or data.get("format") != TRANSCRIPT_FORMAT:
        raise TranscriptError(f"{path} is not an ovchat conversation file")
    try:
        return check_messages(data.get("messages"))
    except ValueError as exc:
        raise TranscriptError(f"{path}: {exc}") from None


def _metrics(perf: ov_genai.PerfMetrics) -> TurnMetrics:
    return TurnMetrics(
        input_tokens=perf.get_num_input_tokens(),
        output_tokens=perf.get_num_generated_tokens(),
        ttft_ms=round(perf.get_ttft().mean, 2),
        tpot_ms=round(perf.get_tpot().mean, 2),
        tokens_per_s=round(perf.get_throughput().mean, 2),
        generate_ms=round(perf.get_generate_duration().mean, 2),
    )
