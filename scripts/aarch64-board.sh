#!/usr/bin/env bash
# Print the folder of the aarch64 board build (profile `board`), first building the named
# targets if any of them is missing there (the cross toolchain from setup-aarch64.sh):
#
#   scripts/aarch64-board.sh [--bin NAME | --example NAME]...
#
# FEATURES (default `hardware`) are that build's cargo features. Build output goes to
# stderr; stdout is the folder alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
. scripts/env.sh
usage() { echo "usage: $0 [--bin NAME | --example NAME]..." >&2; exit 2; }
dir="$CARGO_TARGET_DIR_AARCH64/aarch64-unknown-linux-gnu/board"
targets=("$@")
missing=0
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --bin) [ -x "$dir/$2" ] || missing=1 ;;
    --example) [ -x "$dir/examples/$2" ] || missing=1 ;;
    *) usage ;;
  esac
  shift 2
done
if [ "$missing" = 1 ]; then
  eval "$(scripts/setup-aarch64.sh --env)"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR_AARCH64" cargo +debian-web build --profile board \
    --target aarch64-unknown-linux-gnu --features "${FEATURES-hardware}" "${targets[@]}" >&2
fi
echo "$dir"
