"""Shared pieces of the instruction-tuned LM tasks: prompts, supervised batches, generation.

Used by `tasks/commonsense/`, `tasks/math/` and `tasks/code/`.

- `alpaca_prompt`: the Alpaca template (Taori et al. 2023) used by LLM-Adapters/DoRA
  (commonsense), MetaMath (GSM8K/MATH) and our CodeFeedback fine-tune.
- `tokenize_supervised`: one (prompt, target) pair -> input_ids/labels exactly as
  LLM-Adapters' `finetune.py` does it (`tokenize` + `generate_and_tokenize_prompt`):
  the full text is truncated to `cutoff_len`, EOS is appended when it fits, labels =
  inputs, and with `train_on_inputs=False` the first len(tokenize(prompt)) labels are
  -100. The same recipe is Answer.AI's/MetaMath's (they always mask the prompt).
- `SupervisedData`: (prompt, target) pairs -> deterministic shuffled micro batches (tokenised
  on first use),
  right-padded (pads are -100 in the labels and 0 in the attention mask; the pad id is
  never used to find pads, so pad == eos is safe).
- `generate`: batched, left-padded generation (greedy, beam or sampling) that works on
  plain HF models and PEFT-wrapped ones (`PeftModel.generate`). Prompts are sorted by
  length so a batch carries little padding; per-row stop strings and an optional
  per-row "done" predicate end rows early (greedy/sampling only) and the output is cut
  at the first stop string, like vLLM's `stop=` which MetaMath's scripts use.

Why batching gives the same answers as the reference scripts' batch 1: with left
padding, the attention mask hides the pads and `generate` derives position ids from the
mask, so each row sees exactly its own prompt; only float round-off differs (measured
in `scripts/bench_generation.py`, which also reports the agreement).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from tasks.base import Task, model_loss, on_model_device
from tqdm.auto import tqdm

IGNORE_INDEX = -100

ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The clean Alpaca template (stanford_alpaca `PROMPT_DICT`), the form given in the
    LLM-Adapters paper. Its scripts' strings carry extra indentation: see
    `tasks.commonsense.prompts.reference_prompt` for the byte-exact variant."""
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)


# --- supervised fine-tuning data -------------------------------------------------------

def tokenize_supervised(tokenizer, prompt: str, target: str, cutoff_len: int,
                        train_on_inputs: bool = True, add_eos: bool = True) -> dict:
    """LLM-Adapters `finetune.py` tokenisation of prompt + target (see module docstring)."""
    ids = tokenizer(prompt + target, truncation=True, max_length=cutoff_len, add_special_tokens=True,
                    verbose=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if add_eos and eos is not None and (not ids or ids[-1] != eos) and len(ids) < cutoff_len:
        ids = ids + [eos]
    labels = list(ids)
    if not train_on_inputs:
        n_prompt = len(tokenizer(prompt, truncation=True, max_length=cutoff_len, add_special_tokens=True,
                                 verbose=False)["input_ids"])
        labels[:n_prompt] = [IGNORE_INDEX] * min(n_prompt, len(labels))
    return {"input_ids": ids, "labels": labels}


def collate_right(examples: Sequence[dict], pad_id: int) -> dict:
    """Right-pad a list of {input_ids, labels} into tensors (labels padded with -100)."""
    width = max(len(e["input_ids"]) for e in examples)
    n = len(examples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, e in enumerate(examples):
        k = len(e["input_ids"])
        input_ids[i, :k] = torch.tensor(e["input_ids"], dtype=torch.long)
        labels[i, :k] = torch.tensor(e["labels"], dtype=torch.long)
        mask[i, :k] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class SupervisedData:
    """Training examples with the Task contract's batching. Tokenised lazily, on the first
    batch: an evaluation-only run (trainer.max_steps=0) never pays for it."""

    def __init__(self, tokenizer, pairs: Iterable[tuple[str, str]], cutoff_len: int, train_on_inputs: bool,
                 desc: str = "tokenize"):
        self.tokenizer, self.pairs = tokenizer, list(pairs)
        self.cutoff_len, self.train_on_inputs, self.desc = cutoff_len, train_on_inputs, desc
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self._examples: list[dict] | None = None

    @property
    def examples(self) -> list[dict]:
        if self._examples is None:
            quiet = len(self.pairs) < 5000 or not sys.stderr.isatty()
            self._examples = [tokenize_supervised(self.tokenizer, p, t, self.cutoff_len, self.train_on_inputs)
                              for p, t in tqdm(self.pairs, desc=self.desc, disable=quiet)]
        return self._examples

    def __len__(self) -> int:
        return len(self.pairs)

    def batches(self, micro_batch_size: int, epoch: int, seed: int):
        """One epoch, shuffled deterministically by (seed, epoch), as tasks/lm/wikitext2.py does."""
        examples = self.examples
        order = np.random.default_rng([seed, epoch]).permutation(len(examples))
        for i in range(0, len(order), micro_batch_size):
            yield collate_right([examples[j] for j in order[i:i + micro_batch_size]], self.pad_id)

    def trained_token_fraction(self) -> float:
        """Share of tokens that carry a label (1.0 with train_on_inputs=True)."""
        total = sum(len(e["labels"]) for e in self.examples)
        return sum(x != IGNORE_INDEX for e in self.examples for x in e["labels"]) / max(total, 1)


def causal_lm_loss(model, batch: dict):
    """HF's shifted cross-entropy, mean over the micro batch's labelled tokens."""
    return model_loss(model, batch)


# --- generation ------------------------------------------------------------------------

@dataclass
class GenerationSettings:
    """Decoding knobs shared by the generative tasks (task configs expose them)."""

    max_new_tokens: int = 32
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    num_return_sequences: int = 1
    batch_size: int = 16       # prompts per generate() call (x beams / samples sequences)
    stop: tuple[str, ...] = ()  # cut the output at the first of these; rows stop there


class _RowStopper:
    """A `StoppingCriteria` returning one bool per row: a row is done when its new text
    contains a stop string or satisfies `done`. Only the tail of each row is decoded per
    step (stop strings are short), so the check is O(window) per step."""

    def __init__(self, tokenizer, start: int, stop: Sequence[str], done: Callable[[str], bool] | None,
                 window: int):
        self.tokenizer, self.start, self.stop, self.done = tokenizer, start, tuple(stop), done
        self.window = window

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.start:]
        if self.done is not None:  # needs the whole new text (short outputs only)
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        else:
            texts = self.tokenizer.batch_decode(new[:, -self.window:], skip_special_tokens=True)
        flags = [any(s in t for s in self.stop) or (self.done is not None and self.done(t)) for t in texts]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]


