"""What the figure notebooks share beyond the library's plots and results modules:
finding result files (and the commands that make a missing one), the OOD curves with
their untrained baselines and a second decoder, and the sweep plots (per network, as
the README's tables quote them).

A notebook's setup is one line, `import figlib`: it puts the repo root on sys.path,
so that the library (plots, results) imports after it."""
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

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
DECODERS = ('adam', 'lstsq', 'both')  # the notebooks' `decoder` parameter: which decoders' curves to draw
SECOND = {'ls': ':', 'marker': 's', 'mfc': 'white'}  # the lstsq curve beside Adam's: same colour, dotted


def ood(label, protocol, decoder='adam', untrained=False):
    """The results file of `label` under an OOD protocol: <label>[_untrained][_paper][_lstsq] (results.result_name):
    networks of the sweep initialised and never trained (the baseline), read by the
    exact least-squares decoder (generalize.py --decoder=lstsq), under the paper's test
    sets (--protocol=paper)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not allowed: expected 'correct' or 'paper'")
    if decoder not in DECODERS[:2]:
        raise ValueError(f"decoder={decoder!r} is not allowed: expected 'adam' or 'lstsq'")
    return results.result_name(label + ('_untrained' if untrained else ''), protocol=protocol, decoder=decoder)


def decoders(decoder):
    """The decoders a notebook's `decoder` parameter draws, the main one first."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is not allowed: expected 'adam', 'lstsq' or 'both'")
    return ['adam', 'lstsq'] if decoder == 'both' else [decoder]


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


def optional(results_dir, name):
    """results/<name>.npz when it exists, else None, quietly (baselines and second
    decoders: a figure draws them when they are there)."""
    path = os.path.join(results_dir, name + '.npz')
    return results.load_results(results_dir, name) if os.path.exists(path) else None


def load_analysis(analysis_dir, run, filename, command, required=True):
    """analysis/<run>/<filename> (an .npz from analyze.py as a dict of arrays, a .json
    summary as a dict), or None with a note when it is missing and not `required`."""
    path = os.path.join(analysis_dir, run, filename)
    if os.path.exists(path) and filename.endswith('.json'):
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if required:
        raise FileNotFoundError(f'{path} not found; produce it with:\n  {command}')
    print(f'note: {path} not found, skipped; produce it with: {command}')
    return None


def at_task_count(res, n_task):
    """r² of each network of a results file at one task count (its mean over splits × fits)."""
    return results.per_network(res['r_sq'])[res['n_tasks'].tolist().index(n_task)]


# ---------------------------------------------------------------------------------
# Plotting across files

def _name(label, protocol, decoder, untrained=False):
    """ood(), and for protocol 'ID' the in-distribution file <label>[_lstsq]_ID."""
    if protocol == 'ID':
        return ood(label, 'correct', decoder, untrained) + '_ID'
    return ood(label, protocol, decoder, untrained)


def decoder_suffix(d):
    """The legend suffix of decoder d's curves: the paper's Adam has none."""
    return ', lstsq' if d == 'lstsq' else ''


def plot_vs_tasks(ax, results_dir, curves, decoder='adam', required='first'):
    """OOD r² vs N_task: a curve per entry of `curves` ({(label, protocol): legend
    entry}; protocol 'correct', 'paper' or 'ID') for each decoder of `decoder` (the
    lstsq curve dotted, in its Adam curve's colour), and each OOD curve's untrained
    baseline where its file exists (grey when the figure has one OOD curve, else in the
    curve's colour). `required`: 'first' or 'all' of the curves must exist under the
    main decoder (FileNotFoundError with the command that makes it); others are drawn
    when their files exist."""
    used = decoders(decoder)
    files, names, styles = {}, {}, {}
    for i, ((label, protocol), legend) in enumerate(curves.items()):
        for d in used:
            name = _name(label, protocol, d)
            needed = d == used[0] and (required == 'all' or i == 0)
            files[name] = load(results_dir, name) if needed else optional(results_dir, name)
            names[name] = legend + decoder_suffix(d)
            styles[name] = dict(color=f'C{i}', **(SECOND if d == 'lstsq' and len(used) > 1 else {}))
    absent = [name for name, res in files.items() if res is None]
    if absent:
        print(f'note: not drawn (no file in {results_dir}): {", ".join(absent)}')
    plots.compare(ax, files, names, styles=styles)
    n_ood = sum(protocol != 'ID' for _, protocol in curves)
    floor = _floor(ax, [res['r_sq'] for res in files.values() if res is not None])
    for i, ((label, protocol), legend) in enumerate(curves.items()):
        if protocol == 'ID':  # the baselines are of OOD r²
            continue
        for d in used:
            res = optional(results_dir, _name(label, protocol, d, untrained=True))
            if res is None:
                continue
            if n_ood == 1:
                plots.plot_baseline(ax, None, res['r_sq'], label='untrained' + decoder_suffix(d), floor=floor,
                                    ls=':' if d == 'lstsq' else '--')
            else:  # in the curve's colour, and one legend entry for them all (the '_' hides each)
                plots.plot_baseline(ax, None, res['r_sq'], label=f'_{legend}, untrained{decoder_suffix(d)}',
                                    color=f'C{i}', ls=':' if d == 'lstsq' else '--', floor=floor)
                if 'untrained (dashed)' not in ax.get_legend_handles_labels()[1]:
                    ax.plot([], [], ls='--', c='gray', label='untrained (dashed)')
    plots.legend(ax)


