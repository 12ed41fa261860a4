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
