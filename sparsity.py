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
overwrite = False  # replace a result file made from other networks (default: refuse, naming the file)
# ------------------------------------------------------------------------
import checks
import configurator


# at least what one stimulus costs a paper-sized network (22 steps of inputs, encoder
# layers and 64 rates, float32): the estimate that refuses an impossible n_stim up front
_BYTES_PER_STIMULUS = 22 * (3 + 100 + 100 + 40 + 64) * 4


def check(hp):
    """Reject impossible settings before any work is done (no slow imports needed)."""
    checks.positive_ints('n_tasks', hp['n_tasks'])
    checks.positive_int('n_runs', hp['n_runs'])
    checks.positive_int('n_threads', hp['n_threads'])
    checks.int_at_least('n_stim', hp['n_stim'], 2)
    checks.fits_memory('n_stim', hp['n_stim'], hp['n_stim'] * _BYTES_PER_STIMULUS)
    checks.non_negative_int('seed', hp['seed'])
    checks.dictionary('select', hp['select'])
    checks.file_label('label', hp['label'])
    checks.folder('results_dir', hp['results_dir'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import numpy as np

import evaluation
import metrics
import plots
import representations as rep
import results
import tasks


def steady_state_sparsity(rates):
    """Mean Vinje–Gallant sparseness over units with its 95 % CI half-width, and the
    percentage of active units, of steady states rates (m, N)."""
    mean, half = metrics.mean_ci(metrics.sparsity(rates))
    return mean, half, metrics.active_fraction(rates)


def sparsity_sweep(hp):
    """Evaluate every selected network; write results/sparsity_<label>.npz, .json and
    the plot; returns the path stem. The loop is generalize.py's (evaluation.Sweep):
    outputs and networks checked before any work, each network's values saved as it
    completes (a rerun continues), broken runs skipped and reported at the end."""
    check(hp)
    sweep = evaluation.Sweep(hp, 'sparsity.py', [results.result_name(hp['label'], sparsity=True)],
                             {k: hp[k] for k in ('n_stim', 'seed', 'device', 'n_threads')})

    def measure(net, encoder, config, n_task):
        x = np.random.default_rng(hp['seed']).uniform(-0.5, 0.5, (hp['n_stim'], config['n_dim']))
        rates = rep.steady_states(net, encoder, tasks.training_env(config), x)
        return dict(zip(('sparsity', 'ci', 'active'), steady_state_sparsity(rates)))

    def describe(res):
        return f"sparseness {res['sparsity']:.3f} ± {res['ci']:.3f}, {res['active']:.1f} % active"

    arrays = sweep.evaluate(measure, describe, noise_free=True)
    sparse, ci, active, trained = arrays['sparsity'], arrays['ci'], arrays['active'], arrays['batches']
    stem, = sweep.stems
    sweep.write(stem, {'sparsity': sparse, 'confidence_intervals': ci, 'active': active, 'batches': trained,
                       'n_tasks': np.array(sweep.n_tasks)},
                sweep.summary(trained,
                              # networks saved as initialised (train.py --n_batch=0): the baseline, not a trained sweep
                              untrained=bool(np.isfinite(trained).any()) and bool(np.all(trained[np.isfinite(trained)] == 0)),
                              sparsity_mean=results.listed(_mean_over_runs(sparse)),
                              active_percent_mean=results.listed(_mean_over_runs(active)),
                              sparsity=results.listed(sparse), confidence_intervals=results.listed(ci),
                              active_percent=results.listed(active)))
    plot(stem, sweep.n_tasks, sparse, ci, active, hp['label'])
    print(f"wrote {stem}.npz, .json, .png")
    sweep.finish()
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
