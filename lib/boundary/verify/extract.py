"""Extraction: what a response answers, as a value you can print, test and store, before any comparison.

Math-Verify splits `parse` from `verify`; this module is our `parse` for what real models write, and
`boundary.verify.grade` compares what it returns. Everything here is pure text work (stdlib only, no
program is run), so it is cheap, deterministic and importable from anywhere (the loaders read
Minerva's gold with `boxed`, the miniature's reward reads answers with it too).

- `boxed`: THE `\\boxed{}` parser of the project (the last box that closes, braces matched), which
  lives with the benchmarks (boundary.tasks.boxed: MATH's gold is written in it) and is used here.
- `after_reasoning`: the part of a response after its reasoning block. A block may be whole
  (`<think>...</think>`) or opened by the prompt itself (R1-distilled and DeepCoder chat templates
  end the generation prompt with `<think>`), so only the closing `</think>` shows in the response.
- `math_answer`: the final answer (boxed, GSM8K `####`, an "answer is" phrase; under the `dapo`
  template the last "Answer:" line first, as the DAPO reward reads it).
- `program`: the program of a code answer, per template and benchmark format (see its docstring).

Written here rather than taken from evalplus (`sanitize.py`, tree-sitter) or LiveCodeBench
(`extract_code`, the last fenced block): evalplus pulls in LLM-provider clients and tree-sitter, and
neither handles reasoning blocks, pre-filled fences and stdin programs together; both were read and
their rules are followed where they apply (evalplus's stop sequences for completions, its choice of
the definitions the entry point needs; LiveCodeBench's preference for the last block).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from boundary.tasks.boxed import boxed

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"  # reasoning-block markers (R1, DeepCoder, EasyR1)

_HASH = re.compile(r"^\s*####\s*(.+?)\s*$", re.M)
_PHRASE = re.compile(r"(?:answer\s+is|answer\s*:)\s*:?\s*(.+?)(?:\n|$|(?<=[^\d\s])\.(?:\s|$))", re.I)
# The DAPO reward's answer line (verl `math_dapo.py`: the last match of "Answer\s*:\s*([^\n]+)", any case).
_DAPO_LINE = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")

# evalplus's stop sequences for direct completion (evalplus/provider/utility.py: EOS, then the extras
# per dataset): where a base model's completion leaves the function it was asked to finish.
EVALPLUS_EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
EVALPLUS_STOP = {"humaneval": EVALPLUS_EOS + ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "),
                 "mbpp": EVALPLUS_EOS + ('\n"""', "\nassert")}
# Code-fence lines: ``` or ~~~, optionally a language tag. Languages other than these are not programs.
_FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*$", re.M)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "pycon"}
# A line that only code starts with: a block that does not compile but has one is a broken program
# (`wrong`, with the syntax error); one without is prose or data (`no_answer`).
_CODE_LINE = re.compile(r"^\s*(?:(?:def|class|import|from|return|for|while|if|elif|else|try|except|with|print)\b"
                        r"|[A-Za-z_][\w.\[\], ]*\s*[-+*/%]?=(?!=))", re.M)
# What a stdin program does that a sample input/output block does not.
_IO = re.compile(r"\binput\s*\(|\bstdin\b|\bopen\s*\(\s*0|\bprint\s*\(|\bstdout\b|\bexit\s*\(")


def after_reasoning(response: str) -> tuple[str, bool]:
    """(the text after the reasoning block, whether there was a closed block). Without `</think>` the
    whole response is returned (no block, or one still open at the end: a truncated thought)."""
    end = response.rfind(THINK_CLOSE)
    if end < 0:
        return response, False
    return response[end + len(THINK_CLOSE):], True


@dataclass(frozen=True)
class Extracted:
    """What extraction found in a response."""

    value: str | None  # the answer or program; None: the response holds none (`no_answer`)
    how: str  # how it was found, e.g. "boxed", "fence:entry-point", "completion" (provenance)
    detail: str = ""  # why nothing was found, or what was repaired


def _math_in(text: str, template: str | None) -> tuple[str | None, str]:
    if template == "dapo":
        lines = _DAPO_LINE.findall(text)
        if lines:
            answer = lines[-1].strip()
            inner = boxed(answer)  # "Answer: $\\boxed{5}$"
            answer = inner if inner is not None else answer.strip("$ ").rstrip(".").strip()
            if answer:
                return answer, "answer-line"
    answer = boxed(text)
    if answer is not None:
        return answer, "boxed"
    hashes = _HASH.findall(text)
    if hashes:
        return hashes[-1].replace(",", ""), "hash"
    phrases = _PHRASE.findall(text[-5000:])  # the closing phrase lies near the end
    if phrases:
        answer = phrases[-1].strip().strip("$").strip()
        if answer:
            return answer, "phrase"
    return None, "none"


