"""One benchmark measurement in a fresh process, run by each engine's own interpreter.

usage: bench_workers.py ENGINE TASK MODEL [SALT]
  ENGINE: reference (optimum-intel + transformers) | llamacpp (the xllamacpp wheel)
          | llamacpp-native (llama-cpp-python built here with -march=native)
  TASK:   cold (prints FIRST at the first streamed token, then DONE) | speed (prints one JSON line)
          | large (load time, TTFT at 512 and 2,048 prompt tokens, decode, steady RSS: one JSON line)
ovchat's cold start is measured on its real CLI (`ovchat ask`), and its speed with `ovchat bench`.
Everything is greedy, on 2 threads, and generates exactly NEW_TOKENS tokens (eos ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from lib.workload import NEW_TOKENS, QUESTION  # stdlib-only: importable from every engine's venv

THREADS = 2
WORDS = ("the", "river", "ran", "past", "old", "stone", "walls", "while", "people", "walked", "to", "market",
         "and", "talked", "about", "rain", "bread", "music", "work", "long", "summer", "days", "that", "came",
         "before", "cold", "months", "of", "year")  # fmt: skip


def long_prompt(words: int, salt: int) -> str:
    """About `words` tokens of filler; `salt` makes each one different (no prefix-cache hits)."""
    return f"Note {salt}: " + " ".join(WORDS[(i * 7 + salt) % len(WORDS)] for i in range(words))


def mark(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def reference_cold(model_dir: str) -> None:
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    # transformers is the reference env's, not the venv mypy runs in: there BaseStreamer is Any.
    class FirstToken(BaseStreamer):  # type: ignore[misc]
        def __init__(self) -> None:
            self.calls = 0

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call carries the prompt
                mark("FIRST")

        def end(self) -> None:
            pass

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = OVModelForCausalLM.from_pretrained(model_dir, ov_config=_ov_config(), device="CPU")
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    model.generate(
        **inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, streamer=FirstToken()
    )
    mark("DONE")


def _ov_config() -> dict[str, str]:
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(THREADS), "CACHE_DIR": ""}


def reference_speed(model_dir: str, salt: int) -> dict[str, float]:
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = OVModelForCausalLM.from_pretrained(model_dir, ov_config=_ov_config(), device="CPU")

    def timed(prompt: str, new: int) -> tuple[float, int]:
        inputs = tokenizer(prompt, return_tensors="pt")
        started = time.perf_counter()
        model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        return time.perf_counter() - started, int(inputs["input_ids"].shape[1])

    timed(long_prompt(32, salt), 8)  # warm-up
    prefill_s, prompt_tokens = timed(long_prompt(512, salt + 1), 1)
    full_s, _ = timed(long_prompt(512, salt + 2), NEW_TOKENS + 1)
    return {
        "prompt_tokens": prompt_tokens,
        "prefill_tokens_per_s": prompt_tokens / prefill_s,
        "decode_tokens_per_s": NEW_TOKENS / (full_s - prefill_s),
    }


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _llama_server(gguf: str, context: int = 2048) -> Any:
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = gguf
    params.n_ctx = context
    params.n_predict = NEW_TOKENS
    params.cpuparams.n_threads = THREADS
    params.cpuparams_batch.n_threads = THREADS
    params.sampling.temp = 0.0
    return xlc.Server(params)


def llamacpp_cold(gguf: str) -> None:
    server = _llama_server(gguf)
    seen = {"first": False}

    def on_chunk(chunk: Any) -> bool:
        if not seen["first"] and "content" in json.dumps(chunk):
            seen["first"] = True
            mark("FIRST")
        return False

    request = {
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": NEW_TOKENS,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
    }
    server.handle_chat_completions(request, on_chunk)
    mark("DONE")


def llamacpp_speed(gguf: str, salt: int) -> dict[str, float]:
    server = _llama_server(gguf)

    def run(prompt: str, new: int) -> dict[str, Any]:
        request = {
            "prompt": prompt,
            "max_tokens": new,
            "ignore_eos": True,
            "temperature": 0.0,
            "cache_prompt": False,
        }
        result: dict[str, Any] = server.handle_completions(request)
        return dict(result["timings"])

    run(long_prompt(32, salt), 8)  # warm-up
    timings = run(long_prompt(512, salt + 1), NEW_TOKENS)
    return {
        "prompt_tokens": timings["prompt_n"],
        "prefill_tokens_per_s": timings["prompt_per_second"],
        "decode_tokens_per_s": timings["predicted_per_second"],
    }


LARGE_CONTEXT = 4096
LARGE_PROMPTS = (512, 2048)


def llamacpp_large(gguf: str, salt: int) -> dict[str, float]:
    """The wheel: load, TTFT at each prompt length (a fresh prompt each), decode after 512 tokens."""
    started = time.perf_counter()
    server = _llama_server(gguf, LARGE_CONTEXT)
    load_s = time.perf_counter() - started

    def run(prompt: str, new: int) -> tuple[float, dict[str, Any]]:
        request = {"prompt": prompt, "max_tokens": new, "ignore_eos": True, "temperature": 0.0}
        request["cache_prompt"] = False
        begun = time.perf_counter()
        result: dict[str, Any] = server.handle_completions(request)
        return time.perf_counter() - begun, dict(result["timings"])

    run(long_prompt(32, salt), 8)  # warm-up
    figures: dict[str, float] = {"load_s": load_s}
    for length in LARGE_PROMPTS:
        seconds, timings = run(long_prompt(length, salt + length), 1)
        figures[f"ttft_{length}_s"] = seconds
        figures[f"prompt_tokens_{length}"] = timings["prompt_n"]
        figures[f"prefill_{length}_tokens_per_s"] = timings["prompt_per_second"]
    _, timings = run(long_prompt(512, salt + 1), NEW_TOKENS)
    figures["decode_tokens_per_s"] = timings["predicted_per_second"]
    figures["steady_rss_mb"] = resident_mb()
    return figures


def _native(gguf: str) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=gguf,
        n_ctx=LARGE_CONTEXT,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )


def native_cold(gguf: str) -> None:
    llm = _native(gguf)
    no_eos = {llm.token_eos(): -1e9}
    messages = [{"role": "user", "content": QUESTION}]
    stream = llm.create_chat_completion(
        messages, max_tokens=NEW_TOKENS, temperature=0.0, stream=True, logit_bias=no_eos
    )
    seen = False
    for chunk in stream:
        if not seen and chunk["choices"][0]["delta"].get("content"):
            seen = True
            mark("FIRST")
    mark("DONE")


def native_large(gguf: str, salt: int) -> dict[str, float]:
    """llama-cpp-python: the same figures as llamacpp_large, timed around the calls."""
    started = time.perf_counter()
    llm = _native(gguf)
    load_s = time.perf_counter() - started
    no_eos = {llm.token_eos(): -1e9}

    def run(prompt: str, new: int) -> tuple[float, int]:
        llm.reset()  # no prefix reuse between calls
        tokens = llm.tokenize(prompt.encode(), add_bos=False)
        begun = time.perf_counter()
        llm.create_completion(tokens, max_tokens=new, temperature=0.0, logit_bias=no_eos)
        return time.perf_counter() - begun, len(tokens)

    run(long_prompt(32, salt), 8)  # warm-up
    figures: dict[str, float] = {"load_s": load_s}
    for length in LARGE_PROMPTS:
        seconds, count = run(long_prompt(length, salt + length), 1)
        figures[f"ttft_{length}_s"] = seconds
        figures[f"prompt_tokens_{length}"] = count
        figures[f"prefill_{length}_tokens_per_s"] = count / seconds
    first, _ = run(long_prompt(512, salt + 1), 1)
    full, _ = run(long_prompt(512, salt + 1), NEW_TOKENS + 1)
    figures["decode_tokens_per_s"] = NEW_TOKENS / (full - first)
    figures["steady_rss_mb"] = resident_mb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("engine", choices=("reference", "llamacpp", "llamacpp-native"))
    parser.add_argument("task", choices=("cold", "speed", "large"))
    parser.add_argument("model", help="the IR folder (reference) or the GGUF file (llama.cpp)")
    parser.add_argument("salt", type=int, nargs="?", default=0, help="makes the prompts new (default 0)")
    args = parser.parse_args()
    engine, model, salt = args.engine, args.model, args.salt
    if args.task == "cold":
        {"reference": reference_cold, "llamacpp": llamacpp_cold, "llamacpp-native": native_cold}[engine](
            model
        )
    elif args.task == "large":
        mark(json.dumps({"llamacpp": llamacpp_large, "llamacpp-native": native_large}[engine](model, salt)))
    else:
        speed = {"reference": reference_speed, "llamacpp": llamacpp_speed}[engine](model, salt)
        mark(json.dumps(speed))


if __name__ == "__main__":
    main()
