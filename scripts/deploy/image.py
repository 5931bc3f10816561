#!/usr/bin/env python3
"""Build ovchat's container image (deploy/Containerfile) and prove it: `make image`.

Prepares a local base when asked (no registry is reachable here: mmdebstrap makes Debian bookworm with
its python3, cached under build/image/), a wheelhouse of `ovchat[serve]` for the image's Python, and the
image with a model folder inside. Then it runs the image twice on one compiled-model cache volume (cold:
empty, warm: filled) and checks /health, the HEALTHCHECK, a chat completion through the openai SDK,
that no torch, transformers or optimum is inside, the non-root user and that SIGTERM exits 0; and once
with a models folder mounted at /ovchat/models, holding the model under a second name as well, where
/v1/models lists both and a request naming the second loads it and answers. It reports the image size
and the start-up times. tests/test_container.py runs the same proof.

Run with build/venv/bin/python (it has the openai SDK).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import OpenAI

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "image"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
DEFAULT_MODEL = ROOT / "build" / "models" / "smollm2-135m-instruct-int4"
IMAGE = "localhost/ovchat:latest"
# The image's model again, under another name, in the models folder the proof mounts at /ovchat/models.
SECOND_NAME = "second-smollm2"
# What a retrieval app adds beside the chat model in that folder, where they are built: the default
# embedding model (`make embed-model`) and the test suite's reranker (`make test-fixtures`).
ENCODERS = {
    "embedder": ROOT / "build" / "models" / "all-minilm-l6-v2-fp16",
    "reranker": ROOT / "build" / "test-rerank" / "models" / "minilm-cross-encoder-fp16",
}
LOCAL_BASE = "localhost/ovchat-base:bookworm"
PODMAN = "/usr/bin/podman"
MMDEBSTRAP = "/usr/bin/mmdebstrap"
# No CAP_SYS_RESOURCE here and hybrid cgroups: crun fails, runc works with ulimits it may set.
ENGINE_FLAGS = ("--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
# Debian's minimal variant, its python3 (3.11 in bookworm, like python:3.11-slim-bookworm) and venv
# for the venv stage; no docs, man pages or translations; merged /usr set up without the usrmerge
# package, which would pull in all of perl (47 MB).
MMDEBSTRAP_ARGS = (
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "--aptopt=APT::Install-Recommends false",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "bookworm",
)
IMAGE_PYTHON = "3.11"
# pip does not widen a manylinux platform to older glibcs by itself: name every one bookworm's 2.36 runs.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(5, 37)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
SOURCE_FILES = ("pyproject.toml", "README.md", "src")
FORBIDDEN = ("torch", "transformers", "optimum")
# Inside the running container: what is importable, who runs it, whether the build stage leaked in.
INSPECT = (
    "import importlib.util as u, json, os; print(json.dumps({"
    f"'forbidden': [m for m in {FORBIDDEN!r} if u.find_spec(m)], 'uid': os.getuid(), "
    "'pip': u.find_spec('pip') is not None, 'wheelhouse': os.path.exists('/wheelhouse')}))"
)


class ImageError(Exception):
    """A step of the image build or its proof failed; the message says which and why."""


@dataclass
class Run:
    """One start of the image, from `podman run` to its exit on SIGTERM."""

    start_to_health_s: float
    healthcheck_rc: int
    answer: str
    keyless_status: int
    forbidden: list[str]
    uid: int
    pip: bool
    wheelhouse: bool
    cache_files: int
    exit_code: int
    ask_inside_s: float = 0.0  # `ovchat ask` run in the container: the compiled-model cache's user


@dataclass
class ModelsDirRun:
    """One start with a host folder mounted at /ovchat/models: the image's model under two names."""

    mounted: list[str]  # the folder's model folders
    before: dict[str, str]  # GET /v1/models (the openai SDK) at /health 200: each model and its state
    answer: str  # a chat completion whose `model` is SECOND_NAME
    after: dict[str, str]  # the states after it: that model alone loaded
    exit_code: int
    dimensions: int = 0  # the length of a vector from "embedder" (the openai SDK), if it was mounted
    ranked: list[int] = field(default_factory=list)  # "reranker"'s order of two texts, if mounted


