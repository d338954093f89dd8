"""What a model loader hands the method and the task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelBundle:
    """The module, its tokenizer (or image processor, or None) and the default names of the
    linear layers a low-rank method adapts."""

    model: Any
    tokenizer: Any = None
    target_modules: list[str] = field(default_factory=list)
    name: str = ""
    head_modules: list[str] = field(default_factory=list)  # task heads trained in full (e.g. "classifier")
