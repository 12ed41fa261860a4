"""The command line: ``python -m tinymm COMMAND`` (or ``tinymm COMMAND`` once installed).

    gradcheck   prove every hand-written backward against finite differences
"""
import argparse
import sys


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
                               tol=spec.tol, name=spec.name, raise_on_failure=False)
            shapes = " ".join("x".join(map(str, s)) or "()" for s in spec.shapes())
            status = "ok" if report.passed else "FAIL"
            failures += not report.passed
            print(f"{spec.name:<{width}}  {shapes:<28} {report.max_rel_error:>13.2e}  {status}")
    finally:
        if broken:
            broken()
    print(f"\n{len(specs) - failures} passed, {failures} failed")
    return 1 if failures else 0


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


def build_parser():
    parser = argparse.ArgumentParser(prog="tinymm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gradcheck", help="check every op's backward against finite differences")
    p.add_argument("--only", nargs="*", help="only ops whose name contains one of these words")
    p.add_argument("--device", default=None, help="cpu or cuda (default: TINYMM_DEVICE or cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--break", dest="break_op", metavar="FUNCTION",
                   help="scale this Function's backward (e.g. Mul) to see the check fail")
    p.add_argument("--scale", type=float, default=1.01, help="factor used by --break (default 1.01)")
    p.set_defaults(run=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
