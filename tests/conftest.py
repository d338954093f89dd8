"""Shared fixtures: the data directory and Hydra composition of the runner's config."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from loft.config import register_resolvers

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LOFT_DATA_DIR", REPO.parent / "shared" / "data"))
METHODS = sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml"))
VISION_ONLY_METHODS = {"vpt", "adapter"}  # prompt tokens / ViT block adapters: tested in test_glue_vision.py
LM_METHODS = [m for m in METHODS if m not in VISION_ONLY_METHODS]
register_resolvers()


def compose_config(*overrides: str, runs_dir: Path | None = None) -> DictConfig:
    """The config `python run.py <overrides>` would get, with W&B off and a private runs dir."""
    extra = ["logger=disabled", f"paths.data_dir={DATA_DIR}"]
    if runs_dir is not None:
        extra.append(f"paths.runs_dir={runs_dir}")
    if not any(o.startswith("trainer.save_adapter=") for o in overrides):
        extra.append("trainer.save_adapter=false")  # tests that check adapters turn it on
    if not any(o.startswith("paths.adapters_dir=") for o in overrides):
        extra.append(f"paths.adapters_dir={tempfile.mkdtemp(prefix='loft-adapters-')}")
    if not any(o.startswith("paths.checkpoint_dir=") for o in overrides):
        # never share the repo's checkpoint folder: resume=auto would continue another test's run
        extra.append(f"paths.checkpoint_dir={tempfile.mkdtemp(prefix='loft-ckpt-')}")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[*extra, *overrides])


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
