"""The sandbox: run a generated program in a process of its own, with a verdict the program cannot forge.

Each run starts `_sandbox.py` in its own process group and temporary directory, under CPU-time,
memory, file-size and process-count limits, a wall-clock kill of the whole group (and of any
process that left it), capped output, a network namespace of its own where the OS allows it, and,
when run as root, as the `nobody` user inside a PID namespace (every process the program starts
dies with the sandbox, whatever it does to escape) and a mount namespace with private, empty
/tmp, /var/tmp and /dev/shm. See `isolation()` for what this machine achieves; every verdict's
provenance names the protections that were unavailable (`PROTECTIONS`).

Forgery: the program never judges itself. Its results leave the sandbox as plain data (ints,
strings, lists, ...; see `_sandbox.encode`) and are compared in the trusted parent, with builtin
equality, against expected values the child never sees. A HumanEval `check(candidate)` test runs
here too, with `candidate` a proxy that calls into the sandbox; so exiting early with status 0,
printing "all tests passed", or patching builtins, `assert` helpers or `__eq__` yields no `correct`.
(Names a test borrows from the program, e.g. HumanEval/38's `encode_cyclic`, also run in the
sandbox: a program that rewrites those can mislead that test, as in the original harness.)

The benchmarks' formats are in `evalplus` (HumanEval+/MBPP+) and `livecodebench`; `code` is the
one entry point over all of them.
"""
import ast
import builtins
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


from boundary.verify import Verdict
from boundary.verify._sandbox import encode, loads

REVISION = "2"  # this module's logic; bump it when the comparison or the harness changes
VERIFIER = "sandbox-python"  # the name stored with every verdict of this module
VERSION = f"{REVISION}+py{sys.version_info.major}.{sys.version_info.minor}"  # the interpreter decides too
TIMEOUT_S = 10.0  # default wall-clock budget of a whole run (all its tests), in seconds
MEMORY_BYTES = 4 << 30  # address-space limit of the sandboxed program (evalplus's 4 GiB)
FILE_BYTES = 16 << 20  # the largest file (stdout included) the program may write
PROCESSES = 64  # process-count limit (RLIMIT_NPROC) of the sandbox user
REPLY_BYTES = 256 << 20  # the largest reply line read from the sandbox; a larger one is `wrong`
_SCRIPT = Path(__file__).with_name("_sandbox.py")
_TEST_MODULES = set(sys.stdlib_module_names) | {"numpy"}  # modules a test may borrow from the program


class _Timeout(BaseException):
    """The run's wall-clock budget is spent (a BaseException, so a test's `except Exception` cannot eat it)."""


class _Died(BaseException):
    """The sandboxed process ended or said something unreadable."""


# Every protection the sandbox can give; a verdict's provenance names those this machine did not.
PROTECTIONS = ("rlimits", "nobody", "no-network", "pid-namespace", "private-tmp")
_ISOLATION: list[list[str]] = []  # the last isolation a sandbox reported (for verdicts reached before it reports)


def provenance(isolation: Sequence[str] | None) -> str:
    """The sandbox part of a verdict's provenance: what isolated the program, and what was unavailable."""
    if isolation is None:
        isolation = _ISOLATION[-1] if _ISOLATION else None
    if isolation is None:
        return "sandbox=unknown"
    missing = [p for p in PROTECTIONS if p not in isolation]
    return f"sandbox={','.join(isolation)}" + (f"; unavailable={','.join(missing)}" if missing else "")


def _verdict(status: str, detail: str = "", isolation: Sequence[str] | None = ()) -> Verdict:
    """A verdict of this module; `isolation` what the sandbox reported (None: unknown, the last one
    reported; (): no program ran)."""
    prov = provenance(isolation) if isolation != () else ""
    return Verdict(status, None, VERIFIER, VERSION, detail[:500], prov)


