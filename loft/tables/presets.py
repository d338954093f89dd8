"""Experiment presets (conf/experiment/*.yaml, CPU miniatures in conf/experiment/cpu/) as Hydra
composes them: discovery, the composed config, the choices its sweep makes, and the configs a
swept choice names that do not exist (yet). conf/ is read through Hydra's compose API only, so
a preset means here what it means to `python run.py -m +experiment=<name>`."""
from __future__ import annotations

from functools import lru_cache
from dataclasses import dataclass, field

from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig

from loft.config import CONF, compose_run, hydra_on_conf

GROUPS = ("task", "model", "method")
SCALES = {"paper": "experiment", "cpu": "experiment/cpu"}  # scale -> Hydra config group


def group_options(group: str) -> list[str]:
    """The configs of a Hydra group (e.g. "method", "experiment/cpu"), by name."""
    return list(_group_options(group))


@lru_cache(maxsize=None)  # conf/ does not change while a process reads it; Hydra's listing is slow
def _group_options(group: str) -> tuple[str, ...]:
    with hydra_on_conf() as hydra:
        return tuple(sorted(hydra.config_loader().get_group_options(group)))


def compose_preset(name: str, *overrides: str) -> DictConfig:
    """One preset's composed config, Hydra's node (its sweep) included."""
    return compose_run(f"+experiment={name}", *overrides, hydra_node=True)


def preset_names(scale: str = "paper") -> list[str]:
    """Every preset of a scale, as given to +experiment= (bases named _* left out)."""
    prefix = SCALES[scale][len("experiment/"):] + "/" if "/" in SCALES[scale] else ""
    return [prefix + n for n in group_options(SCALES[scale]) if not n.startswith("_")]


def task_names() -> list[str]:
    """Every task config (bases named _* left out)."""
    return [n for n in group_options("task") if not n.startswith("_")]


@dataclass
class Preset:
    name: str                                   # as given to +experiment=, e.g. cpu/loft_table2_llama7b
    overrides: dict[str, str] = field(default_factory=dict)   # group -> the choice the composed config made
    sweep: dict[str, str] = field(default_factory=dict)       # hydra.sweeper.params as composed

    def choices(self, group: str) -> list[str]:
        """Every config of `group` this preset's runs use: the swept values, else its choice."""
        if group in self.sweep:
            return list(dict.fromkeys(v.strip() for v in str(self.sweep[group]).split(",")))
        return [self.overrides[group]] if group in self.overrides else []

    def missing(self) -> list[str]:
        """Config files this preset's sweep names that do not exist (yet)."""
        options = {g: set(group_options(g)) for g in GROUPS}
        return [f"conf/{g}/{c}.yaml" for g in GROUPS for c in self.choices(g) if c not in options[g]]


def load_preset(name: str, cfg: DictConfig | None = None) -> Preset:
    """A preset's group choices and sweep, from `cfg` (its compose_preset config) or composed here."""
    cfg = compose_preset(name) if cfg is None else cfg
    choices = cfg.hydra.runtime.choices
    return Preset(name, {g: str(choices[g]) for g in GROUPS if choices.get(g) is not None},
                  {k: str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()})


def pending_configs(name: str) -> list[str]:
    """What keeps a preset from running ([] when nothing does): the configs its sweep names that
    do not exist, or Hydra's first line of why the preset does not compose."""
    try:
        return load_preset(name).missing()
    except (HydraException, MissingConfigException) as err:
        return [str(err).splitlines()[0]]
