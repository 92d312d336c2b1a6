"""LiveCodeBench as its runner grades: stdin programs compared line by line (numbers as decimals),
functional `Solution` methods called with JSON arguments, run through the sandbox."""
import json
import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from boundary.verify import Verdict
from boundary.verify._sandbox import Unencodable
from boundary.verify.sandbox import FILE_BYTES, TIMEOUT_S, Sandbox, _judge, _Proxy, _verdict


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
