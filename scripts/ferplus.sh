#!/usr/bin/env bash
# The AffectNet+ pipeline on FER+ (Barsoum et al. 2016): a soft-labeler trained on the FER+ Training
# votes (calibrated on the PublicTest votes with the recommended recipe), the FER+ PrivateTest images
# labeled with it, and those soft labels scored (W-MAE / W-FR / W-AUC, KL, majority accuracy, next to
# one-hot majority labels) against the FER+ test vote distributions.
#
#   scripts/ferplus.sh FERPLUS_DIR OUT_DIR [extra `affectnetplus train` flags ...]
#
# FERPLUS_DIR: fer2013new.csv + FER2013{Train,Valid,Test}/ images (or fer2013.csv pixels); see the README.
# Environment:
#   PRESET=paper|tiny   training preset (default paper: ResNet-50 / EfficientNet-B3 / Xception, 224 px)
#   RECIPE=recommended|paper  recommended (default): the vote-distribution family, mirror averaging and
#                       calibration on PublicTest (docs/method.md); paper: the paper's EBC + AU families
#   NUM_GPUS=N          N > 1: train and label with `accelerate launch --multi_gpu --num_processes N`
#   DTYPE=fp32|bf16     labeling autocast on GPU (default bf16 when NUM_GPUS > 0, else fp32)
#   DRY_RUN=1           print the commands instead of running them
# Every stage resumes: run the script again after an interruption.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
FERPLUS_DIR=$1
OUT=$2
shift 2
PRESET=${PRESET:-paper}
RECIPE=${RECIPE:-recommended}
case "$RECIPE" in
    recommended) RECIPE_FLAGS=(--families dist --calibration_split validation) ;;
    paper) RECIPE_FLAGS=(--families ebc au) ;;
    *) echo "RECIPE must be recommended or paper, got $RECIPE" >&2; exit 2 ;;
esac
NUM_GPUS=${NUM_GPUS:-0}
if [ "$NUM_GPUS" -gt 0 ]; then DTYPE=${DTYPE:-bf16}; else DTYPE=${DTYPE:-fp32}; fi
PYTHON=${PYTHON:-python}

if [ "$NUM_GPUS" -gt 1 ]; then
    LAUNCH=(accelerate launch --multi_gpu --num_processes "$NUM_GPUS" -m affectnetplus_hf)
else
    LAUNCH=("$PYTHON" -m affectnetplus_hf)
fi
CLI=("$PYTHON" -m affectnetplus_hf)

run() {
    echo "+ $*" >&2
    if [ "${DRY_RUN:-0}" != "1" ]; then "$@"; fi
}

# 1. what the reader finds (votes per split, skipped rows)
run "${CLI[@]}" info "$FERPLUS_DIR"
# 2. soft-labeler on the Training votes only (MAS split inside them; PublicTest only for calibration)
run "${LAUNCH[@]}" train softlabeler --data "$FERPLUS_DIR" --mas_splits train --preset "$PRESET" \
    "${RECIPE_FLAGS[@]}" --output_dir "$OUT/softlabeler" "$@"
# 3. soft labels for the test images
run "${LAUNCH[@]}" label "$OUT/softlabeler" "$FERPLUS_DIR" "$OUT/labels" --splits test --dtype "$DTYPE"
# 4. soft labels vs the test vote distributions
run "${CLI[@]}" evaluate "$FERPLUS_DIR" --labels "$OUT/labels" --reference votes --output "$OUT/report"
echo "report: $OUT/report/soft_label_quality.md" >&2
