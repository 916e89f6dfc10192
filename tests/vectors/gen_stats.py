#!/usr/bin/env python3
"""Writes tests/vectors/stats.json: reference numbers for offerlab's
statistics from gbstats 0.8 (GrowthBook's stats engine), scipy and
statsmodels. The test suite reads the committed JSON; it never runs Python.

    python3 -m venv /tmp/statsenv
    /tmp/statsenv/bin/pip install gbstats==0.8.0 scipy==1.17.1 statsmodels==0.15.0 numpy==1.26.4 pandas==1.5.3
    /tmp/statsenv/bin/python tests/vectors/gen_stats.py

Seeded: a rerun with the same packages writes the same file.

What is compared, and against what:
- compare: gbstats TwoSidedTTest / SequentialTwoSidedTTest on Proportion,
  SampleMean and Ratio statistics (relative lift, interval, dof; sequential
  p-value), the absolute interval with difference_type="absolute", and the
  fixed-horizon p-value as 2 * scipy t.sf(|t|, dof), which equals gbstats'
  2 * (1 - t.cdf) where that does not underflow.
- holm: statsmodels multipletests(method="holm").
- srm: gbstats.utils.check_srm.
- sample sizes: the design's formulas with scipy's normal quantiles, and the
  relative-lift sizes offerlab uses: the root, found by scipy's brentq, of
  the planned power (the delta method applied to the rejection margin, its
  gradient by central differences) minus the target, for fixed-horizon and
  sequential tests; independent of offerlab's closed-form gradient and
  bisection.
- zero spread: arms whose visitors all have the same value (or the same
  ratio) have a variance of exactly 0, computed here in exact rational
  arithmetic from the per-visitor values; gbstats' own answer is kept
  beside it (it reports "not computable" only when its floating-point
  variance comes out at or below 0).
- near constant: values near a million with a variance near 1, whose
  exact variance (rational arithmetic) is positive; gbstats' comparison
  beside it (its floating-point variance is off in the 6th digit).
- multi-arm: a control and two treatments, each compared by gbstats and
  Holm-adjusted by statsmodels.
- cycle consistency: two-sided z-test of two independent estimates.
- bayesian: gbstats EffectBayesianABTest with its default prior (chance to
  win, risk, credible interval) on every comparison above, some for metrics
  where lower is better.
- capped: per-visitor order values with heavy tails, capped at an absolute
  value or at a percentile of both arms pooled (numpy's linear
  interpolation, as SQL's PERCENTILE_CONT; optionally ignoring zeros), then
  gbstats' t-test and Bayesian test on the capped sums, for mean and ratio
  metrics (the cap applies to a ratio's numerator).
- cuped: gbstats RegressionAdjustedStatistic with compute_theta for
  proportion and mean metrics, fixed and sequential, and the Bayesian test
  on the adjusted statistics; the variance reduction is 1 minus the
  adjusted lift variance over the unadjusted one.
"""
import json
import math
from fractions import Fraction
import os
import random
from importlib.metadata import version

import numpy as np
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    compute_theta,
)
from gbstats.utils import check_srm
from scipy.optimize import brentq
from scipy.stats import norm, t
from statsmodels.stats.multitest import multipletests

rng = random.Random(4242)
np_rng = np.random.default_rng(4242)
HERE = os.path.dirname(os.path.abspath(__file__))


def moments_proportion(n, rate):
    conversions = int(np_rng.binomial(n, rate)) if n > 0 else 0
    return {"n": n, "sum": float(conversions), "sum_sq": float(conversions)}


def moments_mean(n, mu, sigma):
    if n <= 2000:
        # Real skewed per-visitor values (order revenue with many zeros).
        x = np.where(np_rng.random(n) < 0.3, np_rng.lognormal(math.log(mu / 0.3), sigma, n), 0.0)
        return {"n": n, "sum": float(x.sum()), "sum_sq": float((x * x).sum())}
    s = mu * n * (1 + np_rng.normal(0, 0.01))
    return {"n": n, "sum": float(s), "sum_sq": float(n * (sigma**2 + mu**2))}


