#!/usr/bin/env bash
# Stage 4: distil with KD + TopKD. The values below are the paper's resnet56 -> resnet20 setting on CIFAR-100:
# its loss weights and RipsNet settings (the first row of scripts/reproduce/cifar100_homogeneous.sh) and the
# CIFAR recipe (engine/config.py RECIPES, what train_student.py takes when not told otherwise); a test keeps
# them equal. Each variable is named after the train_student.py flag it sets, in capitals (GAMMA -> -r/--gamma,
# LR -> --lr). Edit them here, or set any of them in the environment, which always wins:
#   bash scripts/train_student.sh                                     # lr 0.05, T 4, r 1, a 2, d 5, mean
#   SETTING=wrn_40_2_shufflev1 TRIALS=3 bash scripts/train_student.sh # the paper's other setting: a 4, sum
#   DELTA=10 ALPHA=1 bash scripts/train_student.sh --device cuda      # extra arguments go to train_student.py
# A method or data set whose runs take another recipe (TGD's, ImageNet's) is refused with the line to set
# (RECIPE=... EPOCHS=... LR=...). The teacher (PATH_T) and the RipsNet (RIPS_PATH) are found when not set: the
# finished teacher of MODEL_T / DATASET / TEACHER_TRIAL under save_t_models, and the RipsNet by the official
# naming rule or train_ripsnet.py's folders (the one trained on that teacher's stage-2 data). A finished run
# of the same settings is skipped, an unfinished one resumed (train_student.py --skip_finished).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

SETTING="${SETTING:-resnet56_resnet20}"
case "$SETTING" in  # a setting's values fill only the variables not set in the environment
  resnet56_resnet20) ;;  # the values below
  wrn_40_2_shufflev1)    # lr 0.01: SMALL_ARCH_LR, as ShuffleNet declares small_lr
    : "${MODEL_T:=wrn_40_2}" "${MODEL_S:=shufflev1}" "${ALPHA:=4}" "${OPERATOR:=sum}" ;;
  *) echo "unknown SETTING $SETTING (resnet56_resnet20 or wrn_40_2_shufflev1)" >&2; exit 2 ;;
esac
# the model pair and the data
MODEL_T="${MODEL_T:-resnet56}"
MODEL_S="${MODEL_S:-resnet20}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TRIAL="${TRIAL:-0}"                          # first student trial
TRIALS="${TRIALS:-1}"                        # how many trials
TEACHER_TRIAL="${TEACHER_TRIAL:-$TRIAL}"     # the teacher's trial (when PATH_T is not set)
SEED="${SEED:-}"                             # unset: each trial's seed is its trial number (else SEED + trial)
PATH_T="${PATH_T:-}"                         # the teacher checkpoint (unset: found)
RIPS_PATH="${RIPS_PATH:-}"                   # the RipsNet checkpoint (unset: found)
# the loss: GAMMA * CE + ALPHA * KD(T = KD_T) [+ BETA * the method's term] + DELTA * topology term
DISTILL="${DISTILL:-kd}"
GAMMA="${GAMMA:-1}"
ALPHA="${ALPHA:-2}"
BETA="${BETA:-}"                             # unset: not passed (the official -b 0.8 weighs no term of KD)
KD_T="${KD_T:-4}"
DELTA="${DELTA:-5}"                          # 0: no topology term
# the topology term and its RipsNet
METHOD="${METHOD:-topkd}"                    # persistence images by the RipsNet (topkd_exact: exactly)
OPERATOR="${OPERATOR:-mean}"                 # the RipsNet's pooling (the official resnet56 RipsNet: mean)
DIM="${DIM:-0}"                              # homology dimension
TDA_LAYER_T="${TDA_LAYER_T:--1}"             # -1 = FC input
TDA_LAYER_S="${TDA_LAYER_S:--1}"
TDA_CLOUDS="${TDA_CLOUDS:-1}"                # the whole batch is one point cloud
# the recipe
RECIPE="${RECIPE:-cifar}"                    # the recipe these values are (engine/config.py RECIPES)
EPOCHS="${EPOCHS:-240}"
BATCH_SIZE="${BATCH_SIZE:-64}"
LR="${LR:-0.05}"
SMALL_ARCH_LR="${SMALL_ARCH_LR:-0.01}"       # the lr of students declaring small_lr (MobileNetV2, ShuffleNet)
LR_DECAY_EPOCHS="${LR_DECAY_EPOCHS:-150 180 210}"
LR_DECAY_RATE="${LR_DECAY_RATE:-0.1}"
WEIGHT_DECAY="${WEIGHT_DECAY:-5e-4}"
MOMENTUM="${MOMENTUM:-0.9}"
AUGMENT="${AUGMENT:-standard}"               # crop and flip
INPUT_NORM="${INPUT_NORM:-dataset}"          # the data set's own mean and std

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_int 0 TRIAL TEACHER_TRIAL SEED
need_int 1 TRIALS

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
opts=()
add() { if [[ -n "$2" ]]; then opts+=("$1" "$2"); fi; }  # a flag only for a variable that is set
add --path_t "$PATH_T"; add --rips_path "$RIPS_PATH"; add -b "$BETA"
if [[ -z "$PATH_T" ]]; then opts+=(--teacher_trial "$TEACHER_TRIAL"); fi
# shellcheck disable=SC2086  # LR_DECAY_EPOCHS is a list of words
opts+=(--distill "$DISTILL" -r "$GAMMA" -a "$ALPHA" --kd_T "$KD_T" -d "$DELTA" --method "$METHOD"
       --operator "$OPERATOR" --dim "$DIM" --tda_layer_t "$TDA_LAYER_T" --tda_layer_s "$TDA_LAYER_S"
       --tda_clouds "$TDA_CLOUDS"
       --recipe_check "$RECIPE" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --lr "$LR"
       --small_arch_lr "$SMALL_ARCH_LR" --lr_decay_epochs $LR_DECAY_EPOCHS --lr_decay_rate "$LR_DECAY_RATE" --weight_decay "$WEIGHT_DECAY"
       --momentum "$MOMENTUM" --augment "$AUGMENT" --input_norm "$INPUT_NORM")
for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  seed=()
  if [[ -n "$SEED" ]]; then seed=(--seed "$((SEED + trial))"); fi
  "$PY" "$root/train_student.py" --model_t "$MODEL_T" --model_s "$MODEL_S" --dataset "$DATASET" \
    --data_root "$DATA_ROOT" "${opts[@]}" --trial "$trial" "${seed[@]}" --skip_finished "$@"
done
