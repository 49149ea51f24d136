"""The figure notebooks run headless on synthetic result files with the documented keys
and shapes, write PNG and PDF, read the paper's minimal files, and fail clearly when
their main input is missing."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'Figures')
N_TASKS = [2, 3, 6, 12, 24]
RNN_RUN, GPT_RUN = 'nTask24_run0', 'network-gpt-2_nTask24_run0'

# every notebook and the figures it writes
OUTPUTS = {
    'fig3a': ['fig3a'], 'fig3b': ['fig3b'], 'fig3c': ['fig3c'], 'fig4': ['fig4_RNN', 'fig4_gpt-2'],
    'fig5a': ['fig5a'], 'fig5b_S12': ['fig5b', 'S12'], 'fig5c': ['fig5c'], 'S1': ['S1'],
    'S3b': ['S3b'], 'S5c': ['S5c'], 'S6': ['S6a', 'S6b'], 'fixed_points': ['fixed_points'], 'loss': ['loss'],
    'metrics': ['metrics', 'metrics_fig4'],
}


def _load_runner():
    spec = importlib.util.spec_from_file_location('run_notebooks', os.path.join(FIGURES, 'run_notebooks.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebooks = _load_runner()
sys.path.insert(0, FIGURES)
import figlib  # lives in Figures/, beside the notebooks
import plots
import results


def generalize_file(path, rng, n_dim=2, n_split=4, n_runs=2, n_fits=2, n_neu=8, minimal=False, n_tasks=N_TASKS):
    """A results file as generalize.py writes it (minimal: only the paper's r_sq, n_tasks, angles)."""
    shape = (len(n_tasks), n_runs, n_split, n_fits)
    r_sq = np.clip(0.6 + 0.35 * np.log(n_tasks)[:, None, None, None] / np.log(24) + 0.02 * rng.standard_normal(shape), -1, 1)
    angles = np.full(shape + (n_dim, n_dim), np.nan)
    i, j = np.triu_indices(n_dim, 1)
    angles[..., i, j] = 90 + 10 * rng.standard_normal(shape + (len(i),))
    data = {'r_sq': r_sq, 'n_tasks': np.array(n_tasks), 'angles': angles}
    if not minimal:
        data.update(dec=rng.standard_normal(shape + (n_neu, n_dim)), train=np.zeros(shape + (0,)),
                    test=rng.random(shape))
    np.savez(path, **data)


def metric_arrays(rng, shape=(), level=0.6):
    """The disentanglement keys generalize.py stores per network (shape (n_tasks, n_runs);
    () for one network, as the analyses store them), each metric's null band below it."""
    out = {'n_units': np.full(shape, 64.0), 'n_silent': rng.integers(20, 40, shape).astype(float)}
    for key in figlib.METRICS:
        out[key] = level + 0.1 * rng.random(shape)
        out[f'{key}_null_lo'], out[f'{key}_null_hi'] = out[key] - 0.5, out[key] - 0.3
        out[f'{key}_null_p'] = np.full(shape, 0.05)
    for key in ('ccgp_mean', 'ps_mean'):
        out[f'{key}_geo_lo'], out[f'{key}_geo_hi'] = out[key] - 0.6, out[key] - 0.2
    return out


def add_metrics(path, rng, level=0.6):
    """A results file with the disentanglement keys added (a file generalize.py writes now)."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    np.savez(path, **data, **metric_arrays(rng, data['r_sq'].shape[:2], level))


def sparsity_file(path, rng, n_runs=3, n_tasks=N_TASKS):
    shape = (len(n_tasks), n_runs)
    s = 0.3 + 0.4 * rng.random(shape)
    np.savez(path, sparsity=s, confidence_intervals=np.stack([s - 0.05, s + 0.05], -1),
             active=100 * rng.random(shape), n_tasks=np.array(n_tasks))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """results/ and analysis/ with every file the notebooks read by default."""
    return make_data(tmp_path_factory.mktemp('data'))


def make_data(root, n_tasks=N_TASKS):
    """results/ and analysis/ under root with every file the notebooks read by default,
    the sweeps over `n_tasks`."""
    results, analysis = root / 'results', root / 'analysis'
    results.mkdir()
    rng = np.random.default_rng(0)
    for label in ('RNN', 'RNN_ID', 'RNN_paper', 'RNN_logits', 'RNN_logits_paper', 'RNN_NoLeak', 'LSTM', 'gpt-2',
                  'Quad', 'FreeRT'):
        generalize_file(results / f'{label}.npz', rng, n_tasks=n_tasks)
    for T in (5, 10, 20, 40):  # FreeRT_T30 missing: skipped with a note
        generalize_file(results / f'FreeRT_T{T}.npz', rng, n_tasks=n_tasks)
    for D in (2, 4, 6, 8, 10):
        generalize_file(results / f'HighDim_D{D}.npz', rng, n_dim=D, n_split=D, n_tasks=n_tasks)
        sparsity_file(results / f'sparsity_HighDim_D{D}.npz', rng, n_tasks=n_tasks)
    for n in (1, 2, 3, 4, 6):
        generalize_file(results / f'Noise_{n}.npz', rng, n_tasks=n_tasks)
    for c in (0, 0.3, 0.5, 0.7, 0.9):
        generalize_file(results / f'Corr_{c}.npz', rng, n_tasks=n_tasks)
    for label in ('RNN', 'RNN_NoLeak', 'LSTM'):
        sparsity_file(results / f'sparsity_{label}.npz', rng, n_tasks=n_tasks)
    add_metrics(results / 'RNN.npz', rng)  # LSTM.npz and gpt-2.npz without: made before the metrics existed
    # as analyze.py and analyze_transformer.py write them (6 heads × 8: not a square unit grid)
    (analysis / RNN_RUN).mkdir(parents=True)
    np.savez(analysis / RNN_RUN / 'rate_maps.npz', rate_maps=rng.random((8, 8, 64)),
             correlations=rng.uniform(-1, 1, (64, 2)))
    (analysis / GPT_RUN).mkdir(parents=True)
    np.savez(analysis / GPT_RUN / 'values_rate_maps.npz', rate_maps=rng.random((6, 8, 8, 8)),
             correlations=rng.uniform(-1, 1, (6, 8, 2)))
    for run, name in ((RNN_RUN, 'summary.json'), (GPT_RUN, 'values_summary.json')):  # analyze*.py's summaries
        units = {key: float(value) for key, value in metric_arrays(rng).items()}
        (analysis / run / name).write_text(json.dumps({'disentanglement': units}))
    for run in (RNN_RUN, 'nTask2_run0'):
        (analysis / run).mkdir(exist_ok=True)
        eigvals = -rng.random((5, 16)) + 0.3j * rng.standard_normal((5, 16))
        amplification = np.exp(3 * rng.random((5, 2)))
        amplification[0, 0] = np.inf  # an eigenvalue exactly 0
        np.savez(analysis / run / 'fixed_points.npz', eigvals=eigvals, amplification=amplification)
    return root


@pytest.mark.slow
def test_every_notebook_writes_png_and_pdf(data, tmp_path, capsys):
    out = tmp_path / 'out'
    status = run_notebooks.main([f'--results_dir={data / "results"}', f'--analysis_dir={data / "analysis"}',
                                 f'--out_dir={out}'])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    notebooks = sorted(os.path.basename(p)[:-6] for p in run_notebooks.notebook_paths())
    assert notebooks == sorted(OUTPUTS)
    for name in (n for names in OUTPUTS.values() for n in names):
        for ext in ('png', 'pdf'):
            assert (out / f'{name}.{ext}').stat().st_size > 1000, f'{name}.{ext}'
    assert 'FreeRT_T30.npz not found, skipped' in printed.out
    note, = [line for line in printed.out.splitlines() if 'LSTM.npz has no disentanglement metrics' in line]
    assert 'not drawn; make them with: python generalize.py --runs_dir=trained_networks/LSTM' in note


@pytest.mark.slow
def test_missing_main_input_fails_naming_file_and_command(tmp_path, capsys):
    empty = tmp_path / 'results'
    empty.mkdir()
    status = run_notebooks.main(['fig3b', 'fig5c', f'--results_dir={empty}', f'--out_dir={tmp_path / "out"}'])
    err = capsys.readouterr().err
    assert status == 1
    assert 'fig3b.ipynb, cell' in err and 'FileNotFoundError' in err
    assert str(empty / 'RNN.npz') in err and 'python generalize.py --runs_dir=trained_networks/RNN' in err
    assert 'fig5c.ipynb, cell' in err and 'Noise_1.npz' in err and '--n_sd_in=1' in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_paper_style_files_with_only_r_sq_n_tasks_angles(tmp_path, capsys):
    results = tmp_path / 'results'
    results.mkdir()
    generalize_file(results / 'RNN.npz', np.random.default_rng(1), n_split=4, n_fits=5, minimal=True)
    out = tmp_path / 'out'
    status = run_notebooks.main(['fig3a', 'fig3c', f'--results_dir={results}', f'--out_dir={out}'])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert f'not drawn (no file in {results}): RNN_paper, RNN_ID' in printed.out
    assert 'gpt-2.npz not found, skipped' in printed.out
    for name in ('fig3a', 'fig3c'):
        assert (out / f'{name}.png').exists() and (out / f'{name}.pdf').exists()


PROTOCOL_NOTEBOOKS = ['fig3b', 'fig3c', 'S1', 'S5c', 'fig5a', 'fig5b_S12', 'fig5c', 'S3b']


@pytest.mark.slow
def test_protocol_paper_reads_the_paper_test_set_files(data, tmp_path, capsys):
    """--protocol=paper: every OOD notebook reads <label>_paper.npz (here r² = 0.5 everywhere)."""
    results = tmp_path / 'results'
    results.mkdir()
    for path in (data / 'results').glob('*.npz'):
        if path.stem.endswith('_paper'):
            continue  # made below
        with np.load(path) as f:
            arrays = dict(f)
        (results / path.name).write_bytes(path.read_bytes())
        if 'r_sq' in arrays and not path.stem.endswith('_ID'):
            np.savez(results / f'{path.stem}_paper.npz', **dict(arrays, r_sq=np.full_like(arrays['r_sq'], 0.5)))
    out = tmp_path / 'out'
    status = run_notebooks.main(PROTOCOL_NOTEBOOKS + ['--protocol=paper', f'--results_dir={results}', f'--out_dir={out}'])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    r2_lines = [line for line in printed.out.splitlines() if ' r_sq (' in line]
    numbers = [n for line in r2_lines for n in re.findall(r': (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]', line)]
    assert len(r2_lines) > 10 and len(numbers) >= 4 * len(r2_lines)  # 4 or 5 points per curve
    assert set(numbers) == {('0.500', '0.500', '0.500')}
    assert run_notebooks.main(['fig3b', '--protocol=papr', f'--results_dir={results}', f'--out_dir={out}']) == 2
    assert "protocol='papr' is not allowed" in capsys.readouterr().err


@pytest.mark.parametrize('item, message', [
    ('--out_dir=/proc/x', "cannot write to out_dir='/proc/x'"),
    ('--protocol=foo', "protocol='foo' is not allowed"),
    ('--decoder=lsq', "decoder='lsq' is not allowed"),
    ('--durations=[]', 'durations=[] is not allowed: expected a non-empty list'),
    ('--labels={}', 'labels={} is not allowed: expected a non-empty dict')])
def test_bad_notebook_parameters_are_usage_errors_before_any_notebook_runs(tmp_path, capsys, item, message):
    notebooks = ['S1', 'fig5a']  # S1 has labels, fig5a durations; both protocol and decoder
    status = run_notebooks.main(notebooks + [item, f'--results_dir={tmp_path}'])
    printed = capsys.readouterr()
    assert status == 2 and printed.err.strip() == f'error: {printed.err.strip()[7:]}' and message in printed.err
    assert '---' not in printed.out  # no notebook started


@pytest.mark.slow
def test_partial_sweeps_use_the_task_counts_found(tmp_path, capsys):
    """Only some task counts trained (and evaluated): every notebook still runs."""
    root = tmp_path / 'partial'
    root.mkdir()
    make_data(root, n_tasks=[2, 24])
    args = [f'--results_dir={root / "results"}', f'--analysis_dir={root / "analysis"}', f'--out_dir={tmp_path / "out"}']
    assert run_notebooks.main(args) == 0, capsys.readouterr().err
    # asked for task counts that are not there: the ones found, with a note
    assert run_notebooks.main(['fig5c', *args, '--n_tasks=[2, 3, 24]']) == 0
    assert 'note: n_task [3] in none of the files; showing [2, 24]' in capsys.readouterr().out
    # a file of the partial sweep beside a complete one
    generalize_file(root / 'results' / 'RNN_ID.npz', np.random.default_rng(2))
    assert run_notebooks.main(['fig3a', *args]) == 0
    assert 'note: RNN has n_task [2, 24] only (of [2, 3, 6, 12, 24])' in capsys.readouterr().out


@pytest.mark.slow
def test_every_notebook_parameter_can_be_set(data, tmp_path, capsys):
    analysis = tmp_path / 'analysis'
    (analysis / 'nTask6_run3').mkdir(parents=True)
    corr = np.zeros((16, 2))
    corr[:3] = [[0.9, 0.1], [-0.1, -0.8], [0.6, 0.3]]  # two tuned to one latent, one to both (at 0.2)
    corr[3:5] = np.nan  # silent over the stimulus grid
    np.savez(analysis / 'nTask6_run3' / 'rate_maps.npz', rate_maps=np.random.default_rng(0).random((8, 8, 16)),
             correlations=corr)
    out = tmp_path / 'out'
    assert run_notebooks.main(['fig4', f'--analysis_dir={analysis}', f'--out_dir={out}', '--rnn_run=nTask6_run3']) == 0
    printed = capsys.readouterr().out
    assert 'RNN: 16 units, 2 silent' in printed and '; 2 tuned to one latent' in printed
    assert (out / 'fig4_RNN.png').exists()
    assert run_notebooks.main(['fig4', f'--analysis_dir={analysis}', f'--out_dir={out}', '--rnn_run=nTask6_run3',
                               '--single_low=0.4']) == 0
    assert '; 3 tuned to one latent' in capsys.readouterr().out
    (analysis / 'run9').mkdir()
    np.savez(analysis / 'run9' / 'fixed_points.npz', eigvals=np.zeros((0, 16), complex), amplification=np.zeros((0, 2)))
    ns = run_notebooks.run_notebook(os.path.join(FIGURES, 'fixed_points.ipynb'),
                                    dict(analysis_dir=str(analysis), out_dir=str(out), runs={'no points': 'run9'}))
    assert 'no fixed points found' in [t.get_text() for t in ns['fig'].axes[0].texts]  # said, not empty axes
    assert run_notebooks.main(['fig4', '--rnn_rum=x']) == 2
    assert "unknown parameter 'rnn_rum'; did you mean 'rnn_run'?" in capsys.readouterr().err
    assert run_notebooks.main(['fig5c', '--noise_levels=3']) == 2
    assert "'noise_levels' expects a list" in capsys.readouterr().err
    assert run_notebooks.main(['fig3a', '--results_dir=']) == 2 and 'results_dir' in capsys.readouterr().err


@pytest.mark.slow
def test_runner_reads_and_writes_relative_to_the_current_directory(tmp_path):
    (tmp_path / 'results').mkdir()
    generalize_file(tmp_path / 'results' / 'RNN.npz', np.random.default_rng(0))
    proc = subprocess.run([sys.executable, os.path.join(FIGURES, 'run_notebooks.py'), 'fig3a'], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f'results_dir = {tmp_path / "results"}' in proc.stdout  # the absolute paths it reads
    assert f'out_dir = {tmp_path / "Figures" / "out"}' in proc.stdout
    assert (tmp_path / 'Figures' / 'out' / 'fig3a.png').exists()


def test_runner_applies_overrides_after_parameters_cell_and_names_failing_cell(tmp_path):
    def write(name, sources):
        cells = [{'cell_type': 'markdown', 'metadata': {}, 'source': ['# title']}]
        cells += [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [],
                   'source': s.splitlines(keepends=True)} for s in sources]
        path = tmp_path / f'{name}.ipynb'
        path.write_text(json.dumps({'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
        return str(path)

    ok = write('ok', ["# parameters\nout_dir = 'default'\n", "import os\nseen = (out_dir, os.getcwd())\n"])
    ns = run_notebooks.run_notebook(ok, {'out_dir': '/elsewhere'})
    assert ns['seen'] == ('/elsewhere', str(tmp_path))
    assert run_notebooks.run_notebook(ok)['seen'][0] == 'default'

    bad = write('bad', ['# parameters\nx = 1\n', 'y = 2\n', 'raise KeyError("boom")\n'])
    with pytest.raises(run_notebooks.NotebookError, match=r'bad.ipynb, cell 4 .*KeyError'):
        run_notebooks.run_notebook(bad)
    no_params = write('no_params', ['x = 1\n'])
    with pytest.raises(run_notebooks.NotebookError, match='parameters'):
        run_notebooks.run_notebook(no_params, {'out_dir': 'x'})


def test_committed_notebooks_are_clean_nbformat4():
    docs = os.path.join(os.path.dirname(FIGURES), 'docs', 'figures')
    for path in run_notebooks.notebook_paths():
        name = os.path.basename(path)[:-6]
        with open(path) as f:
            nb = json.load(f)
        assert nb['nbformat'] == 4
        cells = nb['cells']
        intro = ''.join(cells[0]['source'])
        assert cells[0]['cell_type'] == 'markdown' and ('results/' in intro or 'analysis/' in intro), path
        for figure in OUTPUTS[name]:  # the rendered figure at the top, and it is there
            assert f'](../docs/figures/{figure}.png)' in intro.split('\n\n', 2)[1], (path, figure)
            assert os.path.exists(os.path.join(docs, f'{figure}.png')), figure
        code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
        assert all(c['outputs'] == [] and c['execution_count'] is None for c in cells if c['cell_type'] == 'code')
        assert code[0].splitlines()[0].startswith('import figlib  #'), path  # the one-line setup
        params = [c for c in code if c.startswith('# parameters')]
        assert len(params) == 1, path
        ns = {}
        exec(params[0], ns)
        paths = {'results_dir': '../results', 'analysis_dir': '../analysis', 'out_dir': 'out'}
        assert {k: ns[k] for k in paths if k in ns} == {k: v for k, v in paths.items() if k in ns}, path
        rest = '\n'.join(c for c in code if c is not code[0] and c is not params[0])
        for imported in re.findall(r'^(?:import \S+ as|import|from \S+ import) (\w+)', code[0], re.MULTILINE):
            assert re.search(rf'\b{imported}\.', rest), f'{path}: {imported} imported, not used'
        for parameter in ns.keys() - {'__builtins__'}:  # every parameter is used
            assert re.search(rf'\b{parameter}\b', rest), f'{path}: parameter {parameter} not used'


def test_recipes_name_the_producing_commands():
    """figlib quotes the experiments table's commands for a missing file."""
    assert figlib.recipe('LSTM') == (
        "python train.py --network=LSTM --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/LSTM && "
        "python generalize.py --runs_dir=trained_networks/LSTM --n_tasks=[2,3,6,12,24] --n_runs=5 "
        "--select=\"{'network': 'LSTM'}\" --decoder=both --label=LSTM --results_dir=results")
    assert figlib.recipe('RNN_ID').endswith('--label=RNN --results_dir=results --out_of_distribution=False')
    assert figlib.recipe('RNN_paper').endswith('--label=RNN --results_dir=results --protocol=paper')
    assert "'stimulus': 1000" in figlib.recipe('FreeRT_T10') and 'trained_networks/FreeRT' in figlib.recipe('FreeRT_T10')
    assert 'python sparsity.py --runs_dir=trained_networks/HighDim_D4' in figlib.recipe('sparsity_HighDim_D4')
    assert '--n_dim=4' in figlib.recipe('sparsity_HighDim_D4')
    assert figlib.analysis_recipe('analyze.py', 'RNN', RNN_RUN) == f'python analyze.py --path=trained_networks/RNN/{RNN_RUN}'


def test_summaries_pool_everything_after_the_first_axis(tmp_path):
    values = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    values[1, 0, 0] = np.nan  # a network not evaluated
    med, lo, hi = results.quantile_rows(values)
    assert np.allclose(med, [5.5, 18]) and np.allclose(lo, [2.75, 15.5]) and np.allclose(hi, [8.25, 20.5])
    med, _, _ = results.quantile_rows([np.array([1., 2., 3.]), np.array([[10.]])])  # ragged (sweeps over D)
    assert np.allclose(med, [2, 10])
    angles = np.full((2, 3, 3), np.nan)
    angles[:, 0, 1], angles[:, 0, 2], angles[:, 1, 2] = 80, 90, 100
    assert np.allclose(results.pair_angles(angles), [[80, 90, 100]] * 2)
    assert np.allclose(results.pair_angles(np.full((4, 5), 88.)), 88)  # paper files storing angles directly
    np.savez(tmp_path / 'Noise_2.npz', r_sq=np.ones((5, 1)), n_tasks=np.array(N_TASKS))
    assert list(figlib.load_sweep(tmp_path, {0.1: 'Noise_1', 0.2: 'Noise_2'})) == [0.2]
    with pytest.raises(FileNotFoundError, match='Noise_1.npz.*Noise_3.npz'):
        figlib.load_sweep(tmp_path, {0.1: 'Noise_1', 0.3: 'Noise_3'})


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


def untrained_file(path, level, n_tasks=N_TASKS, n_runs=3):
    """An untrained baseline as generalize.py writes one: r² around `level`."""
    rng = np.random.default_rng(3)
    results.save_results(str(path), n_tasks=np.array(n_tasks),
                         r_sq=level + 0.01 * rng.standard_normal((len(n_tasks), n_runs, 4, 2)))


def labels_of(ax):
    return [artist.get_label() for artist in ax.lines + ax.containers]


def test_vs_tasks_draws_the_untrained_band_when_its_file_exists(tmp_path, capsys):
    """No file, nothing drawn and no error; a file, a grey dashed median and its band."""
    rng = np.random.default_rng(0)
    generalize_file(tmp_path / 'RNN.npz', rng)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'})
    assert not any('untrained' in label for label in labels_of(ax)) and not ax.patches  # no file, no band, no error
    untrained_file(tmp_path / 'RNN_untrained.npz', 0.3)
    untrained_file(tmp_path / 'RNN_untrained_paper.npz', 0.5)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'})
    line, = [line for line in ax.lines if line.get_label() == 'untrained']
    assert line.get_color() == 'gray' and line.get_linestyle() == '--' and abs(line.get_ydata()[0] - 0.3) < 0.02
    assert len(ax.patches) == 1  # its band
    assert 'untrained' in legend_texts(fig)
    fig, ax = plots.subplots()  # under the paper's protocol, its own file
    generalize_file(tmp_path / 'RNN_paper.npz', rng)
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'paper'): 'RNN', ('LSTM', 'paper'): 'LSTM'})
    line, = [line for line in ax.lines if line.get_label() == '_RNN, untrained']
    assert abs(line.get_ydata()[0] - 0.5) < 0.02
    assert f'not drawn (no file in {tmp_path}): LSTM_paper' in capsys.readouterr().out


