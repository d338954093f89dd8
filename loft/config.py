"""OmegaConf resolvers used by conf/ (registered by run.py and the tests)."""
from omegaconf import OmegaConf


def register_resolvers() -> None:
    # ${mul:2,${rank}}: LoRA/DoRA use alpha = 2r (LoFT paper, Table 4)
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("int"):
        OmegaConf.register_new_resolver("int", lambda x: int(x))  # ${int:${mul:${rank},1.5}}