LOWEST_AXIS = -1.0  # r² below it (a decoder missing by twice the variance or more) is cut off at the bottom


def _floor(ax, r_sq=None):
    """The lowest r² a baseline may stretch the y-axis to: 0 (r² below it: worse than
    predicting the mean), or lower where the trained curves' own range reaches below
    it. Lower baselines are written at the bottom of the axes instead.

    With `r_sq` (the trained curves' arrays), the floor follows their medians over
    networks instead (0, or 0.1 below the lowest median, but not below LOWEST_AXIS), and
    the axes are cut there: a few networks far below their curve's median (an exact
    decoder extrapolating badly: r² = -3.5), or a whole curve of them, would otherwise
    squeeze every curve into a sliver. How many networks are cut off, and the lowest, is
    written at the bottom of the axes."""
    bottom, top = ax.get_ylim()
    if not r_sq:
        return min(0.0, bottom - (top - bottom))
    per_net = [results.per_network(v) for v in r_sq]
    floor = max(LOWEST_AXIS, min(0.0, min(float(np.nanmin(np.nanmedian(v, axis=1))) for v in per_net) - 0.1))
    if bottom < floor:
        ax.set_ylim(floor, min(top, 1.05))  # r² ≤ 1: the margin the cut-off networks added above goes too
        cut = np.concatenate([v.ravel() for v in per_net])
        cut = cut[cut < floor]
        if cut.size:
            ax.annotate(f'{cut.size} network(s) below {floor:.1f}, lowest {cut.min():.2f} ↓', xy=(0.02, 0.02),
                        xycoords='axes fraction', ha='left', va='bottom', fontsize=6, color='0.3',
                        bbox={'fc': 'white', 'ec': 'none', 'alpha': 0.8, 'pad': 0.5})
    return floor


def plot_sweep(ax, files, key='r_sq', n_tasks=None, suffix='', style=None, side=0.0):
    """One curve per N_task of a quantity across files (`files` maps the swept value
    (σ, D, T, correlation) to its loaded results): a dot per network (its mean over
    splits × fits) and the median over networks with its bootstrap 95 % interval, the
    statistic the README's tables quote (results.network_summary). `n_tasks`: the task
    counts to show (default: all present); `suffix` (of the legend entries), `style`
    (line options) and `side` (a sideways shift, in curve steps) tell a second
    decoder's curves from the first."""
    present = sorted(set().union(*(res['n_tasks'].tolist() for res in files.values())))
    colors = plots.task_colors(present)
    absent = [k for k in (n_tasks or []) if k not in present]
    if absent:  # a partial sweep: show what was evaluated
        print(f'note: n_task {absent} in none of the files; showing {[k for k in n_tasks if k in present]}')
    shown = [k for k in (present if n_tasks is None else n_tasks) if k in present]
    step = min(1.0, 3 / max(len(shown) - 1, 1))  # sideways, as plots.compare: at most ±1.5 steps
    for i, k in enumerate(shown):
        xs, values = [], []
        for x in sorted(files):
            ks = files[x]['n_tasks'].tolist()
            if k in ks:
                xs.append(x)
                values.append(plots.quantity(files[x], key)[ks.index(k)])
        nets = networks(values)
        plots.plot_networks(ax, xs, nets, label=f'{k} tasks{suffix}', color=colors[k],
                            offset=step * (i - (len(shown) - 1) / 2 + side), log_x=False, **(style or {}))
        plots.print_summary(f'{k} tasks{suffix} {key}', xs, nets)
    plots.legend(ax)


