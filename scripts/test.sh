#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, Python oracles,
# libtorch, the aarch64 cross toolchain), then runs formatting, lints and every
# test: host (device crate + trainer) and the device crate under qemu-aarch64; last,
# builds the amd64 and arm64 Debian packages and tests them (scripts/deb-test.py).
# Idempotent; caches live in $CXR_CACHE (default ~/.cache/cxr-edge), outside the clone.
#
# The aarch64 build (binary + test binaries, one cargo invocation) starts in the
# background as soon as its toolchain is installed and runs beside the downloads and
# the host build; its tests run under qemu once it is done. Each step prints its wall
# time, and a table of all steps closes the run (also when a step fails).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."
source scripts/env.sh

started=$SECONDS
times=()
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# step NAME COMMAND...: runs one step and records its wall time and outcome (a
# failing step ends the run; the table names it FAILED).
current=
step() {
  local name=$1 t=$SECONDS
  shift
  printf '\n==> %s\n' "$name"
  current=$name current_from=$t
  "$@"
  current=
  local took=$((SECONDS - t))
  times+=("$(printf '%-44s %8s  ok' "$name" "$(mmss "$took")")")
  printf '<== %s: %s (run so far %s)\n' "$name" "$(mmss "$took")" "$(mmss $((SECONDS - started)))"
}
log=$(mktemp)
aarch64_log=$(mktemp)
aarch64_pid=
summary() {
  local rc=$?
  # A failed step leaves no aarch64 cargo behind: the build is its own process group.
  [ -n "$aarch64_pid" ] && kill -- -"$aarch64_pid" 2>/dev/null
  [ -n "$current" ] && times+=("$(printf '%-44s %8s  FAILED' "$current" "$(mmss $((SECONDS - current_from)))")")
  printf '\nstep times (wall, 2 cores in CI):\n'
  printf '  %s\n' "${times[@]}"
  printf '  %-44s %8s\n' "total" "$(mmss $((SECONDS - started)))"
  # One closing line over every test binary run (x86_64 and aarch64).
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
  rm -f "$log" "$aarch64_log"
  exit "$rc"
}
trap summary EXIT

system_packages() {
  mapfile -t apt_pkgs < <(grep -v '^#' scripts/apt-test.txt | sed '/^\s*$/d')
  local missing=() p
  for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  scripts/setup-aarch64.sh --install
}

aarch64_build_start() {
  setsid scripts/setup-aarch64.sh --no-run >"$aarch64_log" 2>&1 &
  aarch64_pid=$!
  aarch64_from=$SECONDS
  echo "building in the background (pid $aarch64_pid)"
}

aarch64_build_wait() {
  local rc=0
  wait "$aarch64_pid" || rc=$?
  aarch64_pid=
  grep -v '^\s*\(Compiling\|Downloaded\|Downloading\)' "$aarch64_log" || true
  echo "background build took $(mmss $((SECONDS - aarch64_from))) since it started"
  return "$rc"
}

# The Debian packages (board/README.md, "5. Install"): arm64 from the board binary the
# aarch64 build made, amd64 from the dev binary the x86_64 tests built (packaging the
# x86-64 board build instead would compile every dependency once more, 9.5 min cold),
# both checked by scripts/deb-test.py (lintian, contents, install into a throwaway root).
debian_packages() {
  local amd64 arm64
  amd64=$(scripts/package-deb.sh amd64 --no-build --profile dev --fast)
  arm64=$(scripts/package-deb.sh arm64 --no-build)
  python3 scripts/deb-test.py --amd64 "$amd64" --arm64 "$arm64"
}

python_oracles() {
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
}

libtorch() {
  eval "$(scripts/setup-libtorch.sh)"
}

lints() {
  cargo fmt --all -- --check
  # With every feature, so the code only the board build (hardware drivers) or the
  # heap-counting bench compiles is linted too.
  cargo clippy --workspace --all-targets --features cxr-edge/hardware,cxr-edge/heap-stats,cxr-edge/tls -- -D warnings
}

step "system packages + aarch64 toolchain" system_packages
step "aarch64 build: start (background)" aarch64_build_start
step "python test oracles" python_oracles
step "libtorch" libtorch
step "format and lints" lints
# The host run counts heap bytes in `bench` (heap-stats) and tests DICOM over TLS
# (tls); the aarch64 run tests the board's binary, which leaves both out, so the
# plain-TCP receiver is tested there.
step "tests (x86_64)" bash -c 'set -o pipefail; cargo test --workspace --features cxr-edge/heap-stats,cxr-edge/tls 2>&1 | tee -a "$1"' _ "$log"
step "aarch64 build: wait" aarch64_build_wait
step "tests (aarch64, qemu)" bash -c 'set -o pipefail; scripts/setup-aarch64.sh 2>&1 | tee -a "$1"' _ "$log"
step "cargo-deb (cached)" scripts/package-deb.sh --install-tool
step "Debian packages: build and test" debian_packages