def moments_ratio(n, mx, my):
    if n <= 2000:
        y = np_rng.poisson(my, n).astype(float)
        x = np.array([np_rng.gamma(2.0, mx / max(my, 1e-9) / 2.0, int(k)).sum() for k in y])
        return {"n": n, "sum": float(x.sum()), "sum_sq": float((x * x).sum()), "den_sum": float(y.sum()),
                "den_sum_sq": float((y * y).sum()), "sum_xy": float((x * y).sum())}
    sy, sx = my * n, mx * n
    vy, vx = my * 1.2, (mx * 1.5) ** 2
    cov = 0.6 * math.sqrt(vx * vy)
    return {"n": n, "sum": sx, "sum_sq": n * (vx + mx**2), "den_sum": sy, "den_sum_sq": n * (vy + my**2),
            "sum_xy": n * (cov + mx * my)}


def statistic(kind, m):
    if kind == "proportion":
        return ProportionStatistic(n=m["n"], sum=m["sum"])
    if kind == "mean":
        return SampleMeanStatistic(n=m["n"], sum=m["sum"], sum_squares=m["sum_sq"])
    return RatioStatistic(
        n=m["n"],
        m_statistic=SampleMeanStatistic(n=m["n"], sum=m["sum"], sum_squares=m["sum_sq"]),
        d_statistic=SampleMeanStatistic(n=m["n"], sum=m["den_sum"], sum_squares=m["den_sum_sq"]),
        m_d_sum_of_products=m["sum_xy"],
    )


def compare_case(kind, mc, mt, alpha, sequential, tuning):
    a, b = statistic(kind, mc), statistic(kind, mt)
    if sequential:
        test = SequentialTwoSidedTTest(a, b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning))
        abs_test = SequentialTwoSidedTTest(statistic(kind, mc), statistic(kind, mt),
                                           SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning,
                                                            difference_type="absolute"))
    else:
        test = TwoSidedTTest(a, b, FrequentistConfig(alpha=alpha))
        abs_test = TwoSidedTTest(statistic(kind, mc), statistic(kind, mt),
                                 FrequentistConfig(alpha=alpha, difference_type="absolute"))
    r = test.compute_result()
    ra = abs_test.compute_result()
    computable = r.error_message is None
    if computable and not sequential:
        p = float(2 * t.sf(abs(test.critical_value), test.dof))
        assert r.p_value == 0 or abs(r.p_value - p) <= 1e-9 + 1e-6 * p, (r.p_value, p)
    else:
        p = float(r.p_value)
    return {
        "kind": kind, "control": mc, "treatment": mt, "alpha": alpha,
        "sequential": sequential, "tuning": tuning,
        "computable": computable,
        "relative_lift": float(r.expected), "ci": [float(r.ci[0]), float(r.ci[1])],
        "absolute_ci": [float(ra.ci[0]), float(ra.ci[1])] if computable else [0.0, 0.0],
        "p_value": p,
        "dof": float(test.dof) if computable else 0.0,
    }


vectors = {"references": f"gbstats {version('gbstats')}, scipy {version('scipy')}, statsmodels {version('statsmodels')}",
           "compare": [], "holm": [], "srm": [], "sample_size_proportion": [], "sample_size_mean": [],
           "consistency": []}

SIZES = [(12, 15), (50, 50), (200, 150), (1_000, 1_000), (5_000, 2_000), (40_000, 40_000), (200_000, 100_000),
         (3_000_000, 3_000_000)]