def math_answer(response: str, template: str | None = None) -> Extracted:
    """The final answer of a math response, in this order, the first that finds something wins:
    under `dapo` the last "Answer:" line (its box if it holds one); the last `\\boxed{}`; the last
    GSM8K `#### X` line; the last "answer is X" / "Answer: X" phrase. After a closed reasoning
    block the answer is looked for after it first, then (a thought that ends in the answer, with
    nothing after) in the whole response."""
    tail, closed = after_reasoning(response)
    answer, how = _math_in(tail, template)
    if answer is None and closed:
        answer, how = _math_in(response, template)
        how = f"{how}:in-reasoning" if answer is not None else how
    if answer is None:
        return Extracted(None, "none", "no boxed, #### or 'answer is' answer found")
    return Extracted(answer, how)


# ---------------------------------------------------------------- code

@dataclass(frozen=True)
class _Block:
    code: str  # the block's text, fences excluded
    python: bool  # tagged python (or untagged)
    closed: bool  # a closing fence was found


def code_blocks(text: str) -> list[_Block]:
    """Fenced blocks in order: each fence line opens a block and the next fence line closes it; a
    block still open at the end runs to the end of the text (a response cut at the token limit, or
    one that stops right after its code)."""
    fences = list(_FENCE.finditer(text))
    out, i = [], 0
    while i < len(fences):
        tag = fences[i].group(2).lower()
        start = fences[i].end() + 1
        if i + 1 < len(fences):
            out.append(_Block(text[start:fences[i + 1].start()], tag in _PYTHON_TAGS, True))
            i += 2
        else:
            out.append(_Block(text[start:], tag in _PYTHON_TAGS, False))
            i += 1
    return out


