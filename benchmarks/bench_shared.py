"""Two training processes started together with default settings, as on a shared
machine: each one's speed against its speed alone. Runs `python train.py` of a
checkout in subprocesses and reads batches per second from metrics.json.

    python benchmarks/bench_shared.py                         # this checkout
    python benchmarks/bench_shared.py --repo=/path/to/other   # another checkout
"""
# ---- hyperparameters (override with --name=value or a config file) ----
repo = ''  # checkout to measure ('': this one)
n_batch = 300  # batches per run
n_task = [2, 24]  # task counts of each run (a 2-member ensemble)
# ------------------------------------------------------------------------
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from configurator import configure


def start(root, out):
    """One `python train.py` of the checkout, default settings but the budget and task counts."""
    return subprocess.Popen([sys.executable, 'train.py', f'--n_batch={n_batch}', f'--n_task={n_task}',
                             f'--out_dir={out}'], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speed(out):
    """Batches per second of the run written to `out`."""
    folder = os.path.join(out, sorted(os.listdir(out))[0])
    with open(os.path.join(folder, 'metrics.json')) as f:
        return json.load(f)['batches_per_second']


if __name__ == '__main__':
    configure(globals(), doc=__doc__, print_config=False)
    root = os.path.abspath(repo or HERE)
    with tempfile.TemporaryDirectory() as tmp:
        alone = os.path.join(tmp, 'alone')
        if start(root, alone).wait():
            sys.exit('train.py failed')
        pair = [os.path.join(tmp, f'pair{i}') for i in range(2)]
        procs = [start(root, out) for out in pair]
        if any(p.wait() for p in procs):
            sys.exit('train.py failed')
        solo, shared = speed(alone), [speed(out) for out in pair]
    print(f"checkout {root}: alone {solo:.1f} batches/s; two at once "
          + ', '.join(f'{s:.1f}' for s in shared)
          + f" batches/s ({100 * min(shared) / solo:.0f} % of alone for the slower)")
