"""GenerationOptions: the one declaration of every generation field, and the checks on its values.

Each field carries a FieldSpec: its bounds, its kind, its CLI flag and help, its OpenAI request name
and where it goes in openvino_genai.GenerationConfig. The CLI's flags, the REPL's /set, the server's
request fields and OpenAPI bounds, the body `ask --server` sends and to_config() are all derived from
it, so a new field is one declaration here.

GenAI's own checks report C++ file paths, ignore unknown keys and wrap a negative
max_new_tokens to "unlimited" (and it takes any min_p at all), so every value is checked here
first, in plain words. Every front end builds a GenerationOptions and gets the same checks.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ovchat.errors import OptionsError

if TYPE_CHECKING:
    import openvino_genai as ov_genai

# An answer is never unlimited: without an explicit max_new_tokens it gets this many tokens at
# most, fewer when the context window has less room (see budget.answer_budget).
DEFAULT_MAX_NEW_TOKENS = 512
MAX_SEED = 2**63 - 1
MAX_TOP_K = 1_000_000

# Puts a value into a GenerationConfig when it is not a plain attribute of the same meaning.
Setter = Callable[["ov_genai.GenerationConfig", Any], None]


class Kind(enum.Enum):
    """What a field holds, which decides how each front end reads and writes it."""

    INTEGER = "integer"
    NUMBER = "number"
    TEXTS = "texts"  # stop strings: a repeatable flag, `a|b` in /set, a string or a list in a request
    SWITCH = "switch"  # on or off: a bare flag, off by default


@dataclass(frozen=True)
class FieldSpec:
    """Everything ovchat knows about one generation field, declared once on GenerationOptions."""

    kind: Kind
    # The GenerationConfig attribute it sets, or a Setter; None: to_config() sets it itself.
    genai: str | Setter | None
    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True
    help: str = ""  # the CLI flag's help text
    short: str | None = None  # the CLI flag's one-letter alias, e.g. "-n"
    cli: bool = True  # False: no CLI flag (only /set, the server and the library take it)
    # The request field a server takes (OpenAI's name, or vLLM's for an extra such as ignore_eos);
    # None: a server never takes it, and `ask --server` refuses to send it.
    openai: str | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.INTEGER, Kind.NUMBER)


def option(spec: FieldSpec, default: Any = None) -> Any:
    """A GenerationOptions field declared by its FieldSpec."""
    return dataclasses.field(default=default, metadata={"spec": spec})


def _sample_at(config: ov_genai.GenerationConfig, temperature: float) -> None:
    # 0 means greedy: GenAI has no sampling temperature of 0 (it refuses one with do_sample).
    config.do_sample = temperature > 0.0
    if config.do_sample:
        config.temperature = temperature


def _stop_strings(config: ov_genai.GenerationConfig, stop: tuple[str, ...]) -> None:
    config.stop_strings = set(stop)


@dataclass(frozen=True)
class GenerationOptions:
    """None means "the default": for max_new_tokens DEFAULT_MAX_NEW_TOKENS cut to the context,
    for the sampling values the model's own generation_config.json."""

    max_new_tokens: int | None = option(
        FieldSpec(
            Kind.INTEGER,
            genai=None,  # to_config() sets the budget budget.answer_budget() worked out from it
            low=1,
            short="-n",
            openai="max_tokens",
            help=f"Longest answer, in tokens [default: {DEFAULT_MAX_NEW_TOKENS}, less if the context "
            "window has less room].",
        )
    )
    temperature: float | None = option(
        FieldSpec(
            Kind.NUMBER,
            genai=_sample_at,
            low=0.0,
            high=2.0,
            short="-t",
            openai="temperature",
            help="0 = greedy; default: the model's own (its generation_config.json).",
        )
    )
    top_p: float | None = option(
        FieldSpec(
            Kind.NUMBER,
            genai="top_p",
            low=0.0,
            high=1.0,
            low_inclusive=False,
            openai="top_p",
            help="Nucleus sampling, in (0, 1].",
        )
    )
    top_k: int | None = option(
        FieldSpec(
            Kind.INTEGER, genai="top_k", low=1, high=MAX_TOP_K, help="Sample from the k most likely tokens."
        )
    )
    min_p: float | None = option(
        FieldSpec(
            Kind.NUMBER,
            genai="min_p",
            low=0.0,
            high=1.0,
            high_inclusive=False,  # GenAI refuses 1 when sampling: "min_p must be in [0.0, 1.0)"
            openai="min_p",  # not OpenAI's own: vLLM's and llama-server's name for it
            help="Sample only tokens at least min-p times as likely as the likeliest one; 0 = off.",
        )
    )
    repetition_penalty: float | None = option(
        FieldSpec(
            Kind.NUMBER,
            genai="repetition_penalty",
            low=0.0,
            high=10.0,
            low_inclusive=False,
            help="1.0 = none.",
        )
    )
    presence_penalty: float | None = option(
        FieldSpec(
            Kind.NUMBER, genai="presence_penalty", low=-2.0, high=2.0, cli=False, openai="presence_penalty"
        )
    )
    frequency_penalty: float | None = option(
        FieldSpec(
            Kind.NUMBER, genai="frequency_penalty", low=-2.0, high=2.0, cli=False, openai="frequency_penalty"
        )
    )
    seed: int | None = option(
        FieldSpec(
            Kind.INTEGER,
            genai="rng_seed",
            low=0,
            high=MAX_SEED,
            openai="seed",
            help="Random seed for sampling.",
        )
    )
    stop: tuple[str, ...] = option(
        FieldSpec(
            Kind.TEXTS,
            genai=_stop_strings,
            openai="stop",
            help="Stop when the answer contains TEXT (repeatable).",
        ),
        default=(),
    )
    ignore_eos: bool = option(  # keep going past eos, for fixed-length benchmarks
        FieldSpec(
            Kind.SWITCH,
            genai="ignore_eos",
            openai="ignore_eos",  # not OpenAI's own: vLLM's name for it
            help="Generate max-new-tokens even past eos (for benchmarks).",
        ),
        default=False,
    )

    def __post_init__(self) -> None:
        for name, spec in FIELD_SPECS.items():
            if spec.numeric:
                _check(name, getattr(self, name), spec)
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise OptionsError("stop strings must be non-empty text", option="stop")

    def replace(self, **changes: Any) -> GenerationOptions:
        """A copy with some values changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def given(self) -> dict[str, Any]:
        """The fields set to something other than their default, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def with_text_value(self, name: str, text: str) -> GenerationOptions:
        """Set one option from user text, as in `/set temperature 0.7` (`none` resets it)."""
        key = name.replace("-", "_").lower()
        if key not in FIELD_SPECS:
            raise OptionsError(f"unknown option '{name}'; options: {', '.join(FIELD_SPECS)}", option=key)
        kind = FIELD_SPECS[key].kind
        if kind is Kind.TEXTS:
            return self.replace(**{key: tuple(s for s in text.split("|") if s) if text != "none" else ()})
        if kind is Kind.SWITCH:
            return self.replace(**{key: text.lower() in ("1", "true", "yes", "on")})
        if text.lower() == "none":
            return self.replace(**{key: None})
        parse = int if kind is Kind.INTEGER else float
        try:
            value = parse(text)
        except ValueError:
            raise OptionsError(
                f"{key} needs a{'n int' if parse is int else ' float'} value, not '{text}'", option=key
            ) from None
        return self.replace(**{key: value})

    def to_config(self, base: ov_genai.GenerationConfig, max_new_tokens: int) -> ov_genai.GenerationConfig:
        """Apply these options on top of the model's default config (`base` is modified).

        `max_new_tokens` is the budget budget.answer_budget() worked out for this prompt."""
        config = base
        config.max_new_tokens = max_new_tokens
        for name, spec in FIELD_SPECS.items():
            value = getattr(self, name)
            if spec.genai is None or value is None or value == ():  # unset: the model's own value stays
                continue
            if isinstance(spec.genai, str):
                setattr(config, spec.genai, value)
            else:
                spec.genai(config, value)
        return config

    def describe(self) -> str:
        """One line per option, for /set with no arguments."""
        return "\n".join(f"{name} = {_show(name, getattr(self, name))}" for name in FIELD_SPECS)


