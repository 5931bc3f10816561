"""Does RSS come back when the server unloads a model, and does it grow over load/unload cycles?

    build/venv/bin/python scripts/bench/probes/unload_memory.py [MODEL_DIR ...] [--cycles 20]
        [--scenarios plain,trim,arena2,arena2+trim] [--series] [--json OUT.json]

For each model and scenario, a fresh process opens the model exactly as the server does
(open_pipeline(ContinuousBatchingPipeline, ..., scheduler_config(EngineConfig()), warm=True)), runs
one 16-token generation so the KV cache is touched, and reads /proc/self/status at: baseline (after
the imports), loaded (+1 generation), after `del pipeline; gc.collect()`, after glibc malloc_trim(0).
Then it runs N load/generate/unload cycles and reads RSS after each unload. Scenarios:

    plain        del + gc.collect() each cycle (malloc_trim once at the very end, to show what was held)
    trim         del + gc.collect() + malloc_trim(0) each cycle
    arena2       as plain, with MALLOC_ARENA_MAX=2 in the environment
    arena2+trim  as trim, with MALLOC_ARENA_MAX=2

Besides VmRSS (and its anonymous / file-backed parts, RssAnon / RssFile) and VmHWM, it reads glibc's
mallinfo2(): `heap used` is what malloc has handed out and not got back, `heap free` what free()
gave back to malloc but malloc still holds. RSS that stays up while `heap used` comes back down is
the allocator keeping freed memory (malloc_trim's job); `heap used` that stays up is a real leak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODELS = [ROOT / "build/models/smollm2-135m-instruct-int4"]
SCENARIOS: dict[str, dict[str, Any]] = {
    "plain": {"env": {}, "trim": False},
    "trim": {"env": {}, "trim": True},
    "arena2": {"env": {"MALLOC_ARENA_MAX": "2"}, "trim": False},
    "arena2+trim": {"env": {"MALLOC_ARENA_MAX": "2"}, "trim": True},
}
MB = 1024 * 1024


# ---------------------------------------------------------------- the child: one scenario, one process
def _status() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, VmHWM in MB."""
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024  # kB -> MB
    return out


def _maps() -> dict[str, float]:
    """Resident MB per mapping name in /proc/self/smaps (anonymous mappings pooled as [anon])."""
    out: dict[str, float] = {}
    name = "[anon]"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anon]"
        elif fields and fields[0] == "Rss:":
            out[name] = out.get(name, 0.0) + int(fields[1]) / 1024
    return out


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c"))


class _Mallinfo2:
    def __init__(self) -> None:
        import ctypes

        class Info(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena",
                    "ordblks",
                    "smblks",
                    "hblks",
                    "hblkhd",
                    "usmblks",
                    "fsmblks",
                    "uordblks",
                    "fordblks",
                    "keepcost",
                )
            ]

        self._fn = _libc().mallinfo2
        self._fn.restype = Info

    def __call__(self) -> dict[str, float]:
        info = self._fn()
        # used: handed out from arenas + mmapped chunks; free: free chunks malloc still holds
        return {"heap_used": (info.uordblks + info.hblkhd) / MB, "heap_free": info.fordblks / MB}


def child(model_dir: str, trim_each: bool, cycles: int) -> dict[str, Any]:
    import gc

    import openvino_genai as ov_genai

    import ovchat
    from ovchat.model.device import DeviceConfig
    from ovchat.model.pipeline import open_pipeline
    from ovchat.server.engine.engine import scheduler_config
    from ovchat.server.settings import EngineConfig

    libc = _libc()
    mallinfo = _Mallinfo2()
    model = ovchat.find_model(model_dir)

    def snap() -> dict[str, float]:
        return {**_status(), **mallinfo()}

    def load_generate() -> Any:
        pipeline, pages = open_pipeline(
            ov_genai.ContinuousBatchingPipeline,
            model,
            DeviceConfig(),
            scheduler_config(EngineConfig()),
            warm=True,
        )
        pages.stop()
        results = pipeline.generate(["Hello"], [ov_genai.GenerationConfig(max_new_tokens=16)])
        assert results and results[0].m_generation_ids, "no generation"
        return pipeline

    points: dict[str, Any] = {"baseline": snap()}
    maps_baseline = _maps()
    pipeline = load_generate()
    points["loaded"] = snap()
    del pipeline
    gc.collect()
    points["del_gc"] = snap()
    libc.malloc_trim(0)
    points["trimmed"] = snap()

    series: list[dict[str, Any]] = []
    for _ in range(cycles):
        pipeline = load_generate()
        loaded = snap()
        del pipeline
        gc.collect()
        if trim_each:
            libc.malloc_trim(0)
        series.append({"loaded": loaded, "unloaded": snap()})
    points["end"] = snap()
    libc.malloc_trim(0)
    points["end_trimmed"] = snap()
    maps_end = _maps()
    grown = {k: maps_end.get(k, 0.0) - maps_baseline.get(k, 0.0) for k in {*maps_end, *maps_baseline}}
    top = dict(sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:6])
    return {
        "points": points,
        "series": series,
        "maps_grown": top,
        "threads": len(os.listdir("/proc/self/task")),
    }


