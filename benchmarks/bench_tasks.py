"""Time to generate one training batch (16 trials x 22 steps, LinearClassificationCentOut, 24 tasks):
our BatchSource versus neurogym's Dataset. Run: python benchmarks/bench_tasks.py"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import neurogym
import torch

import tasks

torch.set_num_threads(1)
batch_sz, n_batches = 16, 5000


def ms_per_batch(draw, n):
    draw()  # warm-up (first chunk / cache)
    t0 = time.perf_counter()
    for _ in range(n):
        draw()
    return 1e3 * (time.perf_counter() - t0) / n


env = tasks.LinearClassificationCentOut(n_task=24)
source = tasks.BatchSource([env], batch_sz=batch_sz, seed=0)
inputs, targets, latents, family = next(source)
print(f"batch: inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}, latents {tuple(latents.shape)}")
print(f"BatchSource (chunk={source.chunk}): {ms_per_batch(lambda: next(source), n_batches):.4f} ms/batch")

# neurogym's Dataset steps through trials one by one in Python
dataset = neurogym.Dataset(env, batch_size=batch_sz, seq_len=env.n_steps, batch_first=True)
print(f"neurogym.Dataset: {ms_per_batch(lambda: next(dataset), n_batches // 10):.4f} ms/batch")
