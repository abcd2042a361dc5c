#!/usr/bin/env bash
# Idempotent aarch64 cross-build and emulated test run for the device crate.
#
#   scripts/setup-aarch64.sh             install (if needed), build the release binary, run the tests under qemu
#   scripts/setup-aarch64.sh --install   only install the toolchain
#   scripts/setup-aarch64.sh --build     install + release binary only
#   scripts/setup-aarch64.sh --env       print the environment to use (eval "$(scripts/setup-aarch64.sh --env)")
#
# The release binary is built with FEATURES (default: hardware, i.e. the SPI panel, SSD1306,
# framebuffer and GPIO drivers a unit needs); the tests run with the default features.
#
# Route measured in /work/shared/TOOLCHAIN.md: Debian bookworm's rustc-web/cargo-web (1.96)
# with the arm64 standard library, the GNU aarch64 cross gcc as linker and qemu-user as the
# test runner. qemu runs WITHOUT `-L /usr/aarch64-linux-gnu`: mixing that sysroot's libc with
# the multiarch one makes any program that starts a thread spin forever.
#
# The tests run in the release profile so they share every compiled dependency with the
# release binary (tract is ~20 min of CPU to build for aarch64) and so the host-side
# `target/debug` lock stays free for everyday work.
set -euo pipefail
TARGET=aarch64-unknown-linux-gnu
TOOLCHAIN=debian-web
FEATURES=${FEATURES-hardware}
mode=${1:-all}
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=/dev/null
. "$here/scripts/env.sh"

need_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_toolchain() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    need_root dpkg --add-architecture arm64
    need_root apt-get update -q >&2
  fi
  local pkgs=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
    g++-aarch64-linux-gnu qemu-user)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    need_root apt-get update -q >&2
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
  if command -v rustup >/dev/null && ! rustup toolchain list | grep -q "^$TOOLCHAIN"; then
    rustup toolchain link "$TOOLCHAIN" /usr >&2
  fi
}

print_env() {
  echo "export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc"
  echo "export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER='qemu-aarch64 -cpu cortex-a72'"
  echo "export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc"
  echo "export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++"
  echo "export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar"
}

case "$mode" in
  --env) print_env; exit 0 ;;
  --install) install_toolchain; exit 0 ;;
esac

install_toolchain
eval "$(print_env)"
cd "$here"
cargo "+$TOOLCHAIN" build --release --target "$TARGET" --bin cxr-edge --features "$FEATURES"
bin="$CARGO_TARGET_DIR/$TARGET/release/cxr-edge"
size=$(stat -c %s "$bin")
echo "aarch64 release binary: $bin ($size bytes, $((size / 1024 / 1024)) MiB)"
file "$bin" 2>/dev/null || true
[ "$mode" = "--build" ] && exit 0

CXR_TEST_RUNNER="qemu-aarch64 -cpu cortex-a72" \
  cargo "+$TOOLCHAIN" test --release --target "$TARGET" --lib --bins --tests
echo "aarch64 tests passed under qemu"
