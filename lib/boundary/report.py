"""The reader's report: one static HTML page per executed notebook, and an index page.

`make report` (and the end of `make all`) writes `results/<experiment>/report/index.html` from the
notebooks papermill executed into `results/<experiment>/notebooks/`. Every page stands alone and
offline: code cells hidden (the notebooks in `notebooks/` hold it), figures embedded as data URIs,
no script and nothing fetched from the network (nbconvert's templates would load MathJax and
require.js from a CDN; a reader without network would see console errors and nothing more, so the
few formulas stay as typed). The index says what the study asks, then for each notebook its
question, its finding (the output of the cells under its `## Finding` heading) and its headline
figure (the first figure it shows), and ends with the colophon: commit, package versions, params.

nbconvert renders the pages; the index is a short page of our own (nbconvert has no index of
several notebooks).
"""
from __future__ import annotations

import argparse
import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

from boundary import colophon, config, files

QUESTION = ("Does reinforcement learning with verifiable rewards (RLVR) give a language model reasoning it did "
            "not have, or does it only make it sample what it already could? Following Yue et al. (2025), the "
            "study samples many answers per problem from a base model and its RL-trained version, verifies "
            "them, and compares pass@k out to large k; then it looks at the perplexity of the RL model's answers "
            "under the base model, at visual reasoning, and at distillation.")
SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)  # every script block of a page
STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
section{border-top:1px solid #ddd;margin-top:2em;padding-top:1em}img{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}.finding{background:#eef4fb;padding:.6em .9em}"""


def _text(cell) -> str:
    """The text a code cell printed or returned (streams and text/plain results)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data") and "image/png" not in out.get("data", {}):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts).strip()


def summary(nb) -> dict:
    """What the index shows of one executed notebook: title, question, finding, headline figure."""
    cells = nb.cells
    head = cells[0].source if cells and cells[0].cell_type == "markdown" else ""
    title = next((line.lstrip("# ").strip() for line in head.splitlines() if line.startswith("#")), "notebook")
    question = next((p.strip() for p in head.split("\n\n") if p.strip().startswith("**Question.**")), "")
    finding, under = [], False
    for cell in cells:
        if cell.cell_type == "markdown":
            under = cell.source.lstrip().startswith("## Finding")
        elif under and "NBVAL_IGNORE_OUTPUT" not in cell.source:
            finding.append(_text(cell))
    figure = next((out["data"]["image/png"] for cell in cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if "image/png" in out.get("data", {})), None)
    return {"title": title, "question": question.replace("**Question.**", "").strip(),
            "finding": "\n".join(f for f in finding if f), "figure": figure}


def page(nb) -> str:
    """One notebook as a static page: outputs and markdown, code hidden, no scripts, and no stderr: a
    headless run's progress bars (hundreds of lines a cell) and library warnings are for the terminal,
    not the reader (the executed notebook keeps them)."""
    import copy

    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream"
                                                                      and o.get("name") == "stderr")]

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, mathjax_url="", require_js_url="")
    body, _ = exporter.from_notebook_node(nb)
    return SCRIPT.sub("", body)


def _png(data: str | bytes | None, alt: str) -> str:
    """An <img> of base64 PNG data (as notebooks store it), or nothing."""
    if not data:
        return ""
    data = data if isinstance(data, str) else base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data.strip()}">'


def index(cfg: config.Experiment, summaries: Sequence[tuple[str, dict]]) -> str:
    """The index page: the study's question, one section per notebook, the colophon."""
    sections = []
    for name, s in summaries:
        finding = f'<pre class="finding">{html.escape(s["finding"])}</pre>' if s["finding"] else ""
        sections.append(f'<section><h2><a href="{html.escape(name)}.html">{html.escape(s["title"])}</a></h2>'
                        f'<p>{html.escape(s["question"])}</p>{finding}{_png(s["figure"], s["title"])}</section>')
    versions = ", ".join(f"{k} {v}" for k, v in colophon.versions().items())
    params = config.path_of(cfg.name).read_text()
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>RLVR boundary: {html.escape(cfg.name)}'
            f'</title><style>{STYLE}</style></head><body><h1>The RLVR boundary compendium: {html.escape(cfg.name)}</h1>'
            f'<p><em>{html.escape(cfg.description)}</em></p><p>{html.escape(QUESTION)}</p>{"".join(sections)}'
            f'<section><h2>Colophon</h2><p>commit {html.escape(colophon.commit())}</p><p>{html.escape(versions)}</p>'
            f'<pre>{html.escape(params)}</pre></section></body></html>')


def build(cfg: config.Experiment, notebooks: Sequence[Path], out: Path | None = None) -> Path:
    """Write one page per executed notebook and the index into `out` (default
    `results/<experiment>/report/`); return the index's path. Every page is written whole or not at all."""
    out = Path(out) if out is not None else cfg.results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for path in sorted(Path(p) for p in notebooks):
        nb = nbformat.read(path, as_version=4)
        if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            raise ValueError(f"{path}: no outputs; the report is made of executed notebooks (make all runs them)")
        files.write_text(out / f"{path.stem}.html", page(nb))
        summaries.append((path.stem, summary(nb)))
    target = out / "index.html"
    files.write_text(target, index(cfg, summaries))
    return target


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="HTML report of an experiment's executed notebooks")
    ap.add_argument("experiment", help="params/<experiment>.yaml")
    a = ap.parse_args(argv)
    cfg = config.load(a.experiment)
    notebooks = sorted((cfg.results_dir / "notebooks").glob("[0-9]*.ipynb"))
    if not notebooks:
        raise SystemExit(f"{cfg.results_dir / 'notebooks'}: no executed notebook; run `make all EXPERIMENT={a.experiment}`")
    print(f">> report: {build(cfg, notebooks)}")


if __name__ == "__main__":
    main()
