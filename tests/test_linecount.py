"""python_lines counts the Python a call runs: a loop grows with its input, an array op does not."""
import sys

import numpy as np
import pytest

from tinymm.linecount import python_lines


def sum_squares_loop(values):
    total = 0.0
    for v in values:
        total += v * v
    return total


def helper():
    return 1


def calls_helper():
    a = helper()
    return a + helper()


@pytest.mark.lesson01
def test_a_loop_runs_its_body_once_per_element():
    for n in (3, 50):
        lines, result = python_lines(sum_squares_loop, list(range(n)))
        assert result == sum(v * v for v in range(n))
        assert lines == 2 * n + 3  # `for` and body per element, the last `for`, `total = 0`, return


@pytest.mark.lesson01
def test_an_array_op_runs_the_same_lines_whatever_its_size():
    small, _ = python_lines(lambda: float((np.ones(10) ** 2).sum()))
    large, _ = python_lines(lambda: float((np.ones(100_000) ** 2).sum()))
    assert small == large and small < 10


@pytest.mark.lesson06
def test_only_file_counts_the_lines_of_one_file():
    everywhere, _ = python_lines(calls_helper)
    assert everywhere == 4  # two lines of calls_helper, one of helper, twice
    elsewhere, _ = python_lines(calls_helper, only_file="no/such/file.py")
    assert elsewhere == 0


def test_a_tracer_already_set_is_put_back():
    def tracer(frame, event, arg):
        return None
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        python_lines(helper)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)
