"""The paper's experiments as data, and the plumbing that runs them (used by sweep.py,
and by figlib for the commands that make a missing result file).

EXPERIMENTS maps a result label to one row: the train.py hyperparameters of its
networks, the generalize.py overrides of its evaluation, its task counts and runs, and
which figures read its results/<label>.npz, results/<label>_ID.npz,
results/sparsity_<label>.npz and analysis/<run>/. Each row that trains has its own folder
<runs_dir>/<label>/; a row with `networks` evaluates another row's folder instead
(Noise_2 and Corr_0 are the RNN sweep, FreeRT_T<T> the FreeRT sweep at other trial
durations). Figures/README.md shows the same table.

The state of a network is read from its run folder (runs.state: finished, partial or
missing). A step is a script and its hyperparameters, rendered as a command line
(configurator.flags) only to be shown or run. run_steps() is the function that runs a
chain of steps, locally or as a submitit job. Nothing here imports torch: planning a
sweep stays fast.
"""
import difflib
import glob
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

import configurator
import results
import runs

REPO = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------
# Costs. Training throughput in network-batches per second on one CPU core, per network
# type (benchmarks/bench_train.py, 25-member ensembles, 1 thread, on the project's 2-core
# machines while other work ran): `sweep.py --dry_run=True` divides each experiment's
# work by it.
THROUGHPUT = {'RNN': 1200, 'LSTM': 480, 'gpt-2': 240}
# Seconds per network of generalize.py, per network type: 4 held-out quadrants (it scales with
# the splits), both protocols and both decoders in one pass, with the disentanglement metrics;
# the `seconds` the result files record (1 thread, two experiments at a time on the 2-core
# machine). RNN: 7.4 (FreeRT), 8.6 per 4 splits (HighDim5b_D10, 10 splits) and 7.5 s of CPU
# (Noise_1 re-made) since util.set_threads caps the BLAS pools (session 20; 11-14 before). LSTM
# 21 and GPT-2 26 were recorded before that and not remeasured (GPT-2's evaluation is mostly its
# simulation). Untrained networks took 2-2.5 times longer (RNN_untrained 25, LSTM 49, GPT-2 55 s
# per network: every unit is active, so the metrics' per-unit work grows), hence
# UNTRAINED_EVAL_FACTOR (kept: an untrained GPT-2 at D = 2 still takes ~35 s of CPU).
GENERALIZE_SECONDS = {'RNN': 8, 'LSTM': 21, 'gpt-2': 26}
UNTRAINED_EVAL_FACTOR = 2.5
# the other scripts' seconds per network (analyses: per analysed network), and per notebook
# (Figures/run_notebooks.py ran all 13 in 12 s on a quiet machine, in 8 s of CPU time on a busy one).
EVAL_SECONDS = {'sparsity.py': 3, 'analyze.py': 300, 'analyze_transformer.py': 10}
NOTEBOOK_SECONDS = 1

# ---------------------------------------------------------------------------------
# The table

N_TASKS = [2, 3, 6, 12, 24]  # task counts of every sweep unless a row says otherwise
DURATIONS = [5, 10, 20, 30, 40]  # free-RT evaluation trial durations T (stimulus steps)
DIMS = [2, 4, 6, 8, 10]  # latent dimensionalities D
HIGHDIM_TASKS = [3, 6, 9, 12, 24]  # the release's task counts of its D sweep (Fig 5b), and 24
NOISES = [1, 2, 3, 4, 6]  # training input noise n_sd_in
CORRS = [0, 0.3, 0.5, 0.7, 0.9]  # latent correlations c

# every figure, in the paper's order, with the PNGs its notebook writes (the first is
# always written; a notebook reruns when it is missing or an input was remade)
FIGURES = {
    'fig3a': ['fig3a'], 'fig3b': ['fig3b'], 'fig3c': ['fig3c'], 'fig4': ['fig4_RNN', 'fig4_gpt-2'],
    'fig5a': ['fig5a'], 'fig5b_S12': ['fig5b', 'S12', 'fig5b_gpt-2', 'S12_gpt-2'], 'fig5c': ['fig5c'],
    'S1': ['S1'], 'S3b': ['S3b'], 'S5c': ['S5c'], 'S6': ['S6a', 'S6b'], 'fixed_points': ['fixed_points'], 'loss': ['loss'],
    'metrics': ['metrics', 'metrics_fig4'],  # beyond the paper: the disentanglement metrics (issue 21)
}


