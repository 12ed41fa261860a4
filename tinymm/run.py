"""Using a trained run: ``run = tm.load_run("runs/default")``.

    run.model                      the DualEncoder (eval mode)
    run.tokenizer, run.config, run.metrics
    run.problems                   what load_run left out or found unfinished, and why (also warned)
    run.encode_images(images)      (N, D) unit vectors, as a NumPy array
    run.encode_texts(captions)     (M, D) unit vectors
    run.retrieve("a small red circle", k=5)   text -> the k best images of a gallery
    run.retrieve(image, k=5)                  image -> the k best captions of the grammar
    run.classify(images, labels)              zero-shot probabilities, one row per image
    run.scene_check(images)                   do these pictures look like the scenes it was trained on?
    run.caption(images) / run.generate(captions)   the decoders, when the run trained them
"""
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .autograd import Tensor
from .data import ShapesCaptions, all_captions, shapes_tokenizer
from .data.tokenizer import SPECIAL_TOKENS
from .errors import CheckpointError, UserError
from .serialization import load
from .batches import map_batches
from .config import read_config
from .models.build import build_dual_encoder, load_decoders


# How "looks like a training scene" is measured: on this many fresh test scenes, the limits
# that all but this share of them stay within (1 in 200 true scenes falls outside each limit).
SCENE_CHECK_SCENES = 1000
SCENE_CHECK_SHARE = 0.005


class UnlikeTrainingWarning(UserWarning):
    """classify or retrieve got pictures far from the scenes the model was trained on: the
    answer is computed, but it is not to be trusted (see ``Run.scene_check``)."""


@dataclass(frozen=True)
class SceneLimits:
    """What true scenes give, measured by ``Run.scene_limits`` on fresh test scenes.

    min_cosine   199 in 200 true scenes have a best caption cosine of at least this
    max_length   199 in 200 true scenes have image features (before the L2 norm) at most this long
    n_scenes     how many scenes were measured
    """
    min_cosine: float
    max_length: float
    n_scenes: int


@dataclass(frozen=True)
class SceneCheck:
    """How much each of N images looks like the training scenes; made by ``Run.scene_check``.

    best_cosine  (N,) cosine of the image's embedding with its closest caption of the grammar
    length       (N,) length of the image encoder's output before it is normalised
    unlike       (N,) bool: True where the image is outside either of the limits
    reasons      N strings saying why an image looks unlike the scenes ("" where it does not)
    limits       the SceneLimits compared with
    """
    best_cosine: np.ndarray
    length: np.ndarray
    unlike: np.ndarray
    reasons: list
    limits: SceneLimits