def _eos_ids(model, tokenizer) -> list[int]:
    ids = set()
    for src in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    return sorted(ids)


def _new_text(tokenizer, prompt_ids: torch.Tensor, out: torch.Tensor, start: int, n_ret: int) -> list[str]:
    """The generated text of each row. Decoding the new tokens alone is wrong for
    SentencePiece tokenizers (LLaMA-1/2), whose decoder strips one leading space from the
    first token, which breaks Python indentation; so decode prompt + output and cut the
    decoded prompt off, falling back to the new tokens when the prompt is not a prefix."""
    prompts = tokenizer.batch_decode(prompt_ids, skip_special_tokens=True)
    full = tokenizer.batch_decode(out, skip_special_tokens=True)
    new = tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
    texts = []
    for r, (f, n) in enumerate(zip(full, new)):
        p = prompts[r // n_ret]
        texts.append(f[len(p):] if f.startswith(p) else n)
    return texts


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], settings: GenerationSettings,
             done: Callable[[str], bool] | None = None, desc: str = "generate",
             add_special_tokens: bool = True, seed: int | None = None) -> list[list[str]]:
    """Generate for every prompt; returns, per prompt, `num_return_sequences` strings of
    new text (special tokens dropped, cut at the first stop string).

    `done(text) -> bool` may end a row early once its answer is decided (greedy or
    sampling only: beam search keeps its beams). The model is put in eval mode for the
    call and restored afterwards."""
    from transformers import GenerationConfig, StoppingCriteriaList

    if settings.num_beams > 1 and settings.do_sample:
        raise ValueError("beam search with sampling is not supported; set num_beams=1 or do_sample=false")
    was_training = model.training
    model.eval()
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n_ret = settings.num_return_sequences
    eos = _eos_ids(model, tokenizer)
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams, do_sample=settings.do_sample,
        num_return_sequences=n_ret, pad_token_id=pad_id, eos_token_id=eos or None,
        bos_token_id=getattr(tokenizer, "bos_token_id", None),
        **({"temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k or 0}
           if settings.do_sample else {}),
    )
    if seed is not None:
        torch.manual_seed(seed)
    lengths = [len(tokenizer(p, add_special_tokens=add_special_tokens, verbose=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # longest first: OOM shows up at once
    results: list[list[str] | None] = [None] * len(prompts)
    early = (done is not None or settings.stop) and settings.num_beams == 1
    window = max([len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in settings.stop] or [1]) + 4
    try:
        starts = range(0, len(order), settings.batch_size)
        for b in tqdm(starts, desc=desc, disable=not sys.stderr.isatty()):
            idx = order[b:b + settings.batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=add_special_tokens)
            enc = on_model_device(model, {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")})
            start = enc["input_ids"].shape[1]
            criteria = StoppingCriteriaList(
                [_RowStopper(tokenizer, start, settings.stop, done, window)] if early else [])
            out = model.generate(**enc, generation_config=config, stopping_criteria=criteria)
            texts = _new_text(tokenizer, enc["input_ids"], out, start, n_ret)
            for j, i in enumerate(idx):
                results[i] = [truncate_at_stop(t, settings.stop) for t in texts[j * n_ret:(j + 1) * n_ret]]
    finally:
        tokenizer.padding_side = saved_side
        model.train(was_training)
    return results  # type: ignore[return-value]


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


class SupervisedLMTask(Task):
    """Shared half of the generative LM tasks (commonsense, math, code): training on a
    `SupervisedData` in `self.train_data` with the causal-LM loss, and notes that end up in
    the run record (partial offline data, missing sets) as well as on stderr (`Task._note`)."""
    model_kinds = ("causal_lm",)

    def num_train_examples(self) -> int:
        return len(self.train_data)

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int):
        return self.train_data.batches(micro_batch_size, epoch, seed)

    def loss(self, model, batch):
        return causal_lm_loss(model, batch)
