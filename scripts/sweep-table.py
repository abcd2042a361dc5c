#!/usr/bin/env python3
"""The model card's encoder-sweep table, from the committed files it cites.

    scripts/sweep-table.py ENCODER_SWEEP_JSONL TRAINING_RUNS_JSON

One row per costed bundle (scripts/sweep-cost.sh), in the file's order, then one row
per second-seed run (validation only). Prints Markdown.
"""
import json
import sys


def main(sweep_path, runs_path):
    rows = [json.loads(line) for line in open(sweep_path) if line.strip()]
    runs = json.load(open(runs_path))
    print("| encoder | input | MMAC | validation mean AUROC (epoch) | not-frontal refused, "
          "validation | x86 encoder, tract, 1 thread | tract / onnxruntime, encoder "
          "| A72 guest instructions per encoder |")
    print("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        vc = r.get("val_not_frontal_refused")
        refused = f"{100 * vc['rate']:.1f} % ({vc['refused']}/{vc['of']})" if vc else "–"
        t = r["x86_tract_encoder_ms"]
        ratio = r.get("x86_tract_over_ort_encoder")
        ratio = f"{ratio['median']:.2f}× ({ratio['low']:.2f}–{ratio['high']:.2f})" if ratio else "–"
        print(f"| {r['label']} | {r['input_size']} | {r['encoder_mmac']:.0f} "
              f"| {r['val_mean_auroc']:.3f} ({r['val_epoch']}) | {refused} "
              f"| {t['median']:.2f} ms ({t['p25']:.2f}–{t['p75']:.2f}) | {ratio} "
              f"| {r['a72_insns_per_encoder'] / 1e6:.1f} M |")
    for name, run in runs.items():
        if "seed" in name:
            b = run["best"]
            print(f"| {name} (seed {run['config']['seed']}) | "
                  f"{run['config']['model']['input_size']} | | {b['val_mean_auroc']:.3f} "
                  f"({b['epoch']}) | | | | |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