# ---------------------------------------------------------------- the parent: a fresh process per scenario
def run_scenario(model: Path, name: str, cycles: int) -> dict[str, Any]:
    spec = SCENARIOS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(spec["env"])
    cmd = [sys.executable, __file__, "--child", str(model), "--cycles", str(cycles)]
    if spec["trim"]:
        cmd.append("--trim-each")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} on {model} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def slope(values: list[float]) -> float:
    """Least-squares MB per cycle."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


def report(model: Path, results: dict[str, dict[str, Any]], cycles: int, series: bool) -> None:
    print(f"\n== {model.name}  (MB; VmRSS unless noted; {cycles} cycles)")
    head = (
        f"{'scenario':<12}{'base':>7}{'loaded':>8}{'del+gc':>8}{'+trim':>7}"
        f"{'cyc1':>7}{'cyc10':>7}{'cycN':>7}{'MB/cyc':>8}{'end+trim':>9}{'HWM':>7}"
    )
    print(head)
    for name, r in results.items():
        p, s = r["points"], r["series"]
        after = [c["unloaded"]["VmRSS"] for c in s]
        print(
            f"{name:<12}{p['baseline']['VmRSS']:>7.0f}{p['loaded']['VmRSS']:>8.0f}{p['del_gc']['VmRSS']:>8.0f}"
            f"{p['trimmed']['VmRSS']:>7.0f}{after[0]:>7.0f}{after[min(9, len(after) - 1)]:>7.0f}"
            f"{after[-1]:>7.0f}{slope(after[1:]):>8.2f}{p['end_trimmed']['VmRSS']:>9.0f}"
            f"{p['end_trimmed']['VmHWM']:>7.0f}"
        )
    print("  heap used/free (mallinfo2), RssAnon, RssFile at: baseline | loaded | del+gc | end+trim")
    for name, r in results.items():
        p = r["points"]

        def cell(d: dict[str, float]) -> str:
            return f"{d['heap_used']:.0f}/{d['heap_free']:.0f} {d['RssAnon']:.0f} {d['RssFile']:.0f}"

        print(
            f"  {name:<12}" + " | ".join(cell(p[k]) for k in ("baseline", "loaded", "del_gc", "end_trimmed"))
        )
    for name, r in results.items():
        grown = ", ".join(f"{Path(k).name} {v:+.0f}" for k, v in r["maps_grown"].items())
        print(
            f"  {name:<12}RSS grown since baseline by mapping, at the end: {grown}  ({r['threads']} threads)"
        )
    if series:
        for name, r in results.items():
            print(
                f"  {name} after each unload: "
                + " ".join(f"{c['unloaded']['VmRSS']:.0f}" for c in r["series"])
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--scenarios", default="plain,trim,arena2")
    parser.add_argument("--series", action="store_true", help="print RSS after every unload")
    parser.add_argument("--json", type=Path, help="write every reading here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trim-each", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(str(args.models[0]), args.trim_each, args.cycles)))
        return
    everything: dict[str, Any] = {}
    for model in args.models or DEFAULT_MODELS:
        results = {}
        for name in args.scenarios.split(","):
            results[name] = run_scenario(model, name, args.cycles)
            print(f"  ({model.name}: {name} done)", file=sys.stderr, flush=True)
        report(model, results, args.cycles, args.series)
        everything[str(model)] = results
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
