"""boundary: does RLVR widen a language model's reasoning boundary, or only sharpen sampling inside it?

The package behind the notebooks. Data flows one way:
params -> tasks -> sampling -> store -> verify -> passk / perplexity -> plots.
Every path is anchored at the repository root (``ROOT``), never the working directory, because
papermill runs a notebook in the caller's folder and nbval in the notebook's own.
"""
from pathlib import Path

__version__ = "0.1.0"

# The repository root: lib/boundary/__init__.py -> lib -> root.
ROOT = Path(__file__).resolve().parents[2]


def quiet(progress: bool) -> dict:
    """tqdm keyword arguments for a `progress` flag: silent when False; when True, nothing is forced,
    so tqdm's own environment switch (TQDM_DISABLE=1, set under tests so nbval never compares
    progress bars) still applies. Passing `disable=False` explicitly would override it."""
    return {} if progress else {"disable": True}
