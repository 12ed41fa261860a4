"""The checks of an op exercise: a learner writes an op's forward and/or backward on NumPy arrays.

``op_exercise(...)`` builds an ``Exercise`` whose check runs, for every input case:

1. the forward (when the learner writes one): it returns an array of the reference's shape and
   values, and leaves its inputs unchanged;
2. the backward: one gradient per differentiable input, none of them None, each with its
   input's shape, the inputs and the upstream gradient left unchanged;
3. each gradient against finite differences, with ``tinymm.gradcheck`` (float64 central
   differences of the reference forward, projected on a random upstream gradient; cs231n's
   relative error and the worst index), then against tinymm's own backward;
4. float32 inputs give float32 outputs and gradients (no silent float64);
5. no Python loop over the batch: the lines of the learner's file that run are counted
   (``sys.settrace``) at two batch sizes; a count that grows with the batch is a loop.

The first check that fails stops the run with a message that names the function, the input,
the numbers, and the lesson section to reread. A gradient check names every wrong gradient on
one line ("the gradients for x and W are wrong, b is right"), then the numbers of the first,
then what is recognisable: all zeros, one factor common to every wrong gradient (a forgotten
g, a mean where the sum belongs), the exercise's own diagnosis.
"""
import numpy as np

from ..autograd import Function, Tensor
from ..gradcheck import gradcheck
from .core import Exercise, Finding, call_learner, count_lines, worst, wrong_layout


def op_exercise(*, name, lesson, title, stub, reread, inputs, grads, cases, reference_forward,
                reference_backward, answer, forward=None, backward, batch=3, loop_sizes=(2, 5),
                grad_tol=1e-6, eps=1e-6, hints=None, diagnose=None, extra_checks=(), wrong=(), out_axes=None):
    """An Exercise for an op ``out = f(*inputs)`` with a hand-written backward.

    forward             the learner's forward slot name, or None when the stub is backward only
    backward            the learner's backward slot: backward(g, *inputs) -> the gradients of
                        ``grads`` in that order (a single array when there is one)
    inputs              names of the inputs, as the stub's signature spells them
    grads               the inputs that get a gradient (others are ids, labels, targets)
    cases               {case name: make(rng, n) -> tuple of arrays, float64 for the floats}
                        with n the batch size (the first axis); or {case name: (make, options)}
                        where options may set this case's gradcheck step, e.g. {"eps": 1e-9}
    reference_forward   (*arrays) -> out, with tinymm's Function
    reference_backward  (g, *arrays) -> tuple of gradients, with tinymm's Function
    loop_sizes          two batch sizes for the loop check, or None where a loop is allowed
    hints               {input name: words added when that gradient has the wrong shape}
    diagnose            diagnose(input name, mine, reference, arrays, mine_all, ref_all) -> extra
                        words or None, added when that gradient is the first wrong one (e.g.
                        "repeated ids"); mine and reference are the two backwards' results for
                        the same upstream g, mine_all and ref_all every gradient by input name
    out_axes            names of the output's axes, e.g. ("N", "C_out", "H_out", "W_out"), for the
                        message of a forward with the right values in the wrong layout
    extra_checks        more checks, run after the others: check(impl) -> a line for the list
                        of passed checks, or raise Finding (e.g. stability at large logits)
    """
    slots = ((forward,) if forward else ()) + (backward,)
    spec = dict(forward=forward, backward=backward, inputs=tuple(inputs), grads=tuple(grads),
                cases=dict(cases), ref_f=reference_forward, ref_b=reference_backward, batch=batch,
                loop_sizes=loop_sizes, grad_tol=grad_tol, eps=eps, hints=hints or {},
                diagnose=diagnose, extra=tuple(extra_checks), reread=reread, out_axes=out_axes)
    reference = {backward: reference_backward}
    if forward:
        reference[forward] = reference_forward
    return Exercise(name=name, lesson=lesson, title=title, stub=stub, slots=slots, reread=reread,
                    check=lambda impl: _check_op(spec, impl), reference=reference,
                    answer=tuple(answer), wrong=list(wrong))


