"""The report's pictures (matplotlib, Agg, small PNGs): training-loss curves of each method
against full fine-tuning's, and score against rank."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from loft.claims.analysis import ArmResult  # noqa: E402


def _mean_curve(result: ArmResult) -> np.ndarray | None:
    curves = [r["history"]["loss"] for r in result.records.values() if r and isinstance(r.get("history"), dict)
              and r["history"].get("loss")]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.mean([c[:n] for c in curves], axis=0)


def loss_curves(results: dict[str, ArmResult], title: str, path: Path) -> Path | None:
    """Mean training loss over seeds per step, each arm at its selected lr."""
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=90)
    drawn = False
    for label, result in results.items():
        curve = _mean_curve(result)
        if curve is None:
            continue
        style = dict(color="black", lw=2.2) if result.arm.method == "full" else dict(lw=1.4)
        ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{label} (lr {result.lr:g})", **style)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel="training loss (mean over seeds)", title=title)
    return _save(fig, ax, path)


def score_vs_rank(series: dict[str, list[tuple[int, float, float]]], ylabel: str, title: str, path: Path) -> Path | None:
    """series: name -> [(rank, mean, std)]; one line per method."""
    series = {k: sorted(v) for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=90)
    for name, points in series.items():
        ranks, means, stds = zip(*points)
        ax.errorbar(ranks, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="rank", ylabel=ylabel, title=title)
    return _save(fig, ax, path)


def _save(fig, ax, path: Path) -> Path:
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
