"""Training-step benchmark: one model, several methods, side by side in one process.

    python scripts/bench_step.py --preset cpu --rank 16            # table on stdout (2 CPU cores: ~1-2 min)
    python scripts/bench_step.py --preset cpu --rank 4 --json      # one JSON object on stdout
    python scripts/bench_step.py --preset cpu --rank 16 4 --json   # one JSON object per rank and line, as each ends
    python scripts/bench_step.py --preset cpu --rank 16 --memory   # optimizer-state bytes vs Appendix E.2 closed forms
    python scripts/bench_step.py --preset smollm2 --rank 4 --methods lora psoft loft_orth_principal  # SmolLM2-135M shapes
    python scripts/bench_step.py --preset llama7b --rank 16        # on a GPU (bf16, LLaMA-7B shapes, shared W0)

What it measures, and how (each a trade-off):
- Every method is built through the method registry (`loft.methods.build_method` with
  `conf/method/<name>.yaml`, composed by Hydra like `run.py` does), so a method appears here as
  soon as its config exists. A method without a config is reported as unavailable (with the
  reason) and the other ratios are still produced.
- One random LlamaForCausalLM is built once; every method wraps its own copy whose frozen
  weights are *shared* with the base (deepcopy with a memo), so LLaMA-7B shapes fit one GPU
  with all methods resident. Methods that only read W0 (all benchmarked ones) are unaffected.
- A timed sample is two consecutive full steps (forward, backward, optimizer.step, zero_grad)
  of one method, so LoFT's alternation (one factor per step) is averaged over a U- and a
  V-step. After warm-up, each round runs LoRA, X1, LoRA, X2, ..., LoRA (method order rotated
  every round): a method's ratio in a round is its sample over the mean of the two LoRA
  samples around it, and `ratios_vs_lora` is the median over rounds. Times are medians over
  rounds; `opt_step_s` times `optimizer.step()` alone within the same steps. Both wall clock
  and process CPU time are recorded; on a machine shared with other jobs neither is clean
  (CPU time inflates too when another job shares the core), so check the load average
  reported with the results, and prefer a quiet machine.
- `peak_bytes` = bytes the method holds at a step's start (parameters, buffers, optimizer
  state) + the peak of what torch's allocator allocates during one extra, untimed step.
  On CUDA the transient peak comes from `torch.cuda.max_memory_allocated`; on CPU, from
  torch.profiler's memory events (torch's CPU allocator, not RSS: library scratch space
  outside torch's allocator, e.g. oneDNN's, is not seen). The process's RSS high-water
  mark is reported too (`rss_max_bytes`), for all methods together.
- `state_bytes` = `optimizer.state_bytes()` when the optimizer has it, else the bytes of
  the tensors in `optimizer.state` (step counters excluded).
- One process, whole factors. Sharded (FSDP2) runs are not simulated here: there LoFT's
  state and its per-row work divide by the number of processes (B by rows, A by columns),
  and a step adds all-reduces of r x r matrices and one gather of the other factor
  (loft/optim/sharding.py). Measure them with real runs, whose records hold the per-process
  `optimizer_state_bytes` and the per-step `step_time_s`:
      ACCELERATE_USE_FSDP=true torchrun --nproc_per_node 2 run.py task=wikitext2 model=tiny_llama \
          task.train_file=lm/tinyshakespeare.txt method=loft trainer.max_steps=5 trainer.micro_batch_size=2
- On CPU, subnormal floats are flushed to zero (`--no-flush-denormal` to keep them): they
  appear data-dependently in some steps of whichever method and slow those steps by up to
  1.5x, a confounder that has nothing to do with the method.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

METHODS = ["lora", "loft", "loft_simple", "dora", "psoft", "loft_orth_principal"]
BASELINE = "lora"
TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]  # LoFT Table 4

# LLaMA-shaped models: intermediate ~2.7x hidden, SwiGLU, RoPE, RMSNorm.
PRESETS = {
    # 2 CPU cores: 2.6M adapted weights per layer, 2048 tokens per step, under a second a step.
    "cpu": dict(hidden=512, layers=4, heads=8, intermediate=1376, vocab=4096, batch=4, seq=512,
                dtype="float32", device="cpu", warmup=2, samples=5),
    # LLaMA-7B (Touvron et al. 2023) shapes, the setting of the LoFT paper's Tables 8-13.
    "llama7b": dict(hidden=4096, layers=32, heads=32, intermediate=11008, vocab=32000, batch=4, seq=1024,
                    dtype="bfloat16", device="cuda", warmup=3, samples=10),
    # SmolLM2-135M (HuggingFaceTB) shapes: 30 layers, grouped-query attention (9 heads, 3 KV heads).
    "smollm2": dict(hidden=576, layers=30, heads=9, kv_heads=3, intermediate=1536, vocab=49152, batch=2, seq=256,
                    dtype="float32", device="cpu", warmup=2, samples=5),
    # For tests: seconds.
    "tiny": dict(hidden=64, layers=2, heads=4, intermediate=176, vocab=256, batch=2, seq=32,
                 dtype="float32", device="cpu", warmup=1, samples=2),
}


@dataclass
class Bench:
    name: str
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    note: str = ""
    step_s: list[float] = field(default_factory=list)       # wall clock, per timed sample (mean of 2 steps)
    opt_step_s: list[float] = field(default_factory=list)
    step_cpu_s: list[float] = field(default_factory=list)   # process CPU time (all threads), likewise
    opt_step_cpu_s: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    state_bytes: int | None = None
    trainable_params: int | None = None
    build_s: float | None = None  # wrapping the model (PSOFT's and LOFT's SVDs of W0 happen here)
    after_step: object = None  # the registry's per-step hook (AdaLoRA's rank budget), if any
    ratios: dict = field(default_factory=lambda: {"wall": [], "cpu": []})  # vs the bracketing LoRA samples
    steps: int = 0


# ----- building --------------------------------------------------------------------------

def build_base(p: dict, seed: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                      num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                      num_key_value_heads=p.get("kv_heads", p["heads"]), max_position_embeddings=max(2048, p["seq"]),
                      attn_implementation="sdpa")
    torch.manual_seed(seed)
    with torch.device(p["device"]):
        model = LlamaForCausalLM(cfg)
    return model.to(dtype=getattr(torch, p["dtype"]))


def method_config(name: str, rank: int, dropout: float | None):
    """(method config, trainer config): what `run.py method=<name> rank=<rank>` gets."""
    from hydra import compose, initialize_config_dir

    from loft.config import register_resolvers

    register_resolvers()
    if not (REPO / "conf" / "method" / f"{name}.yaml").exists():
        raise LookupError(f"conf/method/{name}.yaml does not exist")
    overrides = ["logger=disabled", f"rank={rank}", f"method={name}"]
    if dropout is not None:
        overrides.append(f"adapter_dropout={dropout}")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return cfg.method, cfg.trainer


def build(name: str, base: torch.nn.Module, rank: int, dropout: float | None, batch: torch.Tensor) -> Bench:
    from loft.methods import build_method

    try:
        mcfg, tcfg = method_config(name, rank, dropout)
    except Exception as err:  # noqa: BLE001 - a missing or broken config is a result, not a crash
        return Bench(name, note=f"unavailable: {type(err).__name__}: {err}".splitlines()[0][:300])
    shared = {id(t): t for t in [*base.parameters(), *base.buffers()]}
    model = copy.deepcopy(base, memo=shared)  # own modules, shared frozen weights
    hp = {"lr": float(tcfg.lr), "betas": tuple(tcfg.betas), "eps": float(tcfg.eps),
          "weight_decay": float(tcfg.weight_decay)}
    t0 = time.perf_counter()
    try:
        method = call_registry(build_method, mcfg, model, rank, hp, batch)
    except Exception as err:  # noqa: BLE001
        return Bench(name, note=f"unavailable: build failed: {type(err).__name__}: {err}".splitlines()[0][:300])
    sync(batch.device)
    method.model.train()
    return Bench(name, method.model, method.optimizer, trainable_params=method.trainable_params,
                 build_s=time.perf_counter() - t0, after_step=getattr(method, "after_step", None))


def call_registry(build_method, mcfg, model, rank: int, hp: dict, batch: torch.Tensor):
    from loft.methods import MethodContext

    ctx = MethodContext(rank=rank, hp=hp, default_targets=TARGETS, total_steps=1000,
                        calibration_batches=lambda n: [batch] * n, loss=lambda m, b: m(input_ids=b, labels=b).loss)
    return build_method(mcfg, model, ctx)


# ----- measuring -------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_step(b: Bench, batch: torch.Tensor, device: torch.device) -> tuple[float, float, float, float]:
    """(step wall s, optimizer.step wall s, step CPU s, optimizer.step CPU s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    loss = b.model(input_ids=batch, labels=batch).loss
    loss.backward()
    sync(device)
    t1, c1 = time.perf_counter(), time.process_time()
    b.optimizer.step()
    b.steps += 1
    if b.after_step is not None:
        b.after_step(b.steps)
    sync(device)
    t2, c2 = time.perf_counter(), time.process_time()
    b.optimizer.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - t0, t2 - t1, time.process_time() - c0, c2 - c1


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    if hasattr(optimizer, "state_bytes"):
        return int(optimizer.state_bytes())
    return sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values()
               if torch.is_tensor(t) and t.ndim > 0)


