#!/usr/bin/env bash
# Reproduce the shipped default model: set up libtorch, train the compared
# configurations on ../shared/data (a 70 / 15 / 15 patient-level split: the test
# half is never trained or selected on), choose thresholds and calibration on
# validation, bundle the chosen one into models/, fit its view check and hedging
# bands, and score it once on the test half. About 2 h on a 2-core CPU (faster
# with CUDA: run `scripts/setup-libtorch.sh --cuda` first and eval its output).
#
#   scripts/train-default.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
runs=${2:-runs}
model=models/cxr-mnv2-224-v1
source scripts/env.sh
eval "$(scripts/setup-libtorch.sh)"
cargo build --release -p cxr-train
cargo build --release
bin="$CARGO_TARGET_DIR/release/cxr-train"
edge="$CARGO_TARGET_DIR/release/cxr-edge"
common=(--nih "$data/nih-cxr14" --reports "$data/iu-xray/ecgen-radiology" --threads 2)
tflite=models/pretrained/mobilenet-v2-imagenet/mobilenet_v2_1.0_224_quant.tflite

"$bin" baseline --data "$data/iu-xray/ecgen-radiology" --out "$runs/baselines"
# From scratch (the former default), for the model card's comparison row.
"$bin" train "${common[@]}" --size 128 --epochs 30 --patience 30 --out "$runs/attn128"
# ImageNet MobileNetV2, fine-tuned (the default).
"$bin" train "${common[@]}" --encoder mobilenet-v2 --blocks 17 --pretrained "$tflite" \
  --size 224 --epochs 12 --patience 12 --backbone-lr 0.25 --out "$runs/mnv2-224"
for r in attn128 mnv2-224; do
  "$bin" calibrate "$runs/$r" --operating-point youden
  "$bin" eval "$runs/$r" --markdown "$runs/$r/eval.md"
done
"$bin" bundle "$runs/attn128" --out "$runs/bundle-attn128" --id cxr-attn128-scratch-v2 \
  --parity-image samples/nih_00001638_000_normal.png
"$bin" bundle "$runs/mnv2-224" --out "$model" \
  --parity-image samples/nih_00001638_000_normal.png
cp models/pretrained/mobilenet-v2-imagenet/LICENSE "$model/LICENSE-mobilenet-v2-weights"
# The pixel-based frontal-chest check, fitted on this model's encoder (one-class:
# the not-frontal films and photographs are only measured).
photos="$runs/photographs"
python3 scripts/photographs.py "$photos"
"$edge" view-check --model "$model" \
  --nih "$data/nih-cxr14" --not-frontal "$data/not-frontal-chest" \
  --extra "$photos/photograph_grey" --extra "$photos/photograph_colour" \
  --write --eval-out "$model/view-check-eval.json"
# Hedging bands for the impression, chosen on the validation half; agreement measured.
"$edge" consistency --model "$model" \
  --nih "$data/nih-cxr14" --reports "$data/iu-xray/ecgen-radiology" \
  --write --eval-out "$model/consistency-eval.json"
# The findings on the test half, once, with intervals; and the from-scratch row.
"$edge" findings-eval --model "$model" --nih "$data/nih-cxr14" \
  --eval-out "$model/findings-eval.json"
"$edge" findings-eval --model "$runs/bundle-attn128" --nih "$data/nih-cxr14" \
  --eval-out "$model/findings-eval-from-scratch.json"
"$bin" plot-reliability "$model/findings-eval.json" --out "$model/reliability-test.png"
