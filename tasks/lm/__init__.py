"""Causal language modelling: WikiText-2 perplexity (`wikitext2.py`), and the same eval on two
halves of the blocks (`halved.py`: pick on one, report the other; the claims suite uses it)."""
from tasks.lm.wikitext2 import Wikitext2Task

__all__ = ["Wikitext2Task"]
