"""Tool calls on `ovchat serve`: how often enforced calls fit their schema, what "auto" does, and
what the grammar costs per token.

    build/venv/bin/python scripts/bench/bench_tools.py                 # starts a server itself
    build/venv/bin/python scripts/bench/bench_tools.py --url http://127.0.0.1:8000

1. Validity: each of TOOLS (>= 50 varied function definitions: every JSON type, enums, bounds,
   patterns, arrays, nested objects, optional fields) is called with tool_choice "required" and
   with its name; a call counts when it is one call of that function whose arguments parse as JSON
   and validate against the schema (jsonschema). Target: all of them.
2. "auto": PROMPTS that ask for what a tool does, and CHATS that need no tool, each offered the
   tools; how often the answer calls, and whether those calls fit.
3. The grammar's cost: the mean gap between generated tokens (as the engine times them, from its
   /metrics) of a named call, against the same messages without tools generating as many tokens
   (ignore_eos); the median ratio over --rounds pairs. Also printed: the CPU (/proc/cpuinfo).
Greedy throughout; prints markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import httpx
import jsonschema
import openai
from openai.types.chat import ChatCompletion

from lib.machine import cpu_model
from lib.server import ServerProcess, ovchat_serve, start_on_free_port

FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("city", {"type": "string"}),
    ("count", {"type": "integer", "minimum": 1, "maximum": 10}),
    ("price", {"type": "number", "minimum": 0}),
    ("urgent", {"type": "boolean"}),
    ("unit", {"type": "string", "enum": ["celsius", "fahrenheit"]}),
    ("date", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
    ("tags", {"type": "array", "items": {"type": "string"}, "maxItems": 3}),
    ("limit", {"type": "integer", "enum": [10, 20, 50]}),
    (
        "address",
        {
            "type": "object",
            "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["street"],
        },
    ),
    ("code", {"type": "string", "minLength": 2, "maxLength": 3}),
    ("ratio", {"type": "number", "minimum": 0, "maximum": 1}),
    ("ids", {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 4}),
    ("mode", {"anyOf": [{"type": "string", "enum": ["fast", "slow"]}, {"type": "integer"}]}),
    ("note", {"type": ["string", "null"]}),
]
VERBS = ["get", "find", "book", "cancel", "convert", "send", "search", "list", "create", "update"]
TOPICS = [
    "weather",
    "flight",
    "hotel",
    "order",
    "currency",
    "email",
    "recipe",
    "ticket",
    "invoice",
    "meeting",
]


def tools() -> list[dict[str, Any]]:
    """60 function definitions: 1-4 fields each, taken in turn from FIELDS, some required."""
    made = []
    for number in range(60):
        width = 1 + number % 4
        fields = [FIELDS[(number * 3 + k) % len(FIELDS)] for k in range(width)]
        properties = dict(fields)
        required = [name for k, (name, _) in enumerate(fields) if (number + k) % 3 != 2]
        schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if number % 2:
            schema["additionalProperties"] = False
        name = f"{VERBS[number % 10]}_{TOPICS[(number // 10 + number) % 10]}_{number}"
        description = f"{VERBS[number % 10].title()} a {TOPICS[(number // 10 + number) % 10]}"
        made.append(
            {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}
        )
    return made


PROMPTS = [
    "What's the weather in Lisbon tomorrow?",
    "Book me a flight to Tokyo on 2027-03-01.",
    "Find a hotel in Rome for two nights.",
    "Cancel my order 4471.",
    "Convert 100 dollars to euros.",
    "Send an email to Ana saying I am late.",
    "Search for a pasta recipe.",
    "List my tickets.",
    "Create a meeting with Bob at noon.",
    "Update invoice 12 to 50 euros.",
]
CHATS = ["Hi! How are you?", "Tell me a joke.", "What is 2 + 2?", "Say hello in French.", "Thanks, bye!"]


def valid(call: Any, tool: dict[str, Any]) -> bool:
    if call.function.name != tool["function"]["name"]:
        return False
    try:
        jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def complete(client: openai.OpenAI, **fields: Any) -> ChatCompletion:
    """One greedy chat completion. The tools and messages are plain JSON, as a user's would be: the
    openai package's TypedDicts for them would add nothing to the benchmark."""
    answer: ChatCompletion = client.chat.completions.create(model="m", temperature=0, **fields)
    return answer


