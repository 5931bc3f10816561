#!/usr/bin/env bash
# llama.cpp's own tools, from the llama-cpp-python sdist on PyPI (it vendors the llama.cpp tree): no
# hub, no git clone. Builds only llama-quantize (fixture GGUFs of every type) and llama-perplexity
# (llama.cpp's own logits, the reference of the GGUF fidelity table) into build/llama.cpp/build/bin;
# with --peers, llama-server and llama-cli instead (the serving and REPL benchmarks' peers), from the
# same configured tree.
# A no-op when they are there (measured from a clean build tree: 6 CPU-minutes, 21 min wall on the
# 2-core box under a load of 12). Usage: scripts/dev/llama_cpp_tools.sh [PYTHON] [--peers]
set -euo pipefail

VERSION=0.3.36
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HOME_DIR="$ROOT/build/llama.cpp"
TREE="$HOME_DIR/llama_cpp_python-$VERSION/vendor/llama.cpp"
PYTHON="${1:-python3}"
BUILD="$HOME_DIR/build"
BIN="$BUILD/bin"
if [[ "${2:-}" == "--peers" ]]; then
    TARGETS=(llama-server llama-cli)
else
    TARGETS=(llama-quantize llama-perplexity)
fi
# GGML_NATIVE: the CPU's own kernels (AVX-512 here), as a user's local build has them, but not
# AMX: this version's AMX matmul crashes on the AMX Xeons we run on (SIGSEGV at ldtilecfg in
# ggml_backend_amx_mul_mat, any model, 1 or 2 threads; SIGILL in llama-perplexity), while AMX
# itself works in a plain program. No examples, tests or network code: not needed.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CONFIG=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=$NO_AMX" "-DCMAKE_CXX_FLAGS=$NO_AMX"
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF)
STAMP="$BUILD/.configured"

missing=()
if [[ "$(cat "$STAMP" 2>/dev/null)" != "${CONFIG[*]}" ]]; then
    missing=("${TARGETS[@]}")  # built otherwise (or not at all): build again with these flags
else
    for target in "${TARGETS[@]}"; do
        [[ -x "$BIN/$target" ]] || missing+=("$target")
    done
fi
if [[ ${#missing[@]} -eq 0 && -f "$TREE/convert_hf_to_gguf.py" ]]; then
    exit 0
fi

mkdir -p "$HOME_DIR"
if [[ ! -f "$TREE/CMakeLists.txt" ]]; then
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "llama-cpp-python==$VERSION" -d "$HOME_DIR"
    tar -xzf "$HOME_DIR/llama_cpp_python-$VERSION.tar.gz" -C "$HOME_DIR"
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

started=$(date +%s)
log="$BUILD.log"  # the compiler's many warnings go there; its last lines are shown on failure
if ! { cmake -S "$TREE" -B "$BUILD" "${CONFIG[@]}" &&
    cmake --build "$BUILD" --target "${missing[@]}" -j "$(nproc)"; } >"$log" 2>&1; then
    tail -20 "$log" >&2
    exit 1
fi
echo "${CONFIG[*]}" >"$STAMP"
echo "llama_cpp_tools: built ${missing[*]} in $(($(date +%s) - started)) s into $BIN"
