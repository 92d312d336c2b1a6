"""boundary: does RLVR widen a language model's reasoning boundary, or only sharpen sampling inside it?

The package behind the notebooks. Data flows one way:
params -> tasks -> sampling -> store -> verify -> passk / perplexity -> plots.
Every path is anchored at the repository root (``ROOT``), never the working directory, because
papermill runs a notebook in the caller's folder and nbval in the notebook's own.
"""
import hashlib
from pathlib import Path

__version__ = "0.1.0"

# The repository root: lib/boundary/__init__.py -> lib -> root.
ROOT = Path(__file__).resolve().parents[2]


def quiet(progress: bool) -> dict:
    """tqdm keyword arguments for a `progress` flag: silent when False; when True, nothing is forced,
    so tqdm's own environment switch (TQDM_DISABLE=1, set under tests so nbval never compares
    progress bars) still applies. Passing `disable=False` explicitly would override it."""
    return {} if progress else {"disable": True}


def stable_seed(text: str) -> int:
    """The one seed derivation of the project: the first 63 bits of the SHA-256 of `text` (the same on
    every machine and Python, unlike `hash`). Callers join their parts into `text` (a problem id; run
    seed, problem id and sample index; an image's salt and expression)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1
