"""Hostile HumanEval/0 completions (issue 11), each a function body after the problem's prompt.

Placeholders ($OUT a folder outside the scratch folder, writable by everyone; $VICTIM and
$VICTIM2 files in it; $SOCK a Unix socket and $PORT a TCP port on 127.0.0.1, both listening
in the evaluating process; $PID the evaluating process; $MARK a unique sleep length) are
filled with `string.Template`. The escapes return a wrong answer; the fakes return a wrong
answer unless their trick works.
"""
from __future__ import annotations

from string import Template

SHELL = ("    import multiprocessing.util as u, os\n"
         "    u.spawnv_passfds(b'/bin/sh', [b'sh', b'-c', os.fsencode($cmd)], ())\n")

ESCAPES = {
    # a shell through multiprocessing's fork/exec helper (not an audited os.* call)
    "spawnv_shell": Template(SHELL).safe_substitute(cmd="'echo pwned > $OUT/spawnv'") + "    return None\n",
    # libc's system() called by its address, found by parsing libc's ELF symbol table (no dlsym)
    "ctypes_system_by_address": """\
    import ctypes, struct
    base = path = None
    for line in open('/proc/self/maps'):
        f = line.split()
        if len(f) > 5 and 'libc.so' in f[5] and int(f[2], 16) == 0:
            base, path = int(f[0].split('-')[0], 16), f[5]
            break
    data = open(path, 'rb').read()
    shoff = struct.unpack_from('<Q', data, 0x28)[0]
    shentsize, shnum = struct.unpack_from('<HH', data, 0x3A)
    secs = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize) for i in range(shnum)]
    dynsym = next(s for s in secs if s[1] == 11)
    strtab = secs[dynsym[6]][4]
    for off in range(dynsym[4], dynsym[4] + dynsym[5], 24):
        name, info, other, shndx, value, size = struct.unpack_from('<IBBHQQ', data, off)
        if data[strtab + name:data.index(b'\\0', strtab + name)] == b'system':
            ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)(base + value)(b'echo pwned > $OUT/ctypes')
            break
    return None
""",
    # a relative path against a directory descriptor: a path check on the name sees "inside"
    "dir_fd_write": """\
    import os
    d = os.open('$OUT', os.O_RDONLY)
    fd = os.open('dir_fd', os.O_WRONLY | os.O_CREAT, dir_fd=d)
    os.write(fd, b'pwned')
    return None
""",
    "unlink": "    import os\n    os.unlink('$VICTIM'[1:], dir_fd=os.open('/', os.O_RDONLY))\n    return None\n",
    "rename": "    import os\n    d = os.open('/', os.O_RDONLY)\n    os.rename('$VICTIM2'[1:], '$VICTIM2.moved'[1:], "
              "src_dir_fd=d, dst_dir_fd=d)\n    return None\n",
    "sqlite_creates_file": "    import sqlite3\n    sqlite3.connect('$OUT/db.sqlite').execute('create table t (x)')\n"
                           "    return None\n",
    # a child in a session of its own that outlives the program and writes later
    "outlive": Template(SHELL).safe_substitute(
        cmd="'setsid sh -c \"sleep $MARK; echo late > $OUT/late\" > /dev/null 2>&1 &'") + "    return None\n",
    # many children, each in a session of its own
    "fork_bomb": """\
    import multiprocessing.util as u
    for _ in range(200):
        try:
            u.spawnv_passfds(b'/usr/bin/setsid', [b'setsid', b'sleep', b'$MARK'], ())
        except OSError:
            break
    return None
""",
    # reach the evaluating process' sockets: directly and from a child
    "sockets": """\
    import socket, sys
    code = ("import socket\\n"
            "for fam, addr in ((socket.AF_UNIX, '$SOCK'), (socket.AF_INET, ('127.0.0.1', $PORT))):\\n"
            "    try:\\n"
            "        s = socket.socket(fam); s.settimeout(1); s.connect(addr); s.sendall(b'pwned')\\n"
            "    except OSError:\\n"
            "        pass\\n")
    exec(code)
    import multiprocessing.util as u
    exe = sys.executable.encode()
    u.spawnv_passfds(exe, [exe, b'-c', code.encode()], ())
    import time
    time.sleep(1)
    return None
""",
    # signal the evaluating process (SIGUSR1: the test counts it)
    "signal_evaluator": """\
    import os, signal
    for pid in {$PID, os.getppid()}:
        for send in (lambda p: os.kill(p, signal.SIGUSR1),
                     lambda p: signal.pidfd_send_signal(os.pidfd_open(p), signal.SIGUSR1)):
            try:
                send(pid)
            except (OSError, PermissionError):
                pass
    return None
""",
    # read the evaluating process (its command line and environment)
    "read_evaluator": """\
    seen = b''
    for part in ('cmdline', 'environ'):
        try:
            seen += open('/proc/$PID/' + part, 'rb').read()
        except OSError:
            pass
    if seen:
        open('$OUT/read', 'wb').write(seen)
    return seen.decode('latin-1')
""",
}

