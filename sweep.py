"""Reproduce the paper's figures with one command: train, evaluate and analyse what the
named figures need, then run their notebooks.

    python sweep.py fig3a                      # Figure 3a: the RNN sweep, OOD + ID decoding
    python sweep.py fig3b fig5c --dry_run=True # the exact commands and their cost, nothing run
    python sweep.py all --n_parallel=2         # everything, two experiments at a time
    python sweep.py all --executor=slurm --partition=cpu

What each figure needs is the table in experiments.py (Figures/README.md shows it).
Every experiment trains into its own folder <runs_dir>/<experiment>/ and is evaluated
from there, under each OOD protocol (results/<label>.npz and results/<label>_paper.npz).
A rerun does only what is missing: finished networks (metrics.json) and existing result
files are skipped (a result of networks trained for fewer batches than its row's budget
counts as missing), partly trained networks (net.pth only) resume with --resume=True, and
networks are trained only where a result that reads them is missing. A step that would
replace result files made from other networks is refused before any work unless
--eval_overrides="{'overwrite': True}". Before any work,
every step's hyperparameters go through its script's own checks (the dry run refuses
what the real run would), and every output folder is probed. A failed step is reported
and the others go on, except those that read its output (the notebooks of a figure whose
results failed do not run); the exit status is then 1.

Executors. 'local' runs one process chain per experiment, at most n_parallel at once,
each script with n_threads threads. 'slurm' submits through submitit, per experiment:

    # a job array, one task per network that is not finished
    #SBATCH --job-name=sweep-<experiment>  --array=0-<N-1>%<array_parallelism>
    #SBATCH --partition=<partition>  --time=<time_min>  --cpus-per-task=<cpus_per_task>
    #SBATCH --gpus-per-node=<gpus_per_node>  --signal=USR2@120  --requeue
    srun python -m submitit.core._submit <log_dir>
        -> experiments.run_steps([train step]):
           python train.py <overrides> --out_dir=<runs_dir>/<experiment> --n_task=<k> --run=<r> --runs=1
           (with --resume=True when the network has a checkpoint: after preemption or a requeue)
    # then its evaluations, once every task of the array succeeded
    #SBATCH --job-name=sweep-<experiment>-eval  --dependency=afterok:<array id>  --kill-on-invalid-dep=yes
        -> python generalize.py ...; python generalize.py ... --protocol=paper; python sparsity.py ...;
           python analyze.py ...
    # and one job for the notebooks
    #SBATCH --job-name=sweep-figures  --dependency=afterok:<every evaluation job> (a failed one: no figures)
        -> python Figures/run_notebooks.py <figures> --results_dir=... --analysis_dir=... --out_dir=...

A network trained alone (--n_task=k --run=r --runs=1) is the same network as in the
ensemble run. On preemption or 120 s before the time limit, submitit sends USR2; the job
stops train.py with SIGTERM (it checkpoints) and requeues itself, up to max_requeue
times; the requeued job resumes from the checkpoint. sweep.py exits after submitting;
rerun it later to see what is left. 'submitit_local' runs the same pickled jobs through
submitit's LocalExecutor (to test the Slurm path without Slurm; it waits for each job).
"""
# ---- hyperparameters (override with --name=value or a config file) ----
figures = []  # figures to make, also as bare words: fig3a fig3b fig3c fig4 fig5a fig5b_S12 fig5c S1 S3b S5c S6 fixed_points loss, or all
runs_dir = 'trained_networks'  # each experiment trains into runs_dir/<experiment>/
results_dir = 'results'  # where generalize.py and sparsity.py write
analysis_dir = 'analysis'  # where analyze.py and analyze_transformer.py write
out_dir = 'Figures/out'  # where the notebooks write the figures
log_dir = 'sweep_logs'  # scripts' output when experiments run in parallel, and submitit's files
n_tasks = None  # task counts of every experiment (None: the table's, e.g. [2, 3, 6, 12, 24])
runs = None  # runs per task count of every experiment (None: the table's, 10 or 5)
n_batch = None  # training batches of every network (None: each network type's paper budget)
train_overrides = {}  # more train.py hyperparameters for every network, e.g. {'n_neu': 8} (an experiment's own values win)
eval_overrides = {}  # hyperparameters of generalize / sparsity / analyze(_transformer).py, each given to the scripts that have it (an experiment's own values win)
protocols = ['correct', 'paper']  # OOD protocols of generalize.py: 'correct' -> results/<label>.npz, 'paper' -> <label>_paper.npz (both: one pass)
notebooks = True  # run the figures' notebooks at the end
dry_run = False  # list every step that would run, with its estimated cost, and stop
executor = 'local'  # 'local', 'slurm' (through submitit) or 'submitit_local' (submitit's local executor)
n_parallel = 1  # local: experiments running at once
n_threads = None  # CPU threads of every script (its --n_threads); None: local: CPU cores / n_parallel, slurm: cpus_per_task
device = 'auto'  # passed to every script: 'auto', 'cpu', 'cuda', ...
partition = None  # slurm partition (None: the cluster's default)
time_min = 1440  # slurm (and submitit_local) time limit of each job, minutes
cpus_per_task = 2  # slurm CPUs per job
gpus_per_node = 0  # slurm GPUs per job (use with device='cuda')
array_parallelism = 64  # slurm: array tasks running at once
max_requeue = 3  # slurm: requeues after preemption or time-out
# ------------------------------------------------------------------------
import concurrent.futures
import os
import shutil
import subprocess
import sys
import time

