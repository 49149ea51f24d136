"""What the figure notebooks share, written once: finding result files (and the
commands that make a missing one), median + IQR summaries, and the recurring plot
elements. The notebooks import it after putting the repo root on sys.path."""
import os
import re
import sys
import warnings

import numpy as np
from matplotlib import colormaps, ticker

import generalize
import util

CEILING = 0.975  # OOD r² of a perfect network under the protocol (SPEC §7: σ = 0.2, T = 20)
NOISE_CEILINGS = {0.1: 0.994, 0.2: 0.975, 0.3: 0.942, 0.4: 0.893, 0.6: 0.755}  # same, per σ (SPEC §7)
PANEL = (3.2, 2.6)  # inches per panel

# ---------------------------------------------------------------------------------
# Where each result file comes from. Every experiment is one sweep trained into its
# own folder trained_networks/<label>/ and evaluated from there; <x> is the number in
# the label. Figures/README.md lists the same commands.

SWEEP = '--n_task=[2,3,6,12,24] --runs=5'
EXPERIMENTS = {  # label: (train.py overrides, generalize.py / sparsity.py overrides)
    'RNN': ('', ''),
    'RNN_NoLeak': ('--leaky=False', ''),
    'LSTM': ('--network=LSTM', "--select=\"{'network': 'LSTM'}\""),
    'gpt-2': ('--network=gpt-2', "--select=\"{'network': 'gpt-2'}\""),
    'Quad': ('--activ_enc=Quad', ''),
    'FreeRT': ('--task=LinearClassificationBound', ''),
    'Noise_<x>': ('--n_sd_in=<x>', ''),
    'Corr_<x>': ('--corr=<x>', ''),
    'HighDim_D<x>': ('--task=LinearClassificationHighDim --n_dim=<x>', ''),
}


def recipe(name):
    """The shell commands that produce results/<name>.npz: train the sweep, then
    evaluate it (generalize.py, or sparsity.py for sparsity_<label>)."""
    script = 'sparsity.py' if name.startswith('sparsity_') else 'generalize.py'
    label = name.removeprefix('sparsity_')
    extra = ''
    if label.endswith('_ID'):  # generalize.py appends _ID itself
        label, extra = label[:-3], '--out_of_distribution=False'
    sweep = label
    duration = re.fullmatch(r'FreeRT_T(\d+)', label)
    if duration:  # the free-RT networks evaluated on trials of T stimulus steps
        sweep = 'FreeRT'
        extra = (f"--timing=\"{{'fixation': 100, 'stimulus': {int(duration[1]) * 100}, "
                 "'delay': 0, 'decision': 100}\"")
    for pattern, (train_args, eval_args) in EXPERIMENTS.items():
        match = re.fullmatch(pattern.replace('<x>', '(.+)'), sweep)
        if match:
            x = match.group(1) if match.groups() else ''
            train = f"python train.py {train_args.replace('<x>', x)} {SWEEP} --out_dir=trained_networks/{sweep}"
            evaluate = f'python {script} --runs_dir=trained_networks/{sweep} {eval_args} {extra} --label={label}'
            return ' && '.join(' '.join(cmd.split()) for cmd in (train, evaluate))
    return f'python {script} --label={label} (see Figures/README.md)'


def analysis_recipe(script, sweep, run):
    """The command that writes analysis/<run>/ for the network trained_networks/<sweep>/<run>."""
    return f'python {script} --path=trained_networks/{sweep}/{run}'


# ---------------------------------------------------------------------------------
# Loading

def load(results_dir, name, required=True):
    """results/<name>.npz as a dict of arrays (ours or the paper's). A missing file
    raises FileNotFoundError with the command that makes it, or, when not
    `required`, prints a note and returns None."""
    path = os.path.join(results_dir, name + '.npz')
    if os.path.exists(path):
        return generalize.load_results(results_dir, name)
    how = f'{recipe(name)}\n(or put the paper\'s published {name}.npz there; see Figures/README.md)'
    if required:
        raise FileNotFoundError(f'{path} not found; produce it with:\n  {how}')
    print(f'note: {path} not found, skipped; produce it with: {recipe(name)}')
    return None


def load_sweep(results_dir, names, required=True):
    """{swept value: results} for the files of `names` ({value: name}) that exist;
    missing ones are skipped with a note. Raises FileNotFoundError (naming every file)
    when none exists and `required`."""
    found = {x: load(results_dir, name, required=False) for x, name in names.items()}
    found = {x: res for x, res in found.items() if res is not None}
    if not found and required:
        wanted = ', '.join(os.path.join(results_dir, n + '.npz') for n in names.values())
        first = next(iter(names.values()))
        raise FileNotFoundError(f'none of {wanted} exists; produce them with, e.g.:\n  {recipe(first)}')
    return found


def load_analysis(analysis_dir, run, filename, command, required=True):
    """analysis/<run>/<filename> (an .npz from analyze.py) as a dict of arrays, or None
    with a note when it is missing and not `required`."""
    path = os.path.join(analysis_dir, run, filename)
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if required:
        raise FileNotFoundError(f'{path} not found; produce it with:\n  {command}')
    print(f'note: {path} not found, skipped; produce it with: {command}')
    return None