def experiment(train=None, evaluate=None, networks=None, n_task=None, runs=5, figures=(),
               id_figures=(), sparsity=(), analysis=(), fallback=False):
    """One row of the table.

    train: train.py hyperparameters of the networks (the rest keep train.py's defaults).
    evaluate: generalize.py overrides (those that sparsity.py also has go to it too).
    networks: the row whose networks this one evaluates (None: its own, trained here).
    n_task, runs: task counts (default N_TASKS) and runs per task count.
    figures / id_figures / sparsity: figures reading results/<label>.npz (and
    <label>_paper.npz), <label>_ID.npz, sparsity_<label>.npz.
    analysis: (script, n_task, run, figures) for each network analysed into analysis/<run>/.
    fallback: committed results of an earlier design, which its figures draw only while the
    design they now show has no file: the sweep never plans the row (its recipe still makes it).
    """
    return {'train': dict(train or {}), 'evaluate': dict(evaluate or {}), 'networks': networks,
            'n_task': list(n_task or N_TASKS), 'runs': runs, 'figures': tuple(figures),
            'id_figures': tuple(id_figures), 'sparsity': tuple(sparsity), 'analysis': tuple(analysis),
            'fallback': fallback}


def free_rt_timing(T):
    """Evaluation timing of the free-RT networks on trials of T stimulus steps."""
    return {'fixation': 100, 'stimulus': 100 * T, 'delay': 0, 'decision': 100}


# Training budget of Figure 5a's matched design: the committed sets (FreeRT5a_T<T>,
# FreeRT5a_nobound_T<T>) were trained with 2e4 batches; the paper's budget is 1e5 (issue #20).
# To run it at 1e5, set 100_000 here and sweep into fresh folders (the 2e4 networks and
# results are then other settings): python sweep.py fig5a --runs_dir=trained_networks_1e5
# --results_dir=results_1e5
FIG5A_BATCHES = 20_000
FIG5A_NOBOUND_DURATIONS = [10, 20, 40]  # T of the no-absorption control (bound 1000)


def free_rt_5a(T, bound=None):
    """train.py settings of Figure 5a's free-RT networks trained on trials of T stimulus
    steps, the release's timing (no blank fixation or decision step)."""
    timing = {'fixation': 0, 'stimulus': 100 * T, 'delay': 0, 'decision': 0}
    return {'task': 'LinearClassificationBound', 'CE_loss': False, 'timing': timing, 'n_batch': FIG5A_BATCHES,
            **({'bound': bound} if bound is not None else {})}


