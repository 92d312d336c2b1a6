"""The reader's report (boundary.report), built from the notebooks' committed reference outputs
(executed headless on the smoke world), and opened in a real browser (headless Chromium).

The browser test needs Debian's `chromium` and `chromium-driver` (.ci/run installs them): without
them it skips with the reason in a user's clone and fails under CI=true.
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest

import boundary.config
from boundary import ROOT, report

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
IN_CI = __import__("os").environ.get("CI") == "true"


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", []))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return report.build(boundary.config.load("smoke"), NOTEBOOKS, out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_shown_in_its_cell(path):
    # each plots.save call shows the PNG it wrote (the reference outputs are a headless papermill run)
    nb = nbformat.read(path, as_version=4)
    saves = sum(c.source.count("plots.save(") for c in nb.cells if c.cell_type == "code")
    assert saves > 0 and images(nb) >= saves, f"{path.name}: {saves} figures saved, {images(nb)} shown"


def test_index_has_every_notebook_with_question_finding_and_figure(built):
    page = built.read_text()
    for path in NOTEBOOKS:
        s = report.summary(nbformat.read(path, as_version=4))
        assert f'href="{path.stem}.html"' in page and (built.parent / f"{path.stem}.html").is_file()
        assert s["question"] and s["figure"], path.name
    findings = re.findall(r'<pre class="finding">(.*?)</pre>', page, re.DOTALL)
    with_finding = [p for p in NOTEBOOKS
                    if any(c.source.startswith("## Finding") for c in nbformat.read(p, as_version=4).cells)]
    assert len(with_finding) >= 4 and len(findings) == len(with_finding)  # 03-06 state a finding
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == len(NOTEBOOKS)
    assert "commit " in page and "max_new_tokens" in page  # the colophon: commit and params


def test_pages_stand_alone_offline(built):
    for page in built.parent.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text.lower(), f"{page.name}: a script (the report is static)"
        assert not re.search(r'(?:src|href)="https?://', text), f"{page.name}: fetches from the network"


def test_unexecuted_notebooks_are_refused(tmp_path):
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    for c in nb.cells:
        c.pop("outputs", None) if c.cell_type != "code" else c.update(outputs=[])
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    with pytest.raises(ValueError, match="no outputs"):
        report.build(boundary.config.load("smoke"), [tmp_path / "01_x.ipynb"], tmp_path / "out")
    assert not (tmp_path / "out" / "index.html").exists()


def _browser():
    """A headless Chromium driven by chromedriver, or a skip (a failure under CI) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        msg = "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        pytest.fail(msg + "; CI=true requires them") if IN_CI else pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,2000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_in_a_real_browser(built, tmp_path):
    browser = _browser()
    try:
        for page in [built] + sorted(p for p in built.parent.glob("*.html") if p != built):
            browser.get(page.as_uri())
            widths = browser.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)")
            assert widths and all(w > 0 for w in widths), f"{page.name}: undecoded images {widths}"
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"{page.name}: console errors {errors}"
        browser.get(built.as_uri())
        shot = Path(tmp_path) / "report-index.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        browser.quit()


def test_pages_leave_out_stderr_and_keep_stdout(tmp_path):
    # a headless make all's notebooks hold tqdm bars on stderr (hundreds of lines a cell): not for the reader
    nb = nbformat.read(NOTEBOOKS[2], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and c.outputs)
    code.outputs = [nbformat.v4.new_output("stream", name="stderr", text="sample base: 37%|███ 1420/3840 [00:02]\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="the printed result\n")] + code.outputs
    html = report.page(nb)
    assert "1420/3840" not in html and "the printed result" in html
    assert any(o.get("name") == "stderr" for o in code.outputs)  # the notebook itself is left as it was