for i in range(360):
    kind = ["proportion", "mean", "ratio"][i % 3]
    na, nb = rng.choice(SIZES)
    if rng.random() < 0.5:
        na, nb = nb, na
    lift = rng.choice([0.0, 0.02, 0.1, 0.3, -0.1])
    alpha = rng.choice([0.05, 0.05, 0.1, 0.01])
    sequential = rng.random() < 0.35
    tuning = rng.choice([5000.0, 1000.0, 50000.0])
    if kind == "proportion":
        base = rng.choice([0.04, 0.1, 0.3])
        mc, mt = moments_proportion(na, base), moments_proportion(nb, base * (1 + lift))
    elif kind == "mean":
        mu, sigma = rng.choice([(12.0, 1.0), (40.0, 0.8)])
        mc, mt = moments_mean(na, mu, sigma), moments_mean(nb, mu * (1 + lift), sigma)
    else:
        mx, my = rng.choice([(60.0, 0.3), (90.0, 1.1)])
        mc, mt = moments_ratio(na, mx, my), moments_ratio(nb, mx * (1 + lift), my)
    vectors["compare"].append(compare_case(kind, mc, mt, alpha, sequential, tuning))

# Edge cases: zero conversions, zero variance, zero control mean, one visitor,
# and a p-value far below what 1 - cdf can represent.
edges = [
    ("proportion", {"n": 1000, "sum": 0.0, "sum_sq": 0.0}, {"n": 1000, "sum": 0.0, "sum_sq": 0.0}),
    ("proportion", {"n": 1000, "sum": 0.0, "sum_sq": 0.0}, {"n": 1000, "sum": 12.0, "sum_sq": 12.0}),
    ("proportion", {"n": 1000, "sum": 12.0, "sum_sq": 12.0}, {"n": 1000, "sum": 0.0, "sum_sq": 0.0}),
    ("mean", {"n": 500, "sum": 2500.0, "sum_sq": 12500.0}, {"n": 500, "sum": 2600.0, "sum_sq": 14000.0}),
    ("mean", {"n": 1, "sum": 30.0, "sum_sq": 900.0}, {"n": 1, "sum": 45.0, "sum_sq": 2025.0}),
    ("proportion", {"n": 1, "sum": 1.0, "sum_sq": 1.0}, {"n": 1, "sum": 0.0, "sum_sq": 0.0}),
    ("proportion", {"n": 1_000_000, "sum": 10_000.0, "sum_sq": 10_000.0},
     {"n": 1_000_000, "sum": 15_500.0, "sum_sq": 15_500.0}),
    ("ratio", {"n": 300, "sum": 0.0, "sum_sq": 0.0, "den_sum": 0.0, "den_sum_sq": 0.0, "sum_xy": 0.0},
     {"n": 300, "sum": 900.0, "sum_sq": 9000.0, "den_sum": 20.0, "den_sum_sq": 24.0, "sum_xy": 1000.0}),
]
for kind, mc, mt in edges:
    for sequential in (False, True):
        case = compare_case(kind, mc, mt, 0.05, sequential, 5000.0)
        case["edge"] = True
        vectors["compare"].append(case)

for _ in range(60):
    m = rng.randint(1, 6)
    ps = [rng.choice([rng.random(), rng.random() * 0.05, rng.random() * 1e-4]) for _ in range(m)]
    vectors["holm"].append({"p_values": ps, "adjusted": [float(x) for x in multipletests(ps, method="holm")[1]]})

for _ in range(60):
    k = rng.randint(2, 4)
    weights = rng.choice([[1 / k] * k, [0.2, 0.8] + [0.0] * (k - 2)])
    weights = weights[:k] if len(weights) >= k else weights + [0.0] * (k - len(weights))
    total = rng.choice([20, 500, 10_000, 1_000_000])
    skew = rng.choice([1.0, 1.0, 1.02, 1.1, 1.22])
    counts = [int(np_rng.poisson(total * w * (skew if i == 0 else 1.0))) for i, w in enumerate(weights)]
    vectors["srm"].append({"counts": counts, "weights": weights, "p_value": float(check_srm(counts, weights))})
vectors["srm"].append({"counts": [5500, 4500], "weights": [0.5, 0.5], "p_value": float(check_srm([5500, 4500], [0.5, 0.5]))})

for _ in range(60):
    p1 = rng.choice([0.01, 0.04, 0.1, 0.25, 0.5])
    mde = rng.choice([0.05, 0.1, 0.2])
    alpha = rng.choice([0.05, 0.025, 0.1])
    power = rng.choice([0.8, 0.9])
    p2 = p1 * (1 + mde)
    pbar = (p1 + p2) / 2
    n = (norm.ppf(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar))
         + norm.ppf(power) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p2 - p1) ** 2
    vectors["sample_size_proportion"].append({"p1": p1, "mde": mde, "alpha": alpha, "power": power, "n": n})

