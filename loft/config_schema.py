"""The config's schema: Hydra structured configs for the top level, `trainer` and `paths`.

conf/config.yaml lists `base_config` first in its defaults, so Hydra checks every value
against these types while composing (`rank=abc` fails before anything runs). Task, model,
method and logger configs vary per file and stay open here; the fields they share are
checked by `loft.validation.validate`, which also checks ranges (a type cannot say lr > 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class TrainerConfig:  # conf/trainer/default.yaml documents each field
    lr: float = 2e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    head_lr: Optional[float] = None
    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 16
    micro_batch_size: Optional[int] = None
    warmup_steps: int = 0
    warmup_ratio: Optional[float] = None
    scheduler: str = "linear"
    max_grad_norm: Optional[float] = None
    max_bad_steps: int = 10
    divergence_factor: float = 1e4
    divergence_loss: float = 1e30
    divergence_steps: int = 3
    save_adapter: bool = True
    checkpoint_every: int = 500
    stop_after_steps: Optional[int] = None
    dtype: str = "auto"
    device: str = "auto"


@dataclass
class PathsConfig:
    data_dir: str = "data"
    runs_dir: str = "results/runs"
    checkpoint_dir: str = "results/checkpoints"
    adapters_dir: str = "results/adapters"
    cache_dir: str = ".cache"


@dataclass
class LoftConfig:  # conf/config.yaml documents each field
    model: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    method: Any = None
    logger: Any = None
    task: Any = None
    rank: int = 8
    seed: int = 0
    force: bool = False
    resume: str = "auto"  # auto | true | false (a string: `resume=true` arrives as a boolean)
    tag: str = ""
    adapter_dropout: float = 0.05
    paths: PathsConfig = field(default_factory=PathsConfig)


# Fields added after records were written: while unset (None) they stay out of the config hash,
# so the records written before them still match.
LATER_FIELDS = ("trainer.warmup_ratio", "model.adapter")


def unset_later_fields(cfg) -> tuple[str, ...]:
    return tuple(key for key in LATER_FIELDS if OmegaConf.select(cfg, key) is None)


def hash_ignores(cfg, full_ft: bool) -> tuple[str, ...]:
    """Keys the run's config hash leaves out: the unset later fields, and `rank` for full
    fine-tuning (moot there). The runner and scripts/config_snapshot.py both hash this way."""
    return (("rank",) if full_ft else ()) + unset_later_fields(cfg)


def register_schema() -> None:
    ConfigStore.instance().store(name="base_config", node=LoftConfig)
