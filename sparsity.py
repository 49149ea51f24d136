"""Sparseness of trained networks' steady states vs the number of tasks (SPEC §6).

For each network: n_stim noise-free random stimuli x ~ U(-.5, .5)^D, hidden state at
the last stimulus step; the percentage of active units (rate > 0) and the
Vinje–Gallant sparseness of each unit over the stimuli, averaged over units with a
95 % confidence interval.

    python sparsity.py                                              # RNN sweep -> results/sparsity_RNN.*
    python sparsity.py --select="{'network': 'LSTM'}" --label=LSTM
"""
# ---- hyperparameters (override with --name=value or a config file) ----
runs_dir = 'trained_networks'  # where trained networks are found
select = {'network': 'RNN'}  # config values the networks must match
n_tasks = [2, 3, 6, 12, 24]  # task counts to evaluate
n_runs = 5  # runs per task count (the first n_runs found)
label = 'RNN'  # output name: results/sparsity_<label>.npz / .json / .png
results_dir = 'results'  # where results and plots are written
n_stim = 1000  # noise-free random stimuli per network
seed = 0  # seed of the stimuli
device = 'auto'  # 'auto', 'cpu' or 'cuda'
# ------------------------------------------------------------------------
import os

import numpy as np

import analyze
import checkpoints
import metrics
import util
from configurator import run_script


def steady_state_sparsity(rates):
    """Mean Vinje–Gallant sparseness over units with its 95 % CI half-width, and the
    percentage of active units, of steady states rates (m, N)."""
    mean, half = metrics.mean_ci(metrics.sparsity(rates))
    return mean, half, metrics.active_fraction(rates)


def sparsity_sweep(hp):
    """Evaluate every selected network; write results/sparsity_<label>.npz, .json and
    the plot; returns the path stem."""
    if not hp['n_tasks'] or any(not isinstance(k, int) or k < 1 for k in hp['n_tasks']):
        raise ValueError(f"n_tasks={hp['n_tasks']!r} is not allowed: a list of positive integers")
    for name, low in (('n_runs', 1), ('n_stim', 2)):
        if not isinstance(hp[name], int) or hp[name] < low:
            raise ValueError(f"{name}={hp[name]!r} is not allowed: an integer >= {low}")
    if not isinstance(hp['select'], dict):
        raise ValueError(f"select={hp['select']!r} is not allowed: a dict of config values")
    folders = checkpoints.find_sweep(hp['runs_dir'], hp['select'], hp['n_tasks'], hp['n_runs'])
    device = util.pick_device(hp['device'])
    shape = (len(hp['n_tasks']), hp['n_runs'])
    sparse, ci, active = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for i, k in enumerate(hp['n_tasks']):
        for j, folder in enumerate(folders[k]):
            net, encoder, config = analyze.load_noise_free(folder, device)
            x = np.random.default_rng(hp['seed']).uniform(-0.5, 0.5, (hp['n_stim'], config['n_dim']))
            rates = analyze.steady_states(net, encoder, util.training_env(config), x)
            sparse[i, j], ci[i, j], active[i, j] = steady_state_sparsity(rates)
            print(f"n_task={k:>3} {os.path.basename(folder)}: sparseness {sparse[i, j]:.3f} "
                  f"± {ci[i, j]:.3f}, {active[i, j]:.1f} % active")
    os.makedirs(hp['results_dir'], exist_ok=True)
    stem = os.path.join(hp['results_dir'], f"sparsity_{hp['label']}")
    with open(stem + '.npz', 'wb') as f:
        np.savez(f, sparsity=sparse, confidence_intervals=ci, active=active, n_tasks=np.array(hp['n_tasks']))
    summary = {'config': hp, 'networks': {str(k): folders[k] for k in hp['n_tasks']},
               'n_tasks': hp['n_tasks'],
               'sparsity_mean': _nan_to_none(_mean_over_runs(sparse)),
               'active_percent_mean': _nan_to_none(_mean_over_runs(active)),
               'sparsity': _nan_to_none(sparse), 'confidence_intervals': _nan_to_none(ci),
               'active_percent': _nan_to_none(active)}
    checkpoints.save_json(summary, stem + '.json')
    plot(stem, hp['n_tasks'], sparse, ci, active, hp['label'])
    print(f"wrote {stem}.npz, .json, .png")
    return stem


def _mean_over_runs(values):
    found = np.isfinite(values).any(1)
    out = np.full(len(values), np.nan)
    out[found] = np.nanmean(values[found], 1)
    return out


def _nan_to_none(a):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist()


def plot(stem, n_tasks, sparse, ci, active, label):
    """Sparseness (runs with their CIs, and the mean) and % active units vs the
    number of tasks, log x."""
    plt = util.plot_style()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.6), layout='constrained')
    k = np.asarray(n_tasks, dtype=float)
    for j in range(sparse.shape[1]):
        jitter = k * 1.03 ** (j - (sparse.shape[1] - 1) / 2)  # spread the runs on the log axis
        axes[0].errorbar(jitter, sparse[:, j], yerr=ci[:, j], fmt='o', ms=3, c='gray', alpha=0.6)
        axes[1].plot(jitter, active[:, j], 'o', ms=3, c='gray', alpha=0.6)
    axes[0].plot(k, _mean_over_runs(sparse), 'k-')
    axes[1].plot(k, _mean_over_runs(active), 'k-')
    axes[0].set(ylabel='sparseness (Vinje–Gallant)')
    axes[1].set(ylabel='active units (%)')
    for ax in axes:
        ax.set(xscale='log', xlabel='number of tasks', title=label)
        ax.set_xticks(k, labels=[str(n) for n in n_tasks])
        ax.minorticks_off()
    util.save_figure(fig, stem + '.png')


if __name__ == '__main__':
    run_script(sparsity_sweep, globals(), doc=__doc__)