def test_vs_tasks_with_several_curves_colours_each_baseline_and_explains_them_once(tmp_path):
    rng = np.random.default_rng(0)
    for label in ('RNN', 'LSTM'):
        generalize_file(tmp_path / f'{label}.npz', rng)
        untrained_file(tmp_path / f'{label}_untrained.npz', 0.4)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN', ('LSTM', 'correct'): 'LSTM'})
    bands = [line for line in ax.lines if 'untrained' in line.get_label() and len(line.get_ydata())]
    assert [b.get_label() for b in bands] == ['_RNN, untrained', '_LSTM, untrained']
    assert [b.get_color() for b in bands] == ['C0', 'C1']
    assert legend_texts(fig).count('untrained (dashed)') == 1


def test_a_few_networks_far_below_their_curve_are_cut_off_and_counted(tmp_path):
    """One network at r² = -3.5 (an exact decoder extrapolating badly) would squeeze every
    curve into a sliver: the axes stop 0.1 below the lowest median (here 0), and the
    networks cut off are counted at the bottom; without it the axes are left alone."""
    rng = np.random.default_rng(0)
    generalize_file(tmp_path / 'RNN.npz', rng, n_runs=5)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'})
    assert ax.get_ylim()[0] > 0 and not [t for t in ax.texts if 'below' in t.get_text()]
    with np.load(tmp_path / 'RNN.npz') as f:
        data = dict(f)
    data['r_sq'][2, 0] = -3.5  # one network of N_task = 6, every split and fit
    np.savez(tmp_path / 'RNN.npz', **data)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'})
    assert ax.get_ylim()[0] == 0.0
    note, = [t.get_text() for t in ax.texts if 'below' in t.get_text()]
    assert note.startswith('1 network(s) below 0.0, lowest -3.50')


