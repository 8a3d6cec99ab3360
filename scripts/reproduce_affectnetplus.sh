#!/usr/bin/env bash
# Re-create AffectNet+ (paper Sec. 3-4) from a real AffectNet and a multi-annotated set, on N GPUs.
#
#   scripts/reproduce_affectnetplus.sh AFFECTNET_DIR MAS_DIR OUT_DIR [extra TrainConfig flags ...]
#
# Extra flags (e.g. --pretrained resnet50=/w/resnet50.safetensors --ebc_epochs 10) go to the soft-labeler
# training and to the baselines.
#
# AFFECTNET_DIR: AffectNet in either layout (Manually_Annotated_file_lists/*.csv + images, or
#                train_set/ val_set/ with annotations/*.npy). MAS_DIR: the multi-annotated set the
#                soft-labelers learn from (FER+, or a folder with votes.csv / annotations.csv).
# Stages (each resumes when run again):
#   1. train the soft-labeler, paper preset (24 EBC members on 3 backbones + 8 AU members), confidence scores
#   2. label every AffectNet image (sharded, resumable; N processes each take their own shards)
#   3. build the dataset folder (Parquet + card; landmarks passed through, head pose by solvePnP)
#   4. Hard-FER / Soft-FER baselines per subset and on all (paper Sec. 4.3)
#   5. evaluation tables and figures (paper Tables 8-11, Figs. 1, 5)
# Environment:
#   NUM_GPUS=N          GPUs for `accelerate launch --multi_gpu` (default: all visible, 0 on a CPU machine)
#   PRESET=paper|tiny   (default paper)
#   METADATA=...        metadata chain for `affectnetplus build` (default passthrough,solvepnp; solvepnp
#                       needs the [pose] extra; add deepface for age/ethnicity when its weights are present)
#   MAX_IMAGES=K        reduced run: train on K multi-annotated images (debugging / smoke tests)
#   NUM_WORKERS=K       image-decoding workers per labeling process (default 8 on GPU, 0 on CPU)
#   DRY_RUN=1           print the commands instead of running them
set -euo pipefail

if [ "$#" -lt 3 ]; then
    sed -n '2,26p' "$0" >&2
    exit 2
fi
AFFECTNET_DIR=$1
MAS_DIR=$2
OUT=$3
shift 3
PRESET=${PRESET:-paper}
PYTHON=${PYTHON:-python}
if [ -z "${NUM_GPUS:-}" ]; then
    NUM_GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
fi
METADATA=${METADATA:-passthrough,solvepnp}
EXTRA=()
if [ -n "${MAX_IMAGES:-}" ]; then EXTRA+=(--max_images "$MAX_IMAGES"); fi

if [ "$NUM_GPUS" -gt 1 ]; then
    LAUNCH=(accelerate launch --multi_gpu --num_processes "$NUM_GPUS" -m affectnetplus_hf)
    DTYPE=bf16
    WORKERS=${NUM_WORKERS:-8}
elif [ "$NUM_GPUS" -eq 1 ]; then
    LAUNCH=("$PYTHON" -m affectnetplus_hf)
    DTYPE=bf16
    WORKERS=${NUM_WORKERS:-8}
else
    LAUNCH=("$PYTHON" -m affectnetplus_hf)
    DTYPE=fp32
    WORKERS=${NUM_WORKERS:-0}
fi
CLI=("$PYTHON" -m affectnetplus_hf)

run() {
    echo "+ $*" >&2
    if [ "${DRY_RUN:-0}" != "1" ]; then "$@"; fi
}

run "${CLI[@]}" info "$AFFECTNET_DIR"
run "${CLI[@]}" info "$MAS_DIR"
run "${LAUNCH[@]}" train softlabeler --data "$MAS_DIR" --preset "$PRESET" --output_dir "$OUT/softlabeler" \
    ${EXTRA[@]+"${EXTRA[@]}"} "$@"
run "${LAUNCH[@]}" label "$OUT/softlabeler" "$AFFECTNET_DIR" "$OUT/labels" --dtype "$DTYPE" --num-workers "$WORKERS"
run "${CLI[@]}" build "$AFFECTNET_DIR" "$OUT/labels" "$OUT/dataset" --metadata "$METADATA" \
    --name "AffectNet+ (re-created)"
run "${LAUNCH[@]}" baseline "$OUT/dataset" "$OUT/baselines" --preset "$PRESET" ${EXTRA[@]+"${EXTRA[@]}"} "$@"
run "${CLI[@]}" evaluate "$OUT/dataset" --baselines "$OUT/baselines" --output "$OUT/report" --device \
    "$([ "$NUM_GPUS" -gt 0 ] && echo cuda || echo cpu)"
echo "dataset: $OUT/dataset   report: $OUT/report/report.md" >&2
