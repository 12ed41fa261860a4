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
import numpy as np  # noqa: E402

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


# ----------------------------------------------------------------------------------------------
# The figures a run leaves in its folder (tinymm.train.pipeline)


def clip_figures(model, config, history, out_dir):
    """Loss curve, similarity heatmap, retrieval gallery, zero-shot confusion, PCA -> out_dir."""
    from .config import evaluation_sets
    from .data import COLOURS, one_object_captions
    from .metrics import confusion_matrix
    from .models.build import encoders_of
    out_dir = Path(out_dir)
    encode_image, encode_text = encoders_of(model)
    test = evaluation_sets(config)["test"]
    saved = []

    def save_fig(fig, name):
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        saved.append(out_dir / name)

    if history.get("step"):
        save_fig(loss_curve(history), "loss.png")
    image_emb, text_emb = encode_image(test.images), encode_text(test.captions)
    pick = np.arange(min(12, len(test)))
    save_fig(similarity_heatmap(image_emb[pick] @ text_emb[pick].T,
                                [test.captions[i] for i in pick], test.images[pick]), "similarity.png")
    one_object = np.flatnonzero(test.scenes["n_objects"] == 1)
    two_objects = np.flatnonzero(test.scenes["n_objects"] == 2)
    queries = [test.captions[i] for i in list(one_object[:2]) + list(two_objects[:3])]
    sims = encode_text(queries) @ image_emb.T
    top = np.argsort(-sims, axis=1)[:, :5]
    save_fig(retrieval_gallery(queries, [test.images[t] for t in top],
                               [sims[r, t] for r, t in enumerate(top)],
                               [[test.captions[j] == q for j in t] for q, t in zip(queries, top)]),
             "retrieval.png")
    labels = one_object_captions()
    truth = [labels.index(test.captions[i]) for i in one_object]
    pred = (image_emb[one_object] @ encode_text(labels).T).argmax(axis=1)
    save_fig(confusion_matrix_figure(confusion_matrix(np.array(truth), pred, len(labels)), labels),
             "zero_shot_confusion.png")
    colour_of = test.scenes["colour"][:, 0]
    save_fig(pca_scatter(image_emb[:300], text_emb[:300], colour_of[:300], COLOURS), "embeddings_pca.png")
    return saved


def _montage(images, n_cols, pad=4):
    """Images (N, 3, H, W) tiled into one (rows·(H+pad), n_cols·(W+pad), 3) picture on white."""
    n, _, h, w = images.shape
    n_rows = -(-n // n_cols)
    canvas = np.ones((n_rows * (h + pad), n_cols * (w + pad), 3), dtype=np.float32)
    for i in range(n):  # a loop over tiles of a figure, not inside an op
        r, c = divmod(i, n_cols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
            np.clip(images[i].transpose(1, 2, 0), 0, 1)
    return canvas


def image_grid_figure(images, titles, n_cols=8, title=None, scale=1.25, row_labels=None):
    """Images (N, 3, H, W) in a grid, each with its (wrapped) title under it ("" for none),
    and optionally a label left of each row.

    Drawn as one picture in one axes: far faster to save than one axes per image.
    """
    images = np.asarray(images, dtype=np.float32)
    titles = list(titles) + [""] * (len(images) - len(titles))
    n_cols = max(1, min(n_cols, len(images)))
    n_rows = -(-len(images) // n_cols)
    h, w, pad = images.shape[2], images.shape[3], 4
    canvas = _montage(images, n_cols, pad)
    # room under a row for its titles, where it has any
    room = [14 if any(titles[r * n_cols:(r + 1) * n_cols]) else 0 for r in range(n_rows)]
    tops = np.concatenate([[0], np.cumsum([h + pad + extra for extra in room])])
    rows = [np.concatenate([canvas[r * (h + pad):(r + 1) * (h + pad)],
                            np.ones((room[r], canvas.shape[1], 3), dtype=np.float32)]) for r in range(n_rows)]
    canvas = np.concatenate(rows)
    fig, ax = plt.subplots(figsize=(n_cols * scale, scale * canvas.shape[0] / (h + pad)))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for i, text in enumerate(titles):
        r, c = divmod(i, n_cols)
        ax.text(c * (w + pad) + w / 2, tops[r] + h + 1, _wrap(text), ha="center", va="top", fontsize=6)
    for r, text in enumerate(row_labels or []):
        ax.text(-3, tops[r] + h / 2, text, ha="right", va="center", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _wrap(caption):
    return caption.replace(" left of", "\nleft of").replace(" above", "\nabove")


def caption_table_figure(images, predicted, truth, title="image → caption (green: exact, red: wrong)"):
    """Images in a column, the decoder's caption beside each; the true caption under a wrong one."""
    images = np.asarray(images, dtype=np.float32)
    n, h = len(images), images.shape[2]
    canvas = _montage(images, 1, pad=6)
    fig, ax = plt.subplots(figsize=(6.5, 0.62 * n + 0.4))
    ax.imshow(canvas, interpolation="nearest", extent=(0, canvas.shape[1], canvas.shape[0], 0))
    for i in range(n):
        right = predicted[i] == truth[i]
        text = predicted[i] if right else f"{predicted[i]}\n(true: {truth[i]})"
        ax.text(canvas.shape[1] + 4, i * (h + 6) + h / 2, text, va="center", fontsize=8,
                color="green" if right else "red")
    ax.set_xlim(0, canvas.shape[1] * 9)
    ax.set_ylim(canvas.shape[0], 0)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return fig


def decoder_figures(run_dir, test, predicted, gen48, caption_history, image_history, gap):
    """captions.png, generated.png, decoders_loss.png, modality_gap.png -> run_dir."""
    from .data import one_object_captions
    run_dir = Path(run_dir)

    def save_fig(fig, name):
        fig.savefig(run_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)

    if predicted is not None:
        one = np.flatnonzero(test.scenes["n_objects"] == 1)[:4]
        two = np.flatnonzero(test.scenes["n_objects"] == 2)[:8]
        pick = np.concatenate([one, two])
        save_fig(caption_table_figure(test.images[pick], [predicted[i] for i in pick],
                                      [test.captions[i] for i in pick]), "captions.png")
    if gen48 is not None:
        save_fig(image_grid_figure(gen48, [c[2:] for c in one_object_captions()], n_cols=8, scale=1.4,
                                   title="caption → image: the 48 one-object captions"), "generated.png")
    histories = [(name, h) for name, h in (("caption (cross-entropy)", caption_history),
                                           ("image (pixel MSE)", image_history)) if h and h.get("step")]
    if histories:
        fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.2), squeeze=False)
        for ax, (name, h) in zip(axes[0], histories):
            ax.plot(h["step"], h["loss"])
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_title(name)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_fig(fig, "decoders_loss.png")
    if gap is not None:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        bins = np.linspace(min(gap["text"].min(), gap["prior"].min()), 1, 40)
        ax.hist(gap["text"], bins=bins, alpha=0.6, label="cos(image, caption)")
        ax.hist(gap["prior"], bins=bins, alpha=0.6, label="cos(image, prior(caption))")
        ax.set_xlabel("cosine similarity of a test image and its caption")
        ax.set_title("the modality gap, and the prior closing it")
        ax.legend(fontsize=8)
        save_fig(fig, "modality_gap.png")
