"""Experiment presets (conf/experiment/, CPU miniatures in conf/experiment/cpu/): every preset
composes with Hydra (no training), with each of its swept task/method choices, and means what
its own YAML says (its overrides and sweep, read here from the file as an independent
definition); and `make reproduce-tables SCALE=cpu` runs end to end on the Figure 2 preset."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from loft.tables.presets import CONF, compose_preset, compose_run, load_preset, pending_configs, preset_names, task_names
from loft.tables.spec import load_specs
from tests.conftest import DATA_DIR, REPO

ALL_PRESETS = preset_names("paper") + preset_names("cpu")
ALIASES = {"vtab_diabetic_retinopathy": "vtab_retinopathy", "vtab_oxford_flowers102": "vtab_flowers102",
           "vtab_oxford_iiit_pet": "vtab_pets", "vtab_patch_camelyon": "vtab_camelyon"}  # VTAB's names: same task


def _compose(name: str, *overrides: str):
    return compose_preset(name, "logger=disabled", f"paths.data_dir={DATA_DIR}", *overrides)


def _resolved(cfg) -> dict:
    """The job's config as the runner records it (hydra's own node left out)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


def _own(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """A preset's YAML as written, read with PyYAML and its parents followed by hand: the group
    choices of its `override /group: x` entries and its sweep, each own over inherited."""
    raw = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text()) or {}
    overrides: dict[str, str] = {}
    sweep: dict[str, str] = {}
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/experiment/"):
            parent_overrides, parent_sweep = _own(entry[len("/experiment/"):])
            overrides.update(parent_overrides)
            sweep.update(parent_sweep)
    for entry in raw.get("defaults", []):
        if isinstance(entry, dict):
            overrides.update({k.replace("override", "").strip().lstrip("/"): str(v) for k, v in entry.items()})
    sweep.update({k: str(v) for k, v in (((raw.get("hydra") or {}).get("sweeper") or {}).get("params") or {}).items()})
    return overrides, sweep


