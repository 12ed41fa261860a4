"""Lesson 12's coded exercise: a whole CLIP step by hand (the "backprop ninja" form).

The stub writes the dual encoder's forward out one op per line (linear -> ReLU -> linear -> L2
normalise for images; embedding -> masked mean -> linear -> L2 normalise for captions; the CLIP
loss). The learner returns the gradient of the loss with respect to every value of it.

The truth is tinymm's autograd. The same forward is built from tinymm ops in *stages*, one per
line: each stage reads its inputs as fresh leaf tensors, so after ``loss.backward()`` and then
``stage_output.backward(leaf.grad)`` for every stage in reverse order, each leaf holds
d loss / d (that value): autograd's gradient of every intermediate, not only of the weights.
The learner's gradients are then compared with those, one by one, in the order backprop
computes them, and the first wrong one is named. ``tinymm.gradcheck`` checks the weights'
gradients against finite differences on top.

The reference answer runs each op's own Function (``Linear``, ``ReLU``, ``L2Normalize``,
``MaskedMean``, ``Embedding``, ``SoftmaxCrossEntropy``, ``Mul``, ``MatMul``, ``Exp``): forward,
then backward with the gradient from the step after it.
"""
import numpy as np

from .. import functional as F
from ..autograd import Function, Tensor
from ..functional.activation import ReLU
from ..functional.basic import Exp, MatMul, Mul
from ..functional.embedding import Embedding, MaskedMean
from ..functional.linear import Linear
from ..functional.loss import SoftmaxCrossEntropy, clip_targets
from ..functional.normalize import L2Normalize
from ..gradcheck import gradcheck
from .core import Exercise, Finding, Wrong, call_learner, count_lines, worst
from .opcheck import _check_unchanged

STUB = "12_clip_step.py"
SLOT = "clip_step_backward"
CLIP = "lesson 11, section 4 (the gradient, derived by hand)"
NORM = "lesson 09, section 2 (the backward pass, derived)"
LINEAR = "lesson 04, sections 2 and 3 (the linear layer, backward; why the bias gradient is a sum)"
REREAD = "lesson 11, section 4, lesson 09, section 2, lesson 08, sections 2 and 3, and lesson 04, sections 2-4"

# (value, the lesson section that teaches its gradient), in the order backprop computes them
ORDER = [
    ("Z", CLIP), ("scale", CLIP), ("s", "lesson 11, section 2 (the learnable logit scale: d e^s/ds = e^s)"),
    ("I", CLIP), ("T", CLIP), ("f_img", NORM), ("W2", LINEAR), ("b2", LINEAR), ("a1", LINEAR),
    ("h1", "lesson 04, section 4 (ReLU: the non-linearity)"), ("W1", LINEAR), ("b1", LINEAR),
    ("f_txt", NORM), ("W3", LINEAR), ("b3", LINEAR), ("pooled", LINEAR),
    ("e", "lesson 08, section 3 (masked mean pooling)"),
    ("E", "lesson 08, section 2 (embeddings: a repeated id collects every gradient)"),
]
PARAMETERS = ("W1", "b1", "W2", "b2", "E", "W3", "b3", "s")
INPUTS = ("x", "ids", "W1", "b1", "W2", "b2", "E", "W3", "b3", "s", "Y")
# what the learner's backward is given: the inputs and every value of the stub's forward
GIVEN = INPUTS + ("mask", "h1", "a1", "f_img", "I", "e", "pooled", "f_txt", "T", "scale", "Z", "loss")


def make_inputs(rng, n):
    """A batch of n pairs on the stub's shapes; captions 0 and 2 are the same (soft targets)."""
    ids = rng.integers(1, 7, (n, 4))
    ids[1::2, 3:] = 0  # padding: every second caption has three words, every fourth two
    ids[3::4, 2:] = 0
    if n > 2:
        ids[2] = ids[0]
    Y = clip_targets([" ".join(map(str, row)) for row in ids])
    return dict(x=rng.standard_normal((n, 6)), ids=ids, W1=0.5 * rng.standard_normal((5, 6)),
                b1=0.5 * rng.standard_normal(5), W2=rng.standard_normal((3, 5)), b2=rng.standard_normal(3),
                E=rng.standard_normal((7, 5)), W3=rng.standard_normal((3, 5)), b3=rng.standard_normal(3),
                s=np.array(1.0), Y=Y)


