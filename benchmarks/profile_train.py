"""Where a training batch's time goes: train.py's 25-member sweep ensemble (paper
defaults, one thread) under torch.profiler, operators grouped by name, with the share
of the wall time, the calls per batch and, for the matrix products, the GFLOP/s they
reach. What is left of the wall time outside every operator is Python, autograd's
engine and the data pipeline.

    python benchmarks/profile_train.py                         # RNN
    python benchmarks/profile_train.py --network=LSTM --top=15

The profiler adds a little overhead per operator, so the shares matter more than the
absolute numbers (benchmarks/bench_train.py measures throughput without it).
"""
# ---- hyperparameters (override with --name=value or a config file) ----
network = 'RNN'  # 'RNN', 'LSTM' or 'gpt-2'
n_batch = 100  # profiled batches (after a short warm-up)
n_threads = 1  # CPU threads for torch
top = 12  # operators listed
# ------------------------------------------------------------------------
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configurator import configure

if __name__ == '__main__':
    hp = configure(globals(), doc=__doc__, print_config=False)
    import torch
    from torch.profiler import ProfilerActivity, profile

    import train

    torch.set_num_threads(hp['n_threads'])
    with tempfile.TemporaryDirectory() as out:
        config = dict(train.defaults(), network=hp['network'], n_task=[2, 3, 6, 12, 24], runs=5, device='cpu',
                      n_threads=hp['n_threads'], out_dir=out, ckpt_every=10 ** 9)
        train.train(dict(config, n_batch=20, out_dir=os.path.join(out, 'warmup')))
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            t0 = time.perf_counter()
            train.train(dict(config, n_batch=hp['n_batch']))
            wall = time.perf_counter() - t0
    rows = [e for e in prof.key_averages() if e.key not in ('aten::to', 'aten::_to_copy')]
    rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = wall * 1e6
    covered = sum(e.self_cpu_time_total for e in rows)
    flops = sum(e.flops or 0 for e in rows)
    print(f"{hp['network']}, 25 members, {hp['n_batch']} batches in {wall:.2f} s under the profiler "
          f"({25 * hp['n_batch'] / wall:.0f} network-batches/s); {flops / hp['n_batch'] / 25 / 1e6:.1f} MFLOP "
          f"of matrix products per network-batch")
    print(f"{'operator':<42} {'% wall':>7} {'calls/batch':>12} {'GFLOP/s':>8}")
    for e in rows[:hp['top']]:
        rate = f"{e.flops / e.self_cpu_time_total / 1e3:.1f}" if e.flops else ''
        print(f"{e.key[:42]:<42} {100 * e.self_cpu_time_total / total_us:>6.1f}% "
              f"{e.count / hp['n_batch']:>12.0f} {rate:>8}")
    matmul_us = sum(e.self_cpu_time_total for e in rows if e.flops)
    print(f"{'all matrix products':<42} {100 * matmul_us / total_us:>6.1f}%  at {flops / matmul_us / 1e3:.1f} GFLOP/s")
    print(f"{'all other operators':<42} {100 * (covered - matmul_us) / total_us:>6.1f}%")
    print(f"{'outside operators (Python, autograd, data)':<42} {100 * (1 - covered / total_us):>6.1f}%")
