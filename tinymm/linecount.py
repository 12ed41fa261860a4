"""Count the lines of Python a call runs: a measure of work that a busy machine cannot change.

A loop written in Python runs its body once per element; an array operation runs one line and
leaves the loop to compiled code. A stopwatch tells the two apart only on a quiet machine. A count
of the lines the interpreter runs tells them apart anywhere: ``sys.settrace`` asks Python to call a
function of ours before every line it runs, and that function counts. Code inside NumPy, CuPy or
the BLAS library is compiled, not Python, so it adds no lines.

Lesson 01 introduces the count, lesson 06 compares a loop convolution with im2col by it, and the
exercise checker uses it to spot a Python loop over the batch in a learner's backward.
"""
import sys


def python_lines(fn, *args, only_file=None):
    """Run ``fn(*args)`` once; return (lines of Python the interpreter ran, fn's result).

    only_file  count only the lines of this source file (e.g. a learner's exercise), not the
               lines of the library code it calls; None counts every line.
    A debugger or coverage tool may be tracing already: its tracer is put back afterwards.
    """
    lines = 0

    def count(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return count  # keep counting inside this frame

    def enter(frame, event, arg):
        # called when a new frame starts: count its lines, or ignore the frame (None)
        if only_file is None or frame.f_code.co_filename == only_file:
            return count
        return None

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        result = fn(*args)
    finally:
        sys.settrace(previous)
    return lines, result
