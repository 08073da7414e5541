# Shared by the scripts of scripts/reproduce/ (sourced, not run). Each table script sets its PAIRS and
# hyper-parameters, then calls run_table: all four stages of every pair, then the results table.
#
# Skipping is decided by the stages themselves: before each stage the script asks it (its --plan, through
# one long-lived `python -m tools.plan` coprocess) which run folder these settings own and what is in it:
# finished -> skipped; partial -> resumed; new -> run (in its own folder, named after the settings);
# conflict -> stop with the stage's one-line reason. So a changed PASSES, -d, --kd_T ... gives a new run,
# never the old result. A run plans the whole table first, so a value that any stage refuses stops the script
# before the first stage starts.
#
# Arguments: --plan prints the plan, one line per stage (status, stage, run folder, why; tab-separated), and
# runs nothing; every other argument goes to the stages whose parser takes it (--device cuda to all four,
# --image_size 16 to all but train_ripsnet.py, which has none: a note says so); one that no stage takes is
# refused. Per-stage extra flags: TEACHER_ARGS, PCD_ARGS, RIPS_ARGS, STUDENT_ARGS (split on spaces).
#
# Environment: DRY_RUN=1 prints every command (shell-quoted, one per line on stdout) instead of running it;
# notes go to stderr (in a dry run or a plan, a stage whose input is not made yet plans a folder named
# "...-pending"). TRIALS (student trials), TEACHER_TRIAL, SEED (default: unset, so each trial's seed is its
# trial number), PY, TEACHER_WEIGHTS (torchvision = torchvision's pretrained teachers instead of training
# them; ImageNet only), the output roots T_ROOT, PCD_ROOT, RIPS_ROOT, S_ROOT, RESULTS, and S_LR / ALPHA / DELTA /
# POOLING, which override the per-pair values of the PAIRS table. BASELINES: student-side baselines per pair
# and trial: "ce" (the student alone, trained by train_teacher.py) and any --distill method.

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  # root, PY, need_int
cd "$root"
DRY_RUN="${DRY_RUN:-0}"
TRIALS="${TRIALS:-1}"
TEACHER_TRIAL="${TEACHER_TRIAL:-0}"
SEED="${SEED:-}"
need_int 1 TRIALS
need_int 0 TEACHER_TRIAL SEED
DATA_ROOT="${DATA_ROOT:-./data}"
T_ROOT="${T_ROOT:-./save_t_models}"
PCD_ROOT="${PCD_ROOT:-./ripsnet/data}"
RIPS_ROOT="${RIPS_ROOT:-./ripsnet}"
S_ROOT="${S_ROOT:-./save_s_models}"
# PROCESSES: processes per training run (a table script sets it, e.g. NGPUS); > 1 launches the teacher and
# student stages under torchrun of PY's environment, and the planner answers for that world size (it is part
# of a run's identity)
PROCESSES="${PROCESSES:-1}"
need_int 1 PROCESSES
LAUNCH=("$PY")
if (( PROCESSES > 1 )); then LAUNCH=("$PY" -m torch.distributed.run "--nproc_per_node=$PROCESSES"); fi
# shellcheck disable=SC2206  # intended word splitting of the *_ARGS lists
TEACHER_EXTRA=(${TEACHER_ARGS:-}); PCD_EXTRA=(${PCD_ARGS:-}); RIPS_EXTRA=(${RIPS_ARGS:-}); STUDENT_EXTRA=(${STUDENT_ARGS:-})
# MODE: run; dry (DRY_RUN=1: print the commands); plan (--plan: print the plan); check (a run's first pass)
MODE=run
if [[ "$DRY_RUN" == 1 ]]; then MODE=dry; fi
ARGS=()                 # the script's arguments but --plan
for arg in "$@"; do if [[ "$arg" == --plan ]]; then MODE=plan; else ARGS+=("$arg"); fi; done

METHOD_EXTRA=()         # per-pair flags of the baseline method being run (see baseline_flags)

note() { if [[ "$MODE" != check ]]; then echo "[reproduce] $*" >&2; fi; }

