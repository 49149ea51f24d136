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
n_threads = 1  # CPU threads for torch
unfinished = False  # also evaluate partly trained networks (default: refuse them, naming how to finish them)
# ------------------------------------------------------------------------
import checks
import configurator


def check(hp):
    """Reject impossible settings before any work is done (no slow imports needed)."""
    checks.positive_ints('n_tasks', hp['n_tasks'])
    checks.positive_int('n_runs', hp['n_runs'])
    checks.positive_int('n_threads', hp['n_threads'])
    checks.int_at_least('n_stim', hp['n_stim'], 2)
    checks.non_negative_int('seed', hp['seed'])
    checks.dictionary('select', hp['select'])
    checks.file_label('label', hp['label'])
    checks.folder('results_dir', hp['results_dir'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import os  # noqa: E402

import numpy as np  # noqa: E402

import checkpoints  # noqa: E402
import metrics  # noqa: E402
import plots  # noqa: E402
import representations as rep  # noqa: E402
import results  # noqa: E402
import tasks  # noqa: E402
import util  # noqa: E402


def steady_state_sparsity(rates):
    """Mean Vinje–Gallant sparseness over units with its 95 % CI half-width, and the
    percentage of active units, of steady states rates (m, N)."""
    mean, half = metrics.mean_ci(metrics.sparsity(rates))
    return mean, half, metrics.active_fraction(rates)


def sparsity_sweep(hp):
    """Evaluate every selected network; write results/sparsity_<label>.npz, .json and
    the plot; returns the path stem. As generalize.py: outputs checked and networks
    classified before any work, each network's values saved as it completes (a rerun
    continues), broken runs skipped and reported at the end (checkpoints.BrokenRuns)."""
    check(hp)
    checkpoints.check_output('results_dir', hp['results_dir'], keep=False)
    folders, batches, broken = checkpoints.find_sweep(hp['runs_dir'], hp['select'], hp['n_tasks'],
                                                      hp['n_runs'], hp['unfinished'])
    os.makedirs(hp['results_dir'], exist_ok=True)
    device = util.pick_device(hp['device'])
    util.set_threads(hp['n_threads'])
    stem = os.path.join(hp['results_dir'], f"sparsity_{hp['label']}")
    n_tasks = list(folders)  # the task counts found
    partial = results.Partial(stem, {k: hp[k] for k in ('n_stim', 'seed', 'device', 'n_threads')})
    shape = (len(n_tasks), hp['n_runs'])
    sparse, ci, active, trained = (np.full(shape, np.nan) for _ in range(4))
    for i, k in enumerate(n_tasks):
        for j, folder in enumerate(folders[k]):
            if batches.get(folder) is not None:
                trained[i, j] = batches[folder]
            if folder in broken:
                print(f"n_task={k:>3} {os.path.basename(folder)}: skipped, broken ({broken[folder]})")
                continue
            network = checkpoints.fingerprint(folder)
            res = partial.load(folder, network)
            if res is None:
                net, encoder, config = checkpoints.load_network(folder, device, noise_free=True)
                x = np.random.default_rng(hp['seed']).uniform(-0.5, 0.5, (hp['n_stim'], config['n_dim']))
                rates = rep.steady_states(net, encoder, tasks.training_env(config), x)
                res = dict(zip(('sparsity', 'ci', 'active'), map(np.array, steady_state_sparsity(rates))))
                partial.save(folder, network, **res)
            sparse[i, j], ci[i, j], active[i, j] = res['sparsity'], res['ci'], res['active']
            print(f"n_task={k:>3} {os.path.basename(folder)}: sparseness {sparse[i, j]:.3f} "
                  f"± {ci[i, j]:.3f}, {active[i, j]:.1f} % active")
    if all(folder in broken for found in folders.values() for folder in found):
        raise checkpoints.BrokenRuns(broken, wrote=None)
    results.save_results(stem + '.npz', sparsity=sparse, confidence_intervals=ci, active=active,
                         batches=trained, n_tasks=np.array(n_tasks))
    summary = {'config': hp, 'networks': {str(k): folders[k] for k in n_tasks},
               'n_tasks': n_tasks, 'batches': results.listed(trained), 'broken': broken,
               # networks saved as initialised (train.py --n_batch=0): the baseline, not a trained sweep
               'untrained': bool(np.isfinite(trained).any()) and bool(np.all(trained[np.isfinite(trained)] == 0)),
               'sparsity_mean': results.listed(_mean_over_runs(sparse)),
               'active_percent_mean': results.listed(_mean_over_runs(active)),
               'sparsity': results.listed(sparse), 'confidence_intervals': results.listed(ci),
               'active_percent': results.listed(active)}
    checkpoints.save_json(summary, stem + '.json')
    plot(stem, n_tasks, sparse, ci, active, hp['label'])
    print(f"wrote {stem}.npz, .json, .png")
    if broken:  # keep the per-network files: a rerun after retraining evaluates only those
        raise checkpoints.BrokenRuns(broken, wrote=stem + '.npz')
    partial.clear()
    return stem


def _mean_over_runs(values):
    found = np.isfinite(values).any(1)
    out = np.full(len(values), np.nan)
    out[found] = np.nanmean(values[found], 1)
    return out


def plot(stem, n_tasks, sparse, ci, active, label):
    """Sparseness (runs with their CIs, and the mean) and % active units vs the
    number of tasks, log x; one legend below both panels."""
    fig, axes = plots.subplots(1, 2)
    k = np.asarray(n_tasks, dtype=float)
    for j in range(sparse.shape[1]):
        jitter = k * 1.03 ** (j - (sparse.shape[1] - 1) / 2)  # spread the runs on the log axis
        axes[0].errorbar(jitter, sparse[:, j], yerr=ci[:, j], fmt='o', ms=3, c='gray', alpha=0.6,
                         label='one network (95 % CI)' if j == 0 else None)  # one legend entry for all
        axes[1].plot(jitter, active[:, j], 'o', ms=3, c='gray', alpha=0.6)
    axes[0].plot(k, _mean_over_runs(sparse), 'k-', label='mean over networks')
    axes[1].plot(k, _mean_over_runs(active), 'k-')
    axes[0].set(ylabel='sparseness (Vinje–Gallant)')
    axes[1].set(ylabel='active units (%)')
    for ax in axes:
        plots.task_axis(ax, n_tasks)
    fig.suptitle(label)
    fig.legend(*axes[0].get_legend_handles_labels(), loc='outside lower center', ncols=2, fontsize=7)
    plots.save_figure(fig, stem + '.png')


if __name__ == '__main__':
    configurator.run(sparsity_sweep, _hp)
