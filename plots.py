"""The one plot style, figure saving, and the plot elements that scripts and figure
notebooks share (curves vs the number of tasks, per-network dots, rate maps).
Headless: figures are drawn off-screen and saved as PNG (and PDF)."""
import io
import os
import textwrap

import matplotlib

matplotlib.use('Agg')  # never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps, ticker

import results

CEILING = 0.975  # OOD r² of a perfect network under the protocol (SPEC §7: σ = 0.2, T = 20)
PANEL = (3.4, 3.2)  # inches per panel, with room for a legend below the axes
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
    for fmt in ('png', 'pdf') if pdf else ('png',):  # rendered in memory, then written by the one atomic writer
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_extra_artists=extra or None)
        results.save(f'{base}.{fmt}', buffer.getvalue())
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
    """The legend of `ax`, below the figure's axes and as wide as the figure, so that it
    never covers the data (bands, per-network dots, reference lines) and the axes keep
    the figure's width. Drawing it again (e.g. after a reference line) replaces it,
    keeping its title."""
    fig = ax.figure
    for old in list(fig.legends):
        title = title or old.get_title().get_text() or None
        old.remove()
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    renderer = fig.canvas.get_renderer()
    for ncols in range(min(len(labels), 3), 0, -1):  # as many columns (at most 3) as the width holds
        drawn = fig.legend(handles, labels, loc='outside lower center', ncols=ncols, fontsize=7, title=title,
                           title_fontsize=7, columnspacing=1.0, handlelength=1.8)
        if ncols == 1 or drawn.get_window_extent(renderer).width <= fig.bbox.width:
            return drawn
        drawn.remove()


