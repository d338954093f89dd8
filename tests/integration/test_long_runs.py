"""Long runs: checkpoints resume bit-for-bit, interrupted sweeps skip finished runs and resume
partial ones, and non-finite steps are skipped, counted, and stop the run when they persist."""
from __future__ import annotations

import json

import pytest
import torch

from loft.core.errors import ConfigError, TrainingDiverged
from loft.runner import run
from loft.train.loop import Interrupted
from tests.conftest import compose_config
from tests.integration.test_runner import SMALL_MATFAC, TINY_LM, _cli

LONG = (*TINY_LM, "trainer.max_steps=40", "trainer.batch_size=4", "trainer.micro_batch_size=2",
        "trainer.warmup_steps=5", "trainer.lr=3e-3", "trainer.checkpoint_every=10", "task.eval_limit=2")


def _final_weights(ckpt_dir, method):
    path = next((ckpt_dir / "wikitext2" / "tiny_llama" / method).glob("*/last.pt"))
    return torch.load(path, weights_only=False)["model"]


@pytest.mark.parametrize("method", ["lora", "loft"])
def test_resume_equals_uninterrupted_run(method, tmp_path):
    """Stop after step 20 of 40, resume, compare with 40 straight (dropout on: RNG restored)."""
    straight_dirs = (f"paths.runs_dir={tmp_path}/a", f"paths.checkpoint_dir={tmp_path}/ca")
    resumed_dirs = (f"paths.runs_dir={tmp_path}/b", f"paths.checkpoint_dir={tmp_path}/cb")
    straight = run(compose_config(*LONG, f"method={method}", *straight_dirs))
    with pytest.raises(Interrupted):
        run(compose_config(*LONG, f"method={method}", "trainer.stop_after_steps=20", *resumed_dirs))
    assert not list((tmp_path / "b").rglob("*.json")), "an interrupted run must not write a record"
    resumed = run(compose_config(*LONG, f"method={method}", "resume=true", *resumed_dirs))
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    assert resumed["metrics"] == straight["metrics"]
    a, b = _final_weights(tmp_path / "ca", method), _final_weights(tmp_path / "cb", method)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_a_different_config_is_refused(tmp_path):
    dirs = (f"paths.runs_dir={tmp_path}/r", f"paths.checkpoint_dir={tmp_path}/c")
    with pytest.raises(Interrupted):
        run(compose_config(*SMALL_MATFAC, "method=loft", "trainer.checkpoint_every=5", "trainer.stop_after_steps=10", *dirs))
    with pytest.raises(ConfigError, match="different config"):
        run(compose_config(*SMALL_MATFAC, "method=loft", "trainer.checkpoint_every=5", "trainer.lr=0.5", "resume=true", *dirs))


