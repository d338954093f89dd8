"""What conf/ needs before it composes (registered by run.py, scripts and the tests): OmegaConf
resolvers and the structured-config schema (loft/config_schema.py)."""
from omegaconf import OmegaConf

from loft.config_schema import register_schema


def register_resolvers() -> None:
    register_schema()
    # ${mul:2,${rank}}: LoRA/DoRA use alpha = 2r (LoFT paper, Table 4)
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("int"):
        OmegaConf.register_new_resolver("int", lambda x: int(x))  # ${int:${mul:${rank},1.5}}
