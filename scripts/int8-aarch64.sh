#!/usr/bin/env bash
# int8 vs fp32 on aarch64, under qemu-user: the acceptance figures of the int8 artefact.
#
#   scripts/int8-aarch64.sh [BUNDLE] [LABELS_DIR] [IDS]
#
# BUNDLE defaults to the shipped bundle, LABELS_DIR to ../shared/data/nih-cxr14 and IDS
# (a trainer splits.json, or one image id per line) to the validation images of the
# shipped run, if present. Prints, for the aarch64 board binary (built if needed):
#  1. `cxr-edge precision --check`: identical greedy impressions (>= 90 %) and every
#     finding's AUROC within 0.01, int8 vs fp32, on the labelled images;
#  2. `cxr-edge info --check`: the parity file on the artefact aarch64 runs (int8);
#  3. guest instructions per encoder run, fp32 vs int8, on a Pi 4 core (cortex-a72, no
#     dot product) and a Pi 5 core (cortex-a76, with dot product), from two bench runs
#     that differ only in the number of encoder runs (scripts/insn-count.sh). This is a
#     cost proxy, not a speed: qemu does not model timing, caches or issue width.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=/dev/null
. scripts/env.sh
bundle=${1:-$(ls -d models/*/ | head -1)}
labels=${2:-$here/../shared/data/nih-cxr14}
ids=${3:-${CXR_INT8_IDS:-}}
bin="$CARGO_TARGET_DIR_AARCH64/aarch64-unknown-linux-gnu/board/cxr-edge"
[ -x "$bin" ] || scripts/setup-aarch64.sh --build
run() { qemu-aarch64 -cpu cortex-a72 "$bin" "$@"; }

echo "== int8 vs fp32 on aarch64 (qemu cortex-a72): $bundle"
args=(precision --model "$bundle" --labels "$labels" --check)
[ -n "$ids" ] && args+=(--ids "$ids")
run "${args[@]}"

echo "== parity of the aarch64 artefact"
run info "$bundle" --check

echo "== guest instructions per encoder run (two runs differing by 40 encoder runs)"
count() { # cpu precision runs
  scripts/insn-count.sh --cpu "$1" -- "$bin" bench-model --model "$bundle" \
    --precision "$2" --runs "$3" --steps 1 --loads 1 | awk '/^insns:/ {print $2}'
}
for cpu in cortex-a72 cortex-a76; do
  declare -A per=()
  for p in fp32 int8; do
    a=$(count "$cpu" "$p" 10)
    b=$(count "$cpu" "$p" 50)
    per[$p]=$(( (b - a) / 40 ))
  done
  awk -v c="$cpu" -v f="${per[fp32]}" -v i="${per[int8]}" 'BEGIN {
    printf "%-10s fp32 %.1f M insns, int8 %.1f M insns per encoder run: int8/fp32 = %.2f\n",
      c, f / 1e6, i / 1e6, i / f }'
  unset per
done
