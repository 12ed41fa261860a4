"""The whole run, stage after stage: ``python -m tinymm train`` calls ``run_training``.

    python -m tinymm train                # the default run: runs/default/
    python -m tinymm train --quick        # a sub-minute demo

A run folder holds everything needed to use or continue the run:

    config.json      the settings, so the same model can be rebuilt
    clip.npz         the dual encoder: weights, optimiser state, step and loss history
                     (written atomically: a crash or Ctrl-C never leaves half a file)
    judge/, caption.npz, image.npz   the decoder stages (see decoders.py)
    metrics.json     the evaluation numbers, per split
    train.log        what was printed
    *.png            loss curve, similarity heatmap, retrieval gallery, zero-shot confusion
                     matrix, PCA of both modalities, and the decoders' figures

The arrows run one way: config (``tinymm.config``) -> bookkeeping -> the stages (clip.py,
decoders.py, judge.py) -> this pipeline. Nothing below imports it.
"""
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .. import backend, plots
from ..autograd import no_grad
from ..config import STRUCTURAL, TrainConfig, default_run_dir, evaluation_sets, read_config
from ..data import shapes_tokenizer
from ..errors import UserError
from ..metrics import format_metrics_table
from ..models.build import encoders_of, load_decoders, load_dual_encoder
from ..run import Run, load_run
from ..serialization import load
from .bookkeeping import checkpoint_step, log_line, write_json
from .clip import evaluate_dual_encoder, train_clip
from .decoders import evaluate_caption_decoder, evaluate_image_decoder, one_object_generation, \
    train_caption_decoder, train_image_decoder
from .judge import train_judge
from .run_folder import check_resumable, check_run_dir, check_run_name, remove_stale_temporaries, run_lock


def continued_config(run_dir, settings):
    """The config for more work on the run in ``run_dir``: its saved settings, with
    ``settings`` (what the command line gave explicitly) on top.

    This is what ``train --resume`` and ``train --stages caption`` (on a trained folder) use:
    a run trained with ``--steps 3000`` and resumed without repeating it still stops at
    3000, and training only a decoder does not overwrite the record of how the dual
    encoder was trained with the defaults. Without a saved config, ``settings`` on top of
    the defaults.
    """
    config_path = Path(run_dir) / "config.json"
    saved = read_config(config_path, "train").to_dict() if config_path.exists() else {}
    saved.pop("stages", None)  # the stages to run now are the command line's (or all)
    if "device" not in settings:  # the run keeps its device
        if saved.get("device") == "cuda" and not backend.cuda_available():
            raise UserError(f"train: the run in {run_dir} was trained on cuda, but CuPy or a GPU is "
                            f"missing here; continue it on the CPU with --device cpu")
    return TrainConfig.from_dict({**saved, **settings})


def prepare_run_dir(config, run_dir, resume):
    """Create the folder and config.json; on --resume check the saved config is compatible.

    config.json records every stage the folder holds: training only some stages adds them
    to the saved list instead of replacing it.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    record = config.to_dict()
    if config_path.exists():
        saved = read_config(config_path, "train")
        if "clip" not in config.stages:
            record["stages"] = [s for s in ("clip", "caption", "image")
                                if s in saved.stages or s in config.stages]
        if resume:
            changed = [k for k in STRUCTURAL if getattr(saved, k) != getattr(config, k)]
            if changed:
                raise UserError(f"train --resume: {run_dir} holds a model with different "
                                f"{', '.join(changed)}; use another --name or the same settings")
        elif "clip" in config.stages and (run_dir / "clip.npz").exists():
            raise UserError(f"train: {run_dir} already holds a trained run; pass --resume to continue "
                            f"it, or --name to start another")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(config_path, record)
    return run_dir


def run_training(config, run_dir=None, resume=False):
    """Train every stage of ``config`` into run_dir, evaluate, draw the figures; returns the metrics.

    Stages run in order: "clip" (the dual encoder), then "caption" and "image" (the decoders,
    which read the frozen dual encoder). A stage left out keeps what the folder already has.
    The folder is locked while this runs (``run_folder.run_lock``): a second training into it
    stops at once with a UserError instead of mixing two runs in one folder.
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(check_run_name(config.name))
    check_run_dir(run_dir)
    if resume:
        check_resumable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):   # one writer per run folder
        remove_stale_temporaries(run_dir)
        return _train_stages(config, prepare_run_dir(config, run_dir, resume), resume)


def _clip_already_evaluated(config, run_dir, resume, metrics):
    """On --resume: did an earlier session finish the clip stage and save its evaluation?

    Then the numbers in metrics.json (written right after that evaluation, with its figures)
    still hold, and evaluating the same weights again would only cost time.
    """
    return (resume and "clip_final_loss" in metrics["train"]
            and metrics.get("test", {}).get("n_scenes") == config.eval_size
            and checkpoint_step(run_dir / "clip.npz") >= config.steps)