def _tree(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _defines(tree: ast.Module, entry: str, method: bool) -> bool:
    """The module defines function `entry` at top level (or, `method`: a class Solution with it)."""
    for node in tree.body:
        if method and isinstance(node, ast.ClassDef) and node.name == "Solution":
            if any(isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == entry for f in node.body):
                return True
        elif not method and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry:
            return True
    return False


def _calls(node: ast.AST, names: set[str]) -> bool:
    """An expression statement that calls print/input or one of the program's own functions (a
    usage example), or a `Solution()` / pprint of one."""
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    f = node.value.func
    while isinstance(f, ast.Attribute):
        f = f.value
    if isinstance(f, ast.Call):
        f = f.func
    return isinstance(f, ast.Name) and f.id in names | {"print", "input", "pprint"}


def sanitize(code: str, tree: ast.Module) -> str:
    """The program without what runs on loading to try itself out: `if __name__ == "__main__":`
    blocks, top-level asserts, and top-level calls of print/input or of its own functions (evalplus's
    sanitizer keeps only imports and definitions; we keep other statements, e.g. a
    `sys.setrecursionlimit(...)` the solution needs). Lines are cut, so the rest stays as written."""
    own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    drop = []
    for node in tree.body:
        main = (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")
        if main or isinstance(node, ast.Assert) or _calls(node, own):
            drop.append((node.lineno, node.end_lineno))
    if not drop:
        return code
    lines = code.split("\n")
    keep = [line for i, line in enumerate(lines, 1) if not any(a <= i <= b for a, b in drop)]
    return "\n".join(keep).strip("\n") + "\n"


def _cut(completion: str, stops: tuple[str, ...]) -> str:
    """The completion up to its first stop sequence."""
    ends = [i for i in (completion.find(s) for s in stops) if i >= 0]
    return completion[:min(ends)] if ends else completion


def program(response: str, *, fmt: str, entry: str | None, prompt: str = "", prefilled: bool = False,
            completion: bool = False) -> Extracted:
    """The program a code response answers with.

    fmt: the benchmark format ("humaneval", "mbpp", "stdin", "functional"); entry: the function to
    define (a method of `Solution` for "functional"; None for stdin); prompt: the task prompt the
    model saw (a base model's completion continues it); prefilled: the prompt ends inside an open
    ```` ```python ```` fence (evalplus's chat prompt), so the response begins inside the code;
    completion: a base model's direct completion (the `plain` template on HumanEval+/MBPP+).

    Rules, in order:
    - the part after a closed reasoning block is searched first; the reasoning only when nothing is
      found after it (a draft in the thought never beats the answer);
    - completion: the prompt plus the completion cut at evalplus's stop sequences, when that
      defines the entry point; else the fenced blocks below (a base model may answer in fences);
    - fenced blocks (python or untagged): for a function, the last block that defines the entry
      point (else an indented body without its signature: the prompt plus the block); for stdin,
      the last block that compiles and reads or writes; a response without fences counts whole
      only if it is such a program (prose is not);
    - when no block compiles, the last one that looks like code is returned (the caller grades it
      `wrong`, with the syntax error); prose or data in fences, or nothing, is `no_answer`.
    Function programs are `sanitize`d (usage examples and `__main__` blocks removed).
    """
    tail, closed = after_reasoning(response)
    found = _program_in(tail, fmt, entry, prompt, prefilled and not closed, completion and not closed)
    if found.value is None and closed:
        inner = _program_in(response, fmt, entry, prompt, prefilled, completion)
        if inner.value is not None:
            return Extracted(inner.value, inner.how + ":in-reasoning", inner.detail)
    return found


def _program_in(text: str, fmt: str, entry: str | None, prompt: str, prefilled: bool, completion: bool) -> Extracted:
    method = fmt == "functional"
    if completion and fmt in EVALPLUS_STOP:
        cut = _cut(text, EVALPLUS_STOP[fmt])
        whole = prompt + cut
        tree = _tree(whole)
        if cut.strip() and tree is not None and entry and _defines(tree, entry, method):
            return Extracted(sanitize(whole, tree), "completion")
        if not _FENCE.search(text) and _CODE_LINE.search(cut):  # a function body that does not compile
            return Extracted(whole, "completion:does-not-compile")
    blocks = [b for b in code_blocks(("```python\n" if prefilled else "") + text) if b.python and b.code.strip()]
    bare = not blocks
    if bare:  # no fences: the whole text, if it is a program (prose is not)
        if _tree(text) is None and not (prompt and entry and not method and _tree(prompt + text) is not None):
            return Extracted(None, "none", "no code block in the response")
        blocks = [_Block(text, True, True)]
    if entry is None:  # stdin: the last complete program that does input or output
        parsed = [(b, _tree(b.code)) for b in blocks]
        for b, tree in reversed(parsed):
            if tree is not None and _IO.search(b.code):
                return Extracted(b.code, "bare:program" if bare else "fence:program")
        if bare:
            return Extracted(None, "none", "no program that reads input or prints in the response")
        for b, tree in reversed(parsed):
            if tree is not None and tree.body and not all(isinstance(n, ast.Expr) for n in tree.body):
                return Extracted(b.code, "fence:last-compiling")
        return _broken_or_none(blocks)
    for b in reversed(blocks):
        tree = _tree(b.code)
        if tree is not None and _defines(tree, entry, method):
            return Extracted(sanitize(b.code, tree), "bare:entry-point" if bare else "fence:entry-point")
    for b in reversed(blocks):  # a body without its signature (indented): the prompt's signature completes it
        first = next((line for line in b.code.split("\n") if line.strip()), "")
        if prompt and not method and first[:1] in (" ", "\t"):
            joined = prompt + b.code
            tree = _tree(joined)
            if tree is not None and _defines(tree, entry, method):
                return Extracted(sanitize(joined, tree), "bare:prompt+body" if bare else "fence:prompt+body")
    if bare:
        return Extracted(None, "none", f"no code block and no definition of {entry!r} in the response")
    named = [b for b in blocks if re.search(rf"\bdef\s+{re.escape(entry)}\s*\(", b.code)]
    if named:  # it tried to define the entry point but the block does not compile
        return Extracted(named[-1].code, "fence:does-not-compile")
    compiling = [b for b in blocks if (t := _tree(b.code)) is not None and _CODE_LINE.search(b.code) and t.body]
    if compiling:  # a program, but not the function asked for: graded (wrong), not no_answer
        return Extracted(compiling[-1].code, "fence:no-entry-point")
    return _broken_or_none(blocks)


def _broken_or_none(blocks: list[_Block]) -> Extracted:
    """No block compiles: the last one that looks like code (graded `wrong` with its syntax error),
    or nothing (prose or data in fences: `no_answer`)."""
    code = [b for b in blocks if _CODE_LINE.search(b.code)]
    if code:
        return Extracted(code[-1].code, "fence:does-not-compile")
    return Extracted(None, "none", "no code in the response's blocks (prose or data only)")
