"""Model throughput at the paper's sizes (41 inputs, 64 hidden units / embedding, 24
outputs, batch 16 trials x 22 steps): forward + BCE loss + backward + Adam step of the
networks alone (no task data, no encoder), for the fused paths (hand-written RNN/LSTM
recurrences, the fast GPT attention and dropout) and the plain autograd references
(`net.fused = False`) in the same run, interleaved so that load from other processes
hits both alike. Prints network-batches per second (members x steps per second).

    python benchmarks/bench_models.py [--networks=['RNN','LSTM','gpt-2']] [--members=[25,1]]

Timings are the best of `rounds` rounds; `clock='thread'` counts this thread's CPU time
only (robust to other processes taking the core, not to their use of caches and memory).

Memory: glibc gives freed multi-MB tensors back to the OS, so every training step
re-faults them (hundreds to thousands of page faults per step at M = 25, 5-10 % of the
step here). Running with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
in the environment (both: either alone makes it worse) keeps them in the heap. Both
paths share one process, so each sees the heap the other left.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configurator import configure
from RNN import LSTM, RNN
from transformer import GPT

networks = ['RNN', 'LSTM', 'gpt-2']  # which networks to time
members = [25, 1]  # ensemble sizes to time (25: the paper's sweep; 1: a single network)
rounds = 7  # timed rounds per setting; the best round counts
seconds = 0.5  # approximate length of one round
n_threads = 1  # CPU threads for torch
device = 'cpu'  # 'cpu' or 'cuda'
clock = 'wall'  # 'wall' (perf_counter) or 'thread' (this thread's CPU time; CPU only)

N_IN, N_HIDDEN, N_OUT, BATCH, STEPS = 41, 64, 24, 16, 22


def build(network, n_members):
    """The network of train.py's defaults (ReLU RNN with dt = tau, LSTM, 1-layer gpt-2)."""
    if network == 'RNN':
        return RNN(N_IN, N_HIDDEN, N_OUT, n_sd=0.0, tau=100, dt=100, n_members=n_members)
    if network == 'LSTM':
        return LSTM(N_IN, N_HIDDEN, N_OUT, n_members=n_members)
    return GPT(N_IN, N_OUT, n_embd=N_HIDDEN, n_layer=1, n_head=8, n_members=n_members)


def throughputs(network, n_members, hp):
    """{'reference': network-batches/s, 'fused': network-batches/s} of one setting."""
    torch.manual_seed(0)
    net = build(network, n_members).to(hp['device']).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    u = torch.randn(n_members, BATCH, STEPS, N_IN, device=hp['device'])
    target = torch.rand(n_members, BATCH, STEPS, N_OUT, device=hp['device']).round()
    now = time.thread_time if hp['clock'] == 'thread' else time.perf_counter
    sync = torch.cuda.synchronize if hp['device'] == 'cuda' else (lambda: None)

    def step():
        _, out = net(u)
        loss = F.binary_cross_entropy_with_logits(out, target, reduction='none').mean((1, 2, 3)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # steps per round, from one warm-up round of the reference (the slower path)
    net.fused = False
    step()
    sync()
    t0 = now()
    step()
    sync()
    n_steps = max(1, round(hp['seconds'] / max(now() - t0, 1e-6)))
    best = {'reference': float('inf'), 'fused': float('inf')}
    for _ in range(hp['rounds']):
        for path in best:
            net.fused = path == 'fused'
            step()  # warm-up after switching paths
            sync()
            t0 = now()
            for _ in range(n_steps):
                step()
            sync()
            best[path] = min(best[path], (now() - t0) / n_steps)
    return {path: n_members / t for path, t in best.items()}


if __name__ == '__main__':
    hp = configure(globals(), lists=('networks', 'members'), doc=__doc__, print_config=False)
    torch.set_num_threads(hp['n_threads'])
    print(f"forward + loss + backward + Adam, {hp['n_threads']} thread(s), {hp['device']}, "
          f"best of {hp['rounds']} rounds ({hp['clock']} clock); network-batches/s")
    for network in hp['networks']:
        for n_members in hp['members']:
            rate = throughputs(network, n_members, hp)
            print(f"{network:>6} M={n_members:<3} reference {rate['reference']:7.0f}   "
                  f"fused {rate['fused']:7.0f}   fused/reference {rate['fused'] / rate['reference']:.2f}x",
                  flush=True)