def networks(values):
    """The value of each network (its mean over splits × fits, results.per_network) at
    each of a sweep's conditions: `values` a list of (n_runs, ...) arrays, one per
    condition, whose runs and repeats may differ in number (D held-out splits at D);
    an array (conditions, most runs), NaN where a condition has fewer runs."""
    rows = [results.per_network(np.asarray(v, dtype=float)[None])[0] for v in values]
    table = np.full((len(rows), max((r.size for r in rows), default=0)), np.nan)
    for i, row in enumerate(rows):
        table[i, :row.size] = row
    return table


def short_budget(batches):
    """A training budget as the figures write it: 20000 -> '2e4'."""
    return f'{batches:.0e}'.replace('e+0', 'e')


def _budget(res):
    """The smallest training budget one loaded results file records, or None."""
    batches = np.asarray(res['batches'], dtype=float) if 'batches' in res else np.array([])
    batches = batches[np.isfinite(batches)]
    return float(batches.min()) if batches.size else None


def trained_batches(files):
    """The smallest training budget the loaded results (`files`: {swept value: results})
    record, or None when none records one."""
    found = [b for b in map(_budget, files.values()) if b is not None]
    return min(found) if found else None


def budget_note(ax, files):
    """When the conditions of a sweep (`files`: {swept value: loaded results}) were trained
    for different numbers of batches (a figure half rerun at the paper's budget), write
    which at the top of the axes; returns the note ('' when one budget, or none recorded)."""
    budgets = {x: b for x, res in files.items() if (b := _budget(res)) is not None}
    if len(set(budgets.values())) < 2:
        return ''
    top = max(budgets.values())
    parts = [f"{short_budget(b)} batches at {', '.join(str(x) for x in sorted(budgets) if budgets[x] == b)}"
             for b in sorted(set(budgets.values()) - {top})]
    note = f"trained for {'; '.join(parts)} (the rest {short_budget(top)})"
    ax.annotate(note, xy=(0.02, 0.98), xycoords='axes fraction', ha='left', va='top', fontsize=6, color='0.3',
                bbox={'fc': 'white', 'ec': 'none', 'alpha': 0.8, 'pad': 0.5})
    return note


def plot_ood_sweep(ax, results_dir, labels, protocol, decoder='adam', n_tasks=None):
    """OOD r² across a sweep's conditions (`labels`: {swept value: label}): a curve per
    N_task (plot_sweep: per-network dots, their median and its interval) for each
    decoder of `decoder` (the lstsq ones dotted), and the untrained baseline of each
    condition (<label>_untrained) where its file exists, a grey dashed band. Returns the main decoder's files {swept value: results}; FileNotFoundError
    when it has none."""
    used = decoders(decoder)
    main = load_sweep(results_dir, {x: ood(label, protocol, used[0]) for x, label in labels.items()})
    plot_sweep(ax, main, n_tasks=n_tasks, suffix=decoder_suffix(used[0]))
    budget_note(ax, main)
    drawn = list(main.values())
    if len(used) > 1:
        second = {x: optional(results_dir, ood(label, protocol, 'lstsq')) for x, label in labels.items()}
        second = {x: res for x, res in second.items() if res is not None}
        if second:
            plot_sweep(ax, second, n_tasks=n_tasks, suffix=decoder_suffix('lstsq'), style=SECOND, side=0.5)
            drawn += list(second.values())
    floor = _floor(ax, [res['r_sq'] for res in drawn])
    for d in used:
        found = {x: optional(results_dir, ood(label, protocol, d, untrained=True)) for x, label in labels.items()}
        xs = sorted(x for x, res in found.items() if res is not None and x in main)  # only where curves are
        if xs:
            plots.plot_baseline(ax, xs, [found[x]['r_sq'] for x in xs], label='untrained' + decoder_suffix(d),
                                ls=':' if d == 'lstsq' else '--', floor=floor)
    plots.legend(ax)
    return main


# ---------------------------------------------------------------------------------
# The D sweep (5b, S12, S6b): two designs, told apart by the prefix of their labels
# (<prefix>_D<D>). The figures show the release's; the committed files are the earlier one.

HIGHDIM_DESIGNS = {'HighDim5b': 'boundaries per network (release)', 'HighDim': 'one shared boundary set (committed)'}
HIGHDIM_FALLBACK = 'HighDim'  # the committed design, drawn while the release's has no file


def any_file(results_dir, names):
    """Whether results/<name>.npz exists for one of `names`."""
    return any(os.path.exists(os.path.join(results_dir, name + '.npz')) for name in names)