class Sandbox:
    """One sandboxed interpreter running `program` in mode "call" or "script"; use as a context manager."""

    def __init__(self, program: str, mode: str, timeout_s: float, memory_bytes: int = MEMORY_BYTES):
        self.deadline = time.monotonic() + timeout_s  # the whole run's wall-clock end
        self.timeout_s = timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix="boundary-sandbox-"))
        os.chmod(self.dir, 0o777)  # writable by `nobody` when the child drops root
        self.token = self.dir.name  # marks the sandbox's processes, to find any that left the group
        self.log = open(self.dir / ".output", "wb")
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        limits = {"cpu_s": timeout_s, "memory_bytes": memory_bytes, "file_bytes": FILE_BYTES,
                  "processes": PROCESSES}
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir), "TMPDIR": str(self.dir), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "BOUNDARY_SANDBOX": self.token}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_SCRIPT), str(to_child), str(from_child), json.dumps(limits)],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            pass_fds=(to_child, from_child), start_new_session=True)
        os.close(to_child)
        os.close(from_child)
        self._buf = bytearray()  # bytes read from the child and not yet parsed
        self._seen = 0  # how far _buf is known to hold no newline
        self.isolation: list[str] | None = None  # what confines the program, as the child reports it
        try:
            self.isolation = list(self.receive().get("isolation", []))  # sent before the program is read
            _ISOLATION[:] = [self.isolation]
            self.send({"program": program, "mode": mode})
            self.ready = self.receive()  # {"ready": bool} or {"ready": False, "error": ...}
        except BaseException:  # a program that loops or dies while loading: clean up, then report
            self.close()
            raise

    def send(self, msg: dict) -> None:
        """Write one request (the child may have died: that shows on the next receive)."""
        try:
            os.write(self._w, (json.dumps(msg) + "\n").encode())
        except (BrokenPipeError, OSError) as e:
            raise _Died(f"the program's process is gone ({self.status()})") from e

    def receive(self) -> dict:
        """Read one reply line before the deadline and parse it (tagged values decoded); _Timeout or _Died otherwise."""
        while (end := self._buf.find(b"\n", self._seen)) < 0:
            self._seen = len(self._buf)
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _Timeout(f"no result within {self.timeout_s:g} s")
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                self.proc.wait()  # tell a CPU-limit kill (a timeout) from a crash
                if self.proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                    raise _Timeout(f"CPU time limit ({self.status()})")
                raise _Died(f"the program's process ended ({self.status()})")
            self._buf += chunk
            if len(self._buf) > REPLY_BYTES:
                raise _Died(f"a reply longer than {REPLY_BYTES} bytes")
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        self._seen = 0
        try:
            msg = loads(line)
        except (ValueError, TypeError, RecursionError) as e:
            raise _Died("an unreadable reply") from e
        if not isinstance(msg, dict):
            raise _Died("a reply that is not a message")
        return msg

    def request(self, msg: dict) -> dict:
        self.send(msg)
        return self.receive()

    def status(self) -> str:
        """The child's exit, in words."""
        rc = self.proc.poll()
        if rc is None:
            return "still running"
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        return f"exit status {rc}"

    def close(self) -> None:
        """Kill every process of the sandbox, then remove the directory. With a PID namespace: its
        PID 1 (the kernel then kills every process in it) and its relay, waiting until PID 1 is
        gone; always: the process group, and any process that left it carrying the sandbox's token."""
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        inner = _children(self.proc.pid) if "pid-namespace" in (self.isolation or []) else []
        for pid in inner:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for pid in inner:
            _wait_dead(pid)
        _kill_marked(self.token)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self, limit: int = 4000) -> str:
        """The start of what the program printed (for details)."""
        self.log.flush()
        with open(self.dir / ".output", "rb") as f:
            return f.read(limit).decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc/PID/task/PID/children; [] where the kernel lacks it)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _wait_dead(pid: int, timeout_s: float = 5.0) -> None:
    """Wait until process `pid` is gone or a zombie: a namespace's PID 1 becomes one only after the
    kernel has killed every other process of its namespace."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.002)


def _kill_marked(token: str) -> None:
    """SIGKILL every process whose environment carries the sandbox's token (those that called setsid),
    scanning again until none is left (a process may fork while the scan runs)."""
    needle = f"BOUNDARY_SANDBOX={token}".encode()
    for _ in range(50):
        found = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle not in f.read():
                        continue
                os.kill(int(pid), signal.SIGKILL)
                found = True
            except (OSError, ProcessLookupError):
                pass
        if not found:
            return
        time.sleep(0.01)


def isolation() -> list[str]:
    """What the sandbox achieves on this machine (see `PROTECTIONS`): "rlimits", "nobody" (root
    dropped), "no-network", "pid-namespace" (every process it starts dies with it), "private-tmp"
    (its own empty /tmp, /var/tmp and /dev/shm)."""
    with Sandbox("", "call", 10.0) as box:
        return list(box.isolation or [])


# ---------------------------------------------------------------- calls into the sandbox

class _Proxy:
    """Stands for a function of the program: calls it in the sandbox, returns its result as genuine data."""

    def __init__(self, box: Sandbox, name: str):
        self.box, self.name = box, name

    def many(self, args_list: Sequence[Sequence]) -> list:
        """Call on each argument list in one exchange; each item a value or the exception it raised."""
        try:
            encoded = [[encode(a) for a in args] for args in args_list]
        except RecursionError as e:
            raise _Died("the test passed an unencodable argument") from e
        self.box.send({"call": self.name, "args_list": encoded})
        out = []
        for _ in args_list:
            r = self.box.receive()
            if "raised" not in r and "value" not in r:
                raise _Died("a reply of the wrong shape")
            if "raised" in r:
                name = str(r["raised"]).split(":")[0]
                kind = getattr(builtins, name, None)
                if not (isinstance(kind, type) and issubclass(kind, Exception)):
                    kind = RuntimeError
                out.append(kind(f"the program raised {r['raised']}"))
            else:
                out.append(r.get("value"))
        return out

    def __call__(self, *args):
        out = self.many([args])[0]
        if isinstance(out, Exception):
            raise out
        return out


def _free_names(test: str) -> list[str]:
    """Names the test uses but neither defines nor gets from builtins: it borrows them from the program."""
    tree = ast.parse(test)
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return sorted(n for n in used - bound if not hasattr(builtins, n))


def _judge(program: str, timeout_s: float, body, mode: str = "call",
           unloadable: str = "the program failed to load") -> Verdict:
    """Start a sandbox in `mode` and turn what `body(box)` does into a Verdict (time-outs, deaths)."""
    box = None
    try:
        box = Sandbox(program, mode, timeout_s)
        if not box.ready.get("ready"):
            return _verdict("wrong", f"{unloadable}: {box.ready.get('error')}", box.isolation)
        v = body(box)
        return v.with_(provenance=provenance(box.isolation))
    except _Timeout as e:
        return _verdict("timeout", str(e), box.isolation if box else None)
    except _Died as e:
        return _verdict("wrong", str(e), box.isolation if box else None)
    finally:
        if box is not None:
            box.close()


def run(program: str, test: str, entry_point: str | None, timeout_s: float = TIMEOUT_S) -> Verdict:
    """Run a HumanEval-style `check(candidate)` test (or MBPP top-level asserts) against `program`.

    The test runs in this process with the program's functions as sandbox proxies.
    """
    def body(box: Sandbox) -> Verdict:
        wanted = sorted(set(_free_names(test)) | ({entry_point} if entry_point else set()))
        try:
            found = {name: (kind, detail) for name, kind, detail in box.request({"names": wanted})["names"]}
        except (KeyError, TypeError, ValueError) as e:
            raise _Died("a reply of the wrong shape") from e
        if entry_point and found.get(entry_point, ("",))[0] != "callable":
            return _verdict("wrong", f"the program defines no function {entry_point!r}")
        ns = {"__name__": "__test__"}
        for name, (kind, detail) in found.items():
            if kind == "callable":
                ns[name] = _Proxy(box, name)
            elif kind == "module" and detail in _TEST_MODULES:
                ns[name] = importlib.import_module(detail)  # the test's `math.isclose`: our own module
            elif kind == "value":
                ns[name] = detail
        try:
            exec(compile(test, "<test>", "exec"), ns)
            if entry_point and callable(ns.get("check")):
                ns["check"](_Proxy(box, entry_point))
        except AssertionError as e:
            return _verdict("wrong", f"assertion failed {e}".strip())
        except Exception as e:  # noqa: BLE001 (the candidate raised, or returned something unusable)
            return _verdict("wrong", f"{type(e).__name__}: {e}")
        return _verdict("correct")
    try:
        ast.parse(test)
    except SyntaxError as e:
        return _verdict("error", f"the test does not parse: {e}")
    return _judge(program, timeout_s, body)
