"""Measuring: build every method on one shared random LLaMA base and time its steps against LoRA's
(the method of measurement is described in scripts/bench_step.py, the command line)."""
from __future__ import annotations

import copy
import gc
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field

import torch

from loft.bench.memory import layer_shapes, state_formulas
from loft.train.loop import optimizer_state_bytes as state_bytes

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
    from loft.config import CONF, compose_run

    if not (CONF / "method" / f"{name}.yaml").exists():
        raise LookupError(f"conf/method/{name}.yaml does not exist")
    overrides = ["logger=disabled", f"rank={rank}", f"method={name}"]
    if dropout is not None:
        overrides.append(f"adapter_dropout={dropout}")
    cfg = compose_run(*overrides)
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


def versions() -> dict:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "python": platform.python_version()}