class Run:
    def __init__(self, run_dir, config, model, tokenizer, metrics, caption_decoder=None, image_decoder=None,
                 problems=None):
        self.dir = Path(run_dir)
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.caption_decoder = caption_decoder
        self.image_decoder = image_decoder
        # what load_run found wrong, per part ("clip", "caption", "image", "metrics"): why, in words
        self.problems = dict(problems or {})
        self._gallery = None
        self._default_embeddings = {}  # "gallery" / "captions" -> embeddings, made on first use
        self._scene_limits = None      # measured on first use (scene_limits)

    def __repr__(self):
        stages = [s for s, m in (("clip", self.model), ("caption", self.caption_decoder),
                                 ("image", self.image_decoder)) if m is not None]
        return f"Run({str(self.dir)!r}, stages={stages})"

    # -- embeddings --------------------------------------------------------------------------
    def encode_images(self, images, batch_size=500):
        """(N, 3, 32, 32) float images in [0, 1] -> (N, D) NumPy unit vectors."""
        images = _check_images(images)
        batch_size = _check_count(batch_size, "encode_images", "batch_size")
        return map_batches(self.model.encode_image, images, batch_size)

    def encode_texts(self, captions, batch_size=1000):
        """A list of M captions -> (M, D) NumPy unit vectors (unknown words warn and map to <unk>)."""
        captions = _check_captions(captions)
        batch_size = _check_count(batch_size, "encode_texts", "batch_size")
        tokens = self.tokenizer.encode(captions)
        return map_batches(self.model.encode_text, tokens, batch_size)

    # -- retrieval and zero-shot ---------------------------------------------------------------
    @property
    def gallery(self):
        """The default image gallery for text queries: fresh i.i.d. test scenes (cached)."""
        if self._gallery is None:
            self._gallery = ShapesCaptions("test", n=self.config.eval_size, seed=self.config.seed + 12345)
        return self._gallery

    def retrieve(self, query, k=5, images=None, captions=None):
        """Text in, images out; or image in, captions out.

        query     a caption (str) or one image (3, 32, 32)
        images    the gallery for a text query (default: ``run.gallery.images``)
        captions  the candidates for an image query (default: every caption of the grammar)
        Returns a list of k (index into the gallery or caption, cosine similarity) pairs, best first.
        """
        k = _check_count(k, "retrieve", "k")
        if query is None:
            raise UserError("retrieve: the query is None; give a caption (str) or one image (3, 32, 32)")
        if isinstance(query, str):
            if images is None:  # the default gallery is embedded once, not on every query
                gallery_emb = self._embedded("gallery", lambda: self.encode_images(self.gallery.images))
            else:
                gallery_emb = self.encode_images(images)
            sims = gallery_emb @ self.encode_texts([query])[0]
            best = np.argsort(-sims, kind="stable")[:k]
            return [(int(i), float(sims[i])) for i in best]
        image = np.asarray(query)
        if image.ndim == 3:
            image = image[None]
        if image.shape[0] != 1:
            raise UserError(f"retrieve: give one image (3, 32, 32) as the query, got shape {image.shape}")
        if captions is None:  # every caption of the grammar, embedded once
            candidates = all_captions()
            caption_emb = self._grammar_embeddings()
        else:
            candidates = list(_check_captions(captions))
            caption_emb = self.encode_texts(candidates)
        image = _check_images(image)
        self._warn_if_unlike(image, "retrieve", "captions")
        sims = caption_emb @ self.encode_images(image)[0]
        best = np.argsort(-sims, kind="stable")[:k]
        return [(candidates[i], float(sims[i])) for i in best]

    def _embedded(self, what, make):
        if what not in self._default_embeddings:
            self._default_embeddings[what] = make()
        return self._default_embeddings[what]

    def _grammar_embeddings(self):
        """The 4,560 captions of the grammar as (4560, D) unit vectors, embedded once."""
        return self._embedded("captions", lambda: self.encode_texts(all_captions()))

    def classify(self, images, labels):
        """Zero-shot classification, like CLIP: softmax over exp(s)·cos(image, label) per image.

        labels are free text ("red circle") or full captions; returns (N, len(labels)) probabilities.
        A softmax always sums to 1, so a picture of anything gets confident-looking numbers:
        images that look unlike the training scenes (``scene_check``) are named, with their
        numbers, in an ``UnlikeTrainingWarning`` (a UserWarning, from ``warnings.warn``), and the
        probabilities are still returned: ``warnings.simplefilter("error", UnlikeTrainingWarning)``
        makes it an exception instead, ``"ignore"`` silences it.
        """
        labels = _check_captions(labels)
        images = _check_images(images)
        self._warn_if_unlike(images, "classify", "probabilities")
        scale = float(np.exp(backend.to_numpy(self.model.logit_scale.data)))
        logits = scale * (self.encode_images(images) @ self.encode_texts(labels).T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    # -- does a picture look like the training scenes? -------------------------------------
    @property
    def scene_limits(self):
        """SceneLimits: what fresh true test scenes give (measured on first use, then cached).

        Measured from the model itself, so it works for any run folder, old ones included.
        """
        if self._scene_limits is None:
            seed = 0 if self.config is None else self.config.seed
            scenes = ShapesCaptions("test", n=SCENE_CHECK_SCENES, seed=seed + 54321)  # not the gallery's
            best_cosine, length = self._scene_scores(scenes.images)
            self._scene_limits = SceneLimits(min_cosine=float(np.quantile(best_cosine, SCENE_CHECK_SHARE)),
                                             max_length=float(np.quantile(length, 1 - SCENE_CHECK_SHARE)),
                                             n_scenes=len(scenes))
        return self._scene_limits

    def scene_check(self, images):
        """How much each image looks like the scenes the model was trained on -> SceneCheck.

        Two numbers per image, each compared with what 199 in 200 true test scenes give:

        - its best caption cosine: how close its embedding comes to any of the 4,560 captions.
          A true scene lies close to its own caption; a picture of nothing the model knows
          (a blank one, often) lies far from every caption;
        - the length of the image encoder's output before it is normalised. The L2 norm hides
          it, yet it grows with how strongly the picture excites the learned filters: a bright,
          busy or noisy picture (a photo, text on white) gives far longer features than any
          dark scene of a few shapes did in training.

        Neither proves a picture is fine; both say when the model is outside what it has seen.
        """
        images = _check_images(images)
        limits = self.scene_limits
        best_cosine, length = self._scene_scores(images)
        reasons = []
        for cosine, size in zip(best_cosine, length):
            why = []
            if cosine < limits.min_cosine:
                why.append(f"its best caption cosine is {cosine:.3f}, while 199 in 200 true scenes "
                           f"score >= {limits.min_cosine:.3f}")
            if size > limits.max_length:
                why.append(f"its image features are {size:.3f} long before normalising, while 199 in 200 "
                           f"true scenes give <= {limits.max_length:.3f}")
            reasons.append("; ".join(why))
        return SceneCheck(best_cosine, length, np.array([bool(r) for r in reasons]), reasons, limits)

    def _scene_scores(self, images):
        """(best caption cosine, feature length) of each image, both (N,) NumPy arrays."""
        features = map_batches(self.model.image_encoder, images, 500)  # before the L2 norm
        length = np.linalg.norm(features, axis=1)
        directions = features / np.maximum(length, 1e-12)[:, None]
        captions = self._grammar_embeddings()
        best = map_batches(lambda part: (part @ captions.T).max(axis=1), directions, 500)
        return best, length

    def _warn_if_unlike(self, images, op, answers):
        """An UnlikeTrainingWarning naming the images that look unlike the training scenes, if any."""
        check = self.scene_check(images)
        flagged = np.flatnonzero(check.unlike)
        if len(flagged) == 0:
            return
        listed = "; ".join(f"image {i}: {check.reasons[i]}" for i in flagged[:3])
        more = f"; and {len(flagged) - 3} more" if len(flagged) > 3 else ""
        warnings.warn(f"{op}: {len(flagged)} of {len(check.unlike)} image(s) look unlike the training scenes, "
                      f"so their {answers} are not to be trusted ({listed}{more}); "
                      f"run.scene_check(images) gives the numbers", UnlikeTrainingWarning, stacklevel=3)

    # -- decoders -------------------------------------------------------------------------
    def caption(self, images, **kwargs):
        """Images -> captions, with the caption decoder this run trained."""
        if self.caption_decoder is None and "caption" in self.problems:
            raise UserError(f"caption: the caption decoder of {self.dir} could not be loaded: "
                            f"{self.problems['caption']}")
        if self.caption_decoder is None:
            raise UserError(f"caption: the run {self.dir} has no caption decoder; train it with "
                            f"python -m tinymm train --run-dir {self.dir} --stages caption --resume")
        images = _check_images(images)
        if len(images) == 0:
            raise UserError("caption: got no images (shape (0, 3, 32, 32)); give at least one")
        image_emb = self.encode_images(images)
        return self.caption_decoder.generate_captions(image_emb, self.tokenizer, **kwargs)

    def generate(self, captions):
        """Captions -> (N, 3, 32, 32) images in [0, 1], with the prior and image decoder of this run."""
        if self.image_decoder is None and "image" in self.problems:
            raise UserError(f"generate: the image decoder of {self.dir} could not be loaded: "
                            f"{self.problems['image']}")
        if self.image_decoder is None:
            raise UserError(f"generate: the run {self.dir} has no image decoder; train it with "
                            f"python -m tinymm train --run-dir {self.dir} --stages image --resume")
        captions = _check_captions(captions)
        unknown = sorted({w for c in captions for w in c.lower().split() if w not in self.tokenizer.word_to_id})
        if unknown:
            raise UserError(f"generate: words not in the vocabulary: {', '.join(unknown)} "
                            f"(the grammar knows: {', '.join(self.tokenizer.id_to_word[4:])})")
        return self.image_decoder.generate_images(self.encode_texts(captions))


def _check_count(value, op, name):
    """A positive whole number (k, a batch size), or a one-line error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{op}: {name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _check_images(images):
    """Images as (N, 3, 32, 32) float32 in [0, 1], checked at the door.

    A model trained on values in [0, 1] gives confident nonsense for 0-255 pixels, and one NaN
    turns every score into NaN, so both are refused here instead of being answered.
    """
    if images is None:
        raise UserError("images: got None; give an (N, 3, 32, 32) array of floats in [0, 1]")
    if isinstance(images, Tensor):
        images = images.data
    if backend.is_array(images):
        images = backend.to_numpy(images)
    raw = np.asarray(images)
    if raw.dtype.kind not in "biuf":
        raise UserError(f"images: expected numbers, got an array of dtype {raw.dtype}; "
                        f"give an (N, 3, 32, 32) array of floats in [0, 1]")
    images = raw.astype(np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise UserError(f"images must have shape (N, 3, 32, 32) (or one (3, 32, 32) image), got {images.shape}")
    if len(images) == 0:
        raise UserError("images: got no images (shape (0, 3, 32, 32)); give at least one")
    if not np.isfinite(images).all():
        raise UserError(f"images: {int((~np.isfinite(images)).sum())} values are NaN or infinite; "
                        f"give finite values in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        hint = " (8-bit pixels? divide them by 255)" if high <= 255 and raw.dtype.kind in "iu" or high > 1.5 else ""
        raise UserError(f"images: values must lie in [0, 1], got {low:g} to {high:g}{hint}")
    return images


def _check_captions(captions):
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if not captions:
        raise UserError("captions: the list is empty")
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise UserError(f"captions: item {i} is {type(c).__name__}, not a string")
        if not c.strip():
            raise UserError(f"captions: item {i} is empty")
        special = [w for w in c.lower().split() if w in SPECIAL_TOKENS]
        if special:
            raise UserError(f"captions: item {i} ({c!r:.60}) contains the special token(s) {', '.join(special)}; "
                            f"they mark padding, start, end and unknown words, so write plain words only")
    return captions


def load_run(run_dir, device=None):
    """Load what ``python -m tinymm train`` left in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"load_run: no run folder {run_dir} (train one with python -m tinymm train)")
    config_path, ckpt_path = run_dir / "config.json", run_dir / "clip.npz"
    for needed in (config_path, ckpt_path):
        if not needed.exists():
            raise UserError(f"load_run: {run_dir} is incomplete: {needed.name} is missing "
                            f"(was training interrupted? resume it with --resume)")
    config = read_config(config_path, "load_run")
    # a saved run opens on the default device unless asked: a run trained on a GPU opens on a laptop
    trained_on, config.device = config.device, backend.check_device(device, "load_run")
    if trained_on != config.device and device is None:
        print(f"load_run: {run_dir} was trained on {trained_on}; opened on {config.device}, the default device "
              f"(pass device='{trained_on}' or --device {trained_on} to change it)")
    tokenizer = shapes_tokenizer()
    model = build_dual_encoder(config, tokenizer).to(config.device)
    state = load(ckpt_path, required={"model": dict, "step": int})
    try:
        model.load_state_dict(state["model"])
    except ValueError as err:
        raise CheckpointError(f"load_run: {ckpt_path} does not hold the model {config_path} describes "
                              f"({' '.join(str(err).split())})") from None
    model.eval()
    problems = {}
    if state["step"] < config.steps:   # usable, but say so: its numbers are not the run's
        problems["clip"] = f"{ckpt_path} stopped at step {state['step']} of {config.steps}"
        warnings.warn(f"load_run: the dual encoder in {problems['clip']}; finish it with "
                      f"python -m tinymm train --run-dir {run_dir} --resume", stacklevel=2)
    metrics = _read_metrics(run_dir / "metrics.json", problems)
    caption_decoder, image_decoder = load_decoders(config, run_dir, problems=problems)
    return Run(run_dir, config, model, tokenizer, metrics, caption_decoder, image_decoder, problems)


def _read_metrics(path, problems):
    """metrics.json as a dict; {} with a warning when it is damaged (nothing needs it to work)."""
    if not path.exists():
        return {}
    try:
        if not path.is_file():   # a pipe would block the read forever
            raise ValueError("not a regular file")
        metrics = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(metrics, dict):
            raise ValueError(f"it holds a JSON {type(metrics).__name__}, not an object")
    except (OSError, ValueError) as err:   # ValueError: also bad JSON and bad UTF-8
        problems["metrics"] = f"{path} is damaged ({err})"
        warnings.warn(f"load_run: {problems['metrics']}; run.metrics is left empty, the models are "
                      f"not affected", stacklevel=3)
        return {}
    return metrics
