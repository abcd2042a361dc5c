#!/usr/bin/env bash
# Builds the cxr-edge Debian package with cargo-deb (metadata: [package.metadata.deb]
# in Cargo.toml; maintainer scripts, conffile, copyright: board/deb/).
#
#   scripts/package-deb.sh arm64 [--no-build] [--fast]                the board's package
#   scripts/package-deb.sh amd64 [--no-build] [--fast] [--profile P]  an x86-64 machine's
#   scripts/package-deb.sh --install-tool                             only install cargo-deb
#
# arm64 packages the aarch64 board binary that scripts/setup-aarch64.sh builds (it is
# built first unless --no-build); amd64 builds (unless --no-build) and packages the
# host binary of profile P (default: board, the profile a unit runs; scripts/test.sh
# packages the dev binary its tests built, see there). --fast: xz -1 instead of -6
# (arm64: 19.3 MB instead of 13.1 MB, 17 s of CPU instead of 32 s). The package is
# written to $CXR_CACHE/debian/ and its path printed on stdout.
#
# cargo-deb (pinned below) is installed once into $CXR_CACHE/tools, compiled from
# crates.io with --locked (1.5 min on 2 cores).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=/dev/null
. "$here/scripts/env.sh"
CARGO_DEB_VERSION=3.8.0
tools="$CXR_CACHE/tools"
out="$CXR_CACHE/debian"

install_tool() {
  if [ "$("$tools/bin/cargo-deb" --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    # Its own target folder (cargo's temporary default), never the project's.
    env -u CARGO_TARGET_DIR cargo install cargo-deb --version "$CARGO_DEB_VERSION" \
      --locked --root "$tools" >&2
  fi
}

arch=${1:-}
shift || true
build=1 profile=board fast=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --fast) fast=(--fast) ;;
    --profile) profile=${2:?--profile needs a profile name}; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

case "$arch" in
  --install-tool) install_tool; exit 0 ;;
  amd64 | arm64) ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
install_tool
cd "$here"
mkdir -p "$out"
export PATH="$tools/bin:$PATH"

# cargo-deb writes no md5sums control file, which `dpkg --verify cxr-edge` needs to
# find files an SD card has corrupted: unpack, add it, and pack again with dpkg-deb
# (so cargo-deb itself compresses fast, and this is the one real compression).
with_md5sums() {
  local deb=$1 tree
  tree=$(mktemp -d)
  dpkg-deb -R "$deb" "$tree"
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$tree/DEBIAN/md5sums"
  chmod 0644 "$tree/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz -z"$level" -b "$tree" "$deb" >&2
  rm -rf "$tree"
  echo "$deb"
}

level=6
[ ${#fast[@]} -gt 0 ] && level=1
if [ "$arch" = arm64 ]; then
  [ "$build" = 1 ] && scripts/setup-aarch64.sh --build >&2
  # The board binary's own target folder, and the cross binutils for stripping it.
  # cargo-deb prints the package's path on stdout.
  deb=$(CARGO_TARGET_DIR="$CARGO_TARGET_DIR_AARCH64" \
    env 'STRIP_aarch64-linux-gnu=aarch64-linux-gnu-strip' \
    'OBJCOPY_aarch64-linux-gnu=aarch64-linux-gnu-objcopy' \
    cargo deb --no-build --profile board --target aarch64-unknown-linux-gnu --fast --output "$out/")
else
  flags=(--profile "$profile" --fast --output "$out/")
  [ "$build" = 0 ] && flags+=(--no-build)
  deb=$(cargo deb "${flags[@]}")
fi
with_md5sums "$(echo "$deb" | tail -1)"