# ----------------------------------------------------------------------------------------------


def _check_op(spec, impl):
    passed = []
    try:
        return _run_op_checks(spec, impl, passed)
    except Finding as finding:
        finding.passed = passed + finding.passed  # show what already worked, then what did not
        raise


def _run_op_checks(spec, impl, passed):
    many = len(spec["cases"]) > 1
    for case, make in spec["cases"].items():
        make, options = make if isinstance(make, tuple) else (make, {})
        where = f" (case: {case})" if many else ""
        arrays = make(np.random.default_rng(0), spec["batch"])
        if spec["forward"]:
            _check_forward(spec, impl, arrays, where)
            passed.append(f"forward equals tinymm's and leaves its inputs unchanged{where}")
        g = _upstream(spec, arrays)
        mine = _call_backward(spec, impl, g, arrays, where)
        passed.append(f"backward returns {len(spec['grads'])} gradient(s) with the inputs' shapes "
                      f"and leaves its inputs unchanged{where}")
        error = _gradcheck(spec, impl, arrays, where, options.get("eps", spec["eps"]))
        passed.append(f"gradients match finite differences: max relative error {error:.1e}{where}")
        _compare_with_reference(spec, impl, mine, _as_tuple(spec["ref_b"](g, *arrays)), arrays, where)
        passed.append(f"gradients equal tinymm's backward{where}")
        _check_float32(spec, impl, arrays, where)
        passed.append(f"float32 inputs give float32 results{where}")
    if spec["loop_sizes"]:
        _check_no_batch_loop(spec, impl)
        passed.append("no Python loop over the batch")
    for extra in spec["extra"]:
        passed.append(extra(impl))
    return passed


def _upstream(spec, arrays):
    """A random upstream gradient g of the output's shape (never all ones: see gradcheck.py)."""
    out = np.asarray(spec["ref_f"](*arrays))
    return np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def _copies(arrays):
    return tuple(np.array(a, copy=True) for a in arrays)


def _check_unchanged(slot, names, before, after, reread):
    for name, old, new in zip(names, before, after):
        if old.shape != np.shape(new) or not np.array_equal(old, new, equal_nan=old.dtype.kind == "f"):
            if old.shape == np.shape(new):
                index = tuple(int(i) for i in np.argwhere(old != new)[0])
                detail = f" (at index {index}: was {old[index]:.6g}, now {new[index]:.6g})"
            else:
                detail = f" (its shape changed from {old.shape} to {np.shape(new)})"
            raise Finding(
                f"{slot} changed its input {name} in place{detail}. Inputs belong to the caller "
                f"(the forward's saved arrays, the upstream gradient): compute the result into a new "
                f"array, e.g. `d = g * mask` rather than `g *= mask` or `x[...] = ...`. "
                f"Reread {reread}.")


def _as_array(slot, what, value, reread):
    if value is None:
        raise Finding(f"{slot} returned None for {what}: did you forget a `return`? Reread {reread}.")
    if not isinstance(value, (np.ndarray, np.generic, float, int)):
        raise Finding(f"{slot} returned a {type(value).__name__} for {what}; return a NumPy array.")
    return np.asarray(value)


def _check_forward(spec, impl, arrays, where):
    slot, reread = spec["forward"], spec["reread"]
    given = _copies(arrays)
    out = call_learner(slot, getattr(impl, slot), *given)
    _check_unchanged(slot, spec["inputs"], arrays, given, reread)
    out = _as_array(slot, "its output", out, reread)
    ref = np.asarray(spec["ref_f"](*arrays))
    if out.shape != ref.shape:
        raise Finding(f"{slot} returned shape {out.shape}, but the output should have shape "
                      f"{ref.shape}{where}. Reread {reread}.")
    if not np.allclose(out, ref, rtol=1e-7, atol=1e-10):
        error, index, a, b = worst(out, ref)
        at = f" at index {index}" if index else ""
        raise Finding(f"{slot} differs from tinymm's{where}: relative error {error:.1e}{at} "
                      f"(yours {a:.6g}, tinymm's {b:.6g}).{wrong_layout(out, ref, names=spec['out_axes'])} Reread {reread}.")


