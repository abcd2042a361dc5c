#!/usr/bin/env bash
# The encoder sweep of the model card (issues #11 and #15): ImageNet MobileNetV2 at 128 and
# 160 px with 13 and 17 blocks, a narrower from-scratch encoder, and
# a second seed of the shipped configuration and of the narrow one (the seed-to-seed
# spread of the validation figure). Same data, patient split, decoder, calibration and
# operating point as the shipped default (scripts/train-default.sh, which also trains
# the 224 px, 17-block MobileNetV2).
# Every run is chosen on validation only; the test half is not scored here.
#
#   scripts/sweep-encoders.sh [DATA_DIR] [RUNS_DIR] [NAME...]
#
# Then, per run: thresholds and calibration on validation, a bundle, its view check
# (fitted on the training films, measured on the validation not-frontal films), and its
# device cost (scripts/sweep-cost.sh) into RUNS_DIR/encoder-sweep.jsonl, beside the
# shipped bundle and the 224 px MobileNetV2 bundle where they exist. Epoch histories go
# to RUNS_DIR/training-runs.json (scripts/collect-runs.py). About 2 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
runs=${2:-runs/sweep}
shift $(( $# < 2 ? $# : 2 ))
source scripts/env.sh
eval "$(scripts/setup-libtorch.sh)"
cargo build --release -p cxr-train
cargo build --profile board --bin cxr-edge
bin="$CARGO_TARGET_DIR/release/cxr-train"
edge="$CARGO_TARGET_DIR/board/cxr-edge"
tflite=models/pretrained/mobilenet-v2-imagenet/mobilenet_v2_1.0_224_quant.tflite
mnv2=(--encoder mobilenet-v2 --pretrained "$tflite" --epochs 16 --patience 5 --backbone-lr 0.25)
plain=(--size 128 --epochs 30 --patience 30)
declare -A args=(
  [mnv2-128-b17]="${mnv2[*]} --size 128 --blocks 17"
  [mnv2-128-b13]="${mnv2[*]} --size 128 --blocks 13"
  [mnv2-160-b13]="${mnv2[*]} --size 160 --blocks 13"
  [mnv2-160-b17]="${mnv2[*]} --size 160 --blocks 17"
  [plain-128-c8]="${plain[*]} --channels 8,16,32,64,128"
  [plain-128-c8-seed8]="${plain[*]} --channels 8,16,32,64,128 --seed 8"
  [plain-128-seed8]="${plain[*]} --seed 8"
)
order=(mnv2-128-b17 mnv2-128-b13 mnv2-160-b13 mnv2-160-b17 plain-128-c8 plain-128-c8-seed8
  plain-128-seed8)
[ $# -gt 0 ] && order=("$@")
for name in "${order[@]}"; do
  [ -n "${args[$name]+set}" ] || { echo "$0: no run named '$name' (${!args[*]})" >&2; exit 2; }
done
mkdir -p "$runs"
photos="$runs/photographs"
[ -d "$photos" ] || python3 scripts/photographs.py "$photos"
costed=()
for name in "${order[@]}"; do
  out="$runs/$name" bundle="$runs/bundle-$name"
  # shellcheck disable=SC2086
  "$bin" train --nih "$data/nih-cxr14" --reports "$data/iu-xray/ecgen-radiology" --threads 2 \
    ${args[$name]} --out "$out"
  "$bin" calibrate "$out" --operating-point specificity:0.85
  "$bin" bundle "$out" --out "$bundle" --id "cxr-$name" \
    --parity-image samples/nih_00001638_000_normal.png
  "$edge" view-check --model "$bundle" --nih "$data/nih-cxr14" \
    --not-frontal "$data/not-frontal-chest" \
    --extra "$photos/photograph_grey" --extra "$photos/photograph_colour" \
    --write --eval-out "$bundle/view-check-eval.json"
  python3 scripts/collect-runs.py "$runs/training-runs.json" --merge "$name=$out"
  case "$name" in *seed8) ;; *) costed+=("$bundle=$name") ;; esac
done
[ -d models/cxr-attn128-v2 ] && costed=("models/cxr-attn128-v2=plain-128 (ships)" "${costed[@]}")
[ -d runs/bundle-mnv2-224 ] && costed+=("runs/bundle-mnv2-224=mnv2-224-b17")
scripts/sweep-cost.sh "$runs/encoder-sweep.jsonl" "${costed[@]}"