# run CMD...: execute, or print it shell-quoted under DRY_RUN=1.
run() {
  if [[ "$MODE" == dry ]]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    note "$*"
    "$@"
  fi
}

# The planner: one python process answering every "what would this stage do" question (tools/plan.py).
coproc PLANNER { WORLD_SIZE="$PROCESSES" exec "$PY" -m tools.plan; }

# ask REQUEST...: one request to the planner -> ANSWER (the fields of its answer); an error answer stops.
ask() {
  printf '%s\n' "$(printf '%q ' "$@")" >&"${PLANNER[1]}"
  if ! IFS=$'\x1f' read -r -a ANSWER <&"${PLANNER[0]}"; then
    echo "[reproduce] the planner ($PY -m tools.plan) stopped; run it by hand to see why" >&2
    exit 2
  fi
  if [[ "${ANSWER[0]:-}" == error ]]; then
    echo "[reproduce] ${ANSWER[2]:-}" >&2
    exit 2
  fi
}

# plan SCRIPT ARGS...: ask the stage -> PLAN_STATUS (new finished partial conflict pending busy), PLAN_DIR
# (the run folder these settings own), PLAN_DETAIL (why, in words).
plan() {
  ask "$@"
  PLAN_STATUS="${ANSWER[0]}" PLAN_DIR="${ANSWER[1]:-}" PLAN_DETAIL="${ANSWER[2]:-}"
}

# route STAGE -> ROUTED: the script's arguments that the stage's parser takes.
route() {
  ROUTED=()
  if (( ${#ARGS[@]} )); then ask route "$1" "${ARGS[@]}"; ROUTED=("${ANSWER[@]:2}"); fi
}

# act WHAT RESUME_FLAG CMD...: run CMD as the last plan says: skip a finished run, add RESUME_FLAG to
# continue a partial one (empty: the stage resumes by itself), stop on a folder held by another run. With
# --plan: print the plan line instead; in a run's first pass (check): nothing.
act() {
  local what="$1" resume="$2"
  shift 2
  case "$MODE" in
    check) return ;;
    plan) printf '%s\t%s\t%s\t%s\n' "$PLAN_STATUS" "$what" "$PLAN_DIR" "$PLAN_DETAIL"; return ;;
  esac
  case "$PLAN_STATUS" in
    finished) note "skip $what: $PLAN_DIR $PLAN_DETAIL" ;;
    partial) if [[ -n "$resume" ]]; then run "$@" "$resume"; else run "$@"; fi ;;
    new|pending) run "$@" ;;
    *) echo "[reproduce] $what: $PLAN_DIR $PLAN_DETAIL" >&2; exit 2 ;;
  esac
}

# seed_flags [TRIAL]: "--seed SEED+TRIAL" only when SEED is set (else the stage uses the trial number, or
# its own default seed for stages 2 and 3).
seed_flags() { if [[ -n "$SEED" ]]; then echo "--seed $((SEED + ${1:-0}))"; fi; }

# stage_teacher ARCH -> trains (or skips) the teacher; sets TEACHER_CKPT.
stage_teacher() {
  local arch="$1" args
  if [[ -n "${TEACHER_CKPT_DIR:-}" ]]; then  # ready teachers (e.g. converted torchvision weights)
    TEACHER_CKPT="$TEACHER_CKPT_DIR/${arch}_best.pth"; note "teacher $arch: using $TEACHER_CKPT"; return
  fi
  if [[ "${TEACHER_WEIGHTS:-}" == torchvision ]]; then  # torchvision's pretrained weights (hub cache; fetched if missing)
    if [[ "$MODE" == run ]]; then plan pretrained "$arch"; else plan pretrained "$arch" --no-download; fi
    TEACHER_CKPT="$PLAN_DIR"
    note "teacher $arch: torchvision's pretrained weights $TEACHER_CKPT"; return
  fi
  # shellcheck disable=SC2207,SC2046
  args=(train_teacher.py --model "$arch" --dataset "$DATASET" --data_root "$DATA_ROOT"
        --epochs "$T_EPOCHS" --batch_size "$BATCH_SIZE" --lr "$T_LR" --lr_decay_epochs "$DECAY_EPOCHS"
        --lr_decay_rate 0.1 --weight_decay "$WD" --trial "$TEACHER_TRIAL" $(seed_flags "$TEACHER_TRIAL")
        --save_dir "$T_ROOT" "${TEACHER_EXTRA[@]}" "${T_PASS[@]}")
  plan "${args[@]}"
  TEACHER_CKPT="$PLAN_DIR/${arch}_best.pth"
  act "teacher $arch" --resume "${LAUNCH[@]}" "${args[@]}" --run_dir "$PLAN_DIR"
}

