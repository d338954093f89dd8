"""The commonsense sets scored by lm-evaluation-harness (`task.eval_protocol=lm_eval`).

Log-likelihood multiple choice, zero-shot, through the harness' own task configs; offline the
local LLM-Adapters test files stand in for the hub datasets (converted back with
`from_llm_adapters`). What differs from the published harness numbers, and why, is in
tasks/lm_eval_protocol.py, which holds the harness calls (shared with tasks/math/mgsm.py).
"""
from __future__ import annotations

import sys

from tasks.commonsense.sets import SETS, from_llm_adapters
from tasks.lm_eval_protocol import harness_config, run_harness, use_hub


def evaluate_commonsense(model, tokenizer, eval_rows: dict[str, list[dict]], data: str = "auto",
                         batch_size: int = 16, max_length: int | None = None) -> dict[str, float]:
    """{set: acc, set_acc_norm: ..., set_n: ...} for the sets in `eval_rows` (our keys)."""
    hub = use_hub(data)
    specs, names = [], {}
    for key, rows in eval_rows.items():
        harness = SETS[key].harness
        names[harness] = key
        if hub:
            specs.append(harness)
        else:
            specs.append(harness_config(harness, [from_llm_adapters(key, r) for r in rows]))
    if not hub and "boolq" in eval_rows:
        print("note [lm_eval]: local BoolQ has no passages (LLM-Adapters format): question-only scoring",
              file=sys.stderr)
    limit = max(len(r) for r in eval_rows.values()) if hub else None
    out = run_harness(model, tokenizer, specs, limit, batch_size, max_length)
    metrics: dict[str, float] = {}
    for harness, res in out["results"].items():
        key = names.get(harness)
        if key is None:
            continue
        metrics[key] = float(res["acc,none"])
        if "acc_norm,none" in res:
            metrics[f"{key}_acc_norm"] = float(res["acc_norm,none"])
        n = out.get("n-samples", {}).get(harness, {})
        metrics[f"{key}_n"] = float(n.get("effective", len(eval_rows[key])))
    return metrics