def _decoders_already_evaluated(config, run_dir, resume, metrics):
    """On --resume: are the decoder stages asked for, and their judge, finished, and does
    metrics.json hold the evaluation of every decoder in the folder? Then nothing is left to do."""
    stages = {"caption": ("caption_steps", "caption_exact"), "image": ("image_steps", "image_mse")}
    if not resume or "decoder_eval_seconds" not in metrics["train"] \
            or metrics.get("test", {}).get("n_scenes") != config.eval_size \
            or checkpoint_step(run_dir / "judge" / "clip.npz") < config.judge_steps:
        return False
    for stage, (steps, key) in stages.items():
        if stage in config.stages and checkpoint_step(run_dir / f"{stage}.npz") < getattr(config, steps):
            return False
        if (run_dir / f"{stage}.npz").exists() and key not in metrics["test"]:
            return False
    return True


def _train_stages(config, run_dir, resume):
    """run_training's work, done while it holds the run folder's lock."""
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics.setdefault("train", {})
    evaluated = False   # did this session evaluate anything (else the log has the table already)
    if "clip" in config.stages:
        done_before = _clip_already_evaluated(config, run_dir, resume, metrics)
        model, history = train_clip(config, run_dir, resume=resume)
        if done_before:
            log_line(run_dir / "train.log", "clip: finished earlier; its evaluation and figures are kept")
        else:
            t0 = time.perf_counter()
            for split, values in evaluate_dual_encoder(model, config).items():
                metrics.setdefault(split, {}).update(values)
            plots.clip_figures(model, config, history, run_dir)
            metrics["train"].update({"clip_seconds": round(history.get("seconds", 0.0), 1),
                                     "clip_eval_seconds": round(time.perf_counter() - t0, 1),
                                     "clip_final_loss": history["loss"][-1] if history["loss"] else None,
                                     "logit_scale": history["logit_scale"][-1] if history["logit_scale"] else None})
            write_json(metrics_path, metrics)   # kept if a later stage is interrupted
            evaluated = True
    else:
        model = load_dual_encoder(config, run_dir)
    decoders = [s for s in ("caption", "image") if s in config.stages]
    if decoders and _decoders_already_evaluated(config, run_dir, resume, metrics):
        log_line(run_dir / "train.log", f"{', '.join(decoders)}: finished earlier; the decoders' evaluation "
                                        f"and figures are kept")
    elif decoders:
        train_decoder_stages(model, config, run_dir, resume, metrics)
        evaluated = True
    # the whole run's time, over every session: the sum of its pieces
    pieces = [v for k, v in metrics["train"].items() if k.endswith("_seconds") and k != "total_seconds"]
    metrics["train"]["total_seconds"] = round(sum(pieces), 1)
    write_json(metrics_path, metrics)
    table = format_metrics_table({k: v for k, v in metrics.items() if k != "train"})
    if evaluated:
        log_line(run_dir / "train.log", table)
    else:
        print(table)
    print(f"\nrun saved in {run_dir}  ({metrics['train']['total_seconds']:.0f} s of training and evaluation)")
    return metrics


def train_decoder_stages(model, config, run_dir, resume, metrics):
    """Train the decoder stages named in config.stages; add their numbers to ``metrics``.

    model     the trained dual encoder (frozen here)
    metrics   {"test": {...}, "compositional": {...}, "train": {...}}, updated in place
    """
    run_dir = Path(run_dir)
    stages = [s for s in ("caption", "image") if s in config.stages]
    train_stats = metrics.setdefault("train", {})
    judge, seconds = train_judge(config, run_dir, resume=resume)
    if not seconds and "judge_seconds" not in train_stats:   # trained by a session that was interrupted later
        seconds = load(run_dir / "judge" / "clip.npz", required={"history": dict})["history"].get("seconds", 0.0)
    if seconds:
        train_stats["judge_seconds"] = round(seconds, 1)
    caption_decoder, image_decoder = load_decoders(config, run_dir, quiet=True)
    caption_history = image_history = None
    if "caption" in stages:
        caption_decoder, caption_history = train_caption_decoder(model, config, run_dir, resume=resume)
        train_stats["caption_seconds"] = round(caption_history.get("seconds", 0.0), 1)
        train_stats["caption_final_loss"] = caption_history["loss"][-1] if caption_history["loss"] else None
    if "image" in stages:
        image_decoder, image_history = train_image_decoder(model, config, run_dir, resume=resume)
        train_stats["image_seconds"] = round(image_history.get("seconds", 0.0), 1)
        train_stats["image_final_mse"] = image_history["loss"][-1] if image_history["loss"] else None

    t0 = time.perf_counter()
    sets = evaluation_sets(config)
    predicted = gen48 = gap = None
    for split, dataset in sets.items():
        if split == "other_renderer":   # one-object pictures for the dual encoder's zero-shot only
            continue
        values = metrics.setdefault(split, {})
        if caption_decoder is not None:
            numbers, caps = evaluate_caption_decoder(caption_decoder, model, judge, dataset)
            values.update(numbers)
            if split == "test":
                predicted = caps
        if image_decoder is not None:
            numbers, _ = evaluate_image_decoder(image_decoder, model, judge, dataset)
            values.update(numbers)
    if image_decoder is not None:
        numbers, gen48 = one_object_generation(image_decoder, model, judge)
        metrics["test"].update(numbers)
        encode_image, encode_text = encoders_of(model)
        test = sets["test"]
        image_emb, text_emb = encode_image(test.images), encode_text(test.captions)
        with no_grad():
            prior_emb = backend.to_numpy(image_decoder.prior(text_emb).data)
        gap = {"text": np.sum(image_emb * text_emb, axis=1), "prior": np.sum(image_emb * prior_emb, axis=1)}
    plots.decoder_figures(run_dir, sets["test"], predicted, gen48, caption_history, image_history, gap)
    train_stats["decoder_eval_seconds"] = round(time.perf_counter() - t0, 1)
    return caption_decoder, image_decoder


