"""Math word problems: GSM8K, MATH-500 and Orca-Math (`task.py`, one spec per benchmark in
`benchmarks.py`), MGSM's eleven languages (`mgsm.py`), answer extraction (`answers.py`) and
file/hub reading (`data.py`)."""
from tasks.math.answers import (extract_boxed_or_line, extract_last_number, extract_last_number_or_ratio,
                                extract_metamath_math, extract_metamath_number, gsm8k_gold, is_equiv,
                                last_boxed_only_string, math_gold, remove_boxed, strip_string)
from tasks.math.benchmarks import (BENCHMARKS, METAMATH_EVAL_SUFFIX, METAMATH_PROMPT, METAMATH_STOP, ORCA_PROMPT,
                                   MathBenchmark)
from tasks.math.data import gsm8k_to_metamath, load_orca_hub, orca_split, read_json_or_jsonl
from tasks.math.mgsm import LANGUAGES, MGSMTask, read_mgsm
from tasks.math.task import MathReasoningTask

__all__ = ["BENCHMARKS", "LANGUAGES", "METAMATH_EVAL_SUFFIX", "METAMATH_PROMPT", "METAMATH_STOP", "ORCA_PROMPT",
           "MGSMTask", "MathBenchmark", "MathReasoningTask", "extract_boxed_or_line", "extract_last_number",
           "extract_last_number_or_ratio", "extract_metamath_math", "extract_metamath_number", "gsm8k_gold",
           "gsm8k_to_metamath", "is_equiv", "last_boxed_only_string", "load_orca_hub", "math_gold", "orca_split",
           "read_json_or_jsonl", "read_mgsm", "remove_boxed", "strip_string"]