def test_the_sweeps_cut_off_a_few_networks_far_below_their_curve_too(tmp_path):
    rng = np.random.default_rng(0)
    for D in (2, 4):
        generalize_file(tmp_path / f'HighDim_D{D}.npz', rng, n_dim=D, n_split=D, n_runs=5)
    with np.load(tmp_path / 'HighDim_D4.npz') as f:
        data = dict(f)
    data['r_sq'][1, 0] = -20.0
    np.savez(tmp_path / 'HighDim_D4.npz', **data)
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {D: f'HighDim_D{D}' for D in (2, 4)}, 'correct')
    assert ax.get_ylim()[0] == 0.0
    assert [t.get_text() for t in ax.texts if 'below' in t.get_text()] == ['1 network(s) below 0.0, lowest -20.00 ↓']
    data['r_sq'][1] = -4.0  # a whole curve far below (least squares at D = 2): the axes stop at -1 all the same
    data['r_sq'][1, 0] = -20.0
    np.savez(tmp_path / 'HighDim_D4.npz', **data)
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {D: f'HighDim_D{D}' for D in (2, 4)}, 'correct')
    assert ax.get_ylim()[0] == figlib.LOWEST_AXIS == -1.0 and ax.get_ylim()[1] <= 1.05
    assert [t.get_text() for t in ax.texts if 'below' in t.get_text()] == ['5 network(s) below -1.0, lowest -20.00 ↓']


