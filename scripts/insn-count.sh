#!/usr/bin/env bash
# Instruction-count proxy: run an aarch64 program under qemu user mode with a TCG plugin
# that counts the guest instructions it executes.
#
#   scripts/insn-count.sh [--cpu cortex-a72] -- <aarch64 program> [args...]
#
# The program's stdin/stdout/stderr pass through; afterwards `insns: N` is printed as the
# last stdout line and the script exits with the program's status. If qemu died before the
# plugin could report, a note goes to stderr and no `insns:` line is printed.
#
# The plugin (scripts/qemu-insn/insn.c, declarations in qemu-plugin-api.h: Debian 12 ships
# no qemu-plugin.h) is built with the host cc into ${CXR_CACHE:-$HOME/.cache/cxr-edge}/qemu-insn/
# on first use and whenever its sources are newer. It targets the QEMU 7.2 plugin API
# (bookworm's qemu-user); QEMU >= 9 has a different API and rejects it at load time.
#
# Sysroot: QEMU_LD_PREFIX, when set, is left for qemu to use. Otherwise no -L is passed
# when the arm64 multiarch libc is installed (/lib/ld-linux-aarch64.so.1, the route of
# scripts/setup-aarch64.sh: mixing it with the cross sysroot hangs threaded programs), and
# `-L /usr/aarch64-linux-gnu` only when that multiarch loader is missing.
set -euo pipefail

usage() {
  echo "usage: $0 [--cpu CPU] -- <aarch64 program> [args...]" >&2
  exit 2
}

cpu=cortex-a72
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) [ $# -ge 2 ] || usage; cpu=$2; shift 2 ;;
    --cpu=*) cpu=${1#--cpu=}; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
src_dir="$here/qemu-insn"
cache="${CXR_CACHE:-$HOME/.cache/cxr-edge}/qemu-insn"
so="$cache/insn.so"
qemu=${QEMU_AARCH64:-qemu-aarch64}

if ! command -v "$qemu" >/dev/null; then
  echo "$0: $qemu not found (apt-get install qemu-user)" >&2
  exit 127
fi

if [ ! -f "$so" ] || [ "$src_dir/insn.c" -nt "$so" ] || [ "$src_dir/qemu-plugin-api.h" -nt "$so" ]; then
  mkdir -p "$cache"
  tmp_so=$(mktemp "$cache/insn.so.XXXXXX")
  "${CC:-cc}" -O2 -fPIC -shared -Wall -Wextra -I "$src_dir" -o "$tmp_so" "$src_dir/insn.c"
  chmod 755 "$tmp_so"
  mv -f "$tmp_so" "$so"  # atomic, so concurrent runs never load a half-written file
fi

ld_args=()
if [ -z "${QEMU_LD_PREFIX:-}" ] && [ ! -e /lib/ld-linux-aarch64.so.1 ] \
  && [ -d /usr/aarch64-linux-gnu/lib ]; then
  ld_args=(-L /usr/aarch64-linux-gnu)
fi

out=$(mktemp "${TMPDIR:-/tmp}/insn-count.XXXXXX")
trap 'rm -f "$out"' EXIT
case "$out" in
  *,*) echo "$0: temp path '$out' contains a comma (qemu -plugin separator)" >&2; exit 2 ;;
esac

status=0
"$qemu" -cpu "$cpu" "${ld_args[@]}" -plugin "$so,out=$out" "$@" || status=$?

line=$(cat "$out")
if [[ "$line" == "insns: "* ]]; then
  echo "$line"
else
  echo "$0: no instruction count from the plugin (qemu status $status)" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
