"""pytest configuration shared by the unit tests (tests/) and the nbval notebook tests (notebooks/).

Tests that read `../shared` (benchmark copies, published results) skip with the reason in a
user's clone, where it does not exist; under CI=true its absence fails the run instead, so CI can
never go green by skipping them.
"""
import os
from pathlib import Path

import pytest

import boundary.config
from boundary import ROOT

SHARED = ROOT.parent / "shared"  # benchmark and published-result copies beside the project
IN_CI = os.environ.get("CI") == "true"


def _missing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not p.exists()]


def need(path: Path, what: str) -> Path:
    """Return `path`, or skip (fail under CI=true) when it is absent."""
    if path.exists():
        return path
    msg = f"{what} needs {path}, which is absent (../shared lies beside the project only in CI and dev checkouts)"
    if IN_CI:
        pytest.fail(msg + "; CI=true requires it")
    pytest.skip(msg)


@pytest.fixture
def shared():
    """A function mapping a path under ../shared to itself, skipping (failing in CI) when absent."""
    return lambda *parts: need(SHARED.joinpath(*parts), "this test")


def pytest_collection_modifyitems(config, items):  # noqa: A002 (pytest passes it by name)
    """Notebook tests run the smoke experiment: skip them if its inputs (models, held-out sets) are absent (fail in CI)."""
    notebooks = [i for i in items if str(i.fspath).endswith(".ipynb")]
    if not notebooks:
        return
    missing = _missing(boundary.config.load("smoke").inputs())
    study = boundary.config.load("smoke-rl")  # notebook 07's default experiment: the smoke RL study's checkpoints
    missing_rl = _missing([study.resolve(m.path) for m in study.models])
    for absent, items, experiment in ((missing, notebooks, "smoke"),
                                      (missing_rl, [i for i in notebooks if "07_rl_study" in str(i.fspath)], "smoke-rl")):
        if not absent or not items:
            continue
        msg = (f"the {experiment} experiment's inputs are absent: {', '.join(map(str, absent[:3]))} "
               f"(`make test` builds them: make models EXPERIMENT={experiment})")
        if IN_CI:
            pytest.exit(msg, returncode=1)
        for item in items:
            item.add_marker(pytest.mark.skip(reason=msg))
