"""Bad input to tensors: refused when made, saved, or differentiated after a change.

Before these checks tm.tensor(None) made an object tensor, tm.save to a folder named the
temporary file it tried to rename, and changing x.data after x was used in a graph gave the
gradient of the new value without a word.
"""
import numpy as np
import pytest

import tinymm as tm
from tinymm.errors import UserError


@pytest.mark.parametrize("data, words", [
    (None, "tensor: got None"),
    (np.array([1, None], dtype=object), "not numeric .*object"),
    ([[1, 2], [3]], "cannot make an array of this data"),
    ("abc", "not numeric .*<U3"),
])
def test_tensor_refuses_none_ragged_and_object_data(data, words):
    with pytest.raises(UserError, match=words):
        tm.tensor(data)


def test_tensor_of_numbers_still_works():
    assert tm.tensor([1.0, 2]).dtype == np.float32
    assert tm.tensor(3).item() == 3


def test_save_to_a_folder_names_the_folder_not_a_temporary_file(tmp_path):
    with pytest.raises(UserError, match=rf"save: '{tmp_path}' is a folder; give a file name inside it") as info:
        tm.save({"w": np.ones(2)}, tmp_path)
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# -- in-place changes after use --------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    lambda x: setattr(x, "data", x.data + 1),
    lambda x: x.__setattr__("data", x.data * 2),
])
def test_changing_data_after_use_is_refused_at_backward_naming_the_op(change):
    x = tm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    change(x)
    with pytest.raises(ValueError, match=r"backward: input \d of Mul \(shape \(3,\)\) was changed in place"):
        y.backward()


def test_augmented_assignment_and_detached_views_count_as_changes():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.data += 1                      # Python assigns the result back: the setter sees it
    with pytest.raises(ValueError, match="Mul.*changed in place"):
        y.backward()
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.detach().data -= 1             # a detached tensor shares x's memory and its change count
    with pytest.raises(ValueError, match="Mul.*changed in place"):
        y.backward()


def test_changes_before_use_or_after_backward_are_fine():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    x.data = x.data * 3              # before the graph exists: nothing to protect
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(tm.backend.to_numpy(x.grad), [6.0, 12.0])
    x.data -= 0.5 * x.grad           # the optimiser's step comes after backward
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(tm.backend.to_numpy(x.grad), [0.0, 0.0])
