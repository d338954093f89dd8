"""The LOFT GLUE presets train with PSOFT's published harness (issue 18, item 5): every preset,
composed for each of the eight tasks, resolves to the settings written below from PSOFT's own
files; `glue_protocol=runner` gives back the runner's recipe; the CPU miniatures keep that
recipe; fixed-length padding and the warm-up ratio do what the harness does."""
from __future__ import annotations

import math
from types import SimpleNamespace

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from loft.config_schema import unset_later_fields
from loft.core.errors import ConfigError
from loft.records import config_hash
from loft.train.loop import total_steps, warmup_steps
from loft.validation import validate
from tasks.glue import GLUE, GlueTask
from tests.conftest import compose_config

# Read from fei407/PSOFT at commit 783a5e2585407eb5f82cd4a50803c50601de6397 (the code corpus):
# - 1-NLU/script/deberta_v3_base_psoft-cola.sh, PSOFT's only per-task GLUE script:
#   max_seq_length=64, per_device_train_batch_size=32, warmup_ratio=0.1, --num_train_epochs 20,
#   --learning_rate 6e-4, --eval_strategy epoch --save_strategy epoch --load_best_model_at_end True
#   (fei407/test_psoft's copy of the script has the same training flags).
# - 1-NLU/fine-tuning_glue.py: max_seq_length default 128; pad_to_max_length default True
#   (padding="max_length"); cls_learning_rate default 5e-4 for the "pooler"/"classifier" group;
#   peft_dropout default 0.0; num_train_steps = ceil(len(train) / batch) * epochs and
#   num_warmup_steps = int(num_train_steps * warmup_ratio); the dev split shuffled and halved
#   (best epoch on one half, reported on the other); the HF Trainer's TrainingArguments defaults
#   otherwise: lr_scheduler_type linear, weight_decay 0.0, max_grad_norm 1.0.
# CoLA is the script's; the seven tasks without a script reuse CoLA's settings, except the
# sequence length, which is the Python script's default (the 64 is the CoLA script's override).
PSOFT_COLA = {"max_seq_length": 64, "batch_size": 32, "epochs": 20, "lr": 6e-4, "warmup_ratio": 0.1}
PSOFT_DEFAULTS = {"max_seq_length": 128, "padding": "max_length", "head_lr": 5e-4, "adapter_dropout": 0.0,
                  "scheduler": "linear", "weight_decay": 0.0, "max_grad_norm": 1.0}
