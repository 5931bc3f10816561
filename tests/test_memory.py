"""The weights are resident once, not twice: the mapped weight files leave RSS after the first token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from servers import start_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps: Linux")

# Runs in a fresh process, so that no other test's pipeline maps the same files; answers, says so
# and waits, while the test reads its /proc/PID/smaps.
PROBE = """
import sys
from ovchat import ChatSession, GenerationOptions, open_model
from ovchat.model.device import DeviceConfig

model = open_model(sys.argv[1], DeviceConfig(attention_backend="SDPA", cache_dir=sys.argv[2]))
chat = ChatSession(model, GenerationOptions(max_new_tokens=8, temperature=0))
chat.send("What is the capital of France?")
print("answered", flush=True)
sys.stdin.readline()
# Every mapped page dropped by hand, then another answer: what stays now is what a step reads in
# place on this CPU (an AMX Xeon: the tied embedding, about 28 MB of 93; a Zen 4 EPYC: 53 MB).
model.pages.drop()
chat.send("And of Spain?")
print("answered again", flush=True)
sys.stdin.read()
"""


def mapped_kb(pid: int, places: list[Path]) -> tuple[int, int]:
    """Size and Rss (kB) of process `pid`'s mappings of files in `places`, from /proc/PID/smaps."""
    wanted = [str(place.resolve()) for place in places]
    size = rss = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) == 6 and any(fields[5].startswith(place) for place in wanted)
        elif inside and fields[0] == "Size:":
            size += int(fields[1])
        elif inside and fields[0] == "Rss:":
            rss += int(fields[1])
    return size, rss


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_the_mapped_weights_are_not_kept_resident_beside_the_repacked_copy(
    model_dir: Path, tmp_path: Path, cache: str
) -> None:
    cache_dir = tmp_path / "compiled"
    cache_dir.mkdir()
    runs = 2 if cache == "warm" else 1  # the second run maps the compiled-model cache blob instead
    for _ in range(runs):
        with subprocess.Popen(
            [sys.executable, "-c", PROBE, str(model_dir), str(cache_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as probe:
            assert probe.stdout and probe.stdin
            said = probe.stdout.readline()
            size, rss = mapped_kb(probe.pid, [model_dir, cache_dir]) if said else (0, 0)
            if said:  # a probe that died says nothing more: its stderr is reported below
                probe.stdin.write("\n")
                probe.stdin.flush()
            said_again = probe.stdout.readline() if said else ""
            _, in_place = mapped_kb(probe.pid, [model_dir, cache_dir]) if said_again else (0, 0)
            probe.stdin.close()
            assert probe.wait(timeout=300) == 0 and said_again, probe.stderr and probe.stderr.read()[-2000:]
    weights_kb = (model_dir / "openvino_model.bin").stat().st_size // 1024
    assert size >= weights_kb * 0.9, (size, rss)  # the weights are mapped...
    # ...but after the answer only the pages a step reads in place are resident (how many is the
    # CPU plugin's choice: measured by hand above); without the PageDropper all of them stay.
    assert in_place < weights_kb * 0.9, (size, in_place)  # the plugin copied some: there is a copy to drop
    assert rss <= in_place + 4096, (size, rss, in_place)


def test_a_ready_server_holds_the_weights_once_before_any_request(model_dir: Path) -> None:
    """The server warms up at load (the first inference repacks the weights), then drops the mapped copy."""
    server = start_server(model_dir)
    try:
        size, rss = mapped_kb(server.process.pid, [model_dir])
        weights_kb = (model_dir / "openvino_model.bin").stat().st_size // 1024
        assert size >= weights_kb * 0.9 and rss < weights_kb * 0.4, (size, rss)
    finally:
        server.stop()
