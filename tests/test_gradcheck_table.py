"""Every row of the shared op table passes gradcheck, and the checks can fail.

`tinymm/opspecs.py` lists every differentiable op with inputs drawn away from kinks.
Here each row is checked in float64; then, as a test of the tests, every Function's
backward is deliberately broken (scaled by 1.01, then zeroed) and some row must notice.
"""
import numpy as np
import pytest

import tinymm as tm
from tinymm.autograd import Function, topological_order
from tinymm.gradcheck import GradcheckError, gradcheck
from tinymm.opspecs import OP_SPECS

pytestmark = pytest.mark.lesson03

# Every Function is in the table (ToDevice and Cast too: their rows move to the other device
# and back, and round-trip float32 on inputs where that is exact).
NOT_IN_TABLE = set()


def all_library_functions():
    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            # tinymm.exercises wraps a learner's backward in a Function to gradcheck it: not an op
            if sub.__module__.startswith("tinymm.") and not sub.__module__.startswith("tinymm.exercises."):
                found.add(sub)
    return found


def functions_used(spec, device):
    """The Function classes in the graph one row builds."""
    out = spec.fn(*spec.make_inputs(device=device))
    return {type(node) for node in topological_order(out) if isinstance(node, Function)}


@pytest.mark.parametrize("spec", OP_SPECS, ids=[s.name for s in OP_SPECS])
def test_op_passes_gradcheck(spec, device):
    report = gradcheck(spec.fn, spec.make_inputs(device=device), eps=spec.eps, tol=spec.tol, name=spec.name)
    assert report.max_rel_error <= spec.tol
    assert len(report.checks) == sum(1 for t in spec.make_inputs() if t.requires_grad)


def test_every_function_is_in_the_table(device):
    used = set().union(*(functions_used(s, device) for s in OP_SPECS))
    missing = {f.__name__ for f in all_library_functions() - used} - NOT_IN_TABLE
    assert not missing, f"Functions without a gradcheck row in tinymm/opspecs.py: {sorted(missing)}"


@pytest.mark.parametrize("how", ["scaled by 1.01", "zeroed"])
def test_a_wrong_backward_makes_gradcheck_fail(how, device, monkeypatch):
    """Break each Function's backward in turn; at least one row that uses it must fail."""
    users = {}
    for spec in OP_SPECS:
        for fn_class in functions_used(spec, device):
            users.setdefault(fn_class, []).append(spec)
    factor = 1.01 if how == "scaled by 1.01" else 0.0
    not_caught = []
    for fn_class, specs in sorted(users.items(), key=lambda kv: kv[0].__name__):
        original = fn_class.backward

        def broken(self, g, original=original):
            grads = original(self, g)
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(None if x is None else x * factor for x in grads)

        monkeypatch.setattr(fn_class, "backward", broken)
        caught = False
        for spec in specs:
            try:
                gradcheck(spec.fn, spec.make_inputs(device=device), eps=spec.eps, tol=spec.tol)
            except GradcheckError:
                caught = True
                break
        monkeypatch.setattr(fn_class, "backward", original)
        if not caught:
            not_caught.append(fn_class.__name__)
    assert not not_caught, f"a {how} backward went unnoticed for: {not_caught}"


def test_gradcheck_report_names_the_worst_index():
    x = tm.tensor(np.arange(6.0).reshape(2, 3) + 1.0, requires_grad=True)
    report = gradcheck(lambda a: a.log(), [x], tol=1e-6)
    assert report.passed and report.checks[0].shape == (2, 3)
    assert len(report.checks[0].worst_index) == 2


def test_gradcheck_refuses_float32():
    x = tm.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [x])


def test_cli_exits_nonzero_when_a_backward_is_wrong(capsys):
    from tinymm.__main__ import main
    assert main(["gradcheck", "--only", "matmul"]) == 0
    assert main(["gradcheck", "--only", "matmul", "--break", "MatMul"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "passed" in out
    # the sabotage is undone afterwards
    assert main(["gradcheck", "--only", "matmul"]) == 0