def test_lstsq_curves_beside_adam(tmp_path):
    rng = np.random.default_rng(0)
    generalize_file(tmp_path / 'RNN.npz', rng)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'}, decoder='both')  # no lstsq file: Adam alone
    assert legend_texts(fig) == ['RNN']
    generalize_file(tmp_path / 'RNN_lstsq.npz', rng)
    untrained_file(tmp_path / 'RNN_untrained_lstsq.npz', 0.9)
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'}, decoder='both')
    assert set(legend_texts(fig)) == {'RNN', 'RNN, lstsq', 'untrained, lstsq'}
    adam, lstsq = ax.containers
    assert adam.lines[0].get_color() == lstsq.lines[0].get_color() and lstsq.lines[0].get_linestyle() == ':'
    fig, ax = plots.subplots()
    figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'}, decoder='lstsq')
    assert sorted(legend_texts(fig)) == ['RNN, lstsq', 'untrained, lstsq']
    with pytest.raises(ValueError, match="decoder='lsq' is not allowed"):
        figlib.plot_vs_tasks(ax, tmp_path, {('RNN', 'correct'): 'RNN'}, decoder='lsq')
    assert figlib.ood('RNN', 'paper', 'lstsq', untrained=True) == 'RNN_untrained_paper_lstsq'


