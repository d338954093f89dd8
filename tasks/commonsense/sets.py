"""The eight commonsense sets: names, answer patterns, hub sources, and their row formats.

Rows are in the LLM-Adapters format (instruction / input / output / answer).
`to_llm_adapters` turns a canonical hub row (the fields lm-eval's task configs use) into
one; `from_llm_adapters` inverts it (for the lm-eval protocol on local files).
`extract_answer` / `response_part` read a generation as DoRA's
`commonsense_reasoning/commonsense_evaluate.py` does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CommonsenseSet:
    key: str            # our task name
    folder: str         # LLM-Adapters dataset folder
    pattern: str        # first-match answer regex of commonsense_evaluate.py
    harness: str        # lm-evaluation-harness task name
    hub: tuple          # (path, config) of the canonical hub dataset (lm-eval's sources)
    hub_train: str      # its training split
    hub_eval: str       # the split LLM-Adapters' test.json holds (labelled split the harness scores)


SETS = {s.key: s for s in (
    CommonsenseSet("boolq", "boolq", r"true|false", "boolq", ("google/boolq", None), "train", "validation"),
    CommonsenseSet("piqa", "piqa", r"solution1|solution2", "piqa", ("baber/piqa", None), "train", "validation"),
    CommonsenseSet("siqa", "social_i_qa", r"answer1|answer2|answer3|answer4|answer5", "social_iqa",
                   ("lighteval/siqa", None), "train", "validation"),
    CommonsenseSet("hellaswag", "hellaswag", r"ending1|ending2|ending3|ending4", "hellaswag",
                   ("Rowan/hellaswag", None), "train", "validation"),
    CommonsenseSet("winogrande", "winogrande", r"option1|option2", "winogrande",
                   ("allenai/winogrande", "winogrande_xl"), "train", "validation"),
    CommonsenseSet("arc_c", "ARC-Challenge", r"answer1|answer2|answer3|answer4|answer5", "arc_challenge",
                   ("allenai/ai2_arc", "ARC-Challenge"), "train", "test"),
    CommonsenseSet("arc_e", "ARC-Easy", r"answer1|answer2|answer3|answer4|answer5", "arc_easy",
                   ("allenai/ai2_arc", "ARC-Easy"), "train", "test"),
    CommonsenseSet("obqa", "openbookqa", r"answer1|answer2|answer3|answer4|answer5", "openbookqa",
                   ("allenai/openbookqa", "main"), "train", "test"),
)}
ORDER = list(SETS)  # the paper's column order
_COMPILED = {k: re.compile(s.pattern) for k, s in SETS.items()}


def extract_answer(set_key: str, text: str, ignore_case: bool = False) -> str:
    """commonsense_evaluate.py `extract_answer`: the first match of the set's regex in the
    stripped text, "" when there is none. Case-sensitive like the reference."""
    text = text.strip()
    if ignore_case:
        text = text.lower()
    m = _COMPILED[set_key].search(text)  # == re.findall(...)[0]: leftmost match
    return m.group(0) if m else ""


def response_part(decoded: str) -> str:
    """DoRA keeps `output.split("### Response:")[-1].strip()`."""
    return decoded.split("### Response:")[-1].strip()


# --- hub rows <-> LLM-Adapters rows ----------------------------------------------------

def _choices(options: list[str], word: str = "Answer") -> str:
    return " ".join(f"{word}{i + 1}: {t}" for i, t in enumerate(options))


def _fmt(options: list[str], word: str = "answer") -> str:
    return "/".join(f"{word}{i + 1}" for i in range(len(options)))


def to_llm_adapters(set_key: str, row: dict) -> dict:
    """A canonical hub row (the fields lm-eval's task configs use) in the LLM-Adapters
    format. The templates are those of LLM-Adapters' dataset files (checked in the tests by
    a round trip through `from_llm_adapters` on every local file)."""
    if set_key == "boolq":
        answer = "true" if row["answer"] in (True, 1, "true", "True") else "false"
        instruction = (f"Please answer the following question with true or false, question: {row['question']}?"
                       "\n\nAnswer format: true/false")
    elif set_key == "piqa":
        answer = f"solution{int(row['label']) + 1}"
        instruction = (f"Please choose the correct solution to the question: {row['goal']}\n\n"
                       f"Solution1: {row['sol1']}\n\nSolution2: {row['sol2']}\n\nAnswer format: solution1/solution2")
    elif set_key == "siqa":
        options = [row["answerA"], row["answerB"], row["answerC"]]
        answer = f"answer{int(row['label'])}"
        instruction = (f"Please choose the correct answer to the question: {row['context']} {row['question']}\n\n"
                       f"{_choices(options)}\n\nAnswer format: {_fmt(options)}")
    elif set_key == "hellaswag":
        answer = f"ending{int(row['label']) + 1}"
        instruction = (f"Please choose the correct ending to complete the given sentence: {row['activity_label']}: "
                       f"{row['ctx']}\n\n{_choices(row['endings'], 'Ending')}\n\nAnswer format: "
                       f"{_fmt(row['endings'], 'ending')}")
    elif set_key == "winogrande":
        answer = f"option{row['answer']}"
        instruction = ("Please choose the correct answer to fill in the blank to complete the given sentence: "
                       f"{row['sentence']}\n\nOption1: {row['option1']} Option2: {row['option2']} "
                       "Answer format: option1/option2")
    elif set_key in ("arc_c", "arc_e", "obqa"):
        question = row["question_stem"] if set_key == "obqa" else row["question"]
        options, labels = list(row["choices"]["text"]), list(row["choices"]["label"])
        answer = f"answer{labels.index(row['answerKey'].strip()) + 1}"
        instruction = (f"Please choose the correct answer to the question: {question}\n\n{_choices(options)}"
                       f"\n\nAnswer format: {_fmt(options)}")
    else:
        raise KeyError(set_key)
    return {"instruction": instruction, "input": "", "output": f"the correct answer is {answer}", "answer": answer}


_PARSERS = {
    "boolq": re.compile(r"Please answer the following question with true or false, question: (?P<q>.*)\?\n\n"
                        r"Answer format: true/false", re.S),
    "piqa": re.compile(r"Please choose the correct solution to the question: (?P<goal>.*?)\n\nSolution1: (?P<s1>.*?)"
                       r"\n\nSolution2: (?P<s2>.*)\n\nAnswer format: solution1/solution2", re.S),
    "siqa": re.compile(r"Please choose the correct answer to the question: (?P<q>.*)\n\n(?P<opts>Answer1: .*)\n\n"
                       r"Answer format: answer1/answer2/answer3", re.S),
    "hellaswag": re.compile(r"Please choose the correct ending to complete the given sentence: (?P<label>.*?): "
                            r"(?P<ctx>.*)\n\n(?P<opts>Ending1: .*)\n\nAnswer format: ending1/ending2/ending3/ending4",
                            re.S),
    "winogrande": re.compile(r"Please choose the correct answer to fill in the blank to complete the given sentence: "
                             r"(?P<s>.*)\n\nOption1: (?P<o1>.*) Option2: (?P<o2>.*) Answer format: option1/option2",
                             re.S),
    "mc": re.compile(r"Please choose the correct answer to the question: (?P<q>.*)\n\n(?P<opts>Answer1: .*)\n\n"
                     r"Answer format: (?P<fmt>answer1(?:/answer\d)*)", re.S),
}


def _split_options(text: str, word: str, n: int) -> list[str]:
    """'Answer1: a Answer2: b' -> ['a', 'b'] for exactly n options (split on the known markers)."""
    out, rest = [], text
    for i in range(1, n + 1):
        head = f"{word}{i}: "
        if not rest.startswith(head):
            raise ValueError(f"expected {head!r} in {text[:80]!r}")
        rest = rest[len(head):]
        if i < n:
            cut = rest.find(f" {word}{i + 1}: ")
            if cut < 0:
                raise ValueError(f"missing {word}{i + 1} in {text[:80]!r}")
            out.append(rest[:cut])
            rest = rest[cut + 1:]
        else:
            out.append(rest)
    return out


def from_llm_adapters(set_key: str, row: dict) -> dict:
    """Invert `to_llm_adapters`: the canonical doc fields lm-eval's templates read. Lossy
    only where the LLM-Adapters file is: boolq has no passage; siqa joins context and
    question with a space (split back at the last sentence end, which leaves the harness
    prompt "Q: {context} {question}" unchanged); hellaswag keeps the raw `ctx`."""
    text, answer = row["instruction"], row["answer"]
    key = "mc" if set_key in ("arc_c", "arc_e", "obqa") else set_key
    m = _PARSERS[key].fullmatch(text)
    if m is None:
        raise ValueError(f"{set_key}: instruction not in the LLM-Adapters template: {text[:120]!r}")
    if set_key == "boolq":
        return {"question": m["q"], "passage": "", "label": int(answer == "true")}
    if set_key == "piqa":
        return {"goal": m["goal"], "sol1": m["s1"], "sol2": m["s2"], "label": int(answer[-1]) - 1}
    if set_key == "siqa":
        a, b, c = _split_options(m["opts"], "Answer", 3)
        q = m["q"]
        cut = max(q.rfind(". "), q.rfind("! "), q.rfind("? "))
        context, question = (q[:cut + 1], q[cut + 2:]) if cut >= 0 else (q.split(" ", 1) + [""])[:2]
        return {"context": context, "question": question, "answerA": a, "answerB": b, "answerC": c,
                "label": str(int(answer[-1]))}
    if set_key == "hellaswag":
        endings = _split_options(m["opts"], "Ending", 4)
        return {"activity_label": m["label"], "ctx": m["ctx"], "ctx_a": m["ctx"], "ctx_b": "",
                "endings": endings, "label": str(int(answer[-1]) - 1)}
    if set_key == "winogrande":
        return {"sentence": m["s"], "option1": m["o1"], "option2": m["o2"], "answer": answer[-1]}
    n = m["fmt"].count("/") + 1
    options = _split_options(m["opts"], "Answer", n)
    labels = [chr(ord("A") + i) for i in range(n)]
    doc = {"choices": {"text": options, "label": labels}, "answerKey": labels[int(answer[len("answer"):]) - 1]}
    doc["question_stem" if set_key == "obqa" else "question"] = m["q"]
    return doc