def test_every_preset_is_global_and_names_its_command():
    assert len(preset_names("paper")) >= 40 and len(preset_names("cpu")) >= 25
    for name in ALL_PRESETS:
        text = (CONF / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n"), name
        assert f"python run.py -m +experiment={name}\n" in text, f"{name}: the comment must give its command"


def test_every_preset_composes_with_its_swept_choices():
    seen: set[tuple[str, str]] = set()  # each swept task/method choice composes at least once, in its first preset
    for name in ALL_PRESETS:
        own_overrides, own_sweep = _own(name)
        cfg = _compose(name)  # every preset composes: none waits for configs any more
        preset = load_preset(name, cfg)
        assert preset.missing() == [], name
        params = {k: str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
        assert params == own_sweep == preset.sweep, name
        for group in ("task", "model"):
            if group in own_overrides and group not in params:
                assert cfg[group].name == own_overrides[group] == preset.overrides[group], f"{name}: {group} is {cfg[group].name}"
        first = [f"{k}={str(v).split(',')[0].strip()}" for k, v in params.items()]
        swept = [(k, c.strip()) for k, v in params.items() if k in ("task", "method") for c in str(v).split(",")]
        swept = [kc for kc in swept if kc not in seen]
        seen.update(swept)
        for key, choice in swept or [(None, None)]:
            overrides = [o for o in first if not key or not o.startswith(f"{key}=")] + ([f"{key}={choice}"] if key else [])
            resolved = _resolved(_compose(name, *overrides))
            if key:
                assert resolved[key]["name"] == choice, (name, key, choice)
            assert resolved["trainer"]["lr"] > 0, name


def test_a_preset_whose_sweep_names_a_missing_config_is_pending_not_an_error():
    assert pending_configs("loft_figure2_matfac") == []
    swept = [m.strip() for m in _own("loft_figure2_matfac")[1]["method"].split(",")]
    assert load_preset("loft_figure2_matfac").choices("method") == swept and len(swept) == 7
    assert load_preset("loft_figure2_matfac").choices("task") == ["matfac"]
    from loft.tables.presets import Preset

    ahead = Preset("ahead", {"task": "matfac"}, {"method": "lora,no_such_method"})
    assert ahead.missing() == ["conf/method/no_such_method.yaml"]
    assert pending_configs("no_such_preset") and "no_such_preset" in pending_configs("no_such_preset")[0]


def test_every_task_composes_and_sets_no_trainer_key_itself():
    """Trainer settings come from conf/recipe/ (the task's defaults list selects one), never from a task file."""
    tasks = task_names()
    assert len(tasks) >= 50 and not [t for t in tasks if t.startswith("_")]
    for task in tasks:
        raw = yaml.safe_load((CONF / "task" / f"{task}.yaml").read_text()) or {}
        assert "trainer" not in raw, f"conf/task/{task}.yaml sets trainer: (move it to conf/recipe/)"
    for path in sorted((CONF / "task").glob("_*.yaml")):
        assert "trainer" not in (yaml.safe_load(path.read_text()) or {}), path.name
    for task in tasks:
        cfg = compose_run(f"task={task}", "logger=disabled")
        assert cfg.trainer.lr > 0 and cfg.task.name in (task, ALIASES.get(task)), task


def test_the_figure2_method_list_is_the_preset_the_makefile_runs():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\nfigure2:"):].split("\n\n")[0]
    assert "+experiment=loft_figure2_matfac" in recipe and "method=" not in recipe
    assert _compose("cpu/loft_figure2_matfac").hydra.sweeper.params == _compose("loft_figure2_matfac").hydra.sweeper.params


def test_inherited_presets_share_the_runs_of_their_parent():
    """A preset that only narrows its parent's grid composes the parent's config: same records."""
    cfg_parent = _compose("loft_table14_gpt2", "method=loft")
    cfg_child = _compose("loft_figure6_gpt2_ablation", "method=loft")
    assert _resolved(cfg_parent) == _resolved(cfg_child)


def test_every_table_and_figure_names_existing_presets_and_every_preset_is_used():
    specs = load_specs()
    named = set()
    for name, entry in [(n, vars(t)) for n, t in specs.tables.items()] + list(specs.figures.items()):
        assert entry.get("presets") and entry.get("cpu_presets"), f"{name}: needs a preset and a CPU miniature"
        for p in entry["presets"]:
            assert (CONF / "experiment" / f"{p}.yaml").exists(), f"{name}: no preset {p}"
            named.add(p)
        for p in entry["cpu_presets"]:
            assert (CONF / "experiment" / "cpu" / f"{p}.yaml").exists(), f"{name}: no CPU preset cpu/{p}"
            named.add(f"cpu/{p}")
    assert sorted(set(ALL_PRESETS) - named) == [], "presets no table or figure uses"


@pytest.mark.slow
def test_reproduce_tables_cpu_runs_figure2_end_to_end(tmp_path: Path):
    runs, tables, figures = tmp_path / "runs", tmp_path / "tables", tmp_path / "figures"
    cmd = [sys.executable, "scripts/reproduce_tables.py", "--scale", "cpu", "--only", "loft_figure2_matfac$",
           "--tables-dir", str(tables), "--figures-dir", str(figures), "--",
           "logger=disabled", f"paths.runs_dir={runs}", f"paths.checkpoint_dir={tmp_path / 'ckpt'}",
           f"paths.adapters_dir={tmp_path / 'adapters'}",
           "model.m=48", "model.n=32", "trainer.max_steps=30", "hydra.sweep.dir=" + str(tmp_path / "multirun")]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    methods = sorted(p.name for p in (runs / "matfac" / "matfac").iterdir())
    assert methods == sorted(["full", "lora", "loft", "loft_noalt", "loft_nocal", "loft_noalt_nocal", "loft_simple"])
    assert (figures / "figure2_matfac.png").stat().st_size > 10_000
    assert (tables / "README.md").exists()
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skip:") == 7, "finished runs must be skipped on relaunch"
