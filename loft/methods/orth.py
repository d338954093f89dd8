"""LOFT (Han et al. 2026), adapter kind `loft_orth`: W0 (I + P^T (T - I) P) on every target;
only T's parameters (and a task head) train. Gradient-informed supports draw calibration
batches from the task (`LoftOrthConfig.uses_calibration`, the one list of them)."""
from __future__ import annotations

from omegaconf import OmegaConf

from loft import orth

from .base import adapter_misfit, check_rank, in_head
from .registry import register_adapter


def uses_gradient_support(adapter_cfg) -> bool:
    """Whether this config's support is chosen from calibration gradients."""
    support = (adapter_cfg.get("kwargs") or {}).get("support")
    return support in orth.GRADIENT_SUPPORTS


@register_adapter("loft_orth", calibration=uses_gradient_support)
def loft_orth(model, cfg, targets, ctx):
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True)
    config = orth.LoftOrthConfig(r=ctx.rank, target_modules=targets, **kwargs)
    check_rank(model, targets, ctx.rank)
    for p in model.parameters():
        p.requires_grad_(False)
    if ctx.adapter_path is not None:  # saved P and T (no calibration); the saved config defines the adapter
        try:
            model = orth.load_adapter(model, ctx.adapter_path)
        except (RuntimeError, ValueError, KeyError, AttributeError) as err:
            raise adapter_misfit(ctx.adapter_path, err) from err
        model.loft_orth_support_s = model.loft_orth_calibration_s = 0.0
        config = model.loft_orth_config
    else:
        # listed once: every calibration pass reuses the same batches
        batches = list(ctx.calibration_batches(config.calibration_batches)) if config.uses_calibration else None
        model = orth.apply(model, config, calibration_batches=batches, loss_fn=ctx.loss)
    for name, p in model.named_parameters():
        if in_head(name, ctx.head_modules):
            p.requires_grad_(True)
    return model, {"support": config.support, "transform": config.transform,
                   "calibration_s": model.loft_orth_calibration_s, "support_s": model.loft_orth_support_s}