def test_sweeps_draw_the_baseline_of_each_condition(tmp_path):
    rng = np.random.default_rng(0)
    for D in (2, 4, 6):
        generalize_file(tmp_path / f'HighDim_D{D}.npz', rng, n_dim=D, n_split=D)
    fig, ax = plots.subplots()
    files = figlib.plot_ood_sweep(ax, tmp_path, {D: f'HighDim_D{D}' for D in (2, 4, 6)}, 'correct')
    assert sorted(files) == [2, 4, 6] and 'untrained' not in legend_texts(fig) + labels_of(ax)
    untrained_file(tmp_path / 'HighDim_D2_untrained.npz', 0.5)
    untrained_file(tmp_path / 'HighDim_D6_untrained.npz', 0.3)  # D = 4 missing: the baseline skips it
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {D: f'HighDim_D{D}' for D in (2, 4, 6)}, 'correct')
    line, = [line for line in ax.lines if line.get_label() == 'untrained']
    assert list(line.get_xdata()) == [2, 6] and np.allclose(line.get_ydata(), [0.5, 0.3], atol=0.02)
    assert len(ax.collections) == 5 * 2 + 1  # error bars and dots per task count, and the baseline's band
    assert 'untrained' in legend_texts(fig)
    untrained_file(tmp_path / 'HighDim_D8_untrained.npz', 0.2)  # a baseline without its trained sweep: not drawn
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {D: f'HighDim_D{D}' for D in (2, 4, 6, 8)}, 'correct')
    line, = [line for line in ax.lines if line.get_label() == 'untrained']
    assert list(line.get_xdata()) == [2, 6]


