"""The 2-process side of test_fsdp_loft.py, started once by torchrun with ACCELERATE_USE_FSDP=true:

    torchrun --nproc_per_node 2 -m tests.integration.fsdp_runs OUT METHOD[,METHOD...] OVERRIDE...

For every method: a straight run, a run interrupted after step 3 (its checkpoint is copied to
OUT/<method>/interrupted for a 1-process resume), and its 2-process resume. All runs share
one process group, so the interpreter and torch start once (most of the test's time).
Each run goes through `loft.runner.run`, what run.py calls for every Hydra job.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from loft.runner import run
from loft.train.loop import Interrupted
from tests.conftest import compose_config


def dirs(out: Path, method: str, name: str) -> tuple[str, str]:
    return f"paths.runs_dir={out}/{method}/{name}", f"paths.checkpoint_dir={out}/{method}/c_{name}"


def main(out: Path, methods: list[str], overrides: list[str]) -> None:
    for method in methods:
        args = (*overrides, f"method={method}")
        run(compose_config(*args, *dirs(out, method, "straight")))
        try:
            run(compose_config(*args, "trainer.stop_after_steps=3", *dirs(out, method, "resumed")))
            raise SystemExit(f"error: method={method} was not interrupted after step 3")
        except Interrupted:
            pass
        if torch.distributed.get_rank() == 0:
            shutil.copytree(out / method / "c_resumed", out / method / "interrupted")
        torch.distributed.barrier()
        run(compose_config(*args, "resume=true", *dirs(out, method, "resumed")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:])