import checks
import configurator
import experiments
import results
from configurator import configure

_EXECUTORS = ('local', 'slurm', 'submitit_local')
_PROTOCOLS = ('correct', 'paper')
_SIGNAL_DELAY_S = 120  # slurm: seconds between USR2 and the end of a job


# ---------------------------------------------------------------------------------
# Checks: every mistake is reported before any work

def check(hp):
    """Validate the hyperparameters; returns (figures, per-script overrides)."""
    figs = experiments.check_figures(hp['figures'])
    checks.one_of('executor', hp['executor'], _EXECUTORS)
    if not hp['protocols'] or any(p not in _PROTOCOLS for p in hp['protocols']) or len(set(hp['protocols'])) < len(hp['protocols']):
        checks.fail('protocols', hp['protocols'], f'a non-empty list of distinct values from {_PROTOCOLS}')
    for name in ('n_parallel', 'time_min', 'cpus_per_task', 'array_parallelism'):
        checks.positive_int(name, hp[name])
    for name in ('runs', 'n_threads', 'n_batch'):
        if hp[name] is not None:
            checks.positive_int(name, hp[name])
    if hp['n_tasks'] is not None:
        checks.positive_ints('n_tasks', hp['n_tasks'])
    checks.non_negative_int('gpus_per_node', hp['gpus_per_node'])
    checks.non_negative_int('max_requeue', hp['max_requeue'])
    for name in ('runs_dir', 'results_dir', 'analysis_dir', 'out_dir', 'log_dir'):
        checks.folder(name, hp[name])
    for name in ('train_overrides', 'eval_overrides'):
        checks.dictionary(name, hp[name])
    hp['train_overrides'] = experiments.check_overrides(
        hp['train_overrides'], experiments.script_defaults('train.py'), 'train_overrides',
        experiments.TRAIN_SET_BY_SWEEP)
    # each evaluation override goes to the scripts that have it; one that none has is a mistake
    known = {s: experiments.script_defaults(s) for s in experiments.EVAL_SCRIPTS}
    overrides = {s: {} for s in experiments.EVAL_SCRIPTS}
    for name, value in hp['eval_overrides'].items():
        having = [s for s in experiments.EVAL_SCRIPTS if name in known[s]]
        union = {n: v for d in known.values() for n, v in d.items()}
        experiments.check_overrides({name: value}, union, 'eval_overrides', experiments.EVAL_SET_BY_SWEEP)
        for s in having:
            overrides[s][name] = experiments.check_overrides({name: value}, known[s], 'eval_overrides')[name]
    if hp['executor'] != 'local' and not hp['dry_run']:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ValueError(f"executor={hp['executor']!r} needs submitit: pip install -r requirements.txt") from None
        if hp['executor'] == 'slurm' and shutil.which('srun') is None:
            raise ValueError("executor='slurm' needs Slurm (no srun here); executor='submitit_local' runs the "
                             "same jobs on this machine")
    if hp['executor'] != 'slurm' and str(hp['device']).startswith('cuda'):  # Slurm's nodes have their own GPUs
        import torch  # only here: planning stays torch-free otherwise
        index = hp['device'].partition(':')[2]
        if not torch.cuda.is_available() or (index.isdigit() and int(index) >= torch.cuda.device_count()):
            checks.fail('device', hp['device'], f"'auto' or 'cpu': this machine has {torch.cuda.device_count()} "
                        "GPU(s) that torch can use")
    return figs, overrides


