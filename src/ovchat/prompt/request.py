"""GenerationRequest: what to generate, in ovchat's own words.

Every front end builds one (ChatSession, each HTTP API's request model) and the one generation core
takes it from there: plan the prompt (ovchat.prompt.plan), map it onto GenAI's GenerationConfig
(ovchat.model.config), read the answer (ovchat.prompt.answer). Errors below the front ends name
fields by these names (max_new_tokens, json_schema, tools, messages); each front end renames them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovchat.options import GenerationOptions
from ovchat.prompt.messages import Message
from ovchat.prompt.tools.use import ToolUse


@dataclass(frozen=True)
class GenerationRequest:
    """Chat `messages` (rendered through the model's template) or a raw `prompt` (taken as it is)."""

    options: GenerationOptions
    messages: list[Message] | None = None
    prompt: str | None = None
    json_schema: str | None = None  # the answer must be JSON that fits this schema (its text)
    tools: ToolUse | None = None
    logprobs: bool = False  # report each generated token's logprob (GenAI gives the chosen one's only)
    template_context: dict[str, Any] | None = None  # the chat template's extra variables (enable_thinking)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a GenerationRequest holds either messages or a prompt")

    @property
    def chat(self) -> bool:
        """Templated messages, whose answer may open a reasoning block (a raw prompt's is plain text)."""
        return self.messages is not None

    @property
    def calls(self) -> bool:
        """The answer may call tools (read them out of its text)."""
        return self.tools is not None and self.tools.calls

    @property
    def constrained(self) -> bool:
        """A grammar holds the answer (a JSON schema, or tool calls)."""
        return self.json_schema is not None or self.calls
