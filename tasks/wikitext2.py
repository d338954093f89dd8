"""Re-export module: WikiText-2 lives in `tasks/lm/wikitext2.py`. Kept only so the Hydra `_target_`
`tasks.wikitext2.Wikitext2Task` (conf/task/wikitext2.yaml and the resolved configs of existing
records) resolves."""
from tasks.lm.wikitext2 import (HUB_DATASET, HUB_SPLITS, OFFLINE_TRAIN, Wikitext2Task, datasets_split,  # noqa: F401
                                hub_rows_to_raw)
