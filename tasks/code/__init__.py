"""The code-generation family: HumanEval / HumanEval+ (`task.py`), pass@k (`pass_at_k.py`), data
(`data.py`), the sandbox jobs (`checks.py`), the two code-generation protocols (`protocols.py`:
the runner's, and EvalPlus' in `evalplus.py` with `sanitize.py`), scoring (`scoring.py`).
Programs run in the shared sandbox, `tasks/sandbox.py`."""
from tasks.code.checks import check_program, plus_program
from tasks.code.data import (HUMAN_EVAL_FIX, answer_folders, load_codefeedback_python, load_plus_problems,
                             load_problems, read_samples)
from tasks.code.pass_at_k import mean_pass_at_k, pass_at_k
from tasks.code.protocols import PROTOCOLS, completion_to_code, get_protocol, instruct_prompt
from tasks.code.scoring import score_samples, write_results
from tasks.code.task import HumanEvalTask

__all__ = ["HUMAN_EVAL_FIX", "PROTOCOLS", "HumanEvalTask", "answer_folders", "check_program", "completion_to_code",
           "get_protocol", "instruct_prompt", "load_codefeedback_python", "load_plus_problems", "load_problems",
           "mean_pass_at_k", "pass_at_k", "plus_program", "read_samples", "score_samples", "write_results"]
