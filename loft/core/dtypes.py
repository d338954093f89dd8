"""One reading of a dtype setting (`model.dtype`, `trainer.dtype`)."""
from __future__ import annotations

import torch

from loft.core.errors import ConfigError

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name, device: torch.device | None = None, setting: str = "dtype") -> torch.dtype:
    """`auto` (or empty) = bfloat16 on CUDA (halves memory, tensor cores), float32 elsewhere (bf16
    matmuls are slow on CPUs and hurt the numerics tests rely on). CUDA means `device` when given,
    else "a GPU is available" (a model is loaded before it is placed). Any other name must be one of
    DTYPES; else a ConfigError naming `setting` (e.g. "trainer.dtype")."""
    name = str(name or "auto")
    if name == "auto":
        cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
        return torch.bfloat16 if cuda else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"{setting}={name} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]
