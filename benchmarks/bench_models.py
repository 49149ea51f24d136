"""Training throughput of the RNN ensemble: forward + backward + Adam steps per second.

Paper setting: frozen encoder 2 -> 100 -> 100 -> 40 (ReLU) on the stimulus channels,
fixation channel appended (41 inputs), RNN of 64 units, 24 outputs, batch 16, 22 steps,
BCE loss. Prints steps/s and network-batches/s (= M x steps/s) for M = 1 and M = 25.

    python benchmarks/bench_models.py [--threads=2] [--device=cpu]
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ensemble  # noqa: E402
from RNN import RNN  # noqa: E402

BATCH, STEPS, N_DIM, N_NEU, N_TASK = 16, 22, 2, 64, 24


def bench(n_members, device, fused, seconds=3.0):
    encoder = [ensemble.Linear(a, b, n_members).to(device)
               for a, b in [(N_DIM, 100), (100, 100), (100, 40)]]
    net = RNN(41, N_NEU, N_TASK, n_sd=0, tau=100, dt=100, n_members=n_members).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused)
    stim = torch.randn(n_members, BATCH, STEPS, N_DIM, device=device)
    fixation = torch.ones(n_members, BATCH, STEPS, 1, device=device)
    target = torch.rand(n_members, BATCH, STEPS, N_TASK, device=device).round()

    def step():
        with torch.no_grad():
            x = stim
            for i, layer in enumerate(encoder):
                x = layer(x) if i == len(encoder) - 1 else torch.relu_(layer(x))
            u = torch.cat([fixation, x], dim=-1)
        _, logits = net(u)
        # Sum of member losses: each member's gradient is that of its own mean loss.
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2, 3)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(20):  # warm-up
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    for fused in (False, True):
        for n_members in (1, 25):
            rate = bench(n_members, args.device, fused)
            print(f"Adam fused={fused!s:5}  M={n_members:3d}: {rate:8.1f} steps/s, "
                  f"{n_members * rate:9.1f} network-batches/s")


if __name__ == "__main__":
    main()