def _call_backward(spec, impl, g, arrays, where, check=True, raw=None):
    """Call the learner's backward on copies; return its gradients as a tuple of arrays
    (``raw``, a dict, receives each gradient as returned, before it becomes an array)."""
    slot, reread, names = spec["backward"], spec["reread"], spec["grads"]
    given, g_given = _copies(arrays), np.array(g, copy=True)
    result = call_learner(slot, getattr(impl, slot), g_given, *given)
    if result is None:
        raise Finding(f"{slot} returned None: did you forget `return {', '.join('d' + n for n in names)}`?"
                      f" Reread {reread}.")
    if len(names) == 1 and not isinstance(result, (tuple, list)):
        result = (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = len(result) if isinstance(result, (tuple, list)) else f"a single {type(result).__name__}"
        raise Finding(f"{slot} must return {len(names)} gradient(s), "
                      f"({', '.join('d' + n for n in names)}), got {got}.")
    shapes = dict(zip(spec["inputs"], (np.shape(a) for a in arrays)))
    grads = []
    for name, value in zip(names, result):
        if raw is not None:
            raw[name] = value
        value = _as_array(slot, "d" + name, value, reread)
        want = shapes[name]
        if check and value.shape != want:
            hint = ""
            if len(want) >= 2 and value.shape == tuple(reversed(want)):
                hint = " It looks transposed."
            if name in spec["hints"]:
                hint += " " + spec["hints"][name]
            raise Finding(f"{slot} returned d{name} with shape {value.shape}, but {name} has shape {want}: "
                          f"a gradient always has its input's shape.{hint} Reread {reread}.")
        grads.append(value)
    if check:
        _check_unchanged(slot, ("g",) + spec["inputs"], (g,) + tuple(arrays), (g_given,) + given, reread)
    return tuple(grads)


def _learner_function(spec, impl):
    """A tinymm Function whose forward is the reference and whose backward is the learner's,
    so that tinymm.gradcheck can check it like any op of the library."""
    names, inputs = spec["grads"], spec["inputs"]

    class LearnerOp(Function):
        upstream = None  # the g that gradcheck gave the learner's backward, for the message

        def forward(self, *arrays):
            self.arrays = arrays
            return np.asarray(spec["ref_f"](*arrays))

        def backward(self, g):
            LearnerOp.upstream = np.array(g, copy=True)
            mine = dict(zip(names, _call_backward(spec, impl, g, self.arrays, "", check=False)))
            return tuple(mine.get(name) for name in inputs)

    LearnerOp.__name__ = spec["backward"]
    return LearnerOp


def _gradcheck(spec, impl, arrays, where, eps):
    op = _learner_function(spec, impl)
    tensors = [Tensor(np.array(a, copy=True), requires_grad=name in spec["grads"])
               for name, a in zip(spec["inputs"], arrays)]
    report = gradcheck(lambda *t: op.apply(*t), tensors, eps=eps, tol=spec["grad_tol"],
                       name=spec["backward"], raise_on_failure=False)
    # "not <=": a NaN error fails too
    failing = [c for c in report.checks if not c.max_rel_error <= spec["grad_tol"]]
    if failing:
        first = failing[0]
        raise Finding(_gradient_message(spec, impl, arrays, where, [spec["inputs"][c.index] for c in failing],
                                        first.max_rel_error, first.worst_index, first.analytic, first.numeric,
                                        "numerical", op.upstream))
    return report.max_rel_error


def _compare_with_reference(spec, impl, mine, reference, arrays, where):
    failing, first = [], None
    for name, a, b in zip(spec["grads"], mine, reference):
        error, index, x, y = worst(a, b)
        if not error <= spec["grad_tol"]:
            failing.append(name)
            first = first or (error, index, x, y)
    if failing:
        raise Finding(_gradient_message(spec, impl, arrays, where, failing, *first, "tinymm's",
                                        _upstream(spec, arrays)))


def _which_are_wrong(spec, failing):
    """'the gradient for x is wrong' or 'the gradients for x and W are wrong, b is right'."""
    right = [n for n in spec["grads"] if n not in failing]
    head = (f"the gradient for {failing[0]} is wrong" if len(failing) == 1 else
            f"the gradients for {_and(failing)} are wrong")
    if right:
        head += f", {_and(right)} {'is' if len(right) == 1 else 'are'} right"
    return head


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _gradient_message(spec, impl, arrays, where, failing, error, index, mine, other, kind, g):
    """Which gradients are wrong (all of them, on one line), the numbers of the first one,
    and what is recognisable in them."""
    name = failing[0]
    ratio = f", ratio {mine / other:.4g}" if other != 0 and mine != 0 else ""
    detail = "" if len(spec["grads"]) == 1 else f"d{name}: "
    pattern = _pattern(spec, impl, arrays, failing, g)
    return (f"{_which_are_wrong(spec, failing)}{where}. {detail}relative error {error:.1e} at index {index} "
            f"(yours {mine:.6g}, {kind} {other:.6g}{ratio}; tolerance {spec['grad_tol']:.0e}). "
            f"{pattern + ' ' if pattern else ''}Reread {spec['reread']}.")


def _ratio(mine, reference):
    """c when mine = c · reference (reference not all zero), else None."""
    mine = np.asarray(mine, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    if mine.shape != reference.shape or not reference.any() or not np.isfinite(mine).all():
        return None
    c = float(mine @ reference / (reference @ reference))
    scale = np.abs(reference).max()
    return c if np.allclose(mine, c * reference, rtol=1e-6, atol=1e-9 * scale) else None


def _pattern(spec, impl, arrays, failing, g):
    """Words for a recognisable mistake: all zeros, inf/NaN, one constant factor off (a
    forgotten g, a mean for a sum), or the exercise's own diagnosis. Both backwards are run
    again on the upstream gradient g of the numbers shown, to compare them."""
    g = np.asarray(g)
    names = spec["grads"]
    mine_all = dict(zip(names, (np.asarray(a, dtype=np.float64)
                                for a in _call_backward(spec, impl, g, arrays, "", check=False))))
    ref_all = dict(zip(names, (np.asarray(a, dtype=np.float64) for a in _as_tuple(spec["ref_b"](g, *arrays)))))
    words = []
    for name in failing:
        mine = mine_all[name]
        if mine.size and not mine.any():
            words.append(f"Your d{name} is all zeros.")
        elif not np.isfinite(mine).all():
            words.append(f"Your d{name} has {int((~np.isfinite(mine)).sum())} inf or NaN entries.")
    ratios = [_ratio(mine_all[n], ref_all[n]) for n in failing]
    if None not in ratios and all(abs(r) > 1e-9 and np.isclose(r, ratios[0], rtol=1e-6) for r in ratios):
        r = ratios[0]
        if len(failing) == 1:  # one number: the ratio is in the numbers already
            lead = f"Your d{failing[0]} is {r:.4g}× tinymm's"
        else:
            every = "Every gradient" if len(failing) == len(names) else "Every wrong gradient"
            lead = f"{every} ({_and(['d' + n for n in failing])}) is {r:.4g}× off"
        with np.errstate(all="ignore"):
            at_one = _as_tuple(spec["ref_b"](np.ones_like(g), *arrays))
        at_one = [_ratio(mine_all[n], at_one[names.index(n)]) for n in failing]
        batch = np.shape(arrays[0])[0] if np.ndim(arrays[0]) else None
        if all(c is not None and np.isclose(c, 1, rtol=1e-6) for c in at_one):
            words.append(f"{lead}: did you multiply by g? Yours equal tinymm's for g = 1, and the chain rule "
                         f"multiplies every gradient by the upstream g.")
        elif batch and batch > 1 and np.isclose(r, 1 / batch, rtol=1e-6):
            words.append(f"{lead}, 1/N with N = {batch} the batch: mean instead of sum over the batch?")
        elif batch and batch > 1 and np.isclose(r, batch, rtol=1e-6):
            words.append(f"{lead}, N = {batch} the batch: the loss is a mean over the batch, so its gradient "
                         f"keeps the 1/N.")
        elif len(failing) > 1 or mine_all[failing[0]].ndim:
            words.append(f"{lead}.")
    if spec["diagnose"]:
        extra = spec["diagnose"](failing[0], mine_all[failing[0]], ref_all[failing[0]], arrays, mine_all, ref_all)
        if extra:
            words.append(extra)
    return " ".join(words)


def _check_float32(spec, impl, arrays, where):
    single = tuple(a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays)
    first = spec["inputs"][0]
    if spec["forward"]:
        raw = call_learner(spec["forward"], getattr(impl, spec["forward"]), *_copies(single))
        out = np.asarray(raw)
        if out.dtype != np.float32:
            scalar = _scalar_words(raw, first)
            raise Finding(f"{spec['forward']} returned {scalar or out.dtype} for float32 inputs{where}: keep the "
                          f"inputs' dtype " + (scalar and f"({_scalar_fix(first)})." or
                                              "(np.zeros, np.ones and np.eye make float64 unless given dtype=x.dtype)."))
    g = _upstream(spec, arrays).astype(np.float32)
    kinds = {}
    grads = _call_backward(spec, impl, g, single, where, raw=kinds)
    for name, grad in zip(spec["grads"], grads):
        if grad.dtype != np.float32:
            scalar = _scalar_words(kinds[name], name)
            if scalar:
                raise Finding(f"{spec['backward']} returned d{name} as {scalar} for float32 inputs{where}, not an "
                              f"array: a gradient is an array of its input's dtype ({_scalar_fix(name)}).")
            raise Finding(f"{spec['backward']} returned d{name} as {grad.dtype} for float32 inputs{where}: "
                          f"a gradient has its input's dtype (np.zeros, np.ones and np.eye make float64 "
                          f"unless given dtype=...; mixing them in turns float32 into float64).")


def _scalar_words(value, name):
    """'a Python float (always float64)' or 'a NumPy float64 scalar' for a number that is not an array."""
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return f"a Python {type(value).__name__} (a float64 once NumPy sees it)"
    if isinstance(value, np.generic):
        return f"a NumPy {value.dtype} scalar"
    return ""


def _scalar_fix(name):
    return (f"float(...) and .item() give a Python number, which NumPy reads as float64: "
            f"return np.asarray(..., dtype={name}.dtype) instead")


def _check_no_batch_loop(spec, impl):
    small, large = spec["loop_sizes"]
    make = next(iter(spec["cases"].values()))
    for slot in filter(None, (spec["forward"], spec["backward"])):
        counts = []
        for n in (small, large):
            arrays = make(np.random.default_rng(0), n)
            args = arrays if slot == spec["forward"] else (_upstream(spec, arrays),) + tuple(arrays)
            counts.append(count_lines(slot, getattr(impl, slot), *_copies(args)))
        if counts[1] > counts[0]:
            raise Finding(f"{slot} loops over the batch in Python: it runs {counts[0]} lines of your file "
                          f"for a batch of {small} and {counts[1]} for a batch of {large}. Write it with "
                          f"whole-array operations (matrix products, sums over an axis, masks), so that "
                          f"the same lines run whatever the batch size. Reread {spec['reread']}.")
