"""A run's trained adapter as files: saved at the end of a run, loaded back by `model.adapter=PATH`.

`results/adapters/<record name>/` (the record's path under runs_dir, without `.json`) holds:
- PEFT methods (LoRA trained by AdamW, LoFT, LoFT-simple, LoFT-Muon, LoRA-Pro; DoRA, AdaLoRA, OFT...):
  PEFT's own `save_pretrained` layout, `adapter_config.json` + `adapter_model.safetensors` (a trained
  task head is in it, PEFT's `modules_to_save`). The optimizer changes nothing in what is saved.
  PiSSA, OLoRA, CorDA and LoRA-GA rewrite the base weights at init; their adapter is saved converted
  (PEFT's `path_initial_model_for_weight_conversion`) into a plain LoRA of rank 2r on the original base,
  so it loads onto the unmodified model like any other.
- LOFT (`loft_orth`): `loft.orth.save_adapter`: `adapter_config.json` (support, transform, rank, layers)
  and `adapter_model.safetensors` (P and T per layer, plus the task head). B = W0 Pᵀ is recomputed on load.
- `run_info.json`: the base it belongs to, rank, method, task, the record and the run's resolved
  config; loading checks it against the run, and `base_bundle()` rebuilds the base from it.
The record points at the folder and holds the sha256 of its files (`digest`).

Loading (`model.adapter=PATH`) replaces the method's fresh initialisation (loft/methods/), so the
optimizer path is the method's own: `trainer.max_steps=0` evaluates the saved adapter again, and
more steps continue training it (with a fresh optimizer). The saved adapter's config defines the
adapter; the method config supplies the optimizer.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from loft.train.distributed import sharding_engine
from loft.core.errors import ConfigError

RUN_INFO = "run_info.json"
FORMATS = ("peft", "loft_orth")  # the adapter kinds that save (the format is named after the kind)
MUTATING_INITS = ("pissa", "olora", "corda", "lora_ga")  # PEFT inits that rewrite the base weights


def folder_for(record_path: Path, runs_dir: Path, adapters_dir: Path) -> Path:
    """The adapter folder of a record: its name is the record's, however records are named."""
    return adapters_dir / record_path.relative_to(runs_dir).with_suffix("")


def base_identity(model_cfg) -> dict:
    """What names the base weights: a hub id or loader model by name; random-init bases by their seed too."""
    return {"name": model_cfg.get("name"), "hf_id": model_cfg.get("hf_id"), "init_seed": model_cfg.get("init_seed")}