# ---- the truth: tinymm's forward in stages, autograd's gradient of every value -------------


def _ce_both_ways(Z, Y):
    return (F.softmax_cross_entropy(Z, Y) + F.softmax_cross_entropy(Z.T, Y.T)) * 0.5


# (value, its inputs, how tinymm computes it from them)
STAGES = [
    ("h1", ("x", "W1", "b1"), F.linear),
    ("a1", ("h1",), F.relu),
    ("f_img", ("a1", "W2", "b2"), F.linear),
    ("I", ("f_img",), F.l2_normalize),
    ("e", ("ids", "E"), F.embedding),
    ("pooled", ("e", "mask"), F.masked_mean),
    ("f_txt", ("pooled", "W3", "b3"), F.linear),
    ("T", ("f_txt",), F.l2_normalize),
    ("scale", ("s",), lambda s: s.exp()),
    ("Z", ("scale", "I", "T"), lambda scale, I, T: scale * (I @ T.T)),
    ("loss", ("Z", "Y"), _ce_both_ways),
]
DIFFERENTIABLE = set(PARAMETERS) | {name for name, _, _ in STAGES}


def autograd_step(inputs):
    """(values, gradients): every value of the forward, and d loss / d value for each one."""
    values = dict(inputs, mask=inputs["ids"] != 0)
    leaves, outputs = {}, {}
    for name, args, op in STAGES:
        for arg in args:
            if arg not in leaves:
                leaves[arg] = Tensor(np.array(values[arg], copy=True), requires_grad=arg in DIFFERENTIABLE)
        outputs[name] = op(*(leaves[arg] for arg in args))
        values[name] = outputs[name].data
    outputs["loss"].backward()
    for name, _, _ in reversed(STAGES[:-1]):  # every consumer of a value comes after it
        outputs[name].backward(leaves[name].grad)
    values["mask"] = values["mask"].astype(values["e"].dtype)  # as the stub computes it
    return values, {name: leaves[name].grad for name, _ in ORDER}


# ---- the check -----------------------------------------------------------------------------


def _check_forward(impl, inputs, values):
    """The stub's own forward (when there is one) must still be tinymm's: the learner reads it."""
    forward = getattr(impl, "forward", None)
    if forward is None:
        return
    theirs = call_learner("forward", forward, *(np.array(inputs[k], copy=True) for k in INPUTS))
    for name in ["h1", "a1", "f_img", "I", "e", "pooled", "f_txt", "T", "scale", "Z", "loss"]:
        mine = None if not isinstance(theirs, dict) else theirs.get(name)
        if mine is None or np.shape(mine) != np.shape(values[name]) or \
                not np.allclose(mine, values[name], rtol=1e-9, atol=1e-12):
            raise Finding(f"forward in {STUB} no longer computes {name} as tinymm does: the checker grades your "
                          f"gradients on tinymm's forward, so undo your change to forward (compare with "
                          f"git diff lessons/exercises/{STUB}).")


def _call(impl, values):
    given = {k: np.array(a, copy=True) for k, a in values.items()}
    mine = call_learner(SLOT, impl.clip_step_backward, given)
    names = tuple(values)
    _check_unchanged(SLOT, tuple(f'v["{k}"]' for k in names), tuple(values[k] for k in names),
                     tuple(given[k] for k in names), REREAD)
    if mine is None:
        raise Finding(f"{SLOT} returned None: return a dict of your gradients, e.g. "
                      f"return dict(dZ=dZ, dscale=dscale, ds=ds).")
    if not isinstance(mine, dict):
        raise Finding(f"{SLOT} returned a {type(mine).__name__}; return a dict such as dict(dZ=dZ, ...).")
    known = {"d" + name for name, _ in ORDER}
    strange = sorted(k for k in mine if k not in known)
    if strange:
        raise Finding(f"{SLOT} returned {', '.join(strange)}, which is not the gradient of a value of the "
                      f"forward: the names are {', '.join('d' + n for n, _ in ORDER)}.")
    return mine


