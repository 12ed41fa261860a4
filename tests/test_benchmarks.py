"""The benchmark scripts still run and print their tables (tiny sizes; no timing is asserted)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name, *args):
    out = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True,
                         timeout=300, cwd=BENCH)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_in_blocks_alternates_rounds_and_warms_up_every_block():
    sys.path.insert(0, str(BENCH))
    try:
        import benchlib
    finally:
        sys.path.remove(str(BENCH))
    calls = []

    def sampler(name):
        def run():
            calls.append(name)
            return len(calls)
        return run

    samples = benchlib.in_blocks([sampler("A"), sampler("B")], repeats=4, rounds=2, warmup=1)
    # round 1: A then B; round 2: B then A; each block = 1 warm-up + 2 measured runs
    assert "".join(calls) == "AAA" "BBB" "BBB" "AAA"
    assert samples == [[2, 3, 11, 12], [5, 6, 8, 9]]


def test_bench_step_prints_the_table_against_the_naive_reference():
    text = run_script("bench_step.py", "--naive", "--batches", "4", "--repeats", "2", "--threads", "1",
                      "--no-memory")
    assert "naive NumPy" in text and "tinymm" in text and "ratio" in text
    assert "first-step losses" in text and "per-op breakdown" in text and "Conv2d" in text


@pytest.mark.parametrize("framework", ["tinymm", "naive"])
def test_bench_step_memory_child_reports_a_peak(framework):
    text = run_script("bench_step.py", "--rss-child", framework, "--batch", "4", "--threads", "1",
                      "--steps", "1")
    _, base, peak = next(line for line in text.splitlines() if line.startswith("RSS")).split()
    assert 0 < float(base) <= float(peak)


def test_bench_ops_prints_every_op():
    text = run_script("bench_ops.py", "--naive", "--batch", "4", "--repeats", "3", "--threads", "1")
    for op in ("conv2d", "max_pool2d", "relu", "linear", "embedding", "l2_normalize", "softmax_cross_entropy"):
        assert op in text
