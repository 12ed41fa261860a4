"""Train a tiny run on one device and run every command of the CLI on it; print what each printed.

    PYTHONPATH=tests/strict_device python tests/strict_device/cli_outputs.py cuda WORK_DIR

tests/test_strict_device.py runs it once with "cpu" and once with "cuda" (the stand-in) and
checks that both give the same numbers, to float32 rounding. The run is trained with the
library's ``run_training`` (what ``python -m tinymm train`` calls) with every stage made tiny;
then retrieve (both ways), classify, caption, generate and gradcheck go through
``tinymm.__main__.main`` exactly as on the command line, on that device. The generated images
are also saved as ``generated.npy`` in WORK_DIR, to compare their pixels.
"""
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

from tinymm.__main__ import main
from PIL import Image

from tinymm.data import ShapesCaptions
from tinymm.run import load_run
from tinymm.train import TrainConfig, run_training

TINY = dict(steps=12, batch_size=16, embed_dim=16, channels=(4, 8), image_hidden=16, text_width=16,
            caption_steps=8, caption_batch_size=16, caption_hidden=32, image_steps=6, image_batch_size=8,
            image_channels=(8, 8, 4), prior_hidden=32, judge_steps=8, judge_batch_size=16,
            log_every=4, checkpoint_every=6, eval_size=40, warmup_steps=2)
CAPTIONS = ["a large blue square", "a small red circle left of a large green cross"]


def run_command(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}


if __name__ == "__main__":
    device, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    with contextlib.redirect_stdout(sys.stderr):  # the training log is not an output to compare
        run_training(TrainConfig(device=device, **TINY), run_dir)
    scenes = ShapesCaptions("test", n=2, seed=5)
    images = []
    for i, image in enumerate(scenes.images):
        images.append(str(work / f"scene{i}.png"))
        Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(images[-1])
    dev = ["--run", str(run_dir), "--device", device]
    outputs = {
        "retrieve_text": run_command(["retrieve", "a", "small", "red", "circle", "-k", "3",
                                      "--out", str(work / "retrieval.png"), *dev]),
        "retrieve_image": run_command(["retrieve", "--image", images[0], "-k", "3", *dev]),
        "classify": run_command(["classify", *images, "--labels", "red circle", "blue square", "green cross",
                                 *dev]),
        "caption": run_command(["caption", *images, *dev]),
        "generate": run_command(["generate", *CAPTIONS, "--out", str(work / "generated.png"), *dev]),
        "gradcheck": run_command(["gradcheck", "--device", device]),
    }
    with contextlib.redirect_stdout(sys.stderr):
        np.save(work / "generated.npy", load_run(run_dir, device=device).generate(CAPTIONS))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    print(json.dumps({"outputs": outputs, "metrics": metrics, "device_saved": config["device"]}))
