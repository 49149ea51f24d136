"""What the figure notebooks share beyond the library's plots and results modules:
finding result files (and the commands that make a missing one) and the sweep plots.
The notebooks import it after putting the repo root on sys.path."""
import os
import sys

import numpy as np

import experiments
import plots
import results

NOISE_CEILINGS = {0.1: 0.994, 0.2: 0.975, 0.3: 0.942, 0.4: 0.893, 0.6: 0.755}  # OOD r² ceiling per σ (SPEC §7)

# ---------------------------------------------------------------------------------
# Where each result file comes from: the experiments table (experiments.py, shown in
# Figures/README.md); `python sweep.py <figure>` makes everything a figure needs.

def recipe(name):
    """The shell commands that produce results/<name>.npz."""
    return experiments.recipe(name)


def analysis_recipe(script, sweep, run):
    """The command that writes analysis/<run>/ for the network trained_networks/<sweep>/<run>."""
    return f'python {script} --path=trained_networks/{sweep}/{run}'


# ---------------------------------------------------------------------------------
# Loading

PROTOCOLS = ('correct', 'paper')  # generalize.py's OOD test sets, in the notebooks' `protocol` parameter


def ood(label, protocol):
    """The results file of `label` under an OOD protocol: <label> (the held-out
    quadrant) or <label>_paper (the paper's test sets, generalize.py --protocol=paper)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not allowed: expected 'correct' or 'paper'")
    return results.result_name(label, protocol=protocol)


def protocol_title(protocol):
    """A figure's title naming the paper's test sets ('' under the correct protocol)."""
    return "the paper's test sets" if protocol == 'paper' else ''


def load(results_dir, name, required=True):
    """results/<name>.npz as a dict of arrays (ours or the paper's). A missing file
    raises FileNotFoundError with the command that makes it, or, when not
    `required`, prints a note and returns None."""
    path = os.path.join(results_dir, name + '.npz')
    if os.path.exists(path):
        return results.load_results(results_dir, name)
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
# Plotting across files

def plot_sweep(ax, files, key='r_sq', n_tasks=None):
    """One median + IQR curve per N_task of a quantity across files: `files` maps
    the swept value (σ, D, T, correlation) to its loaded results. `n_tasks`: the task
    counts to show (default: all present)."""
    present = sorted(set().union(*(res['n_tasks'].tolist() for res in files.values())))
    colors = plots.task_colors(present)
    absent = [k for k in (n_tasks or []) if k not in present]
    if absent:  # a partial sweep: show what was evaluated
        print(f'note: n_task {absent} in none of the files; showing {[k for k in n_tasks if k in present]}')
    for k in (present if n_tasks is None else n_tasks):
        xs, values = [], []
        for x in sorted(files):
            ks = files[x]['n_tasks'].tolist()
            if k in ks:
                xs.append(x)
                values.append(plots.quantity(files[x], key)[ks.index(k)])
        if xs:
            plots.plot_iqr(ax, xs, values, label=f'{k} tasks', color=colors.get(k))
            plots.print_summary(f'{k} tasks {key}', xs, values)
    plots.legend(ax)


def save(fig, out_dir, name):
    """Write out_dir/<name>.png and .pdf; inside Jupyter also show the PNG (the
    project style draws off-screen)."""
    path = plots.save_figure(fig, os.path.join(out_dir, name + '.png'))
    print(f'wrote {path} and .pdf')
    ipython = sys.modules.get('IPython')
    if ipython is not None and ipython.get_ipython() is not None:
        from IPython.display import Image, display
        display(Image(path))
