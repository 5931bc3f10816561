"""GenerationOptions: the one place where generation defaults and bounds live.

GenAI's own checks report C++ file paths, ignore unknown keys and wrap a negative
max_new_tokens to "unlimited", so every value is checked here first, in plain words. The CLI,
the REPL's /set and the HTTP server all build a GenerationOptions and get the same checks.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ovchat.errors import OptionsError

if TYPE_CHECKING:
    import openvino_genai as ov_genai

# An answer is never unlimited: without an explicit max_new_tokens it gets this many tokens at
# most, fewer when the context window has less room (see rules.answer_budget).
DEFAULT_MAX_NEW_TOKENS = 512
MAX_SEED = 2**63 - 1
MAX_TOP_K = 1_000_000

# name -> (lowest, highest, is the lowest allowed itself)
RANGES: dict[str, tuple[float, float, bool]] = {
    "max_new_tokens": (1, math.inf, True),
    "temperature": (0.0, 2.0, True),
    "top_p": (0.0, 1.0, False),
    "top_k": (1, MAX_TOP_K, True),
    "repetition_penalty": (0.0, 10.0, False),
    "presence_penalty": (-2.0, 2.0, True),
    "frequency_penalty": (-2.0, 2.0, True),
    "seed": (0, MAX_SEED, True),
}
INTEGERS = ("max_new_tokens", "top_k", "seed")


@dataclass(frozen=True)
class GenerationOptions:
    """None means "the default": for max_new_tokens DEFAULT_MAX_NEW_TOKENS cut to the context,
    for the sampling values the model's own generation_config.json."""

    max_new_tokens: int | None = None
    temperature: float | None = None  # 0 = greedy; > 0 = sampling
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past eos, for fixed-length benchmarks

    def __post_init__(self) -> None:
        for name, (low, high, low_ok) in RANGES.items():
            _check(name, getattr(self, name), low, high, low_ok)
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise OptionsError("stop strings must be non-empty text", option="stop")

    def replace(self, **changes: Any) -> GenerationOptions:
        """A copy with some values changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def with_text_value(self, name: str, text: str) -> GenerationOptions:
        """Set one option from user text, as in `/set temperature 0.7` (`none` resets it)."""
        key = name.replace("-", "_").lower()
        names = [f.name for f in fields(self)]
        if key not in names:
            raise OptionsError(f"unknown option '{name}'; options: {', '.join(names)}", option=key)
        if key == "stop":
            return self.replace(stop=tuple(s for s in text.split("|") if s) if text != "none" else ())
        if key == "ignore_eos":
            return self.replace(ignore_eos=text.lower() in ("1", "true", "yes", "on"))
        if text.lower() == "none":
            return self.replace(**{key: None})
        parse = int if key in INTEGERS else float
        try:
            value = parse(text)
        except ValueError:
            raise OptionsError(
                f"{key} needs a{'n int' if parse is int else ' float'} value, not '{text}'", option=key
            ) from None
        return self.replace(**{key: value})

    def to_config(self, base: ov_genai.GenerationConfig, max_new_tokens: int) -> ov_genai.GenerationConfig:
        """Apply these options on top of the model's default config (`base` is modified).

        `max_new_tokens` is the budget rules.answer_budget() worked out for this prompt."""
        config = base
        config.max_new_tokens = max_new_tokens
        if self.temperature is not None:
            config.do_sample = self.temperature > 0.0
            if config.do_sample:
                config.temperature = self.temperature
        for name in ("top_p", "top_k", "repetition_penalty", "presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None:
                setattr(config, name, value)
        if self.seed is not None:
            config.rng_seed = self.seed
        if self.stop:
            config.stop_strings = set(self.stop)
        config.ignore_eos = self.ignore_eos
        return config

    def describe(self) -> str:
        """One line per option, for /set with no arguments."""
        return "\n".join(f"{f.name} = {_show(f.name, getattr(self, f.name))}" for f in fields(self))


def _show(name: str, value: Any) -> str:
    if value is None and name == "max_new_tokens":
        return f"(default: {DEFAULT_MAX_NEW_TOKENS}, less if the context is fuller)"
    if value is None:
        return "(model default)"
    if isinstance(value, tuple):
        return "|".join(value) or "(none)"
    return str(value)


def _check(name: str, value: Any, low: float, high: float, low_ok: bool) -> None:
    if value is None:
        return
    wrong_type = isinstance(value, bool) or not isinstance(value, int if name in INTEGERS else (int, float))
    if wrong_type:
        raise OptionsError(
            f"{name} must be a{'n integer' if name in INTEGERS else ' number'}, not {value!r}", option=name
        )
    if name not in INTEGERS:
        value = _as_float32(value)  # what GenAI will see: 5e-324 is 0 there
    inside = (low <= value if low_ok else low < value) and value <= high
    if not inside:  # also catches NaN, which compares false to everything
        opening = "[" if low_ok else "("
        shown_high = "∞" if math.isinf(high) else _number(high)
        raise OptionsError(
            f"{name} must be in {opening}{_number(low)}, {shown_high}], not {value}", option=name
        )


def _as_float32(value: float) -> float:
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:  # beyond float32's range
        return math.copysign(math.inf, value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