EXPERIMENTS = {
    'RNN': experiment(runs=10, figures=('fig3a', 'fig3b', 'fig3c', 'S1', 'S5c', 'loss', 'metrics'),
                      id_figures=('fig3a',), sparsity=('S6',),
                      analysis=(('analyze.py', 24, 0, ('fig4', 'fixed_points', 'metrics')),
                                ('analyze.py', 2, 0, ('fixed_points',)))),
    'RNN_NoLeak': experiment({'leaky': False}, figures=('fig3b',), sparsity=('S6',)),
    'LSTM': experiment({'network': 'LSTM'}, {'select': {'network': 'LSTM'}}, figures=('fig3b', 'metrics'),
                       sparsity=('S6',)),
    'gpt-2': experiment({'network': 'gpt-2'}, {'select': {'network': 'gpt-2'}}, figures=('fig3b', 'fig3c', 'metrics'),
                        analysis=(('analyze_transformer.py', 24, 0, ('fig4', 'metrics')),)),
    'Quad': experiment({'activ_enc': 'Quad'}, figures=('S1',)),
    'FreeRT': experiment({'task': 'LinearClassificationBound', 'CE_loss': False}, figures=('S5c',)),
    **{f'FreeRT_T{T}': experiment(networks='FreeRT', evaluate={'timing': free_rt_timing(T)}, figures=('fig5a',))
       for T in DURATIONS},
    # Figure 5a's matched design (issue #20): one set trained per T, with the release's timing
    # (no blank fixation or decision step), evaluated at its own T (timing None: the training
    # timing), both decoders; budget FIG5A_BATCHES, as the committed sets were trained
    **{f'FreeRT5a_T{T}': experiment(free_rt_5a(T), {'decoder': 'both'}, n_task=[24], figures=('fig5a',))
       for T in DURATIONS},
    # the budget check of the matched design: its T = 5 set at the paper's 1e5 batches (no figure reads it)
    'FreeRT5a_1e5_T5': experiment({**free_rt_5a(5), 'n_batch': 100_000}, {'decoder': 'both'}, n_task=[24]),
    # held out: each variable's positive half (D splits; holding out each of the 2^D orthants in
    # turn would cost 2^D decoders per network)
    # decoders not stored: at D = 10 they would be 3 MB of each result file (the angles are kept)
    # boundary_seed=0: one boundary set shared by every network of a (D, N_task) cell, as the
    # committed results/HighDim_D<D>.npz were made
    # D = 2 holds out each quadrant: split_var was D > 2 only when the committed
    # results/HighDim_D2.npz were made (its JSON records split_var=True all the same)
    # fallback: Figures 5b/S12 and S6b now show the release's design (HighDim5b_D<D> below) and
    # draw these committed files only while it has none, so the sweep no longer makes them; the
    # rows stay so that their files (and their baselines HighDim_D<D>_untrained) keep their recipes
    **{f'HighDim_D{D}': experiment({'task': 'LinearClassificationHighDim', 'n_dim': D, 'boundary_seed': 0},
                                   {'split_var': D > 2, 'save_decoders': False},
                                   figures=('fig5b_S12',), sparsity=('S6',), fallback=True) for D in DIMS},
    # the release's design: each network its own boundaries (boundary_seed=None, from its seed) and
    # its task counts {3, 6, 9, 12}, with 24 added; half-spaces held out at every D, D = 2 included
    # (decoding.splits), so each D is the same kind of test; S6b too (the release's sparsity.py
    # was left at these task counts)
    **{f'HighDim5b_D{D}': experiment({'task': 'LinearClassificationHighDim', 'n_dim': D, 'boundary_seed': None},
                                     {'split_var': True, 'save_decoders': False, 'decoder': 'both'},
                                     n_task=HIGHDIM_TASKS, figures=('fig5b_S12',), sparsity=('S6',))
       for D in DIMS},
    # the GPT-2 panel of 5b / S12 (the release has one): the same design, at GPT-2's paper budget
    # (train.py's default for gpt-2, runs.DEFAULT_BATCHES)
    **{f'HighDim5b_gpt-2_D{D}': experiment({'network': 'gpt-2', 'task': 'LinearClassificationHighDim', 'n_dim': D,
                                            'boundary_seed': None},
                                           {'select': {'network': 'gpt-2'}, 'split_var': True, 'save_decoders': False,
                                            'decoder': 'both'},
                                           n_task=HIGHDIM_TASKS, figures=('fig5b_S12',))
       for D in DIMS},
    # n_sd_in = 2 and corr = 0 are the RNN sweep itself: evaluated from its folder, never trained twice
    **{f'Noise_{n}': experiment(*(() if n == 2 else ({'n_sd_in': n},)), networks='RNN' if n == 2 else None,
                                figures=('fig5c',)) for n in NOISES},
    **{f'Corr_{c}': experiment(*(() if c == 0 else ({'corr': c},)), networks='RNN' if c == 0 else None,
                               figures=('S3b',)) for c in CORRS},
    'RNN_logits': experiment({'loss': 'logits'}, n_task=[24], runs=10, figures=('loss',)),
}

# The untrained baseline of every OOD figure: each row's networks saved as initialised
# (train.py --n_batch=0: same architectures, encoders, seeds and task counts, never trained),
# evaluated like the row, with Adam and least squares on the same trials (<label>_untrained
# and <label>_untrained_lstsq, each protocol). A network's seed derives from (seed, n_task,
# run) and its hidden layers do not depend on n_task, so untrained networks of different
# task counts are independent draws of one distribution (no hidden dynamics shared; only the
# readout's size depends on n_task): their curve is flat up to sampling, and every task count
# adds networks to one baseline band. Settings outside the seed (n_sd_in, corr) give the very
# same weights: Noise_<n>_untrained networks are RNN_untrained's, evaluated at their own noise.
OOD_FIGURES = ('fig3a', 'fig3b', 'S1', 'S5c', 'fig5a', 'fig5b_S12', 'fig5c', 'metrics')


