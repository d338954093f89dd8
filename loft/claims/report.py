"""results/claims/README.md from the records alone: a summary row per claim (the paper's
statement, our numbers as mean ± std over seeds, the paired differences with their 95%
intervals, the verdict, the command), then one section per claim with every arm, the lr each
one used and why, and every comparison; figures under figures/."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from loft.tables.records import load_records
from loft.claims import external, figures
from loft.claims import verdict as vr
from loft.claims.analysis import ArmResult, Row, analyse
from loft.claims.execute import RUN_FIXED
from loft.claims.spec import Claim

TASK_LABEL = {"glue_stsb": "STS-B", "glue_sst2": "SST-2", "glue_mrpc": "MRPC", "wikitext2": "WikiText-2"}
EXPLAIN = {"closeness": "|baseline − full| − |method − full| (score)",
           "trajectory": "T(baseline) − T(method), T = mean over steps of |log(L / L_full)|",
           "drop": "(baseline high − low) − (method high − low)",
           "trainable_params": "baseline − method (trainable parameters)",
           "train_time_s": "baseline − method (training seconds)"}


NOTES = [
    "Protocol notes: before the suite, a pilot of four runs (MRPC with LoRA, LoFT and full fine-tuning at "
    "32 steps; SmolLM2 with LoFT at 10 steps) timed a step; its records are not used. Records whose `git_sha` "
    "ends in `-dirty` were written while the report code (`loft/claims/report.py`, `verdict.py`, `external.py`, "
    "`figures.py`) or tests were being edited; nothing a run executes differed from that commit. Scores are "
    "the task's main metric on the report half of the first 200 dev rows (GLUE), or the mean next-token loss "
    "on the report half of 32 WikiText-2 test blocks (SmolLM2); a verdict is about this scale only.", ""]


def _digits(claim: Claim) -> int:
    return 1 if float(claim.raw.get("scale", 1)) >= 100 else 3


def mean_std(values: list[float], digits: int) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "—"
    std = f"{np.std(v, ddof=1):.{digits}f}" if len(v) > 1 else "n/a"
    return f"{np.mean(v):.{digits}f} ± {std}" + (f" (n={len(v)})" if len(v) < len(values) else "")


def _interval(row: Row, digits: int) -> str:
    if row.interval is None or math.isnan(row.interval.low):
        return "—"
    d = 0 if row.comparison.get("quantity") == "trainable_params" else 2 if row.comparison.get(
        "quantity") in ("train_time_s",) else digits + 1
    i = row.interval
    return f"{i.mean:+.{d}f} [{i.low:+.{d}f}, {i.high:+.{d}f}]"


def _what(comp: dict) -> str:
    q, test = comp.get("quantity", "score"), comp.get("test", "greater")
    m, b = comp.get("method"), comp.get("baseline")
    m, b = (f"{m[0]}→{m[1]}", f"{b[0]}→{b[1]}") if isinstance(m, list) else (m, b)
    margin = f", margin ±{comp['margin']:g}" if comp.get("margin") is not None else ""
    return f"{q}: {m} vs {b}" + (f" (ref {comp['reference']})" if comp.get("reference") else "") + f" [{test}{margin}]"


def example_command(claim: Claim) -> str:
    run = claim.runs()[0]
    return " ".join(["python run.py", *run.overrides(), f"seed={run.seed}", "paths.runs_dir=results/claims/runs",
                     *RUN_FIXED])


def measured_time(runs_dir: Path) -> tuple[int, float]:
    """(records, sum of their wall_time_s): each run used one thread."""
    records = load_records(runs_dir, quiet=True).records
    return len(records), sum(float(r.data.get("wall_time_s") or 0) for r in records)


def _arm_table(claim: Claim, results: dict[str, ArmResult]) -> list[str]:
    digits, sel = _digits(claim), claim.raw["selection_metric"]
    lines = [f"| arm | method | rank | alpha | lr grid: mean {sel} (selection half) | lr used | "
             f"{claim.raw['metric'][next(iter(results.values())).task]} (report half) | trainable params | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        grid = ", ".join(f"{lr:g}: {res.selection[lr]:.4f}" if lr in res.selection and not math.isnan(res.selection[lr])
                         else f"{lr:g}: —" for lr in res.arm.lrs)
        recs = [r for r in res.records.values() if r]
        params = f"{recs[0]['trainable_params']:,}" if recs and recs[0].get("trainable_params") else "—"
        secs = f"{np.mean([r['train_time_s'] for r in recs]):.0f}" if recs else "—"
        score = mean_std(res.values(claim.seeds), digits) if res.lr is not None else "not run: " + "; ".join(res.notes)
        note = (" ‡ " + "; ".join(res.notes)) if res.notes and res.lr is not None else ""
        alpha = f"{res.arm.alpha:g}" if res.arm.alpha is not None else "—"
        lines.append(f"| {label} | {res.arm.method}{' (' + res.arm.variant + ')' if res.arm.variant else ''} | "
                     f"{res.arm.rank or 'full'} | {alpha} | {grid} | {res.lr if res.lr is None else format(res.lr, 'g')} | "
                     f"{score}{note} | {params} | {secs} |")
    return lines


def _figures(claim: Claim, analysed: dict, out: Path) -> list[str]:
    made = []
    if any(c.get("quantity") == "trajectory" for c in claim.raw["comparisons"]):
        for task, results in analysed.items():
            p = figures.loss_curves(results, f"{claim.id}: {TASK_LABEL.get(task, task)}",
                                    out / "figures" / f"{claim.id}_{task}_loss.png")
            made += [p] if p else []
    ranks = {a.rank for a in claim.arms if a.rank}
    if len(ranks) > 1:
        for task, results in analysed.items():
            series: dict[str, list] = {}
            for res in results.values():
                v = [x for x in res.values(claim.seeds) if x is not None]
                if res.lr is not None and v:
                    name = res.arm.method + (f" ({res.arm.variant})" if res.arm.variant else "")
                    series.setdefault(name, []).append((res.arm.rank, float(np.mean(v)),
                                                        float(np.std(v, ddof=1)) if len(v) > 1 else 0.0))
            p = figures.score_vs_rank(series, f"{claim.raw['metric'][task]} x {claim.raw.get('scale', 1):g}",
                                      f"{claim.id}: {TASK_LABEL.get(task, task)}", out / "figures" / f"{claim.id}_{task}_rank.png")
            made += [p] if p else []
    return [f"![{p.stem}](figures/{p.name})" for p in made]


def runs_section(claim: Claim, runs_dir: Path, out: Path) -> tuple[list[str], str, list[str], list[str]]:
    """Section lines, the claim's verdict, and the summary cells (ours, differences)."""
    analysed, rows = analyse(claim, runs_dir)
    digits, setting = _digits(claim), claim.raw["setting"]
    lines = [f"Setting `{setting['name']}`: model `{setting['model']}`, seeds {claim.seeds}, "
             f"overrides `{' '.join(setting.get('overrides', []))}`. Metric: {claim.raw['metric']} on the report half, "
             f"x {claim.raw.get('scale', 1):g}, {'higher' if claim.raw.get('higher_is_better', True) else 'lower'} is better; "
             f"each arm's lr chosen by `{claim.raw['selection_metric']}` (selection half) alone.", ""]
    ours, diffs = [], []
    for task, results in analysed.items():
        lines += [f"**{TASK_LABEL.get(task, task)}**", "", *_arm_table(claim, results), ""]
        ours.append(f"{TASK_LABEL.get(task, task)}: " + ", ".join(
            f"{label} {mean_std(r.values(claim.seeds), digits)}" for label, r in results.items() if r.lr is not None))
    lines += ["| task | comparison (positive = the claimed side) | per-seed differences | mean [95% CI] | verdict |",
              "|---|---|---|---|---|"]
    for row in rows:
        per_seed = ", ".join(f"{d:+.{digits + 1}f}" if abs(d) < 1e4 else f"{d:+.0f}" for d in row.diffs) or row.why
        lines.append(f"| {TASK_LABEL.get(row.task, row.task)} | {_what(row.comparison)} | {per_seed} | "
                     f"{_interval(row, digits)} | **{row.verdict}** |")
        diffs.append(f"{TASK_LABEL.get(row.task, row.task)} {row.comparison.get('quantity', 'score')} "
                     f"{_what(row.comparison).split(': ', 1)[1].split(' [')[0]}: {_interval(row, digits)} {row.verdict}")
    quantities = sorted({c.get("quantity", "score") for c in claim.raw["comparisons"]} & set(EXPLAIN))
    lines += [""] + [f"- {q}: {EXPLAIN[q]}" for q in quantities]
    lines += [""] + _figures(claim, analysed, out)
    return lines, vr.combine([r.verdict for r in rows]), ours, diffs