def specs_of(options_class: type[GenerationOptions]) -> dict[str, FieldSpec]:
    """Each field's FieldSpec, by name, in declaration order (the order of --help and /set)."""
    specs = {}
    for field in fields(options_class):
        if not isinstance(field.metadata.get("spec"), FieldSpec):
            # Every front end is derived from the specs: a field without one would be missed by all.
            raise TypeError(
                f"{options_class.__name__}.{field.name} is declared without option(FieldSpec(...))"
            )
        specs[field.name] = field.metadata["spec"]
    return specs


FIELD_SPECS: dict[str, FieldSpec] = specs_of(GenerationOptions)
# The fields a request to a server may set, by their request names (OpenAI's, or vLLM's for extras).
OPENAI_NAMES: dict[str, str] = {name: spec.openai for name, spec in FIELD_SPECS.items() if spec.openai}


def cli_flag(name: str) -> str:
    """The CLI flag of a GenerationOptions field: `--top-k` for top_k."""
    return "--" + name.replace("_", "-")


def _show(name: str, value: Any) -> str:
    if value is None and name == "max_new_tokens":
        return f"(default: {DEFAULT_MAX_NEW_TOKENS}, less if the context is fuller)"
    if value is None:
        return "(model default)"
    if isinstance(value, tuple):
        return "|".join(value) or "(none)"
    return str(value)


def _check(name: str, value: Any, spec: FieldSpec) -> None:
    if value is None:
        return
    integer = spec.kind is Kind.INTEGER
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise OptionsError(
            f"{name} must be a{'n integer' if integer else ' number'}, not {value!r}", option=name
        )
    if not integer:
        value = _as_float32(value)  # what GenAI will see: 5e-324 is 0 there
    low, high = spec.low, spec.high
    above_low = low <= value if spec.low_inclusive else low < value
    below_high = value <= high if spec.high_inclusive else value < high
    if not (above_low and below_high):  # also catches NaN, which compares false to everything
        opening = "[" if spec.low_inclusive else "("
        closing = "]" if spec.high_inclusive else ")"
        shown_high = "∞" if math.isinf(high) else _number(high)
        raise OptionsError(
            f"{name} must be in {opening}{_number(low)}, {shown_high}{closing}, not {value}", option=name
        )


def _as_float32(value: float) -> float:
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:  # beyond float32's range
        return math.copysign(math.inf, value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
