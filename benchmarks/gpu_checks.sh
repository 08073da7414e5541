#!/usr/bin/env bash
# GPU-only checks, run by hand on a CUDA machine (never by CI; the epoch benchmark takes most of the time):
# the CUDA variants of the tests, the topology and student-step benchmarks on the GPU, a resnet20 teacher on
# digits on the plain and the fast path (--data_on_device --compile --amp --channels_last), stage 2 through the
# DataLoader and on the device (time, largest cloud difference), stage 3 on the GPU, students (KD, KD+TopKD,
# KD+TopKD-exact) with AMP + channels_last, a fast-path KD student resumed one epoch further, a torchrun launch
# (NCCL) of one process, and the epoch benchmark (CIFAR-100-shaped, plain vs fast path).
# Usage: bash benchmarks/gpu_checks.sh [OUT_DIR] [bench_epoch.py args, e.g. --configs kd,kd_topkd --n_train 20000]
# PY: the python to use (default: the project's .venv, else python3).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"  # root, PY
cd "$root"
out="${1:-/tmp/topkd_gpu}"
shift || true
mkdir -p "$out"
export PYTHONUNBUFFERED=1
step() { echo; echo "### $*  ($(date +%T))"; }
keep() { grep -E "$1|error|Traceback"; }

step "environment"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step "CUDA tests: topology, distillers, the device data path (equal to the CPU path on cuda), compile"
"$PY" -m pytest -q -p no:cacheprovider tests/test_persistence.py tests/test_point_cloud_pi.py tests/test_ripsnet.py \
  tests/test_distillers.py tests/test_device_data.py tests/test_compile.py 2>&1 | tail -4
step "topology benchmark (2000 clouds per width)"
"$PY" -m benchmarks.bench_topology
step "student step benchmark (resnet56 -> resnet20, bs 64)"
"$PY" -m benchmarks.bench_student_step --device cuda

common=(--dataset digits --image_size 32 --batch_size 64 --device cuda --num_workers 2)
fast=(--data_on_device --compile --amp --channels_last)
step "teacher resnet20 on digits, plain vs fast path (5 epochs each)"
"$PY" train_teacher.py --model resnet20 --epochs 5 --run_dir "$out/t_plain" "${common[@]}" 2>&1 \
  | keep "epoch 5/5|best test|seconds per epoch"
"$PY" train_teacher.py --model resnet20 --epochs 5 --run_dir "$out/t_fast" "${common[@]}" "${fast[@]}" 2>&1 \
  | keep "epoch 5/5|best test|seconds per epoch"
teacher="$out/t_plain/resnet20_best.pth"

step "stage 2 teacher passes: DataLoader route vs --data_on_device (digits 32x32, 40 passes, H0)"
for route in "" "--data_on_device"; do
  TIMEFORMAT="route '${route:-DataLoader}': %R s wall (incl. start-up and PIs)"
  # shellcheck disable=SC2086
  time "$PY" generate_PCD_PI.py --path_t "$teacher" --dataset digits --image_size 32 --passes 40 --dims 0 \
    --num_workers 4 --device cuda --no_progress --out_dir "$out/pcd_${route:-plain}" $route \
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
step "stage 3 on the GPU"
"$PY" train_ripsnet.py --data_dir "$out/pcd_plain" --epochs 60 --run_dir "$out/ripsnet" --device cuda --no_progress \
  2>&1 | tail -2

step "students: KD, KD+TopKD, KD+TopKD-exact with AMP + channels_last (5 epochs)"
for m in "" "-d 5 --method topkd --rips_path $out/ripsnet/mean_best.pth" "-d 5 --method topkd_exact --pi_params $out/pcd_plain"; do
  # shellcheck disable=SC2086
  "$PY" train_student.py --model_s resnet8 --path_t "$teacher" --distill kd -r 1 -a 1 $m --epochs 5 \
    --run_dir "$out/student_$(echo "$m" | cut -c1-20 | tr -c 'a-z0-9' '_')" "${common[@]}" --amp --channels_last 2>&1 \
    | keep "epoch 5/5|best test|seconds per epoch"
done
step "student KD on the fast path, then resumed one epoch further"
"$PY" train_student.py --model_s resnet8 --path_t "$out/t_fast/resnet20_best.pth" --distill kd -r 1 -a 1 \
  --epochs 3 --run_dir "$out/s_fast" "${common[@]}" "${fast[@]}" 2>&1 | keep "epoch 3/3|best test|seconds"
"$PY" train_student.py --model_s resnet8 --path_t "$out/t_fast/resnet20_best.pth" --distill kd -r 1 -a 1 \
  --epochs 4 --resume --run_dir "$out/s_fast" "${common[@]}" "${fast[@]}" 2>&1 | keep "resumed|epoch 4/4"

step "torchrun, 1 process, NCCL"
"$PY" -m torch.distributed.run --nproc_per_node=1 train_teacher.py --model resnet8 --epochs 2 \
  --run_dir "$out/ddp" "${common[@]}" --amp --channels_last 2>&1 | keep "epoch 2/2|best test"
step "epoch benchmark (CIFAR-100-shaped synthetic data)"
"$PY" -m benchmarks.bench_epoch --device cuda "$@"