def test_a_sweep_half_rerun_at_another_budget_says_which_conditions(tmp_path):
    rng = np.random.default_rng(0)
    for sigma, batches in ((0.1, 1e5), (0.2, 1e5), (0.4, 2e4), (0.6, 2e4)):
        generalize_file(tmp_path / f'Noise_{sigma}.npz', rng)
        with np.load(tmp_path / f'Noise_{sigma}.npz') as f:
            data = dict(f)
        data['batches'] = np.full(data['r_sq'].shape[:2], batches)
        data['batches'][0, 0] = np.nan  # a broken run records no budget
        np.savez(tmp_path / f'Noise_{sigma}.npz', **data)
    labels = {sigma: f'Noise_{sigma}' for sigma in (0.1, 0.2, 0.4, 0.6)}
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, labels, 'correct')
    assert [t.get_text() for t in ax.texts] == ['trained for 2e4 batches at 0.4, 0.6 (the rest 1e5)']
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {x: labels[x] for x in (0.1, 0.2)}, 'correct')  # one budget: no note
    assert not ax.texts


def _with_budget(path, batches):
    with np.load(path) as f:
        data = dict(f)
    data['batches'] = np.full(data['r_sq'].shape[:2], batches)
    np.savez(path, **data)


def test_5a_draws_the_trained_at_20_set_under_both_decoders_and_names_each_curves_budget(tmp_path, capsys):
    rng = np.random.default_rng(0)
    results_dir = tmp_path / 'results'
    results_dir.mkdir()
    for T in (5, 10, 20):  # the matched sets at 2e4, the set trained at T = 20 at 1e5, both decoders
        for name, batches in ((f'FreeRT5a_T{T}', 2e4), (f'FreeRT5a_T{T}_lstsq', 2e4), (f'FreeRT_T{T}', 1e5),
                              (f'FreeRT_T{T}_lstsq', 1e5)):
            generalize_file(results_dir / f'{name}.npz', rng, n_tasks=[24])
            _with_budget(results_dir / f'{name}.npz', batches)
    out = tmp_path / 'out'
    status = run_notebooks.main(['fig5a', '--decoder=both', '--durations=[5,10,20]', '--no_absorption=False',
                                 f'--results_dir={results_dir}', f'--out_dir={out}'])
    printed = capsys.readouterr().out
    assert status == 0
    assert '24 tasks (trained at 20) r_sq' in printed and '24 tasks (trained at 20), lstsq r_sq' in printed
    assert 'batches: one set per T 2e4, trained at 20 1e5)' in printed  # also the figure's title
    status = run_notebooks.main(['fig5a', '--decoder=adam', '--durations=[5,10,20]', '--no_absorption=False',
                                 f'--results_dir={results_dir}', f'--out_dir={out}'])
    printed = capsys.readouterr().out
    assert status == 0 and '(trained at 20), lstsq' not in printed


def test_sweep_images_plot_the_per_network_median_the_tables_quote(tmp_path, capsys):
    # skewed repeats: each network's mean is not its median, so the pooled median (what the
    # sweep images drew before) differs from the median over networks of their means
    rng = np.random.default_rng(5)
    made = {}
    for D, n_runs in ((2, 5), (4, 3)):  # conditions with different numbers of networks
        r_sq = 0.9 - rng.exponential(0.2, (len(N_TASKS), n_runs, D, 3))
        r_sq[1, 0] = np.nan  # a network not evaluated at 3 tasks
        results.save_results(str(tmp_path / f'HighDim_D{D}.npz'), r_sq=r_sq, n_tasks=np.array(N_TASKS))
        made[D] = r_sq
    fig, ax = plots.subplots()
    figlib.plot_ood_sweep(ax, tmp_path, {2: 'HighDim_D2', 4: 'HighDim_D4'}, 'correct')
    printed = capsys.readouterr().out
    curves = {c.get_label(): c for c in ax.containers}
    for i, k in enumerate(N_TASKS):
        line = curves[f'{k} tasks'].lines[0]
        quoted = [results.network_summary(made[D])['median'][i] for D in (2, 4)]
        assert np.allclose(line.get_ydata(), quoted)
        pooled = results.quantile_rows([made[D][i] for D in (2, 4)])[0]
        assert not np.allclose(line.get_ydata(), pooled)  # the test tells the two statistics apart
        # the interval is the bootstrap interval of that median
        summary = results.network_summary(made[2])
        low, high = curves[f'{k} tasks'].lines[2][0].get_segments()[0][:, 1]
        assert np.isclose(low, summary['ci_low'][i]) and np.isclose(high, summary['ci_high'][i])
        assert f'{k} tasks r_sq (median over networks [95 % CI]): 2: {quoted[0]:.3f}' in printed
    dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets()) > 2])
    nets = np.concatenate([results.per_network(made[D]).ravel() for D in (2, 4)])
    assert np.allclose(np.sort(dots[np.isfinite(dots)]), np.sort(nets[np.isfinite(nets)]))  # a dot per network


def test_the_d_sweep_draws_the_releases_design_else_the_committed_one(tmp_path, capsys):
    """figlib.highdim_prefix: HighDim5b (the release's design) when one of its files exists
    under the file naming asked for, else the committed HighDim with one note, else
    HighDim5b (whose missing files the figure then names)."""
    def touch(name):
        np.savez(tmp_path / f'{name}.npz', r_sq=np.zeros(1))

    correct, paper = figlib.ood('{}', 'correct'), figlib.ood('{}', 'paper', 'lstsq')
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [2, 4], correct, 'fig5b_S12') == 'HighDim5b'
    assert capsys.readouterr().out == ''  # neither design: nothing to say here
    touch('HighDim_D4')
    touch('HighDim_D4_paper_lstsq')
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [2, 4], correct, 'fig5b_S12') == 'HighDim'
    note = capsys.readouterr().out
    assert note.count('\n') == 1 and note.startswith(f'note: no HighDim5b_D<D>.npz in {tmp_path}: drawing HighDim_D<D>')
    assert note.strip().endswith('python sweep.py fig5b_S12')
    touch('HighDim5b_D2')  # the release's design, correct protocol, Adam
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [2, 4], correct, 'fig5b_S12') == 'HighDim5b'
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [4], correct, 'fig5b_S12') == 'HighDim'  # D = 2 not drawn
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [2, 4], paper, 'fig5b_S12') == 'HighDim'  # its own files
    assert 'no HighDim5b_D<D>_paper_lstsq.npz' in capsys.readouterr().out
    assert figlib.highdim_prefix(tmp_path, 'HighDim5b', [2, 4], 'sparsity_{}', 'S6') == 'HighDim5b'  # no fallback file
    assert figlib.design_title('HighDim5b') == 'boundaries per network (release)'
    assert figlib.design_title('HighDim', 'paper') == "one shared boundary set (committed)\nthe paper's test sets"
    assert figlib.design_title('HighDim5b_gpt-2') == 'GPT-2: boundaries per network (release)'