def tests_section(claim: Claim, out: Path) -> tuple[list[str], str, list[str], list[str]]:
    result = external.stored(claim, out)
    verdict = external.tests_verdict(result)
    lines = ["| test | outcome |", "|---|---|"]
    for node, outcome in sorted((result or {}).get("outcomes", {}).items()):
        lines.append(f"| `{node}` | {outcome} |")
    n = len((result or {}).get("outcomes", {}))
    passed = sum(v == "passed" for v in (result or {}).get("outcomes", {}).values())
    if claim.raw.get("differs"):
        lines += ["", f"What differs: {claim.raw['differs']}"]
    return lines, verdict, [f"{passed}/{n} test cases pass"], ["exact (tests, no seeds)"]


def bench_section(claim: Claim, out: Path) -> tuple[list[str], str, list[str], list[str]]:
    result = external.stored(claim, out)
    ours, paper = external.bench_values(result), external.paper_values(claim)
    verdict, checks = external.bench_verdict(claim, result)
    lines = ["| quantity | method | rank | ours (median over rounds) | paper (LLaMA-7B) |", "|---|---|---|---|---|"]
    for key in sorted(set(ours) | set(paper), key=lambda k: (k[0], k[1], -k[2])):
        if key[1] == "lora":
            continue
        fmt = (lambda v: f"{v:+.1%}") if key[0] == "memory_increase" else (lambda v: f"{v:.2f}×")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(ours[key]) if key in ours else '—'} | "
                     f"{fmt(paper[key]) if key in paper else '—'} |")
    lines += ["", "| check (fixed before the run) | result |", "|---|---|"]
    lines += [f"| {c} | {'—' if ok is None else 'yes' if ok else 'no'} |" for c, ok in checks]
    setup = ((result or {}).get("results") or [{}])[0].get("setup", {})
    lines += ["", f"Model: a random LLaMA {setup.get('model', {})}, batch {setup.get('batch')} x {setup.get('seq')} "
                  f"tokens, {setup.get('dtype')}, {setup.get('device')}; load average before/after "
                  f"{setup.get('load_average_before_after')}. No seeds, so no interval: medians over timed rounds."]
    short = [f"{k[1]} r{k[2]} {k[0]}: ours {ours[k]:.2f} vs paper {paper[k]:.2f}" for k in sorted(paper) if k in ours]
    return lines, verdict, ["; ".join(short) or "—"], ["orderings: " + ", ".join(
        "yes" if ok else "no" if ok is not None else "—" for _, ok in checks)]