def _judge(name, mine, truths, values):
    """(None, error) when d<name> is right, else (the words for what is wrong, error)."""
    mine, truth = np.asarray(mine), truths[name]
    want = np.shape(values[name])
    if mine.shape != want:
        hint = " It looks transposed." if len(want) >= 2 and mine.shape == tuple(reversed(want)) else ""
        if name.startswith("b") and mine.ndim == 2:
            hint += f" {name} was added to every row, so d{name} sums over the rows."
        return (f"d{name} has shape {mine.shape}, but {name} has shape {want}: a gradient has its value's "
                f"shape.{hint}"), None
    error, index, a, b = worst(mine, truth)
    if error <= 1e-6:
        return None, error
    words = f"d{name} is wrong: relative error {error:.1e} at index {index} (yours {a:.6g}, autograd's {b:.6g})."
    factor = (mine.ravel() @ truth.ravel()) / (truth.ravel() @ truth.ravel()) if truth.any() else None
    if mine.size and not mine.any():
        words += f" Your d{name} is all zeros."
    elif factor is not None and np.allclose(mine, factor * truth, rtol=1e-6, atol=1e-12):
        words += f" It is autograd's times {factor:.4g}."
    if name == "E":
        dropped = np.zeros_like(truth)
        dropped[values["ids"]] += truths["e"]
        if np.allclose(mine, dropped):
            words += (" Repeated ids: an id that appears several times must collect the gradient of every "
                      "appearance (np.add.at(dE, ids, de)); dE[ids] += de keeps only one of them.")
    return words, error


def _check_step(impl):
    inputs = make_inputs(np.random.default_rng(0), 4)
    values, truth = autograd_step(inputs)
    _check_forward(impl, inputs, values)
    given = {k: values[k] for k in GIVEN}
    mine = _call(impl, given)
    right, wrong, missing, errors = [], [], [], []
    for name, reread in ORDER:
        value = mine.get("d" + name)
        if value is None:
            missing.append("d" + name)
            continue
        words, error = _judge(name, value, truth, values)
        if words is None:
            right.append("d" + name)
            errors.append(error)
        else:
            wrong.append(("d" + name, words, reread))
    if wrong:
        first, words, reread = wrong[0]
        lines = [f"the first wrong gradient, going back from the loss, is {first}.", f"  {words}",
                 f"  Reread {reread}."]
        lines.append(f"  right: {', '.join(right) if right else 'none yet'}")
        if len(wrong) > 1:
            lines.append(f"  also wrong (perhaps only because they come after {first}): "
                         f"{', '.join(w[0] for w in wrong[1:])}")
        if missing:
            lines.append(f"  not written yet: {', '.join(missing)}")
        raise Finding("\n".join(lines))
    if not right:
        raise Finding(f"{SLOT} returned no gradients yet: start with dZ (Reread {CLIP}).")
    if missing:
        following = dict(ORDER)[missing[0][1:]]
        raise Finding(f"right so far: {', '.join(right)} ({len(right)} of {len(ORDER)}).\n"
                      f"  not written yet: {', '.join(missing)}. Next: {missing[0]} (see {following}).")
    passed = [f"all {len(ORDER)} gradients equal autograd's gradient of their value (max relative error "
              f"{max(errors):.1e}); the values you were given are unchanged"]
    passed.append(_gradcheck_parameters(impl, inputs))
    _check_no_batch_loop(impl)
    passed.append("no Python loop over the batch")
    return passed


