#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, Python oracles,
# libtorch, the aarch64 cross toolchain), then runs formatting, lints and every
# test: host (device crate + trainer) and the device crate under qemu-aarch64.
# Idempotent; caches live in $CXR_CACHE (default ~/.cache/cxr-edge), outside the clone.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
mapfile -t apt_pkgs < <(grep -v '^#' scripts/apt-test.txt | sed '/^\s*$/d')
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "python test oracles"
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

step "libtorch"
eval "$(scripts/setup-libtorch.sh)"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "tests (x86_64)"
cargo test --workspace 2>&1 | tee -a "$log"

step "aarch64 release build and tests under qemu"
scripts/setup-aarch64.sh 2>&1 | tee -a "$log"

# One closing line over every test binary run above (x86_64 and aarch64).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