for _ in range(40):
    mu, sigma = rng.choice([(12.0, 30.0), (55.0, 80.0), (3.0, 2.0)])
    mde, alpha, power = rng.choice([0.05, 0.1]), rng.choice([0.05, 0.025]), rng.choice([0.8, 0.9])
    n = 2 * sigma**2 * (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2 / (mde * mu) ** 2
    vectors["sample_size_mean"].append({"mu": mu, "sigma": sigma, "mde": mde, "alpha": alpha, "power": power, "n": n})

for _ in range(40):
    l1, l2 = rng.uniform(-0.2, 0.4), rng.uniform(-0.2, 0.4)
    s1, s2 = rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2)
    z = (l1 - l2) / math.sqrt(s1**2 + s2**2)
    vectors["consistency"].append({"lift1": l1, "se1": s1, "lift2": l2, "se2": s2, "p_value": float(2 * norm.sf(abs(z)))})


def sequential_half_width_factor(n_total, alpha, tuning):
    l = -2 * math.log(alpha)
    rho = math.sqrt((l + math.log(l + 1)) / tuning)
    nr2 = n_total * rho * rho + 1
    return math.sqrt(2 * nr2 * math.log(math.sqrt(nr2) / alpha) / (n_total * rho) ** 2)


def planned_power(c, t, n, k):
    """Power of one look: the delta method applied to the rejection margin
    h = (m2 - m1) - k * sqrt(V/n), V = v2 + v1 * (m2/m1)^2, each arm given as
    (mean, variance, d variance / d mean). Derivatives by central
    differences, independently of offerlab's closed-form gradient."""
    def h(m1, m2):
        v1 = c[1] + c[2] * (m1 - c[0])
        v2 = t[1] + t[2] * (m2 - t[0])
        return m2 - m1 - k * math.sqrt((v2 + v1 * (m2 / m1) ** 2) / n)
    e1, e2 = 1e-6 * c[0], 1e-6 * t[0]
    g1 = (h(c[0] + e1, t[0]) - h(c[0] - e1, t[0])) / (2 * e1)
    g2 = (h(c[0], t[0] + e2) - h(c[0], t[0] - e2)) / (2 * e2)
    sd = math.sqrt((g1 * g1 * c[1] + g2 * g2 * t[1]) / n)
    return norm.cdf(h(c[0], t[0]) / sd)


def sample_size_relative(c, t, a, power, sequential, tuning):
    k = (lambda n: math.sqrt(2 * n) * sequential_half_width_factor(2 * n, a, tuning)) if sequential \
        else (lambda n: norm.ppf(1 - a / 2))
    return brentq(lambda n: planned_power(c, t, n, k(n)) - power, 2.0, 1e13, xtol=1e-9, rtol=1e-13, maxiter=500)


def proportion_arm(p):
    return (p, p * (1 - p), 1 - 2 * p)


vectors["sample_size_relative"] = []
for p1 in [0.01, 0.04, 0.2]:
    for mde in [0.05, 0.1, 0.3]:
        for a, power in [(0.05, 0.8), (0.025, 0.9)]:
            for sequential, tuning in [(False, 5000.0), (True, 5000.0), (True, 50000.0)]:
                n = sample_size_relative(proportion_arm(p1), proportion_arm(p1 * (1 + mde)), a, power, sequential, tuning)
                vectors["sample_size_relative"].append({"kind": "proportion", "mu": p1, "sigma": None, "mde": mde,
                                                        "alpha": a, "power": power, "sequential": sequential,
                                                        "tuning": tuning, "n": n})
for mu, sigma in [(12.0, 30.0), (55.0, 80.0)]:
    for mde in [0.05, 0.2]:
        for sequential in (False, True):
            n = sample_size_relative((mu, sigma**2, 0.0), (mu * (1 + mde), sigma**2, 0.0), 0.05, 0.8, sequential, 5000.0)
            vectors["sample_size_relative"].append({"kind": "mean", "mu": mu, "sigma": sigma, "mde": mde, "alpha": 0.05,
                                                    "power": 0.8, "sequential": sequential, "tuning": 5000.0, "n": n})


