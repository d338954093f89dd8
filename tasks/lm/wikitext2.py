"""WikiText-2 causal language modelling: fine-tune, then report perplexity.

Protocol of LoFT (Tastan et al.) App. E.4 / Tables 14-15, the usual GPT-2 recipe
(HF `run_clm`): the whole split is tokenised as one stream, cut into non-overlapping
`block_size` blocks (remainder dropped), labels = inputs (the model shifts them), and
perplexity = exp(total NLL / total predicted tokens) over the eval blocks.

Data: `<data_dir>/<train_file>` and `<data_dir>/<eval_file>` in the canonical raw layout
(`scripts/prepare_data.py wikitext2` writes it); with `source=auto` a missing canonical
file is fetched from the hub (`wikitext`/`wikitext-2-raw-v1`) when it is reachable
(tasks/sources.py: a missing file's error says why the hub was not used).
Offline only the test split exists raw (`lm/wiki.test.raw`). When the canonical train split
is missing and the hub unreachable, training falls back to the local *validation* split
(`lm/wikitext2_tok_valid.txt`, the tokenised release: disjoint from the test split the run is
evaluated on); the record's `notes` say so, because such a number is not the paper's protocol.
Or train on another local corpus, e.g. `task.train_file=lm/tinyshakespeare.txt`.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tasks.base import ConfigError, DataCorruptError, DataMissingError, ModelBundle, Task, model_loss
from tasks.data_files import read_text
from tasks.sources import check_source, local_or_hub

HUB_DATASET = ("wikitext", "wikitext-2-raw-v1")
OFFLINE_TRAIN = "lm/wikitext2_tok_valid.txt"  # pytorch/examples' tokenised validation split
HUB_SPLITS = {"wiki.train.raw": "train", "wiki.valid.raw": "validation", "wiki.test.raw": "test"}


def datasets_split(split: str) -> list[str]:
    """The `text` rows of one WikiText-2 split on the hub (needs the hub)."""
    import datasets

    return datasets.load_dataset(*HUB_DATASET, split=split)["text"]


def hub_rows_to_raw(rows) -> str:
    """The hub stores one row per line of the raw file, with its blank lines (" \\n") as ""."""
    return "".join(row if row else " \n" for row in rows)


class Wikitext2Task(Task):
    model_kinds = ("causal_lm",)
    name = "wikitext2"

    def __init__(self, name: str = "wikitext2", block_size: int = 1024,
                 train_file: str = "lm/wiki.train.raw", eval_file: str = "lm/wiki.test.raw",
                 source: str = "auto", max_train_samples: int | None = None,
                 eval_limit: int | None = None, eval_batch_size: int = 8):
        self.name, self.block_size, self.source = name, int(block_size), check_source(source)
        self.train_file, self.eval_file = train_file, eval_file
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.eval_batch_size = int(eval_batch_size)
        self.notes: list[str] = []

    # --- data --------------------------------------------------------------------------

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        self.train_blocks = self._blocks(self._read_train(data_dir), self.max_train_samples)
        self.eval_blocks = self._blocks(self._read(self.eval_file, data_dir), self.eval_limit)

    def _read_train(self, data_dir: str) -> str:
        try:
            return self._read(self.train_file, data_dir)
        except DataCorruptError:  # there but damaged: the fix is to rewrite it, not to train on other text
            raise
        except DataMissingError:
            fallback = Path(data_dir) / OFFLINE_TRAIN
            canonical = Path(self.train_file).name == "wiki.train.raw"
            if not (canonical and self.source == "auto" and fallback.is_file()
                    and Path(self.eval_file).name not in ("wiki.valid.raw", fallback.name)):
                raise
        self._note(f"WikiText-2 train split unavailable offline: trained on the validation split ({OFFLINE_TRAIN}), "
                   f"evaluated on {self.eval_file}; not the paper's protocol")
        return fallback.read_text(encoding="utf-8")

    def _read(self, rel: str, data_dir: str) -> str:
        path = Path(data_dir) / rel
        fix = f"python scripts/prepare_data.py wikitext2 --data-dir {data_dir}"
        split = HUB_SPLITS.get(Path(rel).name)
        load = None if split is None else lambda: hub_rows_to_raw(datasets_split(split))
        return local_or_hub(
            path, self.source, lambda p: read_text(p, fix), load,
            f"`{fix}` (online), or point task.train_file/eval_file at a local corpus (offline only the test split "
            f"exists, {Path(data_dir) / 'lm/wiki.test.raw'}; e.g. task.train_file=lm/tinyshakespeare.txt).",
            no_hub="not a WikiText-2 split")

    def _blocks(self, text: str, limit: int | None) -> torch.Tensor:
        # One pass over the whole text: block boundaries then ignore line/article breaks.
        # verbose=False silences the "longer than model_max_length" warning (we chunk next).
        ids = self.tokenizer(text, add_special_tokens=False, return_attention_mask=False,
                             verbose=False)["input_ids"]
        n = len(ids) // self.block_size
        if limit is not None:
            n = min(n, int(limit))
        if n == 0:
            raise ConfigError(f"{self.name}: text of {len(ids)} tokens is shorter than task.block_size="
                              f"{self.block_size}; lower task.block_size or use a longer corpus")
        return torch.tensor(ids[: n * self.block_size], dtype=torch.long).view(n, self.block_size)

    def num_train_examples(self) -> int:
        return len(self.train_blocks)

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train_blocks))
        for i in range(0, len(order), micro_batch_size):
            yield self._batch(self.train_blocks[torch.from_numpy(order[i:i + micro_batch_size])])

    @staticmethod
    def _batch(ids: torch.Tensor) -> dict:
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

    # --- loss and metrics --------------------------------------------------------------

    def loss(self, model, batch):
        return model_loss(model, batch)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        nll, count = 0.0, 0
        try:
            starts = range(0, len(self.eval_blocks), self.eval_batch_size)
            for i in tqdm(starts, desc="eval ppl", disable=not sys.stderr.isatty()):
                batch = self._batch(self.eval_blocks[i:i + self.eval_batch_size])
                # Every block is full, so the mean loss times the shifted-label count is the sum.
                predicted = batch["labels"][:, 1:].numel()
                nll += self.loss(model, batch).double().item() * predicted
                count += predicted
        finally:
            model.train(was_training)
        eval_loss = nll / count
        return {"perplexity": math.exp(eval_loss), "eval_loss": eval_loss}
