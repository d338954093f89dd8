"""Config validation: each bad value of issue 11 ends in one line `key=value: allowed ...` (types
while Hydra composes, ranges and the task/model pairing in loft.validation.validate), every
shipped task config passes with its default model, and the CLI prints the line and exits 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import HydraException
from hydra.utils import get_class
from omegaconf.errors import OmegaConfBaseException

from loft.core.errors import ConfigError
from loft.validation import MODEL_KINDS, check_writable, compose_error_line, validate
from tests.conftest import DATA_DIR, REPO, compose_config

# _*.yaml: family bases (_glue, ...), not tasks
TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml") if not p.stem.startswith("_"))
MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
FAST = ("trainer.max_steps=1",)  # the default (matfac) otherwise; validation never trains


def error_line(*overrides: str) -> str | None:
    """What run.py would print after `error: ` (None: the config is valid)."""
    try:
        validate(compose_config(*overrides))
    except (HydraException, OmegaConfBaseException) as err:
        return compose_error_line(err)
    except ConfigError as err:
        return str(err)
    return None


BAD = [  # (overrides, the line's start): issue 11's list, then neighbours of each check
    (("rank=abc",), "rank=abc: allowed an integer"),
    (("seed=abc",), "seed=abc: allowed an integer"),
    (("trainer.lr=-1",), "trainer.lr=-1.0: allowed a number > 0"),
    (("trainer.batch_size=0",), "trainer.batch_size=0: allowed an integer >= 1"),
    (("trainer.micro_batch_size=0",), "trainer.micro_batch_size=0: allowed an integer >= 1 or null"),
    (("trainer.max_steps=-5",), "trainer.max_steps=-5: allowed an integer >= 0 or null"),
    (("trainer.max_steps=null", "trainer.epochs=0"), "trainer.epochs=0: allowed an integer >= 1"),
    (("trainer.checkpoint_every=-1",), "trainer.checkpoint_every=-1: allowed an integer >= 0"),
    (("task=glue_sst2", "model=tiny_llama"), "task=glue_sst2 model=tiny_llama: the task trains a seq_cls model"),
    (("task=wikitext2", "model=minilm_l6"), "task=wikitext2 model=minilm_l6: the task trains a causal_lm model"),
    (("task=image_fashion_mnist", "model=minilm_l6"), "task=image_fashion_mnist model=minilm_l6: the task trains "
                                                       "a image_cls model"),
    (("task=gsm8k", "model=tiny_vit"), "task=gsm8k model=tiny_vit: the task trains a causal_lm model"),
    (("trainer.lr=abc",), "trainer.lr=abc: allowed a number"),
    (("trainer.max_steps=abc",), "trainer.max_steps=abc: allowed an integer or null"),
    (("trainer.head_lr=0",), "trainer.head_lr=0.0: allowed a number > 0 or null"),
    (("trainer.batch_size=16", "trainer.micro_batch_size=5"), "trainer.micro_batch_size=5: allowed a divisor of "
                                                              "trainer.batch_size=16"),
    (("trainer.betas=[0.9,1.5]",), "trainer.betas=[0.9, 1.5]: allowed two numbers in [0, 1)"),
    (("trainer.weight_decay=-0.1",), "trainer.weight_decay=-0.1: allowed a number >= 0"),
    (("trainer.warmup_steps=-1",), "trainer.warmup_steps=-1: allowed an integer >= 0"),
    (("trainer.max_grad_norm=0",), "trainer.max_grad_norm=0.0: allowed a number > 0 or null"),
    (("trainer.max_bad_steps=0",), "trainer.max_bad_steps=0: allowed an integer >= 1"),
    (("trainer.scheduler=cosinus",), "trainer.scheduler=cosinus: allowed linear, cosine,"),
    (("rank=0",), "rank=0: allowed an integer >= 1"),
    (("seed=-1",), "seed=-1: allowed an integer in [0, 4294967295]"),
    (("adapter_dropout=1.0",), "adapter_dropout=1.0: allowed a number in [0, 1)"),
    (("resume=maybe",), "resume=maybe: allowed auto, true, false"),
    (("task.eval_limit=0",), "task.eval_limit=0: allowed an integer >= 1 or null (null = all rows)"),
    (("task.max_train_samples=abc",), "task.max_train_samples=abc: allowed an integer >= 1 or null"),
    (("force=maybe",), "force=maybe: allowed true or false"),
    (("model.kind=rnn",), "model.kind=rnn: allowed one of causal_lm, seq_cls, image_cls, matrix"),
    (("trainer.lrr=1",), "Could not override 'trainer.lrr'. To append to your config use +trainer.lrr=1"),
]


@pytest.mark.parametrize("overrides, line", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_one_line_naming_key_value_and_what_is_allowed(overrides, line):
    got = error_line(*FAST, *overrides)
    assert got is not None and got.startswith(line), got
    assert "\n" not in got


def test_good_values_pass():
    for overrides in [(), ("trainer.max_steps=0",), ("trainer.max_steps=null", "trainer.epochs=2"),
                      ("trainer.micro_batch_size=4", "trainer.batch_size=16"), ("resume=true",), ("resume=false",),
                      ("trainer.epochs=0",), ("task.eval_limit=1",), ("trainer.checkpoint_every=0",)]:
        assert error_line(*FAST, *overrides) is None, overrides


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_validates_with_its_default_model(task):
    assert error_line(f"task={task}") is None


def test_every_model_declares_a_kind_some_task_trains():
    trained = {kind for task in TASKS for kind in get_class(compose_config(f"task={task}").task._target_).model_kinds}
    for model in MODELS:
        assert compose_config(f"model={model}").model.kind in MODEL_KINDS, model
    assert trained == set(MODEL_KINDS)


def test_unwritable_results_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for key in ("runs_dir", "checkpoint_dir"):
        cfg = compose_config(*FAST, f"paths.{key}={blocker / 'sub'}")
        with pytest.raises(ConfigError, match=rf"^paths\.{key}=.*a-file/sub is not writable .*paths\.{key}=PATH"):
            check_writable(cfg, Path)
    check_writable(compose_config(*FAST, f"paths.runs_dir={tmp_path / 'new' / 'runs'}"), Path)
    assert (tmp_path / "new" / "runs").is_dir() and not list((tmp_path / "new" / "runs").iterdir())


@pytest.mark.parametrize("args, line", [
    (("rank=abc",), "error: rank=abc: allowed an integer"),                      # while composing
    (("trainer.batch_size=0",), "error: trainer.batch_size=0: allowed an integer >= 1"),  # validate()
    (("task=glue_sst2", "model=tiny_llama"), "error: task=glue_sst2 model=tiny_llama: the task trains"),
])
def test_cli_prints_one_error_line_and_exits_2(args, line, tmp_path):
    cmd = [sys.executable, "run.py", "logger=disabled", f"paths.data_dir={DATA_DIR}",
           f"paths.runs_dir={tmp_path / 'runs'}", f"paths.checkpoint_dir={tmp_path / 'ckpt'}", *args]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(line), out.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be written before the config is valid"


def test_a_tasks_own_setting_check_reaches_the_cli_as_one_line(tmp_path):
    """A ConfigError a task raises while Hydra instantiates it is printed as itself (not inside
    Hydra's 'Error in call to target ...' wrapper), exit 2."""
    cmd = [sys.executable, "run.py", "logger=disabled", f"paths.data_dir={DATA_DIR}", "task=humaneval",
           "model=tiny_llama", "+task.protocol=bogus", "trainer.max_steps=0",
           f"paths.runs_dir={tmp_path / 'runs'}", f"paths.checkpoint_dir={tmp_path / 'ckpt'}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == "error: task.protocol='bogus': use runner or evalplus", out.stderr
    assert "Traceback" not in out.stderr and "Error in call to target" not in out.stderr
