"""boundary.verify.code: the sandbox against hostile programs, forgery attempts, the evalplus and
LiveCodeBench formats, and the real HumanEval+/MBPP+/LiveCodeBench tests."""
import ast
import json
import os
import tempfile

import pytest

from boundary import tasks
from boundary.tasks import parse
from boundary.verify import code

ADD_TEST = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate('a', 'b') == 'ab'\n"
ADD = "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize("program, status", [
    (ADD, "correct"),                                                         # the honest solution
    ("def add(a, b):\n    return a - b\n", "wrong"),                          # a wrong one
    ("def plus(a, b):\n    return a + b\n", "wrong"),                         # no entry point
    ("def add(a, b) return a + b\n", "wrong"),                                # syntax error
    ("def add(a, b):\n    raise ValueError('no')\n", "wrong"),                # raises
])
def test_run_humaneval_style(program, status):
    assert code.run(program, ADD_TEST, "add", timeout_s=5).status == status


# Hostile programs: each must end as wrong or timeout, quickly, with the harness intact.
HOSTILE = {
    "infinite loop": ("def add(a, b):\n    while True:\n        pass\n", "timeout"),
    "sleep forever": ("import time\ndef add(a, b):\n    time.sleep(1000)\n", "timeout"),
    "fork bomb": ("import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
                  "        except OSError:\n            pass\n", "timeout"),
    "setsid escape": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
                      "def add(a, b):\n    return a - b\n", "wrong"),
    "memory bomb": ("def add(a, b):\n    x = [0] * (10 ** 10)\n", "wrong"),
    "huge output": ("def add(a, b):\n    while True:\n        print('x' * 100000)\n", "wrong"),
    "huge result": ("def add(a, b):\n    return 'x' * (300 << 20)\n", "wrong"),
    "early exit 0": ("import sys\nsys.exit(0)\n", "wrong"),
    "os._exit in call": ("import os\ndef add(a, b):\n    os._exit(0)\n", "wrong"),
    "forged success output": ("print('All tests passed')\ndef add(a, b):\n    print('OK 3')\n    return None\n", "wrong"),
    "always-equal object": ("class Yes:\n    def __eq__(self, other):\n        return True\n"
                            "def add(a, b):\n    return Yes()\n", "wrong"),
    "str subclass __eq__": ("class S(str):\n    def __eq__(self, other):\n        return True\n"
                            "def add(a, b):\n    return S('nope')\n", "wrong"),
    "patched builtins": ("import builtins\nbuiltins.AssertionError = type('X', (BaseException,), {})\n"
                         "builtins.isinstance = lambda *a: True\nbuiltins.print = lambda *a: None\n"
                         "def add(a, b):\n    return 0\n", "wrong"),
    "patched assert helper": ("import unittest\nunittest.TestCase.assertEqual = lambda *a: None\n"
                              "def add(a, b):\n    return 0\n", "wrong"),
    "write to the result pipe": ("import os, json\nfor fd in range(3, 20):\n    try:\n"
                                 "        os.write(fd, b'{\"ready\": true}\\n{\"results\": []}\\n')\n"
                                 "    except OSError:\n        pass\ndef add(a, b):\n    return 0\n", "wrong"),
    "network": ("import socket\ndef add(a, b):\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
                "    return a + b\n", "wrong"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_programs(name):
    program, status = HOSTILE[name]
    if name == "network" and "no-network" not in code.isolation():
        pytest.skip("this OS gives the sandbox no network namespace")
    v = code.run(program, ADD_TEST, "add", timeout_s=3)
    assert v.status == status, v
    assert code.run(ADD, ADD_TEST, "add", timeout_s=5).correct  # the harness still works afterwards


def test_no_sandbox_process_survives():
    program = "import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(1000)\n"
    code.run(program + ADD, ADD_TEST, "add", timeout_s=2)
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"BOUNDARY_SANDBOX=" in f.read():
                    leftovers.append(pid)
        except OSError:
            pass
    assert leftovers == []


# Programs that try to outlive their verdict: each leaves processes marked by MARK in their command line.
MARK = "4242.4242"  # an argument of the /bin/sleep an escaping program starts (unique to these tests)
ESCAPES = {
    "new session": f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{MARK}'])\n",
    "double fork, empty environment": (  # no token in its environment: the old scan could not find it
        f"import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execve('/bin/sleep', ['sleep', '{MARK}'], {{}})\n    os._exit(0)\n"),
    "signals ignored": (
        f"import os, signal\nif os.fork() == 0:\n    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        f"        signal.signal(s, signal.SIG_IGN)\n    os.setpgid(0, 0)\n"
        f"    os.execv('/bin/sleep', ['sleep', '{MARK}'])\n"),
    "many children": f"import os\nfor _ in range(10):\n    if os.fork() == 0:\n        os.setsid()\n        os.execv('/bin/sleep', ['sleep', '{MARK}'])\n",
}


def _marked() -> list[int]:
    """Live (not zombie) processes whose command line carries MARK or this checkout's sandbox script."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (MARK.encode() in cmd or str(code._SCRIPT).encode() in cmd):
            found.append(int(pid))
    return found


def _need_namespaces():
    if not {"pid-namespace", "private-tmp"} <= set(code.isolation()):
        pytest.skip("not root (or a kernel without PID/mount namespaces): the sandbox cannot promise this; "
                    "its verdicts name the missing protections (see test_provenance_names_missing_protections)")


@pytest.mark.parametrize("mode", ["call", "stdin"])
@pytest.mark.parametrize("name", list(ESCAPES))
def test_no_process_outlives_its_verdict(name, mode):
    _need_namespaces()
    assert _marked() == []
    if mode == "call":
        v = code.run(ESCAPES[name] + ADD, ADD_TEST, "add", timeout_s=10)
        assert v.correct, v
    else:
        stdin = {"format": "stdin", "inputs": ["1\n", "2\n"], "outputs": ["1", "2"]}
        v = code.run_tests(ESCAPES[name] + "print(input())\n", stdin, timeout_s=10)
        assert v.correct, v
    assert "unavailable" not in v.provenance and "pid-namespace" in v.provenance
    assert _marked() == []  # checked right after the verdict: nothing is left to die later


PROBE = """import os
def probe():
    seen = sorted(os.listdir("/tmp")) + sorted(os.listdir("/var/tmp")) + sorted(os.listdir("/dev/shm"))
    wrote = []
    for d in ("/tmp", "/var/tmp", "/dev/shm", os.getcwd()):
        try:
            with open(os.path.join(d, "MARKFILE"), "w") as f:
                f.write("x")
            wrote.append(d)
        except OSError:
            pass
    return [seen, wrote, os.path.basename(os.getcwd())]
""".replace("MARKFILE", "boundary-test-leftover-" + MARK)


def test_no_file_outlives_its_verdict():
    """The program sees private, empty temp dirs (only its own sandbox directory under /tmp), may
    write there, and nothing it wrote is on the machine afterwards."""
    _need_namespaces()
    outs = []
    v = code._judge(PROBE, 10, lambda box: outs.extend(code._Proxy(box, "probe").many([()])) or code._verdict("correct"))
    assert v.correct, v
    seen, wrote, own = outs[0]
    assert seen == [own]  # /tmp holds only the sandbox's directory; /var/tmp and /dev/shm are empty
    assert len(wrote) == 4  # it could write in its private temp dirs and its own directory ...
    leftovers = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(f"{d}/boundary-test-leftover-{MARK}")]
    assert leftovers == []  # ... and none of it is on the machine


@pytest.mark.parametrize("isolation, expected", [
    (["rlimits", "nobody", "no-network", "pid-namespace", "private-tmp"],
     "sandbox=rlimits,nobody,no-network,pid-namespace,private-tmp"),            # root on Linux: everything
    (["rlimits", "no-network"], "sandbox=rlimits,no-network; unavailable=nobody,pid-namespace,private-tmp"),  # not root
])
def test_provenance_names_missing_protections(isolation, expected):
    assert code.provenance(isolation) == expected


def test_writes_outside_the_sandbox_fail(tmp_path):
    if "nobody" not in code.isolation():
        pytest.skip("not root: the sandbox cannot drop to another user, so files of this user stay writable")
    target = tmp_path / "victim.txt"
    target.write_text("intact")
    program = (f"import os\nfor p in [{str(target)!r}, {str(tmp_path / 'new.txt')!r}]:\n    try:\n"
               f"        open(p, 'w').write('pwned')\n    except OSError:\n        pass\n" + ADD)
    assert code.run(program, ADD_TEST, "add", timeout_s=5).correct  # it ran, its writes failed
    assert target.read_text() == "intact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]


def test_sandbox_directory_is_removed():
    program = "import os\nopen('left.txt', 'w').write(os.getcwd())\n" + ADD
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("boundary-sandbox-")}
    assert code.run(program, ADD_TEST, "add", timeout_s=5).correct
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("boundary-sandbox-")}
    assert after <= before


@pytest.mark.parametrize("out, exp, inp, atol, entry, dataset, ok", [
    (3, 3, (1,), 0, "f", "humaneval", True),                          # exact
    (0.1 + 0.2, 0.3, (1,), 0, "f", "humaneval", True),                # floats: evalplus's default atol 1e-6
    ([1.0, 2.0000001], [1.0, 2.0], (1,), 1e-4, "f", "humaneval", True),  # atol on a list of floats
    ([1, 2], (1, 2), (1,), 0, "f", "humaneval", False),               # list is not tuple
    (code.Unencodable("x.Y"), 3, (1,), 0, "f", "humaneval", False),   # an object sent as unencodable
    ((5, 4), (4, 5), (1,), 0, "similar_elements", "mbpp", True),      # MBPP set-equality oracle
    (code.Unencodable("re.Match"), True, ("ab",), 0, "check_str", "mbpp", True),  # MBPP not-None oracle
    (1.0, None, ([-6, 11, -6, 1],), 1e-6, "find_zero", "humaneval", True),  # HumanEval/32: a root
])
def test_matches_follows_evalplus(out, exp, inp, atol, entry, dataset, ok):
    assert code.matches(out, exp, inp, atol=atol, entry_point=entry, dataset=dataset) is ok


def test_results_travel_as_data():
    program = ("from collections import Counter, OrderedDict, namedtuple\nP = namedtuple('P', 'x y')\n"
               "def f(k):\n    return [Counter('aab'), OrderedDict(a=1), P(1, 2), {1, 2}, 2 ** 100, float('nan'),"
               " b'\\x00', 1j, None, True][k]\n")
    inputs = [(k,) for k in range(10)]
    box_outs = []
    v = code._judge(program, 10, lambda box: box_outs.extend(code._Proxy(box, "f").many(inputs)) or code._verdict("correct"))
    assert v.correct
    assert box_outs[:5] == [{"a": 2, "b": 1}, {"a": 1}, (1, 2), {1, 2}, 2 ** 100]
    assert [type(x) for x in box_outs[:3]] == [dict, dict, tuple]  # subclasses arrive as their base type
    assert box_outs[5] != box_outs[5] and box_outs[6:] == [b"\x00", 1j, None, True]


# ---------------------------------------------------------------- LiveCodeBench formats

SECOND_LARGEST = {  # LiveCodeBench problem 0 (AtCoder, stdin): the index of the second largest element
    "input()": "n = int(input())\na = list(map(int, input().split()))\nprint(sorted(range(n), key=lambda i: a[i])[-2] + 1)\n",
    "open(0)": "n, *a = map(int, open(0).read().split())\nprint(sorted(range(n), key=lambda i: a[i])[-2] + 1)\n",
    "stdin.buffer + exit": "import sys\nn, *a = map(int, sys.stdin.buffer.read().split())\n"
                           "sys.stdout.write(str(sorted(range(n), key=lambda i: a[i])[-2] + 1) + '\\n')\nexit(0)\n",
}
SHORTEST = ("class Solution:\n    def shortestDistanceAfterQueries(self, n: int, queries: List[List[int]]) -> List[int]:\n"
            "        adj = [[i + 1] for i in range(n - 1)] + [[]]\n        res = []\n        for u, v in queries:\n"
            "            adj[u].append(v)\n            dist = [-1] * n\n            dist[0] = 0\n            q = deque([0])\n"
            "            while q:\n                x = q.popleft()\n                for y in adj[x]:\n"
            "                    if dist[y] < 0:\n                        dist[y] = dist[x] + 1\n                        q.append(y)\n"
            "            res.append(dist[n - 1])\n        return res\n")


def _lcb(shared, name):
    rows = json.load(open(shared("data", "benchmarks", "livecodebench", name)))
    return rows


def _lcb_tests(row):
    kind = row["tests"][0]["testtype"]
    fn = None
    if kind == "functional":
        fn = next(n.name for n in ast.walk(ast.parse(row["starter_code"] + "        pass\n")) if isinstance(n, ast.FunctionDef))
    return {"format": kind, "inputs": [t["input"] for t in row["tests"]], "outputs": [t["output"] for t in row["tests"]],
            "fn_name": fn, "starter_code": row["starter_code"]}


@pytest.mark.shared
def test_livecodebench_both_formats(shared):
    rows = _lcb(shared, "lcb_v5_2408_2502_public_only.json")
    stdin, functional = _lcb_tests(rows[0]), _lcb_tests(next(r for r in rows if "shortestDistanceAfterQueries" in r["starter_code"]))
    assert stdin["format"] == "stdin" and functional["format"] == "functional"
    for name, program in SECOND_LARGEST.items():
        assert code.run_tests(program, stdin).correct, name
    assert code.run_tests(SECOND_LARGEST["input()"].replace("[-2]", "[-1]"), stdin).status == "wrong"
    assert code.run_tests(SECOND_LARGEST["input()"].replace("print(", "print(0, "), stdin).status == "wrong"
    assert code.run_tests(SHORTEST, functional).correct
    assert code.run_tests(SHORTEST.replace("dist[n - 1]", "dist[n - 1] + 1"), functional).status == "wrong"
    assert code.run_tests("while True:\n    pass\n", stdin, timeout_s=2).status == "timeout"


@pytest.mark.shared
def test_livecodebench_private_file_repeats_one_bogus_suite(shared):
    """The "+12private" copy appends the same 12 tests ('"7"' -> '1', ...) to every problem, stdin and
    functional alike: not that problem's tests, so only the public-only file is gradable."""
    public, private = _lcb(shared, "lcb_v5_2408_2502_public_only.json"), _lcb(shared, "lcb_v5_2408_2502_public+12private.json")
    assert [r["problem"] for r in public] == [r["problem"] for r in private]
    extra = [r["tests"][len(p["tests"]):] for p, r in zip(public, private)]
    assert all(len(e) == 12 and e == extra[0] for e in extra)
    assert extra[0][0]["input"] == '"7"' and code.run_tests(SECOND_LARGEST["input()"], _lcb_tests(private[0])).status == "wrong"


def test_same_stdout_follows_livecodebench():
    assert code.same_stdout("3\r\n", "3\n")          # line endings and trailing space
    assert code.same_stdout("1.50 2\n", "1.5 2")     # numbers compared as decimals
    assert not code.same_stdout("3\n4\n", "3\n")     # extra line
    assert not code.same_stdout("abc", "abd")


# ---------------------------------------------------------------- HumanEval+ and MBPP+

def _evalplus(shared, benchmark):
    """(task id, canonical program, tests) of every task, through the loader (MBPP+ inputs are
    deserialized there, so these tests grade what production grades)."""
    name = {"humaneval": "humaneval_plus", "mbpp": "mbpp_plus"}[benchmark]
    problems = tasks.load(name, source=shared("data", "benchmarks", name))
    return [(p.id.split("/", 1)[1], code._canonical(p.tests), p.tests) for p in problems]


@pytest.mark.shared
def test_loader_deserializes_mbpp_inputs(shared):
    """Mbpp/2 takes tuples: the loader gives tuples, not the JSON lists of the release file."""
    p = next(p for p in tasks.load("mbpp_plus", source=shared("data", "benchmarks", "mbpp_plus")) if p.id.endswith("/2"))
    assert all(isinstance(a, tuple) for inp in p.tests["base_inputs"] for a in inp)
    assert parse.mbpp_inputs("Mbpp/2", [[[1, 2], [2, 3]]]) == [[(1, 2), (2, 3)]]


def _wrong_return(program, entry):
    """A mutant whose every return value is changed (ints +1, bools negated, a new item appended)."""
    return program + (
        f"\n_orig = {entry}\ndef {entry}(*a):\n    r = _orig(*a)\n    if isinstance(r, bool):\n        return not r\n"
        "    if isinstance(r, (int, float)):\n        return r + 1\n    if isinstance(r, str):\n        return r + '~'\n"
        "    if isinstance(r, (list, tuple)):\n        return r + type(r)(['~mutant'])\n    return [r]\n")


# Tasks whose oracle a wrong-return mutant cannot fail: evalplus accepts any output (Mbpp/164), only
# "not None" (check_str & co.), or an empty/ambiguous output the mutation leaves equal.
MUTANT_SURVIVORS = {"Mbpp/164", "Mbpp/737", "Mbpp/787", "Mbpp/794"}


def _sample(items, every):
    return items if every == 1 else items[::every]


@pytest.mark.shared
@pytest.mark.parametrize("benchmark, every, plus", [
    ("humaneval", 1, False),  # every task, base inputs (fast)
    ("mbpp", 1, False),       # every task, base inputs
    ("humaneval", 8, True),   # every 8th task, base + plus inputs
    ("mbpp", 16, True),       # every 16th task, base + plus inputs
    pytest.param("humaneval", 1, True, marks=pytest.mark.slow),  # full sweep: about 100 s on 2 cores
    pytest.param("mbpp", 1, True, marks=pytest.mark.slow),  # full sweep: about 3 min on 2 cores
])
def test_evalplus_canonical_pass_and_mutants_fail(shared, benchmark, every, plus):
    tasks = _sample(_evalplus(shared, benchmark), every)
    programs = [p for _, p, _ in tasks] + [_wrong_return(p, t["entry_point"]) for _, p, t in tasks]
    verdicts = code.run_many(programs, [t for _, _, t in tasks] * 2, plus=plus, workers=2)
    canon, mutant = verdicts[:len(tasks)], verdicts[len(tasks):]
    failing = {tid: (v.status, v.detail) for (tid, _, _), v in zip(tasks, canon) if not v.correct}
    assert failing == {}
    survivors = {tid for (tid, _, _), v in zip(tasks, mutant) if v.correct}
    assert survivors <= MUTANT_SURVIVORS, survivors


@pytest.mark.shared
def test_humaneval_check_tests(shared):
    """The original check(candidate) tests, run in the parent against the sandboxed program."""
    tasks = _evalplus(shared, "humaneval")
    for tid, program, t in tasks[::4]:
        assert code.run(program, t["test"], t["entry_point"], timeout_s=20).correct, tid
        off_by_one = program + f"\n_o = {t['entry_point']}\ndef {t['entry_point']}(*a):\n    return [_o(*a)]\n"
        assert code.run(off_by_one, t["test"], t["entry_point"], timeout_s=20).status == "wrong", tid
