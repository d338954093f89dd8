"""Answer extractors and metrics of the LM tasks on hand-written cases (no model, no data).

Each extractor follows a reference script (cited in its module); the cases pin the
reference's behaviour, including its sharp edges: case-sensitive first match for the
commonsense sets, MetaMath's rounding and fraction handling, Hendrycks' MATH normalisation,
Answer.AI's last number-or-ratio.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tasks.commonsense import (ORDER, SETS, extract_answer, reference_prompt, response_part,  # noqa: E402
                               to_llm_adapters, from_llm_adapters)
from tasks.generation import IGNORE_INDEX, alpaca_prompt, collate_right, truncate_at_stop  # noqa: E402
from tasks.code import completion_to_code  # noqa: E402
from tasks.math import (extract_boxed_or_line, extract_last_number, extract_last_number_or_ratio,  # noqa: E402
                        extract_metamath_math, extract_metamath_number, gsm8k_gold, gsm8k_to_metamath,
                        is_equiv, last_boxed_only_string, math_gold, remove_boxed, strip_string)


# --- commonsense (LLM-Adapters commonsense_evaluate.py extract_answer) ------------------

@pytest.mark.parametrize("set_key,text,expected", [
    ("boolq", "the correct answer is true", "true"),
    ("boolq", "  the correct answer is false\n", "false"),
    ("boolq", "false, not true", "false"),                       # several matches: the first one
    ("boolq", "true or false? it is false", "true"),
    ("boolq", "The answer is True.", ""),                          # case-sensitive, like the reference
    ("boolq", "TRUE", ""),
    ("boolq", "untrue", "true"),                                   # no word boundaries in the reference regex
    ("boolq", "", ""),                                             # no match
    ("boolq", "yes", ""),
    ("piqa", "the correct answer is solution2", "solution2"),
    ("piqa", "solution3 solution1", "solution1"),
    ("piqa", "Solution1", ""),
    ("siqa", "the correct answer is answer3", "answer3"),
    ("arc_c", "answer5", "answer5"),
    ("arc_e", "answer12", "answer1"),                              # alternation: answer1 matches first
    ("obqa", "answer4 then answer2", "answer4"),
    ("obqa", "answer 4", ""),
    ("hellaswag", "the correct answer is ending4", "ending4"),
    ("hellaswag", "ending5 ending3", "ending3"),
    ("winogrande", "option2", "option2"),
    ("winogrande", "Option1", ""),
])
def test_commonsense_first_match(set_key, text, expected):
    assert extract_answer(set_key, text) == expected


def test_commonsense_caseless_variant():
    assert extract_answer("boolq", "The answer is True.", ignore_case=True) == "true"
    assert extract_answer("winogrande", "OPTION1", ignore_case=True) == "option1"


def test_every_set_has_an_extractor_and_matching_output_format():
    for key in ORDER:
        answer = {"boolq": "false", "piqa": "solution2", "hellaswag": "ending3", "winogrande": "option1"}.get(key, "answer2")
        assert extract_answer(key, f"the correct answer is {answer}") == answer


def test_response_part_keeps_text_after_the_last_marker():
    # DoRA's commonsense_evaluate.py: output.split("### Response:")[-1].strip()
    assert response_part(" the correct answer is true") == "the correct answer is true"
    assert response_part("true\n### Response: false") == "false"
    assert extract_answer("boolq", response_part("true\n\n### Response:\nfalse")) == "false"


def test_alpaca_and_reference_prompts():
    assert alpaca_prompt("Q?") == ("Below is an instruction that describes a task. Write a response that "
                                   "appropriately completes the request.\n\n### Instruction:\nQ?\n\n### Response:\n")
    assert "### Input:\nctx\n\n### Response:\n" in alpaca_prompt("Q?", "ctx")
    pad = " " * 16
    train = reference_prompt("Q?", output="the correct answer is true", train=True)
    assert train.endswith(f"the request.  \n\n{pad}### Instruction:\n{pad}Q?\n{pad}\n{pad}### Response:\n"
                          f"{pad}the correct answer is true")
    assert reference_prompt("Q?", train=False).endswith(f"the request. \n\n{pad}### Instruction:\n{pad}Q?\n\n"
                                                        f"{pad}### Response:\n{pad}")


def test_hub_rows_convert_to_the_llm_adapters_templates():
    arc = {"question": "Which is a gas?", "choices": {"text": ["ice", "steam", "rock"], "label": ["A", "B", "C"]},
           "answerKey": "B"}
    row = to_llm_adapters("arc_e", arc)
    assert row == {"instruction": "Please choose the correct answer to the question: Which is a gas?\n\n"
                                  "Answer1: ice Answer2: steam Answer3: rock\n\nAnswer format: answer1/answer2/answer3",
                   "input": "", "output": "the correct answer is answer2", "answer": "answer2"}
    assert from_llm_adapters("arc_e", row)["choices"]["text"] == ["ice", "steam", "rock"]
    boolq = to_llm_adapters("boolq", {"question": "is water wet", "answer": False, "passage": "..."})
    assert boolq["instruction"].endswith("question: is water wet?\n\nAnswer format: true/false")
    assert boolq["answer"] == "false"
    hs = to_llm_adapters("hellaswag", {"activity_label": "Cooking", "ctx": "A man cuts",
                                       "endings": ["a", "b", "c", "d"], "label": "2"})
    assert hs["instruction"] == ("Please choose the correct ending to complete the given sentence: Cooking: A man cuts"
                                 "\n\nEnding1: a Ending2: b Ending3: c Ending4: d\n\n"
                                 "Answer format: ending1/ending2/ending3/ending4")
    assert hs["answer"] == "ending3" and from_llm_adapters("hellaswag", hs)["endings"] == ["a", "b", "c", "d"]
    siqa = to_llm_adapters("siqa", {"context": "Kai ran. He won.", "question": "Why?", "answerA": "x",
                                    "answerB": "y", "answerC": "z", "label": "3"})
    doc = from_llm_adapters("siqa", siqa)
    assert f"{doc['context']} {doc['question']}" == "Kai ran. He won. Why?" and doc["label"] == "3"
    with pytest.raises(ValueError):
        from_llm_adapters("piqa", {"instruction": "not a template", "answer": "solution1"})
    assert set(SETS) == set(ORDER)


# --- GSM8K (MetaMath eval_gsm8k.py, lm-eval flexible-extract) --------------------------

@pytest.mark.parametrize("text,expected", [
    ("so 3 + 4 = 7.\nThe answer is: 7", 7),
    ("The answer is: 1,234", 1234),
    ("The answer is: -5", -5),
    ("The answer is: 3/4", 1),                    # fractions are evaluated, then rounded (reference)
    ("The answer is: 7/0", 7),                    # zero denominator: the numerator (reference)
    ("The answer is: 2.5 dollars", 2),            # round() half to even, as the reference
    ("The answer is: 18\nThe answer is: 20", 20),  # several answer lines: the last
    ("The answer is: twelve", None),              # no number after the line
    ("the answer is: 12", None),                  # case-sensitive marker
    ("12", None),                                 # no answer line at all
    ("", None),
])
def test_metamath_gsm8k_extraction(text, expected):
    assert extract_metamath_number(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("She pays $1,200 in total.", 1200.0),
    ("3 apples and 4 pears make 7.", 7.0),
    ("#### -12", -12.0),
    ("no digits here", None),
    ("costs 2.50.", 2.5),
])
def test_flexible_last_number(text, expected):
    assert extract_last_number(text) == expected


def test_gsm8k_gold_and_metamath_rewrite():
    answer = "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 1,018"
    assert gsm8k_gold(answer) == 1018.0
    rewritten = gsm8k_to_metamath(answer)
    assert "<<" not in rewritten and rewritten.endswith("#### 1,018\nThe answer is: 1018")
    assert extract_metamath_number(rewritten) == 1018


# --- MATH (MetaMath eval_math.py + Hendrycks is_equiv) ---------------------------------

@pytest.mark.parametrize("a,b,equal", [
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac12", True),
    ("1/2", "\\frac{1}{2}", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ("10\\%", "10", True),
    ("10%", "10", False),                          # only "\%" is removed (reference)
    ("90^\\circ", "90", True),
    ("x = 5", "5", True),
    ("5\\text{ cm}", "5", True),
    ("\\sqrt3", "\\sqrt{3}", True),
    (".5", "\\frac{1}{2}", True),
    ("\\$10", "10", True),
    ("3", "4", False),
    ("\\pi/2", "\\frac{\\pi}{2}", False),          # a/b only for integers; else raw comparison
    (None, "1", False),
])
def test_hendrycks_is_equiv(a, b, equal):
    assert is_equiv(a, b) is equal


def test_strip_string_examples():
    assert strip_string("\\left(3, \\dfrac{\\pi}{2}\\right)") == "(3,\\frac{\\pi}{2})"
    assert strip_string("k = 3") == "3"


def test_is_equiv_matches_lm_eval_reference():
    spec = importlib.util.find_spec("lm_eval")  # a pinned dependency: its hendrycks_math utils are the reference
    path = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "hendrycks_math" / "utils.py"
    ref_spec = importlib.util.spec_from_file_location("hendrycks_math_utils", path)
    ref = importlib.util.module_from_spec(ref_spec)
    ref_spec.loader.exec_module(ref)
    cases = ["\\frac{1}{2}", "0.5", "1/2", "\\frac12", "\\dfrac{3}{4}", "3/4", "10\\%", "10%", "x=5", "k = 3",
             "\\sqrt3", "\\sqrt{3}", "5\\text{ cm}", "a\\text{ b}\\text{ c}", "\\pi/2", "\\frac", "90^\\circ",
             "\\left(1,2\\right)", "(1,2)", ".5", " .5", "\\$10", "{.5}", "", "2x/3", "\\frac{\\sqrt{3}}{2}"]
    for a in cases:
        for b in cases:
            assert is_equiv(a, b) == ref.is_equiv(a, b), (a, b)


def test_math_answer_extraction():
    out = "We get $x = \\boxed{\\frac{14}{3}}$.\nThe answer is: \\frac{14}{3}."
    assert extract_metamath_math(out) == "\\frac{14}{3}"
    assert extract_metamath_math("The answer is: 9.\nDone") == "9"
    assert extract_metamath_math("no answer line") is None
    assert last_boxed_only_string("a \\boxed{x^{2}} b \\boxed{\\frac{1}{2}} c") == "\\boxed{\\frac{1}{2}}"
    assert remove_boxed("\\boxed{5}") == "5" and remove_boxed(None) is None
    assert last_boxed_only_string("\\boxed{unclosed") is None
    assert extract_boxed_or_line("so \\boxed{7}") == "7"
    assert extract_boxed_or_line("The answer is: 8") == "8"
    assert math_gold({"question": "q", "answer": "...$\\boxed{27}$.The answer is: 27"}) == "27"
    assert math_gold({"problem": "p", "solution": "\\boxed{3}", "answer": "3"}) == "3"


# --- Orca-Math (Answer.AI fsdp_qlora eval_utils.py) ------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("He has 5 apples, then 12.", "12"),
    ("The ratio is 3:4", "3:4"),
    ("It costs $12.50 in total", "$12.50"),
    ("Total: £7", "£7"),
    ("no numbers", None),
    ("-3 degrees", "3"),                           # no sign in the reference pattern
    ("1,000 people", "000"),                       # commas split numbers (reference behaviour)
])
def test_orca_last_number_or_ratio(text, expected):
    assert extract_last_number_or_ratio(text) == expected


# --- shared helpers --------------------------------------------------------------------

def test_truncate_at_stop_takes_the_earliest_stop():
    assert truncate_at_stop("abc\ndef f\nclass X", ["\nclass ", "\ndef "]) == "abc"
    assert truncate_at_stop("no stops", ["\ndef "]) == "no stops"
    assert truncate_at_stop("x", []) == "x"


def test_collate_right_pads_labels_with_ignore_index():
    batch = collate_right([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], 0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_humaneval_code_assembly():
    problem = {"prompt": "from typing import List\n\ndef f(x: List[int]) -> int:\n    \"\"\"doc\"\"\"\n",
               "entry_point": "f"}
    assert completion_to_code(problem, "    return 1\n", "completion") == problem["prompt"] + "    return 1\n"
    full = "def f(x):\n    return 2\n```\nexplanation"
    code = completion_to_code(problem, full, "instruct")
    assert code.startswith("from typing import List\n") and code.endswith("return 2\n")
    assert completion_to_code(problem, "    return 3\n", "instruct").startswith(problem["prompt"])