def validity(client: openai.OpenAI, offered: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    good, total, bad = 0, 0, []
    for tool in offered:
        name = tool["function"]["name"]
        ask = [{"role": "user", "content": f"Please {tool['function']['description'].lower()}."}]
        for choice in ("required", {"type": "function", "function": {"name": name}}):
            # "required" sees only this tool, so that the right function is the only fitting one.
            answer = complete(client, messages=ask, tools=[tool], tool_choice=choice, max_tokens=200)
            calls = answer.choices[0].message.tool_calls or []
            total += 1
            if len(calls) == 1 and valid(calls[0], tool) and answer.choices[0].finish_reason == "tool_calls":
                good += 1
            else:
                bad.append(
                    f"{name} ({choice if isinstance(choice, str) else 'named'}): {calls or answer.choices[0]}"
                )
    return good, total, bad


def auto(client: openai.OpenAI, offered: list[dict[str, Any]]) -> dict[str, Any]:
    by_topic = {t: [x for x in offered if t in x["function"]["name"]][:3] for t in TOPICS}
    result = {"asked": 0, "called": 0, "fitting": 0, "chats": 0, "chats_called": 0}
    for prompt in PROMPTS + CHATS:
        topic = next((t for t in TOPICS if t in prompt.lower()), TOPICS[0])
        shown = list({t["function"]["name"]: t for t in by_topic[topic] + by_topic["weather"][:1]}.values())
        answer = complete(client, messages=[{"role": "user", "content": prompt}], tools=shown, max_tokens=120)
        calls = answer.choices[0].message.tool_calls or []
        key = "asked" if prompt in PROMPTS else "chats"
        result[key] += 1
        result["called" if key == "asked" else "chats_called"] += bool(calls)
        result["fitting"] += sum(any(valid(c, t) for t in shown) for c in calls)
        result.setdefault("calls", 0)
        result["calls"] += len(calls)
    return result


def token_gap(url: str) -> tuple[float, int]:
    """The server's own sum and count of gaps between generated tokens (its /metrics)."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("ovchat_time_per_output_token_seconds_"):
            values[name.rsplit("_", 1)[1]] = float(value)
    return values["sum"], int(values["count"])


def per_token_s(client: openai.OpenAI, url: str, **fields: Any) -> tuple[float, int]:
    """The mean gap between the answer's tokens, as the engine timed them, and how many it made."""
    before = token_gap(url)
    answer = complete(client, **fields)
    after = token_gap(url)
    assert answer.usage is not None
    return (after[0] - before[0]) / max(1, after[1] - before[1]), answer.usage.completion_tokens


def grammar_cost(
    client: openai.OpenAI, url: str, tool: dict[str, Any], rounds: int
) -> tuple[float, float, float, int]:
    """Seconds per token with the grammar (a named call), without tools (as many tokens), their ratio."""
    ask = [{"role": "user", "content": "What's the weather in Paris this week, in celsius?"}]
    named = {"type": "function", "function": {"name": tool["function"]["name"]}}
    with_grammar, without = [], []
    for _ in range(rounds):  # in pairs, back to back: the machine is shared
        seconds, tokens = per_token_s(
            client, url, messages=ask, tools=[tool], tool_choice=named, max_tokens=200
        )
        with_grammar.append(seconds)
        plain, _ = per_token_s(client, url, messages=ask, max_tokens=tokens, extra_body={"ignore_eos": True})
        without.append(plain)
    ratios = [a / b for a, b in zip(with_grammar, without, strict=True)]
    return statistics.median(with_grammar), statistics.median(without), statistics.median(ratios), tokens


def report_calls(client: openai.OpenAI, offered: list[dict[str, Any]]) -> None:
    good, total, bad = validity(client, offered)
    print(
        f"## Enforced calls\n\n{good}/{total} required/named calls parse and fit the schema "
        f"({100 * good / total:.1f}%) over {len(offered)} tool definitions"
    )
    for line in bad:
        print(f"- {line}")
    seen = auto(client, offered)
    print(
        f"\n## auto\n\n{seen['called']}/{seen['asked']} requests that want a tool call one; "
        f"{seen['chats_called']}/{seen['chats']} chit-chat requests call one; "
        f"{seen['fitting']}/{seen.get('calls', 0)} calls fit an offered function's schema"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running server (default: start one on the default model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only-cost", action="store_true", help="measure the grammar's cost only")
    args = parser.parse_args()
    server: ServerProcess | None = None
    if not args.url:  # the default model, on a server of its own
        server = start_on_free_port(ovchat_serve, what="ovchat serve", timeout=300, quiet=True)
    url = server.url if server else args.url
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=300)
        offered = tools()
        if not args.only_cost:
            report_calls(client, offered)
        weather = offered[0]
        slow, fast, ratio, tokens = grammar_cost(client, url, weather, args.rounds)
        print(
            f"\n## Grammar cost\n\n{1000 * slow:.2f} ms/token with the tool grammar vs {1000 * fast:.2f} "
            f"without tools ({tokens} tokens): ratio {ratio:.2f} (median of {args.rounds}); "
            f"CPU: {cpu_model()}"
        )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
