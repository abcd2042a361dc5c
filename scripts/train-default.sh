#!/usr/bin/env bash
# Reproduce the shipped default model: set up libtorch, train the compared
# configurations on ../shared/data, evaluate them next to the baselines, and
# bundle the chosen one into models/. About 1 h on a 2-core CPU (faster with CUDA:
# run `scripts/setup-libtorch.sh --cuda` first and eval its output instead).
#
#   scripts/train-default.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
runs=${2:-runs}
source scripts/env.sh
eval "$(scripts/setup-libtorch.sh)"
cargo build --release -p cxr-train
bin="$CARGO_TARGET_DIR/release/cxr-train"
common=(--nih "$data/nih-cxr14" --reports "$data/iu-xray/ecgen-radiology" --epochs 30 --threads 2)

"$bin" baseline --data "$data/iu-xray/ecgen-radiology" --out "$runs/baselines"
"$bin" train "${common[@]}" --decoder attention --size 128 --patience 30 --out "$runs/attn128"
"$bin" train "${common[@]}" --decoder attention --size 224 --patience 8 --out "$runs/attn224"
"$bin" train "${common[@]}" --decoder merge --size 224 --patience 8 --out "$runs/merge224"
for r in attn128 attn224 merge224; do
  "$bin" eval "$runs/$r" --markdown "$runs/$r/eval.md"
done
"$bin" bundle "$runs/attn128" --out models/cxr-attn128-v1 \
  --parity-image samples/nih_00001638_000_normal.png --calibrate 256
# The pixel-based frontal-chest check, fitted on this model's encoder (one-class:
# the not-frontal films and photographs are only measured).
cargo build --release
photos="$runs/photographs"
python3 scripts/photographs.py "$photos"
"$CARGO_TARGET_DIR/release/cxr-edge" view-check --model models/cxr-attn128-v1 \
  --nih "$data/nih-cxr14" --not-frontal "$data/not-frontal-chest" \
  --extra "$photos/photograph_grey" --extra "$photos/photograph_colour" \
  --write --eval-out models/cxr-attn128-v1/view-check-eval.json
# Hedging bands for the impression, chosen on the validation half; agreement measured.
"$CARGO_TARGET_DIR/release/cxr-edge" consistency --model models/cxr-attn128-v1 \
  --nih "$data/nih-cxr14" --write --eval-out models/cxr-attn128-v1/consistency-eval.json
