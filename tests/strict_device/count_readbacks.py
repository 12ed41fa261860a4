"""Count the host–device transfers of tinymm's training steps and generation, on the stand-in.

Run with the stand-in as ``cupy`` (tests/test_sync_budget.py does it in a fresh process):

    PYTHONPATH=tests/strict_device python tests/strict_device/count_readbacks.py

It prints one JSON object: for each stage, the device->host reads and host->device copies per
training step *between* logging intervals, measured as the difference between a run of
``long`` and a run of ``short`` steps of the real training loop (both end with the same one
logging step and checkpoint, which cancel out), and the lines that made them; for greedy
caption generation, the reads per generated token.
"""
import contextlib
import json
import sys
import tempfile
from collections import Counter
from dataclasses import replace

import cupy

import tinymm as tm
from tinymm.data import ShapesCaptions, shapes_tokenizer
from tinymm.train import TrainConfig, build_dual_encoder, train_clip
from tinymm.train import build_caption_decoder, train_caption_decoder, train_image_decoder

strict = cupy._strict  # only the stand-in has it
CONFIG = TrainConfig(device="cuda", batch_size=8, embed_dim=16, channels=(4, 8), image_hidden=16, text_width=16,
                     caption_batch_size=8, caption_hidden=16, image_batch_size=4, image_channels=(8, 4, 4),
                     prior_hidden=16, warmup_steps=1, log_every=1000, checkpoint_every=1000)
SHORT, LONG = 2, 5


def frozen_encoder():
    model = build_dual_encoder(CONFIG, shapes_tokenizer()).to("cuda")
    model.eval()
    return model


STAGES = {
    "clip": lambda cfg, d: train_clip(cfg, d),
    "caption": lambda cfg, d: train_caption_decoder(frozen_encoder(), cfg, d),
    "image": lambda cfg, d: train_image_decoder(frozen_encoder(), cfg, d),
}
STEPS_FIELD = {"clip": "steps", "caption": "caption_steps", "image": "image_steps"}


def transfers(stage, steps):
    cfg = replace(CONFIG, **{STEPS_FIELD[stage]: steps})
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(sys.stderr):
        with strict.recording() as log:  # the training loop's own log lines go to stderr
            STAGES[stage](cfg, run_dir)
    return log


def per_step(stage):
    short, long = transfers(stage, SHORT), transfers(stage, LONG)
    extra_reads = Counter(e.where for e in long.reads) - Counter(e.where for e in short.reads)
    reads_per_step = (len(long.reads) - len(short.reads)) / (LONG - SHORT)
    return {"reads_per_step": reads_per_step,
            "copies_per_step": (len(long.copies) - len(short.copies)) / (LONG - SHORT),
            # setup, the one logging step and the checkpoint of a run
            "reads_outside_the_steps": len(short.reads) - SHORT * reads_per_step,
            "read_lines": {where: n / (LONG - SHORT) for where, n in extra_reads.items()}}


def generation():
    tm.manual_seed(0)
    decoder = build_caption_decoder(CONFIG, shapes_tokenizer()).to("cuda")
    decoder.eval()
    model = frozen_encoder()
    images = ShapesCaptions("test", n=6, seed=1).images
    with tm.no_grad():
        emb = model.encode_image(images)
    with strict.recording() as log:
        ids = decoder.generate_ids(emb, max_len=decoder.max_len)
    tokens = ids.shape[1] - 1  # an untrained decoder rarely stops early; every step is one token
    return {"reads": len(log.reads), "tokens": tokens, "reads_per_token": len(log.reads) / tokens,
            "read_shapes": sorted({str(e.shape) for e in log.reads}),
            "read_lines": dict(Counter(e.where for e in log.reads))}


if __name__ == "__main__":
    stages = sys.argv[1:] or ["clip", "caption", "image", "generate"]
    result = {s: (generation() if s == "generate" else per_step(s)) for s in stages}
    print(json.dumps(result, indent=1))
