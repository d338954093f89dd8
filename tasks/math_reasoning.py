"""Moved to tasks/math/. Kept so `_target_: tasks.math_reasoning.MathReasoningTask` in
conf/task/{gsm8k,math,orca_math}.yaml (and the resolved configs of earlier records) still loads."""
from tasks.math import *  # noqa: F401,F403
from tasks.math import __all__  # noqa: F401
