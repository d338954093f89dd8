"""Re-export module: the math family lives in `tasks/math/`. Kept only so the Hydra `_target_`
`tasks.math_reasoning.MathReasoningTask` (conf/task/{gsm8k,math,orca_math}.yaml and the resolved
configs of existing records) resolves."""
from tasks.math import *  # noqa: F401,F403
from tasks.math import __all__  # noqa: F401
