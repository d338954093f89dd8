"""EvalPlus' code-generation protocol (evalplus v0.3: codegen.py, provider/hf.py,
provider/utility.py), what LoFT's Tables 20 and 21 used.

- prompt: `problem["prompt"].strip() + "\\n"` (codegen.py); for the instruct style the same
  instruction and response prefix as the runner (`protocols.instruct_prompt`).
- generation: stop at the first of EvalPlus' EOS strings (plus, for direct completion, its
  HumanEval stops; for a chat prompt "\\n```\\n"), tabs replaced by four spaces; up to 768 new
  tokens (DecoderBase's default); sampling with top_p 0.95 and HF's default top_k (50), which
  the HF decoder leaves on (the preset sets `task.max_new_tokens` and `task.top_k`).
- program: `sanitize(prompt + completion, entry_point)` for direct completion, `sanitize(completion)`
  for the instruct style: EvalPlus' own `evalplus.sanitize.sanitize` when it imports (it needs
  tree-sitter), else `tasks.code.sanitize`, which reproduces it.
- HumanEval+: its comparison with the float tolerance carried across inputs (`checks.plus_program`).
"""
from __future__ import annotations

EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")  # utility.EOS
HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")  # extra_eos_for_direct_completion
CHAT_STOP = ("\n```\n",)  # hf.py, with a chat template
MAX_NEW_TOKENS = 768
TOP_K = 50  # transformers' GenerationConfig default, which EvalPlus' HF decoder does not override


def sanitizer():
    """(sanitize function, where it comes from): EvalPlus' own when importable, else ours."""
    try:
        from evalplus.sanitize import sanitize
        return sanitize, "evalplus"
    except Exception:  # not installed, or tree-sitter / its data modules missing
        from tasks.code.sanitize import sanitize
        return sanitize, "tasks.code.sanitize"


def evalplus_prompt(problem: dict) -> str:
    return problem["prompt"].strip() + "\n"


def stops(style: str) -> tuple[str, ...]:
    return EOS + (HUMANEVAL_STOP if style == "completion" else CHAT_STOP)


def clean_completion(text: str, style: str) -> str:
    """hf.py: cut at the first stop string, then tabs to four spaces."""
    cut = min((text.index(s) for s in stops(style) if s in text), default=len(text))
    return text[:cut].replace("\t", "    ")


def evalplus_program(problem: dict, completion: str, style: str) -> str:
    sanitize, _ = sanitizer()
    completion = clean_completion(completion, style)
    solution = evalplus_prompt(problem) + completion if style == "completion" else completion
    return sanitize(solution, entrypoint=problem["entry_point"])