def _gradcheck_parameters(impl, inputs):
    """tinymm.gradcheck of the loss as a function of the weights and s, with the learner's gradients
    as its backward: their dW1, db1, ..., dE and ds against finite differences."""

    class LearnerStep(Function):
        def forward(self, *params):
            self.values = autograd_step(dict(inputs, **dict(zip(PARAMETERS, params))))[0]
            return self.values["loss"]

        def backward(self, g):
            given = {k: self.values[k] for k in GIVEN}
            mine = call_learner(SLOT, impl.clip_step_backward, given)
            return tuple(g * np.asarray(mine["d" + name]) for name in PARAMETERS)

    leaves = [Tensor(np.array(inputs[name], dtype=np.float64), requires_grad=True) for name in PARAMETERS]
    report = gradcheck(lambda *p: LearnerStep.apply(*p), leaves, name=SLOT, raise_on_failure=False)
    if not report.passed:  # they equal autograd's, which passes gradcheck: a bug in this checker
        raise AssertionError(f"gradients equal autograd's but fail the gradient check: {report}")
    return (f"dW1, db1, dW2, db2, dE, dW3, db3 and ds match finite differences (tinymm.gradcheck): max "
            f"relative error {report.max_rel_error:.1e}")


def _check_no_batch_loop(impl):
    counts = []
    for n in (4, 6):
        values, _ = autograd_step(make_inputs(np.random.default_rng(0), n))
        given = {k: values[k] for k in GIVEN}
        counts.append(count_lines(SLOT, impl.clip_step_backward, given))
    if counts[1] > counts[0]:
        raise Finding(f"{SLOT} loops over the batch in Python: it runs {counts[0]} lines of your file for a "
                      f"batch of 4 and {counts[1]} for a batch of 6. Use whole-array operations (matrix "
                      f"products, sums over an axis, np.add.at for the embedding).")


# ---- the reference: each op's own Function, forward then backward -------------------------


def _backward(function, arrays, g, needs, **params):
    fn = function()
    fn.needs_input_grad = needs
    fn.forward(*arrays, **params)
    return fn.backward(g)


def clip_step_backward(v, change=None):
    """Every gradient, from the loss back. ``change(name, grad, d, v)`` (for the wrong versions)
    may replace a gradient as soon as it is computed; the steps after it then use the changed
    one, as a learner's later lines would."""
    d = {}

    def put(name, grad):
        d[name] = grad if change is None else change(name, grad, d, v)

    half = np.array(0.5)
    rows = _backward(SoftmaxCrossEntropy, (v["Z"], v["Y"]), half, (True, False))[0]
    cols = _backward(SoftmaxCrossEntropy, (v["Z"].T, v["Y"].T), half, (True, False))[0]
    put("dZ", rows + cols.T)
    dscale, d_cosines = _backward(Mul, (v["scale"], v["I"] @ v["T"].T), d["dZ"], (True, True))
    put("dscale", dscale)
    put("ds", _backward(Exp, (v["s"],), d["dscale"], (True,)))
    dI, dT_transposed = _backward(MatMul, (v["I"], v["T"].T), d_cosines, (True, True))
    put("dI", dI)
    put("dT", dT_transposed.T)
    put("df_img", _backward(L2Normalize, (v["f_img"],), d["dI"], (True,)))
    da1, dW2, db2 = _backward(Linear, (v["a1"], v["W2"], v["b2"]), d["df_img"], (True,) * 3)
    put("dW2", dW2)
    put("db2", db2)
    put("da1", da1)
    put("dh1", _backward(ReLU, (v["h1"],), d["da1"], (True,)))
    _, dW1, db1 = _backward(Linear, (v["x"], v["W1"], v["b1"]), d["dh1"], (False, True, True))
    put("dW1", dW1)
    put("db1", db1)
    put("df_txt", _backward(L2Normalize, (v["f_txt"],), d["dT"], (True,)))
    dpooled, dW3, db3 = _backward(Linear, (v["pooled"], v["W3"], v["b3"]), d["df_txt"], (True,) * 3)
    put("dW3", dW3)
    put("db3", db3)
    put("dpooled", dpooled)
    put("de", _backward(MaskedMean, (v["e"], v["mask"]), d["dpooled"], (True, False))[0])
    put("dE", _backward(Embedding, (v["ids"], v["E"]), d["de"], (False, True))[1])
    return d


