#!/usr/bin/env bash
# Everything that needs a GPU, in one command for a GPU machine that has torch, transformers,
# peft, pandas and pytest but no Java, pyspark, kedro or xgboost (core/ imports none of them):
#   1. the versions and the card,
#   2. the core tests, whose CUDA tests (engine, OOD, embeddings, training, corruptions on the
#      GPU against the CPU) CI skips,
#   3. benchmarks/engine_gpu.py (DINOv2-B/14, the figures of docs/benchmarks.md).
# Usage, from the repository root:  OUT=<dir> BENCHMARK_COMMIT=<sha> bash scripts/gpu_check.sh
# Extra arguments go to engine_gpu (e.g. --images 2048). Logs land in $OUT (default gpu_check/).
set -uo pipefail

out="${OUT:-gpu_check}"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

"$python" - <<'EOF' 2>&1 | tee "$out/versions.txt"
import numpy, pandas, peft, torch, transformers

card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"card: {card}")
for module in (torch, transformers, peft, numpy, pandas):
    print(f"{module.__name__}: {module.__version__}")
EOF

"$python" -m pytest -q -p no:cacheprovider -rs tests/core tests/benchmarks \
    --ignore=tests/core/meta 2>&1 | tee "$out/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

"$python" -m benchmarks.engine_gpu "$@" 2>&1 | tee "$out/engine_gpu.txt"
bench_rc=${PIPESTATUS[0]}

echo "core tests: exit $tests_rc; engine_gpu: exit $bench_rc"
exit $((tests_rc != 0 || bench_rc != 0))
