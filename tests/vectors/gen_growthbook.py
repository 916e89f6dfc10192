#!/usr/bin/env python3
"""Writes tests/vectors/growthbook.json: hashing and bucketing vectors from
the official GrowthBook Python SDK (PyPI package `growthbook`).

offerlab's assignment must agree with it bit for bit. The test suite reads
the committed JSON; it never runs Python. To regenerate:

    python3 -m venv /tmp/gbenv && /tmp/gbenv/bin/pip install growthbook
    /tmp/gbenv/bin/python tests/vectors/gen_growthbook.py

The random cases are seeded, so a rerun with the same SDK version writes the
same file.
"""
import json
import os
import random
from importlib.metadata import version

from growthbook.core import chooseVariation, gbhash, getBucketRanges, inNamespace

rng = random.Random(20261123)

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz0123456789-_",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ .:/@",
    "éüßçñøåÆŒ",          # Latin-1 and Latin Extended: one UTF-16 unit each
    "日本語テスト中文한국어",  # CJK: one unit each
    "😀🛒🎁🚀",              # astral: two units (a surrogate pair) each
]


def random_string(max_len=16):
    n = rng.randint(0, max_len)
    out = []
    for _ in range(n):
        alphabet = rng.choices(ALPHABETS, weights=[8, 3, 2, 2, 1])[0]
        out.append(rng.choice(alphabet))
    return "".join(out)


WEIGHT_SETS = [
    None,
    [0.5, 0.5],
    [0.1, 0.9],
    [0.2, 0.3, 0.5],
    [0.25, 0.25, 0.25, 0.25],
    [1 / 3, 1 / 3, 1 / 3],
    [0.0, 1.0],
    [0.7, 0.7],          # sums to 1.4: SDK falls back to equal weights
    [0.4, 0.6, 0.1],     # sums to 1.1: equal weights
    [0.995, 0.0],        # within 0.99..1.01: used as given
    [1.2, -0.2],         # negative: equal weights
    [0.5],               # wrong length: equal weights
]
COVERAGES = [1.0, 0.8, 0.5, 0.2, 0.0, 1.5, -0.3, 0.05]

vectors = {"sdk": f"growthbook {version('growthbook')}", "hash": [], "bucket_ranges": [],
           "choose": [], "namespace": [], "assign": []}

# Published spec cases first.
for seed, value, ver in [("seed", "a", 2), ("", "a", 1), ("seed", "b", 2), ("a", "", 1)]:
    vectors["hash"].append({"seed": seed, "value": value, "version": ver, "expected": gbhash(seed, value, ver)})

for _ in range(500):
    seed, value = random_string(), random_string(24)
    ver = rng.choice([1, 2])
    vectors["hash"].append({"seed": seed, "value": value, "version": ver, "expected": gbhash(seed, value, ver)})

for weights in WEIGHT_SETS:
    for cov in COVERAGES:
        for num in sorted({len(weights) if weights else 2, 3}):
            ranges = getBucketRanges(num, cov, weights)
            vectors["bucket_ranges"].append(
                {"num_variations": num, "coverage": cov, "weights": weights, "expected": [list(r) for r in ranges]})


def assign_case(seed, value, coverage, weights, num):
    n = gbhash(seed, value, 2)
    ranges = getBucketRanges(num, coverage, weights)
    return {"seed": seed, "value": value, "num_variations": num, "coverage": coverage,
            "weights": weights, "hash": n, "variant": chooseVariation(n, ranges)}


for _ in range(400):
    weights = rng.choice(WEIGHT_SETS)
    num = len(weights) if weights and rng.random() < 0.9 else rng.randint(2, 4)
    vectors["assign"].append(assign_case(random_string(), random_string(24), rng.choice(COVERAGES), weights, num))

# Boundary hashes: values whose hash lands exactly on a range edge, where
# an off-by-one in `start <= n < end` would show.
for target, weights, coverage in [(0.5, [0.5, 0.5], 1.0), (0.4, [0.5, 0.5], 0.8), (0.2, [0.2, 0.3, 0.5], 1.0),
                                  (0.0, [0.5, 0.5], 1.0), (0.25, [0.5, 0.5], 0.5), (0.9, [0.1, 0.9], 1.0)]:
    found = 0
    i = 0
    while found < 3:
        value = f"edge-{i}"
        i += 1
        if gbhash("boundary-seed", value, 2) == target:
            vectors["assign"].append(assign_case("boundary-seed", value, coverage, weights, len(weights)))
            found += 1

for _ in range(100):
    num = rng.randint(1, 4)
    ranges = getBucketRanges(num, rng.choice(COVERAGES), rng.choice(WEIGHT_SETS))
    n = rng.choice([rng.random(), rng.choice([r[0] for r in ranges] + [r[1] for r in ranges])])
    vectors["choose"].append({"n": n, "ranges": [list(r) for r in ranges], "expected": chooseVariation(n, ranges)})

for _ in range(200):
    ns_id = random_string(10)
    a = round(rng.random(), 3)
    b = round(rng.uniform(a, 1.0), 3)
    value = random_string(20)
    vectors["namespace"].append({"value": value, "namespace": [ns_id, a, b], "expected": inNamespace(value, (ns_id, a, b))})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "growthbook.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(vectors, f, ensure_ascii=False, indent=1)
total = sum(len(v) for v in vectors.values() if isinstance(v, list))
print(f"wrote {total} vectors to {path}")
