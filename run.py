#!/usr/bin/env python
"""Experiment runner: one Hydra job = one (model, task, method, rank, seed) = one JSON record.

    python run.py                                   # LoFT on the paper's Figure 2 problem
    python run.py method=loft rank=4 task=wikitext2 model=smollm2_135m
    python run.py -m method=full,lora,loft task=matfac
    python run.py -m rank=1,2,4,16                  # sweep
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from loft.config import register_resolvers

CONF = Path(__file__).resolve().parent / "conf"
CHECKED_GROUPS = ("model", "task", "method", "trainer", "logger")


def check_group_choices(argv: list[str]) -> None:
    """Name the fix for a mistyped group choice in one line, before Hydra's longer message."""
    for arg in argv:
        name, sep, value = arg.partition("=")
        name = name.lstrip("+~")
        if not sep or name not in CHECKED_GROUPS:
            continue
        options = sorted(p.stem for p in (CONF / name).glob("*.yaml"))
        for choice in value.split(","):
            if choice not in options:
                sys.exit(f"error: unknown {name} '{choice}'; choose one of: {', '.join(options)}")


register_resolvers()


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    from loft.core.errors import ConfigError, TrainingDiverged
    from loft.validation import compose_error_line, validate
    from tasks.base import DataMissingError

    try:
        validate(cfg)  # before the imports below: their warnings would come before the one line
    except ConfigError as err:
        fail(str(err))
    from loft.runner import run
    from loft.train.loop import Interrupted

    try:
        run(cfg)
    except (ConfigError, DataMissingError, TrainingDiverged) as err:
        fail(str(err))
    except InstantiationException as err:  # a task's own check of its settings, raised inside Hydra's call
        if isinstance(err.__cause__, (ConfigError, DataMissingError)):
            fail(str(err.__cause__))
        raise
    except OmegaConfBaseException as err:  # a value that only fails when read (an interpolation)
        fail(compose_error_line(err))
    except Interrupted as err:  # fault injection: end like a killed process, without a record
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(3)


def main_one_line_errors() -> None:
    """Hydra reports a bad value while composing in several lines (or a traceback): say it in one."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from loft.validation import compose_error_line

    asked_full = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises instead of printing its own report
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        if asked_full:
            raise
        fail(compose_error_line(err))


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    main_one_line_errors()