# ---------------------------------------------------------------------------------
# The plan: per training folder ("unit"), its networks and the evaluations that read them

def threads(hp):
    if hp['n_threads']:
        return hp['n_threads']
    if hp['executor'] == 'local':
        return max(1, (os.cpu_count() or 1) // hp['n_parallel'])
    return hp['cpus_per_task']


def plan(hp, figs, overrides):
    """{unit: {'cells', 'sweep_dir', 'expected', 'steps', 'states'}} for what `figs` read,
    in table order, and notes. Each step is a script with its hyperparameters
    ({'script', 'values'}); every one gets the sweep's n_threads and device. Raises
    ValueError for a sweep folder that holds networks of other settings."""
    units, notes = {}, []
    # every script gets the threads the sweep gives it: torch.set_num_threads in a
    # script overrides OMP_NUM_THREADS, so the environment alone is not enough
    extra = {'n_threads': threads(hp), **({'device': hp['device']} if hp['device'] != 'auto' else {})}

    def unit(src):
        if src not in units:
            row = experiments.EXPERIMENTS[src]
            sweep_dir = os.path.join(hp['runs_dir'], src)
            more = {k: v for k, v in hp['train_overrides'].items() if k not in row['train']}  # the row's values win
            values = {**row['train'], **more, **({'n_batch': hp['n_batch']} if hp['n_batch'] is not None and 'n_batch' not in row['train'] else {}),
                      'out_dir': sweep_dir, **extra}
            units[src] = {'cells': set(), 'sweep_dir': sweep_dir, 'steps': [],
                          'train': {'kind': 'train', 'label': src, 'script': 'train.py', 'values': values,
                                    'sweep_dir': sweep_dir},
                          'expected': experiments.expected_config(src, hp['train_overrides'], hp['n_batch'])}
        return units[src]

    def script_step(label, script, args, outputs):
        values = {**experiments.eval_values(script, label, row, u['sweep_dir'], hp['results_dir'], ks, n_runs,
                                            overrides[script]), **args, **extra}
        u['steps'].append({'kind': 'script', 'label': label, 'script': script, 'values': values, 'outputs': outputs,
                           'n_dim': u['expected']['n_dim'], 'n_batch': u['expected']['n_batch'],
                           'network': u['expected']['network']})

    wanted = [item for f in figs for item in experiments.reads(f)]
    kept = []  # rows the figures read only as a fallback: never made here
    for label in experiments.EXPERIMENTS:  # table order
        kinds = {(kind, detail) for kind, lab, detail in wanted if lab == label}
        if not kinds:
            continue
        if experiments.EXPERIMENTS[label]['fallback']:
            kept.append(label)
            continue
        row, src = experiments.EXPERIMENTS[label], experiments.source(label)
        ks, n_runs = hp['n_tasks'] or row['n_task'], hp['runs'] or row['runs']
        u = unit(src)
        u['cells'] |= {(k, r) for k in ks for r in range(n_runs)}
        # the row's decoder wins (as in eval_values); 'both' writes the least-squares files,
        # then Adam's
        decoder = row['evaluate'].get('decoder') or overrides['generalize.py'].get('decoder', 'adam')
        decoders = ['lstsq', 'adam'] if decoder == 'both' else [decoder]

        def outputs(protocols=('correct',), label=label, **name):
            """Every file a step writes, in the order it writes them (the last one last)."""
            return [os.path.join(hp['results_dir'], results.result_name(label, protocol=p, decoder=d, **name) + '.npz')
                    for d in decoders for p in protocols]

        if ('results', None) in kinds:
            if len(hp['protocols']) == 2:  # one pass: the same decoders tested both ways
                script_step(label, 'generalize.py', {'protocol': 'both'}, outputs(('correct', 'paper')))
            else:
                paper = hp['protocols'] == ['paper']
                script_step(label, 'generalize.py', {'protocol': 'paper'} if paper else {}, outputs(hp['protocols']))
        if ('ID', None) in kinds:
            script_step(label, 'generalize.py', {'out_of_distribution': False}, outputs(out_of_distribution=False))
        if ('sparsity', None) in kinds:
            script_step(label, 'sparsity.py', {},
                        [os.path.join(hp['results_dir'], results.result_name(label, sparsity=True) + '.npz')])
        for kind, detail in sorted(kinds, key=str):
            if kind != 'analysis':
                continue
            script, k, r = detail
            if k not in ks or r >= n_runs:
                notes.append(f'{script} of {label} nTask{k} run{r} skipped: n_tasks={ks}, runs={n_runs}')
                continue
            values = {'runs_dir': u['sweep_dir'], 'select': {'n_task': k, 'run': r}, 'out_dir': hp['analysis_dir'],
                      **overrides[script], **extra}
            u['steps'].append({'kind': 'analysis', 'label': label, 'script': script, 'values': values,
                               'sweep_dir': u['sweep_dir'], 'cell': [k, r], 'expected': u['expected'],
                               'analysis_dir': hp['analysis_dir'],
                               'file': 'values_summary.json' if script == 'analyze_transformer.py' else 'summary.json'})
    if kept:
        notes.append(f"not made: {', '.join(kept)} (committed results of an earlier design, drawn only while "
                     "the design the figure shows has no file; experiments.recipe(label) makes one)")
    if (hp['train_overrides'] or hp['n_batch']) and {'fig4', 'fixed_points'} & set(figs):
        notes.append('fig4 and fixed_points read analysis/nTask24_run0 (and network-gpt-2_nTask24_run0, '
                     'nTask2_run0): with train_overrides or n_batch the run folders are named otherwise, '
                     'so those notebooks will not find them')
    for src, u in units.items():
        u['states'] = experiments.network_states(u['sweep_dir'], u['expected'], sorted(u['cells']))
        # networks are trained only for results that are missing (a fresh clone holding every
        # result file retrains nothing)
        needed = any(pending(step, u['states']) for step in u['steps'])
        u['steps'].insert(0, {**u.pop('train'), 'cells': [list(c) for c in sorted(u['cells'])],
                              'expected': u['expected'], 'needed': needed})
    return units, notes


def check_steps(hp, units):
    """Before any work, in the dry run as in the real one: probe every output folder
    (leaving nothing behind), then give the hyperparameters of every step that will
    run to its script's own checks (the script exits after checking:
    configurator.CHECK_ONLY). Raises ValueError naming each step its script refuses, and
    (in the real run; the dry run marks them in the plan) each step that would replace
    result files made from other networks (`replaced`)."""
    for name in ('runs_dir', 'results_dir', 'analysis_dir', 'out_dir') + ('log_dir',) * (hp['executor'] != 'local'):
        try:
            checks.writable(name, hp[name], keep=False)
        except OSError as e:
            raise ValueError(str(e)) from None
    steps = [s for u in units.values() for s in u['steps'][1:] if pending(s, u['states'])]
    # training is checked on the whole rectangle of its networks
    steps += [{**u['steps'][0], 'values': experiments.train_values(
        u['steps'][0]['values'], sorted({k for k, _ in u['cells']}), 0, 1 + max(r for _, r in u['cells']), False)}
        for u in units.values() if pending(u['steps'][0], u['states'])]
    env = {**os.environ, configurator.CHECK_ONLY: '1'}

    def refusal(step):
        cmd = [sys.executable, os.path.join(experiments.REPO, step['script'])] + experiments.argv(step)[1:]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            return None
        lines = (proc.stderr or proc.stdout).strip().splitlines() or [f'exit {proc.returncode}']
        return f"[{step['label']}] {step['script']} refuses: {lines[-1].removeprefix('error: ')}"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # each check is an interpreter start (~0.2 s)
        refused = [r for r in pool.map(refusal, steps) if r]
    # the dry run marks these in the plan; the real one stops here, before any training
    replacing = [] if hp['dry_run'] else [(s, files) for s in steps if (files := replaced(s))]
    refused += [f"[{s['label']}] {files[0][0]}{f' (and {len(files) - 1} more)' if len(files) > 1 else ''} "
                f"exists, made from {files[0][1]}/, not {s['values']['runs_dir']}/" for s, files in replacing]
    if refused:
        how = f"\n{REPLACE_HOW}" if replacing else ''
        raise ValueError(f"{len(refused)} step(s) would fail:\n  " + '\n  '.join(dict.fromkeys(refused)) + how)


def pending(step, states):
    """Whether a step has work to do now (training: unfinished networks; others: a
    missing output)."""
    if step['kind'] == 'train':
        return step['needed'] and any(s != 'finished' for s, _, _ in states.values())
    if step['kind'] == 'analysis':
        return not os.path.exists(experiments.analysis_output(step, states))
    return bool(step['outputs']) and not experiments.up_to_date(step)


def notebook_step(hp, figs, units):
    """Run the notebooks of the figures whose inputs change in this sweep or whose main
    PNG is missing; returns (step or None, figures without a notebook)."""
    remade = {step['label'] for u in units.values() for step in u['steps'][1:] if pending(step, u['states'])}
    retrained = {src for src, u in units.items() if pending(u['steps'][0], u['states'])}
    names, missing = [], []
    for f in figs:
        if not os.path.exists(os.path.join(experiments.REPO, 'Figures', f + '.ipynb')):
            missing.append(f)
            continue
        inputs = {label for _, label, _ in experiments.reads(f)}
        stale = inputs & remade or {experiments.source(label) for label in inputs} & retrained
        if stale or not os.path.exists(os.path.join(hp['out_dir'], experiments.FIGURES[f][0] + '.png')):
            names.append(f)
    if not names or not hp['notebooks']:
        return None, missing
    values = {k: hp[k] for k in ('results_dir', 'analysis_dir', 'out_dir')}
    if hp['n_tasks']:  # the notebooks show the task counts the sweep made, not the paper's
        having = {name for f in names for name in experiments.notebook_parameters(f)}
        values.update({'n_tasks': hp['n_tasks']} if 'n_tasks' in having else {})
        values.update({'n_task': max(hp['n_tasks'])} if 'n_task' in having else {})
    return {'kind': 'script', 'label': 'figures', 'script': 'Figures/run_notebooks.py', 'words': names,
            'values': values, 'outputs': []}, missing


# ---------------------------------------------------------------------------------
# Costs

def step_seconds(step, states, hp):
    """Estimated seconds of one step (training: the train.py calls it will make)."""
    if step['kind'] == 'train':
        network = step['expected']['network']
        work = sum(len(ks) * n * (step['expected']['n_batch'] - ((states[(ks[0], r0)][2] or 0) if resume else 0))
                   for ks, r0, n, resume in experiments.train_calls(states))
        return work / experiments.THROUGHPUT[network]
    script, values = step['script'], step['values']
    if script == 'Figures/run_notebooks.py':
        return experiments.NOTEBOOK_SECONDS * len(step['words'])
    if step['kind'] == 'analysis':
        return experiments.EVAL_SECONDS[script]
    networks = len(values['n_tasks']) * values['n_runs']
    if script != 'generalize.py':
        return experiments.EVAL_SECONDS[script] * networks
    n_dim = step.get('n_dim', 2)  # one split per orthant (4 at D = 2), every split-th one, or per variable
    splits = (-(-2 ** n_dim // values['split']) if values.get('split') is not None else
              n_dim if values.get('split_var') else 2 ** n_dim)
    per_network = experiments.GENERALIZE_SECONDS[step.get('network', 'RNN')] * (
        experiments.UNTRAINED_EVAL_FACTOR if step.get('n_batch') == 0 else 1)
    return per_network * networks * splits / 4


def hours(seconds):
    if seconds < 60:
        return f'{seconds:.0f} s'
    return f'{seconds / 3600:.2f} h' if seconds >= 360 else f'{seconds / 60:.1f} min'


# ---------------------------------------------------------------------------------
# Showing the plan

def kept_from(step, sweep_dir):
    """', made from <other>/ ...' when an existing result file was computed from other
    networks than this sweep's (a reduced-budget sweep keeps the full one's results/RNN.npz)."""
    last = step['outputs'][-1] if step['kind'] == 'script' and step['outputs'] else None  # the file written last
    other = experiments.made_elsewhere(last, sweep_dir) if last else None
    if other is None:
        return ''
    return f", made from {other}/, not {sweep_dir}/: kept; delete {last} to remake it"


def replaced(step):
    """[(file, runs_dir it was made from)]: the existing outputs of an evaluation step
    made from other networks than its own. Its script refuses to replace them (unless
    given overwrite=True), and would do so only after the training the step waits for, so
    the sweep says so before any work."""
    values = step['values']
    if step['kind'] != 'script' or values.get('overwrite') or 'runs_dir' not in values:
        return []
    return [(o, other) for o in step['outputs']
            if os.path.exists(o) and (other := experiments.made_elsewhere(o, values['runs_dir']))]


REPLACE_HOW = ("""pass --eval_overrides="{'overwrite': True}" to replace them with this sweep's networks' """
               "results, delete them, or give another --results_dir")


def describe(hp, figs, units, nb_step, missing_nb, notes):
    """Print every step that would run (exact commands) with its cost; returns the
    total estimated seconds."""
    total = 0.0
    slurm_like = hp['executor'] != 'local'
    print(f"figures: {' '.join(figs)}; experiments: {', '.join(units)}; executor: {hp['executor']}")
    for src, u in units.items():
        states = u['states']
        count = {s: sum(v[0] == s for v in states.values()) for s in ('finished', 'partial', 'missing')}
        secs = [step_seconds(s, states, hp) if pending(s, states) else 0.0 for s in u['steps']]
        total += sum(secs)
        print(f"\n{src}: {u['sweep_dir']}/ {len(states)} networks ({count['finished']} finished, "
              f"{count['partial']} partial, {count['missing']} missing); estimated {hours(sum(secs))}")
        train, evals = u['steps'][0], u['steps'][1:]
        if pending(train, states):
            if slurm_like:
                cells = [c for c, v in states.items() if v[0] != 'finished']
                print(f"  job array sweep-{src}, {len(cells)} tasks, {hours(secs[0])}:")
                for k, r in cells:
                    values = experiments.train_values(train['values'], [k], r, 1, states[(k, r)][0] == 'partial')
                    print(f"    {experiments.show({**train, 'values': values})}")
            else:
                for ks, r0, n, resume in experiments.train_calls(states):
                    values = experiments.train_values(train['values'], ks, r0, n, resume)
                    print(f"  {experiments.show({**train, 'values': values})}")
                print(f"    [{count['missing'] + count['partial']} networks, {hours(secs[0])} "
                      f"at {experiments.THROUGHPUT[train['expected']['network']]} network-batches/s]")
        elif count['finished'] < len(states):
            print('  not trained: every result that reads these networks exists')
        if slurm_like and any(pending(s, states) for s in evals):
            print(f"  job sweep-{src}-eval" + (' (after the array succeeds)' if pending(train, states) else '') + ':')
        for step, sec in zip(evals, secs[1:]):
            corrupt = [(o, problem) for o in step.get('outputs', ())
                       if os.path.exists(o) and (problem := experiments.result_problem(o))]
            if corrupt:
                print(f"  remake ({corrupt[0][0]} is corrupt: {corrupt[0][1]}): {experiments.show(step)}   [{hours(sec)}]")
            elif pending(step, states):
                short = experiments.short_of_budget(step)  # a result of a shorter training: remade
                budget = f"{short[1]:.0f} batches, the row's budget is {step['n_batch']}" if short else ''
                if other := replaced(step):
                    made = f"{other[0][1]}/" + (f" ({budget})" if short else '')
                    why = f"refused ({other[0][0]} exists, made from {made}, not {u['sweep_dir']}/; see the note below): "
                else:
                    why = f"remake ({short[0]}: networks of {budget}): " if short else ''
                print(f"  {why}{experiments.show(step)}   [{hours(sec)}]")
            else:
                print(f"  skip (exists{kept_from(step, u['sweep_dir'])}): {experiments.show(step)}")
    if nb_step:
        sec = step_seconds(nb_step, {}, hp)
        total += sec
        print(f"\nfigures{' (job sweep-figures, after the evaluations)' if slurm_like else ''}:\n"
              f"  {experiments.show(nb_step)}   [{hours(sec)}]")
    for f in missing_nb:
        print(f'note: no notebook Figures/{f}.ipynb yet: its results are made, the figure is not')
    for note in notes:
        print(f'note: {note}')
    if any(replaced(s) for u in units.values() for s in u['steps'] if pending(s, u['states'])):
        print(f'note: the steps marked refused would replace result files made from other networks: {REPLACE_HOW}')
    wall = total / min(hp['n_parallel'], max(len(units), 1)) if hp['executor'] == 'local' else None
    print(f"\ntotal: {hours(total)} of single-core work" +
          (f" (about {hours(wall)} with n_parallel={hp['n_parallel']})" if wall is not None else ''))
    return total


# ---------------------------------------------------------------------------------
# Executors

def run_local(hp, units, nb_step, cwd):
    """One chain of steps per experiment, n_parallel at a time; then the notebooks."""
    n_thr = threads(hp)
    todo = [(src, u) for src, u in units.items() if any(pending(s, u['states']) for s in u['steps'])]
    parallel = hp['n_parallel'] > 1 and len(todo) > 1
    if parallel:
        os.makedirs(hp['log_dir'], exist_ok=True)
        print(f"scripts' output goes to {hp['log_dir']}/<experiment>.log")

    def chain(item):
        src, u = item
        log = os.path.join(cwd, hp['log_dir'], f'{src}.log') if parallel else None
        return experiments.run_steps(u['steps'], cwd, n_thr, log)

    records = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=hp['n_parallel']) as pool:
        try:
            for result in pool.map(chain, todo):
                records += result
        except KeyboardInterrupt:  # stop the running scripts; the chains start nothing new
            experiments.STOP.set()
            raise
    nb_step, skipped = drawable(nb_step, records)
    return records + skipped + (experiments.run_steps([nb_step], cwd, n_thr) if nb_step else [])


def drawable(nb_step, records):
    """(the notebooks step without the figures that read the output of a failed step
    or None, a record for each of those naming the step)."""
    if not nb_step:
        return None, []
    failed = {r['label']: r for r in records if r['status'].startswith(('FAILED', 'not run'))}
    names, skipped = [], []
    for f in nb_step['words']:
        inputs = {label for _, label, _ in experiments.reads(f)}
        cause = next((failed[label] for label in sorted(inputs | {experiments.source(x) for x in inputs})
                      if label in failed), None)
        if cause is None:
            names.append(f)
            continue
        status = f"not run ({f}: [{cause['label']}] {cause['status']}: {cause['command']})"
        print(f"[figures] {status}", flush=True)
        skipped.append({'label': 'figures', 'command': experiments.show({**nb_step, 'words': [f]}),
                        'status': status, 'outputs': []})
    return ({**nb_step, 'words': names} if names else None), skipped


def slurm_parameters(hp, name, minutes, dependency=None):
    """submitit's SlurmExecutor parameters of one kind of job (its sbatch header)."""
    params = {'job_name': name, 'time': minutes, 'cpus_per_task': hp['cpus_per_task'],
              'array_parallelism': hp['array_parallelism'], 'signal_delay_s': _SIGNAL_DELAY_S,
              'additional_parameters': {'requeue': True}}
    if hp['partition']:
        params['partition'] = hp['partition']
    if hp['gpus_per_node']:
        params['gpus_per_node'] = hp['gpus_per_node']
    if dependency:  # a dependency that can no longer be met cancels the job instead of leaving it queued
        params['dependency'] = dependency
        params['additional_parameters']['kill-on-invalid-dep'] = 'yes'
    return params


def make_executor(hp, name, minutes, dependency=None):
    """A submitit executor for one kind of job ('slurm' or submitit's local one)."""
    import submitit
    if hp['executor'] == 'slurm':
        ex = submitit.SlurmExecutor(folder=hp['log_dir'], max_num_timeout=hp['max_requeue'])
        ex.update_parameters(**slurm_parameters(hp, name, minutes, dependency))
    else:
        ex = submitit.LocalExecutor(folder=hp['log_dir'], max_num_timeout=hp['max_requeue'])
        ex.update_parameters(timeout_min=minutes, gpus_per_node=hp['gpus_per_node'],
                             signal_delay_s=min(_SIGNAL_DELAY_S, max(1, minutes * 60 // 4)))
    return ex


def wait(jobs, what):
    """Results of finished submitit jobs: their records, or one FAILED record each."""
    records = []
    for job in jobs:
        try:
            records += job.result()
        except Exception as e:  # the job's own error, with its log files named
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            print(f'[{what}] job {job.job_id} FAILED: {first}\n  log: {job.paths.stdout}', flush=True)
            records.append({'label': what, 'command': f'submitit job {job.job_id}', 'status': f'FAILED ({first})',
                            'outputs': []})
    return records


def run_submitit(hp, units, nb_step, cwd):
    """Slurm: per experiment a job array of networks, then a dependent evaluation job,
    then one notebooks job; returns after submitting. submitit_local: the same jobs,
    each waited for before its dependents start (the local executor has no dependencies)."""
    slurm = hp['executor'] == 'slurm'
    n_thr = threads(hp)
    records, submitted = [], []
    # the jobs unpickle experiments.run_steps: they must find this repo's modules wherever they start
    os.environ['PYTHONPATH'] = os.pathsep.join([experiments.REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    for src, u in units.items():
        states, train, evals = u['states'], u['steps'][0], u['steps'][1:]
        cells = [c for c, v in states.items() if v[0] != 'finished'] if pending(train, states) else []
        jobs = []
        if cells:
            ex = make_executor(hp, f'sweep-{src}', hp['time_min'])
            with ex.batch():  # one array task per network, same networks as the ensemble
                for cell in cells:
                    jobs.append(ex.submit(experiments.run_steps, [{**train, 'cells': [list(cell)]}], cwd, n_thr, None, True))
            ids = jobs[0].job_id.split('_')[0] if slurm else ', '.join(j.job_id for j in jobs)
            print(f"[{src}] submitted {len(jobs)} training job(s): {ids}", flush=True)
            submitted.append(jobs[0].job_id.split('_')[0])
        todo = [s for s in evals if pending(s, states)]
        if not todo:
            continue
        if slurm:
            dependency = f"afterok:{jobs[0].job_id.split('_')[0]}" if jobs else None
            job = make_executor(hp, f'sweep-{src}-eval', hp['time_min'], dependency).submit(
                experiments.run_steps, todo, cwd, n_thr, None, True)
            print(f'[{src}] submitted evaluation job {job.job_id}' + (f' ({dependency})' if dependency else ''), flush=True)
            submitted.append(job.job_id)
            continue
        trained = wait(jobs, src)
        records += trained
        if any(r['status'].startswith('FAILED') for r in trained):
            records += [{'label': s['label'], 'command': experiments.show(s),
                         'status': 'not run (training failed)', 'outputs': []} for s in todo]
            continue
        records += wait([make_executor(hp, f'sweep-{src}-eval', hp['time_min']).submit(
            experiments.run_steps, todo, cwd, n_thr, None, True)], src)
    if nb_step and slurm:  # the notebooks run only once every evaluation succeeded
        dependency = ('afterok:' + ':'.join(submitted)) if submitted else None
        job = make_executor(hp, 'sweep-figures', 60, dependency).submit(experiments.run_steps, [nb_step], cwd, n_thr, None, True)
        print(f'[figures] submitted notebooks job {job.job_id}', flush=True)
    elif nb_step:
        nb_step, skipped = drawable(nb_step, records)
        records += skipped
        if nb_step:
            records += wait([make_executor(hp, 'sweep-figures', 60).submit(
                experiments.run_steps, [nb_step], cwd, n_thr, None, True)], 'figures')
    if slurm:
        print(f"submitted; logs in {hp['log_dir']}/. Rerun the same command later: finished work is skipped.")
    return records


# ---------------------------------------------------------------------------------

def main(hp):
    """Plan, show or run; returns the exit status (0: everything done, 1: a step failed)."""
    t0 = time.time()
    figs, overrides = check(hp)
    units, notes = plan(hp, figs, overrides)
    nb_step, missing_nb = notebook_step(hp, figs, units)
    check_steps(hp, units)
    if hp['dry_run']:  # `| head` reads what it needs and leaves: not an error
        configurator.print_help(describe, hp, figs, units, nb_step, missing_nb, notes)
        return 0
    describe(hp, figs, units, nb_step, missing_nb, notes)
    if not nb_step and not any(pending(s, u['states']) for u in units.values() for s in u['steps']):
        print('\nnothing to do: every network, result and figure exists')
        return 0
    print(flush=True)
    cwd = os.getcwd()
    run = run_local if hp['executor'] == 'local' else run_submitit
    records = run(hp, units, nb_step, cwd)
    failed = [r for r in records if r['status'].startswith(('FAILED', 'not run'))]
    done = sum(r['status'] == 'done' for r in records)
    print(f"\n{done} step(s) done, {len(failed)} failed or not run ({time.time() - t0:.0f} s)")
    for r in failed:
        print(f"  [{r['label']}] {r['status']}: {r['command']}")
    return 1 if failed else 0


if __name__ == '__main__':
    _config = configure(globals(), positional='figures', doc=__doc__, print_config=False)
    try:
        sys.exit(main(_config))
    except ValueError as _e:
        print(f'error: {_e}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('\ninterrupted: rerun the same command to go on (finished work is kept, partial networks resume)',
              file=sys.stderr)
        sys.exit(130)
