#!/usr/bin/env bash
# Issue 14's GPU checks in one go (by hand or through the device tool; never in CI): the CUDA variants of
# the device-data and compile tests, a short end-to-end pair on synthetic/digits data with the fast path,
# and the epoch benchmark (CIFAR-100-shaped, 50k/10k, resnet56 -> resnet20, plain vs fast path).
# Usage: PY=python3 bash benchmarks/gpu_checks_issue14.sh [OUT_DIR] [BENCH_ARGS...]
# Budget: about 8-10 minutes on one H100/H200 (the benchmark dominates; pass e.g. --configs kd,kd_topkd
# or --n_train 20000 to shorten it).
set -uo pipefail
PY="${PY:-python3}"
out="${1:-/tmp/topkd_gpu14}"
shift || true
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOPKD_DEBUG=1
step() { echo; echo "### $*  ($(date +%T))"; }

step "environment"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step "CUDA tests: device data path (CPU-path equality on cuda), compile"
"$PY" -m pytest -q -p no:cacheprovider tests/test_device_data.py tests/test_compile.py 2>&1 | tail -4
common=(--dataset digits --image_size 32 --batch_size 64 --device cuda --num_workers 2)
fast=(--data_on_device --compile --amp --channels_last)
step "teacher resnet20 on digits, plain vs fast path (5 epochs each)"
"$PY" train_teacher.py --model resnet20 --epochs 5 --run_dir "$out/t_plain" "${common[@]}" 2>&1 \
  | grep -E "epoch 5/5|best test|seconds per epoch|error"
"$PY" train_teacher.py --model resnet20 --epochs 5 --run_dir "$out/t_fast" "${common[@]}" "${fast[@]}" 2>&1 \
  | grep -E "epoch 5/5|best test|seconds per epoch|error"
step "student KD resnet20 -> resnet8, fast path, then resume one epoch further"
"$PY" train_student.py --model_s resnet8 --path_t "$out/t_fast/resnet20_best.pth" --distill kd -r 1 -a 1 \
  --epochs 3 --run_dir "$out/s_fast" "${common[@]}" "${fast[@]}" 2>&1 | grep -E "epoch 3/3|best test|seconds|error"
"$PY" train_student.py --model_s resnet8 --path_t "$out/t_fast/resnet20_best.pth" --distill kd -r 1 -a 1 \
  --epochs 4 --resume --run_dir "$out/s_fast" "${common[@]}" "${fast[@]}" 2>&1 | grep -E "resumed|epoch 4/4|error"
step "stage 2 teacher passes: DataLoader route vs --data_on_device (digits 32x32, 40 passes, H0)"
for route in "" "--data_on_device"; do
  TIMEFORMAT="route '${route:-DataLoader}': %R s wall (incl. start-up and PIs)"
  # shellcheck disable=SC2086
  time "$PY" generate_PCD_PI.py --path_t "$out/t_fast/resnet20_best.pth" --dataset digits --image_size 32 \
    --passes 40 --dims 0 --num_workers 4 --device cuda --no_progress --out_dir "$out/pcd_${route:-plain}" $route \
    > "$out/pcd_${route:-plain}.log" 2>&1
  tail -1 "$out/pcd_${route:-plain}.log"
done
"$PY" - "$out" <<'PYEOF'
import sys, numpy as np, glob
out = sys.argv[1]
a, b = (sorted(glob.glob(f"{out}/{d}/shards/pcd_*.npy")) for d in ("pcd_plain", "pcd_--data_on_device"))
diff = max(float(np.abs(np.load(x) - np.load(y)).max()) for x, y in zip(a, b))
print(f"{len(a)} shards, max |cloud difference| plain vs device route: {diff:.2e}")
PYEOF
step "epoch benchmark (CIFAR-100-shaped synthetic data)"
"$PY" benchmarks/bench_epoch.py --device cuda "$@"