def arm_of(values, denominators=None):
    """Float sums of per-visitor values (as offerlab keeps them), and the
    exact per-visitor variance of the metric in rational arithmetic."""
    n = len(values)
    m = {"n": n, "sum": float(sum(values)), "sum_sq": float(sum(x * x for x in values))}
    xs = [Fraction(x) for x in values]
    if denominators is None:
        mean = sum(xs) / n
        exact = sum((x - mean) ** 2 for x in xs) / (n - 1)
    else:
        ys = [Fraction(y) for y in denominators]
        m.update(den_sum=float(sum(denominators)), den_sum_sq=float(sum(y * y for y in denominators)),
                 sum_xy=float(sum(x * y for x, y in zip(values, denominators))))
        mx, my = sum(xs) / n, sum(ys) / n
        vx = sum((x - mx) ** 2 for x in xs) / (n - 1)
        vy = sum((y - my) ** 2 for y in ys) / (n - 1)
        c = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (n - 1)
        exact = vx / my**2 - 2 * c * mx / my**3 + mx**2 * vy / my**4
    return m, float(exact)


def one_orderer(n, value):
    return arm_of([value] + [0.0] * (n - 1), [1.0] + [0.0] * (n - 1))


spread = arm_of([30.0] * 10 + [60.0] * 10 + [0.0] * 980, [1.0] * 20 + [0.0] * 980)
zero_spread_arms = [
    ("mean", arm_of([12.5] * 1000), arm_of([10.0] * 500 + [16.2] * 500)),
    ("mean", arm_of([0.1] * 800), arm_of([0.1] * 400 + [0.2] * 400)),
    ("mean", arm_of([19.99] * 3000), arm_of([19.99] * 2990 + [25.0] * 10)),
    ("ratio", one_orderer(1000, 50.0), spread),
    ("ratio", one_orderer(5000, 87.3), spread),
    ("ratio", one_orderer(977, 19.99), one_orderer(1013, 64.5)),
    ("ratio", arm_of([40.0] * 30 + [0.0] * 970, [2.0] * 30 + [0.0] * 970), spread),
]
vectors["zero_spread"] = []
for kind, (mc, vc), (mt, vt) in zero_spread_arms:
    case = compare_case(kind, mc, mt, 0.05, False, 5000.0)
    vectors["zero_spread"].append({"kind": kind, "control": mc, "treatment": mt, "exact_variance": [vc, vt],
                                   "gbstats_computable": case["computable"]})

# Three arms: one treatment clearly worse, one no different.
def conversions(n, c):
    return {"n": n, "sum": float(c), "sum_sq": float(c)}


multi = {"control": conversions(20_000, 1_000), "treatments": [conversions(20_000, 610), conversions(20_000, 1_003)]}
multi["results"] = [compare_case("proportion", multi["control"], t_, 0.05, False, 5000.0) for t_ in multi["treatments"]]
multi["holm"] = [float(x) for x in multipletests([r["p_value"] for r in multi["results"]], method="holm")[1]]
vectors["multi_arm"] = multi


