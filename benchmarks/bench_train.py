"""Training throughput of train.py at the paper's defaults (64-unit ReLU RNN, frozen
encoder, 24 tasks, batch 16, 22 steps, BCE, Adam), end to end: data, encoder,
forward, backward, optimiser. Prints network-batches per second (ensemble size ×
batches per second) for one network and for the paper's 25-member sweep ensemble
(n_task = [2, 3, 6, 12, 24] × 5 runs).

    python benchmarks/bench_train.py [--n_batch=300] [--device=cpu] [--n_threads=2]
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from configurator import configure  # noqa: E402

n_batch = 300  # timed batches per setting (after a short warm-up)
device = 'cpu'  # 'cpu', 'cuda' or 'auto'
n_threads = None  # CPU threads for torch; None: torch's default
network = 'RNN'  # 'RNN', 'LSTM' or 'gpt-2'


def throughput(n_tasks, runs, hp):
    """Network-batches per second of one train.train call, warm-up excluded."""
    with tempfile.TemporaryDirectory() as out:
        config = dict(train.defaults(), n_task=n_tasks, runs=runs, device=hp['device'],
                      n_threads=hp['n_threads'], network=hp['network'], out_dir=out,
                      n_batch=hp['n_batch'], ckpt_every=10 ** 9)
        train.train(dict(config, n_batch=20, out_dir=os.path.join(out, 'warmup')))
        t0 = time.time()
        folders = train.train(config)
        return len(folders) * hp['n_batch'] / (time.time() - t0)


if __name__ == '__main__':
    hp = configure(globals(), doc=__doc__, print_config=False)
    single = throughput(24, 1, hp)
    sweep = throughput([2, 3, 6, 12, 24], 5, hp)
    print(f"\n{network} on {device}: 1 network {single:.0f} network-batches/s; "
          f"25-member ensemble {sweep:.0f} network-batches/s")
