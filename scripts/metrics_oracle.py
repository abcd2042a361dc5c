#!/usr/bin/env python3
"""Reference scores from the Python packages the field uses, for the Rust parity
test (`tests/metrics.rs`). Python is only the oracle; the product is Rust.

    metrics_oracle.py score <pairs.json>
        pairs.json: {"candidates": [...], "references": [...]} (texts as scored,
        already normalised by the caller). Prints JSON with corpus and per-pair
        scores:
        - bleu: nltk corpus_bleu, weights (1/n,)*n for n = 1..4, tokens = str.split()
        - rouge_l: pycocoevalcap Rouge (beta 1.2) on the raw strings
        - rouge_l_rouge_score: rouge-score RougeScorer(["rougeL"]) fmeasure, mean over pairs
        - cider_d: pycocoevalcap Cider (n 4, sigma 6)

    metrics_oracle.py make-fixture <ecgen-radiology dir> <out.tsv>
        Rebuilds tests/fixtures/metrics_pairs.tsv from the IU X-ray reports
        (deterministic; texts copied unchanged).

Exit status 3 with a message when a package is missing.
"""

import json
import random
import sys
import warnings


def _import_oracles():
    try:
        from nltk.translate.bleu_score import corpus_bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from rouge_score import rouge_scorer
    except ImportError as e:
        print(
            f"metrics oracle unavailable ({e}); run the test set-up: "
            "python3 -m pip install -r scripts/requirements-test.txt",
            file=sys.stderr,
        )
        sys.exit(3)
    return corpus_bleu, Cider, Rouge, rouge_scorer


def score(path):
    corpus_bleu, Cider, Rouge, rouge_scorer = _import_oracles()
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    cands, refs = data["candidates"], data["references"]
    assert len(cands) == len(refs) and cands, "need equally many, non-empty"

    hyp_tokens = [c.split() for c in cands]
    ref_tokens = [[r.split()] for r in refs]
    bleu = []
    with warnings.catch_warnings():
        # NLTK warns for every order without a match; the Rust docs say why.
        warnings.simplefilter("ignore")
        for n in range(1, 5):
            bleu.append(float(corpus_bleu(ref_tokens, hyp_tokens, weights=(1.0 / n,) * n)))

    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    rouge_l, rouge_pairs = Rouge().compute_score(gts, res)
    cider_d, cider_pairs = Cider().compute_score(gts, res)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rs_pairs = [scorer.score(r, c)["rougeL"].fmeasure for c, r in zip(cands, refs)]

    json.dump(
        {
            "bleu": bleu,
            "rouge_l": float(rouge_l),
            "rouge_l_pairs": [float(x) for x in rouge_pairs],
            "rouge_l_rouge_score": sum(rs_pairs) / len(rs_pairs),
            "rouge_l_rouge_score_pairs": rs_pairs,
            "cider_d": float(cider_d),
            "cider_d_pairs": [float(x) for x in cider_pairs],
        },
        sys.stdout,
    )
    print()


def _read_sections(folder):
    import os
    import xml.etree.ElementTree as ET

    texts = []
    for name in sorted(os.listdir(folder), key=lambda s: (len(s), s)):
        if not name.endswith(".xml"):
            continue
        root = ET.parse(os.path.join(folder, name)).getroot()
        for node in root.iter("AbstractText"):
            label = node.get("Label")
            text = " ".join((node.text or "").split())
            if label in ("FINDINGS", "IMPRESSION") and text:
                texts.append((f"{name}:{label.lower()}", label, text))
    return texts


def make_fixture(folder, out):
    rng = random.Random(20261129)
    texts = _read_sections(folder)
    by_report = {}
    for src, label, text in texts:
        by_report.setdefault(src.split(":")[0], {})[label] = (src, text)
    rows = []

    def add(kind, c, r):
        rows.append((kind, c[0], r[0], c[1], r[1]))

    pool = [(s, t) for s, _, t in texts]
    # identical: the same real text on both sides
    for c in rng.sample(pool, 40):
        add("identical", c, c)
    # same-study: a report's impression against its own findings
    both = [v for v in by_report.values() if len(v) == 2]
    for v in rng.sample(both, 40):
        add("same_study", v["IMPRESSION"], v["FINDINGS"])
    # near: two different reports' findings with the highest word overlap
    findings = [(s, t) for s, lab, t in texts if lab == "FINDINGS"]
    distinct = list({t: (s, t) for s, t in findings}.values())
    sets = [set(t.lower().split()) for _, t in distinct]
    for i in rng.sample(range(len(distinct)), 70):
        best, best_j = -1.0, None
        for j in range(len(distinct)):
            if j == i:
                continue
            inter = len(sets[i] & sets[j])
            jac = inter / max(1, len(sets[i] | sets[j]))
            if jac > best:
                best, best_j = jac, j
        add("near", distinct[i], distinct[best_j])
    # unrelated: random pairs
    for _ in range(40):
        add("unrelated", rng.choice(pool), rng.choice(pool))
    # short: texts of at most four words, against short or long texts
    short = [(s, t) for s, t in pool if len(t.split()) <= 4]
    short = list({t: (s, t) for s, t in short}.values())
    for k in range(30):
        add("short", rng.choice(short), rng.choice(short if k % 2 else pool))

    with open(out, "w", encoding="utf-8") as f:
        f.write("kind\tcandidate_source\treference_source\tcandidate\treference\n")
        for row in rows:
            assert all("\t" not in x and "\n" not in x for x in row)
            f.write("\t".join(row) + "\n")
    print(f"{len(rows)} pairs written to {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "score":
        score(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "make-fixture":
        make_fixture(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
