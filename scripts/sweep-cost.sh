#!/usr/bin/env bash
# Device cost of encoder configurations, beside their validation score: one JSON line per
# bundle, for the model card's encoder sweep (issue #11) and the tract-shape comparison
# (issue #15).
#
#   scripts/sweep-cost.sh OUT_JSONL BUNDLE[=LABEL] [BUNDLE[=LABEL]...]   (paths from the repository root)
#
# Per bundle:
#  - the encoder's multiply-accumulates and the validation mean AUROC its checkpoint was
#    chosen by (`cxr-edge info`);
#  - x86_64 latency at 1 thread, tract (the NNEF the device loads) against onnxruntime on
#    the same ONNX, the runtimes taking turns (`cxr-edge bench-model --json`, board build);
#  - guest instructions on Cortex-A72 under qemu-user, per encoder pass and per decoder
#    step, each the difference of two `insn_probe` runs (scripts/insn-count.sh), free of
#    loading and planning. Loading itself varies by some 20 M instructions from run to
#    run (three loader threads), so the runs differ by 20 encoder passes and by 300
#    decoder steps. A cost proxy, not a speed: qemu models no timing or caches;
#  - where the bundle holds a view-check-eval.json (`cxr-edge view-check --write
#    --eval-out BUNDLE/view-check-eval.json`), the share of not-frontal validation films
#    the device refuses with that encoder's view check.
# x86 figures are medians over ROUNDS (default 3) rounds on a possibly busy machine; the
# p25–p75 spread is kept in the output.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT_JSONL BUNDLE[=LABEL]..." >&2; exit 2; }
out=$1; shift
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
. scripts/env.sh
edge="$CARGO_TARGET_DIR/board/cxr-edge"
[ -x "$edge" ] || cargo build --profile board --bin cxr-edge
probe="$(scripts/aarch64-board.sh --example insn_probe)/examples/insn_probe"
work=$(mktemp -d "${TMPDIR:-/tmp}/sweep-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT

insns() { # bundle studies steps
  scripts/insn-count.sh --cpu cortex-a72 -- "$probe" "$1" fp32 "$2" "$3" | awk '/^insns:/ {print $2}'
}

for spec in "$@"; do
  bundle=${spec%%=*} label=${spec#*=}; [ "$label" = "$spec" ] && label=$(basename "$bundle")
  "$edge" info "$bundle" > "$work/info.txt"
  "$edge" bench-model --model "$bundle" --threads 1 --rounds "${ROUNDS:-3}" --json > "$work/bench.json"
  base=$(insns "$bundle" 1 0); enc=$(insns "$bundle" 21 0); steps=$(insns "$bundle" 1 300)
  python3 - "$label" "$bundle" "$work/info.txt" "$work/bench.json" "$base" "$enc" "$steps" >> "$out" <<'PY'
import json, re, sys
label, bundle, info, bench, base, enc, steps = sys.argv[1:]
text = open(info).read()
mmac = float(re.search(r"~([\d.]+) MMAC", text).group(1))
size = int(re.search(r"(\d+)² input", text).group(1))
val = json.loads(re.search(r"^metrics\s+(\{.*\})$", text, re.M).group(1))
lat = json.load(open(bench))["latency"][0]
def med(d):
    return {k: round(d[k], 4) for k in ("median", "p25", "p75")}
row = {
    "label": label, "bundle": bundle, "input_size": size, "encoder_mmac": mmac,
    "val_epoch": val.get("epoch"), "val_mean_auroc": round(val["val"]["mean_auroc"], 4),
    "x86_tract_encoder_ms": med(lat["tract_fp32"]["encoder_ms"]),
    "x86_tract_step_ms": med(lat["tract_fp32"]["step_ms"]),
    "x86_ort_encoder_ms": med(lat["onnxruntime"]["encoder_ms"]) if lat.get("onnxruntime") else None,
    "x86_tract_over_ort_study": lat["ratios"]["study"] if lat.get("ratios") else None,
    "x86_tract_over_ort_encoder": lat["ratios"]["encoder"] if lat.get("ratios") else None,
    "study_steps": lat["study_steps"],
    "a72_insns_per_encoder": (int(enc) - int(base)) // 20,
    "a72_insns_per_step": (int(steps) - int(base)) // 300,
}
try:
    vc = json.load(open(f"{bundle}/view-check-eval.json"))
    val = next(r for r in vc["not_frontal"] if r["group"] == "validation")
    row["val_not_frontal_refused"] = {k: val["device"][k] for k in ("refused", "of", "rate")}
except (FileNotFoundError, StopIteration, KeyError):
    row["val_not_frontal_refused"] = None
print(json.dumps(row))
PY
  tail -1 "$out"
done
