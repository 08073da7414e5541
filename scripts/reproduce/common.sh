# Shared by the scripts of scripts/reproduce/ (sourced, not run). Each table script sets its pairs and
# hyper-parameters, then calls run_pair for every pair and collect_results at the end.
#
# Environment: DRY_RUN=1 prints every command (shell-quoted, one per line on stdout) instead of running
# it; notes go to stderr. TRIALS (student trials), TEACHER_TRIAL, SEED, PY, TEACHER_WEIGHTS (torchvision =
# torchvision's pretrained teachers instead of training them; ImageNet only), and the output roots
# T_ROOT, PCD_ROOT, RIPS_ROOT, S_ROOT, RESULTS. Per-stage extra flags: TEACHER_ARGS, PCD_ARGS, RIPS_ARGS,
# STUDENT_ARGS (split on spaces). The script's own arguments ("$@") go to every stage, so pass only flags
# that all four stage scripts accept (e.g. --device cuda).

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
DRY_RUN="${DRY_RUN:-0}"
TRIALS="${TRIALS:-1}"
TEACHER_TRIAL="${TEACHER_TRIAL:-0}"
SEED="${SEED:-0}"
DATA_ROOT="${DATA_ROOT:-./data}"
T_ROOT="${T_ROOT:-./save_t_models}"
PCD_ROOT="${PCD_ROOT:-./ripsnet/data}"
RIPS_ROOT="${RIPS_ROOT:-./ripsnet}"
S_ROOT="${S_ROOT:-./save_s_models}"
LAUNCH=("$PY")          # table scripts may replace it, e.g. (torchrun --nproc_per_node=8)
# shellcheck disable=SC2206  # intended word splitting of the *_ARGS lists
TEACHER_EXTRA=(${TEACHER_ARGS:-}); PCD_EXTRA=(${PCD_ARGS:-}); RIPS_EXTRA=(${RIPS_ARGS:-}); STUDENT_EXTRA=(${STUDENT_ARGS:-})

METHOD_EXTRA=()         # per-pair flags of the baseline method being run (see baseline_flags)

note() { echo "[reproduce] $*" >&2; }

# run CMD...: execute, or print it shell-quoted under DRY_RUN=1.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    note "$*"
    "$@"
  fi
}

