"""Figures from the records' histories (matplotlib, headless).

- curves: training loss (or perplexity = exp(loss)) per method, one figure per model that has
  records of at least two of the figure's methods on its task; mean over seeds with the min–max band; optional centred
  moving average with the raw curve shaded beneath (the paper's Figures 6–8). With
  `eval_metric`, a right panel shows evaluation curves when the records hold them
  (history keys eval_step/eval_<metric>, or a columnar `eval_history`), otherwise the final
  evaluation of each method as a point at its last step.
- rankwise: the average of a table column against rank, LoFT vs each baseline (Figure 3),
  ours solid, the paper's dashed.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from loft.tables.build import Builder, Selector
from loft.tables.records import Record, RecordIndex
from loft.tables.spec import Specs

COLORS = {"full": "black", "lora": "tab:blue", "dora": "tab:red", "loft": "tab:purple", "loft_noalt": "tab:orange",
          "loft_nocal": "tab:green", "loft_noalt_nocal": "tab:brown", "loft_simple": "tab:pink", "rslora": "tab:cyan",
          "adalora": "tab:olive", "lora_ga": "tab:gray", "loraplus": "gold"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def moving_average(values: list[float], window: int) -> list[float]:
    """Centred moving average; the window shrinks at the ends (no padding)."""
    if window <= 1:
        return list(values)
    half = window // 2
    return [statistics.fmean(values[max(0, i - half): i + half + 1]) for i in range(len(values))]


def seed_curves(records: dict[int, Record], key: str, transform=None) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean, min and max over seeds of history[key], on the steps every seed has."""
    per_seed = []
    for rec in records.values():
        hist = rec.data.get("history") or {}
        steps, vals = hist.get("step") or [], hist.get(key) or []
        per_seed.append({s: v for s, v in zip(steps, vals) if isinstance(v, (int, float)) and math.isfinite(v)})
    common = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    mean, lo, hi = [], [], []
    for s in common:
        vs = [transform(p[s]) if transform else p[s] for p in per_seed]
        mean.append(statistics.fmean(vs))
        lo.append(min(vs))
        hi.append(max(vs))
    return common, mean, lo, hi


def eval_curve(records: dict[int, Record], metric: str) -> tuple[list[int], list[float]] | None:
    """An evaluation curve if the records hold one (first seed), else None."""
    for rec in records.values():
        hist = rec.data.get("history") or {}
        if hist.get("eval_step") and hist.get(f"eval_{metric}"):
            pairs = [(s, v) for s, v in zip(hist["eval_step"], hist[f"eval_{metric}"]) if v is not None]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        ev = rec.data.get("eval_history") or {}
        if ev.get("step") and ev.get(metric):
            return list(ev["step"]), list(ev[metric])
    return None


def _models(index: RecordIndex, task: str, fig: dict) -> list[str]:
    if fig.get("models"):
        return list(fig["models"])
    return sorted({k[1] for k in index.groups if k[0] == task})


def _group(index: RecordIndex, task: str, model: str, method: str, rank: int | None) -> dict[int, Record]:
    return index.get(task, model, method, None if method == "full" else rank)


def curves_figure(name: str, fig: dict, specs: Specs, index: RecordIndex, out_dir: Path) -> list[Path]:
    """One figure per (task, model); `task` may be a list: the paper's task, then stand-in tasks
    of the CPU miniatures (files named after the task: figure5_fashion_mnist_<model>.png)."""
    tasks = fig["task"] if isinstance(fig["task"], list) else [fig["task"]]
    written = []
    for i, task in enumerate(tasks):
        stem = name if i == 0 else f"{name.split('_')[0]}_{task.removeprefix('image_')}"  # figure5_fashion_mnist
        written += _curves(stem, {**fig, "task": task}, specs, index, out_dir)
    return written