def readings(out: Path) -> dict[str, str]:
    """`notes.yaml` beside the report: what might explain each verdict, written after the runs
    (kept apart from the claim files, which were fixed before them)."""
    path = Path(out) / "notes.yaml"
    return {str(k): str(v).strip() for k, v in (yaml.safe_load(path.read_text()) or {}).items()} if path.is_file() else {}


def write_report(claims: list[Claim], runs_dir: Path, out: Path, claims_dir: Path | None = None) -> Path:
    out = Path(out)
    summary, body, notes = [], [], readings(out)
    # the order: LoFT's claims, then LOFT's; within a paper by the claim file's `order`
    for i, claim in enumerate(sorted(claims, key=lambda c: (c.paper != "LoFT", int(c.raw.get("order", 50)), c.id)), 1):
        make = {"runs": lambda c: runs_section(c, runs_dir, out), "tests": lambda c: tests_section(c, out),
                "bench": lambda c: bench_section(c, out)}[claim.kind]
        lines, verdict, ours, diffs = make(claim)
        command = (f"python scripts/claims.py --only {claim.id}")
        summary.append(f"| {i} | {claim.paper}: `{claim.id}` ({claim.source}) | {claim.statement} | {'<br>'.join(ours)} | "
                       f"{'<br>'.join(diffs)} | **{verdict}** | `{command}` |")
        body += [f"## {i}. {claim.paper}: {claim.id}", "", f"> {claim.statement}", "", f"Source: {claim.source}. "
                 f"Claim file: `conf/claims/{claim.path.name}`. Verdict: **{verdict}**.", "",
                 f"Command: `{command}`" + (f"; one of its runs: `{example_command(claim)}`" if claim.kind == "runs" else
                                            f"; directly: `{(external.stored(claim, out) or {}).get('command', '')}`"), "",
                 *lines, ""] + ([f"Reading (written after the runs, `results/claims/notes.yaml`): {notes[claim.id]}", ""]
                                if claim.id in notes else [])
    n, total = measured_time(runs_dir)
    head = ["# What the papers claim, and what we measured", "",
            "Generated by `python scripts/claims.py --render-only` (`make claims`) from the records under "
            "`results/claims/runs/` and the results under `results/claims/tests|bench/`; the claim files "
            "(`conf/claims/`) were committed before any run of the suite.", "",
            "How to read it: every comparison is a paired difference over seeds (same seed = same data order and "
            "head initialisation for every method), oriented so that positive is the paper's claimed side, with "
            "its mean and 95% t-interval. Directional claims **hold** when the interval is above 0, **do not hold** "
            "when it is below 0, else **inconclusive at this scale**; equivalence claims use the margin written in "
            "the claim file (inside ±margin: holds; wholly outside: does not hold). A claim with several "
            "comparisons holds when all hold and does not hold when any does not. Each arm's learning rate is the "
            "best of its grid by the selection half of the dev rows (mean over seeds); only the report half "
            "enters the comparisons (`loft/claims/`).", "",
            f"Records: {n}, {total / 60:.0f} minutes of training processes in all (sum of the records' wall "
            "times; one thread each, two processes at a time on 2 CPU cores).", "", *NOTES,
            "", "| # | claim (source) | the paper says | ours (mean ± std over seeds) | paired difference, 95% CI | "
            "verdict | command |", "|---|---|---|---|---|---|---|", *summary, ""]
    path = out / "README.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + body) + "\n")
    return path
