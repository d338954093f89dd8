"""Unbiased pass@k (Chen et al. 2021) against its closed form 1 - C(n-c, k) / C(n, k)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tasks.code import mean_pass_at_k, pass_at_k  # noqa: E402


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 50, 200])
def test_matches_closed_form_on_a_grid(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)


def test_edge_cases():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)          # pass@1 = c / n
    assert pass_at_k(10, 1, 10) == 1.0                         # n - c < k: some draw contains the pass
    assert pass_at_k(10, 5, 6) == 1.0
    assert pass_at_k(1, 1, 1) == 1.0


def test_stable_where_the_binomials_overflow_floats():
    n, c, k = 5000, 7, 200
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)          # exact integers, then one division
    assert math.comb(n, k) > 10 ** 308                          # beyond float range
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("n,c,k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_invalid_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_over_problems():
    counts = [(10, 0), (10, 10), (10, 5)]
    assert mean_pass_at_k(counts, 1) == pytest.approx((0 + 1 + 0.5) / 3)
    assert mean_pass_at_k(counts, 5) == pytest.approx((0 + 1 + closed_form(10, 5, 5)) / 3)