# ckpt_done FILE EPOCHS: true when the checkpoint exists and has finished EPOCHS epochs.
ckpt_done() {
  [[ -f "$1" ]] || return 1
  "$PY" -c 'import sys
from topkd_io import safe_load
c = safe_load(sys.argv[1])
sys.exit(0 if int(c.get("epoch", 0)) >= int(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null
}

# resume_flag FILE: "--resume auto" words when a started run left FILE behind.
resume_flag() { if [[ -f "$1" ]]; then echo "--resume auto"; fi; }

# stage_teacher ARCH -> trains (or skips) the teacher; sets TEACHER_CKPT.
stage_teacher() {
  local arch="$1" dir
  dir="$T_ROOT/${arch}_${DATASET}_lr_${T_LR}_decay_${WD}_trial_${TEACHER_TRIAL}"
  TEACHER_CKPT="$dir/${arch}_best.pth"
  if [[ -n "${TEACHER_CKPT_DIR:-}" ]]; then  # ready teachers (e.g. converted torchvision weights)
    TEACHER_CKPT="$TEACHER_CKPT_DIR/${arch}_best.pth"; note "teacher $arch: using $TEACHER_CKPT"; return
  fi
  if [[ "${TEACHER_WEIGHTS:-}" == torchvision ]]; then  # torchvision's pretrained weights (hub cache; fetched if missing)
    if [[ "$DRY_RUN" == 1 ]]; then
      TEACHER_CKPT="$("$PY" -m models.pretrained "$arch" --no-download)"
    else
      TEACHER_CKPT="$("$PY" -m models.pretrained "$arch")" || exit 2
    fi
    note "teacher $arch: torchvision's pretrained weights $TEACHER_CKPT"; return
  fi
  if ckpt_done "$dir/${arch}_last.pth" "$T_EPOCHS"; then note "skip teacher $arch: $dir is finished"; return; fi
  # shellcheck disable=SC2046
  run "${LAUNCH[@]}" train_teacher.py --model "$arch" --dataset "$DATASET" --data_root "$DATA_ROOT" \
    --epochs "$T_EPOCHS" --batch_size "$BATCH_SIZE" --lr "$T_LR" --lr_decay_epochs "$DECAY_EPOCHS" \
    --lr_decay_rate 0.1 --weight_decay "$WD" --trial "$TEACHER_TRIAL" --seed "$SEED" --run_dir "$dir" \
    $(resume_flag "$dir/${arch}_last.pth") "${TEACHER_EXTRA[@]}" "${PASS[@]}"
}

# stage_pcd ARCH -> point clouds + persistence images of the teacher (or skip); sets PCD_DIR.
stage_pcd() {
  local arch="$1"
  PCD_DIR="$PCD_ROOT/${DATASET}_${arch}_batch${CLOUD_BATCH}_layer-1"
  if [[ -f "$PCD_DIR/manifest.yaml" ]] && grep -q '^complete: true' "$PCD_DIR/manifest.yaml"; then
    note "skip stage 2 for $arch: $PCD_DIR/manifest.yaml is complete"; return
  fi
  run "$PY" generate_PCD_PI.py --path_t "$TEACHER_CKPT" --model_t "$arch" --dataset "$DATASET" \
    --data_root "$DATA_ROOT" --batch_size "$CLOUD_BATCH" --passes "$PASSES" --layer -1 --dims 0 \
    --teacher_bn batch --seed "$SEED" --out_dir "$PCD_DIR" "${PCD_EXTRA[@]}" "${PASS[@]}"
}

# stage_ripsnet ARCH POOLING -> RipsNet on the stage-2 folder (or skip); sets RIPS_CKPT.
stage_ripsnet() {
  local arch="$1" pooling="$2" dir
  dir="$RIPS_ROOT/${DATASET}_${arch}_batch${CLOUD_BATCH}_-1_dim0_${pooling}"
  RIPS_CKPT="$dir/${pooling}_best.pth"
  if [[ -f "$RIPS_CKPT" && -f "$dir/summary.yaml" ]]; then note "skip RipsNet $arch/$pooling: $dir is finished"; return; fi
  # shellcheck disable=SC2046
  run "$PY" train_ripsnet.py --data_dir "$PCD_DIR" --dim 0 --operator "$pooling" --lr "$RIPS_LR" \
    --batch_size 64 --val_batch_size 32 --val_fraction 0.25 --epochs "$RIPS_EPOCHS" --patience "$RIPS_PATIENCE" \
    --seed "$SEED" --run_dir "$dir" $([[ -f "$dir/${pooling}_last.pth" ]] && echo --resume) \
    "${RIPS_EXTRA[@]}" "${PASS[@]}"
}

# stage_student TEACHER STUDENT LR ALPHA DELTA POOLING TRIAL [DISTILL GAMMA BETA TAG]
# ALPHA "-": no -r/-a/-b flags, so the method's own weights apply (its paper's; see distiller/).
stage_student() {
  local t="$1" s="$2" lr="$3" alpha="$4" delta="$5" pooling="$6" trial="$7"
  local distill="${8:-kd}" gamma="${9:-$GAMMA}" beta="${10:-$BETA}" tag="${11:-kd+topkd}" dir topo=() weights
  weights=(-r "$gamma" -a "$alpha" -b "$beta")
  if [[ "$alpha" == - ]]; then weights=(); fi
  dir="$S_ROOT/S-${s}_T-${t}_${DATASET}_${tag}_trial_${trial}"
  if ckpt_done "$dir/${s}_last.pth" "$S_EPOCHS"; then note "skip student $s <- $t ($tag, trial $trial): finished"; return; fi
  if [[ "$delta" != 0 ]]; then topo=(-d "$delta" --method topkd --rips_path "$RIPS_CKPT" --operator "$pooling"
    --tda_layer_t -1 --tda_layer_s -1 --tda_clouds "$TDA_CLOUDS" --dim 0); fi
  # shellcheck disable=SC2046
  run "${LAUNCH[@]}" train_student.py --path_t "$TEACHER_CKPT" --model_t "$t" --model_s "$s" \
    --dataset "$DATASET" --data_root "$DATA_ROOT" --distill "$distill" --kd_T "$KD_T" "${weights[@]}" \
    "${topo[@]}" "${METHOD_EXTRA[@]}" --epochs "$S_EPOCHS" --batch_size "$BATCH_SIZE" --lr "$lr" \
    --lr_decay_epochs "$DECAY_EPOCHS" --lr_decay_rate 0.1 --weight_decay "$WD" --trial "$trial" \
    --seed "$((SEED + trial))" --run_dir "$dir" $(resume_flag "$dir/${s}_last.pth") \
    "${STUDENT_EXTRA[@]}" "${PASS[@]}"
}

# baseline_flags METHOD TEACHER STUDENT -> the method's own per-pair settings (flags), if it has any.
# DKD: beta (weight of the non-target-class term) per pair from mdistiller's configs/cifar100/dkd/*.yaml
# (megvii-research/mdistiller): res56_res20 and res110_res32 BETA 2.0; vgg13_vgg8, wrn40_2_wrn_16_2,
# wrn40_2_wrn_40_1 and vgg13_mv2 BETA 6.0; every other pair (res32x4_res8x4, res32x4_shuv1/2, res50_mv2,
# wrn40_2_shuv1, and pairs without a config) the default of mdistiller/engine/cfg.py, CFG.DKD.BETA 8.0.
# Its other DKD values (CE_WEIGHT 1, ALPHA 1, T 4, WARMUP 20) are the same for every pair: our defaults.
# KD: RepDistiller's run_cifar_distill.sh passes -r 0.1 -a 0.9 (the parsers' own -r default is 1).
baseline_flags() {
  local method="$1" pair="$2 $3"
  if [[ "$method" == kd ]]; then echo "-r 0.1 -a 0.9"; fi
  if [[ "$method" == dkd ]]; then
    case "$pair" in
      "resnet56 resnet20"|"resnet110 resnet32") echo "--dkd_beta 2" ;;
      "vgg13 vgg8"|"wrn_40_2 wrn_16_2"|"wrn_40_2 wrn_40_1"|"vgg13 mobilenetv2") echo "--dkd_beta 6" ;;
      *) echo "--dkd_beta 8" ;;
    esac
  fi
}

