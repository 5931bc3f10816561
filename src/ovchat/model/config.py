"""A request mapped onto GenAI's GenerationConfig: the one mapping for the library and the server.

The options go on top of the model's defaults (GenerationOptions.to_config), then what the request
adds: the budget its prompt left, the grammar a JSON schema or tool calls hold the answer to, and
whether to report logprobs. GenAI's own checks run here, before the pipeline sees the config, so a
bad combination is the request's error, never a failed step.
"""

from __future__ import annotations

import openvino_genai as ov_genai

from ovchat.errors import RequestRejected, plain_message
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.tools.use import CallGrammar

Output = ov_genai.StructuredOutputConfig


def generation_config(
    request: GenerationRequest, base: ov_genai.GenerationConfig, budget: int
) -> ov_genai.GenerationConfig:
    """`base` (a fresh copy of the model's defaults, modified here) set up for `request`, whose
    answer may take `budget` tokens."""
    config = request.options.to_config(base, budget)
    config.apply_chat_template = False  # the prompt is token ids, templated by ovchat.prompt.plan
    config.logprobs = 1 if request.logprobs else 0  # 1: the chosen token's, all GenAI gives
    if request.json_schema is not None:
        config.structured_output_config = Output(json_schema=request.json_schema)
    elif request.tools is not None and (grammar := request.tools.grammar()) is not None:
        config.structured_output_config = structural_tags(grammar)
    try:
        config.validate()
    except RuntimeError as exc:
        raise RequestRejected(f"invalid generation settings: {plain_message(exc)}") from None
    return config


def structural_tags(grammar: CallGrammar) -> ov_genai.StructuredOutputConfig:
    """GenAI's structural tags (run by xgrammar) for a tool-call grammar."""
    tags = [Output.Tag(tag.begin, Output.JSONSchema(tag.schema), tag.end) for tag in grammar.tags]
    triggered = Output.TriggeredTags(
        triggers=list(grammar.triggers),
        tags=tags,
        at_least_one=grammar.at_least_one,
        stop_after_first=grammar.stop_after_first,
    )
    config: ov_genai.StructuredOutputConfig = Output(structural_tags_config=triggered)
    return config
