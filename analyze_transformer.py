"""Steady-state value vectors of a trained transformer (SPEC §6): for each attention
head, the value vector of the last stimulus token over a grid of noise-free stimuli
(x1, x2) ∈ [-.5, .5]², shown as one rate map per component, and the correlation of
each component with x1 and x2, with the analyses and plots analyze.py uses
(representations.py, plots.py).

    python analyze_transformer.py                                   # first 24-task gpt-2 in trained_networks/
    python analyze_transformer.py --path=trained_networks/<run folder>

Results go to out_dir/<run name>/: values_rate_maps.npz, values_head<k>.png/.pdf,
values_correlations.png/.pdf and values_summary.json.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
path = None  # a run folder or a paper .pth file; None: pick from runs_dir by select and index
runs_dir = 'trained_networks'  # where trained networks are found
select = {'n_task': 24, 'network': 'gpt-2'}  # config values the network must match
index = 0  # which of the networks matching select (0: the first, sorted by n_task, run)
layer = -1  # transformer block whose value vectors are analysed
n_grid = 8  # n_grid x n_grid noise-free stimuli in [-.5, .5]²
seed = 0  # seed of the random stimuli the disentanglement metrics score
out_dir = 'analysis'  # results go to out_dir/<run name>/
device = 'auto'  # 'auto', 'cpu' or 'cuda'
n_threads = 1  # CPU threads for torch
unfinished = False  # also analyse a partly trained network (default: refuse it, naming how to finish it)
overwrite = False  # replace an analysis of another network (or of a longer training) in the same folder (default: refuse)
# ------------------------------------------------------------------------
import checks
import configurator


def check(hp):
    """Reject impossible settings before any work is done (no slow imports needed)."""
    checks.int_at_least('n_grid', hp['n_grid'], 2)
    if not isinstance(hp['layer'], int):
        checks.fail('layer', hp['layer'], 'an integer (block index, negative from the end)')
    checks.non_negative_int('index', hp['index'])
    checks.non_negative_int('seed', hp['seed'])
    checks.positive_int('n_threads', hp['n_threads'])
    checks.dictionary('select', hp['select'])
    checks.folder('out_dir', hp['out_dir'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import os

import numpy as np
import torch

import checkpoints
import disentanglement
import networks
import plots
import representations as rep
import results
import tasks
import util

SUMMARY = 'values_summary.json'  # written last: what the folder was made from (results.refuse_replacing reads it)


def head_steady_states(net, encoder, env, x, layer=-1):
    """Value vectors (n, n_head, head_dim) of the last stimulus token of noise-free
    trials of latents x (the model is causal, so later tokens do not matter)."""
    ob = torch.as_tensor(env.observations(x))
    device = next(net.parameters()).device
    with torch.no_grad():
        v = net.head_values(networks.network_inputs(ob.to(device), env, encoder), layer=layer)
    return v[:, rep.last_stimulus_step(env)].cpu().numpy()


def analyze_transformer(hp):
    """Rate maps and x1/x2 correlations of every head's value vectors; writes the
    files and returns the summary."""
    check(hp)
    path, batches = checkpoints.select_network(hp['path'], hp['runs_dir'], hp['select'], hp['index'],
                                               hp['unfinished'])
    util.set_threads(hp['n_threads'])
    net, encoder, config = checkpoints.load_network(path, util.pick_device(hp['device']))
    if config['network'] != 'gpt-2':
        raise ValueError(f"network {config['network']!r} at {path}: analyze_transformer.py takes "
                         "a gpt-2 network (use analyze.py for RNN and LSTM)")
    name = config['name']
    folder = os.path.join(hp['out_dir'], name)
    results.refuse_replacing(os.path.join(folder, SUMMARY), os.path.join(folder, SUMMARY), {path: batches},
                             hp['overwrite'], elsewhere='--out_dir')  # before any work
    checkpoints.check_output('out_dir', folder)
    env = tasks.training_env(config)
    x = rep.stimulus_grid(hp['n_grid'], config['n_dim'])
    values = head_steady_states(net, encoder, env, x, hp['layer'])  # (n, n_head, head_dim)
    n_head, head_dim = values.shape[1:]
    maps = np.stack([rep.rate_maps(values[:, k], hp['n_grid']) for k in range(n_head)])
    corr = np.stack([rep.unit_correlations(values[:, k], x) for k in range(n_head)])
    results.save_results(os.path.join(folder, 'values_rate_maps.npz'), rate_maps=maps, correlations=corr,
                         grid=np.unique(x[:, 0]), stim=x)
    for k in range(n_head):
        plots.plot_rate_maps(maps[k], f'{name} head {k}', os.path.join(folder, f'values_head{k}.png'))
    plots.plot_correlations(corr.reshape(-1, 2), f'{name}: rows are heads',
                              os.path.join(folder, 'values_correlations.png'), layout=(n_head, head_dim))
    # the disentanglement metrics of the value components (issue 21), as analyze.py scores an RNN's units
    xs = np.random.default_rng(hp['seed']).uniform(-0.5, 0.5, (disentanglement.N_STIMULI, config['n_dim']))
    components = head_steady_states(net, encoder, env, xs, hp['layer']).reshape(len(xs), -1)
    summary = {'network': path, 'batches': batches, 'n_head': int(n_head), 'head_dim': int(head_dim), 'layer': hp['layer'],
               'mean_abs_correlation_x1_x2_per_head': [rep.mean_abs_correlation(c) for c in corr],
               'disentanglement': disentanglement.network_metrics(components, xs, seed=hp['seed']),
               'hyperparameters': hp}
    results.save(os.path.join(folder, SUMMARY), summary)
    print(f"{n_head} heads × {head_dim} value components -> {folder}/")
    return summary


if __name__ == '__main__':
    configurator.run(analyze_transformer, _hp)
