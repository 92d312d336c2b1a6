"""Code: run a generated program against a benchmark's tests in a sandbox, with a verdict the program cannot forge.

Each run starts `_sandbox.py` in its own process group and temporary directory, under CPU-time,
memory, file-size and process-count limits, a wall-clock kill of the whole group (and of any
process that left it), capped output, a network namespace of its own where the OS allows it, and,
when run as root, as the `nobody` user inside a PID namespace (every process the program starts
dies with the sandbox, whatever it does to escape) and a mount namespace with private, empty
/tmp, /var/tmp and /dev/shm. See `isolation()` for what this machine achieves; every verdict's
provenance names the protections that were unavailable (`PROTECTIONS`).

Forgery: the program never judges itself. Its results leave the sandbox as plain data (ints,
strings, lists, ...; see `_sandbox.encode`) and are compared here, in the trusted parent, with
builtin equality, against expected values the child never sees. A HumanEval `check(candidate)` test
runs here too, with `candidate` a proxy that calls into the sandbox; so exiting early with status 0,
printing "all tests passed", or patching builtins, `assert` helpers or `__eq__` yields no `correct`.
(Names a test borrows from the program, e.g. HumanEval/38's `encode_cyclic`, also run in the
sandbox: a program that rewrites those can mislead that test, as in the original harness.)

Formats (the `tests` dicts of `boundary.tasks.Problem`, see `run_tests`): "humaneval" and "mbpp"
(evalplus: base and plus inputs, expected outputs from the canonical solution, `atol`, evalplus's
special oracles), or an assertion test; LiveCodeBench "stdin" (whole program, stdin to stdout) and
"functional" (a `Solution` method, JSON arguments).
"""
import ast
import builtins
import hashlib
import importlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from tqdm import tqdm

from boundary import quiet
from boundary.verify import Verdict
from boundary.verify._sandbox import Unencodable, encode, loads

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
# LiveCodeBench runs every program after these imports (lcb_runner/evaluation/testing_util.py).
LCB_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\n"
    "from typing import *\nimport string\nimport re\nimport datetime\nimport collections\nimport heapq\n"
    "import bisect\nimport copy\nimport math\nimport random\nimport statistics\nimport itertools\n"
    "import functools\nimport operator\nimport io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


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


# ---------------------------------------------------------------- evalplus inputs and expected outputs

# evalplus's special oracles (evalplus/eval/_special_oracle.py, Apache-2.0), so verdicts match its own.
MBPP_OUTPUT_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}
MBPP_OUTPUT_SET_EQ = {"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
                      "larg_nnum", "intersection_array", "find_dissimilar", "Diff"}


def _surface_area(base_edge, height):  # Mbpp/581
    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant) / 2)


def _digit_distance(num1, num2):  # Mbpp/558
    a, b = str(num1), str(num2)
    n = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(n), b.zfill(n)))


def _poly(xs, x):  # HumanEval/32
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _is_floats(x) -> bool:
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x))


def matches(out, exp, inp, *, atol: float, entry_point: str, dataset: str) -> bool:
    """evalplus's comparison of an output with the expected one (evalplus/eval/__init__.py, unsafe_execute)."""
    if dataset == "mbpp" and entry_point in MBPP_OUTPUT_NOT_NONE:  # e.g. a re.Match: only "not None" counts
        return out == exp if isinstance(out, bool) else exp == (out is not None)
    if isinstance(out, Unencodable):
        return False
    try:
        exact = out == exp
        if dataset == "mbpp":
            if entry_point == "are_equivalent":  # Mbpp/164
                exact = True
            elif entry_point == "sum_div":  # Mbpp/295
                exact = exact or out == 0
            elif entry_point == "surface_Area":  # Mbpp/581
                exact = exact or abs(out - _surface_area(*inp)) <= atol
            elif entry_point == "digit_distance_nums":  # Mbpp/558
                exact = exact or out == _digit_distance(*inp)
            elif entry_point in MBPP_OUTPUT_SET_EQ:
                exact = set(out) == set(exp)
        if dataset == "humaneval" and entry_point == "find_zero":
            return abs(_poly(*inp, out)) <= atol
        if atol == 0 and _is_floats(exp):
            atol = 1e-6
        if not exact and atol != 0:
            if type(out) is not type(exp) or (isinstance(exp, (list, tuple)) and len(out) != len(exp)):
                return False
            return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
        return bool(exact)
    except Exception:  # noqa: BLE001 (an output of the wrong shape for the oracle)
        return False


