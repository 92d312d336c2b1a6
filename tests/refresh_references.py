"""Regenerate the notebooks' nbval reference outputs: a clean headless run of each notebook in
place with its default (smoke) parameters, then papermill's timing metadata stripped so the
committed notebook changes only where its outputs do. Run through `make references`.
"""
import sys

import nbformat
import papermill

from boundary import ROOT

for name in sys.argv[1:]:
    path = (ROOT / name).resolve() if not name.startswith("/") else name
    print(f"refreshing {path}")
    papermill.execute_notebook(str(path), str(path), cwd=str(ROOT / "notebooks"), progress_bar=False)
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
