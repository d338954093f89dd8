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
import gc
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.bench.memory import preset_layer_shapes, state_formulas  # noqa: E402
from loft.bench.report import formula_table, report  # noqa: E402
from loft.bench.step import BASELINE, METHODS, PRESETS, run  # noqa: E402,F401  (run, METHODS: used by tests)


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
