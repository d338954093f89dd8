"""Method registry: a method = how the model is wrapped (adapter kind) + which optimizer
trains it (optimizer kind), each registered with its capability flags (registry.py).

A method config (`conf/method/<name>.yaml`) names an adapter kind and an optimizer kind with
their keyword arguments. A new method is one YAML; a new kind adds one module here with one
`@register_adapter(...)` / `@register_optimizer(...)` line and its name on the import line
below (tests/integration/test_method_registry.py registers a toy optimizer kind this way).
Tasks never see which method they run. Modules, one family each:

- plain.py   full fine-tuning (`none`) and AdamW (`adamw`)
- peft.py    PEFT baselines (`peft`: LoRA, DoRA, OFT, BOFT, HRA, PSOFT, ...; `loraplus_adamw`)
- loft.py    LoRA-pair optimizers (`loft_adamw`, `loft_muon`, `lora_pro_adamw`)
- orth.py    LOFT orthogonal fine-tuning (`loft_orth`)
- vision.py  VPT and the Houlsby adapter (`vpt`, `houlsby`; LoFT Table 19)
- base.py    Method, MethodContext and layer helpers; builder.py build_method
"""
from . import loft, orth, peft, plain, vision  # noqa: F401  (each registers its kinds)
from .base import Method, MethodContext, adapter_misfit, check_rank, in_head, layer_shape, targeted_layers
from .builder import build_method, check_capabilities, param_groups, refuse_sharding
from .registry import (ADAPTERS, OPTIMIZERS, AdapterKind, OptimizerKind, register_adapter, register_optimizer,
                       unregister)

__all__ = ["ADAPTERS", "OPTIMIZERS", "AdapterKind", "Method", "MethodContext", "OptimizerKind", "adapter_misfit",
           "build_method", "check_capabilities", "check_rank", "in_head", "layer_shape", "param_groups",
           "refuse_sharding", "register_adapter", "register_optimizer", "targeted_layers", "unregister"]
