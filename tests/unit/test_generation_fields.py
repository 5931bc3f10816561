"""Each generation field is declared once, on GenerationOptions; the CLI flags, the REPL's /set, the
server's request fields and OpenAPI bounds, the body `ask --server` sends and the GenerationConfig are
all derived from that declaration. These tests set every field at once, so a field that one front end
handled by hand (or forgot) fails here."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import click
import openvino_genai as ov_genai
import pytest
from click.testing import CliRunner

from ovchat.cli.main import cli
from ovchat.cli.options import generation_options, options_from_cli
from ovchat.cli.remote import request_body
from ovchat.errors import OptionsError, OvchatError, RequestRejected
from ovchat.options import FIELD_SPECS, FieldSpec, GenerationOptions, Kind, cli_flag, specs_of
from ovchat.server.protocol.openai.requests import ChatRequest, CompletionRequest

OPENAI = {name: spec.openai for name, spec in FIELD_SPECS.items() if spec.openai}


def sample(spec: FieldSpec) -> Any:
    """A value inside the field's bounds that is not its default."""
    if spec.kind is Kind.TEXTS:
        return ("END", "STOP")
    if spec.kind is Kind.SWITCH:
        return True
    if spec.kind is Kind.INTEGER:
        return int(spec.low) + 1
    if not math.isfinite(spec.high):
        return spec.low + 1.0
    return spec.high if spec.high_inclusive else (spec.low + spec.high) / 2


SAMPLES = {name: sample(spec) for name, spec in FIELD_SPECS.items()}


def test_every_field_has_one_declaration_and_an_undeclared_one_is_refused() -> None:
    assert list(FIELD_SPECS) == [f.name for f in fields(GenerationOptions)]

    @dataclass(frozen=True)
    class Undeclared(GenerationOptions):
        colour: str | None = None

    with pytest.raises(TypeError, match=r"Undeclared\.colour is declared without option"):
        specs_of(Undeclared)


