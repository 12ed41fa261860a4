"""Figures for lessons and training runs (matplotlib, Agg backend: no window needed).

Lessons save their figures with ``save_figure(fig, "05_something.png")``. They land in
``lessons/figures/`` of the repository, or in ``$TINYMM_OUT`` when that is set (the tests
set it to a temporary folder so a test run never rewrites the committed figures).
"""
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def fast_mode():
    """True when ``TINYMM_FAST=1``: lessons shrink every loop to finish in seconds."""
    return os.environ.get("TINYMM_FAST", "") not in ("", "0")


def pick(full, fast):
    """``full`` normally, ``fast`` under TINYMM_FAST=1 (e.g. ``steps = pick(2000, 50)``)."""
    return fast if fast_mode() else full


def figures_dir():
    """Where figures go: $TINYMM_OUT, else lessons/figures of this checkout, else ./figures."""
    out = os.environ.get("TINYMM_OUT")
    if out:
        path = Path(out)
    else:
        lessons = Path(__file__).resolve().parent.parent / "lessons"
        path = lessons / "figures" if lessons.is_dir() else Path.cwd() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name, dpi=110):
    """Save ``fig`` under ``figures_dir()`` and close it; returns the path."""
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {path}")
    return path
