"""Figures for lessons and training runs (matplotlib).

Lessons save their figures with ``save_figure(fig, "05_something.png")``.

Where a figure goes:

- by default to ``lessons/my_figures/`` of the checkout (``./my_figures/`` when tinymm is not run
  from a checkout). Git ignores that folder, so running or editing a lesson never changes the
  committed figures;
- to ``$TINYMM_OUT`` when that is set. The committed figures in ``lessons/figures/`` are the ones a
  full run makes, so they are rewritten only when asked for by name:
  ``TINYMM_OUT=lessons/figures python lessons/05_softmax_cross_entropy.py``. Fast mode
  (``TINYMM_FAST=1``) refuses that folder: its small runs would replace the full-run figures.

Every saved figure prints its path. In a Jupyter notebook the saved file is also shown inline,
below the cell. In a plain script nothing is shown and no window opens: matplotlib draws into
memory (the Agg backend) unless ``MPLBACKEND`` names another backend. A Jupyter kernel keeps its
own backend, so its inline display works.
"""
import os
import sys
from pathlib import Path

import matplotlib


def in_notebook():
    """True inside a Jupyter kernel (JupyterLab, VS Code's notebooks, nbclient): it can show figures."""
    ipython = sys.modules.get("IPython")  # imported only when running under IPython
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


if not in_notebook() and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # a script draws into memory: no window, nothing waits for one
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
COMMITTED_FIGURES = LESSONS_DIR / "figures"  # made by full runs, shown in lessons/README.md

_told = set()  # the one-time notes already printed in this process


def _say_once(key, message):
    if key not in _told:
        _told.add(key)
        print(message)


def fast_mode():
    """True when ``TINYMM_FAST=1``: lessons shrink every loop to finish in seconds.

    The first time it is true, it prints that the numbers that follow are not the lesson's.
    """
    fast = os.environ.get("TINYMM_FAST", "") not in ("", "0")
    if fast:
        _say_once("fast", "fast mode (TINYMM_FAST=1): loops and data are shrunk to finish in seconds, so the "
                          "numbers below are not the ones the lesson's text quotes (a model trained this "
                          "briefly may stay near chance); run without TINYMM_FAST to see those.")
        _check_out_dir()
    return fast


def pick(full, fast):
    """``full`` normally, ``fast`` under TINYMM_FAST=1 (e.g. ``steps = pick(2000, 50)``)."""
    return fast if fast_mode() else full


def _check_out_dir():
    """Refuse to send fast-mode figures over the committed full-run ones."""
    out = os.environ.get("TINYMM_OUT")
    if out and Path(out).expanduser().resolve() == COMMITTED_FIGURES:
        raise SystemExit(f"TINYMM_OUT={out} is the folder of the committed full-run figures, and "
                         "TINYMM_FAST=1 would replace them with fast-mode ones: unset TINYMM_FAST "
                         "for a full run, or unset TINYMM_OUT (figures then go to lessons/my_figures/).")


def figures_dir():
    """Where figures go: $TINYMM_OUT if set, else lessons/my_figures/ of the checkout (else ./my_figures/)."""
    out = os.environ.get("TINYMM_OUT")
    if out:
        fast_mode()  # in fast mode this refuses the committed folder
        path = Path(out).expanduser()
    else:
        path = (LESSONS_DIR if LESSONS_DIR.is_dir() else Path.cwd()) / "my_figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lesson_run_dir(name):
    """The run folder lessons share, e.g. ``lesson_run_dir("lesson12")``: ``runs/lesson12`` of the checkout.

    Anchored at the repository (``./runs/`` when tinymm is not run from a checkout), not at the
    current folder: a notebook's kernel starts in ``lessons/``, and a script from the root; both must
    find the model a full run of lesson 12 left behind.
    """
    root = LESSONS_DIR.parent if LESSONS_DIR.is_dir() else Path.cwd()
    return root / "runs" / name


