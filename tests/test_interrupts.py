"""Interruptions: kill -9 in the middle of saving a conversation, Ctrl-C while the model loads
and while an answer streams. Real processes, real signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from servers import OVCHAT

SAVER = """
import sys
from ovchat import ChatSession, DeviceConfig, open_model
session = ChatSession(open_model(sys.argv[1], DeviceConfig(attention_backend="SDPA")))
path = sys.argv[2]
for version in range(10**9):
    words = f"version {version} " * 50_000  # about 1 MB per save: a wide window to land a kill in
    session.set_system_prompt(words)
    session.save(path)
    if version == 0:
        print("saving", flush=True)
"""


def test_kill_9_while_saving_leaves_the_old_file_or_the_new_one_never_a_torn_one(
    model_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "talk.json"
    rng = random.Random(3)
    versions = set()
    for _ in range(6):
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(model_dir), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert saver.stdout is not None and saver.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0.05, 0.6))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        data = json.loads(path.read_text())  # whole and valid, whichever version it is
        content = data["messages"][0]["content"]
        version = content.split()[1]
        assert content == f"version {version} " * 50_000
        versions.add(version)
    assert len(versions) > 1  # the kills landed at different points
    assert not [p for p in tmp_path.iterdir() if p.name != "talk.json" and not p.name.endswith(".tmp")]


def run_and_interrupt(args: list[str], after: float | str, tmp_path: Path) -> tuple[int, str, str]:
    """Start `ovchat ARGS`, send SIGINT `after` seconds, or once `after` appears on stdout."""
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [str(OVCHAT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None and process.stderr is not None
    if isinstance(after, float):
        time.sleep(after)
        seen = b""
    else:
        seen = process.stdout.read1(1024)  # type: ignore[attr-defined]
        while after.encode() not in seen:
            seen += process.stdout.read1(1024)  # type: ignore[attr-defined]
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, (seen + out).decode(), err.decode()


def test_ctrl_c_while_the_model_loads_exits_130_in_one_line(model_dir: Path, tmp_path: Path) -> None:
    # no compiled-model cache: the load takes long enough to be interrupted
    code, out, err = run_and_interrupt(
        ["ask", "--model", str(model_dir), "--cache-dir", "", "hi"], 0.6, tmp_path
    )
    assert code == 130, err
    assert err == "ovchat: error: interrupted\n"
    assert out == ""


def test_ctrl_c_while_an_answer_streams_stops_it_and_exits_130(model_dir: Path, tmp_path: Path) -> None:
    args = [
        "ask",
        "--model",
        str(model_dir),
        "-n",
        "1000",
        "--ignore-eos",
        "-t",
        "0",
        "Tell me a long story.",
    ]
    code, out, err = run_and_interrupt(args, " ", tmp_path)
    assert code == 130, err
    assert out.strip() and "Traceback" not in err
