"""Claim files (conf/claims/*.yaml): what each one says, and the runs it needs.

A claim is one YAML file with the paper's words and where they are (`paper`, `source`,
`statement`) and a `kind`:

- `runs`: training runs through run.py. `setting` (name, model, overrides shared by every run;
  the name is part of every record's tag), `tasks`, `seeds`, `metric` (report-half metric per
  task), `selection_metric` (its selection-half twin), `scale`, `higher_is_better`, `arms`
  (one method at one rank and alpha with its learning-rate grid) and `comparisons`
  (loft/claims/analysis.py). One run = (task, arm, lr, seed); its record is named by
  `tag=<RunSpec.tag>`, so a run is "done" when that record exists and reads valid, whatever
  config hash a later checkout computes for it.
- `tests`: pytest node ids (`tests`); holds when all pass.
- `bench`: `scripts/bench_step.py` arguments (`bench_args`) and the paper's rows to set beside ours.

Nothing here runs anything; scripts/claims.py does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loft.core.errors import ConfigError
from loft.core.key import RunKey

KINDS = ("runs", "tests", "bench")
COMMON = ("id", "paper", "source", "statement", "kind")


@dataclass(frozen=True)
class Arm:
    label: str
    method: str
    rank: int | None
    lrs: tuple[float, ...]
    alpha: float | None = None
    alpha_key: str = "lora_alpha"
    variant: str = ""                 # short name for `overrides` (part of the tag)
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSpec:
    """One run of a claim: its record path is fixed by these fields alone."""
    task: str
    model: str
    arm: Arm
    lr: float
    seed: int
    setting: str
    setting_overrides: tuple[str, ...]

    @property
    def tag(self) -> str:
        alpha = f"-a{self.arm.alpha:g}" if self.arm.alpha is not None else ""
        return f"cl-{self.setting}-lr{self.lr:g}{alpha}" + (f"-{self.arm.variant}" if self.arm.variant else "")

    def key(self) -> RunKey:
        return RunKey(self.task, self.model, self.arm.method, self.arm.rank, self.seed, self.tag)

    def group(self) -> tuple:
        """Runs differing only by seed share one `run.py -m` process."""
        return (self.task, self.model, self.arm.method, self.arm.rank, self.tag)

    def overrides(self) -> list[str]:
        """run.py overrides except seed (and the runs dir, added by the caller)."""
        arm = self.arm
        out = [f"task={self.task}", f"model={self.model}", f"method={arm.method}",
               *( [f"rank={arm.rank}"] if arm.rank is not None else []),
               f"trainer.lr={self.lr:g}", *self.setting_overrides, *arm.overrides, f"tag={self.tag}"]
        if arm.alpha is not None:
            out.append(f"method.adapter.kwargs.{arm.alpha_key}={arm.alpha:g}")
        return out


@dataclass
class Claim:
    id: str
    paper: str
    source: str
    statement: str
    kind: str
    path: Path
    raw: dict = field(repr=False)
    arms: list[Arm] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(self.raw.get("tasks", []))

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.raw.get("seeds", [])]

    def arm(self, label: str) -> Arm:
        for arm in self.arms:
            if arm.label == label:
                return arm
        raise ConfigError(f"{self.path}: comparison names arm {label!r}; arms are {[a.label for a in self.arms]}")

    def runs(self) -> list[RunSpec]:
        if self.kind != "runs":
            return []
        setting = self.raw["setting"]
        model, name, extra = setting["model"], setting["name"], tuple(setting.get("overrides", []))
        return [RunSpec(task, model, arm, lr, seed, name, extra)
                for task in self.tasks for arm in self.arms for lr in arm.lrs for seed in self.seeds]


def _need(raw: dict, keys, path: Path) -> None:
    missing = [k for k in keys if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}; see loft/claims/spec.py for the format")


def _arm(raw: dict, path: Path) -> Arm:
    _need(raw, ("method", "lr"), path)
    lrs = raw["lr"] if isinstance(raw["lr"], list) else [raw["lr"]]
    if raw.get("overrides") and not raw.get("variant"):
        raise ConfigError(f"{path}: arm {raw['method']} has overrides but no `variant` name for its record tag")
    alpha = raw.get("alpha")
    return Arm(label=str(raw.get("label", raw["method"])), method=str(raw["method"]),
               rank=int(raw["rank"]) if raw.get("rank") is not None else None,
               lrs=tuple(float(x) for x in lrs), alpha=float(alpha) if alpha is not None else None,
               alpha_key=str(raw.get("alpha_key", "lora_alpha")), variant=str(raw.get("variant", "")),
               overrides=tuple(raw.get("overrides", [])))


def load_claim(path: Path) -> Claim:
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    _need(raw, COMMON, path)
    if raw["kind"] not in KINDS:
        raise ConfigError(f"{path}: kind={raw['kind']!r}; use one of {', '.join(KINDS)}")
    claim = Claim(str(raw["id"]), str(raw["paper"]), str(raw["source"]), str(raw["statement"]).strip(),
                  raw["kind"], Path(path), raw)
    if claim.kind == "runs":
        _need(raw, ("setting", "tasks", "seeds", "metric", "selection_metric", "arms", "comparisons"), path)
        claim.arms = [_arm(a, path) for a in raw["arms"]]
        labels = [a.label for a in claim.arms]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{path}: arm labels must be unique, got {labels}; give each a `label`")
        for task in claim.tasks:
            if task not in raw["metric"]:
                raise ConfigError(f"{path}: metric has no entry for task {task}")
    elif claim.kind == "tests":
        _need(raw, ("tests",), path)
    else:
        _need(raw, ("bench_args",), path)
    return claim


def load_claims(folder: Path) -> list[Claim]:
    claims = [load_claim(p) for p in sorted(Path(folder).glob("*.yaml"))]
    ids = [c.id for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{folder}: claim ids used twice: {', '.join(dup)}")
    return claims


def all_runs(claims: list[Claim]) -> list[RunSpec]:
    """Every run of every claim once (claims share runs when their settings coincide), claims in
    their `order` (lower first; the most important claims finish first if a suite is cut short)."""
    seen: dict[Path, RunSpec] = {}
    for claim in sorted(claims, key=lambda c: int(c.raw.get("order", 99))):
        for run in claim.runs():
            path = run.key().relative_path()
            other = seen.setdefault(path, run)
            if other.overrides() != run.overrides():
                raise ConfigError(f"{claim.path}: run {path} is also defined with other settings "
                                  f"({' '.join(other.overrides())}); give the setting another name")
    return list(seen.values())