# ---------------------------------------------------------------------------------
# Summaries

def pair_angles(angles):
    """The angle of every pair of decoded latents: the strict upper triangle of
    (..., D, D) matrices; arrays without a square trailing pair are taken as they are."""
    angles = np.asarray(angles, dtype=float)
    if angles.ndim >= 2 and angles.shape[-1] == angles.shape[-2] > 1:
        i, j = np.triu_indices(angles.shape[-1], 1)
        return angles[..., i, j]
    return angles


def quantity(res, key):
    """One quantity of a results file, per N_task on the first axis: 'r_sq',
    'angles' (between decoded latents) or 'sparsity'."""
    return pair_angles(res['angles']) if key == 'angles' else np.asarray(res[key], dtype=float)


def summary(values):
    """Median, 25th and 75th percentile of each item of `values` (an array: over all
    but the first axis; or a list of arrays of any sizes), NaNs ignored."""
    rows = [np.asarray(v, dtype=float).ravel() for v in values]
    with warnings.catch_warnings():  # an all-NaN row (networks not evaluated) gives NaN quietly
        warnings.simplefilter('ignore', RuntimeWarning)
        q = np.array([np.nanpercentile(r, [50, 25, 75]) if r.size else [np.nan] * 3 for r in rows])
    return q[:, 0], q[:, 1], q[:, 2]


def print_summary(title, xs, values):
    """One line per curve: x: median [p25, p75]."""
    med, lo, hi = summary(values)
    print(f'{title}: ' + ', '.join(f'{x}: {m:.3f} [{a:.3f}, {b:.3f}]' for x, m, a, b in zip(xs, med, lo, hi)))


# ---------------------------------------------------------------------------------
# Plotting

def subplots(nrows=1, ncols=1, panel=PANEL, **kwargs):
    """A figure in the project style with panels of `panel` inches."""
    kwargs.setdefault('layout', 'constrained')
    return util.plot_style().subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), **kwargs)


def figure(width, height):
    """An empty figure in the project style (for fig.subplot_mosaic layouts)."""
    return util.plot_style().figure(figsize=(width, height), layout='constrained')


def plot_iqr(ax, xs, values, label=None, color=None):
    """Median (line) and interquartile range (band) of `values` at each x."""
    med, lo, hi = summary(values)
    line, = ax.plot(xs, med, 'o-', ms=3, label=label, color=color)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    return line


def task_axis(ax, n_tasks):
    """Log x-axis labelled with the task counts."""
    n_tasks = sorted(int(k) for k in n_tasks)
    ax.set_xscale('log')
    ax.set_xticks(n_tasks, labels=[str(k) for k in n_tasks])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel('number of tasks $N_{task}$')


def reference(ax, y, label=None):
    """A dashed horizontal reference line (ceiling, 90°)."""
    ax.axhline(y, ls='--', c='gray', lw=0.8, label=label)


def compare(ax, results, names, key='r_sq'):
    """One median + IQR curve vs N_task per results file; `results` maps a label to
    its loaded file (None: missing, skipped), `names` the label to its legend entry."""
    present = {label: res for label, res in results.items() if res is not None}
    for label, res in present.items():
        values = quantity(res, key)
        plot_iqr(ax, res['n_tasks'], values, label=names[label])
        print_summary(f'{label} {key}', res['n_tasks'].tolist(), values)
    task_axis(ax, set().union(*(res['n_tasks'].tolist() for res in present.values())))
    ax.legend()


def task_colors(n_tasks):
    """A fixed colour per task count, so every panel uses the same ones."""
    cmap = colormaps['viridis']
    n_tasks = sorted(n_tasks)
    return {k: cmap(i / max(len(n_tasks) - 1, 1) * 0.9) for i, k in enumerate(n_tasks)}


def plot_sweep(ax, results, key='r_sq', n_tasks=None):
    """One median + IQR curve per N_task of a quantity across files: `results` maps
    the swept value (σ, D, T, correlation) to its loaded file. `n_tasks`: the task
    counts to show (default: all present)."""
    present = sorted(set().union(*(res['n_tasks'].tolist() for res in results.values())))
    colors = task_colors(present)
    for k in (present if n_tasks is None else n_tasks):
        xs, values = [], []
        for x in sorted(results):
            ks = results[x]['n_tasks'].tolist()
            if k in ks:
                xs.append(x)
                values.append(quantity(results[x], key)[ks.index(k)])
        if xs:
            plot_iqr(ax, xs, values, label=f'{k} tasks', color=colors.get(k))
            print_summary(f'{k} tasks {key}', xs, values)
    ax.legend(fontsize=7)


def save(fig, out_dir, name):
    """Write out_dir/<name>.png and .pdf; inside Jupyter also show the PNG (the
    project style draws off-screen)."""
    path = util.save_figure(fig, os.path.join(out_dir, name + '.png'))
    print(f'wrote {path} and .pdf')
    ipython = sys.modules.get('IPython')
    if ipython is not None and ipython.get_ipython() is not None:
        from IPython.display import Image, display
        display(Image(path))
