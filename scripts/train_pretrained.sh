#!/usr/bin/env bash
# Retrain the soft-labeler shipped as `ferplus` (affectnetplus_hf/pretrained/ferplus/) from the FER+ votes:
# trained on FER+ Training, selected and calibrated on PublicTest only (docs/method.md#shipped-soft-labeler).
#
#   scripts/train_pretrained.sh [FERPLUS_DIR] [WORK_DIR] [extra `affectnetplus train` flags ...]
#
# FERPLUS_DIR: default ../shared/data/ferplus; WORK_DIR: default ferplus_pretrained_work (the trained folder
# is kept there; a rerun resumes it). scripts/ship_pretrained.py then copies it into the package (float16
# weights), adds the second-panel check to its card and stores the test faces' expected outputs.
# About 72 min on a 2-core CPU (68 min of training, 1 torch thread).
# Environment:
#   TARGET=DIR     ship into DIR instead of affectnetplus_hf/pretrained/ferplus
#   FIXTURES=DIR   test faces + expected outputs into DIR instead of tests/fixtures/pretrained
#   DRY_RUN=1      print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS_DIR=${1:-../shared/data/ferplus}
WORK=${2:-ferplus_pretrained_work}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
SHIP_FLAGS=()
if [ -n "${TARGET:-}" ]; then SHIP_FLAGS+=(--target "$TARGET"); fi
if [ -n "${FIXTURES:-}" ]; then SHIP_FLAGS+=(--fixtures "$FIXTURES"); fi

run() {
    echo "+ $*" >&2
    if [ "${DRY_RUN:-0}" != "1" ]; then "$@"; fi
}

run "$PYTHON" -m affectnetplus_hf train softlabeler --data "$FERPLUS_DIR" --mas_splits train --preset small \
    --calibration_split validation --output_dir "$WORK/ferplus" --log_with none "$@"
run "$PYTHON" scripts/ship_pretrained.py "$WORK/ferplus" --name ferplus --data "$FERPLUS_DIR" "${SHIP_FLAGS[@]}"
