"""Moved to tasks/lm/wikitext2.py. Kept so `_target_: tasks.wikitext2.Wikitext2Task` in
conf/task/wikitext2.yaml (and the resolved configs of earlier records) still loads, and
`scripts/prepare_data.py wikitext2` finds the hub layout it writes."""
from tasks.lm.wikitext2 import (HUB_DATASET, HUB_SPLITS, OFFLINE_TRAIN, Wikitext2Task, datasets_split,  # noqa: F401
                                hub_rows_to_raw)