def held_bytes(b: Bench) -> int:
    tensors = {t.data_ptr(): t for t in [*b.model.parameters(), *b.model.buffers()]}  # shared weights once
    return sum(t.numel() * t.element_size() for t in tensors.values()) + state_bytes(b.optimizer)


def transient_peak(b: Bench, batch: torch.Tensor, device: torch.device) -> int:
    """Peak bytes allocated by torch's allocator during one full step, above its start."""
    gc.collect()
    if device.type == "cuda":
        sync(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        one_step(b, batch, device)
        return torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        one_step(b, batch, device)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def run(args) -> dict:
    p = dict(PRESETS[args.preset])
    for key in ("layers", "batch", "seq", "warmup", "samples", "device", "dtype"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    device = torch.device(p["device"])
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"preset {args.preset} runs on a CUDA GPU and none is visible; on a CPU use --preset cpu "
                             "(or --device cpu --layers 1 --seq 64 for a smoke test of its shapes)")
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    if args.threads:
        torch.set_num_threads(args.threads)
    # Subnormal floats turn up data-dependently in some steps of some methods and slow a CPU step by up
    # to 1.5x (microcode assists): a confounder unrelated to the method, so flush them by default.
    ftz = device.type == "cpu" and args.flush_denormal and torch.set_flush_denormal(True)

    base = build_base(p, args.seed)
    for t in base.parameters():
        t.requires_grad_(False)
    gen = torch.Generator().manual_seed(args.seed)
    batch = torch.randint(0, p["vocab"], (p["batch"], p["seq"]), generator=gen).to(device)
    benches = [build(name, base, args.rank, args.dropout, batch) for name in args.methods]
    ready = [b for b in benches if b.model is not None]

    for _ in range(p["warmup"]):  # also creates the optimizer states
        for b in ready:
            one_step(b, batch, device)
    for b in ready:
        b.state_bytes = state_bytes(b.optimizer)
        b.peak_bytes = held_bytes(b) + transient_peak(b, batch, device)
    load_before = load_average()
    ref = next((b for b in ready if b.name == BASELINE), None)
    others = [b for b in ready if b is not ref]
    if not args.memory and ref is not None:
        for rnd in range(p["samples"]):
            # LoRA, X1, LoRA, X2, ..., Xk, LoRA: every method is bracketed by two LoRA samples
            # taken just before and after it, so a ratio sees the machine in one state.
            order = others[rnd % len(others):] + others[: rnd % len(others)] if others else []
            before = sample(ref, batch, device)
            for b in order:
                mine = sample(b, batch, device)
                after = sample(ref, batch, device)
                for clock, i in (("wall", 0), ("cpu", 2)):
                    b.ratios[clock].append(mine[i] / ((before[i] + after[i]) / 2))
                before = after

    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    methods, unavailable = {}, {}
    for b in benches:
        row = {"step_s": med(b.step_s), "opt_step_s": med(b.opt_step_s), "peak_bytes": b.peak_bytes,
               "state_bytes": b.state_bytes, "step_cpu_s": med(b.step_cpu_s),
               "opt_step_cpu_s": med(b.opt_step_cpu_s), "trainable_params": b.trainable_params, "build_s": b.build_s}
        if b.step_s:
            row["samples"] = {"step_s": [round(x, 5) for x in b.step_s],
                              "step_cpu_s": [round(x, 5) for x in b.step_cpu_s]}
        if b.note:
            row["note"] = b.note
        if b.model is None:
            row["available"] = False
            unavailable[b.name] = b.note
        methods[b.name] = row
    by_clock = {clock: {b.name: statistics.median(b.ratios[clock]) for b in others if b.ratios[clock]}
                for clock in ("wall", "cpu")}

    layers = layer_shapes(base, TARGETS)
    return {
        "preset": args.preset,
        "tokens_per_step": p["batch"] * p["seq"],
        "rank": args.rank,
        "methods": methods,
        "ratios_vs_lora": by_clock[args.clock],
        "ratios_clock": args.clock,
        "ratios_vs_lora_by_clock": by_clock,
        "unavailable": unavailable,
        "state_formulas": state_formulas(layers, args.rank, methods),
        "setup": {
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "dtype": p["dtype"], "tf32": bool(args.tf32 and device.type == "cuda"), "flush_denormal": bool(ftz),
            "model": {k: p[k] for k in ("hidden", "layers", "heads", "intermediate", "vocab")},
            "batch": p["batch"], "seq": p["seq"], "targets": TARGETS, "warmup_steps": p["warmup"],
            "samples": p["samples"], "steps_per_sample": 2, "timed": not args.memory,
            "peak_bytes": ("held + CUDA allocator peak of one step" if device.type == "cuda" else
                           "held + peak of torch CPU allocator (profiler memory events) during one step"),
            "rss_max_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "load_average_before_after": [load_before, load_average()],
            "versions": versions(),
        },
    }


def sample(b: Bench, batch: torch.Tensor, device: torch.device) -> tuple[float, float, float, float]:
    """Two consecutive steps (one U- and one V-step for LoFT), averaged and recorded."""
    gc.collect()
    first, second = one_step(b, batch, device), one_step(b, batch, device)
    wall, opt_wall, cpu, opt_cpu = ((x + y) / 2 for x, y in zip(first, second))
    b.step_s.append(wall)
    b.opt_step_s.append(opt_wall)
    b.step_cpu_s.append(cpu)
    b.opt_step_cpu_s.append(opt_cpu)
    return wall, opt_wall, cpu, opt_cpu


def load_average() -> float | None:
    try:
        import os

        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


# ----- closed forms (LoFT paper, Appendix E.2) --------------------------------------------

def layer_shapes(model: torch.nn.Module, targets: list[str]) -> list[tuple[int, int]]:
    from loft.methods import targeted_layers

    return list(targeted_layers(model, targets).values())


def state_formulas(layers: list[tuple[int, int]], r: int, methods: dict) -> dict:
    """Optimizer-state elements per the paper's accounting and ours, summed over adapted layers.

    Paper (E.2): LoRA  mn + (m+n)r [U,V] + 4(m+n)r [states]                    = mn + 5(m+n)r
                 LoFT  mn + (m+n)r + 2(m+n)r [prev. iterates] + 2(m+n)r [momentum]
                          + 2(m+n)r^2 [cross terms]                           = mn + 5(m+n)r + 2(m+n)r^2
    "State" below is everything beyond W0 (mn) and the factors ((m+n)r).
    Ours:        LoRA (AdamW)  2(m+n)r          (m and v of B and A)
                 LoFT          (m+n)r + (m+n)r(r+1)/2   (momentum + packed symmetric cross terms;
                               no previous iterates: calibration happens when a factor moves)
                 LoFT-simple   2(m+n)r
    """
    s = sum(m + n for m, n in layers)
    mn = sum(m * n for m, n in layers)
    packed = r * (r + 1) // 2
    elems = {
        "paper_lora": 4 * s * r, "paper_loft": 4 * s * r + 2 * s * r * r,
        "ours_lora": 2 * s * r, "ours_loft": s * r + s * packed, "ours_loft_simple": 2 * s * r,
    }
    out = {"layers": len(layers), "sum_m_plus_n": s, "sum_mn": mn, "bytes_per_element": 4,
           "state_bytes": {k: 4 * v for k, v in elems.items()},
           "total_bytes_with_W0_and_factors": {k: 4 * (v + mn + s * r) for k, v in elems.items()}}
    measured = {k: methods[k]["state_bytes"] for k in ("lora", "loft", "loft_simple")
                if methods.get(k, {}).get("state_bytes") is not None}
    out["measured_state_bytes"] = measured
    if "loft" in measured:
        out["loft_measured_over_paper"] = measured["loft"] / out["state_bytes"]["paper_loft"]
    if "lora" in measured:
        out["lora_measured_over_paper"] = measured["lora"] / out["state_bytes"]["paper_lora"]
    return out


def versions() -> dict:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "python": platform.python_version()}


