#!/usr/bin/env python3
"""Writes tests/vectors/segments.json: reference numbers for the statistics
of a breakdown by segment, from statsmodels and scipy. The test suite reads
the committed JSON; it never runs Python.

    python3 -m venv /tmp/segenv
    /tmp/segenv/bin/pip install statsmodels==0.14.4 scipy==1.14.1 numpy==2.1.3
    /tmp/segenv/bin/python tests/vectors/gen_segments.py

Seeded: a rerun with the same packages writes the same file.

What is compared, and against what:
- benjamini_hochberg: statsmodels multipletests(method="fdr_bh"), on sets of
  p-values of many sizes, with ties, ones and tiny values.
- cochran_q: statsmodels.stats.meta_analysis.combine_effects (its `q`, the
  heterogeneity statistic over inverse-variance weights), with the p-value
  of Q on k - 1 degrees of freedom from scipy's chi2.sf.
"""
import json
import os
import random
from importlib.metadata import version

import numpy as np
from scipy.stats import chi2
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

rng = random.Random(2929)
HERE = os.path.dirname(os.path.abspath(__file__))

vectors = {
    "generated_by": {p: version(p) for p in ["statsmodels", "scipy", "numpy"]},
    "benjamini_hochberg": [],
    "cochran_q": [],
}

for size in [1, 2, 3, 5, 8, 13, 30, 72]:
    for _ in range(3):
        ps = [rng.choice([rng.random(), rng.random() ** 6, 1.0, 0.05]) for _ in range(size)]
        if size > 3:
            ps[1] = ps[0]  # a tie
        adjusted = multipletests(ps, method="fdr_bh")[1]
        vectors["benjamini_hochberg"].append({"p_values": ps, "adjusted": [float(x) for x in adjusted]})

for k in [2, 3, 4, 6, 12]:
    for _ in range(4):
        lifts = [rng.gauss(0.05, 0.15) for _ in range(k)]
        ses = [rng.uniform(0.02, 0.2) for _ in range(k)]
        res = combine_effects(np.array(lifts), np.array([s * s for s in ses]), use_t=False)
        q = float(res.q)
        vectors["cochran_q"].append(
            {"lifts": lifts, "std_errors": ses, "q": q, "dof": k - 1, "p_value": float(chi2.sf(q, k - 1))}
        )

with open(os.path.join(HERE, "segments.json"), "w") as f:
    json.dump(vectors, f, indent=1)
    f.write("\n")
