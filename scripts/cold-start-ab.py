#!/usr/bin/env python3
"""Cold start of two cxr-edge binaries, taking turns, N fresh processes each.

    scripts/cold-start-ab.py OLD NEW [N] [--model DIR]

Each process opens the bundle once (verify every hash, build tract's NNEF
reader, load and plan both graphs) and exits. A binary with `bench-model
--cold-start-once` reports that open alone; an older one (before 2026-12-02)
runs a minimal `bench-model --json` and its `load.cold_start_ms` is used, which
is the same first open of the process. Prints median (p25-p75) and range per
binary, and the ratio of the medians. Taking turns puts a busy spell of the
machine on both.
"""
import json
import statistics
import subprocess
import sys


def once(binary, model):
    extra = ["--model", model] if model else []
    out = subprocess.run([binary, "bench-model", "--cold-start-once", *extra],
                         capture_output=True, text=True)
    if out.returncode == 0:
        return json.loads(out.stdout)["total_ms"]
    out = subprocess.run([binary, "bench-model", "--json", "--runs", "1", "--steps", "1",
                          "--studies", "1", "--rounds", "1", "--loads", "1",
                          "--no-onnxruntime", *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["load"]["cold_start_ms"]


def summary(v):
    q = statistics.quantiles(v, n=4, method="inclusive")
    return f"{statistics.median(v):.1f} ms ({q[0]:.1f}-{q[2]:.1f}), range {min(v):.1f}-{max(v):.1f}, n={len(v)}"


def main():
    args = sys.argv[1:]
    model = None
    if "--model" in args:
        i = args.index("--model")
        model = args[i + 1]
        del args[i:i + 2]
    if len(args) not in (2, 3):
        sys.exit(__doc__)
    old, new = args[0], args[1]
    n = int(args[2]) if len(args) == 3 else 15
    times = {old: [], new: []}
    for _ in range(n):
        for b in (old, new):
            times[b].append(once(b, model))
    for b in (old, new):
        print(f"{b}: {summary(times[b])}")
    print(f"new / old, medians: {statistics.median(times[new]) / statistics.median(times[old]):.2f}")


if __name__ == "__main__":
    main()
