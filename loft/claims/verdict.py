"""The verdict rule: a paired difference over seeds, its mean and 95% t-interval, and what it says.

Every comparison is reduced to one number per seed, oriented so that a positive value is the
paper's claimed direction (e.g. LoFT's score minus LoRA's, or LoRA's distance to full
fine-tuning minus LoFT's). Same seed = same data order and head initialisation across methods,
so the differences are paired. The rule is fixed before the runs:

- directional claims: `holds` when the whole interval is above 0, `does not hold` when it is
  below 0, else `inconclusive at this scale`;
- equivalence claims ("within noise", "does not move"), with a margin m written in the claim
  file: `holds` when the interval lies inside (-m, m), `does not hold` when it lies wholly
  outside [-m, m], else inconclusive;
- difference claims ("LoRA's result does move"), the mirror image: `holds` when the interval
  lies wholly outside [-m, m], `does not hold` when inside (-m, m), else inconclusive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive at this scale"
NOT_RUN = "not run"
TESTS = ("greater", "equivalent", "differs")
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def paired_interval(diffs, level: float = LEVEL) -> Interval:
    """Mean of the per-seed differences and its two-sided t-interval (n-1 degrees of freedom)."""
    d = np.asarray(list(diffs), dtype=float)
    if d.size < 2 or not np.all(np.isfinite(d)):
        return Interval(float(np.mean(d)) if d.size else math.nan, math.nan, math.nan, int(d.size))
    mean, sem = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1)) * sem
    return Interval(mean, mean - half, mean + half, int(d.size))


def verdict(interval: Interval, test: str = "greater", margin: float | None = None) -> str:
    """The verdict of `interval` (oriented: positive = the claimed direction) under `test`."""
    if test not in TESTS:
        raise ValueError(f"test {test!r}: use one of {', '.join(TESTS)}")
    if interval.n == 0:
        return NOT_RUN
    if math.isnan(interval.low):  # one seed (or a non-finite difference): no interval
        return OPEN
    lo, hi = interval.low, interval.high
    if test == "greater":
        return HOLDS if lo > 0 else FAILS if hi < 0 else OPEN
    if margin is None or margin <= 0:
        raise ValueError(f"test {test!r} needs a positive margin written in the claim file")
    inside, outside = -margin < lo and hi < margin, hi < -margin or lo > margin
    if test == "equivalent":
        return HOLDS if inside else FAILS if outside else OPEN
    return HOLDS if outside else FAILS if inside else OPEN


def combine(verdicts: list[str]) -> str:
    """A claim with several comparisons: holds when all hold, does not hold when any fails."""
    if not verdicts or NOT_RUN in verdicts:
        return NOT_RUN
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else OPEN