# An example aggregates file for `offerlab analyze` on
# experiments/cart-protection-copy.toml (sequential, alpha 0.05, tuning 5000),
# simulated per visitor over three weeks, and gbstats' numbers for it.
def example_aggregates():
    import datetime

    metrics = ["cart_offer_acceptance", "order_conversion", "return_rate", "upsell_acceptance", "revenue_per_visitor",
               "average_order_value"]
    kinds = {"cart_offer_acceptance": "proportion", "upsell_acceptance": "proportion", "order_conversion": "proportion",
             "revenue_per_visitor": "mean", "average_order_value": "ratio", "return_rate": "ratio"}
    start = datetime.date(2026, 11, 2)
    rows, totals = [], {}
    for day in range(21):
        date = (start + datetime.timedelta(days=day)).isoformat()
        weekend = (start + datetime.timedelta(days=day)).weekday() >= 5
        for variant, upsell in [("control", 0.04), ("benefit", 0.047)]:
            n = int(np_rng.poisson(520 if weekend else 400))
            orders = np_rng.poisson(0.35, n).astype(float)
            value = np.array([np_rng.lognormal(math.log(60), 0.7, int(k)).sum() for k in orders])
            accepted = (np_rng.random(n) < upsell).astype(float)
            returns = np.array([np_rng.binomial(int(k), 0.08) for k in orders]).astype(float)
            per_metric = {
                "cart_offer_acceptance": (accepted, None),
                "upsell_acceptance": (np.maximum(accepted, (np_rng.random(n) < 0.1).astype(float)), None),
                "order_conversion": ((orders > 0).astype(float), None),
                "revenue_per_visitor": (value, None),
                "average_order_value": (value, orders),
                "return_rate": (returns, orders),
            }
            for metric in metrics:
                x, y = per_metric[metric]
                row = {"variant": variant, "date": date, "metric": metric, "n": n, "sum": float(x.sum()),
                       "sum_sq": float((x * x).sum())}
                if y is not None:
                    row.update(den_sum=float(y.sum()), den_sum_sq=float((y * y).sum()), sum_xy=float((x * y).sum()))
                rows.append(row)
                t_ = totals.setdefault((metric, variant), {"n": 0, "sum": 0.0, "sum_sq": 0.0, "den_sum": 0.0,
                                                           "den_sum_sq": 0.0, "sum_xy": 0.0})
                for k in t_:
                    t_[k] += row.get(k, 0.0)
    with open(os.path.join(HERE, "example-aggregates.csv"), "w") as f:
        f.write("variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy\n")
        for r in rows:
            f.write(",".join(str(r.get(k, "")) for k in
                             ["variant", "date", "metric", "n", "sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy"]) + "\n")
    reference = {"experiment": "cart-protection-copy", "now": "2026-11-23", "metrics": {}}
    for metric in metrics:
        c = compare_case(kinds[metric], totals[(metric, "control")], totals[(metric, "benefit")], 0.05, True, 5000.0)
        reference["metrics"][metric] = {k: c[k] for k in ["relative_lift", "ci", "p_value"]}
    n = [totals[("cart_offer_acceptance", v)]["n"] for v in ["control", "benefit"]]
    reference["srm_p_value"] = float(check_srm(n, [0.5, 0.5]))
    p1 = totals[("cart_offer_acceptance", "control")]["sum"] / n[0]
    p2 = p1 * 1.1
    # The test is sequential (tuning 5000): sized for its relative lift.
    reference["sample_size"] = sample_size_relative(proportion_arm(p1), proportion_arm(p2), 0.05, 0.8, True, 5000.0)
    return reference


vectors["example_report"] = example_aggregates()


# Revenue-grade metrics. Each section draws from its own generator, so the
# sections above keep their numbers.
def bayesian_case(kind_stat_a, kind_stat_b, alpha, inverse):
    """gbstats' EffectBayesianABTest with its default (improper, so
    uninformative) prior on the relative lift."""
    r = EffectBayesianABTest(kind_stat_a, kind_stat_b, EffectBayesianConfig(alpha=alpha, inverse=inverse)).compute_result()
    return {"chance_to_win": float(r.chance_to_win), "risk": [float(r.risk[0]), float(r.risk[1])],
            "ci": [float(r.ci[0]), float(r.ci[1])], "computable": r.error_message is None}


vectors["bayesian"] = []
bayes_rng = random.Random(1601)
for i, c in enumerate(vectors["compare"]):
    inverse = bayes_rng.random() < 0.3
    case = {"kind": c["kind"], "control": c["control"], "treatment": c["treatment"], "alpha": c["alpha"],
            "inverse": inverse}
    case.update(bayesian_case(statistic(c["kind"], c["control"]), statistic(c["kind"], c["treatment"]), c["alpha"],
                              inverse))
    vectors["bayesian"].append(case)