@pytest.mark.slow  # runs the notebooks
def test_5b_s12_and_s6b_notebooks_draw_the_releases_design_and_the_gpt2_panels_when_there(tmp_path, capsys):
    results_dir, out = tmp_path / 'results', tmp_path / 'out'
    results_dir.mkdir()
    rng = np.random.default_rng(0)
    sparsity_file(results_dir / 'sparsity_RNN.npz', rng)  # S6a's required input
    for D in (2, 4):  # the committed design only
        generalize_file(results_dir / f'HighDim_D{D}.npz', rng, n_dim=D, n_split=D)
        sparsity_file(results_dir / f'sparsity_HighDim_D{D}.npz', rng)

    def run(name):
        ns = run_notebooks.run_notebook(os.path.join(FIGURES, f'{name}.ipynb'),
                                        {'results_dir': str(results_dir), 'out_dir': str(out)})
        return ns, capsys.readouterr().out

    ns, printed = run('fig5b_S12')
    assert ns['panels'] == {'': 'HighDim'} and sorted(ns['files']) == [2, 4]
    assert ns['files'][4]['n_tasks'].tolist() == N_TASKS
    fallback, = [line for line in printed.splitlines() if 'drawing HighDim_D<D>' in line]
    assert fallback.endswith('make the files of HighDim5b with: python sweep.py fig5b_S12')
    assert ns['ax'].get_title() == 'one shared boundary set (committed)'
    assert 'the GPT-2 panels (fig5b_gpt-2, S12_gpt-2) are not drawn' in printed
    assert (out / 'fig5b.png').exists() and (out / 'S12.png').exists() and not (out / 'fig5b_gpt-2.png').exists()
    ns, printed = run('S6')
    assert ns['drawn'] == 'HighDim' and 'python sweep.py S6' in printed and (out / 'S6b.png').exists()

    release = [3, 6, 9, 12, 24]
    for D in (2, 4, 6):  # the release's design: drawn, no fallback
        generalize_file(results_dir / f'HighDim5b_D{D}.npz', rng, n_dim=D, n_split=D, n_tasks=release)
        sparsity_file(results_dir / f'sparsity_HighDim5b_D{D}.npz', rng, n_tasks=release)
    for name in ('fig5b', 'S12'):
        os.remove(out / f'{name}.png')
    ns, printed = run('fig5b_S12')
    assert ns['panels'] == {'': 'HighDim5b'} and sorted(ns['files']) == [2, 4, 6] and 'drawing HighDim_D' not in printed
    assert ns['files'][6]['n_tasks'].tolist() == release
    assert ns['ax'].get_title() == 'boundaries per network (release)'
    generalize_file(results_dir / 'HighDim5b_gpt-2_D4.npz', rng, n_dim=4, n_split=4, n_tasks=release)
    untrained_file(results_dir / 'HighDim5b_gpt-2_D4_untrained.npz', 0.2, n_tasks=release)
    ns, printed = run('fig5b_S12')
    assert ns['panels'] == {'': 'HighDim5b', '_gpt-2': 'HighDim5b_gpt-2'} and 'GPT-2 panels' not in printed
    assert sorted(ns['files']) == [4]  # the last panel drawn: GPT-2's
    assert ns['ax'].get_title() == 'GPT-2: boundaries per network (release)'
    baseline, = [line for line in printed.splitlines() if line.startswith('untrained r_sq')]  # GPT-2's only
    assert baseline.startswith('untrained r_sq (median [IQR]): 4: 0.20')
    for name in ('fig5b', 'S12', 'fig5b_gpt-2', 'S12_gpt-2'):
        assert (out / f'{name}.png').stat().st_size > 1000, name
    ns, printed = run('S6')
    assert ns['drawn'] == 'HighDim5b' and 'drawing HighDim_D' not in printed
    assert sorted(ns['high_dim']) == [2, 4, 6] and ns['ax'].get_title() == 'boundaries per network (release)'


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@pytest.mark.slow
def test_every_ood_notebook_draws_the_baselines_and_both_decoders(data, tmp_path, capsys):
    results_dir = tmp_path / 'results'
    results_dir.mkdir()
    for path in (data / 'results').glob('*.npz'):
        (results_dir / path.name).write_bytes(path.read_bytes())
    for label in ('RNN', 'RNN_NoLeak', 'LSTM', 'gpt-2', 'Quad', 'FreeRT', 'FreeRT_T10', 'HighDim_D4', 'Noise_3'):
        untrained_file(results_dir / f'{label}_untrained.npz', 0.2)
        generalize_file(results_dir / f'{label}_lstsq.npz', np.random.default_rng(1),
                        n_dim=4 if label == 'HighDim_D4' else 2, n_split=4)
    out = tmp_path / 'out'
    notebooks = ['fig3a', 'fig3b', 'S1', 'S5c', 'fig5a', 'fig5b_S12', 'fig5c']
    status = run_notebooks.main(notebooks + ['--decoder=both', f'--results_dir={results_dir}', f'--out_dir={out}'])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    baselines = [line for line in printed.out.splitlines() if 'untrained r_sq (median [IQR])' in line]
    assert len(baselines) >= len(notebooks)  # each notebook drew at least one
    assert 'tasks, lstsq r_sq' in printed.out and 'RNN, lstsq' not in printed.err
    assert run_notebooks.main(['fig3b', '--decoder=lsq', f'--results_dir={results_dir}', f'--out_dir={out}']) == 2
    assert "decoder='lsq' is not allowed" in capsys.readouterr().err