def _shown_path(path):
    """``path`` relative to the current folder when it lies below it (shorter to read)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def save_figure(fig, name, dpi=110):
    """Save ``fig`` under ``figures_dir()``, print where, show it inline in a notebook, close it.

    It returns nothing, so a notebook cell that ends with it shows the figure and no ``Out[]`` line.
    """
    out = figures_dir()
    path = out / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)  # closed, so a notebook's own inline display does not show it a second time
    print(f"saved {_shown_path(path)}")
    if not os.environ.get("TINYMM_OUT"):
        _say_once("where", f"  (figures of your runs go to {_shown_path(out)}/, which git ignores; the "
                           f"committed ones in lessons/figures/ come from full runs with "
                           f"TINYMM_OUT=lessons/figures)")
    if in_notebook():
        from IPython.display import Image, display
        display(Image(filename=str(path)))  # exactly the file that was saved


# ----------------------------------------------------------------------------------------------
# Figures of a training run (used by tinymm.train and the lessons)


def _image_grid_axes(n_rows, n_cols, scale=1.3):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * scale, n_rows * scale), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def as_rgb(image):
    """(3, H, W) in [0, 1] -> (H, W, 3) for imshow."""
    import numpy as np
    return np.clip(np.transpose(np.asarray(image), (1, 2, 0)), 0, 1)


def loss_curve(history, title="CLIP loss"):
    """Loss against step, with the loss floor (the entropy of the soft targets) dashed."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["step"], history["loss"], label="training loss")
    if any(history.get("floor", [])):
        ax.plot(history["step"], history["floor"], "--", color="gray", label="loss floor (duplicate captions)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def similarity_heatmap(similarity, captions, images=None, title="cosine similarity: images × captions"):
    """A (n, n) image-caption similarity matrix; the diagonal holds the true pairs.

    With ``images`` each row is labelled by a thumbnail of its image.
    """
    import numpy as np
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    n = len(captions)
    fig, ax = plt.subplots(figsize=(0.5 * n + 4, 0.5 * n + 2))
    im = ax.imshow(np.asarray(similarity), cmap="viridis", vmin=-1, vmax=1)
    for i in range(n):
        for j in range(n):
            value = float(similarity[i][j])
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 0.3 else "white")
    ax.set_xticks(range(n))
    ax.set_xticklabels(captions, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(n))
    if images is None:
        ax.set_yticklabels([f"image {i}" for i in range(n)], fontsize=7)
    else:
        ax.set_yticklabels([])
        for i in range(n):
            thumb = OffsetImage(as_rgb(images[i]), zoom=0.75)
            ax.add_artist(AnnotationBbox(thumb, (-0.5, i), xybox=(-16, 0), boxcoords="offset points",
                                         frameon=False, annotation_clip=False))
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(title)
    return fig


def retrieval_gallery(queries, images, scores, correct=None, title="text → image retrieval (top 5)"):
    """One row per text query: its top-k images with their scores (green frame = right)."""
    n_rows, k = len(queries), len(images[0])
    fig, axes = _image_grid_axes(n_rows, k, scale=1.5)
    for r, query in enumerate(queries):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(as_rgb(images[r][c]))
            ax.set_xlabel(f"{scores[r][c]:.2f}", fontsize=7)
            if correct is not None:
                colour = "limegreen" if correct[r][c] else "red"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2.5)
        axes[r, 0].set_ylabel(query.replace(" left of", "\nleft of").replace(" above", "\nabove"),
                              fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix, labels, title="zero-shot confusion matrix"):
    """Rows: true caption; columns: predicted caption (counts)."""
    import numpy as np
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.2 * n + 3, 0.2 * n + 2.5))
    ax.imshow(np.asarray(matrix), cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=5)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


def pca_scatter(image_emb, text_emb, colour_index, colour_names, title="PCA of both modalities"):
    """Both modalities projected on the same two principal axes; colour = object colour."""
    import numpy as np
    both = np.concatenate([image_emb, text_emb])
    centred = both - both.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    n = len(image_emb)
    palette = {"red": "red", "green": "green", "blue": "blue", "yellow": "gold",
               "magenta": "magenta", "cyan": "c"}
    colours = [palette.get(colour_names[i], "gray") for i in colour_index]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(xy[:n, 0], xy[:n, 1], c=colours, marker="o", s=14, alpha=0.6)
    ax.scatter(xy[n:, 0], xy[n:, 1], c=colours, marker="x", s=30)
    # legend entries in gray: the colours stand for the objects, the markers for the modality
    ax.scatter([], [], c="gray", marker="o", label="images")
    ax.scatter([], [], c="gray", marker="x", label="captions")
    ax.set_title(title)
    ax.legend()
    return fig
