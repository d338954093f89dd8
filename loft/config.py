"""What conf/ needs before it composes (registered by run.py, scripts and the tests): OmegaConf
resolvers and the structured-config schema (loft/config_schema.py); and composing a run's config
the way `python run.py <overrides>` does, for code that reads conf/ (tables, benchmarks, scripts)."""
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

from loft.config_schema import register_schema
from loft.core.paths import REPO

CONF = REPO / "conf"


def register_resolvers() -> None:
    register_schema()
    # ${mul:2,${rank}}: LoRA/DoRA use alpha = 2r (LoFT paper, Table 4)
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("int"):
        OmegaConf.register_new_resolver("int", lambda x: int(x))  # ${int:${mul:${rank},1.5}}


@contextmanager
def hydra_on_conf():
    """Hydra initialised on conf/ (nested calls reuse the outer initialisation)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        yield GlobalHydra.instance()
        return
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield GlobalHydra.instance()


def compose_run(*overrides: str, hydra_node: bool = False) -> DictConfig:
    """The config `python run.py <overrides>` composes (`hydra_node`: keep Hydra's own node)."""
    from hydra import compose

    with hydra_on_conf():
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_node)
