"""Re-export module: the code family lives in `tasks/code/`. Kept only so the Hydra `_target_`
`tasks.humaneval.HumanEvalTask` (conf/task/humaneval.yaml and the resolved configs of existing
records) resolves."""
from tasks.code import *  # noqa: F401,F403
from tasks.code import __all__  # noqa: F401
