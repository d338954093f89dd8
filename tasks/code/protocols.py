"""The two code-generation protocols a HumanEval run can follow (`task.protocol`):

- `runner` (the task config's default): the raw problem prompt is continued and
  program = prompt + completion (instruct style: the generated code); HumanEval+ compared with
  the tolerance decided per input.
- `evalplus` (the paper presets, LoFT Tables 20 and 21): EvalPlus' protocol (`evalplus.py`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from loft.core.errors import ConfigError
from tasks.code import evalplus
from tasks.generation import alpaca_prompt

EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
EVALPLUS_RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and passes "
                     "corresponding tests:")
COMPLETION_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__", "\ndef main(",
                   "\nprint(")
INSTRUCT_STOP = ("\n```",)
STYLES = ("completion", "instruct")


def instruct_prompt(problem: dict) -> str:
    instruction = f"{EVALPLUS_INSTRUCTION}\n```\n{problem['prompt'].strip()}\n```"
    return alpaca_prompt(instruction) + f"{EVALPLUS_RESPONSE}\n```python\n"


def _prompt_imports(prompt: str) -> str:
    return "".join(line + "\n" for line in prompt.splitlines() if re.match(r"\s*(import|from)\s", line))


def completion_to_code(problem: dict, completion: str, style: str) -> str:
    """The runner's program: prompt + completion; instruct: the code (with the prompt's imports)
    when it defines the entry point, else prompt + code."""
    if style == "instruct":
        code = completion.split("```")[0]
        if re.search(rf"def\s+{re.escape(problem['entry_point'])}\s*\(", code):
            return _prompt_imports(problem["prompt"]) + code
        return problem["prompt"] + code
    return problem["prompt"] + completion


@dataclass(frozen=True)
class CodeProtocol:
    name: str
    completion_prompt: Callable[[dict], str]         # the completion style's prompt
    stops: Callable[[str], tuple[str, ...]]          # style -> stop strings
    program: Callable[[dict, str, str], str]         # (problem, completion, style) -> program
    carry_tolerance: bool                            # HumanEval+ comparison (checks.plus_program)

    def prompt(self, problem: dict, style: str) -> str:
        return self.completion_prompt(problem) if style == "completion" else instruct_prompt(problem)


PROTOCOLS = {
    "runner": CodeProtocol("runner", lambda p: p["prompt"],
                           lambda style: COMPLETION_STOP if style == "completion" else INSTRUCT_STOP,
                           completion_to_code, carry_tolerance=False),
    "evalplus": CodeProtocol("evalplus", evalplus.evalplus_prompt, evalplus.stops, evalplus.evalplus_program,
                             carry_tolerance=True),
}


def get_protocol(name: str) -> CodeProtocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"task.protocol={name!r}: use {' or '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