def test_the_cli_has_a_flag_for_every_field_that_declares_one() -> None:
    seen: list[GenerationOptions] = []

    @click.command()
    @generation_options
    def command(**kwargs: Any) -> None:
        seen.append(options_from_cli(kwargs))
        assert kwargs == {}, "options_from_cli takes every generation flag's value"

    cli_fields = {name: spec for name, spec in FIELD_SPECS.items() if spec.cli}
    assert [p.name for p in command.params] == list(cli_fields)
    args: list[str] = []
    for name, spec in cli_fields.items():
        value = SAMPLES[name]
        if spec.kind is Kind.TEXTS:
            args += [part for text in value for part in (cli_flag(name), text)]
        elif spec.kind is Kind.SWITCH:
            args.append(cli_flag(name))
        else:
            args += [spec.short or cli_flag(name), str(value)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert seen == [GenerationOptions(**{name: SAMPLES[name] for name in cli_fields})]
    help_text = " ".join(CliRunner().invoke(command, ["--help"]).output.split())
    assert all(" ".join(spec.help.split()) in help_text for spec in cli_fields.values())


def test_set_parses_every_field_from_text() -> None:
    options = GenerationOptions()
    for name, value in SAMPLES.items():
        kind = FIELD_SPECS[name].kind
        text = "|".join(value) if kind is Kind.TEXTS else "on" if kind is Kind.SWITCH else str(value)
        options = options.with_text_value(name.replace("_", "-"), text)
    assert options == GenerationOptions(**SAMPLES)
    for name in FIELD_SPECS:
        assert f"{name} = " in options.describe()


def test_set_refuses_unknown_names_and_unparsable_values_and_none_resets() -> None:
    options = GenerationOptions().with_text_value("temperature", "0.7")
    assert options.with_text_value("temperature", "none").temperature is None
    with pytest.raises(OptionsError, match="unknown option 'warmth'; options: max_new_tokens, "):
        options.with_text_value("warmth", "1")
    with pytest.raises(OptionsError, match="temperature needs a float value, not 'hot'"):
        options.with_text_value("temperature", "hot")
    with pytest.raises(OptionsError, match=r"top_k needs an int value, not '1\.5'"):
        options.with_text_value("top_k", "1.5")


def test_the_server_takes_every_openai_named_field_and_documents_its_bounds() -> None:
    schema = ChatRequest.model_json_schema()["properties"]
    for name, field in OPENAI.items():
        spec = FIELD_SPECS[name]
        assert field in ChatRequest.model_fields and field in CompletionRequest.model_fields
        if spec.numeric:
            low = "minimum" if spec.low_inclusive else "exclusiveMinimum"
            high = "maximum" if spec.high_inclusive else "exclusiveMaximum"
            assert schema[field][low] == spec.low
            assert schema[field].get(high, math.inf) == spec.high
    body = {"messages": [{"role": "user", "content": "hi"}]}
    request = ChatRequest.model_validate({**body, **{OPENAI[n]: _json(SAMPLES[n]) for n in OPENAI}})
    assert request.generation_request().options == GenerationOptions(**{n: SAMPLES[n] for n in OPENAI})
    # A field OpenAI does not have is not a request field: a body naming it is ignored, as any extra.
    for name in FIELD_SPECS.keys() - OPENAI.keys():
        assert name not in ChatRequest.model_fields
        assert ChatRequest.model_validate({**body, name: SAMPLES[name]}).options() == GenerationOptions()


@pytest.mark.parametrize("raw", [False, True])
def test_what_ask_server_sends_is_what_the_server_maps_back(raw: bool) -> None:
    options = GenerationOptions(**{name: SAMPLES[name] for name in OPENAI})
    route, body = request_body("hi", options, None, raw)
    assert {OPENAI[name] for name in OPENAI} <= set(body)
    model = CompletionRequest if route == "/v1/completions" else ChatRequest
    assert model.model_validate(body).generation_request().options == options
    _, plain = request_body("hi", GenerationOptions(temperature=0.0, seed=0), None, raw)
    assert (plain["temperature"], plain["seed"]) == (0.0, 0), "0 is a value, not 'unset'"
    assert "stop" not in plain and "ignore_eos" not in plain


def test_a_field_a_server_cannot_take_is_one_error_naming_its_flag() -> None:
    for name in FIELD_SPECS.keys() - OPENAI.keys():
        with pytest.raises(OvchatError, match=f"^{cli_flag(name)} cannot be sent to a server"):
            request_body("hi", GenerationOptions(**{name: SAMPLES[name]}), None, False)


def test_every_field_reaches_the_generation_config() -> None:
    config = GenerationOptions(**SAMPLES).to_config(ov_genai.GenerationConfig(), 7)
    assert config.max_new_tokens == 7  # the budget, worked out from max_new_tokens elsewhere
    assert config.do_sample and config.temperature == pytest.approx(SAMPLES["temperature"])
    assert config.stop_strings == set(SAMPLES["stop"])
    for name, spec in FIELD_SPECS.items():
        if isinstance(spec.genai, str):
            assert getattr(config, spec.genai) == pytest.approx(SAMPLES[name]), name
    untouched = GenerationOptions().to_config(ov_genai.GenerationConfig(), 7)
    assert untouched.top_p == ov_genai.GenerationConfig().top_p  # unset: the model's own value stays


def test_an_out_of_range_min_p_is_one_clear_error_from_every_front_end() -> None:
    message = "min_p must be in [0, 1), not 1.0"
    result = CliRunner().invoke(cli, ["ask", "--min-p", "1", "hi"])  # refused before any model load
    assert (result.exit_code, result.stderr) == (2, f"ovchat: error: {message}\n")
    with pytest.raises(OptionsError) as refused:
        GenerationOptions().with_text_value("min_p", "1")
    assert str(refused.value) == message
    assert GenerationOptions().with_text_value("min_p", "0.05").min_p == 0.05
    chat = {"messages": [{"role": "user", "content": "hi"}], "min_p": 1.0}
    for body, model in [(chat, ChatRequest), ({"prompt": "hi", "min_p": 1.0}, CompletionRequest)]:
        with pytest.raises(RequestRejected) as rejected:
            model.model_validate(body).generation_request()
        assert (str(rejected.value), rejected.value.param) == (message, "min_p")
    bounds = ChatRequest.model_json_schema()["properties"]["min_p"]
    assert (bounds["minimum"], bounds["exclusiveMaximum"]) == (0.0, 1.0)


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
