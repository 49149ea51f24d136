"""The one plot style, figure saving, and the plot elements that scripts and figure
notebooks share (curves vs the number of tasks, per-network dots, rate maps).
Headless: figures are drawn off-screen and saved as PNG (and PDF)."""
import os
import textwrap

import matplotlib

matplotlib.use('Agg')  # never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps, ticker  # noqa: E402

import results  # noqa: E402

CEILING = 0.975  # OOD r² of a perfect network under the protocol (SPEC §7: σ = 0.2, T = 20)
PANEL = (3.2, 2.6)  # inches per panel
STYLE = {'figure.dpi': 120, 'savefig.dpi': 200, 'font.size': 9, 'axes.spines.top': False,
         'axes.spines.right': False, 'axes.titlesize': 10, 'legend.frameon': False,
         'savefig.bbox': 'tight'}
plt.rcParams.update(STYLE)


def subplots(nrows=1, ncols=1, panel=PANEL, **kwargs):
    """A figure in the project style with panels of `panel` inches."""
    kwargs.setdefault('layout', 'constrained')
    return plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), **kwargs)


def figure(width, height, **kwargs):
    """An empty figure in the project style (for mosaics and 3-D axes)."""
    return plt.figure(figsize=(width, height), **kwargs)


def save_figure(fig, path, pdf=True):
    """Save a figure as PNG (and PDF) and close it; returns the PNG path."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    base = os.path.splitext(path)[0]
    # the tight bounding box leaves out the axis labels and legend of 3-D axes: name
    # them, or the PC3 label and a legend beside the axes are cut off
    extra = [artist for ax in fig.axes if ax.name == '3d'
             for artist in (ax.xaxis.label, ax.yaxis.label, ax.zaxis.label, ax.get_legend()) if artist]
    fig.savefig(base + '.png', bbox_extra_artists=extra or None)
    if pdf:
        fig.savefig(base + '.pdf', bbox_extra_artists=extra or None)
    plt.close(fig)
    return base + '.png'


# ---------------------------------------------------------------------------------
# Curves vs the number of tasks

def task_axis(ax, n_tasks):
    """Log x-axis labelled with the task counts."""
    n_tasks = sorted(int(k) for k in n_tasks)
    ax.set_xscale('log')
    ax.set_xticks(n_tasks, labels=[str(k) for k in n_tasks])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel('number of tasks $N_{task}$')


def legend(ax, title=None):
    """The legend beside the axes, on their right, so that it never covers the data
    (IQR bands, per-network dots, reference lines)."""
    return ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=7,
                     title=title, title_fontsize=7)


def empty_note(ax, text):
    """Say in the plot why its axes are empty (e.g. 'no fixed points found')."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha='center', va='center', color='gray')


def reference(ax, y, label=None):
    """A dashed horizontal reference line (ceiling, 90°)."""
    ax.axhline(y, ls='--', c='gray', lw=0.8, label=label)


def plot_iqr(ax, xs, values, label=None, color=None):
    """Median (line) and interquartile range (band) of `values` at each x, pooled
    over everything but the first axis (the paper's summary)."""
    med, lo, hi = results.quantile_rows(values)
    line, = ax.plot(xs, med, 'o-', ms=3, label=label, color=color)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    return line


def plot_networks(ax, xs, values, label=None, color=None, offset=0.0):
    """One dot per network (its mean over splits × fits) and the median over networks
    with its bootstrap 95 % interval, at each x. `values` (len(xs), n_runs, ...);
    `offset` shifts a curve sideways on the log axis so several stay readable."""
    xs = np.asarray(xs, dtype=float) * 1.08 ** offset
    nets = results.per_network(values)
    summary = [results.bootstrap_median_ci(row) for row in nets]
    med = np.array([s[0] for s in summary])
    err = np.abs(np.array([[s[1] for s in summary], [s[2] for s in summary]]) - med)
    line = ax.errorbar(xs, med, yerr=err, fmt='o-', ms=4, capsize=2, label=label, color=color)[0]
    spread = 1.03 ** np.linspace(-1, 1, nets.shape[1]) if nets.shape[1] > 1 else np.ones(1)
    ax.scatter((xs[:, None] * spread[None, :]).ravel(), nets.ravel(), s=6, alpha=0.45,
               color=line.get_color(), lw=0)
    return line