def test_interrupted_sweep_skips_finished_and_resumes_partial(tmp_path):
    sweep = ("method=lora,loft", *SMALL_MATFAC, "trainer.checkpoint_every=10", f"paths.checkpoint_dir={tmp_path}/c")
    first = _cli(*sweep, "trainer.stop_after_steps=20", runs_dir=tmp_path / "r", multirun=True)
    assert first.returncode == 3 and "stopped after step 20" in first.stderr  # killed in the first job
    second = _cli(*sweep, runs_dir=tmp_path / "r", multirun=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stdout and second.stdout.count("record:") == 2
    third = _cli(*sweep, runs_dir=tmp_path / "r", multirun=True)
    assert third.stdout.count("skip:") == 2 and "record:" not in third.stdout
    straight = run(compose_config(*SMALL_MATFAC, "method=lora", f"paths.runs_dir={tmp_path}/s"))
    (lora_path,) = (tmp_path / "r" / "matfac" / "matfac" / "lora").glob("r4_seed0_*.json")  # named by its variant
    lora = json.loads(lora_path.read_text())
    assert lora["history"]["loss"] == straight["history"]["loss"]


def test_non_finite_steps_are_skipped_counted_and_bounded(tmp_path, monkeypatch):
    from tasks.matfac import MatFacTask

    real_loss, calls = MatFacTask.loss, {"n": 0}

    def flaky(self, model, batch):  # steps 3 and 4 produce NaN, the rest are fine
        calls["n"] += 1
        loss = real_loss(self, model, batch)
        return loss * float("nan") if calls["n"] in (3, 4) else loss

    monkeypatch.setattr(MatFacTask, "loss", flaky)
    record = run(compose_config(*SMALL_MATFAC, "method=loft", f"paths.runs_dir={tmp_path}"))
    assert record["bad_steps"] == 2 and len(record["history"]["loss"]) == 38
    monkeypatch.setattr(MatFacTask, "loss", lambda self, m, b: real_loss(self, m, b) * float("nan"))
    with pytest.raises(TrainingDiverged, match="3 non-finite steps in a row up to step 3 with method=loft"):
        run(compose_config(*SMALL_MATFAC, "method=loft", "trainer.max_bad_steps=3", "force=true", f"paths.runs_dir={tmp_path}"))


@pytest.mark.parametrize("method, dtype", [("lora", "float32"), ("loft", "float64")])
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(method, dtype, tmp_path):
    """torchrun with 2 CPU processes (gloo): micro 2 x accumulation 2 x world 2 = batch 8.

    LoFT runs in float64 here: its second moment is rebuilt from cross terms with
    cancellation, which magnifies the round-off of DDP's different summation order (after 6
    float32 steps weights differ by up to 0.5% relative, against 2e-7 for AdamW; in float64
    by 2e-9). That is a conditioning property of the method, not a DDP difference."""
    import subprocess
    import sys

    from tests.conftest import DATA_DIR, REPO

    args = [*TINY_LM, f"method={method}", f"trainer.dtype={dtype}", "trainer.max_steps=6", "trainer.micro_batch_size=2",
            "trainer.lr=3e-3", "trainer.checkpoint_every=3", "adapter_dropout=0.0", "logger=disabled",
            f"paths.data_dir={DATA_DIR}"]
    single = run(compose_config(*args, f"paths.runs_dir={tmp_path}/one", f"paths.checkpoint_dir={tmp_path}/c1"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "run.py", *args,
           f"paths.runs_dir={tmp_path}/two", f"paths.checkpoint_dir={tmp_path}/c2", f"paths.adapters_dir={tmp_path}/a2"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    double = json.loads(next((tmp_path / "two").rglob("*.json")).read_text())
    assert double["world_size"] == 2 and double["accumulation_steps"] == 2 and double["effective_batch_size"] == 8
    assert double["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-5)
    a, b = _final_weights(tmp_path / "c1", method), _final_weights(tmp_path / "c2", method)
    assert a.keys() == b.keys()
    for name in a:
        assert ((a[name] - b[name]).norm() / a[name].norm()).item() < 1e-6, name


@pytest.mark.parametrize("launcher, target", [("slurm", "SlurmLauncher"), ("local", "JoblibLauncher")])
def test_launcher_presets_compose(launcher, target):
    from hydra import compose, initialize_config_dir

    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)


def test_fsdp_baseline_matches_one_process_and_resumes(tmp_path):
    """FSDP2 on 2 CPU processes (what `accelerate launch --use_fsdp` asks for): LoRA sharded,
    interrupted after step 3, resumed from the gathered checkpoint, equals one process."""
    import os
    import subprocess
    import sys

    from tests.conftest import DATA_DIR, REPO

    args = [*TINY_LM, "method=lora", "trainer.max_steps=6", "trainer.micro_batch_size=2", "trainer.lr=3e-3",
            "trainer.checkpoint_every=3", "adapter_dropout=0.0", "logger=disabled", f"paths.data_dir={DATA_DIR}"]
    single = run(compose_config(*args, f"paths.runs_dir={tmp_path}/one", f"paths.checkpoint_dir={tmp_path}/c1"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "run.py", *args,
           f"paths.runs_dir={tmp_path}/two", f"paths.checkpoint_dir={tmp_path}/c2", f"paths.adapters_dir={tmp_path}/a2"]
    env = {**os.environ, "ACCELERATE_USE_FSDP": "true"}
    first = subprocess.run([*cmd, "trainer.stop_after_steps=3"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
    assert "stopped after step 3" in first.stderr, first.stderr[-3000:]
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "resumed from" in second.stdout, second.stderr[-3000:]
    sharded = json.loads(next((tmp_path / "two").rglob("*.json")).read_text())
    assert sharded["parallelism"] == "fsdp" and sharded["world_size"] == 2
    assert sharded["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-5)
    assert sharded["metrics"]["perplexity"] == pytest.approx(single["metrics"]["perplexity"], rel=1e-5)
