#!/usr/bin/env python3
"""Every epoch's validation mean AUROC and time of trained runs, for the model card.

    scripts/collect-runs.py OUT_JSON [--merge] "NAME=RUN_DIR" ...

Reads each run folder's config.json and metrics.json (written by `cxr-train train`) and
writes {NAME: {"config": ..., "epochs": [...], "best": {...}}} to OUT_JSON. With --merge,
runs already in OUT_JSON and not named again are kept. "best" is the epoch with the
highest validation mean AUROC, the rule the trainer selects its checkpoint by.
"""
import json
import sys

KEYS = ["epochs", "lr", "backbone_lr", "detach_text", "pretrained", "freeze_blocks",
        "patience", "seed"]


def run_entry(folder):
    config = json.load(open(f"{folder}/config.json"))
    history = json.load(open(f"{folder}/metrics.json"))
    epochs = [{"epoch": e["epoch"], "val_mean_auroc": round(e["val"]["mean_auroc"], 4),
               "seconds": round(e["seconds"], 1), "train_loss": round(e["train_loss"], 4)}
              for e in history]
    best = max(epochs, key=lambda e: e["val_mean_auroc"])
    summary = {k: config.get(k) for k in KEYS}
    summary["model"] = config["model"]
    return {"config": summary, "epochs": epochs,
            "best": {"epoch": best["epoch"], "val_mean_auroc": best["val_mean_auroc"]}}


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    out, rest = argv[0], argv[1:]
    merge = "--merge" in rest
    rest = [a for a in rest if a != "--merge"]
    doc = {}
    if merge:
        try:
            doc = json.load(open(out))
        except FileNotFoundError:
            pass
    for spec in rest:
        name, _, folder = spec.partition("=")
        if not folder:
            sys.exit(f"collect-runs: '{spec}' is not NAME=RUN_DIR")
        doc[name] = run_entry(folder)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
