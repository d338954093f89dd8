"""Apply LOFT to a model: target matching, the calibration pass, wrapping, adapter files.

Features:
- apply(): wraps every targeted nn.Linear / Conv1D in a LoftOrthLinear. Only the wrapped base
  layers are frozen; every other requires_grad flag (a classifier head, say) is the caller's.
- calibrate(): the one-off gradient pass (or a few sweeps, `calibration_passes`) of the
  gradient-informed supports. Per batch one forward and backward with hooks on the targeted
  layers: a forward pre-hook makes a layer input require grad (so each targeted output gets a
  gradient although every parameter is frozen), and a forward hook puts a tensor hook on the
  output whose gradient dy, with the input x, feeds the layer's GradSketch (dy^T (x Omega)
  etc.; G itself is never formed). requires_grad is off for all parameters during the pass, so
  autograd computes no weight gradient and leaves no .grad behind: the state is O((m + n) r)
  per layer. Eval mode (no dropout) during the pass; flags and mode are restored afterwards.
- Cost bookkeeping (part of the method's cost): apply() sets model.loft_orth_calibration_s,
  the wall time of the calibration pass plus the reduction of the sketches to supports (0.0 for
  data-free supports), and model.loft_orth_support_s, the wall time of all support selection
  (the SVDs of principal included).
- save_adapter()/load_adapter(): adapter_model.safetensors holds, per layer, P ("<name>.support")
  and T's parameters ("<name>.transform.<param>"), plus the full state of `modules_to_save`
  (a trained task head, PEFT's term) as "modules_to_save.<qualified name>.<key>";
  adapter_config.json the config, the layer names and the head's module names. Loading into a
  fresh model wraps those layers with the saved P (calibrated supports are not recomputed);
  B = W0 P^T is rebuilt from the model's own (unmerged) weights.
"""
from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import LoftOrthConfig
from .layer import LoftOrthLinear, weight_out_in
from .support import GradSketch, select_support
from .transforms import build_transform

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def find_targets(model: nn.Module, target_modules: list[str] | str) -> dict[str, nn.Module]:
    """Qualified name -> module for every target (PEFT's matching rules)."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(target_modules, str):
            hit = re.fullmatch(target_modules, name) is not None
        else:
            hit = any(name == t or name.endswith("." + t) for t in target_modules)
        if not hit or not name:
            continue
        if isinstance(module, LoftOrthLinear):
            raise ValueError(f"{name} is already a LOFT layer")
        weight_out_in(module)  # TypeError for anything but Linear / Conv1D
        found[name] = module
    if not found:
        raise ValueError(f"no module matches target_modules={target_modules!r}")
    return found


def adapted_layers(model: nn.Module) -> dict[str, LoftOrthLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoftOrthLinear)}


def num_adapter_parameters(model: nn.Module) -> int:
    """Trainable numbers of all LOFT layers (T's parametrisations only)."""
    return sum(p.numel() for layer in adapted_layers(model).values() for p in layer.transform.parameters())


def default_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    device = next(model.parameters()).device
    return model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}).loss


def _sync(modules: Iterable[nn.Module]) -> None:
    devices = {p.device for m in modules for p in m.parameters()}
    for device in devices:
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def _require_grad_input(module, args):
    # With every parameter frozen nothing upstream needs a graph, so detaching cuts nothing.
    if args and torch.is_tensor(args[0]) and args[0].is_floating_point() and not args[0].requires_grad:
        return (args[0].detach().requires_grad_(True), *args[1:])
    return None


def _tap(sketch: GradSketch):
    def hook(module, args, output):
        if torch.is_tensor(output) and output.requires_grad:
            x = args[0]
            output.register_hook(lambda dy: sketch.update(x, dy))  # fires once, with the total dy
    return hook


def calibrate(model: nn.Module, targets: dict[str, nn.Module], config: LoftOrthConfig, batches: Iterable,
              loss_fn: Callable | None = None, generator: torch.Generator | None = None) -> dict[str, GradSketch]:
    """Sketches of the calibration gradient of every target over `config.calibration_batches`
    batches of `batches` (`config.calibration_passes` sweeps); `loss_fn(model, batch)` defaults
    to model(**batch).loss."""
    generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    loss_fn = loss_fn or default_loss
    sketches = {name: GradSketch(weight_out_in(module), config.support, config.r, config.oversample, generator,
                                 config.calibration_passes) for name, module in targets.items()}
    passes = max(s.passes for s in sketches.values())
    batches = itertools.islice(batches, config.calibration_batches)
    if passes > 1:
        batches = list(batches)  # swept again; a handful of batches
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    handles = []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()
        for name, module in targets.items():
            handles.append(module.register_forward_pre_hook(_require_grad_input))
            handles.append(module.register_forward_hook(_tap(sketches[name])))
        with torch.enable_grad():
            for sweep in range(passes):
                if sweep:
                    for name, sketch in sketches.items():
                        sketch.next_pass(weight_out_in(targets[name]))
                used = 0
                for batch in batches:
                    loss = loss_fn(model, batch)
                    if not loss.requires_grad:
                        raise RuntimeError("the calibration loss does not depend on any targeted layer")
                    loss.backward()
                    used += 1
                if used == 0:
                    raise ValueError("the calibration iterable yielded no batch")
    finally:
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return sketches


