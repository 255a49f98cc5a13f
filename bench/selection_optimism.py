#!/usr/bin/env python3
"""How optimistic is a search's pick on the split it was made on? A split-half estimate from a run directory.

Takes every setting the search verified on the whole search split (evaluations.jsonl) and their memory (the report's
candidates). Many times over, it halves the split at random, picks the smallest setting whose drop on half A is within
--max-drop (the rule a search's final pick follows), and measures that setting's drop on half B. The mean of B minus A
is the pick's optimism on half-size splits (about 1/√2 of it on the whole split, as noise scales). It estimates the final pick's selection effect alone, not that of the path
that led to the verified settings. Pure Python, no dependencies.

    python3 bench/selection_optimism.py RUN_DIR [--report RUN_DIR/reports/beam/report.json] [--max-drop 1.5] [--draws 300]
"""
import argparse, base64, glob, json, os, random

FP32 = "32,32,32,32|32,32,32|32,32|32,32"


def unpack(text, count):
    data = base64.b64decode(text)
    return [(data[i >> 3] >> (i & 7)) & 1 for i in range(count)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--report", help="report.json with the candidates (default: the first under RUN_DIR/reports)")
    p.add_argument("--max-drop", type=float, default=1.5)
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    report = a.report or sorted(glob.glob(os.path.join(a.run_dir, "reports", "*", "report.json")))[0]
    mib = {c["setting"]: c["mib"] for c in json.load(open(report))["candidates"]}
    masks = {}
    with open(os.path.join(a.run_dir, "evaluations.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if e.get("kind") == "accuracy" and e["split"] == "search":
                masks[e["setting"]] = unpack(e["mask"], e["count"])
    fp32 = masks.pop(FP32)
    n = len(fp32)
    settings = sorted((s for s in masks if s in mib and len(masks[s]) == n), key=lambda s: mib[s])
    diffs = [[fp32[i] - masks[s][i] for i in range(n)] for s in settings]
    rng = random.Random(a.seed)
    gaps = []
    for _ in range(a.draws):
        order = list(range(n))
        rng.shuffle(order)
        half_a, half_b = order[: n // 2], order[n // 2:]
        for d in diffs:
            drop_a = 100 * sum(d[i] for i in half_a) / len(half_a)
            if drop_a <= a.max_drop:
                gaps.append(100 * sum(d[i] for i in half_b) / len(half_b) - drop_a)
                break
    mean = sum(gaps) / len(gaps)
    sd = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    print(f"{len(settings)} settings verified on all {n} images; smallest passing on half A, seen on half B: "
          f"optimism {mean:.2f} points (sd {sd:.2f}, {len(gaps)} draws)")


if __name__ == "__main__":
    main()
