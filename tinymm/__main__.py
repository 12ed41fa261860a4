"""The command line: ``python -m tinymm COMMAND`` (or ``tinymm COMMAND`` once installed).

    train       train the CLIP dual encoder (and the decoders) into runs/NAME
    retrieve    text -> the best images of a gallery, or --image FILE -> the best captions
    classify    zero-shot: probabilities of free-text labels for some image files
                (both say what loading did to each file, and warn when one looks unlike the
                training scenes: a softmax gives confident numbers for a picture of anything)
    caption     image files -> captions, with the run's caption decoder
    generate    captions -> images (a PNG grid), with the run's prior and image decoder
    gradcheck   prove every hand-written backward against finite differences
    check       grade the coded exercises of lessons/exercises/ (check NAME: one of them)
"""
import argparse
import errno
import sys
import warnings
from pathlib import Path


def cmd_gradcheck(args):
    """Run every row of the op table; print one line per op; exit 1 if any fails."""
    from .gradcheck import gradcheck
    from .opspecs import OP_SPECS
    from . import backend

    specs = [s for s in OP_SPECS if not args.only or any(k in s.name for k in args.only)]
    if not specs:
        print(f"gradcheck: no op matches {args.only}", file=sys.stderr)
        return 2
    broken = _break_backward(args.break_op, args.scale) if args.break_op else None
    device = backend.check_device(args.device, "gradcheck")
    failures = 0
    width = max(len(s.name) for s in specs)
    print(f"{'op':<{width}}  {'input shapes':<28} {'max rel error':>13}  result   (float64, tolerance per op)")
    try:
        for spec in specs:
            report = gradcheck(spec.fn, spec.make_inputs(seed=args.seed, device=device),
                               eps=spec.eps, tol=spec.tol, name=spec.name, raise_on_failure=False)
            shapes = " ".join("x".join(map(str, s)) or "()" for s in spec.shapes())
            status = "ok" if report.passed else "FAIL"
            failures += not report.passed
            print(f"{spec.name:<{width}}  {shapes:<28} {report.max_rel_error:>13.2e}  {status}")
    finally:
        if broken:
            broken()
    print(f"\n{len(specs) - failures} passed, {failures} failed")
    return 1 if failures else 0


def cmd_check(args):
    """The coded exercises: list them, or run one (see tinymm/exercises/cli.py)."""
    from .exercises.cli import main as check_main
    return check_main(args.exercise, answer=args.answer, folder=args.dir)