# run_pair "TEACHER STUDENT LR ALPHA DELTA POOLING": all four stages, students over TRIALS, baselines too.
run_pair() {
  local t s lr alpha delta pooling trial
  read -r t s lr alpha delta pooling <<<"$1"
  stage_teacher "$t"
  stage_pcd "$t"
  stage_ripsnet "$t" "$pooling"
  for (( trial = 0; trial < TRIALS; trial++ )); do
    stage_student "$t" "$s" "$lr" "$alpha" "$delta" "$pooling" "$trial"
    local method
    for method in $BASELINES; do  # RepDistiller's commands: each method with its paper's weights, no topology
      # shellcheck disable=SC2207  # intended word splitting of the flag list
      METHOD_EXTRA=($(baseline_flags "$method" "$t" "$s"))
      stage_student "$t" "$s" "$lr" - 0 "$pooling" "$trial" "$method" - - "$method"
      METHOD_EXTRA=()
    done
  done
}

# check_baselines: every BASELINES word must be a method of train_student.py (fail before any training).
# The names come from the method registry (every spelling train_student.py accepts, aliases included).
check_baselines() {
  [[ -n "${BASELINES// /}" ]] || return 0
  local method known
  known=" $("$PY" -c 'import train_student as t; from distiller.registry import aliases_of
print(" ".join(s for n in t.student_methods() for s in [n, *aliases_of(n)]))') " || {
    echo "BASELINES: $PY cannot import train_student.py to list the methods; set PY to the project's python" >&2
    exit 2
  }
  for method in $BASELINES; do
    if [[ "$known" != *" $method "* ]]; then
      echo "BASELINES: unknown method '$method'; choose from:$known" >&2
      exit 2
    fi
  done
}
check_baselines

collect_results() {
  run "$PY" tools/collect_results.py "$T_ROOT" "$S_ROOT" --out "$RESULTS"
}
