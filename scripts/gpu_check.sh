#!/usr/bin/env bash
# Everything that needs a GPU, as one command that fits a 10-minute device call, for a GPU
# machine with torch, transformers, peft, pandas, pyarrow and scikit-learn but no Java, pyspark,
# kedro or xgboost (core/ imports none of them):
#   1. the versions and the card,
#   2. the CUDA tests (`-k cuda`: engine, OOD, embeddings, training, corruptions, heatmap order
#      under bf16, compiled forwards; CI skips them), at most $TESTS_S seconds,
#   3. benchmarks/engine_gpu.py at DINOv2-B/14 size (the figures of docs/benchmarks.md: naive,
#      engine eager and compiled, the compiled ceiling, explainers' time per image), at most
#      $BENCH_S seconds.
# Each step is cut at its limit (exit 124) and the next still runs; the logs land in $OUT
# (default gpu_check/) as they are written, so a cut run still leaves what it measured.
# Usage, from the repository root:  OUT=<dir> BENCHMARK_COMMIT=<sha> bash scripts/gpu_check.sh
# Extra arguments go to engine_gpu (e.g. --compile-mode reduce-overhead). Dry run on a CPU
# machine: bash scripts/gpu_check.sh --tiny
set -uo pipefail

out="${OUT:-gpu_check}"
mkdir -p "$out"
python="${PYTHON:-python3}"
tests_s="${TESTS_S:-165}"
bench_s="${BENCH_S:-390}"
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

{
    date -u +"started %Y-%m-%dT%H:%M:%SZ"
    echo "commit: ${BENCHMARK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    "$python" - <<'EOF'
import numpy, pandas, peft, torch, transformers

card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"card: {card}; CUDA {torch.version.cuda}")
for module in (torch, transformers, peft, numpy, pandas):
    print(f"{module.__name__}: {module.__version__}")
EOF
} 2>&1 | tee "$out/versions.txt"

timeout "$tests_s" "$python" -m pytest -q -p no:cacheprovider -rs -k cuda tests/core \
    --continue-on-collection-errors \
    --ignore=tests/core/meta 2>&1 | tee "$out/cuda_tests.log"
tests_rc=${PIPESTATUS[0]}

timeout "$bench_s" "$python" -m benchmarks.engine_gpu "$@" 2>&1 | tee "$out/engine_gpu.txt"
bench_rc=${PIPESTATUS[0]}

echo "CUDA tests: exit $tests_rc; engine_gpu: exit $bench_rc (124: cut at its time limit)" \
    | tee -a "$out/versions.txt"
exit $((tests_rc != 0 || bench_rc != 0))
