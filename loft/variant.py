"""A run's variant: what distinguishes it beyond (task, model, method, rank, seed).

`tag=NAME` when given; otherwise the command-line overrides that are not part of the key,
spelled as Hydra's `hydra.job.override_dirname` spells them (each override's input line,
`+`/`++`/`~` prefixes kept, sorted, joined by ','). Left out: the key itself (task, model,
method, rank, seed), tag, and settings that do not change what a run computes (those left out
of the config hash: paths.*, force, resume, logger, checkpoint cadence, fault injection), and
`experiment`: a preset is a named set of settings whose runs the tables expect under the
preset's own tag (presets share runs on purpose). `hydra.*` and `hydra/...` overrides are
Hydra's, not the job's, so they never reach the job's task overrides.
"""
from __future__ import annotations

from hydra.core.override_parser.overrides_parser import OverridesParser

from loft.records import NON_SEMANTIC_KEYS

KEY_GROUPS = ("task", "model", "method", "rank", "seed", "tag", "experiment")


def _excluded(key: str) -> bool:
    return key in KEY_GROUPS or any(key == k or key.startswith(k + ".") for k in NON_SEMANTIC_KEYS)


def variant_of(overrides: list[str]) -> str:
    """The override_dirname of `overrides` without the excluded keys ('' when none remain)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return ",".join(sorted(o.input_line for o in parsed if not _excluded(o.key_or_group)))

