"""Time one full training step (forward, backward, Adam) of a small dual encoder: tinymm vs PyTorch.

    python benchmarks/bench_step.py                      # CPU, batches 64 and 256, 2 threads
    python benchmarks/bench_step.py --batches 64 --repeats 50 --threads 1
    python benchmarks/bench_step.py --device cuda        # GPU, batches 256, 1024 and 4096
    python benchmarks/bench_step.py --model course       # the course's DualEncoder (tinymm.models)

The model is the one of PERF-NOTES (see ``benchlib.BenchDualEncoder``). PyTorch gets the
same shapes, the same initial weights (loaded by name through ``load_state_dict``), the same
data and as many threads as NumPy's BLAS. The two take turns in blocks of steps, over three
rounds (see ``benchlib.in_blocks`` for why not step by step), so a slow spell of the machine
hits both; medians are printed with the ratio tinymm / PyTorch.

Without PyTorch the reference is the same model written on plain NumPy arrays with naive
loops over output pixels (``benchlib.NaiveStep``), and the table says so.

Peak memory on CPU is the peak resident set size of a fresh process per framework (each
imports only its own library, builds the model and runs a few steps). On the GPU it is the
memory each framework's allocator holds (CuPy's pool, PyTorch's caching allocator).
Then a per-op breakdown shows which Function's forward or backward takes tinymm's time.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="batch sizes (default: 64 256 on cpu, 256 1024 4096 on cuda)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads for NumPy = torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=30, help="timed steps per framework and batch")
    p.add_argument("--model", default="bench", choices=("bench", "course"),
                   help="bench: the PERF-NOTES model (compared with PyTorch); course: tinymm.models.DualEncoder")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall: wall-clock time (default); cpu: this process's CPU time, steadier on a "
                        "busy machine, fair only with --threads 1")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-op breakdown")
    p.add_argument("--naive", action="store_true", help="compare with the naive NumPy loops even if torch exists")
    # internal: the memory-measuring child process
    p.add_argument("--rss-child", choices=("tinymm", "torch", "naive"), help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.batches is None:
        args.batches = [64, 256] if args.device == "cpu" else [256, 1024, 4096]
    return args


ARGS = parse_args()
if ARGS.device == "cpu":
    # the BLAS reads its thread count when NumPy is imported, so this comes first
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = str(ARGS.threads)

import benchlib as bl  # noqa: E402  (imports numpy and tinymm)
from benchlib import np, tm  # noqa: E402


def initial_state(torch):
    """The starting weights: PyTorch's initialisation when torch exists, else tinymm's."""
    if torch is not None:
        torch.manual_seed(0)
        return {k: v.detach().numpy().copy() for k, v in bl.torch_model(torch).state_dict().items()}
    tm.manual_seed(0)
    return bl.tinymm_state(bl.BenchDualEncoder())


# ----------------------------------------------------------------------------------------------
# The course's own model (tinymm.models.DualEncoder), tinymm only


def course_runner(batch, device):
    """A step of the course's DualEncoder on a batch of the shapes dataset (CLIP loss, Adam)."""
    from tinymm.data import ShapesCaptions
    from tinymm.models import DualEncoder

    ds = ShapesCaptions(split="train", n=batch, seed=0)
    vocab = ds.tokenizer.vocab_size

    class CourseModel(DualEncoder):
        def __init__(self):
            super().__init__(vocab_size=vocab)

        def forward(self, images, tokens):  # as in tinymm.train: embeddings, then the CLIP loss
            return tm.functional.clip_loss(self.encode_image(images), self.encode_text(tokens),
                                           self.logit_scale)

    tm.manual_seed(0)
    state = CourseModel().state_dict()
    return bl.TinymmStep(state, batch, device, model_cls=CourseModel, data=(ds.images, ds.tokens))


# ----------------------------------------------------------------------------------------------
# Memory child