def highdim_prefix(results_dir, prefix, dims, name, figure):
    """The prefix of the D sweep a notebook draws: `prefix` when one of its files exists
    (`name`: how a label's file is named, a format string such as 'sparsity_{}' or
    ood('{}', protocol, decoder)), else the committed design HIGHDIM_FALLBACK when one of
    its files does, with one printed line naming the design drawn and the command that
    makes `prefix`'s files. With neither, `prefix` (its missing files are then named)."""
    def files(p):
        return [name.format(f'{p}_D{D}') for D in dims]

    if prefix == HIGHDIM_FALLBACK or any_file(results_dir, files(prefix)) \
            or not any_file(results_dir, files(HIGHDIM_FALLBACK)):
        return prefix
    print(f'note: no {name.format(prefix + "_D<D>")}.npz in {results_dir}: drawing {HIGHDIM_FALLBACK}_D<D>, '
          f'{design_title(HIGHDIM_FALLBACK)}; make the files of {prefix} with: python sweep.py {figure}')
    return HIGHDIM_FALLBACK


def design_title(prefix, protocol='correct'):
    """A D-sweep figure's title: the design drawn (GPT-2's named as such), and the paper's
    test sets under that protocol."""
    design = HIGHDIM_DESIGNS.get(prefix.removesuffix('_gpt-2'), prefix)
    if prefix.endswith('_gpt-2'):
        design = 'GPT-2: ' + design
    return '\n'.join(filter(None, [design, protocol_title(protocol)]))


def save(fig, out_dir, name):
    """Write out_dir/<name>.png and .pdf; inside Jupyter also show the PNG (the
    project style draws off-screen)."""
    path = plots.save_figure(fig, os.path.join(out_dir, name + '.png'))
    print(f'wrote {path} and .pdf')
    ipython = sys.modules.get('IPython')
    if ipython is not None and ipython.get_ipython() is not None:
        from IPython.display import Image, display
        display(Image(path))


# ---------------------------------------------------------------------------------
# The disentanglement metrics beside OOD r² (beyond the paper, issue 21): the per-network
# keys generalize.py stores in results/<label>.npz, (n_tasks, n_runs) each, with their null
# bands <key>_null_lo/_hi (shuffled labels) and <key>_geo_lo/_hi (the geometric null,
# CCGP and PS); analyze.py / analyze_transformer.py store the same dict for one network
# under 'disentanglement' in their summary JSON.

METRICS = {'dci_d': 'DCI disentanglement', 'dci_c': 'DCI completeness', 'dci_i': 'DCI informativeness',
           'mig': 'MIG', 'ccgp_mean': 'CCGP', 'ps_mean': 'parallelism score'}  # disentanglement.py's keys: titles
TITLES = {**METRICS, 'n_silent': 'silent units (left out of every metric)'}  # the panels vs N_task
NULLS = {'null': 'shuffled labels, 5–95 %', 'geo': 'geometric null, 5–95 %'}  # null model (the key's infix): legend


def null_style(kind, color):
    """How a null band is drawn: hatched in its curve's colour (dots: shuffled labels,
    lines: the geometric null), so that it is not taken for a filled untrained band."""
    return {'facecolor': 'none', 'edgecolor': color, 'hatch': '////' if kind == 'geo' else '....', 'lw': 0,
            'alpha': 0.5}


def without_metrics(res):
    """The metric keys a results file lacks (all of them: made before generalize.py stored them)."""
    return [key for key in METRICS if key not in res]


def metric_files(results_dir, labels):
    """{label: results} of the files of `labels` ({label: legend entry}) that hold the
    metrics; for each other one, one printed line naming what is missing and the command
    that makes it. The first label's file is required (FileNotFoundError)."""
    found = {}
    for i, label in enumerate(labels):
        res = load(results_dir, label, required=i == 0)
        if res is None:
            continue
        if without_metrics(res):
            command = recipe(label).split(' && ')[-1]  # its networks exist: evaluating them again adds the keys
            print(f'note: {os.path.join(results_dir, label + ".npz")} has no disentanglement metrics '
                  f'({", ".join(without_metrics(res))}): not drawn; make them with: {command}')
            continue
        found[label] = res
    return found


def null_band(res, key, kind):
    """The null band of a metric per task count: the median over networks of each
    network's 5th and of its 95th percentile (NaN rows where not evaluated); None when
    the file has no such null."""
    if f'{key}_{kind}_lo' not in res:
        return None
    lo, hi = (np.nanmedian(results.per_network(res[f'{key}_{kind}_{end}']), axis=1) for end in ('lo', 'hi'))
    return lo, hi


