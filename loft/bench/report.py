"""The benchmark's result as a text table (the JSON is the result itself)."""
from __future__ import annotations

from loft.bench.step import BASELINE

def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def report(res: dict) -> str:
    s = res["setup"]
    lines = [f"preset={res['preset']} rank={res['rank']} tokens/step={res['tokens_per_step']} "
             f"device={s['device']} threads={s['threads']} dtype={s['dtype']} "
             f"({s['samples']} rounds of 2-step samples after {s['warmup_steps']} warm-up steps, medians)"]
    load = s["load_average_before_after"]
    if load[0] is not None:
        busy = max(x for x in load if x is not None) > s["threads"] + 0.5
        lines.append(f"load average before/after timing: {load[0]} / {load[1]}"
                     + ("  -- the machine is shared: wall times are disturbed, see the cpu columns" if busy else ""))
    wall, cpu = res["ratios_vs_lora_by_clock"]["wall"], res["ratios_vs_lora_by_clock"]["cpu"]
    num = lambda x, f=".4f": "-" if x is None else format(x, f)  # noqa: E731
    lines += ["", f"{'method':22s} {'step_s':>8s} {'x lora':>7s} {'opt_s':>7s} {'cpu_s':>8s} {'x lora':>7s} "
              f"{'opt_cpu_s':>9s} {'peak':>10s} {'state':>10s}"]
    for name, row in res["methods"].items():
        if row.get("available") is False:
            lines.append(f"{name:22s} {row['note']}")
            continue
        one = 1.0 if name == BASELINE else None
        lines.append(f"{name:22s} {num(row['step_s']):>8s} {num(wall.get(name, one), '.3f'):>7s} "
                     f"{num(row['opt_step_s']):>7s} {num(row['step_cpu_s']):>8s} {num(cpu.get(name, one), '.3f'):>7s} "
                     f"{num(row['opt_step_cpu_s']):>9s} {fmt_bytes(row['peak_bytes']):>10s} "
                     f"{fmt_bytes(row['state_bytes']):>10s}" + (f"  ({row['note']})" if row.get("note") else ""))
    lines.append("step_s/opt_s: wall clock; cpu_s/opt_cpu_s: process CPU time (all threads); x lora: median "
                 "of per-round ratios")
    lines += ["", *formula_table(res["state_formulas"], res["rank"])]
    return "\n".join(lines)


def formula_table(f: dict, rank: int) -> list[str]:
    sb, tb, meas = f["state_bytes"], f["total_bytes_with_W0_and_factors"], f["measured_state_bytes"]
    lines = [f"optimizer state, {f['layers']} adapted layers, r={rank}, float32 (4 bytes/element). 'state' = "
             "the terms beyond W0 (mn) and U,V ((m+n)r); 'total' adds them:",
             f"  {'method':12s} {'paper (App. E.2) state':>40s} {'total':>10s} | {'ours state':>36s} "
             f"{'total':>10s} | {'measured':>10s}"]
    rows = [("LoRA", "4(m+n)r", "paper_lora", "2(m+n)r  (AdamW m, v)", "ours_lora", "lora"),
            ("LoFT", "2(m+n)r+2(m+n)r+2(m+n)r^2", "paper_loft", "(m+n)r+(m+n)r(r+1)/2", "ours_loft", "loft"),
            ("LoFT-simple", "-", None, "2(m+n)r", "ours_loft_simple", "loft_simple")]
    for name, pf, pk, of, ok, mk in rows:
        pv = f"{pf} = {fmt_bytes(sb[pk])}" if pk else "-"
        lines.append(f"  {name:12s} {pv:>40s} {fmt_bytes(tb[pk]) if pk else '-':>10s} | "
                     f"{of + ' = ' + fmt_bytes(sb[ok]):>36s} {fmt_bytes(tb[ok]):>10s} | {fmt_bytes(meas.get(mk)):>10s}")
    ratio = sb["ours_loft"] / sb["paper_loft"]
    lines.append(f"  LoFT state, ours / paper: {ratio:.1%}"
                 + (f" (measured: {f['loft_measured_over_paper']:.1%})" if "loft_measured_over_paper" in f else ""))
    return lines
