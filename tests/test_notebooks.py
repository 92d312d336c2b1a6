"""Notebooks as users run them: through papermill with injected parameters (the `make all` path).

nbval (in `make test`) re-runs each notebook with its default parameters and compares outputs
with the committed references; these tests check what nbval cannot: that injected parameters
take effect, that every notebook has the house shape, and that a bad parameter fails loudly.
"""
import json

import nbformat
import pandas as pd
import papermill
import pytest

from boundary import ROOT, config

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_house_shape(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown", "cell 1 states the question"
    params = nb.cells[1]
    assert "parameters" in params.metadata.get("tags", []), "cell 2 is tagged 'parameters'"
    for line in params.source.splitlines():
        assert ": " in line.split("=")[0] and "  # " in line, f"parameter without type hint or comment: {line}"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(line.lstrip().startswith(("def ", "class ")) for src in code for line in src.splitlines())
    assert code[-1].startswith("# NBVAL_IGNORE_OUTPUT") and "colophon" in code[-1]
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "reference outputs committed"


def test_papermill_injects_parameters(tmp_path, shared, monkeypatch):
    """Notebook 03 on the published replay (the make all path), with injected overrides; its
    figures and tables go to a temporary outputs root, never over the committed figures."""
    shared("data", "published")
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    out = tmp_path / "03.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "03_pass_at_k.ipynb"), str(out),
                               parameters={"experiment": "replay-math500", "bootstrap": 20, "ci": 0.5,
                                           "fit_bootstrap": 5, "plan_worlds": 20},
                               cwd=str(tmp_path), progress_bar=False)  # another folder than nbval's
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "bootstrap = 20" in "".join(injected[0]["source"])
    table = pd.read_csv(tmp_path / "results" / "replay-math500" / "tables" / "pass_at_k.csv")
    assert (tmp_path / "figures" / "replay-math500" / "pass_at_k.png").is_file()
    assert list(table.columns) == ["model", "k", "pass_at_k", "ci_low", "ci_high"]
    assert table["k"].max() == 128 and set(table["model"]) == {"base", "rl"}
    # A 50% interval is narrower than the default 95% one would be: the override took effect.
    assert ((table["ci_high"] - table["ci_low"]) < 0.1).all()


def test_a_mistyped_experiment_fails_loudly(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="no such experiment 'smkoe'"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "03_pass_at_k.ipynb"), str(tmp_path / "o.ipynb"),
                                   parameters={"experiment": "smkoe"}, progress_bar=False)