# stage_pcd ARCH -> point clouds + persistence images of the teacher (or skip); sets PCD_DIR.
stage_pcd() {
  local arch="$1" args
  # shellcheck disable=SC2046
  args=(generate_PCD_PI.py --path_t "$TEACHER_CKPT" --model_t "$arch" --dataset "$DATASET"
        --data_root "$DATA_ROOT" --batch_size "$CLOUD_BATCH" --passes "$PASSES" --layer -1 --dims 0
        --teacher_bn batch $(seed_flags) --save_dir "$PCD_ROOT"
        "${PCD_EXTRA[@]}" "${PCD_PASS[@]}")
  plan "${args[@]}"
  PCD_DIR="$PLAN_DIR"
  act "stage 2 for $arch" "" "$PY" "${args[@]}" --out_dir "$PCD_DIR"
}

# stage_ripsnet ARCH POOLING -> RipsNet on the stage-2 folder (or skip); sets RIPS_CKPT.
stage_ripsnet() {
  local arch="$1" pooling="$2" args
  # shellcheck disable=SC2046
  args=(train_ripsnet.py --data_dir "$PCD_DIR" --dim 0 --operator "$pooling" --lr "$RIPS_LR"
        --batch_size 64 --val_batch_size 32 --val_fraction 0.25 --epochs "$RIPS_EPOCHS" --patience "$RIPS_PATIENCE"
        $(seed_flags) --save_dir "$RIPS_ROOT" "${RIPS_EXTRA[@]}" "${RIPS_PASS[@]}")
  plan "${args[@]}"
  RIPS_CKPT="$PLAN_DIR/${pooling}_best.pth"
  act "RipsNet $arch/$pooling" --resume "$PY" "${args[@]}" --run_dir "$PLAN_DIR"
}

# stage_student TEACHER STUDENT LR ALPHA DELTA POOLING TRIAL [DISTILL GAMMA BETA]
# ALPHA "-": no -r/-a/-b flags, so the method's own weights apply (its paper's; see distiller/).
stage_student() {
  local t="$1" s="$2" lr="$3" alpha="$4" delta="$5" pooling="$6" trial="$7"
  local distill="${8:-kd}" gamma="${9:-$GAMMA}" beta="${10:-$BETA}" topo=() weights=() args
  if [[ "$alpha" != - ]]; then
    weights=(-r "$gamma" -a "$alpha")
    if [[ -n "$beta" ]]; then weights+=(-b "$beta"); fi
  fi
  if [[ "$delta" != 0 ]]; then topo=(-d "$delta" --method topkd --rips_path "$RIPS_CKPT" --operator "$pooling"
    --tda_layer_t -1 --tda_layer_s -1 --tda_clouds "$TDA_CLOUDS" --dim 0); fi
  # shellcheck disable=SC2046
  args=(train_student.py --path_t "$TEACHER_CKPT" --model_t "$t" --model_s "$s"
        --dataset "$DATASET" --data_root "$DATA_ROOT" --distill "$distill" --kd_T "$KD_T" "${weights[@]}"
        "${topo[@]}" "${METHOD_EXTRA[@]}" --epochs "$S_EPOCHS" --batch_size "$BATCH_SIZE" --lr "$lr"
        --lr_decay_epochs "$DECAY_EPOCHS" --lr_decay_rate 0.1 --weight_decay "$WD" --trial "$trial"
        $(seed_flags "$trial") --save_dir "$S_ROOT" "${STUDENT_EXTRA[@]}" "${S_PASS[@]}")
  plan "${args[@]}"
  act "student $s <- $t ($distill, trial $trial)" --resume "${LAUNCH[@]}" "${args[@]}" --run_dir "$PLAN_DIR"
}

