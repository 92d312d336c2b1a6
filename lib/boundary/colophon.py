"""The colophon every notebook ends with: which code and which packages produced it."""
from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

from boundary import ROOT

PACKAGES = ["boundary", "numpy", "pandas", "torch", "transformers", "datasets", "math-verify",
            "vllm", "seaborn", "papermill"]  # the versions worth recording beside a result


def commit() -> str:
    """The repository's HEAD commit, with '+dirty' when the working tree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               text=True, capture_output=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    """Installed version of each package in PACKAGES ('-' when absent)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def show() -> None:
    """Print the colophon."""
    print(f"commit {commit()} on {platform.node() or 'unknown host'} ({platform.machine()})")
    print(", ".join(f"{k} {v}" for k, v in versions().items()))
