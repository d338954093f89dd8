"""Commonsense reasoning: the LLM-Adapters / DoRA protocol the LoFT paper reports (Tables 2, 7, 10, 16, 17).

Tasks: `commonsense170k` (train on the published commonsense_170k.json, else the union of the eight training sets; evaluate on every
set) and one task per set: `boolq piqa siqa hellaswag winogrande arc_c arc_e obqa`.

- sets.py: the eight sets, their answer patterns and row formats (hub <-> LLM-Adapters)
- prompts.py: the prompt styles (`reference`: DoRA's strings, `alpaca`: the clean template)
- data.py: local files, the hub conversion, the training union and its provenance
- task.py: `CommonsenseTask` (data, loss, metrics; DoRA's held-out model selection)
- lm_eval.py: the second protocol, lm-evaluation-harness log-likelihood

The names below are re-exported so `_target_: tasks.commonsense.CommonsenseTask` and the
imports of scripts keep working.
"""
from tasks.commonsense.data import PREPARE_FIX, PUBLISHED_FILE, UNION_8_FILE, dora_holdout, load_hub_split
from tasks.commonsense.prompts import PROMPT_STYLES, eval_prompt, reference_prompt, train_pair
from tasks.commonsense.sets import (ORDER, SETS, CommonsenseSet, extract_answer, from_llm_adapters, response_part,
                                    to_llm_adapters)
from tasks.commonsense.task import CommonsenseTask

__all__ = ["PREPARE_FIX", "PUBLISHED_FILE", "UNION_8_FILE", "dora_holdout", "load_hub_split", "PROMPT_STYLES",
           "eval_prompt", "reference_prompt", "train_pair", "ORDER", "SETS", "CommonsenseSet", "extract_answer",
           "from_llm_adapters", "response_part", "to_llm_adapters", "CommonsenseTask"]
