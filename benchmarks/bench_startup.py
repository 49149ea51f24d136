"""Wall time of `--help` and of a configuration error for every script: both must
answer in under a second (they stop before the scripts' slow imports of torch and
matplotlib). Prints the median of a few runs each; on a loaded machine the numbers
vary, so this is a benchmark, not a test (tests/test_reliability.py checks that
nothing slow is imported). Run: python benchmarks/bench_startup.py"""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ['train.py', 'generalize.py', 'analyze.py', 'analyze_transformer.py', 'sparsity.py',
           os.path.join('Figures', 'run_notebooks.py')]
CALLS = {'--help': ['--help'], 'configuration error': ['--n_grid=0'], 'unknown name': ['--no_such_name=1']}
REPEATS = 5


def seconds(args):
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


print(f"{'script':<28}" + ''.join(f'{what:>22}' for what in CALLS))
worst = 0.0
for script in SCRIPTS:
    row = [seconds([script, *args]) for args in CALLS.values()]
    worst = max(worst, *row)
    print(f'{script:<28}' + ''.join(f'{t:>21.2f}s' for t in row))
print(f"slowest: {worst:.2f} s ({'under' if worst < 1 else 'OVER'} one second)")
