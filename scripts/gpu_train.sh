#!/usr/bin/env bash
# Train the CUDA model in one call on a GPU machine without network (PyTorch + CUDA installed), within a time
# budget, and write what has to come back into OUT (at most 8 files of at most 16 MiB):
#   flownetc_cuda.pt.part-NN     the fp16 model in parts of 16 MiB;  flownetc_cuda.pt.sha256  its checksum
#   summary.json                 iterations, wall time, throughput, final loss / EPE, the evaluation table
#   eval.json, train.log         the evaluation on the real-image set; the training log
# Reassemble: cat OUT/flownetc_cuda.pt.part-* > models/flownetc_cuda.pt && (cd OUT && sha256sum -c flownetc_cuda.pt.sha256)
# Usage:  bash scripts/gpu_train.sh OUT          (make gpu-train GPU_OUT=OUT)
# Needs:  data/photos (make data; carry it to an offline machine). Env: PYTHON (default .venv/bin/python, else
#         python3), GPU_TRAIN_MINUTES (training time, default 5.5: the whole call stays under 9 minutes),
#         GPU_TRAIN_ARGS (extra trainer options, e.g. "--set train.device=cpu ..." to rehearse on a CPU),
#         GPU_TRAIN_EVAL (extra evaluation options), TORCH_CUDA_ARCH_LIST (default: the GPU present).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_train.sh OUT}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
MINUTES=${GPU_TRAIN_MINUTES:-5.5}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=$(mktemp -d)  # checkpoints stay out of OUT: only the deliverables come back
trap 'rm -rf "$RUN"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
t0=$(date +%s)
step() { echo "== $(( $(date +%s) - t0 )) s: $*"; }

step "build the correlation extension"
"$PY" -m flownet_ros.ops.build --require | tee "$OUT/train.log"

step "train for at most $MINUTES minutes"
# shellcheck disable=SC2086  # GPU_TRAIN_ARGS is a list of options
"$PY" -m flownet_ros.train --config config/train_cuda.yaml --set "train.out_dir=$RUN" --max-minutes "$MINUTES" \
    --no-progress ${GPU_TRAIN_ARGS:-} 2>&1 | tee -a "$OUT/train.log"

step "export fp16"
"$PY" -m flownet_ros.train.export "$RUN/checkpoint.pt" "$RUN/flownetc_cuda.pt" --half \
    --note "trained_by=scripts/gpu_train.sh" > "$RUN/export.log"

step "evaluate on the real-image set, next to the CPU model, DIS and zero flow"
device=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
# shellcheck disable=SC2086
"$PY" -m flownet_ros.evaluation.evaluate --dataset real --backend flownet --checkpoint "$RUN/flownetc_cuda.pt" \
    --checkpoint models/flownetc_cpu.pt --refine none dis --baseline zero dis-medium --device "$device" \
    --json "$OUT/eval.json" --no-progress ${GPU_TRAIN_EVAL:-} 2>&1 | tee -a "$OUT/train.log"

step "split, checksum, summary"
(cd "$RUN" && sha256sum flownetc_cuda.pt > "$OUT/flownetc_cuda.pt.sha256")
split -b 16M -d -a 2 "$RUN/flownetc_cuda.pt" "$OUT/flownetc_cuda.pt.part-"
"$PY" -m flownet_ros.train.summary "$RUN/checkpoint.pt" "$OUT/eval.json" "$OUT/summary.json" --seconds $(( $(date +%s) - t0 ))
step "done: $(ls "$OUT" | tr '\n' ' ')"