def compare(ax, curves, names, key='r_sq', networks=True):
    """One curve vs N_task per results file: `curves` maps a label to its loaded
    file (None: missing, skipped), `names` the label to its legend entry. With
    `networks`, dots per network and the median over networks with its interval;
    otherwise the pooled median and IQR. Prints the numbers."""
    present = {label: res for label, res in curves.items() if res is not None}
    every = sorted(set().union(*(res['n_tasks'].tolist() for res in present.values())))
    # networks trained for different budgets: say so in the legend, the comparison is not like for like
    budgets = {label: int(np.nanmax(res['batches'])) for label, res in present.items()
               if 'batches' in res and np.isfinite(res['batches']).any()}
    mixed = len(set(budgets.values())) > 1
    if mixed:
        print('note: the curves come from different training budgets: '
              + ', '.join(f'{label} {b:,} batches' for label, b in budgets.items()))
        names = {label: f'{name} ({short_count(budgets[label])})' if label in budgets else name
                 for label, name in names.items()}
    for i, (label, res) in enumerate(present.items()):
        if sorted(res['n_tasks'].tolist()) != every:  # a partial sweep: its task counts are shown
            print(f'note: {label} has n_task {res["n_tasks"].tolist()} only (of {every})')
        values = quantity(res, key)
        if networks and values.ndim >= 2:
            plot_networks(ax, res['n_tasks'], values, label=names[label], offset=i - (len(present) - 1) / 2)
        else:
            plot_iqr(ax, res['n_tasks'], values, label=names[label])
        print_summary(f'{label} {key}', res['n_tasks'].tolist(), values)
    task_axis(ax, every)
    legend(ax, title='(training batches)' if mixed else None)


def short_count(n):
    """A count as the README writes budgets: 100000 -> '1e5', 25000 -> '2.5e4'; others
    with thousands separators. Short, so that a legend beside the axes leaves them room."""
    mantissa, exponent = f'{n:e}'.split('e')
    mantissa = mantissa.rstrip('0').rstrip('.')
    return f'{mantissa}e{int(exponent)}' if n >= 1000 and len(mantissa) <= 3 else f'{n:,}'


def quantity(res, key):
    """One quantity of a results file, per N_task on the first axis: 'r_sq',
    'angles' (between decoded latents) or 'sparsity'."""
    return results.pair_angles(res['angles']) if key == 'angles' else np.asarray(res[key], dtype=float)


def print_summary(title, xs, values):
    """One line per curve. An array (len(xs), n_runs, ...): median over networks
    [bootstrap 95 % interval]; a list of arrays: pooled median [IQR]."""
    if isinstance(values, np.ndarray) and values.ndim >= 2:
        rows, what = [results.bootstrap_median_ci(row) for row in results.per_network(values)], \
            'median over networks [95 % CI]'
    else:
        rows, what = list(zip(*results.quantile_rows(values))), 'median [IQR]'
    print(f'{title} ({what}): ' + ', '.join(f'{x}: {m:.3f} [{a:.3f}, {b:.3f}]' for x, (m, a, b) in zip(xs, rows)))


def task_colors(n_tasks):
    """A fixed colour per task count, so every panel uses the same ones."""
    cmap = colormaps['viridis']
    n_tasks = sorted(n_tasks)
    return {k: cmap(i / max(len(n_tasks) - 1, 1) * 0.9) for i, k in enumerate(n_tasks)}


# ---------------------------------------------------------------------------------
# Units

def unit_grid(n):
    """(rows, cols) of a grid for n units with as few empty cells as possible, and
    then as square as possible, at most three times as wide as tall (8 units: 2 × 4,
    not 3 × 3 with an empty cell)."""
    shapes = [(r, -(-n // r)) for r in range(1, n + 1)]
    shapes = [(r, c) for r, c in shapes if r <= c <= 3 * r] or [(1, n)]
    return min(shapes, key=lambda rc: (rc[0] * rc[1] - n, rc[1] - rc[0]))


def plot_rate_maps(maps, title, path):
    """One small image per unit: its steady-state rate over the stimulus grid
    (maps (n_grid, n_grid, N), rows x2, columns x1, origin bottom left)."""
    rows, cols = unit_grid(maps.shape[-1])
    cell = max(0.7, 2.5 / cols)  # inches per unit; a few units get larger cells, not a gap
    width = cell * cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, cell * rows + 0.6), squeeze=False, layout='constrained')
    for k, ax in enumerate(axes.flat):
        ax.axis('off')
        if k < maps.shape[-1]:
            ax.imshow(maps[..., k], origin='lower', extent=(-.5, .5, -.5, .5), cmap='viridis')
    # wrapped to the grid's width: a long run name would otherwise widen the figure far beyond the grid
    text = f'{title}: rate over (x1 →, x2 ↑) per unit'
    fig.suptitle('\n'.join(textwrap.wrap(text, int(width * 13), break_on_hyphens=False)), fontsize=7)
    return save_figure(fig, path)


def plot_correlations(corr, title, path, layout=None):
    """Correlation of each unit with x1 and x2 (corr (N, 2)), units laid out on a
    (rows, cols) grid in order (default near-square), plus a scatter of the two."""
    rows, cols = layout or unit_grid(len(corr))
    padded = np.full((rows * cols, 2), np.nan)
    padded[:len(corr)] = corr
    fig, axes = plt.subplots(1, 3, figsize=(8.5, 2.8), layout='constrained')
    for d, ax in enumerate(axes[:2]):
        im = ax.imshow(padded[:, d].reshape(rows, cols), cmap='RdBu_r', vmin=-1, vmax=1)
        ax.set_title(f'corr. with x{d + 1} (per unit)')
        ax.axis('off')
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[2].scatter(corr[:, 0], corr[:, 1], s=8)
    axes[2].set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel='corr. with x1', ylabel='corr. with x2',
                aspect='equal')
    fig.suptitle(title)
    return save_figure(fig, path)
