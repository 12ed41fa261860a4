"""Using a trained run: ``run = tm.load_run("runs/default")``.

    run.model                      the DualEncoder (eval mode)
    run.tokenizer, run.config, run.metrics
    run.encode_images(images)      (N, D) unit vectors, as a NumPy array
    run.encode_texts(captions)     (M, D) unit vectors
    run.retrieve("a small red circle", k=5)   text -> the k best images of a gallery
    run.retrieve(image, k=5)                  image -> the k best captions of the grammar
    run.classify(images, labels)              zero-shot probabilities, one row per image
    run.caption(images) / run.generate(captions)   the decoders, when the run trained them
"""
import json
from pathlib import Path

import numpy as np

from . import backend
from .autograd import Tensor, no_grad
from .data import ShapesCaptions, all_captions, shapes_tokenizer
from .serialization import load
from .train import build_dual_encoder, read_config


class Run:
    def __init__(self, run_dir, config, model, tokenizer, metrics, caption_decoder=None, image_decoder=None):
        self.dir = Path(run_dir)
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.caption_decoder = caption_decoder
        self.image_decoder = image_decoder
        self._gallery = None
        self._default_embeddings = {}  # "gallery" / "captions" -> embeddings, made on first use

    def __repr__(self):
        stages = [s for s, m in (("clip", self.model), ("caption", self.caption_decoder),
                                 ("image", self.image_decoder)) if m is not None]
        return f"Run({str(self.dir)!r}, stages={stages})"

    # -- embeddings --------------------------------------------------------------------------
    def encode_images(self, images, batch_size=500):
        """(N, 3, 32, 32) float images in [0, 1] -> (N, D) NumPy unit vectors."""
        images = _check_images(images)
        with no_grad():
            parts = [self.model.encode_image(images[i:i + batch_size]).numpy()
                     for i in range(0, len(images), batch_size)]
        return np.concatenate(parts)

    def encode_texts(self, captions, batch_size=1000):
        """A list of M captions -> (M, D) NumPy unit vectors (unknown words warn and map to <unk>)."""
        captions = _check_captions(captions)
        tokens = self.tokenizer.encode(captions)
        with no_grad():
            parts = [self.model.encode_text(tokens[i:i + batch_size]).numpy()
                     for i in range(0, len(tokens), batch_size)]
        return np.concatenate(parts)

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
            raise ValueError(f"retrieve: give one image (3, 32, 32) as the query, got shape {image.shape}")
        if captions is None:  # every caption of the grammar, embedded once
            candidates = all_captions()
            caption_emb = self._embedded("captions", lambda: self.encode_texts(candidates))
        else:
            candidates = list(_check_captions(captions))
            caption_emb = self.encode_texts(candidates)
        sims = caption_emb @ self.encode_images(image)[0]
        best = np.argsort(-sims, kind="stable")[:k]
        return [(candidates[i], float(sims[i])) for i in best]

    def _embedded(self, what, make):
        if what not in self._default_embeddings:
            self._default_embeddings[what] = make()
        return self._default_embeddings[what]

    def classify(self, images, labels):
        """Zero-shot classification, like CLIP: softmax over exp(s)·cos(image, label) per image.

        labels are free text ("red circle") or full captions; returns (N, len(labels)) probabilities.
        """
        labels = _check_captions(labels)
        scale = float(np.exp(backend.to_numpy(self.model.logit_scale.data)))
        logits = scale * (self.encode_images(images) @ self.encode_texts(labels).T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    # -- decoders -------------------------------------------------------------------------
    def caption(self, images, **kwargs):
        """Images -> captions, with the caption decoder this run trained."""
        if self.caption_decoder is None:
            raise ValueError(f"caption: the run {self.dir} has no caption decoder; train it with "
                             f"python -m tinymm train --run-dir {self.dir} --stages caption --resume")
        images = _check_images(images)
        if len(images) == 0:
            raise ValueError("caption: got no images (shape (0, 3, 32, 32)); give at least one")
        image_emb = self.encode_images(images)
        return self.caption_decoder.generate_captions(image_emb, self.tokenizer, **kwargs)

    def generate(self, captions):
        """Captions -> (N, 3, 32, 32) images in [0, 1], with the prior and image decoder of this run."""
        if self.image_decoder is None:
            raise ValueError(f"generate: the run {self.dir} has no image decoder; train it with "
                             f"python -m tinymm train --run-dir {self.dir} --stages image --resume")
        captions = _check_captions(captions)
        unknown = sorted({w for c in captions for w in c.lower().split() if w not in self.tokenizer.word_to_id})
        if unknown:
            raise ValueError(f"generate: words not in the vocabulary: {', '.join(unknown)} "
                             f"(the grammar knows: {', '.join(self.tokenizer.id_to_word[4:])})")
        return self.image_decoder.generate_images(self.encode_texts(captions))


def _check_images(images):
    if isinstance(images, Tensor):
        images = images.data
    if backend.is_array(images):
        images = backend.to_numpy(images)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"images must have shape (N, 3, 32, 32) (or one (3, 32, 32) image), got {images.shape}")
    return images


