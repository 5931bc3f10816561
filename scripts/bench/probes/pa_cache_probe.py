"""Can the paged-attention model be loaded from OpenVINO's compiled-model cache under a named blob?

    PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/pa_cache_probe.py [MODEL_DIR]

`ovchat serve` and `ovchat chat` run GenAI's paged-attention pipeline, which compiles the model from
memory after rewriting its attention; with CACHE_DIR, OpenVINO then hashes every weight to find the
blob, which costs more than compiling (device.py keeps the cache off for it). OpenVINO 2026.4's
CACHE_BLOB_ID names the blob instead of hashing. This probe compiles the rewritten model under a blob
id in one fresh process and loads it in a second, for the SDPA model (the control) and the paged one,
and prints each one's compile and load times, or the CPU plugin's reason when the load falls back to
compiling. Run it after an OpenVINO upgrade: a paged model that loads from its blob would let
device.py turn the cache on for paged attention.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lib.paths import DEFAULT_MODEL

# One step, in a fresh process: "compile" writes the blob, "load" compiles again from the cache,
# "import" exports a compiled model and imports it back, as the cache does, to surface the plugin's error.
STEP = r"""
import json, sys, time
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation
model_dir, kind, step, cache = sys.argv[1:5]
props = json.loads(sys.argv[5])
core = ov.Core()
model = core.read_model(model_dir + "/openvino_model.xml")
if kind == "paged":
    paged_attention_transformation(model, False, False)
started = time.perf_counter()
if step == "import":
    try:
        blob = core.compile_model(model, "CPU", props).export_model()
        core.import_model(blob.getvalue(), "CPU", props)
        print(json.dumps({"error": None}))
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        print(json.dumps({"error": lines[-1]}))
else:
    props.update({"CACHE_DIR": cache, "CACHE_BLOB_ID": "probe-" + kind})
    core.compile_model(model, "CPU", props)
    print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def run(model_dir: Path, kind: str, step: str, cache: str, props: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-c", STEP, str(model_dir), kind, step, cache, json.dumps(props)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def runtime_properties(model_dir: Path) -> dict[str, str]:
    """The CPU properties the model's build verified (the runtime applies them too)."""
    manifest = model_dir / "manifest.json"
    return dict(json.loads(manifest.read_text()).get("runtime", {})) if manifest.is_file() else {}


def main() -> None:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    if not (model_dir / "openvino_model.xml").is_file():
        sys.exit(f"error: no OpenVINO model in {model_dir}")
    import openvino

    props = runtime_properties(model_dir)
    print(f"OpenVINO {openvino.__version__}; {model_dir.name}; properties {props or 'the CPU defaults'}")
    for kind in ("sdpa", "paged"):
        with tempfile.TemporaryDirectory() as cache:
            compiled = run(model_dir, kind, "compile", cache, props)["seconds"]
            stamp = max(p.stat().st_mtime for p in Path(cache).iterdir())
            loaded = run(model_dir, kind, "load", cache, props)["seconds"]
            rewritten = max(p.stat().st_mtime for p in Path(cache).iterdir()) > stamp
            line = f"{kind:5}: compile {compiled:.2f} s, again with the blob {loaded:.2f} s"
            if rewritten:  # the cache could not use the blob and compiled again
                error = run(model_dir, kind, "import", cache, props)["error"]
                line += f": the blob was not used (the plugin: {error})"
            else:
                line += f": loaded from the blob ({loaded / compiled:.2f}× the compile)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