def untrained(label):
    """The baseline row of `label`: its networks (or those of the row it evaluates) untrained."""
    row = EXPERIMENTS[label]
    return experiment({} if row['networks'] else {**row['train'], 'n_batch': 0}, {**row['evaluate'], 'decoder': 'both'},
                      networks=row['networks'] and row['networks'] + '_untrained', n_task=row['n_task'],
                      runs=max(row['runs'], 5), figures=[f for f in row['figures'] if f in OOD_FIGURES],
                      fallback=row['fallback'])


# Every OOD figure's networks are evaluated with both decoders on the same trials: the
# paper's Adam decoder (<label>.npz) and exact least squares (<label>_lstsq.npz), so each
# figure can show whether its rise with N_task holds when the decoder is not the bottleneck.
for row in EXPERIMENTS.values():
    if set(row['figures']) & set(OOD_FIGURES):
        row['evaluate'].setdefault('decoder', 'both')
EXPERIMENTS.update({label + '_untrained': untrained(label) for label in list(EXPERIMENTS)
                    if set(EXPERIMENTS[label]['figures']) & set(OOD_FIGURES)})

# Figure 5a's no-absorption control: the matched design with a bound (1000) that no accumulator
# reaches within T. Added after the baselines: the bound shapes only the targets, so its networks
# as initialised are FreeRT5a_T<T>_untrained's, and it needs no baseline of its own.
EXPERIMENTS.update({f'FreeRT5a_nobound_T{T}': experiment(free_rt_5a(T, bound=1000.0), {'decoder': 'both'},
                                                         n_task=[24], figures=('fig5a',))
                    for T in FIG5A_NOBOUND_DURATIONS})

TRAIN_SET_BY_SWEEP = ('n_task', 'run', 'runs', 'out_dir', 'resume', 'n_batch', 'n_threads', 'device')
EVAL_SCRIPTS = ('generalize.py', 'sparsity.py', 'analyze.py', 'analyze_transformer.py')
EVAL_SET_BY_SWEEP = ('runs_dir', 'select', 'n_tasks', 'n_runs', 'label', 'results_dir', 'out_dir', 'path', 'index',
                     'out_of_distribution', 'protocol', 'device', 'n_threads')


def source(name):
    """The row whose networks `name` evaluates (itself when it trains its own)."""
    return EXPERIMENTS[name]['networks'] or name


