"""Experiment presets (conf/experiment/*.yaml, CPU miniatures in conf/experiment/cpu/):
discovery, and which config files each needs (so that presets written ahead of their task or
method configs can be reported as pending instead of failing)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loft.tables.paper import REPO

CONF = REPO / "conf"
EXPERIMENTS = CONF / "experiment"
GROUPS = ("task", "model", "method")
SCALES = {"paper": "", "cpu": "cpu/"}


@dataclass
class Preset:
    name: str                                   # as given to +experiment=, e.g. cpu/loft_table2_llama7b
    path: Path
    parents: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)   # group -> choice, own and inherited
    sweep: dict[str, str] = field(default_factory=dict)       # hydra.sweeper.params, own over inherited

    def choices(self, group: str) -> list[str]:
        """Every config of `group` this preset's runs use: its override plus swept values."""
        values = [self.overrides[group]] if group in self.overrides else []
        if group in self.sweep:
            values += [v.strip() for v in str(self.sweep[group]).split(",")]
        return list(dict.fromkeys(values))

    def missing(self, conf: Path = CONF) -> list[str]:
        """Config files this preset needs that do not exist (yet)."""
        return [f"conf/{g}/{c}.yaml" for g in GROUPS for c in self.choices(g) if not (conf / g / f"{c}.yaml").exists()]


def preset_names(scale: str = "paper", root: Path = EXPERIMENTS) -> list[str]:
    folder = root / SCALES[scale].rstrip("/") if SCALES[scale] else root
    return [SCALES[scale] + p.stem for p in sorted(folder.glob("*.yaml")) if not p.stem.startswith("_")]


def load_preset(name: str, root: Path = EXPERIMENTS) -> Preset:
    path = root / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    preset = Preset(name, path)
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/experiment/"):
            parent = load_preset(entry[len("/experiment/"):], root)
            preset.parents.append(parent.name)
            preset.overrides.update(parent.overrides)
            preset.sweep.update(parent.sweep)
    for entry in raw.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.replace("override", "").strip().lstrip("/")
                preset.overrides[group] = str(value)
    preset.sweep.update(((raw.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    return preset
