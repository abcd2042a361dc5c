#!/usr/bin/env bash
# Idempotent aarch64 cross-build and emulated test run for the device crate.
#
#   scripts/setup-aarch64.sh             install (if needed), build the binary and the tests, run them under qemu
#   scripts/setup-aarch64.sh --install   only install the toolchain
#   scripts/setup-aarch64.sh --build     install + the board binary only
#   scripts/setup-aarch64.sh --no-run    install + the board binary and the test binaries, not run
#   scripts/setup-aarch64.sh --env       print the environment to use (eval "$(scripts/setup-aarch64.sh --env)")
#
# Everything is built with FEATURES (default: hardware, i.e. the SPI panel, SSD1306,
# framebuffer and GPIO drivers a unit needs) in the `board` profile (Cargo.toml: the
# fastest binary, no LTO), binary and tests in ONE cargo invocation: every dependency
# (tract is ~20 min of CPU for aarch64) is compiled once, the binary under test is the
# binary a board gets, and linking the test binaries is cheap.
# The aarch64 build has its own target folder ($CARGO_TARGET_DIR_AARCH64, default
# $CXR_CACHE/target-aarch64): it shares nothing with the host toolchain's builds, and
# scripts/test.sh builds it while the host builds and tests run.
#
# Route measured in /work/shared/TOOLCHAIN.md: Debian bookworm's rustc-web/cargo-web (1.96)
# with the arm64 standard library, the GNU aarch64 cross gcc as linker and qemu-user as the
# test runner. qemu runs WITHOUT `-L /usr/aarch64-linux-gnu`: mixing that sysroot's libc with
# the multiarch one makes any program that starts a thread spin forever.
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
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR_AARCH64"
bin="$CARGO_TARGET_DIR/$TARGET/board/cxr-edge"
build=(cargo "+$TOOLCHAIN" build --profile board --target "$TARGET" --features "$FEATURES")
tests=(cargo "+$TOOLCHAIN" test --profile board --target "$TARGET" --features "$FEATURES" --lib --bins --tests)
case "$mode" in
  --build) "${build[@]}" --bin cxr-edge ;;
  # Integration tests depend on the binary, so this builds it too, with the same units.
  *) "${tests[@]}" --no-run ;;
esac
size=$(stat -c %s "$bin")
echo "aarch64 board binary: $bin ($size bytes, $((size / 1024 / 1024)) MiB)"
file "$bin" 2>/dev/null || true
case "$mode" in --build | --no-run) exit 0 ;; esac

CXR_TEST_RUNNER="qemu-aarch64 -cpu cortex-a72" "${tests[@]}"
echo "aarch64 tests passed under qemu"