# ----- output ----------------------------------------------------------------------------

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


def preset_layer_shapes(p: dict) -> list[tuple[int, int]]:
    """(out, in) of q, k, v, up, down in every layer of a preset, without building it."""
    h, i = p["hidden"], p["intermediate"]
    return [(h, h), (h, h), (h, h), (i, h), (h, i)] * p["layers"]


def formulas_only(args) -> dict:
    p = dict(PRESETS[args.preset])
    if args.layers is not None:
        p["layers"] = args.layers
    return {"preset": args.preset, "rank": args.rank,
            "state_formulas": state_formulas(preset_layer_shapes(p), args.rank, {})}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--rank", type=int, nargs="+", default=[16], dest="ranks",
                    help="one or more ranks, each a separate run in this process (default: 16)")
    ap.add_argument("--methods", nargs="+", default=METHODS, help="conf/method names (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--memory", action="store_true", help="state/peak bytes and closed forms only, no timing")
    ap.add_argument("--formulas", action="store_true",
                    help="closed forms only, from the preset's shapes (no model built: llama7b on any machine)")
    ap.add_argument("--layers", type=int, help="override the preset's number of layers")
    ap.add_argument("--batch", type=int, help="override the preset's batch size")
    ap.add_argument("--seq", type=int, help="override the preset's sequence length")
    ap.add_argument("--warmup", type=int, help="warm-up steps per method")
    ap.add_argument("--samples", type=int, help="timed rounds (one 2-step sample per method, LoRA around each)")
    ap.add_argument("--device", help="override the preset's device (e.g. a CPU smoke test of llama7b shapes)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="override the preset's dtype")
    ap.add_argument("--dropout", type=float, help="adapter_dropout override (default: the runner's)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads")
    ap.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=False,
                    help="allow TF32 matmuls on CUDA (default off)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="clock of ratios_vs_lora: wall (default) or process CPU time, which a machine "
                         "shared with other jobs disturbs less (both are always in the JSON)")
    ap.add_argument("--flush-denormal", action=argparse.BooleanOptionalAction, default=True,
                    help="CPU: flush subnormal floats to zero (default on; see the setup note in the JSON)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.rank = args.ranks[0]
    if BASELINE not in args.methods:
        args.methods = [BASELINE, *args.methods]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    for rank in args.ranks:
        args.rank = rank
        if args.formulas:
            res = formulas_only(args)
            text = "\n".join(formula_table(res["state_formulas"], rank))
        else:
            res = run(args)
            text = report(res)
            gc.collect()  # this rank's models, before the next rank's memory is measured
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if args.json:  # several ranks: JSON Lines, so a run stopped midway keeps the ranks it finished
            text = json.dumps(res, indent=None if len(args.ranks) > 1 else 1)
        print(text, flush=True)


if __name__ == "__main__":
    main()