def _curves(name: str, fig: dict, specs: Specs, index: RecordIndex, out_dir: Path) -> list[Path]:
    plt = _pyplot()
    task, rank, written = fig["task"], fig.get("rank"), []
    perplexity = fig.get("y") == "perplexity"
    transform = (lambda x: math.exp(min(x, 50.0))) if perplexity else None
    for model in _models(index, task, fig):
        groups = {m: _group(index, task, model, m, rank) for m in fig["methods"]}
        groups = {m: g for m, g in groups.items() if g}
        if len(groups) < 2:  # a comparison needs two methods (Figure 6 is not drawn from LoFT alone)
            continue
        eval_metric = fig.get("eval_metric")
        fig_, axes = plt.subplots(1, 2 if eval_metric else 1, figsize=(11 if eval_metric else 6, 4), squeeze=False)
        ax = axes[0][0]
        for method, recs in groups.items():
            steps, mean, lo, hi = seed_curves(recs, "loss", transform)
            if not steps:
                continue
            color = COLORS.get(method)
            label = specs.method_label(method) + (f" ({len(recs)} seeds)" if len(recs) > 1 else "")
            window = int(fig.get("smooth", 1))
            if window > 1:
                ax.plot(steps, mean, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(steps, moving_average(mean, window), color=color, label=label)
            else:
                ax.plot(steps, mean, color=color, label=label)
            if len(recs) > 1:
                ax.fill_between(steps, lo, hi, color=color, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel("training perplexity" if perplexity else "training loss")
        if fig.get("log_y") or perplexity:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_title(f"{specs.model_label(model)}" + (f", r = {rank}" if rank else ""))
        if eval_metric:
            _eval_panel(axes[0][1], fig, specs, index, model, groups, eval_metric)
        fig_.suptitle(fig.get("title", name), fontsize=10)
        fig_.tight_layout()
        path = out_dir / (f"{name}.png" if fig.get("models") and len(fig["models"]) == 1 else f"{name}_{model}.png")
        fig_.savefig(path, dpi=120)
        plt.close(fig_)
        written.append(path)
    return written


def _eval_panel(ax, fig, specs, index, model, groups, metric):
    finals = False
    for method, recs in groups.items():
        color = COLORS.get(method)
        curve = eval_curve(recs, metric)
        if curve:
            ax.plot(*curve, color=color, marker="o", markersize=3, label=specs.method_label(method))
            continue
        vals = [r.data["metrics"][metric] for r in recs.values() if metric in (r.data.get("metrics") or {})]
        steps = [r.data.get("steps") or len((r.data.get("history") or {}).get("step") or []) for r in recs.values()]
        if vals:
            ax.scatter([max(steps)], [statistics.fmean(vals)], color=color, label=specs.method_label(method))
            finals = True
    zero = index.get(fig["task"], model, "full", None, "zero_shot")
    if zero:
        vals = [r.data["metrics"][metric] for r in zero.values() if metric in r.data.get("metrics", {})]
        if vals:
            ax.axhline(statistics.fmean(vals), linestyle="--", color="gray", label="zero-shot (ours)")
    table_name = (fig.get("zero_shot_from") or {}).get(model)
    if table_name:
        from loft.tables.paper import load_paper_table

        paper = load_paper_table(specs.tables[table_name].paper)
        value = paper.value(model, "zero_shot", None, metric)
        if value is not None:
            ax.axhline(value, linestyle=":", color="gray", label=f"zero-shot (paper, {value})")
    ax.set_xlabel("step")
    ax.set_ylabel(f"evaluation {metric}")
    ax.set_title("evaluation" + (" (final only: the records hold no eval curve)" if finals else ""), fontsize=9)
    ax.legend(fontsize=8)


def rankwise_figure(name: str, fig: dict, specs: Specs, index: RecordIndex, out_dir: Path,
                    methods: set[str] | None = None) -> list[Path]:
    plt = _pyplot()
    builders = [Builder(specs.tables[t], specs, index, methods) for t in fig["tables"]]
    column, method, baselines = fig["column"], fig["method"], fig["baselines"]
    tasks = set().union(*(b.spec.tasks for b in builders))
    models = sorted({k[1] for k in index.groups if k[0] in tasks and k[2] in {method, *baselines}})
    written = []

    def ours(model, m, rank):
        for b in builders:
            vals, _ = b.values(b.by_key[column], Selector(model, m, rank))
            if vals:
                return statistics.fmean(vals.values())
        return None

    def paper(m, rank):
        for b in builders:
            if b.paper is not None:
                row = b.paper.find(fig["paper_model"], m, rank)
                if row is not None and row.cells[column].value is not None:
                    return row.cells[column].value
        return None

    paper_ranks = {r.rank for b in builders if b.paper for r in b.paper.rows if r.rank is not None}
    for model in models:
        ranks = sorted(paper_ranks | {k[3] for k in index.groups if k[0] in tasks and k[1] == model
                                      and k[2] in {method, *baselines} and k[3] is not None})
        fig_, axes = plt.subplots(1, len(baselines), figsize=(5 * len(baselines), 4), squeeze=False)
        for ax, base in zip(axes[0], baselines):
            for m, color in ((method, COLORS.get(method)), (base, COLORS.get(base))):
                mine = [(r, ours(model, m, r)) for r in ranks]
                mine = [(r, v) for r, v in mine if v is not None]
                if mine:
                    ax.plot([r for r, _ in mine], [v for _, v in mine], marker="o", color=color,
                            label=f"{specs.method_label(m)} (ours, {specs.model_label(model)})")
                pub = [(r, paper(m, r)) for r in ranks]
                pub = [(r, v) for r, v in pub if v is not None]
                if pub:
                    ax.plot([r for r, _ in pub], [v for _, v in pub], marker="s", linestyle="--", color=color, alpha=0.6,
                            label=f"{specs.method_label(m)} (paper, {specs.model_label(fig['paper_model'])})")
            for r in ranks:  # LoFT's gain over the baseline, in points, for ours
                a, b = ours(model, method, r), ours(model, base, r)
                if a is not None and b is not None:
                    ax.annotate(f"{a - b:+.1f}", (r, max(a, b)), textcoords="offset points", xytext=(0, 6),
                                ha="center", fontsize=8)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ranks, [str(r) for r in ranks])
            ax.set_xlabel("rank r")
            ax.set_ylabel(f"{column} accuracy (%)")
            ax.set_title(f"{specs.method_label(method)} vs {specs.method_label(base)}")
            ax.legend(fontsize=7)
        fig_.suptitle(fig.get("title", name), fontsize=10)
        fig_.tight_layout()
        path = out_dir / f"{name}_{model}.png"
        fig_.savefig(path, dpi=120)
        plt.close(fig_)
        written.append(path)
    return written


def make_figures(specs: Specs, index: RecordIndex, out_dir: Path, only: str | None = None,
                 methods: set[str] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in specs.figures.items():
        if only and only not in name:
            continue
        if fig["kind"] == "curves":
            written += curves_figure(name, fig, specs, index, out_dir)
        elif fig["kind"] == "rankwise":
            written += rankwise_figure(name, fig, specs, index, out_dir, methods)
        else:
            raise ValueError(f"figure {name}: unknown kind {fig['kind']}")
    return written