_EXPECTED: dict[str, tuple[list, float]] = {}  # (outputs, seconds) per (canonical program, entry point, inputs)


def expected_outputs(canonical: str, entry_point: str, inputs: Sequence, *, dataset: str,
                     timeout_s: float = 120.0) -> tuple[list, float]:
    """The canonical solution's outputs on `inputs` (run in the sandbox, as evalplus does) and the
    seconds it took; memoized. RuntimeError if the canonical solution itself fails."""
    key = hashlib.sha256(repr((canonical, entry_point, dataset, inputs)).encode()).hexdigest()
    if key not in _EXPECTED:
        outs = []

        def body(box: Sandbox) -> Verdict:
            outs.extend(_Proxy(box, entry_point).many(inputs))
            return _verdict("correct")
        start = time.monotonic()
        v = _judge(canonical, timeout_s, body)
        seconds = time.monotonic() - start
        failed = [i for i, o in enumerate(outs) if isinstance(o, Exception)]
        if not v.correct or failed:
            detail = f"raised {outs[failed[0]]}" if failed else f"{v.status} {v.detail}"
            raise RuntimeError(f"the canonical solution of {entry_point!r} fails on input "
                               f"#{failed[0] if failed else 0}: {detail}")
        if dataset == "mbpp" and entry_point in MBPP_OUTPUT_NOT_NONE:
            outs = [o is not None for o in outs]
        _EXPECTED[key] = (outs, seconds)
    return _EXPECTED[key]


def run_inputs(program: str, entry_point: str, inputs: Sequence, expected: Sequence, *, atol: float = 0.0,
               dataset: str = "humaneval", timeout_s: float = TIMEOUT_S) -> Verdict:
    """Call `entry_point` on every input in the sandbox (one exchange) and compare here with `matches`;
    the first miss is `wrong`."""
    def body(box: Sandbox) -> Verdict:
        outs = _Proxy(box, entry_point).many(inputs)
        for i, (inp, out, exp) in enumerate(zip(inputs, outs, expected)):
            if isinstance(out, Exception):
                return _verdict("wrong", f"input #{i}: {out}")
            if not matches(out, exp, inp, atol=atol, entry_point=entry_point, dataset=dataset):
                return _verdict("wrong", f"input #{i}: got {str(out)[:100]}, expected {str(exp)[:100]}")
        return _verdict("correct")
    if len(inputs) != len(expected):
        return _verdict("error", f"{len(inputs)} inputs but {len(expected)} expected outputs")
    return _judge(program, timeout_s, body)


# ---------------------------------------------------------------- LiveCodeBench

def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(tok) for tok in line.split()]
    except (InvalidOperation, ValueError):
        return None


def same_stdout(got: str, want: str) -> bool:
    """LiveCodeBench's stdout comparison: line by line after stripping, numbers compared as decimals."""
    a, b = _lines(got), _lines(want)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x != y:
            dx, dy = _decimals(x), _decimals(y)
            if dx is None or dy is None or dx != dy:
                return False
    return True


def run_stdin(program: str, inputs: Sequence[str], outputs: Sequence[str], timeout_s: float = TIMEOUT_S) -> Verdict:
    """Run the whole program once per input (as __main__, stdin to stdout) and compare its output here."""
    if len(inputs) != len(outputs):
        return _verdict("error", f"{len(inputs)} inputs but {len(outputs)} outputs")

    def each_input(box: Sandbox) -> Verdict:
        for i, (inp, want) in enumerate(zip(inputs, outputs)):
            src, dst = box.dir / f"in{i}", box.dir / f"out{i}"
            src.write_text(inp)
            os.chmod(src, 0o644)
            reply = box.request({"stdin": src.name, "stdout": dst.name})  # relative to the sandbox directory
            got = dst.read_bytes()[:FILE_BYTES].decode(errors="replace") if dst.exists() else ""
            if reply.get("exit") != 0:
                return _verdict("wrong", f"input #{i}: exit {reply.get('exit')}: {box.output(300)}")
            if not same_stdout(got, want):
                return _verdict("wrong", f"input #{i}: printed {got[:80]!r}, expected {want[:80]!r}")
        return _verdict("correct")

    return _judge(LCB_IMPORTS + program, timeout_s, each_input, mode="script",
                  unloadable="the program does not compile")