# ---------------------------------------------------------------------------------
# The disentanglement metrics figure (beyond the paper)

def test_metric_panels_draw_each_network_its_null_bands_and_its_untrained_value(tmp_path):
    rng = np.random.default_rng(0)
    generalize_file(tmp_path / 'RNN.npz', rng, n_runs=3)
    add_metrics(tmp_path / 'RNN.npz', rng)
    res = results.load_results(tmp_path, 'RNN')
    res['dci_d_null_lo'][:, 2] = np.nan  # a network not evaluated: left out of the band
    generalize_file(tmp_path / 'RNN_untrained.npz', rng, n_runs=3)
    add_metrics(tmp_path / 'RNN_untrained.npz', rng, level=0.2)
    untrained = results.load_results(tmp_path, 'RNN_untrained')
    fig, ax = plots.subplots()
    bands = figlib.plot_metric_vs_tasks(ax, tmp_path, {'RNN': res}, {'LSTM': 'LSTM', 'RNN': 'RNN'}, 'ccgp_mean')
    assert set(bands['RNN']) == {'null', 'geo'}  # CCGP has both nulls
    lo, hi = bands['RNN']['geo']
    np.testing.assert_allclose(lo, np.median(res['ccgp_mean_geo_lo'], axis=1))
    np.testing.assert_allclose(hi, np.median(res['ccgp_mean_geo_hi'], axis=1))
    hatched = [c for c in ax.collections if c.get_hatch()]
    assert sorted(c.get_hatch() for c in hatched) == ['....', '////']
    for c in hatched:  # each band spans its lows to its highs, in the curve's colour (RNN is the 2nd type: C1)
        ys = c.get_paths()[0].vertices[:, 1]
        kind = 'geo' if c.get_hatch() == '////' else 'null'
        assert np.isclose(ys.min(), bands['RNN'][kind][0].min()) and np.isclose(ys.max(), bands['RNN'][kind][1].max())
        np.testing.assert_allclose(c.get_edgecolor()[0][:3], plt.matplotlib.colors.to_rgb('C1'))
    base, = [line for line in ax.lines if line.get_label() == '_RNN, untrained']
    assert np.isclose(base.get_ydata()[0], np.median(results.per_network(untrained['ccgp_mean'])))
    assert ax.get_title() == 'CCGP'
    fig, ax = plots.subplots()
    bands = figlib.plot_metric_vs_tasks(ax, tmp_path, {'RNN': res}, {'RNN': 'RNN'}, 'dci_d')
    assert set(bands['RNN']) == {'null'}  # DCI has the shuffle null only
    np.testing.assert_allclose(bands['RNN']['null'][0], np.nanmedian(res['dci_d_null_lo'], axis=1))
    fig, ax = plots.subplots()
    assert figlib.plot_metric_vs_tasks(ax, tmp_path, {}, {'RNN': 'RNN'}, 'mig') == {}
    assert 'no network holds this metric' in [t.get_text() for t in ax.texts]


def test_metric_files_skip_files_without_the_metrics_naming_the_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for label in ('RNN', 'LSTM'):
        generalize_file(tmp_path / f'{label}.npz', rng)
    add_metrics(tmp_path / 'RNN.npz', rng)
    files = figlib.metric_files(tmp_path, {'RNN': 'RNN', 'LSTM': 'LSTM', 'gpt-2': 'GPT-2'})
    assert list(files) == ['RNN']
    printed = capsys.readouterr().out.splitlines()
    lstm, = [line for line in printed if 'LSTM.npz' in line]
    assert 'has no disentanglement metrics (dci_d, dci_c, dci_i, mig, ccgp_mean, ps_mean): not drawn' in lstm
    assert lstm.endswith('make them with: ' + figlib.recipe('LSTM').split(' && ')[-1])
    assert any('gpt-2.npz not found' in line for line in printed)
    with pytest.raises(FileNotFoundError, match='gpt-2.npz'):  # the first label is required
        figlib.metric_files(tmp_path, {'gpt-2': 'GPT-2'})


def test_unit_metrics_of_figure_4_read_the_first_summary_that_holds_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    run = tmp_path / GPT_RUN
    run.mkdir()
    (run / 'values_summary.json').write_text(json.dumps({'n_head': 8}))  # made before the metrics existed
    command = figlib.analysis_recipe('analyze_transformer.py', 'gpt-2', GPT_RUN)
    files = ['values_summary.json', 'alone.json']
    assert figlib.load_unit_metrics(tmp_path, GPT_RUN, files, command) == (None, None)
    assert f'not drawn; make them with: {command}' in capsys.readouterr().out
    alone = {key: float(value) for key, value in metric_arrays(rng).items()}
    (run / 'alone.json').write_text(json.dumps({'disentanglement': alone}))
    assert figlib.load_unit_metrics(tmp_path, GPT_RUN, files, command) == (alone, 'alone.json')
    rnn = {key: float(value) for key, value in metric_arrays(rng, level=0.2).items()}
    fig, ax = plots.subplots()
    drawn = figlib.plot_unit_metrics(ax, {'RNN': rnn, 'GPT-2': alone})
    assert drawn == {'RNN': [rnn[k] for k in figlib.METRICS], 'GPT-2': [alone[k] for k in figlib.METRICS]}
    dots = [line for line in ax.lines if line.get_label().startswith('RNN')]
    assert dots[0].get_label() == f'RNN: {rnn["n_silent"]:.0f} of 64 units silent'
    np.testing.assert_allclose(dots[0].get_ydata(), drawn['RNN'])
    bars = sorted((p.get_y(), p.get_height()) for p in ax.patches if p.get_hatch() == '////')
    expected = sorted((d[f'{k}_geo_lo'], d[f'{k}_geo_hi'] - d[f'{k}_geo_lo']) for d in (rnn, alone)
                      for k in ('ccgp_mean', 'ps_mean'))
    np.testing.assert_allclose(bars, expected)  # the geometric null: CCGP and PS of each network
