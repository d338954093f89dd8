"""Final-answer extraction and comparison of the math benchmarks, each after its reference
script (the cases in tests/unit/test_answer_extraction.py pin the references' behaviour).

- GSM8K (MetaMath `eval_gsm8k.py`): the text after the last "The answer is: ", first number by
  `[\-+]?\d*[\.,/]?\d+` (commas dropped, fractions evaluated), rounded, against the number
  after "####" (`extract_metamath_number`, `gsm8k_gold`); `extract_last_number` is lm-eval's
  "flexible-extract" (the last number anywhere in the output).
- MATH (MetaMath `eval_math.py`, Hendrycks et al.'s `is_equiv`): the answer line up to ".\n",
  trailing "." cut (`extract_metamath_math`), or the last \boxed{} (`extract_boxed_or_line`),
  compared after `strip_string`'s normalisation (spaces, \left/\right, dfrac/tfrac, units,
  degrees, percents, 0.5 -> \frac{1}{2}, a/b -> \frac{a}{b}, ...).
- Orca-Math (Answer.AI fsdp_qlora `eval_utils.py`): the last number or ratio, as a string.
"""
from __future__ import annotations

import re
from fractions import Fraction


# --- GSM8K -----------------------------------------------------------------------------

def gsm8k_gold(answer: str) -> float:
    """The number after '####' of a GSM8K answer (commas dropped)."""
    return float(answer.split("####")[-1].strip().replace(",", ""))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        pass
    try:
        import unicodedata

        unicodedata.numeric(s)
        return True
    except (TypeError, ValueError):
        return False


def extract_metamath_number(completion: str) -> int | None:
    """MetaMath eval_gsm8k.py `extract_answer_number`: None when there is no answer line."""
    parts = completion.split("The answer is: ")
    if len(parts) < 2:
        return None
    match = re.search(r"[\-+]?\d*[\.,/]?\d+", parts[-1].strip())
    if not match:
        return None
    text = match.group()
    if "/" in text:
        numerator, denominator = text.split("/")[0], text.split("/")[1]
        if not (_is_number(denominator) and _is_number(numerator)):
            return None
        if denominator == "0":
            return round(float(numerator.replace(",", "")))
        frac = Fraction(text.replace(",", ""))
        return round(float(frac.numerator / frac.denominator))
    value = float(text.replace(",", ""))
    return None if value == float("inf") else round(value)


_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")  # lm-eval gsm8k "flexible-extract"


def extract_last_number(completion: str) -> float | None:
    """The last number of the text ($ and thousands separators dropped), or None."""
    for token in reversed(_NUMBER.findall(completion)):
        cleaned = token.replace("$", "").replace(",", "").rstrip(".")
        try:
            return float(cleaned)
        except ValueError:
            continue
    return None


# --- MATH (Hendrycks et al. 2021 normalisation, as MetaMath's util.is_equiv) -----------

def last_boxed_only_string(string: str) -> str | None:
    idx = string.rfind("\\boxed")
    if "\\boxed " in string:
        return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    depth, i = 0, idx
    while i < len(string):
        if string[i] == "{":
            depth += 1
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                return string[idx:i + 1]
        i += 1
    return None


def remove_boxed(s: str | None) -> str | None:
    if s is None:
        return None
    if s.startswith("\\boxed "):
        return s[len("\\boxed "):]
    for left in ("\\boxed{", "\\fbox{"):
        if s.startswith(left) and s.endswith("}"):
            return s[len(left):-1]
    return None


def _fix_fracs(string: str) -> str:
    # Like the reference, a bare "\\frac" at the very end raises (IndexError) and is_equiv
    # then falls back to plain string equality.
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{":
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    # int() errors propagate on purpose (the reference only catches its assertion), so
    # e.g. "\\pi/2" makes is_equiv compare the raw strings.
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    a_int, b_int = int(a), int(b)
    if string != f"{a_int}/{b_int}":
        return string
    return "\\frac{" + str(a_int) + "}{" + str(b_int) + "}"


def _remove_right_units(string: str) -> str:
    if "\\text{ " in string:  # only ever units in MATH answers
        splits = string.split("\\text{ ")
        if len(splits) != 2:
            raise ValueError("ambiguous units")  # the reference asserts: raw comparison follows
        return splits[0]
    return string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def strip_string(string: str) -> str:
    """Hendrycks et al.'s MATH answer normalisation (MetaMath `util.strip_string`)."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")  # the reference removes "\\%" only, not a bare "%"
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]  # "k = 3" -> "3"
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def is_equiv(str1: str | None, str2: str | None) -> bool:
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False
    try:
        return strip_string(str1) == strip_string(str2)
    except Exception:
        return str1 == str2


def extract_metamath_math(completion: str) -> str | None:
    """MetaMath eval_math.py `process_results`: the answer line's text, or None."""
    parts = completion.split("The answer is: ")
    if len(parts) < 2:
        return None
    ans = parts[-1].split(".\n")[0].strip()
    if ans.endswith("."):
        ans = ans[:-1]
    return ans.strip()


def extract_boxed_or_line(completion: str) -> str | None:
    boxed = remove_boxed(last_boxed_only_string(completion))
    return boxed if boxed is not None else extract_metamath_math(completion)


def math_gold(row: dict) -> str:
    """Gold MATH answer: the hub's `answer`, else the last \\boxed{} of the solution, else
    MetaMath's answer line."""
    if "problem" in row and row.get("answer"):
        return row["answer"]
    solution = row.get("solution") or row.get("answer") or ""
    boxed = remove_boxed(last_boxed_only_string(solution))
    return boxed if boxed is not None else (extract_metamath_math(solution) or "")


# --- Orca-Math (Answer.AI fsdp_qlora eval_utils.py) ------------------------------------

_ORCA_NUMBER = re.compile(r"[\$€£]?\d+(?:\.\d+)?(?:\:\d+(?:\.\d+)?)?")


def extract_last_number_or_ratio(s: str) -> str | None:
    found = _ORCA_NUMBER.findall(s)
    return found[-1] if found else None

