"""LoFT under FSDP2 on 2 CPU processes (gloo): B sharded by rows, A by columns, the state with
them. Two processes equal one, resume continues bit-for-bit, checkpoints move between world sizes.

The runs are in float64, as the DDP test of LoFT is (test_long_runs.py): LoFT's early steps
(B near 0, so U^T U nearly singular) magnify any change of summation order, and in float32
DDP and FSDP alike end 5 steps with weights ~1% apart from one process (measured: DDP
0.86%, FSDP 0.93% for LoFT; 4e-4 LoFT-Muon; 2e-6 LoFT-simple). In float64 two processes
must agree with one to float32's round-off (1e-7) at least; measured: weights within 5e-11,
losses and clipping norms within 5e-10.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from loft.core.errors import ConfigError
from loft.methods import refuse_sharding
from loft.optim import LoFTAdamW
from loft.runner import run
from tests.conftest import DATA_DIR, REPO, compose_config
from tests.integration.test_runner import TINY_LM

METHODS = ["loft", "loft_simple", "loft_muon"]
# intermediate 129 without down_proj: up_proj's B (129 rows) splits 65 / 64, so uneven shards are
# covered (FSDP2 splits A's columns only evenly: an odd input size is refused, see sharding.py)
ARGS = [*TINY_LM, "model.intermediate_size=129", "method.target_modules=[q_proj,k_proj,v_proj,up_proj]",
        "trainer.dtype=float64", "trainer.max_steps=5", "trainer.micro_batch_size=2",
        "trainer.lr=3e-3", "trainer.checkpoint_every=3", "trainer.max_grad_norm=1.0", "adapter_dropout=0.0",
        "logger=disabled", f"paths.data_dir={DATA_DIR}"]


def _record(root):
    return json.loads(next(root.rglob("*.json")).read_text())


def _weights(root):
    return torch.load(next(root.rglob("last.pt")), weights_only=False)["model"]


def _assert_close(a, b, rel):
    assert a.keys() == b.keys() and a
    for name in a:
        assert ((a[name] - b[name]).norm() / a[name].norm()).item() < rel, name


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tests.integration.fsdp_runs",
           str(out), ",".join(METHODS), *ARGS]
    env = {**os.environ, "ACCELERATE_USE_FSDP": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("method", METHODS)
def test_two_fsdp_processes_equal_one_and_resume(method, two_process_runs, tmp_path):
    out = two_process_runs / method
    single = run(compose_config(*ARGS, f"method={method}", f"paths.runs_dir={tmp_path}/one",
                                f"paths.checkpoint_dir={tmp_path}/c1"))
    sharded = _record(out / "straight")
    assert sharded["parallelism"] == "fsdp" and sharded["world_size"] == 2
    for series in ("loss", "grad_norm"):  # grad_norm: the projected clipping norm, summed over ranks
        assert sharded["history"][series] == pytest.approx(single["history"][series], rel=1e-7)
    _assert_close(_weights(tmp_path / "c1"), _weights(out / "c_straight"), rel=1e-7)
    # every row of U = B and of V = A^T lives on one rank, with its state (the same width per row on
    # both sides): rank 0 holds ceil(rows / 2) of each. Per layer, q, k, v are 64 + 64 rows and
    # up 129 + 64: 577 rows, of which rank 0 holds 3 * 64 + 65 + 32 = 289.
    assert sharded["optimizer_state_bytes"] * 577 == single["optimizer_state_bytes"] * 289 > 0

    resumed = _record(out / "resumed")  # 2 processes, stopped after step 3, resumed: bit-for-bit
    assert resumed["history"]["loss"] == sharded["history"]["loss"]
    straight_w, resumed_w = _weights(out / "c_straight"), _weights(out / "c_resumed")
    assert all(torch.equal(straight_w[k], resumed_w[k]) for k in straight_w)

    # the gathered checkpoint of 2 processes continues in 1 (world-size independent)
    moved = run(compose_config(*ARGS, f"method={method}", "resume=true", f"paths.runs_dir={tmp_path}/moved",
                               f"paths.checkpoint_dir={out}/interrupted"))
    assert moved["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-7)
    _assert_close(_weights(tmp_path / "c1"), _weights(out / "interrupted"), rel=1e-7)


def test_sharding_is_refused_for_optimizers_that_do_not_declare_it(monkeypatch):
    class Custom(torch.optim.SGD):  # stands for an optimizer defined outside torch (e.g. a new method's)
        pass

    p = torch.nn.Parameter(torch.zeros(2, 2))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    refuse_sharding("lora", torch.optim.AdamW([p]))
    refuse_sharding("loft", LoFTAdamW([p]))
    with pytest.raises(ConfigError, match="method=custom cannot run under FSDP: its optimizer Custom does not declare"):
        refuse_sharding("custom", Custom([p], lr=0.1))
    Custom.supports_fsdp = True
    refuse_sharding("custom", Custom([p], lr=0.1))