PSOFT = {task: {**PSOFT_DEFAULTS, **PSOFT_COLA, **({} if task == "cola" else {"max_seq_length": 128})}
         for task in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")}
TRAIN_ROWS = {"cola": 8551, "sst2": 67349, "mrpc": 3668, "qqp": 363846, "stsb": 5749, "mnli": 392702,
              "qnli": 104743, "rte": 2490}  # GLUE's train splits
PRESETS = ("lofto_glue_deberta_v3_base", "lofto_glue_deberta_v3_base_orth")


def build_task(cfg) -> GlueTask:
    return hydra.utils.instantiate(cfg.task, _recursive_=False, _convert_="all")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("glue_task", sorted(PSOFT))
def test_preset_resolves_to_psofts_settings(preset, glue_task):
    cfg = compose_config(f"+experiment={preset}", f"task=glue_{glue_task}")
    validate(cfg)
    want, task = PSOFT[glue_task], build_task(cfg)
    t = cfg.trainer
    assert cfg.model.name == "deberta_v3_base" and task.glue_task == glue_task
    assert (task.max_seq_length, task.padding) == (want["max_seq_length"], want["padding"])
    assert (task.halves.mode, task.halves.every) == ("half", "epoch")
    assert (t.lr, t.head_lr, t.batch_size, t.epochs) == (want["lr"], want["head_lr"], want["batch_size"], want["epochs"])
    assert (t.scheduler, t.weight_decay, t.max_grad_norm) == (want["scheduler"], want["weight_decay"], want["max_grad_norm"])
    assert cfg.adapter_dropout == want["adapter_dropout"] and t.max_steps is None
    steps = math.ceil(TRAIN_ROWS[glue_task] / want["batch_size"]) * want["epochs"]
    assert total_steps(t, TRAIN_ROWS[glue_task]) == steps
    assert warmup_steps(t, steps) == int(steps * want["warmup_ratio"])


@pytest.mark.parametrize("glue_task", ["cola", "rte"])
def test_runner_protocol_is_the_task_configs_recipe(glue_task):
    """`glue_protocol=runner` turns PSOFT's harness off: the task config's own settings, unchanged."""
    off = compose_config(f"+experiment={PRESETS[0]}", f"task=glue_{glue_task}", "glue_protocol=runner")
    plain = compose_config(f"task=glue_{glue_task}", "model=deberta_v3_base")
    assert OmegaConf.to_container(off.trainer) == OmegaConf.to_container(plain.trainer)
    assert OmegaConf.to_container(off.task) == OmegaConf.to_container(plain.task)
    assert off.adapter_dropout == plain.adapter_dropout
    task = build_task(off)
    assert (task.max_seq_length, task.padding, off.trainer.warmup_steps) == (128, "longest", 6)


@pytest.mark.parametrize("preset", ["cpu/lofto_glue_minilm", "cpu/lofto_glue_minilm_orth"])
def test_cpu_miniatures_keep_the_runner_recipe(preset):
    cfg = compose_config(f"+experiment={preset}")
    assert "padding" not in cfg.task and cfg.trainer.warmup_ratio is None
    assert build_task(cfg).padding == "longest" and cfg.task.max_seq_length == 128
    # the unset new key stays out of the hash: records written before it still match
    assert "trainer.warmup_ratio" in unset_later_fields(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    before = OmegaConf.to_container(cfg, resolve=True)
    del before["trainer"]["warmup_ratio"]
    older = tuple(k for k in unset_later_fields(cfg) if k != "trainer.warmup_ratio")  # e.g. model.adapter
    assert config_hash(config, ignore=unset_later_fields(cfg)) == config_hash(before, ignore=older)


def _rows():
    return {"features": {"input_ids": [[5, 6, 7], [8, 9]], "attention_mask": [[1, 1, 1], [1, 1]]},
            "labels": torch.tensor([0, 1])}


def test_max_length_padding_pads_every_row_to_the_sequence_length():
    longest = GlueTask(glue_task="cola", max_seq_length=64)
    fixed = GlueTask(glue_task="cola", max_seq_length={"cola": 64, "rte": 128}, padding="max_length")
    for task in (longest, fixed):
        task.tokenizer = SimpleNamespace(pad_token_id=0)
    short, full = longest._collate(_rows(), [0, 1]), fixed._collate(_rows(), [0, 1])
    assert short["input_ids"].shape == (2, 3) and full["input_ids"].shape == (2, 64)
    assert full["input_ids"][1].tolist() == [8, 9] + [0] * 62 and full["attention_mask"][1].sum() == 2
    assert torch.equal(full["input_ids"][:, :3], short["input_ids"])


def test_glue_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="task.padding='same'"):
        GlueTask(glue_task="cola", padding="same")
    with pytest.raises(ConfigError, match="not rte"):
        GlueTask(glue_task="rte", max_seq_length={"cola": 64})
    with pytest.raises(ConfigError, match="task.glue_task='wnli'"):
        GlueTask(glue_task="wnli")
    with pytest.raises(ConfigError, match="task.source='web'"):
        GlueTask(glue_task="cola", source="web")
    assert set(GLUE) == set(PSOFT)


def test_warmup_ratio_rounds_down_and_excludes_warmup_steps():
    tcfg = OmegaConf.create({"warmup_steps": 0, "warmup_ratio": 0.1})
    assert warmup_steps(tcfg, 5359) == 535 and warmup_steps(tcfg, 9) == 0
    assert warmup_steps(OmegaConf.create({"warmup_steps": 6, "warmup_ratio": None}), 5359) == 6
    with pytest.raises(ConfigError, match=r"trainer.warmup_ratio=0.1: .*warmup_steps=0"):
        validate(compose_config("task=glue_cola", "model=minilm_l6", "trainer.warmup_ratio=0.1"))  # warmup_steps=6
    with pytest.raises(ConfigError, match="trainer.warmup_ratio=1.5"):
        validate(compose_config("task=glue_cola", "model=minilm_l6", "trainer.warmup_steps=0",
                                "trainer.warmup_ratio=1.5"))
