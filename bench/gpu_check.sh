#!/usr/bin/env bash
# The GPU check (issue 25): run from the repo root on a machine with one or more GPUs; under 10 minutes (the
# steps are capped at 280 + 140 + 120 s, the plans take seconds).
#   bash bench/gpu_check.sh [OUT_DIR]
# Prints: the 7B configuration's tokens/s and MFU for the HF and vLLM backends at three lengths (random weights
# of the real configuration), bf16 + sdpa against fp32 on CUDA on the tiny published layouts, the 2-GPU
# data-parallel speed-up where 2 GPUs exist, and the plan of both suites at the measured throughput.
# Nothing is downloaded; CI never runs this.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-/tmp/gpu-check}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

section() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

section "devices"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no GPU: stop"; exit 1; }
GPUS=$(nvidia-smi -L | wc -l)
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__)"

section "HF and vLLM backends, QZhou-Embedding's shape (Qwen2.5-7B), bf16 + sdpa, random weights"
timeout 280 python3 bench/encode_throughput.py --synthetic qzhou-embedding --lengths 128,512,1024 \
  --json "$OUT/throughput.json" 2>&1 | grep -v -E "^(\(|INFO|WARNING)"

section "bf16 + sdpa on CUDA against fp32 on the CPU, tiny published layouts"
timeout 140 python3 -m pytest -q -rs -p no:cacheprovider tests/integration/test_gpu.py 2>&1 | tail -15

if [ "$GPUS" -ge 2 ]; then
  section "data-parallel speed-up, 2 GPUs (torchrun) against 1"
  timeout 120 python3 bench/data_parallel.py --nproc 2 --data_dir demo-data 2>&1 | tail -12
else
  section "data-parallel speed-up: skipped (1 GPU)"
fi

section "plan of both suites at the measured HF throughput (512-token inputs)"
RATE=$(python3 -c "import json; print(int(json.load(open('$OUT/throughput.json'))['tokens_per_s']['512']['hf']))" 2>/dev/null)
if [ -n "$RATE" ]; then
  python3 -m qzhou_eval.cli.main plan --benchmark "MTEB(eng, v2)" --preset qzhou-embedding --use_instruction true \
    --device "${RATE}tok/s" --gpus "$GPUS" --output_dir "$OUT/plan-eng" 2>&1 | tail -6
  python3 -m qzhou_eval.cli.main plan --benchmark "MTEB(cmn, v1)" --preset qzhou-embedding-zh --use_instruction true \
    --device "${RATE}tok/s" --gpus "$GPUS" --output_dir "$OUT/plan-cmn" 2>&1 | tail -6
  python3 -m qzhou_eval.cli.main plan --benchmark "MTEB(eng, v2)" --preset qzhou-embedding --use_instruction true \
    --device "$(python3 -c 'import torch; print(torch.cuda.get_device_name(0))')" --gpus "$GPUS" \
    --output_dir "$OUT/plan-eng-mfu" 2>&1 | tail -4
else
  echo "no HF throughput measured: plan skipped"
fi
section "done"
