"""Time of generalize.py's evaluation per network, for the exact least-squares decoder
and for the paper's Adam protocol, on trained networks found in `runs_dir` (e.g. the
Figure 3a sweep), and the r² each gives (so two checkouts can be compared: the same
numbers within noise, in less time). Wall time and the process's CPU time are printed:
on a busy machine the CPU time is the steadier measure of the work.

    python benchmarks/bench_generalize.py --runs_dir=trained_networks/RNN
    python benchmarks/bench_generalize.py --repo=/path/to/other/checkout --runs_dir=...

Uses only generalize.generalize(hp) with the checkout's own defaults.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
repo = ''  # checkout to measure ('': this one)
runs_dir = 'trained_networks/RNN'  # trained networks to evaluate
n_tasks = [2, 24]  # task counts to time (decoder batches: 3000 and 1000)
n_runs = 1  # networks per task count
decoders = ['lstsq', 'adam']  # decoders to time
protocol = 'correct'  # generalize.py's protocol ('both': the two test sets, as sweep.py evaluates)
keep_dir = ''  # keep the result files in <keep_dir>/<decoder>/ (e.g. to compare two checkouts' arrays); '': discard
device = 'cpu'  # 'cpu' or 'cuda'
n_threads = 1  # CPU threads for torch
# ------------------------------------------------------------------------
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from configurator import configure

if __name__ == '__main__':
    hp = configure(globals(), doc=__doc__, print_config=False)
    root = os.path.abspath(hp['repo'] or HERE)
    runs_dir = os.path.abspath(hp['runs_dir'])
    sys.path.remove(HERE)
    sys.path.insert(0, root)  # the checkout under test
    for name in [m for m in sys.modules if m in ('configurator', 'checks')]:
        del sys.modules[name]
    import numpy as np
    import torch

    import generalize
    from configurator import hyperparameters

    torch.set_num_threads(hp['n_threads'])
    print(f"checkout {root}, device {hp['device']}, {hp['n_threads']} thread(s)")
    for decoder in hp['decoders']:
        with tempfile.TemporaryDirectory() as out:
            out = os.path.join(os.path.abspath(hp['keep_dir']), decoder) if hp['keep_dir'] else out
            settings = dict(hyperparameters(vars(generalize)), runs_dir=runs_dir, n_tasks=hp['n_tasks'],
                            n_runs=hp['n_runs'], decoder=decoder, protocol=hp['protocol'], results_dir=out,
                            label='bench', device=hp['device'], overwrite=True)
            t0, c0 = time.time(), time.process_time()
            stem = generalize.generalize(settings)  # bench, or bench_lstsq where the name has the decoder
            n = len(hp['n_tasks']) * hp['n_runs']
            seconds, cpu = (time.time() - t0) / n, (time.process_time() - c0) / n
            with np.load(stem + '.npz') as f:
                r2 = f['r_sq'].reshape(len(hp['n_tasks']), -1).mean(1)
        print(f"RESULT {decoder}: {seconds:.1f} s per network ({cpu:.1f} s CPU); mean r² "
              + ', '.join(f'{k} tasks {v:.3f}' for k, v in zip(hp['n_tasks'], r2)), flush=True)