def plot_metric_vs_tasks(ax, results_dir, files, names, key):
    """One metric vs N_task: for each network type (`files` {label: results} holding the
    metric, `names` {label: legend entry} of every type, which fixes its colour C<i> as
    in plot_vs_tasks) a dot per network and the median over networks with its bootstrap
    interval, its null bands hatched in its colour (null_style) and its untrained networks' value (<label>_untrained, dashed, median and
    IQR) where that file holds the metric. Returns {label: {null kind: (lo, hi)}}."""
    colors = {label: f'C{i}' for i, label in enumerate(names)}
    files = {label: res for label, res in files.items() if key in res}
    if not files:
        plots.empty_note(ax, 'no network holds this metric')
        return {}
    plots.compare(ax, files, {label: names[label] for label in files}, key=key,
                  styles={label: {'color': colors[label]} for label in files})
    bands = {}
    for label, res in files.items():
        bands[label] = {kind: band for kind in NULLS if (band := null_band(res, key, kind)) is not None}
        for kind, (lo, hi) in bands[label].items():
            ax.fill_between(res['n_tasks'], lo, hi, **null_style(kind, colors[label]))
    floor = _floor(ax)
    for label in files:
        base = optional(results_dir, ood(label, 'correct', untrained=True))
        if base is not None and key in base:
            plots.plot_baseline(ax, None, base[key], label=f'_{names[label]}, untrained', color=colors[label],
                                floor=floor, key=key)
    ax.set_title(TITLES[key])
    return bands


def metric_legend(ax, kinds=tuple(NULLS), untrained=True):
    """The figure's legend from `ax`, with grey entries for the null bands and the
    untrained baselines (each drawn in its curve's colour)."""
    labels = ax.get_legend_handles_labels()[1]
    for kind in kinds:
        if NULLS[kind] not in labels:
            ax.fill_between([], [], label=NULLS[kind], **null_style(kind, 'gray'))
    if untrained and 'untrained (dashed)' not in labels:
        ax.plot([], [], ls='--', c='gray', label='untrained (dashed)')
    return plots.legend(ax)


def load_unit_metrics(analysis_dir, run, filenames, command):
    """The 'disentanglement' dict of analysis/<run>/<filename> for the first of
    `filenames` (summaries of analyze.py / analyze_transformer.py) that holds it, and that
    file's name; (None, None) with one printed line when none does (missing, or made
    before the metrics existed), naming `command`, which makes the first."""
    for filename in filenames:
        path = os.path.join(analysis_dir, run, filename)
        if os.path.exists(path):
            metrics = load_analysis(analysis_dir, run, filename, command).get('disentanglement')
            if metrics is not None:
                return metrics, filename
    print(f'note: no disentanglement metrics in {" or ".join(os.path.join(analysis_dir, run, f) for f in filenames)}: '
          f'not drawn; make them with: {command}')
    return None, None


def plot_unit_metrics(ax, networks):
    """Figure 4 quantified: each metric of METRICS for single networks side by side
    (`networks` {legend entry: 'disentanglement' dict}), a marker at its value and its
    null bands as hatched bars behind it (null_style).
    Returns {legend entry: [value of each metric]}."""
    keys = list(METRICS)
    width = 0.8 / max(len(networks), 1)
    drawn = {}
    for i, (name, d) in enumerate(networks.items()):
        xs = np.arange(len(keys)) + (i - (len(networks) - 1) / 2) * width
        for kind in NULLS:
            for x, key in zip(xs, keys):
                if f'{key}_{kind}_lo' in d:
                    lo, hi = d[f'{key}_{kind}_lo'], d[f'{key}_{kind}_hi']
                    ax.bar(x, hi - lo, bottom=lo, width=0.8 * width, **null_style(kind, f'C{i}'))
        drawn[name] = [float(d.get(key, np.nan)) for key in keys]
        silent = f'{d.get("n_silent", np.nan):.0f} of {d.get("n_units", np.nan):.0f} units silent'
        ax.plot(xs, drawn[name], 'o', color=f'C{i}', ms=5, label=f'{name}: {silent}')
        print(f'{name} ({silent}): ' + ', '.join(f'{key} {v:.3f}' for key, v in zip(keys, drawn[name])))
    ax.set_xticks(range(len(keys)), labels=[METRICS[k].replace('DCI ', 'DCI\n').replace(' score', '\nscore')
                                            for k in keys], fontsize=7)
    ax.set_ylabel('value')
    return drawn
