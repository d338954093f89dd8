"""Re-export module: MGSM lives in `tasks/math/mgsm.py`. Kept only so the Hydra `_target_`
`tasks.mgsm.MGSMTask` (conf/task/mgsm.yaml and the resolved configs of existing records) resolves."""
from tasks.math.mgsm import LANGUAGES, MGSM_FIX, MGSMTask, read_mgsm  # noqa: F401
