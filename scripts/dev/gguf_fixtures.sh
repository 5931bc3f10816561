#!/usr/bin/env bash
# The embedded SmolLM2 as a GGUF of each common type, written by llama.cpp's own tools (no hub):
# F16 and Q8_0 by convert_hf_to_gguf.py, every other type by llama-quantize from the F16 file.
# Cached under build/fixtures/gguf/ (a type already there is skipped).
# Usage: scripts/dev/gguf_fixtures.sh [TYPE...]   (default: all of them)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/build/fixtures/gguf"
PYTHON="$ROOT/build/venv-build/bin/python"
TREE="$ROOT/build/llama.cpp/llama_cpp_python-0.3.36/vendor/llama.cpp"
QUANTIZE="$ROOT/build/llama.cpp/build/bin/llama-quantize"
TYPES=("$@")
[[ ${#TYPES[@]} -gt 0 ]] || TYPES=(F16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_M Q4_K_S Q5_K_M Q6_K Q2_K)

"$ROOT/scripts/dev/llama_cpp_tools.sh" "$PYTHON"
mkdir -p "$OUT"
# The checkpoint the embedded GGUF dequantizes to (the build caches it): the fixtures' common origin.
HF=$(ls -d "$ROOT"/build/sources/SmolLM2-135M-Instruct.Q4_1-*/ 2>/dev/null | head -1 || true)
if [[ -z "$HF" ]]; then
    "$PYTHON" - <<'EOF'
from ovchat.model.contract import sha256_file
from ovchat_build.source.resolve import resolve_source
from ovchat_build.source.staging import stage_hf_checkpoint
source = resolve_source(None)
stage_hf_checkpoint(source, sha256_file(source.path))
EOF
    HF=$(ls -d "$ROOT"/build/sources/SmolLM2-135M-Instruct.Q4_1-*/ | head -1)
fi

convert() {  # $1: outtype of convert_hf_to_gguf.py, $2: file
    PYTHONPATH="$TREE/gguf-py" "$PYTHON" "$TREE/convert_hf_to_gguf.py" "$HF" --outtype "$1" \
        --outfile "$2.partial" >/dev/null 2>&1
    mv "$2.partial" "$2"
}

for type in "${TYPES[@]}"; do
    file="$OUT/smollm2-$type.gguf"
    [[ -f "$file" ]] && continue
    case "$type" in
        F16) convert f16 "$file" ;;
        Q8_0) convert q8_0 "$file" ;;
        *)
            [[ -f "$OUT/smollm2-F16.gguf" ]] || convert f16 "$OUT/smollm2-F16.gguf"
            "$QUANTIZE" "$OUT/smollm2-F16.gguf" "$file.partial" "$type" >/dev/null 2>&1
            mv "$file.partial" "$file"
            ;;
    esac
    echo "gguf_fixtures: $file"
done
