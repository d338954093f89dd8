"""lm-evaluation-harness on the in-memory model, shared by the commonsense and MGSM tasks.

The commonsense protocol (tasks/commonsense/lm_eval.py, `task.eval_protocol=lm_eval`) scores the
same in-memory model (adapter included: a PEFT
model is passed as is) with `lm_eval.simple_evaluate(model=HFLM(pretrained=model,
tokenizer=tokenizer, batch_size=...), tasks=[...], num_fewshot=0)`: for each choice the
harness sums the log-likelihood of " choice" after its zero-shot prompt; `acc` takes the
arg-max, `acc_norm` the arg-max per byte of the choice. Harness tasks: boolq, piqa,
social_iqa, hellaswag, winogrande (partial scoring of the sentence after the blank),
arc_easy, arc_challenge, openbookqa. Tested with lm-eval 0.4.13.

Data:
- `data=hub` (or `auto` with the hub reachable): the harness' own task configs and hub
  datasets, unchanged.
- `data=local` (or `auto` offline): the harness' own task configs (prompt, choices,
  target, metrics: loaded from its YAML, `!function`s included) with the dataset swapped
  for the local LLM-Adapters test file converted back to the canonical fields
  (`tasks.commonsense.sets.from_llm_adapters`) through the config's `custom_dataset` hook, so
  nothing touches the network. The LLM-Adapters files hold the same splits the harness
  scores (BoolQ/PIQA/SIQA/WinoGrande/HellaSwag validation, ARC/OBQA test, same counts).
  Differences, all from the LLM-Adapters files: BoolQ has no passage (the harness prompt
  becomes "\\nQuestion: ...?\\nAnswer:", a question-only BoolQ, lower than the published
  passage-conditioned numbers); ARC/OBQA choice labels are renamed A-E (labels are not
  part of the prompt); HellaSwag's ctx is not split into ctx_a/ctx_b.
"""
from __future__ import annotations

from functools import lru_cache

from tasks.sources import hub_allowed

LM_EVAL_FIX = "pip install lm-eval==0.4.13"


@lru_cache(maxsize=1)
def _task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()


def harness_config(harness_task: str, docs: list[dict]) -> dict:
    """The harness' config of `harness_task` with its dataset replaced by `docs`."""
    import datasets
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = _task_manager()._entry(harness_task)
    if entry is None or entry.yaml_path is None:
        raise KeyError(f"lm-eval has no task {harness_task!r}")
    cfg = dict(load_yaml(entry.yaml_path, resolve_func=True))
    split = cfg.get("test_split") or cfg.get("validation_split")
    ds = datasets.Dataset.from_list(docs)
    cfg.update(
        dataset_path="json",  # never loaded: custom_dataset below provides the data
        dataset_name=None,
        dataset_kwargs=None,
        custom_dataset=lambda **_: datasets.DatasetDict({split: ds}),
        training_split=None,
        validation_split=split if split == cfg.get("validation_split") else None,
        test_split=split if split == cfg.get("test_split") else None,
        fewshot_split=None,
    )
    cfg.pop("tag", None)
    return cfg


def use_hub(data: str) -> bool:
    """`data`: hub, local, or auto (the hub when reachable)."""
    return hub_allowed(data) if data == "auto" else data == "hub"


def run_harness(model, tokenizer, specs: list, limit: int | None, batch_size: int,
                max_length: int | None = None) -> dict:
    """`simple_evaluate` zero-shot on the in-memory model (eval mode for the call)."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError as err:  # optional dependency
        raise ImportError(f"task.eval_protocol=lm_eval needs lm-evaluation-harness: {LM_EVAL_FIX}") from err
    was_training = model.training
    model.eval()
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  **({"max_length": max_length} if max_length else {}))
        return simple_evaluate(model=lm, tasks=specs, num_fewshot=0, limit=limit, task_manager=_task_manager(),
                               log_samples=False, bootstrap_iters=0, verbosity="WARNING")
    finally:
        model.train(was_training)