def _check_captions(captions):
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if not captions:
        raise ValueError("captions: the list is empty")
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise TypeError(f"captions: item {i} is {type(c).__name__}, not a string")
        if not c.strip():
            raise ValueError(f"captions: item {i} is empty")
    return captions


def load_run(run_dir, device=None):
    """Load what ``python -m tinymm train`` left in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"load_run: no run folder {run_dir} (train one with python -m tinymm train)")
    config_path, ckpt_path = run_dir / "config.json", run_dir / "clip.npz"
    for needed in (config_path, ckpt_path):
        if not needed.exists():
            raise ValueError(f"load_run: {run_dir} is incomplete: {needed.name} is missing "
                             f"(was training interrupted? resume it with --resume)")
    config = read_config(config_path, "load_run")
    # a saved run opens on the default device unless asked: a run trained on a GPU opens on a laptop
    trained_on, config.device = config.device, backend.check_device(device, "load_run")
    if trained_on != config.device and device is None:
        print(f"load_run: {run_dir} was trained on {trained_on}; opened on {config.device}, the default device "
              f"(pass device='{trained_on}' or --device {trained_on} to change it)")
    tokenizer = shapes_tokenizer()
    model = build_dual_encoder(config, tokenizer).to(config.device)
    model.load_state_dict(load(ckpt_path)["model"])
    model.eval()
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    from .train_decoders import load_decoders
    caption_decoder, image_decoder = load_decoders(config, run_dir)
    return Run(run_dir, config, model, tokenizer, metrics, caption_decoder, image_decoder)


def load_or_train(config, run_dir=None, also_try=()):
    """A Run with the dual encoder of ``config``, trained only when no folder has one already.

    run_dir   where a full run keeps the model, so later lessons reuse it (lessons 12-16 share
              runs/lesson12); None trains into a temporary folder that is thrown away.
    also_try  other run folders worth reusing, e.g. runs/default.
    A folder is reused when it holds a model with the same loss and text encoder, trained for at
    least ``config.steps`` steps; otherwise ``train_clip`` trains one into run_dir.
    """
    import tempfile
    import time

    from .train import train_clip, write_json
    if run_dir is not None:
        for folder in [Path(run_dir), *map(Path, also_try)]:
            if not (folder / "clip.npz").exists():
                continue
            try:
                run = load_run(folder, device=config.device)
            except (ValueError, KeyError) as err:
                print(f"cannot reuse {folder}: {err}")
                continue
            saved = run.config
            if saved.loss == config.loss and saved.text_encoder == config.text_encoder \
                    and saved.steps >= config.steps:
                print(f"reusing the dual encoder in {folder} ({saved.steps} steps)")
                return run
    t0 = time.time()
    if run_dir is None:
        with tempfile.TemporaryDirectory() as scratch:
            model, _ = train_clip(config, scratch)
        run = Run(scratch, config, model, shapes_tokenizer(), metrics={})
    else:
        train_clip(config, run_dir)
        write_json(Path(run_dir) / "config.json", config.to_dict())
        run = load_run(run_dir, device=config.device)
    print(f"trained the dual encoder: {config.steps} steps in {time.time() - t0:.0f} s")
    return run
