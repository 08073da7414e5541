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
step "epoch benchmark (CIFAR-100-shaped synthetic data)"
"$PY" benchmarks/bench_epoch.py --device cuda "$@"