def load_or_train(config, run_dir=None, also_try=()):
    """A Run with the dual encoder of ``config``, trained only when no folder has one already.

    run_dir   where a full run keeps the model, so later lessons reuse it (lessons 12-16 share
              runs/lesson12); None trains into a temporary folder that is thrown away.
    also_try  other run folders worth reusing, e.g. runs/default.
    A folder is reused when it holds a model with the same loss, text encoder, image encoder and
    augmentation, trained to the end of at least ``config.steps`` steps; otherwise
    ``train_clip`` trains one into run_dir.
    Like ``train``, it holds run_dir's lock while it looks and trains: two notebooks started
    together never write one folder at once (the second stops with a UserError naming the first).
    """
    if run_dir is None:
        t0 = time.time()
        with tempfile.TemporaryDirectory() as scratch:
            model, _ = train_clip(config, scratch)
        print(f"trained the dual encoder: {config.steps} steps in {time.time() - t0:.0f} s")
        return Run(scratch, config, model, shapes_tokenizer(), metrics={})
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        remove_stale_temporaries(run_dir)
        for folder in [run_dir, *map(Path, also_try)]:
            if not (folder / "clip.npz").exists():
                continue
            try:
                with warnings.catch_warnings():   # an unfinished run is not reused: said below
                    warnings.simplefilter("ignore")
                    run = load_run(folder, device=config.device)
            except (ValueError, KeyError) as err:
                print(f"cannot reuse {folder}: {err}")
                continue
            saved = run.config
            if "clip" in run.problems:
                print(f"cannot reuse {folder}: {run.problems['clip']}")
            elif saved.loss == config.loss and saved.text_encoder == config.text_encoder \
                    and (saved.image_encoder, saved.augment) == (config.image_encoder, config.augment) \
                    and saved.steps >= config.steps:
                print(f"reusing the dual encoder in {folder} ({saved.steps} steps)")
                return run
        t0 = time.time()
        train_clip(config, run_dir)
        write_json(run_dir / "config.json", config.to_dict())
        run = load_run(run_dir, device=config.device)
    print(f"trained the dual encoder: {config.steps} steps in {time.time() - t0:.0f} s")
    return run


def lesson12_run(also_try_default=False, **settings):
    """Lesson 12's dual encoder, for the lessons that build on it (13-16): -> (config, run).

    The config is lesson 12's (1,000 steps of 128 scenes, plain pictures and the plain image
    encoder: the model whose shortcuts lesson 12 shows; tiny in fast mode) with ``settings``
    on top (the lesson's own, e.g. ``caption_steps``). A full run reuses runs/lesson12 (and
    runs/default when ``also_try_default``) or trains it there; fast mode trains a tiny model
    in a folder that is thrown away.
    """
    config = TrainConfig(**{**dict(name="lesson12", device=backend.get_default_device(),
                                   steps=plots.pick(1000, 30), batch_size=plots.pick(128, 32),
                                   warmup_steps=plots.pick(100, 5), log_every=plots.pick(100, 10),
                                   checkpoint_every=10**9, augment="", image_encoder="plain"), **settings})
    if plots.fast_mode():
        return config, load_or_train(config, None)
    also_try = [plots.lesson_run_dir("default")] if also_try_default else []
    return config, load_or_train(config, plots.lesson_run_dir("lesson12"), also_try=also_try)
