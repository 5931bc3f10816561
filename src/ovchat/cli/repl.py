"""The interactive chat loop: slash commands, multi-line input, Ctrl-C that stops an answer."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ovchat.cli.interrupt import run_interruptibly
from ovchat.cli.opening import Opening
from ovchat.errors import OvchatError

if TYPE_CHECKING:
    from ovchat import ChatSession, Reply

PROMPT = ">>> "
CONTINUATION = "... "
BLOCK = '"""'
HELP = f"""\
Type a message and press Enter. Ctrl-C stops an answer; Ctrl-D or /exit quits.
A line starting with {BLOCK} begins a multi-line message; a line ending with {BLOCK} ends it.
  /help              this text
  /reset             forget the conversation (the system prompt stays)
  /system [TEXT]     show, or set, the system prompt (`/system none` removes it)
  /set [NAME VALUE]  show the generation options, or set one (`/set temperature 0.7`)
  /save FILE         save the conversation as JSON
  /load FILE         replace the conversation with a saved one
  /stats             figures for the last answer
  /exit              quit"""


class Repl:
    """Reads messages and commands, prints streamed answers."""

    def __init__(self, session: ChatSession | Opening, out: TextIO = sys.stdout) -> None:
        self.opening = session if isinstance(session, Opening) else Opening.of(session)
        self.out = out
        self._running = True
        self._noted = False
        self._thinking = False  # the answer being streamed is in its reasoning

    @property
    def session(self) -> ChatSession:
        """The chat session, waiting for the model if it is still loading."""
        session = self.opening.session(lambda: self.say("(loading the model…)"))
        if not self._noted:  # what this start did once (a GGUF conversion), told when it is done
            self._noted = True
            if session.model.note:
                sys.stderr.write(f"ovchat: note: {session.model.note}\n")
        return session

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def run(self, notice: str | None = None) -> None:
        """Chat until /exit or Ctrl-D; `notice` is shown under the banner. The model opens and warms
        up in the background meanwhile (ovchat.cli.opening); a load that fails raises its error here."""
        context = self.opening.files.context_length or "unknown"
        self.say(
            f"ovchat: {self.opening.files.name} on {self.opening.device.device} (context {context} tokens). "
            "/help for commands, Ctrl-D to quit."
        )
        if notice:
            self.say(notice)
        self.opening.start()
        try:
            self.loop()
        finally:
            self.opening.close()

    def loop(self) -> None:
        while self._running:
            self.opening.raise_error()
            try:
                text = self.read_message()
            except EOFError:
                self.say()
                break
            except KeyboardInterrupt:
                self.say("\n(Ctrl-C: use /exit or Ctrl-D to quit)")
                continue
            except UnicodeDecodeError:
                self.say("error: that line is not valid UTF-8 text")
                continue
            try:
                if text.startswith("/"):
                    self.command(text)
                elif text.strip():
                    self.answer(text)
            except OvchatError as exc:
                if exc is self.opening.error:
                    raise  # no model: the chat ends with it (ovchat.cli.opening)
                self.say(f"error: {exc}")
            except KeyboardInterrupt:
                self.say("\n[interrupted]")

    def read_message(self) -> str:
        line = input(PROMPT)
        if not line.lstrip().startswith(BLOCK):
            return line
        first = line.lstrip()[len(BLOCK) :]
        if first.endswith(BLOCK):
            return first[: -len(BLOCK)]
        lines = [first] if first else []
        while True:
            line = input(CONTINUATION)
            if line.rstrip().endswith(BLOCK):
                lines.append(line.rstrip()[: -len(BLOCK)])
                return "\n".join(lines).strip("\n")
            lines.append(line)

    def answer(self, text: str) -> Reply:
        session, cancel = self.session, threading.Event()  # the model first: it may still be loading
        self._thinking = False
        reply = run_interruptibly(
            lambda: session.send(text, self.say_piece, cancel, on_reasoning=self.say_thought), cancel
        )
        self.say()
        if reply.finish_reason == "cancelled":
            self.say("[stopped; the partial answer stays in the conversation]")
        elif reply.finish_reason == "length":
            self.say(
                f"[stopped at max_new_tokens={reply.metrics.output_tokens}; "
                "/set max_new_tokens N for longer answers]"
            )
        if reply.dropped_messages:
            self.say(f"[dropped the {reply.dropped_messages} oldest messages to fit the context window]")
        return reply

    def say_piece(self, piece: str) -> None:
        if self._thinking:  # the reasoning is over: the answer starts on a line of its own
            self._thinking = False
            self.say("\n[answer]")
        self.say(piece, end="")

    def say_thought(self, piece: str) -> None:
        """A thinking model's reasoning, shown as it streams and marked apart from the answer."""
        if not self._thinking:
            self._thinking = True
            self.say("[thinking] ", end="")
        self.say(piece, end="")

    def command(self, line: str) -> None:
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        handlers: dict[str, Callable[[str], None]] = {
            "help": lambda _: self.say(HELP),
            "reset": self.cmd_reset,
            "system": self.cmd_system,
            "set": self.cmd_set,
            "save": self.cmd_save,
            "load": self.cmd_load,
            "stats": self.cmd_stats,
            "exit": self.cmd_exit,
            "quit": self.cmd_exit,
        }
        handler = handlers.get(name.lower())
        if handler is None:
            self.say(f"unknown command /{name}; /help lists the commands")
            return
        handler(arg)

    def cmd_reset(self, _: str) -> None:
        self.session.reset()
        self.say("[conversation cleared]")

    def cmd_system(self, arg: str) -> None:
        if not arg:
            self.say(self.session.system_prompt or "(no system prompt)")
            return
        self.session.set_system_prompt(None if arg == "none" else arg)
        self.say("[system prompt removed]" if arg == "none" else "[system prompt set]")

    def cmd_set(self, arg: str) -> None:
        if not arg:
            self.say(self.session.options.describe())
            return
        name, _, value = arg.partition(" ")
        if not value.strip():
            raise OvchatError("usage: /set NAME VALUE (/set alone lists the options)")
        self.session.options = self.session.options.with_text_value(name, value.strip())
        self.say(f"[{name} = {value.strip()}]")

    def cmd_save(self, arg: str) -> None:
        if not arg:
            raise OvchatError("usage: /save FILE")
        self.session.save(Path(arg).expanduser())
        self.say(f"[saved {len(self.session.messages)} messages to {arg}]")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            raise OvchatError("usage: /load FILE")
        self.session.load(Path(arg).expanduser())
        self.say(f"[loaded {len(self.session.messages)} messages from {arg}]")

    def cmd_stats(self, _: str) -> None:
        reply = self.session.last_reply
        if reply is None:
            self.say("(no answer yet)")
            return
        m = reply.metrics
        self.say(
            f"tokens in {m.input_tokens}, out {m.output_tokens}; TTFT {m.ttft_ms:.0f} ms, "
            f"TPOT {m.tpot_ms:.1f} ms, {m.tokens_per_s:.1f} tokens/s; "
            f"finish: {reply.finish_reason}"
        )

    def cmd_exit(self, _: str) -> None:
        self._running = False


def enable_line_editing() -> None:
    """readline gives arrow keys and history; only when a person is typing."""
    if sys.stdin.isatty():
        # Some platforms ship Python without readline; plain input() still works there.
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (importing it hooks input())
