"""Causal language modelling: WikiText-2 perplexity (`wikitext2.py`)."""
from tasks.lm.wikitext2 import Wikitext2Task

__all__ = ["Wikitext2Task"]
