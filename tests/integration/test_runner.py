"""The runner end to end: records, skip/force, errors that name the fix, every method config."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loft.core.errors import ConfigError, TrainingDiverged
from loft.runner import run
from tasks.base import DataMissingError
from tests.conftest import DATA_DIR, LM_METHODS, REPO, compose_config

SMALL_MATFAC = ("task=matfac", "model.m=48", "model.n=32", "task.target_rank=4", "rank=4", "trainer.max_steps=40")
TINY_LM = ("task=wikitext2", "model=tiny_llama", "task.train_file=lm/tinyshakespeare.txt", "task.block_size=32",
           "task.max_train_samples=64", "task.eval_limit=8", "trainer.batch_size=8")
RECORD_FIELDS = {"task", "model", "method", "rank", "seed", "metrics", "config", "trainable_params", "wall_time_s",
                 "peak_memory_bytes", "versions", "git_sha", "history"}


def test_record_has_contract_fields_and_is_skipped_on_rerun(runs_dir):
    cfg = compose_config(*SMALL_MATFAC, "method=loft", runs_dir=runs_dir)
    record = run(cfg)
    path = runs_dir / "matfac" / "matfac" / "loft" / "r4_seed0.json"
    on_disk = json.loads(path.read_text())
    assert RECORD_FIELDS <= on_disk.keys()
    assert on_disk["metrics"] == record["metrics"]
    assert on_disk["versions"]["torch"] in torch.__version__
    assert len(on_disk["history"]["loss"]) == 40
    assert on_disk["history"]["loss"][-1] < 0.1 * on_disk["history"]["loss"][0]
    assert on_disk["trainable_params"] == 4 * (48 + 32)
    assert not list(path.parent.glob(".tmp-*")), "atomic write left a temp file"
    assert on_disk["data"] is None  # matfac reads no data file: provenance unknown

    assert run(cfg) is None, "a finished combination must be skipped"
    changed = compose_config(*SMALL_MATFAC, "method=loft", "trainer.lr=0.01", runs_dir=runs_dir)
    with pytest.raises(ConfigError, match="force=true"):
        run(changed)
    forced = compose_config(*SMALL_MATFAC, "method=loft", "trainer.lr=0.01", "force=true", runs_dir=runs_dir)
    assert run(forced)["config"]["trainer"]["lr"] == 0.01


def test_the_tasks_data_provenance_is_recorded(runs_dir, tmp_path, monkeypatch):
    from loft.core.provenance import file_provenance
    from tasks.matfac import MatFacTask

    train_file = tmp_path / "train.txt"
    train_file.write_text("one row\nanother row\n")
    monkeypatch.setattr(MatFacTask, "provenance", lambda self: file_provenance(train_file, 2, root=tmp_path))
    record = run(compose_config(*SMALL_MATFAC, "method=lora", "trainer.max_steps=2", runs_dir=runs_dir))
    on_disk = json.loads((runs_dir / "matfac" / "matfac" / "lora" / "r4_seed0.json").read_text())
    expected = {"train_file": "train.txt", "rows": 2, "sha256": hashlib.sha256(b"one row\nanother row\n").hexdigest()}
    assert record["data"] == on_disk["data"] == expected


def test_full_method_has_no_rank_in_its_key(runs_dir):
    run(compose_config(*SMALL_MATFAC, "method=full", runs_dir=runs_dir))
    assert (runs_dir / "matfac" / "matfac" / "full" / "full_seed0.json").exists()


@pytest.mark.parametrize("method", LM_METHODS)
def test_every_method_trains_tiny_llama(method, runs_dir):
    record = run(compose_config(*TINY_LM, f"method={method}", "trainer.max_steps=2", "task.eval_limit=2",
                                "trainer.batch_size=4", runs_dir=runs_dir))
    losses = record["history"]["loss"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    assert math.isfinite(record["metrics"]["perplexity"])
    assert record["trainable_params"] > 0


def test_dora_on_a_zero_matrix_is_stopped_by_the_nan_guard(runs_dir):
    """DoRA divides by ||W0||, which is 0 on the matfac problem: every step is non-finite."""
    with pytest.raises(TrainingDiverged, match="non-finite steps in a row up to step 3 with method=dora"):
        run(compose_config(*SMALL_MATFAC, "method=dora", "trainer.max_bad_steps=3", runs_dir=runs_dir))


def test_loft_trains_peft_language_model_end_to_end(runs_dir):
    cfg = compose_config(*TINY_LM, "method=loft", "trainer.lr=3e-3", "trainer.max_steps=12", runs_dir=runs_dir)
    record = run(cfg)
    losses = record["history"]["loss"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    assert record["metrics"]["perplexity"] > 1
    assert record["method_info"]["peft_config"] == "LoraConfig"


def test_gradient_accumulation_matches_one_big_batch(runs_dir):
    """batch 8 as 4 micro batches of 2 = one batch of 8 (equal-length blocks, no dropout)."""
    common = (*TINY_LM, "method=lora", "adapter_dropout=0.0", "trainer.max_steps=3", "trainer.lr=1e-2")
    whole = run(compose_config(*common, "tag=whole", runs_dir=runs_dir))
    accum = run(compose_config(*common, "trainer.micro_batch_size=2", "tag=accum", runs_dir=runs_dir))
    assert accum["history"]["loss"] == pytest.approx(whole["history"]["loss"], rel=1e-4)
    assert accum["metrics"]["perplexity"] == pytest.approx(whole["metrics"]["perplexity"], rel=1e-4)


def test_rank_larger_than_layer_is_refused(runs_dir):
    with pytest.raises(ConfigError, match=r"rank=64 exceeds min\(m, n\)=32"):
        run(compose_config(*SMALL_MATFAC, "method=lora", "rank=64", runs_dir=runs_dir))


def test_missing_data_names_the_prepare_command(runs_dir, tmp_path):
    cfg = compose_config(*TINY_LM, "method=lora", f"paths.data_dir={tmp_path}", "task.source=local", runs_dir=runs_dir)
    with pytest.raises(DataMissingError, match="prepare_data.py wikitext2"):
        run(cfg)


def _cli(*args: str, runs_dir: Path, multirun: bool = False) -> subprocess.CompletedProcess:
    checkpoints = [] if any(a.startswith("paths.checkpoint_dir=") for a in args) else [
        f"paths.checkpoint_dir={runs_dir.parent / 'checkpoints'}"]
    cmd = [sys.executable, "run.py", *(["-m"] if multirun else []), "logger=disabled", f"paths.runs_dir={runs_dir}",
           f"paths.data_dir={DATA_DIR}", f"paths.adapters_dir={runs_dir.parent / 'adapters'}", *checkpoints, *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("arg, fix", [("method=lorra", "choose one of: adalora, adapter, boft, dora, full,"), ("task=nope", "choose one of:"),
                                      ("model=llama9", "choose one of:")])
def test_unknown_group_choice_is_one_line(arg, fix, runs_dir):
    out = _cli(arg, runs_dir=runs_dir)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and fix in lines[0], out.stderr


def test_cli_sweep_writes_one_record_per_job(runs_dir):
    out = _cli("method=full,lora,loft", "rank=2,4", *SMALL_MATFAC[:3], "trainer.max_steps=5", runs_dir=runs_dir,
               multirun=True)
    assert out.returncode == 0, out.stderr[-2000:]
    records = {p.relative_to(runs_dir).as_posix() for p in runs_dir.rglob("*.json")}
    # full has no rank: its two jobs share one key, and the second is skipped; the name ends with the
    # overrides that are not part of the key (the variant)
    v = "_model.m=48,model.n=32,trainer.max_steps=5.json"
    assert records == {f"matfac/matfac/full/full_seed0{v}", f"matfac/matfac/lora/r2_seed0{v}",
                       f"matfac/matfac/lora/r4_seed0{v}", f"matfac/matfac/loft/r2_seed0{v}",
                       f"matfac/matfac/loft/r4_seed0{v}"}


def test_cli_config_error_is_one_line(runs_dir):
    out = _cli(*SMALL_MATFAC, "method=lora", "rank=64", runs_dir=runs_dir)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: rank=64 exceeds")