def _break_backward(op_name, scale):
    """Scale one Function's backward (a deliberate bug) to watch gradcheck catch it."""
    from .autograd import Function
    from .opspecs import OP_SPECS  # noqa: F401  (imports every op module, so all Functions exist)

    def all_functions(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from all_functions(sub)

    matches = [f for f in all_functions(Function) if f.__name__.lower() == op_name.lower()]
    if not matches:
        names = sorted({f.__name__ for f in all_functions(Function)})
        raise SystemExit(f"gradcheck --break: no Function named {op_name!r}; choose from {', '.join(names)}")
    cls = matches[0]
    original = cls.backward

    def wrong_backward(self, g):
        grads = original(self, g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(None if x is None else x * scale for x in grads)

    cls.backward = wrong_backward
    print(f"(deliberately scaling {cls.__name__}.backward by {scale})")
    return lambda: setattr(cls, "backward", original)


def cmd_train(args):
    from dataclasses import fields
    from .config import QUICK, TrainConfig, default_run_dir
    from .train import TrainingDiverged, continued_config, run_training
    from .train.run_folder import check_resumable, check_run_dir, check_run_name
    settings = dict(QUICK) if args.quick else {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            settings[f.name] = tuple(value) if isinstance(value, list) else value
    if args.quick and args.name is None:
        settings["name"] = "quick"
    if "stages" in settings:
        settings["stages"] = tuple(settings["stages"][0].split(",")) if len(settings["stages"]) == 1 \
            else settings["stages"]
    if args.name is not None:
        check_run_name(args.name)   # runs/NAME stays inside runs/
    run_dir = Path(args.run_dir or default_run_dir(settings.get("name", TrainConfig.name)))
    args.writing = run_dir   # named by main() if the disk is full or read-only
    check_run_dir(run_dir)
    if args.resume:
        check_resumable(run_dir)   # before reading settings from a run that is not there
    continuing = args.resume or "clip" not in settings.get("stages", ("clip",))
    warmup = settings.get("warmup_steps", TrainConfig.warmup_steps)
    if not continuing and "steps" in settings and warmup > settings["steps"] >= 1:
        settings["warmup_steps"] = settings["steps"] // 10   # --steps shorter than the usual warm-up
    if args.device is not None or not (continuing and (Path(run_dir) / "config.json").exists()):
        settings["device"] = backend_device(args.device)  # a continued run keeps its device unless asked
    if continuing:
        # more work on an existing run: what is not on the command line comes from its config.json
        config = continued_config(run_dir, settings)
        print(f"continuing on {config.device}" + ("" if args.device else " (the run's device; --device changes it)"))
    else:
        config = TrainConfig(**settings)
    try:
        run_training(config, run_dir, resume=args.resume)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        saved = [p for p in ("clip.npz", "judge/clip.npz", "caption.npz", "image.npz") if (run_dir / p).exists()]
        if saved:
            print(f"\ninterrupted: the checkpoints in {run_dir} ({', '.join(saved)}) are intact; continue with "
                  f"python -m tinymm train --run-dir {run_dir} --resume", file=sys.stderr)
        else:
            print(f"\ninterrupted before the first checkpoint: {run_dir} holds nothing to continue from; "
                  f"run the same command again to start over", file=sys.stderr)
        return 130
    return 0


def backend_device(name):
    from . import backend
    return backend.check_device(name, "--device")


def _figure_path(out, default):
    """The file a figure really goes to, checked before any work: --out may be a folder (the
    default name goes inside it) or a name without an extension (".png" is added, as
    matplotlib would, and the name printed is that one)."""
    from matplotlib.backend_bases import FigureCanvasBase
    from .errors import UserError
    path = Path(out or default)
    if path.is_dir():
        path = path / default
    elif not path.suffix:
        path = path.with_name(path.name + ".png")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower()[1:] not in kinds:
        raise UserError(f"--out: cannot write a figure as {path.suffix!r} ({path}); end the name in .png "
                        f"(or one of {', '.join('.' + k for k in sorted(kinds))})")
    if not path.parent.is_dir():
        raise UserError(f"--out: the folder {path.parent} does not exist; create it first")
    return path


def _save_figure(fig, path):
    """Save a figure; a write the disk refused leaves no truncated file behind."""
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError:
        path.unlink(missing_ok=True)
        raise


def _load_images(paths, report=False):
    """Image files as one (N, 3, 32, 32) array; with report=True, first one line per file saying
    what loading did to it (resized from 640x480, alpha dropped, ...)."""
    import numpy as np
    from .data import load_image
    images = []
    for path in paths:
        image, notes = load_image(path, return_notes=True)
        if report:
            print(f"{path}: {', '.join(notes) if notes else 'used as it is (32x32 RGB)'}")
        images.append(image)
    return np.stack(images)


def _say_if_unlike_training(run, paths, images, answers):
    """A line for each file that looks unlike the training scenes (Run.scene_check)."""
    check = run.scene_check(images)
    for path, reason in zip(paths, check.reasons):
        if reason:
            print(f"warning: {path} looks unlike the training scenes: {reason}; "
                  f"the {answers} below are not to be trusted")


def cmd_retrieve(args):
    import warnings
    from . import plots
    from .run import UnlikeTrainingWarning, _check_count, load_run
    _check_count(args.k, "retrieve", "-k")  # before the run is loaded, not after
    out = args.writing = _figure_path(args.out, "retrieval.png")
    run = load_run(args.run, device=args.device)
    if args.image:
        image = _load_images([args.image], report=True)
        _say_if_unlike_training(run, [args.image], image, "captions")
        with warnings.catch_warnings():  # said above, in words that name the file
            warnings.simplefilter("ignore", UnlikeTrainingWarning)
            results = run.retrieve(image[0], k=args.k)
        print(f"captions closest to {args.image}:")
        for caption, score in results:
            print(f"  {score:6.3f}  {caption}")
        return 0
    if not args.query:
        print("retrieve: give a caption to search for, or --image FILE", file=sys.stderr)
        return 2
    query = " ".join(args.query)
    results = run.retrieve(query, k=args.k)
    gallery = run.gallery
    print(f"images closest to {query!r} (gallery: {len(gallery)} test scenes):")
    for index, score in results:
        print(f"  {score:6.3f}  #{index:<5d} {gallery.captions[index]}")
    fig = plots.retrieval_gallery([query], [[gallery.images[i] for i, _ in results]],
                                  [[s for _, s in results]],
                                  [[gallery.captions[i] == query for i, _ in results]])
    _save_figure(fig, out)
    print(f"saved {out}")
    return 0


def cmd_classify(args):
    import warnings
    from .run import UnlikeTrainingWarning, load_run
    run = load_run(args.run, device=args.device)
    images = _load_images(args.images, report=True)
    _say_if_unlike_training(run, args.images, images, "probabilities")
    with warnings.catch_warnings():  # said above, in words that name the file
        warnings.simplefilter("ignore", UnlikeTrainingWarning)
        probs = run.classify(images, args.labels)
    width = max(len(label) for label in args.labels)
    for path, row in zip(args.images, probs):
        print(path)
        for label, p in sorted(zip(args.labels, row), key=lambda lp: -lp[1]):
            print(f"  {label:<{width}}  {p:6.3f}")
    return 0


def cmd_caption(args):
    from .run import load_run
    run = load_run(args.run, device=args.device)
    captions = run.caption(_load_images(args.images), top_k=args.top_k, rng=args.seed)
    for path, caption in zip(args.images, captions):
        print(f"{path}: {caption}")
    return 0


def cmd_generate(args):
    from .run import load_run
    from .plots import image_grid_figure
    out = args.writing = _figure_path(args.out, "generated.png")   # checked before any work
    run = load_run(args.run, device=args.device)
    images = run.generate(args.captions)
    fig = image_grid_figure(images, args.captions, n_cols=min(len(images), 6), scale=1.8)
    _save_figure(fig, out)
    print(f"saved {len(images)} generated image(s) to {out}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="tinymm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the dual encoder (and decoders) into runs/NAME")
    p.add_argument("--name", help="run name: the folder runs/NAME (default: default)")
    p.add_argument("--run-dir", help="the run folder (default: runs/NAME)")
    p.add_argument("--quick", action="store_true", help="a sub-minute demo run (runs/quick)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="cpu or cuda (default: TINYMM_DEVICE or cpu)")
    p.add_argument("--stages", nargs="+", help="which stages to train, e.g. clip,caption,image")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--embed-dim", dest="embed_dim", type=int)
    p.add_argument("--text-encoder", dest="text_encoder", choices=["default", "bow"])
    p.add_argument("--loss", choices=["clip", "mse"])
    p.add_argument("--augment", help="how the CLIP's training pictures vary while their captions stay true: "
                                     "all (default), none, or some of size,shape,edge,colour,light")
    p.add_argument("--image-encoder", dest="image_encoder", choices=["split", "plain"],
                   help="split (default: shape from the brightest channel, colour apart) or plain (RGB convolutions)")
    p.add_argument("--eval-size", dest="eval_size", type=int)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("retrieve", help="text -> images, or --image FILE -> captions",
                       description="Text -> the closest test scenes (a PNG gallery), or --image FILE -> the "
                                   "closest captions of the grammar. An image file is turned upright, made RGB "
                                   "(alpha laid on black), cut to its centre square and resized to 32x32; a line "
                                   "says which of these it needed, and a warning follows when the picture looks "
                                   "unlike the training scenes (see classify --help).")
    p.add_argument("query", nargs="*", help='a caption, e.g. "a small red circle"')
    p.add_argument("--run", required=True, help="a run folder made by train")
    p.add_argument("--image", help="an image file to find captions for")
    p.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    p.add_argument("--out", help="where to save the gallery PNG: a file, or a folder for retrieval.png in it "
                                 "(default retrieval.png)")
    p.add_argument("--device", default=None)
    p.set_defaults(handler=cmd_retrieve)

    p = sub.add_parser("classify", help="zero-shot probabilities of labels for image files",
                       description="Zero-shot classification: for each image file, a softmax over the labels of "
                                   "exp(s) * cos(image, label). Each file is turned upright, made RGB (alpha laid on "
                                   "black), cut to its centre square and resized to 32x32, and a line says which of "
                                   "these it needed. A softmax always sums to 1, so a picture of anything gets "
                                   "confident-looking numbers: a warning names each file whose best caption cosine "
                                   "is lower, or whose image features are longer, than 199 in 200 fresh test scenes "
                                   "give (measured from the run when the command starts).")
    p.add_argument("images", nargs="+", help="image files (PNG/JPEG)")
    p.add_argument("--run", required=True, help="a run folder made by train")
    p.add_argument("--labels", nargs="+", required=True, help='free-text labels, e.g. "red circle" "blue square"')
    p.add_argument("--device", default=None)
    p.set_defaults(handler=cmd_classify)

    p = sub.add_parser("caption", help="image files -> captions (the caption decoder)")
    p.add_argument("images", nargs="+", help="image files (PNG/JPEG)")
    p.add_argument("--run", required=True, help="a run folder made by train")
    p.add_argument("--top-k", dest="top_k", type=int, default=None,
                   help="sample among the k most likely words (default: greedy decoding)")
    p.add_argument("--seed", type=int, default=None, help="seed for --top-k sampling")
    p.add_argument("--device", default=None)
    p.set_defaults(handler=cmd_caption)

    p = sub.add_parser("generate", help="captions -> images (the prior and image decoder)")
    p.add_argument("captions", nargs="+", help='captions, e.g. "a large blue square"')
    p.add_argument("--run", required=True, help="a run folder made by train")
    p.add_argument("--out", help="where to save the grid PNG: a file, or a folder for generated.png in it "
                                 "(default generated.png)")
    p.add_argument("--device", default=None)
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("gradcheck", help="check every op's backward against finite differences")
    p.add_argument("--only", nargs="*", help="only ops whose name contains one of these words")
    p.add_argument("--device", default=None, help="cpu or cuda (default: TINYMM_DEVICE or cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--break", dest="break_op", metavar="FUNCTION",
                   help="scale this Function's backward (e.g. Mul) to see the check fail")
    p.add_argument("--scale", type=float, default=1.01, help="factor used by --break (default 1.01)")
    p.set_defaults(handler=cmd_gradcheck)

    p = sub.add_parser("check", help="grade your coded exercises (lessons/exercises/)")
    p.add_argument("exercise", nargs="?", help="an exercise name (e.g. linear) or a lesson number (04); "
                                               "none: list every exercise with its status")
    p.add_argument("--answer", action="store_true", help="also show tinymm's own code for it")
    p.add_argument("--dir", help="the folder of your stubs (default: lessons/exercises of this clone)")
    p.set_defaults(handler=cmd_check)
    return parser


# What the machine refuses, in words, with what to do (see main).
_REFUSALS = {errno.ENOSPC: ("no space left on the disk", "free some space or write elsewhere"),
             errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
             errno.EROFS: ("the file system is read-only", "write to another folder"),
             errno.EACCES: ("permission denied", "write to a folder that is yours, or change its permissions"),
             errno.EPERM: ("operation not permitted", "write to a folder that is yours, or change its permissions")}
# What to ask for less of when memory runs out, per command.
_LESS = {"train": "a smaller --batch-size or --eval-size (or --embed-dim)",
         "retrieve": "fewer or smaller images", "classify": "fewer images at once",
         "caption": "fewer images at once", "generate": "fewer captions at once"}


def _os_error_line(err, command, writing):
    """One line for an OSError the user can act on (a missing file, a full or read-only disk,
    a permission); None for anything else, which keeps its traceback."""
    path = err.filename or writing
    if err.errno in _REFUSALS and path is not None:
        what, fix = _REFUSALS[err.errno]
        resumable = command == "train" and err.errno in (errno.ENOSPC, errno.EDQUOT)
        more = "; the training continues from its last checkpoint with --resume" if resumable else ""
        return f"{command}: {what}: {path}; {fix}{more}"
    missing = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
    if err.filename is not None or isinstance(err, missing):
        return str(err)
    return None


def _end_progress_bars():
    """A progress bar cut short by an error still holds the line: end it, so that the error
    message starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line: one line, without the source line Python adds."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .errors import UserError
    try:
        with warnings.catch_warnings():   # restores Python's own format when main returns
            warnings.showwarning = _warning_line
            return args.handler(args)
    except UserError as err:
        # a mistake the user can fix (an option, a file, a setting): one clear line, not a traceback.
        # Anything else is a bug in tinymm and keeps its traceback.
        _end_progress_bars()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        # the machine cannot hold what was asked for: say what to ask less of
        detail = f" ({err})" if str(err) else ""
        _end_progress_bars()
        print(f"error: {args.command}: out of memory{detail}; ask for less: "
              f"{_LESS.get(args.command, 'smaller inputs')}", file=sys.stderr)
        return 2
    except OSError as err:
        # a missing file, a full or read-only disk, a permission: one line naming the path
        line = _os_error_line(err, args.command, getattr(args, "writing", None))
        if line is None:
            raise
        _end_progress_bars()
        print(f"error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
