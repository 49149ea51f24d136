"""Training throughput of train.py at the paper's defaults (64 hidden units, frozen
encoder, batch 16 × 22 steps, BCE, Adam), end to end: data, encoder, forward,
backward, optimiser, checkpoints. Prints network-batches per second (networks ×
batches per second) for one network and for the paper's 25-member sweep ensemble
(n_task = [2, 3, 6, 12, 24] × 5 runs), per network type; in brackets the same per
second of the process's CPU time, steadier on a machine that other jobs load.

    python benchmarks/bench_train.py                          # this checkout, 1 thread
    python benchmarks/bench_train.py --repo=/path/to/other    # another checkout of the project
    python benchmarks/bench_train.py --device=cuda --networks="['RNN']" --n_batch=2000

`repo` runs the same measurement on another checkout (e.g. the previous implementation,
`git worktree add /tmp/old <commit>`), in a fresh process, so both can be compared on
the same machine in the same session. Only train.defaults() and train.train() are used.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
repo = ''  # checkout to measure ('': this one)
networks = ['RNN', 'LSTM', 'gpt-2']  # network types to measure
n_batch = 300  # timed batches per setting (after a short warm-up)
device = 'cpu'  # 'cpu', 'cuda' or 'auto'
n_threads = 1  # CPU threads for torch
sizes = [1, 25]  # ensemble sizes: 1 network, and the sweep's 25 (5 task counts × 5 runs)
extra = {}  # more train.py hyperparameters for every run, e.g. {'data_threads': 8}
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
    sys.path.remove(HERE)
    sys.path.insert(0, root)  # the checkout under test
    for name in [m for m in sys.modules if m in ('configurator', 'checks')]:
        del sys.modules[name]
    import torch
    import train

    torch.set_num_threads(hp['n_threads'])
    base = train.defaults()

    def throughput(network, size):
        """Network-batches per second of one train.train call, warm-up excluded: per second
        of wall time, and per second of the process's CPU time (what a loaded machine's
        other processes take from the wall-time figure does not count in it)."""
        n_tasks, runs = (24, 1) if size == 1 else ([2, 3, 6, 12, 24], size // 5)
        with tempfile.TemporaryDirectory() as out:
            config = dict(base, n_task=n_tasks, runs=runs, device=hp['device'], network=network,
                          out_dir=out, n_batch=hp['n_batch'], ckpt_every=10 ** 9, **hp['extra'])
            if 'n_threads' in base:
                config['n_threads'] = hp['n_threads']
            train.train(dict(config, n_batch=20, out_dir=os.path.join(out, 'warmup')))
            t0, cpu0 = time.time(), time.process_time()
            folders = train.train(config)
            done = len(folders) * hp['n_batch']
            return done / (time.time() - t0), done / (time.process_time() - cpu0)

    print(f"checkout {root}, device {hp['device']}, {hp['n_threads']} thread(s), {hp['n_batch']} batches")
    for network in hp['networks']:
        rates = {size: throughput(network, size) for size in hp['sizes']}
        print(f"RESULT {network}: " + ', '.join(f"{size} network{'s' * (size > 1)} {rate:.0f} network-batches/s"
                                                 f" ({cpu:.0f} per CPU-second)"
                                                 for size, (rate, cpu) in rates.items()), flush=True)
