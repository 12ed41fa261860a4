"""The synchronisation budget: a training step reads nothing back from the GPU between logs.

Every device->host read makes the CPU wait until the GPU has run everything queued before it,
so a read inside each step stops Python from running ahead (lesson 17). DESIGN.md's rule: no
read inside a training step between logging intervals; host-supplied ids and targets are
checked on the host, before the copy. Generation may read back one small array per token.

The counts come from the strict CuPy stand-in (tests/strict_device), which records every
transfer with its line. The measurement runs the real training loops in a fresh Python with
the stand-in as ``cupy`` (tests/strict_device/count_readbacks.py), so this test runs in every
mode: on the CPU suite, on the stand-in, and next to a real GPU.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "strict_device"

pytestmark = pytest.mark.lesson17


@pytest.fixture(scope="module")
def counts():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(STANDIN), str(ROOT)]), MPLBACKEND="Agg")
    env.pop("TINYMM_DEVICE", None)
    out = subprocess.run([sys.executable, str(STANDIN / "count_readbacks.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("stage", ["clip", "caption", "image"])
def test_a_training_step_reads_nothing_back_between_logs(counts, stage):
    measured = counts[stage]
    assert measured["reads_per_step"] == 0, f"{stage} step reads back: {measured['read_lines']}"
    # the step still copies its host batch to the device (images, tokens, targets): a few copies
    assert 1 <= measured["copies_per_step"] <= 8
    # logging and the checkpoint do read (the loss, every weight): outside the steps only
    assert measured["reads_outside_the_steps"] > 0


def test_generation_reads_back_one_small_array_per_token(counts):
    measured = counts["generate"]
    assert measured["tokens"] >= 2 and measured["reads_per_token"] <= 1
    assert measured["read_shapes"] == ["(6, 1, 20)"]  # the logits of the next token: N x 1 x vocab
