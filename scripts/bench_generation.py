"""Evaluation-throughput benchmark: batched, left-padded generation against batch size 1.

    python scripts/bench_generation.py                                   # smollm2_135m, boolq, 32 examples
    python scripts/bench_generation.py --set arc_e --n 64 --batch-sizes 1 8 32 --beams 1 4
    python scripts/bench_generation.py --model tiny_llama --n 16 --json  # quick, no pretrained model needed

What it measures, and how:
- The commonsense protocol's generation (tasks/commonsense/: Alpaca prompt, up to 32 new
  tokens, greedy or beam search, first-match answer extraction) on the first `--n` test
  examples of `--set` (`$LOFT_DATA_DIR`, default ../shared/data), through the same
  `tasks.generation.generate` the task uses, at each batch size. Batch size 1 is what the
  LLM-Adapters/DoRA scripts run (`--batch_size 1`).
- Examples per second = n / wall time of the whole generate() call (tokenisation, padding,
  decoding included; model load and a one-batch warm-up excluded). Configurations are run
  in rounds (`--repeats`) and the median is reported, so machine noise hits all alike.
- Agreement: the share of examples whose extracted answer (and whose full text) at batch
  size B equals batch size 1's. Left padding with the attention mask should change only
  float round-off, so answers should agree.
- `--threads` sets torch's intra-op threads (on a busy 2-core machine 1 can beat 2).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from omegaconf import OmegaConf  # noqa: E402

from tasks.commonsense import SETS, eval_prompt, extract_answer, response_part  # noqa: E402
from tasks.generation import GenerationSettings, generate  # noqa: E402


def load(model_name: str):
    from loft.models import load_model

    root = OmegaConf.create({"paths": {"cache_dir": str(REPO / ".cache")},
                             "model": OmegaConf.load(REPO / "conf" / "model" / f"{model_name}.yaml")})
    torch.manual_seed(0)
    return load_model(root.model)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2_135m")
    p.add_argument("--set", default="boolq", choices=list(SETS))
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--beams", type=int, nargs="+", default=[1])
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=os.environ.get("LOFT_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load(args.model)
    rows = json.loads((Path(args.data_dir) / "commonsense" / SETS[args.set].folder / "test.json").read_text())[: args.n]
    prompts = [eval_prompt(r, "alpaca") for r in rows]
    configs = [(b, nb) for nb in args.beams for b in sorted(set(args.batch_sizes) | {1})]
    warm = GenerationSettings(max_new_tokens=4, batch_size=max(args.batch_sizes))
    generate(bundle.model, bundle.tokenizer, prompts[: max(args.batch_sizes)], warm)
    times = {c: [] for c in configs}
    outputs = {}
    for _ in range(args.repeats):
        for b, nb in configs:
            settings = GenerationSettings(max_new_tokens=args.max_new_tokens, num_beams=nb, batch_size=b)
            start = time.perf_counter()
            out = generate(bundle.model, bundle.tokenizer, prompts, settings)
            times[(b, nb)].append(time.perf_counter() - start)
            outputs[(b, nb)] = [o[0] for o in out]
    results = []
    for b, nb in configs:
        ref, got = outputs[(1, nb)], outputs[(b, nb)]
        answers = [extract_answer(args.set, response_part(t)) for t in got]
        ref_answers = [extract_answer(args.set, response_part(t)) for t in ref]
        seconds = statistics.median(times[(b, nb)])
        results.append({
            "batch_size": b, "num_beams": nb, "seconds": seconds, "examples_per_s": len(rows) / seconds,
            "speedup_vs_batch1": statistics.median(times[(1, nb)]) / seconds,
            "answer_agreement_vs_batch1": sum(a == r for a, r in zip(answers, ref_answers)) / len(rows),
            "text_agreement_vs_batch1": sum(a == r for a, r in zip(got, ref)) / len(rows),
            "accuracy": sum(a == r["answer"] for a, r in zip(answers, rows)) / len(rows),
        })
    report = {"model": args.model, "set": args.set, "n": len(rows), "max_new_tokens": args.max_new_tokens,
              "threads": torch.get_num_threads(), "device": "cpu" if not torch.cuda.is_available() else "cuda",
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.model} on {args.set}, n={len(rows)}, {args.max_new_tokens} new tokens, "
          f"{report['threads']} threads ({report['device']})")
    print(f"{'batch':>5} {'beams':>5} {'seconds':>8} {'ex/s':>7} {'speedup':>8} {'ans agree':>9} {'txt agree':>9} {'acc':>6}")
    for r in results:
        print(f"{r['batch_size']:>5} {r['num_beams']:>5} {r['seconds']:>8.2f} {r['examples_per_s']:>7.3f} "
              f"{r['speedup_vs_batch1']:>7.2f}x {r['answer_agreement_vs_batch1']:>9.3f} "
              f"{r['text_agreement_vs_batch1']:>9.3f} {r['accuracy']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