@dataclass
class Report:
    image: str
    size_bytes: int
    base: str
    base_size_bytes: int
    build_s: float
    user: str
    cold: Run
    warm: Run
    threads_at_one_cpu: str  # `ovchat info` in a container limited to one CPU (--cpus 1)
    models_dir: ModelsDirRun


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ImageError(f"podman {args[0]} failed: {last}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def image_id(name: str) -> str | None:
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout)


def prepare_local_base() -> str:
    """Debian bookworm with python3 as a local image; the tarball is cached and only made when missing."""
    key = hashlib.sha256("\n".join(MMDEBSTRAP_ARGS).encode()).hexdigest()[:12]
    tarball = WORK / f"base-bookworm-{key}.tar"
    name = f"{LOCAL_BASE}-{key}"
    if image_exists(name):
        return name
    if not tarball.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(f".partial-{os.getpid()}.tar")  # a concurrent run makes its own
        result = subprocess.run(
            [MMDEBSTRAP, "--quiet", *MMDEBSTRAP_ARGS, str(partial)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ImageError(f"mmdebstrap could not make the local base: {last}")
        partial.rename(tarball)
    podman("import", str(tarball), name, timeout=300)
    return name


def build_ovchat_wheel(out: Path) -> Path:
    """The ovchat wheel from a copy of the sources (setuptools writes no build/ into the checkout).

    SOURCE_DATE_EPOCH makes the same sources give the same bytes, so the image's layer stays cached."""
    source = WORK / f"source-{os.getpid()}"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCE_FILES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=ignore)
        else:
            shutil.copy2(item, source / name)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps"]
    result = subprocess.run([*pip, "-w", str(out), str(source)], capture_output=True, text=True, env=env)
    shutil.rmtree(source, ignore_errors=True)
    if result.returncode != 0:
        raise ImageError(f"could not build the ovchat wheel: {result.stderr.strip()[-300:]}")
    (wheel,) = out.glob("ovchat-*.whl")
    return wheel


def download_deps(wheel: Path) -> Path:
    """Every wheel `ovchat[serve]` needs, for the image's Python and glibc, from the host's package index.

    Cached by the project's dependency list (pyproject.toml): pip inside a build may not reach an index."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + IMAGE_PYTHON.encode()).hexdigest()[:12]
    deps = WORK / f"deps-{key}"
    if deps.exists():
        return deps
    partial = WORK / f"deps-{key}.partial-{os.getpid()}"  # renamed when complete: a cut run leaves no half
    shutil.rmtree(partial, ignore_errors=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--python-version", IMAGE_PYTHON, *platforms, "-d", str(partial)]
    result = subprocess.run([*command, f"{wheel}[serve]"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or ["(no output)"]
        raise ImageError(f"could not download the wheels for the image: {errors[-1]}")
    for own in partial.glob("ovchat-*.whl"):
        own.unlink()
    try:
        partial.rename(deps)
    except OSError:  # a concurrent run got there first
        shutil.rmtree(partial, ignore_errors=True)
    return deps


def link_tree(source: Path, target: Path) -> None:
    """Hard links (a copy across file systems): the context costs no disk and no copying time."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_dir():
            link_tree(item, target / item.name)
        elif item.is_file() and not item.name.startswith("."):
            try:
                os.link(item, target / item.name)
            except OSError:
                shutil.copy2(item, target / item.name)


def prepare_context(model: Path, context: Path = WORK / "context") -> Path:
    """The build context: wheelhouse/deps, wheelhouse/ovchat-*.whl and model/ (see the Containerfile)."""
    if not (model / "manifest.json").exists():
        raise ImageError(f"no model at {model}: run `make model` (or `make model SOURCE=...`) first")
    shutil.rmtree(context, ignore_errors=True)
    wheelhouse = context / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    wheel = build_ovchat_wheel(wheelhouse)
    link_tree(download_deps(wheel), wheelhouse / "deps")
    link_tree(model, context / "model")
    return context


def build_image(model: Path = DEFAULT_MODEL, base: str = "local", tag: str = IMAGE) -> tuple[str, float]:
    """Build the image; returns the base it used and the build's seconds (the base's own not counted)."""
    base_image = prepare_local_base() if base == "local" else base
    started = time.monotonic()
    # A context of its own: `make image` and the test may run at once. Layers are cached by content.
    context = prepare_context(model, WORK / f"context-{os.getpid()}")
    args = ["--format", "docker", "-f", str(CONTAINERFILE), "-t", tag]
    args += ["--build-arg", f"BASE={base_image}", "--build-arg", f"MODEL_NAME={model.name}"]
    previous = image_id(tag)
    try:
        result = podman("build", *ENGINE_FLAGS, *args, str(context), timeout=1200, check=False)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if result.returncode != 0:
        raise ImageError(f"podman build failed: {result.stderr.strip()[-600:]}")
    if previous and previous != image_id(tag):
        # The image this tag named has no name now: left alone, each source change would keep ~300 MB.
        podman("rmi", previous, check=False)
    return base_image, time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_healthy(container: str, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while health_status(port) != 200:
        state = podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
        if state not in ("created", "running", "configured"):
            logs = podman("logs", container, check=False).stderr.strip().splitlines()[-1:]
            raise ImageError(f"the container stopped before /health said 200 ({state}): {logs}")
        if time.monotonic() > deadline:
            raise ImageError(f"/health did not say 200 within {timeout:.0f} s")
        time.sleep(0.05)


def sdk(port: int, api_key: str | None = None) -> OpenAI:
    """The official openai SDK's client for the container's port; no retries, so a failure shows."""
    from openai import OpenAI

    base_url, key = f"http://127.0.0.1:{port}/v1", api_key or "unused"
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)


def ask(port: int, api_key: str | None, model: str = "smollm2") -> str:
    """A chat completion from the host through the openai SDK (one model served: any name means it)."""
    reply = sdk(port, api_key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    return reply.choices[0].message.content or ""


def model_states(port: int) -> dict[str, str]:
    """GET /v1/models through the openai SDK: each model served and its state (ovchat's own field)."""
    return {item.id: str((item.model_extra or {}).get("state")) for item in sdk(port).models.list()}


def keyless_status(port: int) -> int:
    """GET /v1/models without a key: 200 on an open server, 401 when OVCHAT_API_KEY reached it."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def cache_files(volume: str) -> int:
    mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
    return sum(1 for item in mountpoint.rglob("*") if item.is_file())


def stop(container: str) -> int:
    """SIGTERM, as `podman stop` and Kubernetes send it, and the exit code once the server has drained."""
    podman("kill", "--signal", "TERM", container)
    return int(podman("wait", container, timeout=60).stdout.strip())


def run_once(tag: str, volume: str, api_key: str | None = None) -> Run:
    """Start the image on the cache `volume` (with OVCHAT_API_KEY if given), prove what a running
    container must, stop it."""
    port = free_port()
    container = f"ovchat-proof-{os.getpid()}-{port}"
    started = time.monotonic()
    options = ["-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/ovchat/cache"]
    options += ["-e", f"OVCHAT_API_KEY={api_key}"] if api_key else []
    podman("run", *ENGINE_FLAGS, "-d", "--name", container, *options, tag)
    try:
        wait_healthy(container, port)
        start_to_health = time.monotonic() - started
        healthcheck_rc = podman("healthcheck", "run", container, check=False).returncode
        answer, keyless = ask(port, api_key), keyless_status(port)
        inside = json.loads(podman("exec", container, "python", "-c", INSPECT).stdout)
        # `serve` does not use the compiled-model cache on the CPU (see ovchat.model.device); `ask` does:
        # the cold run's compiles into the volume, the warm run's loads from it.
        began = time.monotonic()
        podman("exec", container, "ovchat", "ask", "-n", "4", "-t", "0", "Hi")
        ask_inside_s = time.monotonic() - began
        exit_code = stop(container)
    finally:
        podman("rm", "-f", "-v", container, check=False)
    files = cache_files(volume)
    return Run(
        start_to_health,
        healthcheck_rc,
        answer,
        keyless,
        cache_files=files,
        exit_code=exit_code,
        ask_inside_s=ask_inside_s,
        **inside,
    )


def run_models_dir(tag: str, model: Path, encoders: dict[str, Path]) -> ModelsDirRun:
    """Start the image with a host folder at /ovchat/models holding `model` under its own name (which
    OVCHAT_MODEL names too) and SECOND_NAME, and `encoders` ("embedder", "reranker") under theirs, as
    hard links; ask for SECOND_NAME, embed and rerank through the encoders, then stop it."""
    folder, mounted = WORK / f"models-{os.getpid()}", [model.name, SECOND_NAME, *encoders]
    shutil.rmtree(folder, ignore_errors=True)
    for name, source in {model.name: model, SECOND_NAME: model, **encoders}.items():
        link_tree(source, folder / name)
    port = free_port()
    container = f"ovchat-proof-{os.getpid()}-{port}"
    options = ["-p", f"127.0.0.1:{port}:8000", "-v", f"{folder}:/ovchat/models:ro"]
    try:
        podman("run", *ENGINE_FLAGS, "-d", "--name", container, *options, tag)
        wait_healthy(container, port)
        before = model_states(port)
        answer = ask(port, None, SECOND_NAME)
        after = model_states(port)
        dimensions, ranked = use_encoders(port, encoders)
        exit_code = stop(container)
    finally:
        podman("rm", "-f", "-v", container, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    return ModelsDirRun(mounted, before, answer, after, exit_code, dimensions, ranked)


def use_encoders(port: int, encoders: dict[str, Path]) -> tuple[int, list[int]]:
    """A vector's length from "embedder" (the openai SDK) and "reranker"'s order of two texts."""
    dimensions, ranked = 0, []
    if "embedder" in encoders:
        vector = sdk(port).embeddings.create(model="embedder", input="hello", encoding_format="float")
        dimensions = len(vector.data[0].embedding)
    if "reranker" in encoders:
        body = {"model": "reranker", "query": "capital of France", "documents": ["Paris", "bananas"]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/rerank",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            ranked = [int(r["index"]) for r in json.loads(response.read())["results"]]
    return dimensions, ranked


def prove(
    model: Path = DEFAULT_MODEL,
    base: str = "local",
    tag: str = IMAGE,
    encoders: dict[str, Path] | None = None,
) -> Report:
    """Build the image, run it cold and warm, then with a models folder (the image's model under two
    names, and `encoders`: by default those of ENCODERS that are built); every check's result is in
    the report."""
    if encoders is None:
        encoders = {name: path for name, path in ENCODERS.items() if (path / "manifest.json").is_file()}
    base_image, build_s = build_image(model, base, tag)
    user = podman("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
    volume = f"ovchat-cache-proof-{os.getpid()}"
    podman("volume", "create", volume)
    try:
        cold = run_once(tag, volume)
        warm = run_once(tag, volume, api_key=secrets.token_hex(16))  # configured by environment
    finally:
        podman("volume", "rm", "-f", volume, check=False)
    # A CPU limit is a quota the container's processes cannot see as fewer cores: ovchat reads it.
    limited = podman("run", "--rm", *ENGINE_FLAGS, "--cpus", "1", tag, "info", "--json").stdout
    threads = str(json.loads(limited).get("cpu_threads"))
    models_dir = run_models_dir(tag, model, encoders)
    return Report(
        tag,
        image_size(tag),
        base_image,
        image_size(base_image),
        build_s,
        user,
        cold,
        warm,
        threads,
        models_dir,
    )


def problems(report: Report, max_mb: int = 450) -> list[str]:
    """What the report shows the image gets wrong (empty: it keeps every promise)."""
    found = []
    if report.size_bytes > max_mb * 10**6:
        found.append(f"the image is {report.size_bytes / 1e6:.0f} MB, over {max_mb} MB")
    for name, run in (("cold", report.cold), ("warm", report.warm)):
        if run.forbidden:
            found.append(f"{name}: {', '.join(run.forbidden)} importable inside the image")
        if run.uid == 0 or run.pip or run.wheelhouse:
            found.append(f"{name}: runs as uid {run.uid}, pip {run.pip}, wheelhouse {run.wheelhouse}")
        if run.healthcheck_rc != 0 or run.exit_code != 0 or "Paris" not in run.answer:
            found.append(
                f"{name}: healthcheck {run.healthcheck_rc}, exit {run.exit_code}, answer {run.answer!r}"
            )
    if report.cold.keyless_status != 200 or report.warm.keyless_status != 401:
        found.append(
            f"without a key /v1/models said {report.cold.keyless_status} on the open server and "
            f"{report.warm.keyless_status} with OVCHAT_API_KEY set (want 200 and 401)"
        )
    if not report.cold.cache_files:
        found.append("`ovchat ask` in the cold start left nothing in the compiled-model cache volume")
    found += models_dir_problems(report.models_dir)
    quota_counts = len(os.sched_getaffinity(0)) > 1  # one CPU of one is no limit
    if quota_counts and not report.threads_at_one_cpu.startswith("1 (the CPU quota"):
        found.append(f"limited to one CPU, ovchat would run {report.threads_at_one_cpu} inference threads")
    return found


def models_dir_problems(run: ModelsDirRun) -> list[str]:
    """A mounted models folder: every model listed, unloaded until named; the named one alone loads."""
    found = []
    if sorted(run.before) != sorted(run.mounted) or set(run.before.values()) != {"unloaded"}:
        found.append(f"models folder {run.mounted}: /v1/models said {run.before} at start")
    if run.after != {**run.before, SECOND_NAME: "loaded"} or "Paris" not in run.answer:
        found.append(f"models folder: asked {SECOND_NAME}, got {run.answer!r}, then {run.after}")
    if "embedder" in run.mounted and run.dimensions <= 0:
        found.append("models folder: the embedding model gave no vector")
    if "reranker" in run.mounted and sorted(run.ranked) != [0, 1]:
        found.append(f"models folder: the reranker ranked {run.ranked}, not both texts")
    if run.exit_code != 0:
        found.append(f"models folder: SIGTERM -> exit {run.exit_code}")
    return found


def describe(report: Report) -> str:
    lines = [
        f"{report.image}: {report.size_bytes / 1e6:.0f} MB (base {report.base}: "
        f"{report.base_size_bytes / 1e6:.0f} MB), built in {report.build_s:.1f} s, user {report.user}"
    ]
    lines.append(f"  limited to one CPU (--cpus 1): inference threads {report.threads_at_one_cpu}")
    for name, run in (("cold", report.cold), ("warm", report.warm)):
        lines.append(
            f"  {name}: start -> /health 200 in {run.start_to_health_s:.2f} s; answer {run.answer!r}; "
            f"SIGTERM -> exit {run.exit_code}; `ovchat ask` inside {run.ask_inside_s:.2f} s; "
            f"{run.cache_files} files in the cache volume"
        )
    folder = report.models_dir
    lines.append(
        f"  models folder {folder.mounted}: /v1/models {folder.before}; {SECOND_NAME} answered "
        f"{folder.answer!r}, then {folder.after}; embedder: {folder.dimensions} dimensions; reranker: "
        f"{folder.ranked}; SIGTERM -> exit {folder.exit_code}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder to put in the image")
    parser.add_argument("--base", default="local", help="'local' (mmdebstrap, cached) or a base image name")
    parser.add_argument("--tag", default=IMAGE)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--context-only",
        action="store_true",
        help="only assemble the build context and print its folder, for docker build",
    )
    args = parser.parse_args()
    if args.context_only:
        try:
            print(prepare_context(args.model.resolve()))
        except ImageError as error:
            print(f"image: error: {error}", file=sys.stderr)
            return 1
        return 0
    for program in (PODMAN, *((MMDEBSTRAP,) if args.base == "local" else ())):
        if not Path(program).exists():
            print(f"image: error: {program} is missing: run `make system-deps`", file=sys.stderr)
            return 1
    try:
        report = prove(args.model.resolve(), args.base, args.tag)
    except (ImageError, subprocess.TimeoutExpired) as error:
        print(f"image: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2) if args.json else describe(report))
    found = problems(report)
    for problem in found:
        print(f"image: error: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