def empty_note(ax, text):
    """Say in the plot why its axes are empty (e.g. 'no fixed points found')."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha='center', va='center', color='gray')


def reference(ax, y, label=None):
    """A dashed horizontal reference line (ceiling, 90°)."""
    ax.axhline(y, ls='--', c='gray', lw=0.8, label=label)


def plot_iqr(ax, xs, values, label=None, color=None, **style):
    """Median (line) and interquartile range (band) of `values` at each x, pooled
    over everything but the first axis (the paper's summary). `style`: line options
    (ls, marker, mfc) that tell a second decoder's curve from the first."""
    med, lo, hi = results.quantile_rows(values)
    line, = ax.plot(xs, med, **{'marker': 'o', 'ms': 3, **style}, label=label, color=color)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    return line


def plot_networks(ax, xs, values, label=None, color=None, offset=0.0, log_x=True, **style):
    """One dot per network (its mean over splits × fits) and the median over networks
    with its bootstrap 95 % interval, at each x. `values` (len(xs), n_runs, ...), NaN
    for networks not there; `offset` shifts a curve sideways so several stay readable,
    in steps of 8 % of x on a log x-axis (`log_x`), else of a tenth of the smallest gap
    between the xs; `style`: line options (ls, marker, mfc)."""
    xs = np.asarray(xs, dtype=float)
    nets = results.per_network(values)
    spread = np.linspace(-1, 1, nets.shape[1]) if nets.shape[1] > 1 else np.zeros(1)
    if log_x:
        xs = xs * 1.08 ** offset
        dots = xs[:, None] * 1.03 ** spread[None, :]
    else:  # an x of 0 (a correlation) is shifted as well as any other
        gaps = np.diff(np.unique(xs))
        step = 0.1 * (gaps.min() if gaps.size else 1.0)
        xs = xs + step * offset
        dots = xs[:, None] + 0.375 * step * spread[None, :]
    summary = [results.bootstrap_median_ci(row) for row in nets]
    med = np.array([s[0] for s in summary])
    err = np.abs(np.array([[s[1] for s in summary], [s[2] for s in summary]]) - med)
    line = ax.errorbar(xs, med, yerr=err, **{'marker': 'o', 'ms': 4, **style}, capsize=2, label=label,
                       color=color)[0]
    ax.scatter(dots.ravel(), nets.ravel(), s=6, alpha=0.45, color=line.get_color(), lw=0)
    return line


def plot_baseline(ax, xs, values, label='untrained', color='gray', ls='--', floor=None, key='r_sq'):
    """A null to read the curves against (untrained networks): the median over networks
    (dashed) and their interquartile range (band), each network one value (its mean over
    splits × fits), pooled over task counts, which do not change an untrained network's
    representation. `values`: one results array (n_tasks, n_runs, ...) drawn across
    the whole x-axis (xs None), or a list of them, one per x (a sweep's conditions).
    A median below `floor` is written at the bottom of the axes (with an arrow) rather
    than stretching the y-axis (an untrained non-leaky RNN reaches r² = -1.6). `key`: the
    quantity's name in the printed summary."""
    rows = [results.per_network(v).ravel() for v in ([values] if xs is None else values)]
    medians, lo, hi = results.quantile_rows(rows)
    below = medians < floor if floor is not None else np.zeros(len(medians), bool)
    med, lo, hi = (np.where(below, np.nan, q) for q in (medians, lo, hi))
    if floor is not None:  # a band reaching below the floor stops there
        lo = np.maximum(lo, floor)
    if xs is None:
        line = ax.axhline(med[0], ls=ls, c=color, lw=1, label=label)
        if not below[0]:
            ax.axhspan(lo[0], hi[0], color=color, alpha=0.15, lw=0)
    elif len(xs) == 1:  # a single condition: an error bar, no band to span
        line = ax.errorbar(xs, med, yerr=np.array([med - lo, hi - med]), ls=ls, c=color, marker='D', ms=3, capsize=2,
                           label=label)[0]
    else:
        line, = ax.plot(xs, med, ls=ls, c=color, lw=1, marker='D', ms=2.5, label=label)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
    for k in np.flatnonzero(below):  # off the scale of the trained curves: say where it is
        shown = sum('↓' in text.get_text() for text in ax.texts)
        where = f' at {xs[k]}' if xs is not None else ''
        ax.annotate(f'{label.lstrip("_")}{where}: {medians[k]:.2f} ↓', xy=(0.98, 0.02 + 0.06 * shown),
                    xycoords='axes fraction', ha='right', va='bottom', fontsize=6, color=color,
                    bbox={'fc': 'white', 'ec': 'none', 'alpha': 0.8, 'pad': 0.5})
    print_summary(f'{label} {key}', ['all'] if xs is None else list(xs), rows)
    return line


def compare(ax, curves, names, key='r_sq', networks=True, styles=None):
    """One curve vs N_task per results file: `curves` maps a label to its loaded
    file (None: missing, skipped), `names` the label to its legend entry, `styles`
    (optional) a label to its colour and line options. With `networks`, dots per
    network and the median over networks with its interval; otherwise the pooled
    median and IQR. Prints the numbers; returns {label: colour} of the curves drawn."""
    styles = styles or {}
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
    colors = {}
    step = min(1.0, 3 / max(len(present) - 1, 1))  # side shifts: at most ±1.5 steps, however many curves
    for i, (label, res) in enumerate(present.items()):
        if sorted(res['n_tasks'].tolist()) != every:  # a partial sweep: its task counts are shown
            print(f'note: {label} has n_task {res["n_tasks"].tolist()} only (of {every})')
        values = quantity(res, key)
        style = styles.get(label, {})
        if networks and values.ndim >= 2:
            offset = step * (i - (len(present) - 1) / 2)
            line = plot_networks(ax, res['n_tasks'], values, label=names[label], offset=offset, **style)
        else:
            line = plot_iqr(ax, res['n_tasks'], values, label=names[label], **style)
        colors[label] = line.get_color()
        print_summary(f'{label} {key}', res['n_tasks'].tolist(), values)
    task_axis(ax, every)
    legend(ax, title='(training batches)' if mixed else None)
    return colors


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


def unit_image(values):
    """N unit values -> a square image ⌈√N⌉ wide, units in row-major order, NaN padding."""
    side = int(np.ceil(np.sqrt(len(values))))
    grid = np.full(side * side, np.nan)
    grid[:len(values)] = values
    return grid.reshape(side, side)


def rate_mosaic(rates):
    """(rows, cols, N) rates -> one image: the unit image of stimulus [i, j] in block
    row i, block column j, one blank pixel between blocks."""
    rows, cols, _ = rates.shape
    side = unit_image(rates[0, 0]).shape[0]
    image = np.full((rows * (side + 1) - 1, cols * (side + 1) - 1), np.nan)
    for i in range(rows):
        for j in range(cols):
            image[i * (side + 1):i * (side + 1) + side, j * (side + 1):j * (side + 1) + side] = unit_image(rates[i, j])
    return image


def plot_rate_mosaic(rates, corr, title):
    """Figure 4's panel of one network: the rate maps as one mosaic (stimuli laid out by
    x1 to the right and x2 upwards, a unit image per stimulus) beside each unit's
    correlation with x1 and with x2 in the same unit layout. rates (8, 8, N), corr (N, 2)."""
    fig = figure(5.6, 3.6, layout='constrained')
    axes = fig.subplot_mosaic([['rates', 'corr_x1'], ['rates', 'corr_x2']], width_ratios=[2.2, 1])
    im = axes['rates'].imshow(rate_mosaic(rates), origin='lower', cmap='viridis', interpolation='nearest')
    fig.colorbar(im, ax=axes['rates'], shrink=0.6, label='activity')
    height, width = im.get_array().shape
    axes['rates'].set(xticks=[0, width - 1], xticklabels=['−0.5', '0.5'], yticks=[0, height - 1],
                      yticklabels=['−0.5', '0.5'], xlabel='$x_1$', ylabel='$x_2$', title=f'{title}: rate maps')
    for d, key in enumerate(('corr_x1', 'corr_x2')):
        im = axes[key].imshow(unit_image(corr[:, d]), origin='lower', cmap='RdBu_r', vmin=-1, vmax=1,
                              interpolation='nearest')
        axes[key].set(xticks=[], yticks=[], title=f'corr. with $x_{d + 1}$')
        fig.colorbar(im, ax=axes[key], shrink=0.8)
    return fig


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
