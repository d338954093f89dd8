#!/usr/bin/env python
"""The config hash of every task and every experiment preset, as Hydra composes them: a
restructuring of conf/ that changes none of these lines changes no run.

    python scripts/config_snapshot.py > /tmp/before.txt     # edit conf/, then
    python scripts/config_snapshot.py > /tmp/after.txt && diff /tmp/before.txt /tmp/after.txt
    python scripts/config_snapshot.py --dump /tmp/cfgs       # also each resolved config as JSON

One line per composition, `<overrides>  <hash>`: every `task=*` with its default model and
method; every `+experiment=*` preset (paper and cpu), once as written and once per value of
each swept task/model/method (the other keys at their first value); and the override sets of
scripts/glue_comparison.py behind the committed records under results/comparisons/ (each
followed by whether the records of that cell still carry the hash).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from loft.config_schema import hash_ignores  # noqa: E402
from loft.records import config_hash  # noqa: E402
from loft.tables.presets import compose_preset, compose_run, preset_names, task_names  # noqa: E402

FIXED = ("logger=disabled", "paths.data_dir=data")  # the hash ignores both; fixed so dumps compare
SWEPT_GROUPS = ("task", "model", "method")
COMPARISONS = REPO / "results" / "comparisons"


def digest(cfg) -> tuple[str, dict]:
    """The runner's hash of the job's resolved config (hydra's node left out; the keys
    loft.config_schema.hash_ignores leaves out, as the runner does)."""
    config = resolved(cfg)
    full_ft = config.get("method", {}).get("name") == "full"
    return config_hash(config, ignore=hash_ignores(cfg, full_ft)), config


def resolved(cfg) -> dict:
    from omegaconf import OmegaConf, open_dict

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return OmegaConf.to_container(cfg, resolve=True)


def preset_jobs(name: str) -> list[tuple[str, ...]]:
    """The override sets composed for one preset: as written, then each swept group value."""
    params = {k: str(v) for k, v in (compose_preset(name).hydra.sweeper.params or {}).items()}
    first = {k: v.split(",")[0].strip() for k, v in params.items()}
    jobs = [()]
    for group in SWEPT_GROUPS:
        for choice in (c.strip() for c in params.get(group, "").split(",") if c.strip()):
            jobs.append(tuple(f"{k}={choice if k == group else v}" for k, v in first.items()))
    return list(dict.fromkeys(jobs))


def comparison_jobs() -> dict[tuple[str, ...], list[Path]]:
    """scripts/glue_comparison.py's overrides per record (seed-free cells), with the records."""
    cells: dict[tuple[str, ...], list[Path]] = {}
    for path in sorted(COMPARISONS.rglob("*.json")):
        rec = json.loads(path.read_text())
        c = rec["config"]
        overrides = (f"task={c['task']['name']}", f"method={c['method']['name']}", f"model={c['model']['name']}",
                     f"rank={c['rank']}", f"seed={c['seed']}", f"tag={c['tag']}",
                     f"task.max_train_samples={c['task']['max_train_samples']}", f"task.eval_limit={c['task']['eval_limit']}",
                     f"++task.max_seq_length={c['task']['max_seq_length']}", f"trainer.epochs={c['trainer']['epochs']}",
                     f"trainer.batch_size={c['trainer']['batch_size']}", "trainer.max_steps=null",
                     f"trainer.lr={c['trainer']['lr']}")
        cells.setdefault(overrides, []).append(path)
    return cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump", type=Path, help="write each resolved config as JSON into this folder")
    args = p.parse_args(argv)
    lines: list[tuple[str, str, dict]] = []
    for task in task_names():
        overrides = (f"task={task}",)
        lines.append((" ".join(overrides), *digest(compose_run(*FIXED, *overrides))))
    for name in preset_names("paper") + preset_names("cpu"):
        for job in preset_jobs(name):
            cfg = compose_preset(name, *FIXED, *job)
            lines.append((" ".join((f"+experiment={name}", *job)), *digest(cfg)))
    for overrides, records in comparison_jobs().items():
        h, config = digest(compose_run(*FIXED, *overrides))
        stored = {json.loads(r.read_text())["config_hash"] for r in records}
        lines.append((" ".join(overrides) + f"  [records match: {h in stored}]", h, config))
    for label, h, config in lines:
        print(f"{label}  {h}")
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            (args.dump / (label.replace("/", "%").replace(" ", "_")[:200] + ".json")).write_text(
                json.dumps(config, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