# ---- wrong versions ------------------------------------------------------------------------


def _changed(**replace):
    """The reference with some gradients computed wrongly: replace[name](d so far, v) -> the wrong
    gradient, which the later steps then build on."""
    def change(name, grad, d, v):
        return replace[name](dict(d, **{name: grad}), v) if name in replace else grad

    def backward(v):
        return clip_step_backward(v, change)
    return backward


def _fancy_index_dE(d, v):
    dE = np.zeros_like(v["E"])
    dE[v["ids"]] += d["de"]  # buffered: a repeated id keeps one of its gradients
    return dE


def _no_projection(d, v):
    return d["dI"] / np.sqrt((v["f_img"] ** 2).sum(axis=1, keepdims=True))  # forgets to remove the part along I


def _relu_on_a1(d, v):
    return d["da1"] * (v["h1"] < 0)


def _edits_h1(v):
    d = clip_step_backward(v)
    h1 = v["h1"]
    h1[h1 < 0] = 0  # "the ReLU mask", written into the forward's value
    return d


def _loops(v):
    d = clip_step_backward(v)
    de = np.zeros_like(v["e"])
    for i in range(len(de)):
        de[i] = v["mask"][i][:, None] * d["dpooled"][i] / v["mask"][i].sum()
    d["de"] = de
    return d


def _only_the_start(v):
    d = clip_step_backward(v)
    return {k: d[k] for k in ("dZ", "dscale", "ds")}


CLIP_STEP = Exercise(
    name="clip_step", lesson="12", title="a whole CLIP step by hand: the gradient of every value, checked one by one",
    stub=STUB, slots=(SLOT,), reread=REREAD, check=_check_step, reference={SLOT: clip_step_backward},
    answer=(Linear, ReLU, L2Normalize, MaskedMean, Embedding, F.clip_loss),
    wrong=[
        Wrong("dh1 scaled by 1.01", {SLOT: _changed(dh1=lambda d, v: 1.01 * d["dh1"])},
              ("first wrong gradient, going back from the loss, is dh1", "times 1.01", "right: dZ, dscale, ds",
               "also wrong (perhaps only because they come after dh1): dW1, db1")),
        Wrong("dW2 zeroed", {SLOT: _changed(dW2=lambda d, v: np.zeros_like(d["dW2"]))},
              ("is dW2", "all zeros")),
        Wrong("dW1 transposed", {SLOT: _changed(dW1=lambda d, v: d["dW1"].T)},
              ("is dW1", "dW1 has shape (6, 5), but W1 has shape (5, 6)", "looks transposed")),
        Wrong("db3 not summed over the rows", {SLOT: _changed(db3=lambda d, v: d["df_txt"])},
              ("is db3", "db3 has shape (4, 3)", "sums over the rows")),
        Wrong("L2 normalisation without the projection", {SLOT: _changed(df_img=lambda d, v: _no_projection(d, v))},
              ("is df_img", "lesson 09, section 2")),
        Wrong("ReLU mask the wrong way round", {SLOT: _changed(dh1=lambda d, v: _relu_on_a1(d, v))},
              ("is dh1", "lesson 04, section 4")),
        Wrong("dE drops repeated ids", {SLOT: _changed(dE=_fancy_index_dE)}, ("is dE", "Repeated ids")),
        Wrong("edits the forward's h1 in place", {SLOT: _edits_h1}, ('changed its input v["h1"] in place',)),
        Wrong("loops over the batch", {SLOT: _loops}, ("loops over the batch",)),
        Wrong("only the first three gradients", {SLOT: _only_the_start},
              ("right so far: dZ, dscale, ds (3 of 18)", "Next: dI")),
    ])
