"""WikiText-2 perplexity on two halves of the eval blocks, for the claims' causal-LM runs.

The GLUE tasks pick on one half of the dev rows and report on the other (loft/train/selection.py
HalfSplit); the WikiText-2 task reports one perplexity over all its eval blocks. The claims
suite needs the same rule for the language model (each method's learning rate chosen on
held-out data that does not decide the verdict), so this subclass halves the eval blocks with
the same HalfSplit (shuffled by `selection_seed`, not the run's seed) and reports both:
`selection_eval_loss` / `selection_perplexity` on the selection half, `eval_loss` /
`perplexity` on the report half. Selected with `task._target_=tasks.lm.halved.HalvedWikitext2Task`;
training is the parent's, unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from loft.train.selection import HalfSplit
from tasks.lm.wikitext2 import Wikitext2Task


class HalvedWikitext2Task(Wikitext2Task):
    def __init__(self, *args, selection_seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.halves = HalfSplit("half", 0, selection_seed)

    @torch.no_grad()
    def block_losses(self, model) -> torch.Tensor:
        """Mean next-token NLL of each eval block (every block is full, so halves average them)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = []
        try:
            for i in range(0, len(self.eval_blocks), self.eval_batch_size):
                ids = self.eval_blocks[i:i + self.eval_batch_size].to(device)
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, :-1].double()
                nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
                out.append(nll.mean(dim=1).cpu())
        finally:
            model.train(was_training)
        return torch.cat(out)

    def evaluate(self, model) -> dict[str, float]:
        losses = self.block_losses(model)
        self.halves.split(len(losses))
        select = float(losses[torch.from_numpy(self.halves.select_idx)].mean())
        report = float(losses[torch.from_numpy(self.halves.report_idx)].mean())
        return {"eval_loss": report, "perplexity": math.exp(report), "eval_blocks": float(len(self.halves.report_idx)),
                "selection_eval_loss": select, "selection_perplexity": math.exp(select),
                "selection_blocks": float(len(self.halves.select_idx))}