# stage_ce STUDENT LR TRIAL: the "ce" baseline, the student alone (cross-entropy, train_teacher.py) with the
# students' schedule, in S_ROOT.
stage_ce() {
  local s="$1" lr="$2" trial="$3" args
  # shellcheck disable=SC2046
  args=(train_teacher.py --model "$s" --dataset "$DATASET" --data_root "$DATA_ROOT" --epochs "$S_EPOCHS"
        --batch_size "$BATCH_SIZE" --lr "$lr" --lr_decay_epochs "$DECAY_EPOCHS" --lr_decay_rate 0.1
        --weight_decay "$WD" --trial "$trial" $(seed_flags "$trial") --save_dir "$S_ROOT"
        "${STUDENT_EXTRA[@]}" "${T_PASS[@]}")
  plan "${args[@]}"
  act "ce baseline $s (trial $trial)" --resume "${LAUNCH[@]}" "${args[@]}" --run_dir "$PLAN_DIR"
}

# shellcheck source=weights.sh
source "$(dirname "${BASH_SOURCE[0]}")/weights.sh"  # baseline_flags: each paper's weights per pair

# run_pair "TEACHER STUDENT LR ALPHA DELTA POOLING": all four stages, students over TRIALS, baselines too.
# S_LR, ALPHA, DELTA and POOLING set in the environment override the pair's values.
run_pair() {
  local t s lr alpha delta pooling trial
  read -r t s lr alpha delta pooling <<<"$1"
  lr="${S_LR:-$lr}"; alpha="${ALPHA:-$alpha}"; delta="${DELTA:-$delta}"; pooling="${POOLING:-$pooling}"
  stage_teacher "$t"
  stage_pcd "$t"
  stage_ripsnet "$t" "$pooling"
  for (( trial = 0; trial < TRIALS; trial++ )); do
    stage_student "$t" "$s" "$lr" "$alpha" "$delta" "$pooling" "$trial"
    local method
    for method in $BASELINES; do  # RepDistiller's commands: each method with its paper's weights, no topology
      if [[ "$method" == ce ]]; then stage_ce "$s" "$lr" "$trial"; continue; fi
      # shellcheck disable=SC2207  # intended word splitting of the flag list
      METHOD_EXTRA=($(baseline_flags "$method" "$t" "$s"))
      stage_student "$t" "$s" "$lr" - 0 "$pooling" "$trial" "$method" - -
      METHOD_EXTRA=()
    done
  done
}

# check_baselines: every BASELINES word must be "ce" or a method of train_student.py (fail before any
# training). The names come from the method registry, through the planner.
check_baselines() {
  [[ -n "${BASELINES// /}" ]] || return 0
  local method known
  ask methods
  known=" ce ${ANSWER[2]:-} "
  for method in $BASELINES; do
    if [[ "$known" != *" $method "* ]]; then
      echo "BASELINES: unknown method '$method'; choose from:$known" >&2
      exit 2
    fi
  done
}
check_baselines
route train_teacher.py; T_PASS=("${ROUTED[@]}")
route generate_PCD_PI.py; PCD_PASS=("${ROUTED[@]}")
route train_ripsnet.py; RIPS_PASS=("${ROUTED[@]}")
route train_student.py; S_PASS=("${ROUTED[@]}")

# run_table: all four stages of every pair of PAIRS (those containing PAIRS_FILTER), then the results table.
# A run first plans the whole table (MODE=check), so a value that any stage refuses stops it before any stage.
run_table() {
  if [[ "$MODE" == run ]]; then MODE=check; run_pairs; MODE=run; fi
  run_pairs
  if [[ "$MODE" != plan ]]; then run "$PY" tools/collect_results.py "$T_ROOT" "$S_ROOT" --out "$RESULTS"; fi
}

run_pairs() {
  local pair
  for pair in "${PAIRS[@]}"; do
    if [[ -z "$PAIRS_FILTER" || "$pair" == *"$PAIRS_FILTER"* ]]; then run_pair "$pair"; fi
  done
}
