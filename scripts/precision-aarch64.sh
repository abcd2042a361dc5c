#!/usr/bin/env bash
# Reduced precision against fp32 on the board's CPUs, under qemu-user: the figures that
# decide each CPU's default artefact (committed as models/<id>/precision-eval.json).
#
#   scripts/precision-aarch64.sh OUT_JSON BUNDLE[=SCHEME] [BUNDLE[=SCHEME]...]
#
# Each BUNDLE holds fp32 and reduced-precision artefacts to judge (int8 and/or f16, added
# to a copy of a bundle with `cargo run --example add_precision`); SCHEME names its int8
# scheme in the output. For each CPU, cortex-a72 (Pi 4: no FP16 arithmetic, no dot
# product) and cortex-a76 (Pi 5: both), and each reduced artefact tract runs natively there:
#  1. guest instructions per study, one encoder pass and $STEPS greedy decoder steps (the
#     median study decodes 14), fp32 and reduced: the difference of two `insn_probe` runs
#     that differ by 2 studies (scripts/insn-count.sh), free of loading and planning;
#  2. `cxr-edge precision --check --json` on the test films of models/nih-split.csv
#     (LABELS, default ../shared/data/nih-cxr14): identical greedy impressions and AUROC.
# qemu-user 7.2 shows the host's /proc/cpuinfo, which is where tract looks for FP16
# arithmetic ("asimdhp"; the dot product it reads from HWCAP, which qemu sets). Under
# cortex-a76 the script therefore sets TRACT_CPU_AARCH64_KIND=cortex-a75: the core tract
# knows that is nearest the A76 (FP16 and dot product; generic kernels otherwise).
# Instruction counts are a cost proxy, not a speed: qemu models no timing or caches.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=/dev/null
. scripts/env.sh
[ $# -ge 2 ] || { echo "usage: $0 OUT_JSON BUNDLE[=SCHEME]..." >&2; exit 2; }
out=$1; shift
labels=${LABELS:-$here/../shared/data/nih-cxr14}
steps=${STEPS:-14}
dir=$(scripts/aarch64-board.sh --bin cxr-edge --example insn_probe)
bin="$dir/cxr-edge" probe="$dir/examples/insn_probe"
work=$(mktemp -d "${TMPDIR:-/tmp}/precision-aarch64.XXXXXX")
trap 'rm -rf "$work"' EXIT
awk -F, '$3 == "test" { n = split($1, p, "/"); sub(/\.[a-z]+$/, "", p[n]); print p[n] }' \
  models/nih-split.csv > "$work/test-ids.txt"

kind_of() { [ "$1" = cortex-a76 ] && echo cortex-a75 || true; }
per_study() { # cpu bundle precision
  local kind a b
  kind=$(kind_of "$1")
  c() { env ${kind:+TRACT_CPU_AARCH64_KIND=$kind} scripts/insn-count.sh --cpu "$1" -- \
    "$probe" "$2" "$3" "$4" "$steps" | awk '/^insns:/ {print $2}'; }
  a=$(c "$1" "$2" "$3" 1); b=$(c "$1" "$2" "$3" 3)
  echo $(( (b - a) / 2 ))
}
natively() { # cpu precision: does tract run it natively on that CPU?
  case "$1:$2" in cortex-a72:f16) return 1 ;; *) return 0 ;; esac
}

rows="$out.rows"  # grows as each CPU × artefact is measured; removed at the end
: > "$rows"
for cpu in cortex-a72 cortex-a76; do
  first=${1%%=*}
  fp32=$(per_study "$cpu" "$first" fp32)
  echo "== $cpu: fp32 $fp32 guest instructions per study"
  for spec in "$@"; do
    bundle=${spec%%=*} scheme=${spec#*=}; [ "$scheme" = "$spec" ] && scheme=""
    for p in int8 f16; do
      grep -q "\"precision\": \"$p\"" "$bundle/manifest.json" || continue
      natively "$cpu" "$p" || { echo "== $cpu: $p skipped (no native $p arithmetic)"; continue; }
      n=$(per_study "$cpu" "$bundle" "$p")
      kind=$(kind_of "$cpu")
      status=0
      env ${kind:+TRACT_CPU_AARCH64_KIND=$kind} qemu-aarch64 -cpu "$cpu" "$bin" precision \
        --model "$bundle" --precision "$p" --labels "$labels" --ids "$work/test-ids.txt" \
        --check --json > "$work/check.json" 2> "$work/check.err" || status=$?
      tail -1 "$work/check.err" >&2
      label=$scheme; [ "$p" = int8 ] || label=""  # SCHEME names int8 artefacts only
      python3 - "$cpu" "$p" "$label" "$fp32" "$n" "$status" "$work/check.json" >> "$rows" <<'PY'
import json, sys
cpu, p, scheme, fp32, n, status, path = sys.argv[1:]
check = json.load(open(path))
print(json.dumps({"cpu": cpu, "precision": p, "scheme": scheme or None,
                  "fp32_insns_per_study": int(fp32), "insns_per_study": int(n),
                  "insns_ratio": round(int(n) / int(fp32), 3), "check_passed": status == "0",
                  "images": check["images"], "agreement": check["agreement"],
                  "max_auroc_delta": check["max_auroc_delta"], "check": check}))
PY
      tail -1 "$rows" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("== %s %s%s: %.2fx fp32 instructions, identical impressions %.1f %%, max |dAUROC| %.4f" % (r["cpu"], r["precision"], " (%s)" % r["scheme"] if r["scheme"] else "", r["insns_ratio"], 100 * r["agreement"], r["max_auroc_delta"]))'
    done
  done
done
python3 - "$rows" "$steps" > "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
features = {"cortex-a72": [], "cortex-a76": ["fp16", "dotprod"]}
cpus = []
for cpu in ["cortex-a72", "cortex-a76"]:
    mine = [r for r in rows if r["cpu"] == cpu]
    cpus.append({"cpu": cpu, "arch": "aarch64", "features": features[cpu],
                 "fp32_insns_per_study": mine[0]["fp32_insns_per_study"] if mine else None,
                 "candidates": [{k: v for k, v in r.items() if k not in ("cpu", "fp32_insns_per_study")} for r in mine]})
print(json.dumps({
    "command": "scripts/precision-aarch64.sh",
    "study": "one encoder pass and %s greedy decoder steps" % sys.argv[2],
    "films": "test split of models/nih-split.csv",
    "bar": {"max_insns_ratio": 0.6, "min_agreement": 0.95, "max_auroc_delta": 0.01},
    "cpus": cpus}, indent=1))
PY
rm -f "$rows"
echo "wrote $out"
