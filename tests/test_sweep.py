"""sweep.py and its table (experiments.py): the table agrees with Figures/README.md, the
dry run lists every figure's work, bad input stops before any work, and a tiny sweep
runs end to end (locally and through submitit's LocalExecutor), resumes after being
killed, redoes only what is missing and reports a failed step."""
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import configurator
import experiments
import results
import runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(REPO, 'sweep.py')
PROTOCOLS = ['correct', 'paper']
TIMING = {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100}
# two task counts, one run, few batches, tiny networks, short trials, a quick decoder
TINY = ['--n_tasks=[2,24]', '--runs=1', '--n_batch=200', '--n_threads=1', '--out_dir=figs',
        f'--protocols={PROTOCOLS}', f"--train_overrides={{'n_neu': 8, 'timing': {TIMING}}}",
        "--eval_overrides={'decoder_batches': {2: 20, 24: 20}, 'n_fit': 1, 'n_test': 5, 'n_abstraction': 20}"]


def sweep(cwd, *args, check=None):
    """Run sweep.py in `cwd`; returns the completed process (output in .out)."""
    proc = subprocess.run([sys.executable, SWEEP, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    proc.out = proc.stdout + proc.stderr
    if check is not None:
        assert proc.returncode == check, proc.out
    return proc


# ---------------------------------------------------------------------------------
# The table and Figures/README.md

# Where Figures/README.md does not yet say what the table says (the edits are proposed
# with this change); anything else that differs fails.
PENDING = set()  # differences between Figures/README.md and the table still to resolve


def readme_tables():
    """Figures/README.md's two tables as lists of {header: cell}."""
    with open(os.path.join(REPO, 'Figures', 'README.md'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    tables, current = [], None
    for line in lines + ['']:
        if line.startswith('|'):
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if current is None:
                current = {'header': cells, 'rows': []}
            elif not set(''.join(cells)) <= set('-: '):
                current['rows'].append(dict(zip(current['header'], cells)))
        elif current is not None:
            tables.append(current)
            current = None
    return {t['header'][0]: t['rows'] for t in tables}


def ticked(cell):
    return re.findall(r'`([^`]*)`', cell)


def pattern(name):
    """`FreeRT_T<T>` -> a regex capturing the placeholder."""
    return re.compile(re.sub(r'<\w+>', lambda m: '(?P<x>.+)', re.escape(name).replace(r'\<', '<').replace(r'\>', '>')))


def readme_flags(cell, x):
    """{name: value} of the --name=value flags in a README cell, placeholders filled with x."""
    if not cell.startswith('`'):
        return {}
    text = ' '.join(ticked(cell))
    text = re.sub(r'<(\d+)·\w+>', lambda m: str(int(m.group(1)) * int(x)), text)
    text = re.sub(r'<\w+>', str(x), text)
    return {item[2:].partition('=')[0]: configurator.parse_value(item.partition('=')[2])
            for item in shlex.split(text) if item.startswith('--')}


def table_differences():
    """The ways in which Figures/README.md and experiments.EXPERIMENTS disagree."""
    tables = readme_tables()
    rows = tables['result file']
    defaults = experiments.script_defaults('train.py')
    plain = lambda d: {k: v for k, v in d.items() if defaults.get(k, object()) != v}  # noqa: E731
    diffs = set()
    for label, row in experiments.EXPERIMENTS.items():
        matches = [(r, pattern(ticked(r['result file'])[0][:-4]).fullmatch(label)) for r in rows
                   if ticked(r['result file'])[0].endswith('.npz')]
        matches = sorted([(r, m) for r, m in matches if m], key=lambda rm: '<' in rm[0]['result file'])
        if not matches:
            diffs.add(('row', label))
            continue
        readme, m = matches[0]
        x = m.groupdict().get('x')
        sweep_of = re.match(r'\(the `?([^`\s]+?)`? sweep', readme['train.py overrides'])  # (the RNN sweep...)
        evaluate = readme_flags(readme['generalize.py overrides'], x)
        src = sweep_of.group(1) if sweep_of else label
        src = os.path.basename(evaluate.pop('runs_dir', f'/{src}'))
        if src != experiments.source(label):
            diffs.add(('networks', label))
        elif not sweep_of and plain(readme_flags(readme['train.py overrides'], x)) != plain(row['train']):
            diffs.add(('train', label))
        evaluate.pop('label', None)
        if evaluate != row['evaluate']:
            diffs.add(('evaluate', label))
    id_row = next(r for r in rows if ticked(r['result file'])[0] == 'RNN_ID.npz')
    if readme_flags(id_row['generalize.py overrides'], None).get('out_of_distribution') is not False:
        diffs.add(('ID', 'RNN'))
    analysis = next(r for r in rows if ticked(r['result file'])[0].startswith('analysis/'))
    for label, row in experiments.EXPERIMENTS.items():
        for script, *_ in row['analysis']:
            if script not in analysis['generalize.py overrides'] or label not in analysis['train.py overrides']:
                diffs.add(('analysis', label))

    notebooks = {ticked(r['notebook'])[0]: r for r in tables['notebook']}
    for figure in experiments.FIGURES:
        if figure not in notebooks:
            diffs.add(('notebook', figure))
            continue
        spans = ticked(notebooks[figure]['reads (first = required)'])
        files = [s.removeprefix('results/')[:-4] for s in spans if s.endswith('.npz') and not s.startswith('analysis/')]
        names = {'results': '{}', 'ID': '{}_ID', 'sparsity': 'sparsity_{}'}
        ours = {names[kind].format(label) for kind, label, _ in experiments.reads(figure) if kind in names}
        papers = {f'{label}_paper' for kind, label, _ in experiments.reads(figure) if kind == 'results'}  # may be listed
        patterns = [pattern(f) for f in files]
        if any(not any(p.fullmatch(name) for p in patterns) for name in ours) or \
                any(not any(p.fullmatch(name) for name in ours | papers) for p in patterns):
            diffs.add(('reads', figure))
        wants_analysis = any(kind == 'analysis' for kind, *_ in experiments.reads(figure))
        if wants_analysis != any(s.startswith('analysis/') for s in spans):
            diffs.add(('analysis', figure))
    return diffs


def test_table_agrees_with_figures_readme():
    diffs = table_differences()
    assert diffs <= PENDING, f'Figures/README.md and experiments.EXPERIMENTS differ: {sorted(diffs - PENDING)}'


def test_table_rows_are_consistent():
    notebooks = {f[:-6] for f in os.listdir(os.path.join(REPO, 'Figures')) if f.endswith('.ipynb')}
    assert set(experiments.FIGURES) <= notebooks  # every figure has its notebook
    for figure in experiments.FIGURES:
        assert experiments.reads(figure), figure
    for label, row in experiments.EXPERIMENTS.items():
        src = experiments.source(label)
        assert experiments.EXPERIMENTS[src]['networks'] is None  # networks come from a row that trains
        assert row['networks'] is None or not row['train'], label  # an evaluation-only row sets no training
        train = experiments.check_overrides(row['train'], experiments.script_defaults('train.py'), label)
        assert train == row['train']
        experiments.check_overrides(row['evaluate'], experiments.script_defaults('generalize.py'), label)
        for *_, figures in row['analysis']:
            assert set(figures) <= set(experiments.FIGURES)
        assert set(row['figures'] + row['id_figures'] + row['sparsity']) <= set(experiments.FIGURES)
    assert experiments.EXPERIMENTS['RNN']['runs'] == 10 and experiments.EXPERIMENTS['LSTM']['runs'] == 5
    assert experiments.source('Noise_2') == experiments.source('Corr_0') == 'RNN'
    assert set(runs.DEFAULT_BATCHES) == set(experiments.THROUGHPUT) == {'RNN', 'LSTM', 'gpt-2'}


def test_script_defaults_are_the_scripts_hyperparameters():
    import generalize
    import sparsity
    import train
    assert experiments.script_defaults('train.py') == train.defaults()
    assert experiments.script_defaults('generalize.py') == configurator.hyperparameters(vars(generalize))
    assert experiments.script_defaults('sparsity.py') == configurator.hyperparameters(vars(sparsity))


def test_recipe_gives_the_commands_of_a_result_file():
    assert experiments.recipe('LSTM') == (
        "python train.py --network=LSTM --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/LSTM && "
        "python generalize.py --runs_dir=trained_networks/LSTM --n_tasks=[2,3,6,12,24] --n_runs=5 "
        "--select=\"{'network': 'LSTM'}\" --decoder=both --label=LSTM --results_dir=results")
    assert experiments.recipe('RNN_ID').endswith('--out_of_distribution=False')
    assert '--out_dir=trained_networks/RNN ' in experiments.recipe('Noise_2')
    assert "'stimulus': 1000" in experiments.recipe('FreeRT_T10')
    assert 'python sparsity.py --runs_dir=trained_networks/HighDim_D4' in experiments.recipe('sparsity_HighDim_D4')


# ---------------------------------------------------------------------------------
# Networks on disk and grouping them into train.py calls

def test_figure_5a_rows_are_how_the_committed_results_were_made():
    """The matched design's rows reproduce the committed sets, so a sweep counts them as done:
    the run folders the results were computed from carry the names the rows' settings give
    (task, timing, bound, budget), trained as long as the row says, evaluated as the row says."""
    defaults = dict(experiments.script_defaults('train.py'), n_batch=runs.DEFAULT_BATCHES['RNN'])
    labels = [label for label in experiments.EXPERIMENTS if label.startswith('FreeRT5a_')]
    assert {f'FreeRT5a_T{T}' for T in experiments.DURATIONS} <= set(labels)
    assert experiments.EXPERIMENTS['FreeRT5a_T20']['train']['n_batch'] == experiments.FIG5A_BATCHES
    assert 'FreeRT5a_nobound_T20_untrained' not in labels  # the control's baseline is FreeRT5a_T20_untrained
    checked = 0
    for label in labels:
        path = os.path.join(REPO, 'results', label + '.json')
        with open(path, encoding='utf-8') as f:  # every set of the matched design is committed
            made = json.load(f)
        row, expected = experiments.EXPERIMENTS[label], experiments.expected_config(label)
        names = [runs.run_name(expected, defaults, k, r) for k in row['n_task'] for r in range(row['runs'])]
        assert [os.path.basename(p) for k in row['n_task'] for p in made['networks'][str(k)]] == names, label
        assert np.all(np.asarray(made['batches']) == expected['n_batch']), label
        config = made['config']
        assert (config['n_tasks'], config['n_runs'], config['decoder']) == (row['n_task'], row['runs'], 'both'), label
        assert config['timing'] == row['evaluate'].get('timing'), label  # each set at its own T
        checked += 1
    assert checked == len(labels)


def test_rectangles_cover_the_cells_exactly():
    rng = random.Random(0)
    for _ in range(200):
        cells = {(k, r) for k in experiments.N_TASKS for r in range(6) if rng.random() < 0.4}
        if not cells:
            continue
        calls = experiments.rectangles(cells)
        covered = [(k, r) for ks, r0, n in calls for k in ks for r in range(r0, r0 + n)]
        assert sorted(covered) == sorted(cells)  # every cell once, nothing else
    full = {(k, r) for k in experiments.N_TASKS for r in range(10)}
    assert experiments.rectangles(full) == [(experiments.N_TASKS, 0, 10)]
    assert experiments.rectangles(full - {(24, r) for r in range(5)}) in (
        [([2, 3, 6, 12], 0, 5), (experiments.N_TASKS, 5, 5)], [([2, 3, 6, 12], 0, 10), ([24], 5, 5)])


def fake_network(sweep_dir, config, k, r, state, batch=100):
    """A run folder as train.py leaves it: finished, partial (checkpoint at `batch`) or
    started (config only, killed before its first checkpoint)."""
    import checkpoints
    folder = os.path.join(sweep_dir, f'nTask{k}_run{r}')
    os.makedirs(folder)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump({**config, 'n_task': k, 'run': r, 'name': os.path.basename(folder)}, f)
    if state in ('finished', 'partial'):
        checkpoints.save_torch({'state_dict': {}, 'resume': {'batch': batch}}, os.path.join(folder, 'net.pth'))
    if state == 'finished':
        with open(os.path.join(folder, 'metrics.json'), 'w') as f:
            json.dump({'batches_done': config['n_batch']}, f)
    return folder


def test_network_states_and_the_train_calls_they_need(tmp_path):
    expected = experiments.expected_config('RNN')
    sweep_dir = str(tmp_path / 'RNN')
    for k, r, state, batch in [(2, 0, 'finished', 0), (3, 0, 'partial', 400), (6, 0, 'partial', 400),
                               (12, 0, 'partial', 200), (24, 0, 'started', 0)]:
        fake_network(sweep_dir, expected, k, r, state, batch)
    cells = [(k, r) for k in experiments.N_TASKS for r in range(2)]
    states = experiments.network_states(sweep_dir, expected, cells)
    assert states[(2, 0)][0] == 'finished' and states[(3, 0)][0] == 'partial'
    assert states[(24, 0)][0] == 'missing' and states[(2, 1)] == ('missing', None, None)
    calls = experiments.train_calls(states)
    assert ([2, 3, 6, 12, 24], 1, 1, False) in calls and ([24], 0, 1, False) in calls
    assert ([3, 6, 12], 0, 1, True) in calls  # one resuming call: train.py groups them by batch
    assert len(calls) == 3
    values = experiments.train_values({'leaky': False, 'out_dir': 'x', 'n_threads': 1}, [3, 6], 0, 1, True)
    assert experiments.argv({'script': 'train.py', 'values': values}) == \
        ['train.py', '--leaky=False', '--n_task=[3,6]', '--runs=1', '--out_dir=x', '--n_threads=1', '--resume=True']
    # a folder trained with other settings must not be mixed into the sweep
    fake_network(sweep_dir, {**expected, 'n_neu': 8}, 2, 1, 'finished')
    with pytest.raises(ValueError, match=re.escape('n_neu=8 (this sweep: 64)') + '.*another runs_dir'):
        experiments.network_states(sweep_dir, expected, cells)
    old = {k: v for k, v in expected.items() if k != 'loss'}  # trained before `loss` existed (with logits)
    assert 'loss' in experiments.differences(old, expected)


# ---------------------------------------------------------------------------------
# The command line

@pytest.fixture(scope='module')
def dry_run_all(tmp_path_factory):
    """The folder and output of `sweep.py all --dry_run=True --n_threads=3`, planned once for
    the tests that read it (each pending step's check is an interpreter start)."""
    root = tmp_path_factory.mktemp('all')
    return root, sweep(root, 'all', '--dry_run=True', f'--protocols={PROTOCOLS}', '--n_threads=3', check=0).out


@pytest.mark.slow  # checks every step of every figure: an interpreter start each
def test_dry_run_all_lists_every_figures_work(dry_run_all):
    root, out = dry_run_all
    assert not os.listdir(root)  # nothing made
    read = {label for figure in experiments.FIGURES for _, label, _ in experiments.reads(figure)}
    assert {label for label in experiments.EXPERIMENTS if label not in read} == {'FreeRT5a_1e5_T5'}
    # the committed shared-boundary design: read by 5b/S12 and S6b only while the release's has no file
    fallback = {f'HighDim_D{D}{x}' for D in experiments.DIMS for x in ('', '_untrained')}
    assert {label for label, row in experiments.EXPERIMENTS.items() if row['fallback']} == fallback
    for label, row in experiments.EXPERIMENTS.items():
        src = experiments.source(label)
        if label not in read or row['fallback']:  # not part of `all`, made by its recipe
            assert f'--out_dir=trained_networks/{label} ' not in out and f'--label={label} ' not in out
            assert 'generalize.py' in experiments.recipe(label)
            continue
        evaluations = [line for line in out.splitlines() if f'--runs_dir=trained_networks/{src} ' in line]
        ours = [line for line in evaluations if f'--label={label} ' in line]
        if row['figures']:
            assert len([line for line in ours if 'generalize.py' in line and 'out_of_distribution' not in line]) \
                == 1, label  # both protocols in one pass
            assert any('--protocol=both' in line for line in ours)
        assert any('--out_of_distribution=False' in line for line in ours) == bool(row['id_figures']), label
        assert any('sparsity.py' in line for line in ours) == bool(row['sparsity']), label
        for script, k, r, _ in row['analysis']:
            assert f"python {script} --runs_dir=trained_networks/{src} --select=\"{{'n_task': {k}, 'run': {r}}}\"" in out
        trains = [line for line in out.splitlines() if f'--out_dir=trained_networks/{label} ' in line]
        assert len(trains) == (row['networks'] is None), label  # one call each; Noise_2 / Corr_0 reuse RNN
    assert '--n_task=[2,3,6,12,24] --runs=10 --out_dir=trained_networks/RNN ' in out
    assert '--loss=logits --n_task=24 --runs=10 --out_dir=trained_networks/RNN_logits ' in out
    notebooks = [line for line in out.splitlines() if 'run_notebooks.py' in line]
    assert len(notebooks) == 1 and all(f' {f} ' in notebooks[0] for f in experiments.FIGURES if f != 'loss')
    assert 'no notebook' not in out  # every figure has one
    assert re.search(r'RNN: trained_networks/RNN/ 50 networks .*estimated \d+\.\d+ h', out)
    rate = experiments.THROUGHPUT['RNN']
    assert f'\n    [50 networks, {50 * 1e5 / rate / 3600:.2f} h at {rate} network-batches/s]' in out
    assert re.search(r'\ntotal: \d+\.\d+ h of single-core work', out)


def test_dry_run_fig3a_shows_the_exact_commands(tmp_path):
    out = sweep(tmp_path, 'fig3a', '--dry_run=True', '--protocols=["correct"]', '--n_threads=1', check=0).out
    rate = experiments.THROUGHPUT['RNN']
    train_h, eval_h = 50 * 1e5 / rate / 3600, 50 * experiments.GENERALIZE_SECONDS['RNN'] / 3600
    untrained_h = eval_h * experiments.UNTRAINED_EVAL_FACTOR  # every unit active: the metrics take longer
    notebook_min = experiments.NOTEBOOK_SECONDS / 60
    total = train_h + 2 * eval_h + untrained_h + notebook_min / 60
    assert out.splitlines() == [
        'figures: fig3a; experiments: RNN, RNN_untrained; executor: local',
        '',
        f'RNN: trained_networks/RNN/ 50 networks (0 finished, 0 partial, 50 missing); estimated {train_h + 2 * eval_h:.2f} h',
        '  python train.py --n_task=[2,3,6,12,24] --runs=10 --out_dir=trained_networks/RNN --n_threads=1',
        f'    [50 networks, {train_h:.2f} h at {rate} network-batches/s]',
        # both decoders on the same trials: <label>.npz (Adam, the paper's) and <label>_lstsq.npz
        '  python generalize.py --runs_dir=trained_networks/RNN --n_tasks=[2,3,6,12,24] --n_runs=10 --decoder=both '
        f'--label=RNN --results_dir=results --n_threads=1   [{eval_h:.2f} h]',
        '  python generalize.py --runs_dir=trained_networks/RNN --n_tasks=[2,3,6,12,24] --n_runs=10 --decoder=both '
        f'--label=RNN --results_dir=results --out_of_distribution=False --n_threads=1   [{eval_h:.2f} h]',
        '',  # the untrained baseline: the same networks as initialised (no training), both decoders
        f'RNN_untrained: trained_networks/RNN_untrained/ 50 networks (0 finished, 0 partial, 50 missing); estimated {untrained_h:.2f} h',
        '  python train.py --n_batch=0 --n_task=[2,3,6,12,24] --runs=10 --out_dir=trained_networks/RNN_untrained --n_threads=1',
        f'    [50 networks, 0 s at {rate} network-batches/s]',
        '  python generalize.py --runs_dir=trained_networks/RNN_untrained --n_tasks=[2,3,6,12,24] --n_runs=10 '
        f'--decoder=both --label=RNN_untrained --results_dir=results --n_threads=1   [{untrained_h:.2f} h]',
        '',
        'figures:',
        '  python Figures/run_notebooks.py fig3a --results_dir=results --analysis_dir=analysis '
        f'--out_dir=Figures/out   [{experiments.NOTEBOOK_SECONDS} s]',
        '',
        f'total: {total:.2f} h of single-core work (about {total:.2f} h with n_parallel=1)',
    ]


def fake_results(tmp_path, stems, record=None):
    """results/<stem>.npz (a file that loads) for each stem, with <stem>.json = `record`."""
    os.makedirs(tmp_path / 'results', exist_ok=True)
    for stem in stems:
        np.savez(tmp_path / 'results' / f'{stem}.npz', r_sq=np.zeros(2))
        if record is not None:
            (tmp_path / 'results' / f'{stem}.json').write_text(json.dumps(record))


def step_line(out, label='RNN'):
    """The plan's one line evaluating `label`."""
    line, = [line for line in out.splitlines() if f'--label={label} ' in line]
    return line


def test_dry_run_names_results_made_from_other_networks(tmp_path):
    """A reduced-budget sweep in another runs_dir keeps results/RNN.npz of the full sweep,
    and says so instead of skipping it silently."""
    for name, runs_dir in (('RNN', 'trained_networks/RNN'), ('FreeRT', 'small/FreeRT')):
        fake_results(tmp_path, (name, name + '_paper', name + '_lstsq', name + '_paper_lstsq'),
                     {'config': {'runs_dir': runs_dir}})
    out = sweep(tmp_path, 'S5c', '--dry_run=True', '--runs_dir=small', '--n_batch=20000', check=0).out
    assert step_line(out).startswith('  skip (exists, made from trained_networks/RNN/, not small/RNN/: kept; '
                                     'delete results/RNN_paper.npz to remake it): python generalize.py')
    # made from this sweep's networks
    assert step_line(out, 'FreeRT').startswith('  skip (exists): python generalize.py')


def test_an_adam_result_without_its_least_squares_twin_is_remade(tmp_path):
    """OOD figures are evaluated with both decoders: results/RNN.npz and RNN_paper.npz
    alone (the paper's decoder) leave RNN_paper_lstsq.npz missing, so the step runs;
    with the twin present it is skipped."""
    fake_results(tmp_path, ('RNN', 'RNN_paper'), {'config': {'runs_dir': 'trained_networks/RNN'}})
    rnn = step_line(sweep(tmp_path, 'S5c', '--dry_run=True', check=0).out)
    assert not rnn.lstrip().startswith('skip') and '--decoder=both' in rnn
    fake_results(tmp_path, ('RNN_lstsq', 'RNN_paper_lstsq'))
    rnn = step_line(sweep(tmp_path, 'S5c', '--dry_run=True', check=0).out)
    assert rnn.startswith('  skip (exists): python generalize.py')


def test_a_step_that_would_replace_results_of_other_networks_is_refused_before_training(tmp_path):
    """results/RNN.npz made from other networks (a 2e4 sweep) with its least-squares twin
    missing: generalize.py would refuse to replace it, but only after the training the step
    waits for. The dry run marks the step, the real run stops before any work, and
    eval_overrides overwrite=True lets the step replace them."""
    fake_results(tmp_path, ('RNN', 'RNN_paper'), {'config': {'runs_dir': 'trained_networks_2e4/RNN'}})
    out = sweep(tmp_path, 'S5c', '--dry_run=True', check=0).out
    assert step_line(out).startswith('  refused (results/RNN.npz exists, made from trained_networks_2e4/RNN/, '
                          'not trained_networks/RNN/; see the note below): python generalize.py')
    assert "pass --eval_overrides=\"{'overwrite': True}\"" in out
    before = sorted(os.listdir(tmp_path))
    proc = sweep(tmp_path, 'S5c', '--notebooks=False', check=2)
    assert '[RNN] results/RNN.npz (and 1 more) exists, made from trained_networks_2e4/RNN/' in proc.out
    assert 'Traceback' not in proc.out and sorted(os.listdir(tmp_path)) == before  # nothing trained
    out = sweep(tmp_path, 'S5c', '--dry_run=True', "--eval_overrides={'overwrite': True}", check=0).out
    assert step_line(out).startswith('  python generalize.py') and '--overwrite=True' in step_line(out)
    assert 'refused' not in out


def test_a_result_below_its_rows_budget_is_remade_and_kept_by_a_reduced_budget_sweep(tmp_path):
    """Every file of S5c's RNN step exists, made from this sweep's folder but from networks
    trained for 2e4 batches: at the paper's budget the step (and its training) runs again,
    and run_steps does not skip it; a sweep at --n_batch=20000 keeps it."""
    fake_results(tmp_path, ('RNN', 'RNN_paper', 'RNN_lstsq', 'RNN_paper_lstsq'),
                 {'config': {'runs_dir': 'trained_networks/RNN'}, 'batches': [[20000.0, float('nan')], [20000.0, 20000.0]]})
    out = sweep(tmp_path, 'S5c', '--dry_run=True', check=0).out
    rnn = step_line(out)
    assert rnn.startswith('  remake (results/RNN') and \
        "npz: networks of 20000 batches, the row's budget is 100000): python generalize.py" in rnn
    assert any(line.startswith('  python train.py --n_task=[2,3,6,12,24] --runs=10 --out_dir=trained_networks/RNN ')
               for line in out.splitlines())
    step = {'kind': 'script', 'outputs': ['results/RNN.npz', 'results/RNN_lstsq.npz'], 'n_batch': 100_000}
    assert experiments.short_of_budget(step, str(tmp_path)) == ('results/RNN.npz', 20000.0)  # NaN: a broken run
    assert not experiments.up_to_date(step, str(tmp_path))
    assert experiments.up_to_date({**step, 'n_batch': 20_000}, str(tmp_path))
    out = sweep(tmp_path, 'S5c', '--dry_run=True', '--n_batch=20000', check=0).out
    assert step_line(out).startswith('  skip (exists): python generalize.py')


def test_networks_are_not_trained_when_every_result_that_reads_them_exists(tmp_path):
    """A fresh clone holds the result files and analyses the figures read, not the
    networks: a sweep then trains nothing and only draws."""
    for run, name in (('nTask24_run0', 'summary.json'), ('nTask2_run0', 'summary.json'),
                      ('network-gpt-2_nTask24_run0', 'values_summary.json')):
        os.makedirs(tmp_path / 'analysis' / run)
        (tmp_path / 'analysis' / run / name).write_text('{}')
    out = sweep(tmp_path, 'fig4', 'fixed_points', '--dry_run=True', check=0).out
    assert not re.search(r'^  python (train|analyze)', out, re.M)  # nothing to run but the notebooks
    assert out.count('  not trained: every result that reads these networks exists') == 2  # RNN, gpt-2
    os.remove(tmp_path / 'analysis' / 'nTask2_run0' / 'summary.json')  # one analysis missing: RNN trains
    out = sweep(tmp_path, 'fig4', 'fixed_points', '--dry_run=True', check=0).out
    assert '--runs=10 --out_dir=trained_networks/RNN ' in out and '--network=gpt-2' not in out
    assert "python analyze.py --runs_dir=trained_networks/RNN --select=\"{'n_task': 2, 'run': 0}\"" in out


def test_slurm_dry_run_has_one_array_task_per_network(tmp_path):
    out = sweep(tmp_path, 'S1', '--dry_run=True', '--executor=slurm', '--protocols=["correct"]', '--runs=2',
                '--n_tasks=[2,24]', check=0).out
    assert 'job array sweep-Quad, 4 tasks' in out and 'job sweep-Quad-eval (after the array succeeds)' in out
    for k in (2, 24):
        for r in (0, 1):
            run = f' --run={r}' if r else ''
            assert f'python train.py --activ_enc=Quad --n_task={k}{run} --runs=1 --out_dir=trained_networks/Quad ' \
                   '--n_threads=2' in out
    assert 'job sweep-figures, after the evaluations' in out


@pytest.mark.parametrize('args, message', [
    (['fig3d'], "unknown figure 'fig3d'; did you mean 'fig3c'"),
    ([], 'name the figures to make'),
    (['fig3a', '--executor=slurn'], "executor='slurn' is not allowed"),
    (['fig3a', "--train_overrides={'n_nue': 8}"], "unknown hyperparameter 'n_nue'; did you mean 'n_neu'"),
    (['fig3a', "--train_overrides={'n_task': 8}"], "'n_task' is set by the sweep itself"),
    (['fig3a', "--train_overrides={'n_neu': 'big'}"], "'n_neu' expects an int"),
    (['fig3a', "--eval_overrides={'max_iter': 8}"], "unknown hyperparameter 'max_iter'; did you mean 'max_iters'"),
    (['fig3a', "--eval_overrides={'label': 'x'}"], "'label' is set by the sweep itself"),
    (['fig3a', '--n_tasks=[2,2]'], 'n_tasks=[2, 2] is not allowed'),
    (['fig3a', '--protocols=["best"]'], 'protocols='),
    (['fig3a', '--n_parralel=2'], "did you mean 'n_parallel'"),
    # what the scripts themselves refuse, or what fails only once they run: refused in planning
    (['fig3a', '--results_dir=/proc/x'], "cannot write to results_dir='/proc/x'"),
    (['fig3a', "--train_overrides={'lr': -1}"], 'train.py refuses: lr=-1.0 is not allowed'),
    (['fig3a', "--eval_overrides={'n_fit': 0}"], 'generalize.py refuses: n_fit=0 is not allowed'),
    (['fig3a', '--runs_dir='], "runs_dir='' is not allowed"),
    (['fig4', "--eval_overrides={'n_trials': 0}"], 'analyze.py refuses: n_trials=0 is not allowed'),
])
def test_bad_input_stops_before_any_work(tmp_path, args, message):
    for dry_run in ('True', 'False'):  # the dry run refuses what the real run refuses
        proc = sweep(tmp_path, *args, f'--dry_run={dry_run}',
                     *(['--protocols=["correct"]'] if not any('protocols' in a for a in args) else []))
        assert proc.returncode == 2, proc.out
        assert message in proc.out and 'Traceback' not in proc.out
        assert not os.listdir(tmp_path)


@pytest.mark.slow  # starts the scripts
def test_a_device_without_a_gpu_is_refused_in_planning(tmp_path):
    import torch
    if torch.cuda.is_available():  # the refusal needs a machine without a GPU
        args, message = ['--device=cuda:99'], "device='cuda:99' is not allowed"
    else:
        args, message = ['--device=cuda'], "device='cuda' is not allowed"
    proc = sweep(tmp_path, 'fig3a', '--dry_run=True', *args)
    assert proc.returncode == 2 and message in proc.out, proc.out
    assert not os.listdir(tmp_path)
    # Slurm's nodes have their own GPUs: a login node without one plans the sweep
    assert sweep(tmp_path, 'fig3a', '--dry_run=True', '--executor=slurm', *args).returncode == 0


@pytest.mark.slow  # checks every step of every figure: an interpreter start each
def test_every_step_gets_the_sweeps_threads(dry_run_all):
    _, out = dry_run_all
    steps = [line for line in out.splitlines() if re.match(r'\s+python (train|generalize|sparsity|analyze)', line)]
    assert len(steps) > 10 and all('--n_threads=3' in line for line in steps)


def test_the_notebooks_get_the_sweeps_task_counts(tmp_path):
    out = sweep(tmp_path, 'loss', 'fig5c', 'fig3a', '--dry_run=True', '--n_tasks=[2,3]', '--runs=1', check=0).out
    notebooks, = [line for line in out.splitlines() if 'run_notebooks.py' in line]
    assert '--n_task=3' in notebooks and '--n_tasks=[2,3]' in notebooks  # loss compares n_task; fig5c shows n_tasks
    out = sweep(tmp_path, 'fig3a', '--dry_run=True', check=0).out  # no notebook of fig3a has either
    assert '--n_task' not in [line for line in out.splitlines() if 'run_notebooks.py' in line][0]


@pytest.mark.slow  # checks every step of every figure: an interpreter start each
def test_the_notebook_estimate_is_per_notebook(dry_run_all):
    _, out = dry_run_all
    estimate = re.search(r'run_notebooks\.py .*\[(\d+) s\]', out).group(1)
    assert int(estimate) == len(experiments.FIGURES) * experiments.NOTEBOOK_SECONDS
    assert experiments.NOTEBOOK_SECONDS <= 3  # measured: the 13 notebooks take ~1 s each, not 15


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path):
    # a Slurm plan lists every network: 200 runs print ~200 KB, more than a pipe holds, so
    # the plan is still being written when `head` leaves (a plan of every figure is 30 KB)
    proc = subprocess.run(f'{shlex.quote(sys.executable)} {SWEEP} fig3a --dry_run=True --executor=slurm --runs=200 '
                          '| head -n 2', shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.startswith('figures: fig3a') and len(proc.stdout.splitlines()) == 2
    assert proc.stderr == '', proc.stderr


def test_a_corrupt_result_file_is_named_and_remade(tmp_path):
    os.makedirs(tmp_path / 'results')
    (tmp_path / 'results' / 'RNN_ID.npz').write_bytes(b'PK\x03\x04 truncated')
    evaluated(tmp_path / 'results', 'RNN')
    out = sweep(tmp_path, 'fig3a', '--dry_run=True', check=0).out
    corrupt, = [line for line in out.splitlines() if 'out_of_distribution=False' in line]
    assert corrupt.startswith('  remake (results/RNN_ID.npz is corrupt: ') and 'python generalize.py' in corrupt
    assert re.search(r'^  skip \(exists\): python generalize.py .*--protocol=both', out, re.M)
    assert experiments.exists(str(tmp_path / 'results' / 'RNN_paper.npz'))
    assert not experiments.exists(str(tmp_path / 'results' / 'RNN_ID.npz'))


@pytest.mark.slow  # starts the scripts
def test_a_failed_evaluation_stops_the_notebooks_that_read_it(tmp_path):
    """A real run (no training: the network is there): the evaluation fails on a
    broken checkpoint, and fig3a's notebook does not run on the missing result."""
    fake_network(str(tmp_path / 'trained_networks' / 'RNN'), experiments.expected_config('RNN'), 2, 0, 'finished')
    os.makedirs(tmp_path / 'results')
    evaluated(tmp_path / 'results', 'RNN')  # the OOD results exist, the ID ones not
    evaluated(tmp_path / 'results', 'RNN_untrained')  # so does the baseline: nothing else runs
    proc = sweep(tmp_path, 'fig3a', '--n_tasks=[2]', '--runs=1', '--n_threads=1', '--out_dir=figs')
    assert proc.returncode == 1, proc.out
    summary = proc.out[proc.out.rindex('failed or not run'):]
    assert '[RNN] FAILED (exit 1): python generalize.py' in summary
    assert '[figures] not run (fig3a: [RNN] FAILED (exit 1): python generalize.py' in summary
    assert 'run: python Figures/run_notebooks.py' not in proc.out and not os.path.exists(tmp_path / 'figs')


def test_figures_that_read_a_failed_step_are_not_drawn():
    module = load_sweep_module()
    nb_step = {'kind': 'script', 'label': 'figures', 'script': 'Figures/run_notebooks.py',
               'words': ['fig3a', 'fig5c', 'S1'], 'values': {'out_dir': 'x'}, 'outputs': []}
    records = [{'label': 'Quad', 'command': 'python generalize.py --label=Quad', 'status': 'FAILED (exit 1)',
                'outputs': []},
               {'label': 'RNN', 'command': 'python generalize.py --label=RNN', 'status': 'done', 'outputs': []}]
    step, skipped = module.drawable(nb_step, records)
    assert step['words'] == ['fig3a', 'fig5c']  # S1 reads results/Quad.npz
    assert len(skipped) == 1 and skipped[0]['status'].startswith('not run (S1: [Quad] FAILED (exit 1): python')
    # a failed job of the RNN networks (submitit) stops every figure that reads networks of that folder
    failed_job = [{'label': 'RNN', 'command': 'submitit job 7', 'status': 'FAILED (boom)', 'outputs': []}]
    step, skipped = module.drawable(nb_step, failed_job)
    assert step is None  # fig3a and fig5c read the RNN networks, S1 too (RNN vs Quad)
    assert [s['command'].split()[2] for s in skipped] == ['fig3a', 'fig5c', 'S1']
    assert all('[RNN] FAILED (boom): submitit job 7' in s['status'] for s in skipped)


def test_the_sweep_of_5b_s12_and_s6b_makes_the_releases_design_not_the_committed_one(tmp_path):
    """`sweep.py fig5b_S12 S6` trains and evaluates the release's design (HighDim5b_D<D>, each
    network its own boundaries, its task counts) and its GPT-2 panel at GPT-2's budget,
    each with its untrained baseline, and plans nothing of the committed HighDim_D<D> rows."""
    module = load_sweep_module()
    hp = {**configurator.hyperparameters(vars(module)), 'figures': ['fig5b_S12', 'S6'],
          'runs_dir': str(tmp_path / 'nets'), 'results_dir': str(tmp_path / 'results')}
    figs, overrides = module.check(hp)
    units, notes = module.plan(hp, figs, overrides)
    assert not [src for src in units if src.startswith('HighDim_D')]
    note, = [n for n in notes if 'HighDim_D4_untrained' in n]
    assert note.startswith('not made: HighDim_D2, HighDim_D4')
    cells = {(k, r) for k in experiments.HIGHDIM_TASKS for r in range(5)}
    for D in experiments.DIMS:
        for label in (f'HighDim5b_D{D}', f'HighDim5b_gpt-2_D{D}'):
            for src in (label, label + '_untrained'):
                u = units[src]
                assert u['cells'] == cells and u['expected']['n_dim'] == D and u['expected']['boundary_seed'] is None
                train, *evals = u['steps']
                assert train['kind'] == 'train' and train['needed'] and train['values']['out_dir'] == u['sweep_dir']
                assert [s['values']['label'] for s in evals if s['script'] == 'generalize.py'] == [src]
                assert all(s['values']['split_var'] and s['values']['decoder'] == 'both' for s in evals
                           if s['script'] == 'generalize.py')
            sparsity = [s for s in units[label]['steps'] if s['script'] == 'sparsity.py']
            assert len(sparsity) == (label == f'HighDim5b_D{D}')  # S6b: the RNN's
        gpt = units[f'HighDim5b_gpt-2_D{D}']
        assert gpt['expected']['network'] == 'gpt-2' and gpt['expected']['n_batch'] == runs.DEFAULT_BATCHES['gpt-2']
        assert units[f'HighDim5b_D{D}']['expected']['n_batch'] == runs.DEFAULT_BATCHES['RNN']
        assert units[f'HighDim5b_gpt-2_D{D}_untrained']['expected']['n_batch'] == 0
        assert gpt['steps'][1]['values']['select'] == {'network': 'gpt-2'}
    # one train.py call per folder, the task counts in ascending order (9 among them)
    calls = experiments.train_calls(units['HighDim5b_D4']['states'])
    assert calls == [(experiments.HIGHDIM_TASKS, 0, 5, False)]


def test_every_baseline_row_is_in_the_baseline_report():
    """results.BASELINES pairs each trained row that has an untrained baseline row with a
    baseline row of the table (the report skips pairs whose files do not exist yet)."""
    with_baseline = {label for label in experiments.EXPERIMENTS if label + '_untrained' in experiments.EXPERIMENTS}
    assert {trained for trained, _ in results.BASELINES} == with_baseline
    assert all(base in experiments.EXPERIMENTS for _, base in results.BASELINES)
    assert ('HighDim5b_gpt-2_D10', 'HighDim5b_gpt-2_D10_untrained') in results.BASELINES


def load_sweep_module():
    """sweep.py as a module (its hyperparameters stay at their defaults: configure runs under __main__)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('sweep_script', SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slurm_jobs_have_the_documented_sbatch_header():
    pytest.importorskip('submitit')
    from submitit.slurm.slurm import _make_sbatch_string  # what SlurmExecutor writes, without Slurm
    module = load_sweep_module()
    hp = {**configurator.hyperparameters(vars(module)), 'partition': 'cpu', 'gpus_per_node': 1}
    train = _make_sbatch_string(command='run', folder='logs', map_count=50,
                                **module.slurm_parameters(hp, 'sweep-RNN', 600))
    for line in ('--array=0-49%50', '--job-name=sweep-RNN', '--partition=cpu', '--time=600', '--cpus-per-task=2',
                 '--gpus-per-node=1', '--signal=USR2@120', '--requeue'):
        assert f'#SBATCH {line}\n' in train
    evaluate = _make_sbatch_string(command='run', folder='logs',
                                   **module.slurm_parameters(hp, 'sweep-RNN-eval', 600, 'afterok:42'))
    assert '#SBATCH --dependency=afterok:42\n' in evaluate and '#SBATCH --kill-on-invalid-dep=yes\n' in evaluate
    assert '--array' not in evaluate and 'dependency' not in train


def test_help_lists_the_hyperparameters(tmp_path):
    out = sweep(tmp_path, '--help', check=0).out
    assert out.startswith('usage: python sweep.py [CONFIG.py ...] [FIGURES ...] [--name=value ...]')
    for name in ('figures', 'executor', 'n_parallel', 'train_overrides', 'eval_overrides', 'dry_run', 'partition'):
        assert f'\n  {name} = ' in out


def test_checkpoint_hook_stops_the_script_and_requeues_the_same_call():
    pytest.importorskip('submitit')
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    experiments._RUNNING.append(proc)
    try:
        steps = [{'kind': 'script', 'label': 'x', 'script': 'generalize.py', 'values': {}, 'outputs': []}]
        delayed = experiments._checkpoint(steps, '/somewhere', 1, None, True)
        assert proc.poll() == -signal.SIGTERM
        assert delayed.function is experiments.run_steps and delayed.args == (steps, '/somewhere', 1, None, True)
        assert experiments.run_steps.checkpoint is experiments._checkpoint  # what submitit looks for
    finally:
        experiments._RUNNING.remove(proc)
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------------
# Tiny sweeps, for real

def outputs(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


def evaluated(results_dir, label):
    """Stand-ins for every OOD file of `label` (both protocols, both decoders): the step is done."""
    os.makedirs(results_dir, exist_ok=True)
    for protocol in ('correct', 'paper'):
        for decoder in ('adam', 'lstsq'):
            name = results.result_name(label, protocol=protocol, decoder=decoder)
            np.savez(os.path.join(results_dir, name + '.npz'), r_sq=np.zeros(2))


def assert_fig3a_made(root):
    made = {'results/RNN.npz', 'results/RNN_ID.npz', 'results/RNN_paper.npz', 'results/RNN_lstsq.npz',
            'results/RNN_ID_lstsq.npz', 'results/RNN_paper_lstsq.npz'}
    assert made <= set(outputs(root))
    assert os.path.exists(root / 'figs' / 'fig3a.png')
    folders = sorted(os.listdir(root / 'trained_networks' / 'RNN'))
    assert len(folders) == 2 and all(os.path.exists(root / 'trained_networks' / 'RNN' / f / 'metrics.json')
                                     for f in folders)


@pytest.mark.slow
def test_tiny_sweep_runs_end_to_end_and_a_rerun_does_nothing(tmp_path):
    out = sweep(tmp_path, 'fig3a', *TINY, check=0).out
    assert_fig3a_made(tmp_path)
    assert out.count('] run: python train.py') == 2  # both networks in one call, their untrained baseline in another
    assert {'results/RNN_untrained.npz', 'results/RNN_untrained_paper_lstsq.npz'} <= set(outputs(tmp_path))
    assert "[RNN] done" in out and '[figures] done' in out
    before = {f: os.path.getmtime(tmp_path / f) for f in outputs(tmp_path)}
    again = sweep(tmp_path, 'fig3a', *TINY, check=0).out
    assert 'nothing to do' in again and 'run:' not in again
    assert {f: os.path.getmtime(tmp_path / f) for f in outputs(tmp_path)} == before


@pytest.mark.slow
def test_tiny_sweep_through_submitit_local_executor(tmp_path):
    pytest.importorskip('submitit')
    out = sweep(tmp_path, 'fig3a', *TINY, '--executor=submitit_local', '--time_min=5', check=0).out
    assert 'submitted 2 training job(s)' in out  # one array task per network
    assert_fig3a_made(tmp_path)
    logs = ''.join(open(tmp_path / 'sweep_logs' / f).read() for f in os.listdir(tmp_path / 'sweep_logs')
                   if f.endswith('.out'))
    assert '--n_task=2 --runs=1' in logs and '--n_task=24 --runs=1' in logs
    assert 'nothing to do' in sweep(tmp_path, 'fig3a', *TINY, '--executor=submitit_local', check=0).out


@pytest.mark.slow
def test_killed_sweep_resumes_a_failed_step_is_reported_and_reruns_do_only_what_is_missing(tmp_path):
    batches = 1000  # the first checkpoint at 100: the kill comes long before the end
    args = [*TINY, f'--n_batch={batches}', "--train_overrides={'n_neu': 8, 'timing': %r, 'ckpt_every': 100}" % TIMING,
            '--notebooks=False']  # the notebooks run in the tests above
    evaluated(tmp_path / 'results', 'RNN_untrained')  # the baseline exists: only the RNN's networks and results are made
    proc = subprocess.Popen([sys.executable, SWEEP, 'fig3a', *args], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep_dir = tmp_path / 'trained_networks' / 'RNN'
    try:
        deadline = time.time() + 120
        while not any(os.path.exists(sweep_dir / f / 'net.pth') for f in
                      (os.listdir(sweep_dir) if sweep_dir.exists() else [])):
            assert time.time() < deadline and proc.poll() is None, 'no checkpoint appeared'
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its train.py: a crash mid-training
        proc.wait()
    assert not any(os.path.exists(sweep_dir / f / 'metrics.json') for f in os.listdir(sweep_dir))
    plan = sweep(tmp_path, 'fig3a', *args, '--dry_run=True', check=0).out
    assert 'partial' in plan and '--resume=True' in plan

    # the rerun resumes the networks; one evaluation fails (generalize.py cannot write
    # its .json), the other completes
    (tmp_path / 'results' / 'RNN_ID.json').mkdir(parents=True)
    proc = sweep(tmp_path, 'fig3a', *args)
    assert proc.returncode == 1, proc.out
    assert '] run: python train.py' in proc.out and '--resume=True' in proc.out
    for f in os.listdir(sweep_dir):
        assert json.load(open(sweep_dir / f / 'metrics.json'))['batches_done'] == batches
    summary = proc.out[proc.out.rindex('failed or not run'):]
    assert '[RNN] FAILED (exit 1): python generalize.py' in summary and '--out_of_distribution=False' in summary
    assert os.path.exists(tmp_path / 'results' / 'RNN.npz')
    assert not os.path.exists(tmp_path / 'results' / 'RNN_ID.npz')  # a failed step leaves no output behind

    # once the cause is gone, a rerun does only the failed step, then nothing
    (tmp_path / 'results' / 'RNN_ID.json').rmdir()
    out = sweep(tmp_path, 'fig3a', *args, check=0).out
    ran = [line for line in out.splitlines() if '] run: ' in line]
    assert len(ran) == 1 and '--out_of_distribution=False' in ran[0]
    assert os.path.exists(tmp_path / 'results' / 'RNN_ID.npz')
    assert 'nothing to do' in sweep(tmp_path, 'fig3a', *args, check=0).out


def test_a_setting_the_task_does_not_read_is_no_difference():
    """Runs saved before boundary_seed existed read as 0; the default is now None (each
    network its own boundaries). Only LinearClassificationHighDim reads it."""
    expected = experiments.expected_config('RNN')
    assert expected['boundary_seed'] is None
    old = {k: v for k, v in expected.items() if k != 'boundary_seed'}  # trained before it existed
    assert experiments.differences(old, expected) == {}
    high = experiments.expected_config('HighDim5b_D4')  # own boundaries per network
    assert experiments.differences({**high, 'boundary_seed': 0}, high) == {'boundary_seed': (0, None)}
