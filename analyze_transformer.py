"""Steady-state value vectors of a trained transformer (SPEC §6): for each attention
head, the value vector of the last stimulus token over a grid of noise-free stimuli
(x1, x2) ∈ [-.5, .5]², shown as one rate map per component, and the correlation of
each component with x1 and x2. The analyses and plots are analyze.py's.

    python analyze_transformer.py                                   # first 24-task gpt-2 in trained_networks/
    python analyze_transformer.py --path=trained_networks/<run folder>

Results go to out_dir/<run name>/: values_rate_maps.npz, values_head<k>.png/.pdf,
values_correlations.png/.pdf and values_summary.json.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
path = None  # a run folder or a paper .pth file; None: pick from runs_dir by select and run
runs_dir = 'trained_networks'  # where trained networks are found
select = {'n_task': 24, 'network': 'gpt-2'}  # config values the network must match
run = 0  # index among the networks matching select (sorted by n_task, run)
layer = -1  # transformer block whose value vectors are analysed
n_grid = 8  # n_grid x n_grid noise-free stimuli in [-.5, .5]²
out_dir = 'analysis'  # results go to out_dir/<run name>/
device = 'auto'  # 'auto', 'cpu' or 'cuda'
# ------------------------------------------------------------------------
import os

import numpy as np
import torch

import analyze
import checkpoints
import util
from configurator import run_script


def head_steady_states(net, encoder, env, x, layer=-1):
    """Value vectors (n, n_head, head_dim) of the last stimulus token of noise-free
    trials of latents x (the model is causal, so later tokens do not matter)."""
    ob = torch.as_tensor(env.observations(x))
    device = next(net.parameters()).device
    with torch.no_grad():
        v = net.head_values(util.network_inputs(ob.to(device), env, encoder), layer=layer)
    return v[:, analyze.last_stimulus_step(env)].cpu().numpy()


def analyze_transformer(hp):
    """Rate maps and x1/x2 correlations of every head's value vectors; writes the
    files and returns the summary."""
    path = analyze.select_path(hp)
    net, encoder, config = checkpoints.load_network(path, util.pick_device(hp['device']))
    if config['network'] != 'gpt-2':
        raise ValueError(f"network {config['network']!r} at {path}: analyze_transformer.py takes "
                         "a gpt-2 network (use analyze.py for RNN and LSTM)")
    name = analyze.run_name(path, config)
    folder = os.path.join(hp['out_dir'], name)
    os.makedirs(folder, exist_ok=True)
    env = util.training_env(config)
    x = analyze.stimulus_grid(hp['n_grid'], config['n_dim'])
    values = head_steady_states(net, encoder, env, x, hp['layer'])  # (n, n_head, head_dim)
    n_head, head_dim = values.shape[1:]
    maps = np.stack([analyze.rate_maps(values[:, k], hp['n_grid']) for k in range(n_head)])
    corr = np.stack([analyze.unit_correlations(values[:, k], x) for k in range(n_head)])
    np.savez(os.path.join(folder, 'values_rate_maps.npz'), rate_maps=maps, correlations=corr,
             grid=np.unique(x[:, 0]), stim=x)
    for k in range(n_head):
        analyze.plot_rate_maps(maps[k], f'{name} head {k}', os.path.join(folder, f'values_head{k}.png'))
    analyze.plot_correlations(corr.reshape(-1, 2), f'{name}: rows are heads',
                              os.path.join(folder, 'values_correlations.png'), layout=(n_head, head_dim))
    summary = {'network': path, 'n_head': int(n_head), 'head_dim': int(head_dim), 'layer': hp['layer'],
               'mean_abs_correlation_x1_x2_per_head': [analyze.mean_abs_correlation(c) for c in corr],
               'hyperparameters': hp}
    checkpoints.save_json(summary, os.path.join(folder, 'values_summary.json'))
    print(f"{n_head} heads × {head_dim} value components -> {folder}/")
    return summary


if __name__ == '__main__':
    run_script(analyze_transformer, globals(), doc=__doc__)