def sums(x, y=None):
    m = {"n": len(x), "sum": float(x.sum()), "sum_sq": float((x * x).sum())}
    if y is not None:
        m.update(den_sum=float(y.sum()), den_sum_sq=float((y * y).sum()), sum_xy=float((x * y).sum()))
    return m


def result_fields(test_result, test=None):
    out = {"relative_lift": float(test_result.expected), "ci": [float(test_result.ci[0]), float(test_result.ci[1])],
           "p_value": float(test_result.p_value)}
    if test is not None and test_result.error_message is None:
        out["dof"] = float(test.dof)
    return out


cap_rng = np.random.default_rng(1602)


def order_values(n, heavy):
    """Per-visitor order value in cents-rounded money: most visitors buy
    nothing, buyers spend a lognormal amount, and with `heavy` a few
    wholesale orders are fifty times larger."""
    orders = cap_rng.poisson(0.35, n)
    x = np.array([cap_rng.lognormal(math.log(60), 0.8, int(k)).sum() for k in orders])
    if heavy:
        x = np.where(cap_rng.random(n) < 0.004, x + cap_rng.lognormal(math.log(3000), 0.5, n), x)
    return np.round(x, 2), orders.astype(float)


vectors["capped"] = []
CAPS = [{"absolute": 500.0}, {"absolute": 120.0}, {"percentile": 0.99, "ignore_zeros": False},
        {"percentile": 0.95, "ignore_zeros": True}, {"percentile": 0.5, "ignore_zeros": True},
        {"percentile": 0.999, "ignore_zeros": False}]
for kind in ["mean", "ratio"]:
    for cap in CAPS:
        for (na, nb), lift in [((400, 380), 0.0), ((1500, 1600), 0.15)]:
            xa, ya = order_values(na, True)
            xb, yb = order_values(nb, True)
            xb = np.round(xb * (1 + lift), 2)
            if "absolute" in cap:
                cap_value = cap["absolute"]
            else:
                pooled = np.concatenate([xa, xb])
                if cap["ignore_zeros"]:
                    pooled = pooled[pooled != 0]
                # PERCENTILE_CONT: linear interpolation between order statistics.
                cap_value = float(np.quantile(pooled, cap["percentile"]))
            ca, cb = np.minimum(xa, cap_value), np.minimum(xb, cap_value)
            ma, mb = (sums(ca), sums(cb)) if kind == "mean" else (sums(ca, ya), sums(cb, yb))
            sa, sb = statistic(kind, ma), statistic(kind, mb)
            test = TwoSidedTTest(sa, sb, FrequentistConfig(alpha=0.05))
            case = {"kind": kind, "cap": cap, "values": [xa.tolist(), xb.tolist()],
                    "denominators": [ya.tolist(), yb.tolist()] if kind == "ratio" else None,
                    "cap_value": cap_value, "capped_visitors": int((xa > cap_value).sum() + (xb > cap_value).sum()),
                    "moments": [ma, mb]}
            case.update(result_fields(test.compute_result(), test))
            case["bayesian"] = bayesian_case(statistic(kind, ma), statistic(kind, mb), 0.05, False)
            vectors["capped"].append(case)

cuped_rng = np.random.default_rng(1603)


def cuped_arm(kind, n, lift, rho):
    """Post- and pre-period per-visitor values of returning customers with
    correlation about `rho`, and their sufficient statistics."""
    if kind == "proportion":
        pre = (cuped_rng.random(n) < 0.2).astype(float)
        p = np.where(pre == 1, 0.2 + 0.6 * rho, 0.2 - 0.15 * rho) * (1 + lift)
        x = (cuped_rng.random(n) < p).astype(float)
    else:
        base = cuped_rng.lognormal(math.log(40), 0.9, n)
        pre = np.round(np.where(cuped_rng.random(n) < 0.6, base * cuped_rng.lognormal(0, 0.3, n), 0.0), 2)
        noise = cuped_rng.lognormal(math.log(40), 0.9, n)
        x = np.round(np.where(cuped_rng.random(n) < 0.6, (rho * base + (1 - rho) * noise) * (1 + lift), 0.0), 2)
    m = sums(x)
    m.update(pre_sum=float(pre.sum()), pre_sum_sq=float((pre * pre).sum()), sum_x_pre=float((x * pre).sum()))
    return m