def rss_child(args):
    """Build one framework's step, run a few steps, print 'RSS <after imports> <peak>' in MiB."""
    torch = bl.try_import_torch(args.threads) if args.rss_child == "torch" else None
    base = bl.peak_rss_mib()
    state = initial_state(None)
    if args.rss_child == "torch":
        runner = bl.TorchStep(torch, state, args.batch)
    elif args.rss_child == "naive":
        runner = bl.NaiveStep(state, args.batch)
    elif args.model == "course":
        runner = course_runner(args.batch, "cpu")
    else:
        runner = bl.TinymmStep(state, args.batch)
    for _ in range(args.steps):
        runner.run()
    print(f"RSS {base:.1f} {bl.peak_rss_mib():.1f}")


# ----------------------------------------------------------------------------------------------
# Device memory on the GPU


def gpu_memory_mib(framework, torch):
    if framework == "tinymm":
        import cupy
        return cupy.get_default_memory_pool().total_bytes() / 2 ** 20
    return torch.cuda.max_memory_reserved() / 2 ** 20


# ----------------------------------------------------------------------------------------------


def breakdown_text(runner, steps):
    """Which Function's forward/backward takes tinymm's time, per step, over ``steps`` steps."""
    with bl.OpTimer(runner.sync) as timer:
        phases = [runner.run() for _ in range(steps)]
    step_ms = 1000 * sum(sum(p) for p in phases) / steps
    opt_ms = 1000 * sum(p[2] for p in phases) / steps
    rows = {}
    for (name, method), seconds in timer.totals.items():
        rows.setdefault(name, {"forward": 0.0, "backward": 0.0})[method] = 1000 * seconds / steps
    ops_ms = sum(sum(r.values()) for r in rows.values())
    lines = [f"  per-op breakdown (ms per step, mean of {steps} steps, clocks synchronised after each op)",
             f"  {'Function':<22}{'forward':>9}{'backward':>10}{'total':>9}{'share':>8}"]
    for name, r in sorted(rows.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(r.values())
        if total < 0.005 * step_ms:
            continue
        lines.append(f"  {name:<22}{r['forward']:9.2f}{r['backward']:10.2f}{total:9.2f}"
                     f"{100 * total / step_ms:7.0f}%")
    rest = step_ms - ops_ms - opt_ms
    lines.append(f"  {'Adam step':<22}{'':9}{'':10}{opt_ms:9.2f}{100 * opt_ms / step_ms:7.0f}%")
    lines.append(f"  {'graph walk, Python':<22}{'':9}{'':10}{rest:9.2f}{100 * rest / step_ms:7.0f}%")
    lines.append(f"  {'whole step':<22}{'':9}{'':10}{step_ms:9.2f}")
    return "\n".join(lines)


def free_gpu_memory(torch):
    """Empty both allocators' caches and peak counters before a new batch size."""
    import gc

    import cupy
    gc.collect()
    cupy.get_default_memory_pool().free_all_blocks()
    if torch is not None:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(args):
    if args.rss_child:
        return rss_child(args)
    torch = None if args.naive else bl.try_import_torch(args.threads)
    if args.clock == "cpu":
        if args.device == "cuda":
            print("bench_step: --clock cpu measures the CPU only; use the wall clock on a GPU.")
            return 1
        bl.use_cpu_clock()
    if args.device == "cuda":
        if not tm.cuda_available():
            print("bench_step: --device cuda needs CuPy and an NVIDIA GPU; none found here.")
            return 1
        if torch is None or not torch.cuda.is_available():
            print("bench_step: PyTorch with CUDA is not available; timing tinymm on the GPU alone.")
            torch = None
    state = initial_state(torch)
    if args.model == "course":
        torch = None  # the course model has no PyTorch twin here: tinymm alone
        reference = "none (the course's DualEncoder is timed alone)"
    elif torch is not None:
        reference = "PyTorch " + torch.__version__
    elif args.device == "cpu":
        reference = ("naive NumPy loops (PyTorch is not installed, or --naive: the same model on plain "
                     "arrays, with Python loops over output pixels)")
    else:
        reference = "none"
    print(f"bench_step: one training step (forward + backward + Adam), device {args.device}, "
          f"model {args.model}")
    print(f"machine: {bl.machine_line(args.threads)}")
    print(f"reference: {reference}; clock: {args.clock}\n")
    header = (f"{'batch':>6} {'framework':<12}{'forward':>9}{'backward':>10}{'Adam':>8}{'step ms':>9}"
              f"{'ratio':>7}{'img/s':>9}{'peak MiB':>10}")
    print(header)
    print("-" * len(header))
    breakdowns = []
    for batch in args.batches:
        if args.device == "cuda":
            free_gpu_memory(torch)
        if args.model == "course":
            runners = [course_runner(batch, args.device)]
        else:
            runners = [bl.TinymmStep(state, batch, args.device)]
            if torch is not None:
                runners.append(bl.TorchStep(torch, state, batch, args.device))
            elif args.device == "cpu":
                runners.append(bl.NaiveStep(state, batch))
        # the first step starts from identical weights and data: the losses must agree
        losses = []
        for r in runners:
            r.run()
            losses.append(r.loss_value())
        repeats = args.repeats if not isinstance(runners[-1], bl.NaiveStep) else max(3, args.repeats // 10)
        samples = bl.in_blocks([r.run for r in runners], repeats)
        medians = [bl.phase_medians(s) for s in samples]
        memory = []
        for r in runners:
            if args.no_memory:
                memory.append(None)
            elif args.device == "cuda":
                memory.append(gpu_memory_mib("tinymm" if isinstance(r, bl.TinymmStep) else "torch", torch))
            else:
                kind = {"tinymm": "tinymm", "PyTorch": "torch", "naive NumPy": "naive"}[r.name]
                extra = ("--model", args.model)
                memory.append(bl.rss_in_child(os.path.abspath(__file__), kind, batch, args.threads,
                                              extra=extra)[1])
        for i, (r, m) in enumerate(zip(runners, medians)):
            fwd, bwd, opt, step = m
            ratio = f"{step / medians[1][3]:6.2f}x" if i == 0 and len(runners) > 1 else ""
            mem = f"{memory[i]:10.0f}" if memory[i] is not None else f"{'-':>10}"
            if args.device == "cuda":  # a GPU step is timed whole (see TinymmStep.phase_sync)
                phases = f"{'-':>9}{'-':>10}{'-':>8}"
            elif r.name == "naive NumPy":
                phases = f"{fwd:9.2f}{'(in fwd)':>10}{opt:8.2f}"
            else:
                phases = f"{fwd:9.2f}{bwd:10.2f}{opt:8.2f}"
            print(f"{batch:>6} {r.name:<12}{phases}{step:9.2f}{ratio:>7}{1000 * batch / step:9.0f}{mem}")
        if len(losses) > 1:
            print(f"{'':>6} first-step losses {losses[0]:.6f} (tinymm) and {losses[1]:.6f} "
                  f"({runners[1].name}): difference {abs(losses[0] - losses[1]):.1e}")
        if len(runners) > 1 and memory[0] is not None:
            print(f"{'':>6} peak memory ratio tinymm / {runners[1].name}: {memory[0] / memory[1]:.2f}")
        if not args.no_breakdown:  # now, while this batch's model is still alive
            breakdowns.append((batch, breakdown_text(runners[0], max(5, args.repeats // 3))))
        del runners
    if args.device == "cpu" and not args.no_memory:
        print("\npeak MiB: peak resident set size of a fresh process per framework (imports, model, "
              "a few steps).")
    elif args.device == "cuda":
        print("\npeak MiB: device memory held by the allocator (CuPy's pool; PyTorch's max reserved).")
    for batch, text in breakdowns:
        print(f"\nbatch {batch}:\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
