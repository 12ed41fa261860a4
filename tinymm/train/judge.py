"""The judge: a second CLIP that grades the decoders' round trips, never trained on by them.

It is the same kind of dual encoder as the run's, trained by the same CLIP stage from
another seed (other weights, other batches) and with fewer steps (``judge_config``). It
lives in run_dir/judge/ and is trained once, then reused.
"""
from pathlib import Path

from ..config import judge_config
from ..data import shapes_tokenizer
from ..models.build import build_dual_encoder
from ..serialization import load
from .bookkeeping import log_line
from .clip import train_clip


def train_judge(config, run_dir, resume=False):
    """The judge of the run in ``run_dir``; -> (judge model, seconds spent training it now)."""
    judge_dir = Path(run_dir) / "judge"
    cfg = judge_config(config)
    path = judge_dir / "clip.npz"
    state = load(path) if path.exists() else None
    if state is not None and int(state["step"]) >= cfg.steps:
        judge = build_dual_encoder(cfg, shapes_tokenizer()).to(config.device)
        judge.load_state_dict(state["model"])
        judge.eval()
        return judge, 0.0
    log_line(Path(run_dir) / "train.log", f"judge: a second CLIP (seed {cfg.seed}, {cfg.steps} steps) that "
                                          f"only grades the decoders' round trips")
    judge, history = train_clip(cfg, judge_dir, resume=True, label="judge")
    return judge, history.get("seconds", 0.0)
