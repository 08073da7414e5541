#!/usr/bin/env bash
# GPU-only checks, run by hand on a CUDA machine (never by CI): the CUDA tests, the topology and
# student-step benchmarks on the GPU, AMP + channels_last training of a teacher and a TopKD student,
# and a torchrun launch (NCCL) of one process. Usage: PY=python3 bash benchmarks/gpu_checks.sh [OUT_DIR]
set -uo pipefail
PY="${PY:-python3}"
out="${1:-/tmp/topkd_gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOPKD_DEBUG=1
step() { echo; echo "### $*"; }

step "environment"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step "CUDA tests (topology, distillers)"
"$PY" -m pytest -q -p no:cacheprovider tests/test_persistence.py tests/test_point_cloud_pi.py tests/test_ripsnet.py \
  tests/test_distillers.py 2>&1 | tail -3
step "topology benchmark (2000 clouds per width)"
"$PY" benchmarks/bench_topology.py
step "student step benchmark (resnet56 -> resnet20, bs 64)"
"$PY" benchmarks/bench_student_step.py --device cuda
common=(--dataset digits --image_size 32 --num_workers 2 --batch_size 64 --device cuda --amp --channels_last)
step "teacher: resnet20, AMP + channels_last, 5 epochs"
"$PY" train_teacher.py --model resnet20 --epochs 5 --run_dir "$out/teacher" "${common[@]}" 2>&1 | grep -v "it/s"
step "stage 2 + 3 on the GPU"
"$PY" generate_PCD_PI.py --path_t "$out/teacher/resnet20_best.pth" --dataset digits --image_size 32 \
  --passes 20 --out_dir "$out/pcd" --device cuda --no_progress
"$PY" train_ripsnet.py --data_dir "$out/pcd" --epochs 60 --run_dir "$out/ripsnet" --device cuda --no_progress
step "students: KD, KD+TopKD, KD+TopKD-exact with AMP"
for m in "" "-d 5 --method topkd --rips_path $out/ripsnet/mean_best.pth" "-d 5 --method topkd_exact --pi_params $out/pcd"; do
  # shellcheck disable=SC2086
  "$PY" train_student.py --model_s resnet8 --path_t "$out/teacher/resnet20_best.pth" --distill kd -r 1 -a 1 $m \
    --epochs 5 --run_dir "$out/student_$(echo "$m" | cut -c1-20 | tr -c 'a-z0-9' '_')" "${common[@]}" 2>&1 \
    | grep -E "epoch 5/5|best test|seconds per epoch|error"
done
step "torchrun, 1 process, NCCL"
"$PY" -m torch.distributed.run --nproc_per_node=1 train_teacher.py --model resnet8 --epochs 2 \
  --run_dir "$out/ddp" "${common[@]}" 2>&1 | grep -E "epoch 2/2|best test|error"