def adjusted_statistic(kind, m):
    if kind == "proportion":
        post, pre = ProportionStatistic(n=m["n"], sum=m["sum"]), ProportionStatistic(n=m["n"], sum=m["pre_sum"])
    else:
        post = SampleMeanStatistic(n=m["n"], sum=m["sum"], sum_squares=m["sum_sq"])
        pre = SampleMeanStatistic(n=m["n"], sum=m["pre_sum"], sum_squares=m["pre_sum_sq"])
    return RegressionAdjustedStatistic(n=m["n"], post_statistic=post, pre_statistic=pre,
                                       post_pre_sum_of_products=m["sum_x_pre"], theta=0)


vectors["cuped"] = []
for kind in ["proportion", "mean"]:
    for n, lift, rho in [(300, 0.0, 0.5), (2_000, 0.1, 0.7), (20_000, 0.0, 0.3), (50_000, 0.05, 0.8),
                         (5_000, 0.05, 0.0)]:
        for sequential in (False, True):
            ma, mb = cuped_arm(kind, n, 0.0, rho), cuped_arm(kind, int(n * 1.05), lift, rho)
            sa, sb = adjusted_statistic(kind, ma), adjusted_statistic(kind, mb)
            theta = compute_theta(sa, sb)
            sa.theta, sb.theta = theta, theta
            if sequential:
                test = SequentialTwoSidedTTest(sa, sb, SequentialConfig(alpha=0.05, sequential_tuning_parameter=5000))
            else:
                test = TwoSidedTTest(sa, sb, FrequentistConfig(alpha=0.05))
            unadjusted = TwoSidedTTest(statistic(kind, ma), statistic(kind, mb), FrequentistConfig(alpha=0.05))
            case = {"kind": kind, "control": ma, "treatment": mb, "sequential": sequential, "theta": float(theta),
                    "variance_reduction": float(1 - test.variance / unadjusted.variance)}
            case.update(result_fields(test.compute_result(), test))
            # gbstats' Bayesian test takes the adjusted statistics too.
            ba, bb = adjusted_statistic(kind, ma), adjusted_statistic(kind, mb)
            ba.theta, bb.theta = theta, theta
            case["bayesian"] = bayesian_case(ba, bb, 0.05, False)
            vectors["cuped"].append(case)


# Values near a million with a variance near 1: the sums agree with a
# constant arm's to 13 digits, yet the variance is positive in exact
# arithmetic (and in gbstats). 1,000 visitors at 1,000,000 + d with
# d in {+1, -1, +0.5, 0}: sum 1,000,000,037 and sum of squares
# 1,000,000,074,000,900 for the control.
def near_million(up, down, half, n=1000):
    return [1_000_001.0] * up + [999_999.0] * down + [1_000_000.5] * half + [1_000_000.0] * (n - up - down - half)


near_arms = [(near_million(467, 432, 4), near_million(480, 420, 4)),
             (near_million(467, 432, 4), near_million(467, 432, 4)[:-1] + [1_000_003.0])]
vectors["near_constant"] = []
for values_c, values_t in near_arms:
    (mc, vc), (mt, vt) = arm_of(values_c), arm_of(values_t)
    case = compare_case("mean", mc, mt, 0.05, False, 5000.0)
    case["exact_variance"] = [float(vc), float(vt)]
    vectors["near_constant"].append(case)
assert vectors["near_constant"][0]["control"]["sum"] == 1_000_000_037.0
assert vectors["near_constant"][0]["control"]["sum_sq"] == 1_000_000_074_000_900.0

with open(os.path.join(HERE, "stats.json"), "w") as f:
    json.dump(vectors, f, indent=1)
total = sum(len(v) for v in vectors.values() if isinstance(v, list))
print(f"wrote {total} vectors ({len(vectors['compare'])} comparisons)")
