"""GenerationOptions: validated generation settings, turned into an openvino_genai.GenerationConfig.

GenAI's own checks report C++ file paths, ignore unknown keys and wrap a negative
max_new_tokens to "unlimited", so every value is checked here first, in plain words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import openvino_genai as ov_genai

from ovchat.errors import OptionsError

DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class GenerationOptions:
    """None means "the model's own default" (from its generation_config.json)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
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
        self.validate()

    def validate(self) -> None:
        """Raise OptionsError naming the first invalid value."""
        if isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 1:
            raise OptionsError(f"max_new_tokens must be a positive integer, not {self.max_new_tokens}")
        _check_range("temperature", self.temperature, 0.0, 100.0)
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise OptionsError(f"top_p must be in (0, 1], not {self.top_p}")
        _check_range("top_k", self.top_k, 0, 1_000_000)
        if self.repetition_penalty is not None and self.repetition_penalty <= 0.0:
            raise OptionsError(f"repetition_penalty must be > 0, not {self.repetition_penalty}")
        _check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        if any(not s for s in self.stop):
            raise OptionsError("stop strings must not be empty")

    def replace(self, **changes: Any) -> GenerationOptions:
        """A copy with some values changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_text_value(self, name: str, text: str) -> GenerationOptions:
        """Set one option from user text, as in `/set temperature 0.7` (`none` resets it)."""
        key = name.replace("-", "_").lower()
        types = {f.name: f.type for f in fields(self)}
        if key not in types:
            raise OptionsError(f"unknown option '{name}'; options: {', '.join(types)}")
        if key == "stop":
            return self.replace(stop=tuple(s for s in text.split("|") if s) if text != "none" else ())
        if text.lower() == "none":
            if key == "max_new_tokens":
                raise OptionsError("max_new_tokens cannot be unset: it is never unlimited")
            return self.replace(**{key: None})
        if key == "ignore_eos":
            return self.replace(ignore_eos=text.lower() in ("1", "true", "yes", "on"))
        parse = int if "int" in str(types[key]) else float
        try:
            value = parse(text)
        except ValueError:
            raise OptionsError(f"{key} needs a {parse.__name__} value, not '{text}'") from None
        return self.replace(**{key: value})

    def to_config(self, base: ov_genai.GenerationConfig) -> ov_genai.GenerationConfig:
        """Apply these options on top of the model's default config (`base` is modified)."""
        config = base
        config.max_new_tokens = self.max_new_tokens
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
        return "\n".join(f"{f.name} = {_show(getattr(self, f.name))}" for f in fields(self))


def _show(value: Any) -> str:
    if value is None:
        return "(model default)"
    if isinstance(value, tuple):
        return "|".join(value) or "(none)"
    return str(value)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not low <= value <= high:
        raise OptionsError(f"{name} must be between {low} and {high}, not {value}")
