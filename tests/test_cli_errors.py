"""Every bad input to the `ovchat` command gets one line on stderr and a non-zero exit: never a
traceback, never a build-machine path. The real executable, real files, real bytes on stdin."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import OVCHAT, copy_of

Setup = Callable[[Path, Path], str]  # (default model folder, a temp folder) -> the --model value


def truncated(model: Path, tmp: Path) -> str:
    copy = copy_of(model, tmp, replace=("openvino_model.bin",))
    os.truncate(copy / "openvino_model.bin", 1_000_000)
    return str(copy)


def truncated_no_manifest(model: Path, tmp: Path) -> str:
    copy = copy_of(model, tmp, replace=("openvino_model.bin",), drop=("manifest.json",))
    os.truncate(copy / "openvino_model.bin", 1_000_000)
    return str(copy)


def corrupt_xml(model: Path, tmp: Path) -> str:
    copy = copy_of(model, tmp, drop=("manifest.json", "openvino_model.xml"))
    (copy / "openvino_model.xml").write_text("<net><layers><oops")
    return str(copy)


def no_tokenizer(model: Path, tmp: Path) -> str:
    return str(copy_of(model, tmp, drop=("openvino_tokenizer.xml",)))


def bad_manifest(model: Path, tmp: Path) -> str:
    copy = copy_of(model, tmp, drop=("manifest.json",))
    (copy / "manifest.json").write_text("{not json")
    return str(copy)


def text_file(model: Path, tmp: Path) -> str:
    (tmp / "notes.txt").write_text("hi")
    return str(tmp / "notes.txt")


def junk_gguf(model: Path, tmp: Path) -> str:
    (tmp / "junk.gguf").write_bytes(b"GGUF but not really")
    return str(tmp / "junk.gguf")


def transcript(content: str) -> Callable[[Path, Path], str]:
    def make(model: Path, tmp: Path) -> str:
        (tmp / "talk.json").write_text(content)
        return str(model)

    return make


def small_context(model: Path, tmp: Path) -> str:
    copy = copy_of(model, tmp, replace=("config.json",), drop=("manifest.json",))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 160}))
    return str(copy)


def default(model: Path, tmp: Path) -> str:
    return str(model)


ROWS: list[tuple[str, list[str | bytes], Setup, bytes | None, int, str]] = [
    (
        "missing folder",
        ["ask", "hi"],
        lambda m, t: "/no/such/model",
        None,
        1,
        "no model found at /no/such/model",
    ),
    ("empty folder", ["ask", "hi"], lambda m, t: str(t), None, 1, "is not an OpenVINO model folder"),
    ("truncated .bin", ["ask", "hi"], truncated, None, 1, "truncated or was changed"),
    ("truncated .bin, no manifest", ["ask", "hi"], truncated_no_manifest, None, 1, "cannot load the model"),
    ("corrupt .xml", ["ask", "hi"], corrupt_xml, None, 1, "openvino_model.xml is not an OpenVINO IR"),
    ("tokenizer IR missing", ["ask", "hi"], no_tokenizer, None, 1, "missing openvino_tokenizer.xml"),
    ("manifest not JSON", ["ask", "hi"], bad_manifest, None, 1, "not an ovchat manifest"),
    ("a text file", ["ask", "hi"], text_file, None, 1, "is a file but not a .gguf model"),
    ("a junk .gguf", ["ask", "hi"], junk_gguf, None, 1, "is not a readable GGUF model"),
    ("unknown device", ["ask", "--device", "GPU", "hi"], default, None, 1, "device 'GPU' is not available"),
    (
        "max-new-tokens 0",
        ["ask", "-n", "0", "hi"],
        default,
        None,
        2,
        "max_new_tokens must be in [1, ∞], not 0",
    ),
    ("temperature 3", ["ask", "-t", "3", "hi"], default, None, 2, "temperature must be in [0, 2], not 3.0"),
    ("top-p 0", ["ask", "--top-p", "0", "hi"], default, None, 2, "top_p must be in (0, 1], not 0.0"),
    ("top-k 0", ["ask", "--top-k", "0", "hi"], default, None, 2, "top_k must be in [1, 1000000], not 0"),
    (
        "repetition-penalty 0",
        ["ask", "--repetition-penalty", "0", "hi"],
        default,
        None,
        2,
        "repetition_penalty must",
    ),
    ("seed -1", ["ask", "--seed", "-1", "hi"], default, None, 2, "seed must be in"),
    ("empty stop", ["ask", "--stop", "", "hi"], default, None, 2, "stop strings must be non-empty"),
    ("not a number", ["ask", "-t", "hot", "hi"], default, None, 2, "'hot' is not a valid float"),
    ("bad choice", ["ask", "--performance-hint", "FOO", "hi"], default, None, 2, "'FOO' is not one of"),
    ("unknown option", ["ask", "--frobnicate", "hi"], default, None, 2, "No such option"),
    ("streams 0", ["ask", "--num-streams", "0", "hi"], default, None, 2, "--num-streams"),
    ("threads 0", ["ask", "--threads", "0", "hi"], default, None, 2, "--threads"),
    ("precision", ["ask", "--precision", "f8", "hi"], default, None, 2, "'f8' is not one of"),
    ("--system with --raw", ["ask", "--raw", "-s", "x", "hi"], default, None, 1, "--system has no effect"),
    ("empty prompt", ["ask", ""], default, None, 1, "no prompt"),
    ("blank stdin", ["ask"], default, b"  \n\n", 1, "no prompt"),
    ("non-UTF-8 stdin", ["ask"], default, b"\xff\xfe hello", 1, "the text on stdin is not valid UTF-8"),
    (
        "non-UTF-8 argument",
        ["ask", b"\xff\xfe hello"],
        default,
        None,
        1,
        "the prompt is not valid UTF-8 text",
    ),
    ("prompt over the context", ["ask", "word " * 300], small_context, None, 1, "context window is 160"),
    ("transcript missing", ["chat", "--resume", "{tmp}/none.json"], default, None, 1, "cannot read"),
    (
        "transcript not JSON",
        ["chat", "--resume", "{tmp}/talk.json"],
        transcript("{oops"),
        None,
        1,
        "invalid JSON",
    ),
    (
        "transcript, unknown role",
        ["chat", "--resume", "{tmp}/talk.json"],
        transcript('{"format": "ovchat-transcript", "messages": [{"role": "robot", "content": "x"}]}'),
        None,
        1,
        "has role 'robot'",
    ),
    (
        "transcript, wrong types",
        ["chat", "--resume", "{tmp}/talk.json"],
        transcript('{"format": "ovchat-transcript", "messages": [{"role": "user", "content": [1]}]}'),
        None,
        1,
        "text 'content'",
    ),
    ("info on nothing", ["info"], lambda m, t: "/no/such/model", None, 1, "no model found"),
    ("bench lengths", ["bench", "--prompt-lengths", "a,b"], default, None, 1, "--prompt-lengths must be"),
    ("serve on a bad port", ["serve", "--port", "99999"], default, None, 2, "99999 is not in the range"),
]


@pytest.mark.parametrize(
    ("case", "args", "setup", "stdin", "code", "message"), ROWS, ids=[r[0] for r in ROWS]
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(
    case: str,
    args: list[str | bytes],
    setup: Setup,
    stdin: bytes | None,
    code: int,
    message: str,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    model = setup(model_dir, tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) if isinstance(a, str) else a for a in args]
    argv = [*argv[:1], "--model", model, *argv[1:]]
    env = {**os.environ, "HOME": str(tmp_path), "OVCHAT_MODEL": ""}
    result = subprocess.run(
        [str(OVCHAT), *argv], input=stdin or b"", capture_output=True, timeout=120, env=env
    )
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, err
    assert err.startswith("ovchat: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and ".cpp" not in err and "/home/jenkins" not in err


def test_serve_on_a_port_in_use_says_so_in_one_line(model_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(OVCHAT), "serve", "--model", str(model_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert (
        result.stderr == f"ovchat: error: 127.0.0.1:{port} is in use: stop what runs there or choose --port\n"
    )