def check_figures(names):
    """The figures named (`all`: every one), in table order; unknown names raise
    ValueError with the closest match."""
    if not names:
        raise ValueError(f"name the figures to make (or all): {', '.join(FIGURES)}")
    for name in names:
        if name != 'all' and name not in FIGURES:
            close = difflib.get_close_matches(name, list(FIGURES) + ['all'], n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            raise ValueError(f"unknown figure {name!r}{hint} (known: {', '.join(FIGURES)}, all)")
    return [f for f in FIGURES if 'all' in names or f in names]


def reads(figure):
    """What a figure's notebook reads: [(kind, label, detail)] with kind 'results', 'ID',
    'sparsity' or 'analysis' (detail: (script, n_task, run))."""
    out = []
    for label, row in EXPERIMENTS.items():
        out += [('results', label, None)] * (figure in row['figures'])
        out += [('ID', label, None)] * (figure in row['id_figures'])
        out += [('sparsity', label, None)] * (figure in row['sparsity'])
        out += [('analysis', label, (script, k, r)) for script, k, r, figs in row['analysis'] if figure in figs]
    return out


# ---------------------------------------------------------------------------------
# The scripts' hyperparameters, read from their source (scripts are never imported here)

def script_defaults(script):
    """{name: default} of a top-level script's hyperparameters, read from its source."""
    return configurator.script_defaults(os.path.join(REPO, script))


def check_overrides(overrides, defaults, what, set_by_sweep=()):
    """Type-check `overrides` against a script's defaults; unknown names (with the closest
    match) and names the sweep sets itself raise ValueError. Returns them converted."""
    out = {}
    for name, value in overrides.items():
        if name in set_by_sweep:
            raise ValueError(f"{what}: {name!r} is set by the sweep itself (see sweep.py --help)")
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            raise ValueError(f"{what}: unknown hyperparameter {name!r}{hint}")
        out[name] = configurator.check_type(name, value, defaults[name])
    return out


# ---------------------------------------------------------------------------------
# Steps as command lines: [script, words..., --name=value, ...], run as
# [sys.executable, REPO/<script>, ...] and shown as `python <script> ...`

def argv(step):
    """The command line of a step {'script', 'values'} (and the bare `words` of run_notebooks.py)."""
    return [step['script']] + list(step.get('words', ())) + configurator.flags(step['values'])


def show(step):
    """A step as one would type it: `python train.py --select="{'network': 'LSTM'}"`."""
    return configurator.shell(argv(step))


# ---------------------------------------------------------------------------------
# Networks on disk

def expected_config(label, train_overrides=None, n_batch=None):
    """The train.py hyperparameters the networks of `label`'s folder must have: the
    defaults, the row's values, the sweep's extra overrides and the training budget."""
    defaults = script_defaults('train.py')
    row = EXPERIMENTS[source(label)]
    config = {**defaults, **(train_overrides or {}), **row['train']}  # the row's own values win
    # a row's own budget (0: the untrained baselines) wins over the sweep's
    config['n_batch'] = row['train'].get('n_batch', n_batch or runs.DEFAULT_BATCHES[config['network']])
    return json.loads(json.dumps(config))  # as config.json holds it (tuples as lists)


def differences(config, expected):
    """{name: (found, expected)} for the settings in which a saved config differs; a
    hyperparameter the network was trained without counts as the value such runs were
    trained with (runs.EARLIER_DEFAULTS), or as a difference when there is none. A
    setting the network's tasks do not read (runs.TASK_SETTINGS) is never a difference."""
    missing = object()
    config = {**runs.EARLIER_DEFAULTS, **config}
    diff = {}
    for name, want in expected.items():
        if name in runs.SWEEP_KEYS or name in runs.BOOKKEEPING:
            continue
        if not runs.reads_setting(config, name):
            continue
        got = config.get(name, missing)
        if got is missing or got != want:
            diff[name] = ('(not set: trained before it existed)' if got is missing else got, want)
    return diff


def network_states(sweep_dir, expected, cells):
    """{(n_task, run): (state, folder, None)} for the wanted cells, state as runs.state
    gives it. A folder trained with other settings raises ValueError: a sweep folder
    must not mix them."""
    found = {}
    for path in sorted(glob.glob(os.path.join(sweep_dir, '*', runs.CONFIG))):
        folder = os.path.dirname(path)
        try:
            config = runs.load_config(folder)
        except (OSError, ValueError) as e:
            raise ValueError(f'{e}; remove {folder} to retrain it') from None
        diff = differences(config, expected)
        if diff:
            what = ', '.join(f'{k}={v[0]!r} (this sweep: {v[1]!r})' for k, v in list(diff.items())[:4])
            raise ValueError(f'{folder} was trained with other settings: {what}. A sweep folder must not mix '
                             'networks of different settings: move it away or use another runs_dir')
        found[(config.get('n_task'), config.get('run'))] = folder
    return {tuple(cell): (runs.state(found.get(tuple(cell))), found.get(tuple(cell)), None) for cell in cells}


def rectangles(cells, order=N_TASKS):
    """Cover a set of (n_task, run) cells exactly with few train.py calls, each a
    rectangle: a list of task counts × a contiguous range of runs. Returns
    [(n_tasks, first run, runs)], grouped by run or by task count, whichever needs fewer."""
    cells = set(map(tuple, cells))
    rank = {k: i for i, k in enumerate(order)}
    sort = lambda ks: sorted(ks, key=lambda k: (rank.get(k, len(rank)), k))  # noqa: E731

    def ranges(runs):
        out, runs = [], sorted(runs)
        for r in runs:
            if out and r == out[-1][0] + out[-1][1]:
                out[-1][1] += 1
            else:
                out.append([r, 1])
        return [tuple(x) for x in out]

    by_run = {}  # runs sharing the same task counts, then contiguous ranges of them
    for r in sorted({r for _, r in cells}):
        by_run.setdefault(tuple(sort(k for k, rr in cells if rr == r)), []).append(r)
    a = [(list(ks), r0, n) for ks, runs in by_run.items() for r0, n in ranges(runs)]
    by_task = {}  # task counts sharing the same run ranges
    for k in sort({k for k, _ in cells}):
        by_task.setdefault(tuple(ranges(r for kk, r in cells if kk == k)), []).append(k)
    b = [(ks, r0, n) for rs, ks in by_task.items() for r0, n in rs]
    return sorted(min(a, b, key=len), key=lambda c: (c[1], rank.get(c[0][0], 0)))


def train_calls(states):
    """The train.py calls for the networks that are not finished: [(n_tasks, first run,
    runs, resume)]: partial networks in resuming calls (train.py groups them by the
    batch their checkpoints are at), missing ones in fresh calls."""
    groups = {}
    for cell, (state, _, _) in states.items():
        if state != runs.FINISHED:
            groups.setdefault(state, []).append(cell)
    return [(ks, r0, n, state == runs.PARTIAL) for state, cells in sorted(groups.items())
            for ks, r0, n in rectangles(cells, order=sorted({k for k, _ in cells}))]  # task counts ascending (9 too)


def train_values(base, n_tasks, r0, n, resume):
    """train.py's hyperparameters for the rectangle n_tasks × runs r0 … r0+n-1: `base`
    (overrides, then out_dir and what follows) with the networks' before out_dir."""
    items = list(base.items())
    cut = next((i for i, (name, _) in enumerate(items) if name == 'out_dir'), len(items))
    which = [('n_task', n_tasks[0] if len(n_tasks) == 1 else list(n_tasks))]
    which += [('run', r0)] * (r0 != 0) + [('runs', n)]
    return dict(items[:cut] + which + items[cut:] + [('resume', True)] * resume)


def analysis_output(step, states=None):
    """Where an analysis step writes: analysis_dir/<run folder name>/<file>, the name
    train.py gives (or gave) the network."""
    if states is None:
        states = network_states(step['sweep_dir'], step['expected'], [step['cell']])
    _, folder, _ = states[tuple(step['cell'])]
    expected = step['expected']
    name = os.path.basename(folder) if folder else runs.run_name(
        expected, dict(script_defaults('train.py'), n_batch=runs.DEFAULT_BATCHES[expected['network']]),
        *step['cell'])
    return os.path.join(step['analysis_dir'], name, step['file'])


def result_problem(output):
    """None when an existing result file loads, else what is wrong with it (a corrupt
    file is remade, never kept as if it were a result)."""
    try:
        with np.load(output, allow_pickle=False) as f:
            [f[key] for key in f.files]
    except Exception as e:  # noqa: BLE001 (whatever numpy or zipfile raise: the file is unusable)
        return f'{type(e).__name__}: {e}'.splitlines()[0]
    return None


def exists(output):
    """An output that is there and usable (result files: they load)."""
    return os.path.exists(output) and not (output.endswith('.npz') and result_problem(output))


def made_elsewhere(output, runs_dir):
    """The runs_dir an existing result file was made from when that is not `runs_dir`
    (None: made from `runs_dir`, or unknown)."""
    other = made_from(output)
    return None if other is None or results.same_place(other, runs_dir) else other


def trained_batches(output):
    """The fewest training batches among the networks an existing result file was made
    from (its JSON's `batches`), or None when it records none."""
    try:
        with open(os.path.splitext(output)[0] + '.json', encoding='utf-8') as f:
            rows = json.load(f)['batches']
        values = [float(b) for row in rows for b in row if b is not None and math.isfinite(float(b))]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return min(values) if values else None


def short_of_budget(step, cwd=''):
    """(file, batches) for the first existing output of an evaluation step made from
    networks trained for fewer batches than its row's budget (step['n_batch']), else None.
    Such a step is run again: the committed 2e4 results of some figures give way to the
    paper's 1e5 (a reduced-budget sweep, whose own budget is lower, keeps them)."""
    budget = step.get('n_batch')
    for o in step.get('outputs', ()) if budget else ():
        batches = trained_batches(os.path.join(cwd, o))
        if batches is not None and batches < budget:
            return o, batches
    return None


def up_to_date(step, cwd=''):
    """Whether every output of an evaluation step exists, loads and was made at the
    row's budget ([] outputs: never; such a step always runs)."""
    return (bool(step['outputs']) and all(exists(os.path.join(cwd, o)) for o in step['outputs'])
            and short_of_budget(step, cwd) is None)


def notebook_parameters(figure):
    """{name: value} of the parameters cell (first line `# parameters`) of the figure's
    notebook, read without running it."""
    with open(os.path.join(REPO, 'Figures', figure + '.ipynb'), encoding='utf-8') as f:
        cells = json.load(f)['cells']
    for cell in cells:
        source = ''.join(cell['source'])
        if cell['cell_type'] == 'code' and source.lstrip().startswith('# parameters'):
            return configurator.literal_defaults(source)
    return {}


def made_from(output):
    """The runs_dir an existing result file was computed from (its JSON's config), or
    None when that cannot be read."""
    try:
        with open(os.path.splitext(output)[0] + '.json', encoding='utf-8') as f:
            return json.load(f)['config']['runs_dir']
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------
# Running steps. A step is a plain dict (it travels to cluster jobs), with its script
# and that script's hyperparameters ({'script', 'values'}, see argv):
#   {'kind': 'train', 'label', 'script', 'values' (train.py's without n_task/run/runs/resume),
#    'sweep_dir', 'cells', 'expected', 'needed'}: trains what is not finished, resuming
#    partial ones, when `needed` (some result that reads the networks is missing);
#   {'kind': 'script', 'label', 'script', 'values', 'outputs'}: runs unless every file of
#    `outputs` (those it writes, the last written last) exists and loads ([]: always),
#    removing what it wrote when it fails;
#   {'kind': 'analysis', 'label', 'script', 'values', 'sweep_dir', 'cell', 'expected',
#    'analysis_dir', 'file'}: runs unless analysis_dir/<run>/<file> exists.

_RUNNING = []  # the scripts run_steps is waiting for, for the preemption handler
STOP = threading.Event()  # set on Ctrl-C: running scripts are stopped, no new step starts


def _execute(argv, cwd, threads, log):
    """Run one script to its end; returns its exit status. Polls instead of blocking in
    wait(), so that a signal handler can stop the script meanwhile."""
    cmd = [sys.executable, os.path.join(REPO, argv[0])] + list(argv[1:])
    env = None
    if threads:  # torch reads these at start: scripts without --n_threads use them too
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    out = open(log, 'a') if log else None
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        _RUNNING.append(proc)
        try:
            while proc.poll() is None:
                if STOP.is_set():
                    proc.terminate()
                time.sleep(0.2)
        finally:
            _RUNNING.remove(proc)
        return proc.returncode
    finally:
        if out:
            out.close()


def _say(message, log):
    print(message, flush=True)
    if log:
        with open(log, 'a') as f:
            f.write(message + '\n')


def run_steps(steps, cwd=None, threads=None, log=None, raise_on_failure=False):
    """Run a chain of steps in order and report each; returns
    [{'label', 'command', 'status': 'done' | 'skipped' | 'FAILED' | 'not run', 'outputs'}].
    A failed step does not stop the others, except that when training fails the
    steps after it (which read those networks) are not run. With raise_on_failure
    (cluster jobs), failures end in RuntimeError so the job counts as failed. `threads`:
    CPU threads of each script (OMP_NUM_THREADS); `log`: a file for the scripts' output."""
    cwd = cwd or os.getcwd()
    records, training_failed = [], False

    def record(step, status, outputs=(), seconds=0.0):
        records.append({'label': step['label'], 'command': show(step), 'status': status,
                        'outputs': list(outputs)})
        if status != 'skipped':
            _say(f"[{step['label']}] {status} ({seconds:.0f} s): {show(step)}", log)

    def run(step, outputs=()):
        _say(f"[{step['label']}] run: {show(step)}", log)
        t0 = time.time()
        before = {path for path in outputs if os.path.exists(os.path.join(cwd, path))}
        status = _execute(argv(step), cwd, threads, log)
        ok = status == 0
        if not ok:
            for path in set(outputs) - before:  # made by the failed run: a rerun makes it again
                if os.path.exists(os.path.join(cwd, path)):
                    os.remove(os.path.join(cwd, path))
        record(step, 'done' if ok else f'FAILED (exit {status})', outputs, time.time() - t0)
        return ok

    for step in steps:
        if STOP.is_set():
            record(step, 'not run (interrupted)')
            continue
        if training_failed and step['kind'] != 'train':
            record(step, 'not run (training failed)')
            continue
        try:
            if step['kind'] == 'train' and not step.get('needed', True):
                record(step, 'skipped')
            elif step['kind'] == 'train':
                states = network_states(os.path.join(cwd, step['sweep_dir']), step['expected'], step['cells'])
                for ks, r0, n, resume in train_calls(states):
                    training_failed |= not run({**step, 'values': train_values(step['values'], ks, r0, n, resume)})
            elif step['kind'] == 'analysis':
                output = analysis_output({**step, 'sweep_dir': os.path.join(cwd, step['sweep_dir'])})
                if os.path.exists(os.path.join(cwd, output)):
                    record(step, 'skipped')
                else:
                    run(step)
            elif up_to_date(step, cwd):
                record(step, 'skipped')
            else:
                run(step, step['outputs'])
        except (ValueError, OSError) as e:  # a folder of other settings, an unreadable config
            _say(f"[{step['label']}] FAILED: {e}", log)
            records.append({'label': step['label'], 'command': show(step), 'status': f'FAILED ({e})',
                            'outputs': []})
            training_failed |= step['kind'] == 'train'
    failed = [r for r in records if r['status'].startswith(('FAILED', 'not run'))]
    if failed and raise_on_failure:
        raise RuntimeError(f'{len(failed)} step(s) failed:\n' + '\n'.join(f"{r['status']}: {r['command']}"
                                                                          for r in failed))
    return records


def _checkpoint(*args, **kwargs):
    """submitit calls this when the job is preempted or about to time out (USR2): stop
    the running script (train.py checkpoints on SIGTERM) and requeue the same call,
    which finds the partial networks and resumes them."""
    from submitit.helpers import DelayedSubmission
    for proc in list(_RUNNING):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
    return DelayedSubmission(run_steps, *args, **kwargs)


run_steps.checkpoint = _checkpoint  # submitit looks for a `checkpoint` attribute on the submitted function


# ---------------------------------------------------------------------------------
# The commands that make one result file (figlib quotes them when a file is missing)

def recipe(name, runs_dir='trained_networks', results_dir='results'):
    """The shell commands that produce results/<name>.npz (a results.result_name:
    `<label>[_ID][_paper][_lstsq]` or `sparsity_<label>`) with the paper's task counts and runs:
    train the sweep, then evaluate it."""
    parts = results.parse_name(name)
    script, label = 'sparsity.py' if parts.pop('sparsity') else 'generalize.py', parts.pop('label')
    plain = {'out_of_distribution': True, 'protocol': 'correct', 'decoder': 'adam'}
    extra = {k: v for k, v in parts.items() if v != plain[k]}
    if label not in EXPERIMENTS:
        return configurator.command(script, {'label': label, **extra}) + ' (see Figures/README.md)'
    row, src = EXPERIMENTS[label], source(label)
    train = {**EXPERIMENTS[src]['train'], 'n_task': row['n_task'], 'runs': row['runs'],
             'out_dir': f'{runs_dir}/{src}'}
    evaluate = {**eval_values(script, label, row, f'{runs_dir}/{src}', results_dir), **extra}
    return ' && '.join(configurator.command(*step) for step in (('train.py', train), (script, evaluate)))


def eval_values(script, label, row, sweep_dir, results_dir, n_tasks=None, runs=None, overrides=None):
    """generalize.py / sparsity.py's hyperparameters for one row: its own overrides
    where the script has them, then the sweep's `overrides` for the names the row
    does not set."""
    defaults = script_defaults(script)
    own = {k: v for k, v in row['evaluate'].items() if k in defaults}
    own.update({k: v for k, v in (overrides or {}).items() if k not in own})
    return {'runs_dir': sweep_dir, 'n_tasks': n_tasks or row['n_task'], 'n_runs': runs or row['runs'],
            **own, 'label': label, 'results_dir': results_dir}
