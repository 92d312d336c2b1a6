"""The stages of lib/boundary flow one way: no module imports a stage that comes after its own.

The order is the data flow of DESIGN.md (params -> tasks -> sampling -> store -> verify -> counts ->
passk / perplexity -> plots -> report), with the miniature (which trains through the sampler and
rewards through the verifier) after verify, and `runs` (sampling and grading an experiment) after
it. Every `import`, at module level or inside a function, counts: a late import is still an edge.
"""
from __future__ import annotations

import ast

import pytest

from boundary import ROOT

PACKAGE = ROOT / "lib" / "boundary"
# Foundations anything may import: the package root (ROOT, quiet), atomic files, the colophon.
FOUNDATION = {"boundary", "files", "colophon"}
# Stages in data-flow order; a module may import its own stage, foundations and earlier stages.
ORDER = ["tasks", "config", "store", "sampling", "verify", "miniature", "runs", "counts", "passk",
         "perplexity", "plots", "rlstudy", "report"]
# Modules that belong to a stage of another name: the cluster samples and grades as `runs` does.
SAME_STAGE = {"cluster": "runs"}
# Edges that go against the order on purpose, each with its reason.
ALLOWED = {
    # REPLICA=1 is an overlay of the params (config.replica): it maps each model's hub id to its
    # replica's folder, a table the replicas' builder owns.
    ("config", "miniature"),
}


def stage(module: str) -> str:
    """The stage of a dotted module name under `boundary` (its first component)."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "boundary"
    return SAME_STAGE.get(name, name)


def edges(package=PACKAGE) -> set[tuple[str, str, str]]:
    """(stage, imported stage, file) for every import of a boundary module anywhere in the package."""
    found = set()
    for path in package.rglob("*.py"):
        rel = path.relative_to(package.parent).with_suffix("")
        here = stage(".".join(p for p in rel.parts if p != "__init__"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "boundary":
                targets = [node.module + "." + a.name for a in node.names] if node.module == "boundary" else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "boundary"]
            else:
                continue
            for t in targets:
                there = stage(t)
                first = t.split(".")[1] if "." in t else ""
                if not ((package / f"{first}.py").is_file() or (package / first).is_dir()):
                    there = "boundary"  # a name the package root defines (ROOT, quiet, stable_seed)
                if there != here:
                    found.add((here, there, str(path.relative_to(package.parent.parent))))
    return found


def test_every_stage_is_known():
    stages = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
              if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert stages - {"__pycache__"} <= set(ORDER) | FOUNDATION | set(SAME_STAGE), "a new module needs its place in ORDER"


def test_no_edge_from_an_earlier_stage_to_a_later_one():
    rank = {s: i for i, s in enumerate(ORDER)}
    backwards = sorted((a, b, f) for a, b, f in edges()
                       if b not in FOUNDATION and a not in FOUNDATION and (a, b) not in ALLOWED and rank[b] > rank[a])
    assert not backwards, "imports against the data flow:\n" + "\n".join(f"{f}: {a} -> {b}" for a, b, f in backwards)
    assert not [e for e in edges() if e[0] in FOUNDATION and e[1] not in FOUNDATION], "foundations import no stage"


@pytest.mark.parametrize("source,target", [
    ("passk", "counts"), ("passk", "runs"), ("counts", "runs"), ("counts", "verify"), ("counts", "sampling"),
    ("tasks", "miniature"), ("miniature", "plots"),
])
def test_the_edges_the_design_forbids_are_absent(source, target):
    hits = [f for a, b, f in edges() if (a, b) == (source, target)]
    assert not hits, f"{source} imports {target} in {hits}"


def test_the_check_sees_late_and_plain_imports(tmp_path):
    # The old counts.load imported runs inside its body; `import boundary.x` counts as well.
    package = tmp_path / "lib" / "boundary"
    (package / "passk").mkdir(parents=True)
    (package / "runs.py").write_text("")
    (package / "counts.py").write_text("def load():\n    from boundary import runs, ROOT\n    return runs\n")
    (package / "passk" / "__init__.py").write_text("import boundary.counts\nfrom boundary.passk import estimate\n")
    assert {(a, b) for a, b, _ in edges(package)} == {("counts", "runs"), ("counts", "boundary"), ("passk", "counts")}