def _wrap(model: nn.Module, targets: dict[str, nn.Module], config: LoftOrthConfig,
          supports: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    for name, module in targets.items():
        transform = build_transform(
            config.transform, config.r, neumann_terms=config.neumann_terms, neumann_eps=config.neumann_eps,
            householder_reflections=config.householder_reflections, givens_rounds=config.givens_rounds,
            generator=generator)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LoftOrthLinear(module, supports[name], transform))
    model.loft_orth_config = config


def apply(model: nn.Module, config: LoftOrthConfig, calibration_batches: Iterable | None = None,
          loss_fn: Callable | None = None) -> nn.Module:
    """Wrap the targets of `config` in place and return the model, with T = I (outputs unchanged).

    gradsvd / skewgrad need `calibration_batches` (an iterable of batches; the first
    `config.calibration_batches` are used); coordinate uses them when given.
    """
    targets = find_targets(model, config.target_modules)
    for name, module in targets.items():
        m, n = weight_out_in(module).shape
        if config.r > min(m, n):
            raise ValueError(f"r={config.r} exceeds min(m, n)={min(m, n)} of {name} ({m} x {n})")
    if config.needs_calibration and calibration_batches is None:
        raise ValueError(f"support {config.support!r} needs calibration batches")
    use_grad = calibration_batches is not None and config.uses_calibration
    generator = torch.Generator().manual_seed(config.seed)

    start = time.perf_counter()
    sketches = calibrate(model, targets, config, calibration_batches, loss_fn, generator) if use_grad else {}
    supports = {name: select_support(config.support, weight_out_in(module), config.r,
                                     sketch=sketches.pop(name, None), generator=generator)
                for name, module in targets.items()}  # pop: each sketch is freed once reduced
    _sync(targets.values())
    elapsed = time.perf_counter() - start

    _wrap(model, targets, config, supports, generator)
    model.loft_orth_support_s = elapsed
    model.loft_orth_calibration_s = elapsed if use_grad else 0.0
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every LOFT layer into its base weight and put the base layer back."""
    for name, layer in adapted_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.base_layer)
    return model


HEAD_PREFIX = "modules_to_save."


def head_modules(model: nn.Module, modules_to_save: Iterable[str]) -> dict[str, nn.Module]:
    """Qualified name -> module for each name in `modules_to_save` (exact, or a suffix after a '.')."""
    names = list(modules_to_save)
    return {name: m for name, m in model.named_modules()
            if name and any(name == h or name.endswith("." + h) for h in names)}


def save_adapter(model: nn.Module, path: str | Path, modules_to_save: Iterable[str] = ()) -> None:
    config = getattr(model, "loft_orth_config", None)
    layers = adapted_layers(model)
    if config is None or not layers:
        raise ValueError("the model has no LOFT adapter (use loft.orth.apply first)")
    tensors = {}
    for name, layer in layers.items():
        tensors[f"{name}.support"] = layer.support
        for pname, p in layer.transform.named_parameters():
            tensors[f"{name}.transform.{pname}"] = p
    heads = head_modules(model, modules_to_save)
    for name, module in heads.items():
        for key, t in module.state_dict().items():
            tensors[f"{HEAD_PREFIX}{name}.{key}"] = t
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path / WEIGHTS_NAME,
              metadata={"format": "pt"})
    meta = {"method": "loft_orth", "config": config.to_dict(), "layers": list(layers),
            "modules_to_save": list(heads)}
    (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2))


@torch.no_grad()
def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a saved adapter (and its task head, if saved) into a fresh model (wrapping its
    layers) or into a LOFT model with the same layers; returns the model."""
    path = Path(path)
    meta = json.loads((path / CONFIG_NAME).read_text())
    if meta.get("method") != "loft_orth":
        raise ValueError(f"{path} holds no loft_orth adapter")
    config = LoftOrthConfig(**meta["config"])
    tensors = load_file(path / WEIGHTS_NAME)
    layers = adapted_layers(model)
    if not layers:
        targets = {name: model.get_submodule(name) for name in meta["layers"]}
        supports = {name: tensors[f"{name}.support"] for name in targets}
        _wrap(model, targets, config, supports, torch.Generator().manual_seed(config.seed))
        layers = adapted_layers(model)
    elif set(layers) != set(meta["layers"]):
        raise ValueError("the model's LOFT layers differ from the saved adapter's")
    else:
        for name, layer in layers.items():
            layer.set_support(tensors[f"{name}.support"].to(layer.support.device))
    for name, layer in layers.items():
        for pname, p in layer.transform.named_parameters():
            p.copy_(tensors[f"{name}.transform.{pname}"])
    for name in meta.get("modules_to_save", []):
        module = model.get_submodule(name)
        prefix = f"{HEAD_PREFIX}{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    model.loft_orth_config = config
    return model