def digest(folder: Path) -> str:
    """sha256 over the saved files: each file's relative name and the sha256 of its bytes, sorted by name."""
    outer = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        outer.update(f"{f.relative_to(folder).as_posix()}\0{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    return outer.hexdigest()


def read_info(folder: Path) -> dict:
    """run_info.json, or for a folder saved elsewhere what its adapter_config.json says."""
    if (folder / RUN_INFO).is_file():
        return json.loads((folder / RUN_INFO).read_text())
    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("method") == "loft_orth":
        return {"format": "loft_orth", "rank": config["config"]["r"], "base": None}
    return {"format": "peft", "rank": config.get("r"), "peft_config": None,
            "base": {"name": None, "hf_id": config.get("base_model_name_or_path")}}


def source(cfg: DictConfig) -> Path | None:
    """`model.adapter`, checked against this run before anything is built (one-line ConfigError)."""
    value = cfg.model.get("adapter")
    if not value:
        return None
    from loft.runner import absolute

    path = absolute(str(value))
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(f"model.adapter={value}: no adapter_config.json there; point it at a folder under "
                          f"results/adapters/ (the record's 'adapter.path')")
    info = read_info(path)
    kind = cfg.method.adapter.kind
    if kind != info["format"]:
        raise ConfigError(f"model.adapter={value} holds a {info['format']} adapter but method={cfg.method.name} "
                          f"builds {kind}; use a method of the same family")
    if info.get("peft_config") and info["peft_config"] != cfg.method.adapter.get("config"):
        raise ConfigError(f"model.adapter={value} is a {info['peft_config']} adapter but method={cfg.method.name} "
                          f"uses {cfg.method.adapter.get('config')}; use a method with that PEFT config")
    if info.get("rank") is not None and int(info["rank"]) != int(cfg.rank):
        raise ConfigError(f"model.adapter={value} has rank {info['rank']}, this run rank={cfg.rank}; set rank={info['rank']}")
    saved, here = info.get("base"), base_identity(cfg.model)
    if saved and saved.get("name") is None:  # a folder from elsewhere: PEFT's base_model_name_or_path
        if saved.get("hf_id") not in (here["name"], here["hf_id"]):
            raise ConfigError(f"model.adapter={value} was trained on {saved.get('hf_id')}, not model={here['name']}")
    elif saved:
        diff = [k for k in here if saved.get(k) != here[k]]
        if diff:
            raise ConfigError(f"model.adapter={value} belongs to another base model ({', '.join(f'{k}={saved.get(k)}' for k in diff)}); "
                              f"this run has {', '.join(f'model.{k}={here[k]}' for k in diff)}")
    if info.get("method") and info["method"] != cfg.method.name:
        print(f"note: model.adapter={value} was trained by method={info['method']}; its saved adapter config defines "
              f"the adapter, method={cfg.method.name} only the optimizer")
    return path


class Saver:
    """Saves the run's adapter at the end. Created right after the method is built, because the
    inits that rewrite the base (MUTATING_INITS) need their initial adapter for the conversion."""

    def __init__(self, cfg: DictConfig, model: torch.nn.Module, head_modules: list[str]):
        self.cfg, self.model, self.head_modules = cfg, model, list(head_modules)
        self.format = cfg.method.adapter.kind
        self.skip = None if self.format in FORMATS else \
            f"method={cfg.method.name} has no adapter to save (adapter kind {self.format})"
        if sharding_engine():  # the shards live on every rank; the checkpoint gathers them, this does not
            self.skip = f"no adapter saved under {sharding_engine().upper()}; run without sharding to save one"
        self.initial: Path | None = None
        if not self.skip and self.format == "peft" and _mutates_base(model) and not cfg.model.get("adapter"):
            self.initial = Path(tempfile.mkdtemp(prefix="loft-initial-adapter-")) / "initial"
            _save_initial(model, self.initial)

    def save(self, folder: Path, record_path: Path, config: dict) -> dict | None:
        """Write the adapter to `folder` (replacing an older one at once) and return the record's
        `adapter` entry, or None for methods without an adapter (full fine-tuning, VPT, Houlsby)."""
        if self.skip:
            print(f"note: {self.skip}")
            return None
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            if self.format == "peft":
                self._save_peft(tmp)
            else:
                from loft import orth

                orth.save_adapter(self.model, tmp, modules_to_save=self.head_modules)
            # rank: the run's (PiSSA-like conversions save 2r in adapter_config.json)
            info = {"format": self.format, "rank": int(self.cfg.rank), "converted": self.initial is not None,
                    "peft_config": self.cfg.method.adapter.get("config"), "method": self.cfg.method.name,
                    "task": self.cfg.task.name, "base": base_identity(self.cfg.model), "record": _portable(record_path),
                    "head_modules": self.head_modules, "config": config}
            (tmp / RUN_INFO).write_text(json.dumps(info, indent=1, default=str))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; results are meant to be shared
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if self.initial is not None:
                shutil.rmtree(self.initial.parent, ignore_errors=True)
        return {"path": _portable(folder), "format": self.format, "sha256": digest(folder)}

    def _save_peft(self, tmp: Path) -> None:
        config = self.model.peft_config["default"]
        # PEFT falls back to the base's name_or_path; name the base the way this runner (or the hub) does.
        config.base_model_name_or_path = self.cfg.model.get("hf_id") or self.cfg.model.name
        kwargs = {"path_initial_model_for_weight_conversion": str(self.initial)} if self.initial else {}
        # save_embedding_layers=False: no vocabulary is resized here, and "auto" looks the base up on the hub
        self.model.save_pretrained(str(tmp), save_embedding_layers=False, **kwargs)


def _portable(path: Path) -> str:
    """Relative to the repository when inside it (records travel with the repo), else absolute."""
    from loft.runner import REPO

    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _mutates_base(model) -> bool:
    config = getattr(model, "peft_config", {}).get("default")
    init = str(getattr(config, "init_lora_weights", "")).lower()
    return any(init.startswith(p) for p in MUTATING_INITS)


def _save_initial(model, path: Path) -> None:
    """PEFT's recipe: save the freshly initialised adapter with init_lora_weights=True, so that
    loading it for the conversion does not rewrite the base a second time."""
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True
    try:
        model.save_pretrained(str(path), save_embedding_layers=False)
    finally:
        config.init_lora_weights = init


def base_bundle(folder: Path, device: str = "cpu"):
    """The base model (and tokenizer) a saved adapter belongs to, rebuilt from its run's config
    by the run's own task and loader, in the run's dtype."""
    import hydra

    from loft.config import register_resolvers
    from loft.core.dtypes import resolve_dtype
    from loft.models import load_model

    register_resolvers()
    config = read_info(folder).get("config")
    if not config:
        raise ConfigError(f"{folder} has no {RUN_INFO}: load its base yourself (adapter_config.json names it)")
    task = hydra.utils.instantiate(config["task"], _recursive_=False, _convert_="all")
    bundle = load_model(OmegaConf.create(config["model"]), **task.model_args())
    dtype = resolve_dtype(config["trainer"]["dtype"], torch.device(device), setting="trainer.dtype")
    bundle.model.to(device=device, dtype=dtype)
    return bundle


def load_for_inference(folder: Path, device: str = "cpu"):
    """(model with the adapter, tokenizer): PEFT's PeftModel.from_pretrained, or loft.orth.load_adapter."""
    bundle = base_bundle(folder, device)
    if read_info(folder)["format"] == "loft_orth":
        from loft import orth

        model = orth.load_adapter(bundle.model, folder)
    else:
        import peft

        model = peft.PeftModel.from_pretrained(bundle.model, str(folder))
    return model.eval(), bundle.tokenizer


def merged(folder: Path, device: str = "cpu"):
    """(plain transformers model with the adapter folded into its weights, tokenizer)."""
    model, tokenizer = load_for_inference(folder, device)
    if read_info(folder)["format"] == "loft_orth":
        from loft import orth

        return orth.merge_and_unload(model), tokenizer  # W0 <- W0 (I + Pᵀ (T - I) P)
    return model.merge_and_unload(), tokenizer


def from_record(record_path: Path) -> Path:
    """The adapter folder a record points at, checked against the hash the record holds."""
    from loft.core import schema
    from loft.runner import absolute

    try:  # validated, but not against its path: a record may be copied anywhere (the hash below guards it)
        entry = schema.normalize(json.loads(Path(record_path).read_text())).get("adapter")
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, schema.RecordError
        raise ConfigError(f"cannot read record {record_path} ({err})") from None
    if not entry:
        raise ConfigError(f"{record_path} has no saved adapter; rerun it with trainer.save_adapter=true force=true")
    folder = absolute(entry["path"])
    if not folder.is_dir():
        raise ConfigError(f"{record_path} points at {folder}, which does not exist; rerun with force=true to save it again")
    if digest(folder) != entry["sha256"]:
        raise ConfigError(f"{folder} changed since {record_path} was written (sha256 differs); rerun with force=true")
    return folder
