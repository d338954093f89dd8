"""Moved to tasks/math/mgsm.py. Kept so `_target_: tasks.mgsm.MGSMTask` in conf/task/mgsm*.yaml
(and the resolved configs of earlier records) still loads."""
from tasks.math.mgsm import LANGUAGES, MGSM_FIX, MGSMTask, read_mgsm  # noqa: F401
