"""Measuring a model on this machine: load time, TTFT, TPOT, prefill and decode speed, peak RSS, from
GenAI's perf_metrics (what `ovchat bench` reports).

Each repeat uses a different prompt: GenAI's prefix cache would otherwise answer a repeated
prompt's prefill from memory and make TTFT meaningless.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass, field

import openvino_genai as ov_genai

from ovchat.errors import OptionsError
from ovchat.model.device import DeviceConfig
from ovchat.model.memory import MB, process_status
from ovchat.model.pipeline import Model, open_model

# Plain words that each encode to one token in typical BPE vocabularies.
FILLER = ("the", "river", "ran", "past", "old", "stone", "walls", "while", "people", "walked", "to",
          "market", "and", "talked", "about", "rain", "bread", "music", "work", "long", "summer", "days",
          "that", "came", "before", "cold", "months", "of", "year")  # fmt: skip


@dataclass(frozen=True)
class Spread:
    """Median with the lowest and highest of the repeats."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(round(statistics.median(values), 2), round(min(values), 2), round(max(values), 2))


@dataclass(frozen=True)
class LengthResult:
    prompt_tokens: int
    new_tokens: int
    ttft_ms: Spread
    tpot_ms: Spread
    prefill_tokens_per_s: Spread
    decode_tokens_per_s: Spread


@dataclass
class BenchReport:
    model: str
    device: str
    attention_backend: str
    load_seconds: float
    repeats: int
    results: list[LengthResult] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    steady_rss_mb: float = 0.0  # resident at the end, with the model loaded and warm


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and its peak, in MB, from one read of /proc/self/status.

    The peak is VmHWM, which the kernel computes as max(high-water mark, current RSS) in the same
    read, so it can never trail the resident figure beside it. ru_maxrss can: the high-water mark is
    refreshed lazily (on unmap, not on every fault), and a run saw steady 516.5 MB over peak 516.4.
    ru_maxrss also carries the peak of the process that forked this one. Without /proc it is the
    only peak there is, and the current figure is unknown (0).
    """
    fields = process_status("VmRSS", "VmHWM")
    if "VmHWM" not in fields:
        return 0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return fields.get("VmRSS", 0) / MB, fields["VmHWM"] / MB


def make_prompt(model: Model, tokens: int, salt: int) -> ov_genai.TokenizedInputs:
    """A prompt of exactly `tokens` tokens, different for each `salt`."""
    words = [f"Note {salt}:"] + [FILLER[(i * 7 + salt) % len(FILLER)] for i in range(tokens * 2)]
    ids = model.tokenizer.encode(" ".join(words), add_special_tokens=False).input_ids.data[0][:tokens]
    return model.tokenizer.encode(model.tokenizer.decode(list(ids)), add_special_tokens=False)


def measure(model: Model, prompt: ov_genai.TokenizedInputs, new_tokens: int) -> ov_genai.PerfMetrics:
    config = model.pipeline.get_generation_config()
    config.max_new_tokens = new_tokens
    config.ignore_eos = True  # every run generates exactly new_tokens
    config.do_sample = False
    config.apply_chat_template = False
    return model.pipeline.generate(prompt, config).perf_metrics


def run_bench(
    model: Model, lengths: list[int], new_tokens: int, repeats: int, warmup: int = 1
) -> BenchReport:
    """Warm up, then time each prompt length `repeats` times with fresh prompts."""
    if repeats < 1 or new_tokens < 2 or any(n < 1 for n in lengths):
        raise OptionsError("repeats must be >= 1, new tokens >= 2 and prompt lengths >= 1")
    context = model.files.context_length
    if context is not None and max(lengths) + new_tokens > context:
        raise OptionsError(f"prompt length + new tokens must fit the context window ({context})")
    report = BenchReport(
        model.files.name,
        model.device.device,
        model.device.attention_backend or "PA",
        round(model.load_seconds, 3),
        repeats,
    )
    salt = 0
    for _ in range(warmup):
        measure(model, make_prompt(model, min(lengths), salt := salt + 1), new_tokens)
    model.settle_memory()
    for length in lengths:
        runs = [
            measure(model, make_prompt(model, length, salt := salt + 1), new_tokens) for _ in range(repeats)
        ]
        ttft = [m.get_ttft().mean for m in runs]
        tpot = [m.get_tpot().mean for m in runs]
        report.results.append(
            LengthResult(
                prompt_tokens=runs[0].get_num_input_tokens(),
                new_tokens=runs[0].get_num_generated_tokens(),
                ttft_ms=Spread.of(ttft),
                tpot_ms=Spread.of(tpot),
                prefill_tokens_per_s=Spread.of([length / (t / 1000) for t in ttft]),
                decode_tokens_per_s=Spread.of([1000 / t for t in tpot]),
            )
        )
    steady, peak = memory_mb()
    report.steady_rss_mb, report.peak_rss_mb = round(steady, 1), round(peak, 1)
    return report


def bench_model(
    spec: str | None, device: DeviceConfig, lengths: list[int], new_tokens: int, repeats: int
) -> BenchReport:
    """Open the model at `spec` and measure it (run_bench)."""
    started = time.perf_counter()
    model = open_model(spec, device)
    model.load_seconds = time.perf_counter() - started
    return run_bench(model, lengths, new_tokens, repeats)