# a wrong body scored as passing, the three routes of the issue
FAKES = {
    # the pass token from the harness' frame (the old sandbox kept it in a local called nonce)
    "frame_nonce": """\
    import sys, os
    f = sys._getframe()
    while f is not None:
        if 'nonce' in f.f_locals and 'result_fd' in f.f_locals:
            os.write(f.f_locals['result_fd'], f.f_locals['nonce'].encode())
            os._exit(0)
        f = f.f_back
    return None
""",
    # a trace hook that, when check() raises, reports success with the token it finds up the stack
    "settrace": """\
    import sys, os
    def tracer(frame, event, arg):
        if event == 'exception' and frame.f_code.co_name == 'check':
            f = frame
            while f is not None:
                if 'nonce' in f.f_locals and 'result_fd' in f.f_locals:
                    os.write(f.f_locals['result_fd'], f.f_locals['nonce'].encode())
                    os._exit(0)
                f = f.f_back
        return tracer
    sys.settrace(tracer)
    sys._getframe(1).f_trace = tracer
    return None
""",
    "always_equal": """\
    class Yes:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        def __bool__(self):
            return True
        __hash__ = object.__hash__
    return Yes()
""",
    "bool_subclass_equal": """\
    class Yes(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__
    return Yes(2)
""",
}


def fill(body: str, **values) -> str:
    return Template(body).safe_substitute({k: str(v) for k, v in values.items()})


class World:
    """What the hostile set aims at, outside the sandbox, and what it managed to do there."""

    def __init__(self, root: str = "/var/tmp"):
        import os
        import secrets
        import signal
        import socket
        import tempfile
        import threading

        self.out = tempfile.mkdtemp(prefix="loft-hostile-", dir=root)  # not under /tmp: visible to a plain bind of /
        os.chmod(self.out, 0o777)
        self.victim, self.victim2 = os.path.join(self.out, "victim"), os.path.join(self.out, "victim2")
        for path in (self.victim, self.victim2):
            with open(path, "w") as f:
                f.write("keep")
            os.chmod(path, 0o666)
        self.mark = f"7.{secrets.randbelow(10**6):06d}"
        self.received: list[bytes] = []
        self.signals = 0
        self._old = signal.signal(signal.SIGUSR1, self._on_signal)
        self.unix = socket.socket(socket.AF_UNIX)
        self.sock = os.path.join(self.out, "sock")
        self.unix.bind(self.sock)
        os.chmod(self.sock, 0o777)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        for s in (self.unix, self.tcp):
            s.listen(8)
            s.settimeout(0.2)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        self.values = dict(OUT=self.out, VICTIM=self.victim, VICTIM2=self.victim2, SOCK=self.sock, PORT=self.port,
                           PID=os.getpid(), MARK=self.mark)

    def _on_signal(self, *_):
        self.signals += 1

    def _accept(self, s) -> None:
        while s.fileno() != -1:
            try:
                conn, _ = s.accept()
                self.received.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    def program(self, name: str) -> str:
        return fill({**ESCAPES, **FAKES}[name], **self.values)

    def survivors(self, wait_s: float = 2.0) -> list[str]:
        """Host processes still running the hostile set's marked sleep (after the kernel has had
        wait_s to finish killing a PID namespace)."""
        import os
        import time

        deadline = time.monotonic() + wait_s
        while True:
            found = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if self.mark.encode() in f.read():
                            found.append(pid)
                except OSError:
                    pass
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def breaches(self) -> dict[str, str]:
        """Everything that reached outside: files made or changed, survivors, connections, signals."""
        import os

        made = sorted(set(os.listdir(self.out)) - {"victim", "victim2", "sock"})
        out = {}
        if made:
            out["files created outside"] = ", ".join(made)
        for path in (self.victim, self.victim2):
            if not os.path.exists(path) or open(path).read() != "keep":
                out[f"{os.path.basename(path)} deleted or changed"] = path
        survivors = self.survivors()
        if survivors:
            out["processes survived"] = str(len(survivors))
        if self.received:
            out["sockets reached"] = str(len(self.received))
        if self.signals:
            out["evaluator signalled"] = str(self.signals)
        return out

    def close(self) -> None:
        import shutil
        import signal
        import subprocess

        for pid in self.survivors(wait_s=0):  # what the old sandbox left behind
            subprocess.run(["kill", "-9", pid], check=False)
        signal.signal(signal.SIGUSR1, self._old)
        self.unix.close()
        self.tcp.close()
        shutil.rmtree(self.out, ignore_errors=True)