def run_functional(program: str, fn_name: str, inputs: Sequence[str], outputs: Sequence[str],
                   timeout_s: float = TIMEOUT_S) -> Verdict:
    """LiveCodeBench functional tests: `Solution().fn_name(*args)`, one JSON argument per input line."""
    try:
        args = [[json.loads(line) for line in inp.split("\n")] for inp in inputs]
        want = [json.loads(out) for out in outputs]
    except ValueError as e:
        return _verdict("error", f"a functional test is not JSON: {e}")

    def body(box: Sandbox) -> Verdict:
        outs = _Proxy(box, f"Solution.{fn_name}").many(args)
        for i, (out, w) in enumerate(zip(outs, want)):
            if isinstance(out, Exception):
                return _verdict("wrong", f"input #{i}: {out}")
            if isinstance(out, tuple):
                out = list(out)
            if isinstance(out, Unencodable) or out != w:
                return _verdict("wrong", f"input #{i}: got {str(out)[:100]}, expected {str(w)[:100]}")
        return _verdict("correct")
    return _judge(LCB_IMPORTS + program, timeout_s, body)


# ---------------------------------------------------------------- one entry for every format

def _canonical(tests: dict) -> str:
    """The canonical program: its solution, behind the prompt when the solution is only a function body."""
    sol = tests.get("canonical_solution") or ""
    if f"def {tests['entry_point']}" not in sol:
        sol = (tests.get("prompt") or "") + sol
    return sol


def run_tests(program: str, tests: dict, timeout_s: float | None = None, *, plus: bool = True) -> Verdict:
    """Grade `program` against a `boundary.tasks.Problem.tests` dict (see the module docstring for formats).

    humaneval/mbpp: base inputs, then (if `plus`) plus inputs, against the canonical solution's
    outputs; without inputs, the `test` source. `timeout_s` bounds the whole run (default: TIMEOUT_S
    or 4x the canonical solution's time if longer; for LiveCodeBench 5 s plus 1 s per case).
    """
    fmt = tests.get("format")
    try:
        if fmt in ("humaneval", "mbpp"):
            inputs = list(tests.get("base_inputs") or []) + (list(tests.get("plus_inputs") or []) if plus else [])
            if not inputs:
                return run(program, tests["test"], tests["entry_point"], timeout_s or TIMEOUT_S)
            expected, seconds = expected_outputs(_canonical(tests), tests["entry_point"], inputs, dataset=fmt)
            budget = timeout_s or max(TIMEOUT_S, 4 * seconds + 2)  # evalplus: 4x the canonical time
            return run_inputs(program, tests["entry_point"], inputs, expected, atol=float(tests.get("atol") or 0),
                              dataset=fmt, timeout_s=budget)
        if fmt in ("stdin", "functional"):
            budget = timeout_s or 5.0 + len(tests["inputs"])
            if fmt == "stdin":
                return run_stdin(program, tests["inputs"], tests["outputs"], budget)
            return run_functional(program, tests["fn_name"], tests["inputs"], tests["outputs"], budget)
    except KeyError as e:
        return _verdict("error", f"the {fmt!r} tests lack the field {e}")
    except RuntimeError as e:  # the canonical solution itself fails: the task, not the program, is broken
        return _verdict("error", str(e))
    return _verdict("error", f"unknown test format {fmt!r}")


def run_many(programs: Sequence[str], tests: Sequence[dict], timeout_s: float | None = None, *,
             workers: int | None = None, plus: bool = True, progress: bool = False) -> list[Verdict]:
    """`run_tests` over many (program, tests) pairs, `workers` sandboxes at a time (default: all cores)."""
    if len(programs) != len(tests):
        raise ValueError(f"run_many: {len(programs)} programs but {len(tests)} tests")
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda pt: run_tests(pt[0], pt[1], timeout_s, plus=plus), zip(programs, tests))
        return list(tqdm(jobs, total=len(programs), desc="sandbox", **quiet(progress)))
