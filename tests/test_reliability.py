"""The evaluation scripts on sweeps that went wrong: partly trained, broken and
mixed runs, bad output locations, interrupted evaluations, partial sweeps; and that
--help and configuration errors answer before the slow imports."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import analyze
import analyze_transformer
import checkpoints
import configurator
import generalize
import results
import sparsity
import train
from configurator import hyperparameters
from runs import resume_command

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('quick_metrics')]  # trains networks and starts processes; the metrics' null draws cut (conftest.quick_metrics)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100}
TINY = dict(n_neu=16, timing=SHORT, lr=1e-2, device='cpu')


@pytest.fixture(scope='module')
def sweep(tmp_path_factory):
    """A finished tiny RNN sweep: n_task 2 and 4, two runs each, 60 batches."""
    root = tmp_path_factory.mktemp('sweep')
    train.train(dict(train.defaults(), **TINY, n_task=[2, 4], runs=2, n_batch=60, out_dir=str(root)))
    return str(root)


@pytest.fixture(scope='module')
def gpt(tmp_path_factory):
    """A tiny gpt-2 (for analyze_transformer.py)."""
    root = tmp_path_factory.mktemp('gpt')
    folder, = train.train(dict(train.defaults(), **TINY, network='gpt-2', n_head=2, n_task=2, n_batch=10,
                               out_dir=str(root)))
    return folder


@pytest.fixture
def runs(sweep, tmp_path):
    """A copy of the sweep that a test may break."""
    return shutil.copytree(sweep, tmp_path / 'runs')


def folder_of(root, n_task, run):
    return checkpoints.find_runs(str(root), n_task=n_task, run=run)[0]


def gen_hp(runs_dir, results_dir, **over):
    hp = hyperparameters(vars(generalize))
    hp.update(runs_dir=str(runs_dir), n_tasks=[2, 4], n_runs=2, label='tiny', results_dir=str(results_dir),
              n_fit=1, decoder_batches={2: 20, 4: 20}, n_test=5, device='cpu')
    return {**hp, **over}


def spa_hp(runs_dir, results_dir, **over):
    hp = hyperparameters(vars(sparsity))
    hp.update(runs_dir=str(runs_dir), n_tasks=[2, 4], n_runs=2, label='tiny', results_dir=str(results_dir),
              n_stim=50, device='cpu')
    return {**hp, **over}


def ana_hp(module, path, out_dir, **over):
    hp = hyperparameters(vars(module))
    hp.update(path=str(path), out_dir=str(out_dir), device='cpu', n_trials=40, n_init=8, max_iters=20, n_grid=2)
    return {k: v for k, v in {**hp, **over}.items() if k in hyperparameters(vars(module))}


def script(name, *args, cwd=ROOT):
    """Run python <name> args... (a script of the repo, or -c code) from `cwd`."""
    name = os.path.join(ROOT, name) if name.endswith('.py') else name
    return subprocess.run([sys.executable, name, *args], cwd=cwd, capture_output=True, text=True)


# ---------------------------------------------------------------------------------
# item 1: partly trained runs

def test_partly_trained_run_is_refused_until_finished_or_asked_for(tmp_path, monkeypatch):
    root = tmp_path / 'nets'
    config = dict(train.defaults(), **TINY, n_task=2, n_batch=60, ckpt_every=20, leaky=False, out_dir=str(root))
    train.train(dict(config, n_task=4))  # a finished task count beside it
    calls, step_losses = [], train.Objective.step_losses

    def killed(*args):  # interrupted at batch 30: the checkpoint holds batch 20 of 60
        calls.append(1)
        if len(calls) > 30:
            raise KeyboardInterrupt
        return step_losses(*args)

    monkeypatch.setattr(train.Objective, 'step_losses', killed)
    with pytest.raises(KeyboardInterrupt):
        train.train(config)
    monkeypatch.undo()
    part = folder_of(root, 2, 0)
    out = tmp_path / 'results'
    for evaluate, hp in ((generalize.generalize, gen_hp(root, out, select={}, n_runs=1)),
                         (sparsity.sparsity_sweep, spa_hp(root, out, select={}, n_runs=1)),
                         (analyze.analyze, ana_hp(analyze, part, out))):
        with pytest.raises(ValueError) as e:
            evaluate(hp)
        assert part in str(e.value) and 'batch 20 of 60' in str(e.value) and '--unfinished=True' in str(e.value)
    assert not out.exists()  # refused before any output
    # asked for explicitly: evaluated, and the results say how far it was trained
    generalize.generalize(gen_hp(root, out, select={}, n_runs=1, unfinished=True))
    np.testing.assert_array_equal(results.load_results(str(out), 'tiny')['batches'], [[20], [60]])
    summary = analyze.analyze(ana_hp(analyze, part, out, unfinished=True))
    assert summary['batches'] == 20
    # the command the refusal names finishes it (run in-process: same hyperparameters, same folder)
    command = shlex.split(resume_command(part))  # as the shell passes it
    assert command[:2] == ['python', 'train.py']
    args = {name[2:]: configurator.parse_value(value) for name, value in (a.split('=', 1) for a in command[2:])}
    assert args['resume'] is True and args['out_dir'] == str(root)
    train.train({**train.defaults(), **args})
    assert checkpoints.run_state(part)[:2] == ('finished', 60)
    generalize.generalize(gen_hp(root, out, select={}, n_runs=1))
    np.testing.assert_array_equal(results.load_results(str(out), 'tiny')['batches'], [[60], [60]])


def test_every_result_records_the_batches_trained(sweep, tmp_path):
    generalize.generalize(gen_hp(sweep, tmp_path))
    assert results.load_results(str(tmp_path), 'tiny')['batches'].tolist() == [[60, 60], [60, 60]]
    assert json.load(open(tmp_path / 'tiny.json'))['batches'] == [[60, 60], [60, 60]]
    sparsity.sparsity_sweep(spa_hp(sweep, tmp_path))
    assert results.load_results(str(tmp_path), 'sparsity_tiny')['batches'].tolist() == [[60, 60], [60, 60]]
    assert json.load(open(tmp_path / 'sparsity_tiny.json'))['batches'] == [[60, 60], [60, 60]]
    assert analyze.analyze(ana_hp(analyze, folder_of(sweep, 4, 1), tmp_path))['batches'] == 60


# ---------------------------------------------------------------------------------
# items 2, 3: mixed conditions, unknown select keys

def test_mixed_conditions_are_not_pooled(runs, tmp_path):
    odd = folder_of(runs, 4, 1)
    config = checkpoints.load_json(os.path.join(odd, 'config.json'))
    checkpoints.save_json(dict(config, leaky=False), os.path.join(odd, 'config.json'))
    for evaluate, hp in ((generalize.generalize, gen_hp(runs, tmp_path)),
                         (sparsity.sparsity_sweep, spa_hp(runs, tmp_path))):
        with pytest.raises(ValueError, match=r"leaky: True \(3 networks\), False \(1 networks\)") as e:
            evaluate(hp)
        assert "'leaky': True" in str(e.value)
    generalize.generalize(gen_hp(runs, tmp_path, select={'network': 'RNN', 'leaky': True}))
    assert np.isnan(results.load_results(str(tmp_path), 'tiny')['r_sq'][1, 1]).all()


def test_unknown_select_key_is_named(sweep, tmp_path):
    proc = script('generalize.py', f'--runs_dir={sweep}', "--select={'netwrok': 'RNN'}", f'--results_dir={tmp_path}')
    assert proc.returncode == 1
    assert "select key 'netwrok' is unknown" in proc.stderr and "did you mean 'network'" in proc.stderr
    assert 'train them first' not in proc.stderr


# ---------------------------------------------------------------------------------
# item 7: broken runs

def test_broken_runs_are_skipped_listed_and_exit_nonzero(runs, tmp_path):
    failed, corrupt = folder_of(runs, 2, 1), folder_of(runs, 4, 0)
    kept = str(tmp_path / 'kept.pth')
    shutil.move(os.path.join(failed, 'net.pth'), kept)  # a run that failed before its first checkpoint
    with open(os.path.join(corrupt, 'net.pth'), 'r+b') as f:
        f.truncate(1000)
    out = tmp_path / 'results'
    with pytest.raises(checkpoints.BrokenRuns) as e:
        generalize.generalize(gen_hp(runs, out))
    assert set(e.value.broken) == {failed, corrupt}
    r_sq = results.load_results(str(out), 'tiny')['r_sq']
    assert np.isnan(r_sq[0, 1]).all() and np.isnan(r_sq[1, 0]).all()
    assert np.isfinite(r_sq[0, 0]).all() and np.isfinite(r_sq[1, 1]).all()
    assert json.load(open(out / 'tiny.json'))['broken'].keys() == {failed, corrupt}
    with pytest.raises(checkpoints.BrokenRuns):
        sparsity.sparsity_sweep(spa_hp(runs, out))
    proc = script('sparsity.py', f'--runs_dir={runs}', '--n_tasks=[2, 4]', '--n_runs=2', '--n_stim=20',
                  f'--results_dir={out}', '--label=cli')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'error: 2 broken run(s) skipped' in proc.stderr and failed in proc.stderr and corrupt in proc.stderr
    assert (out / 'sparsity_cli.npz').exists()


def test_empty_checkpoint_bad_config_value_and_nan_weights_are_broken_runs_named_in_one_line(runs, tmp_path):
    empty, nan, words = folder_of(runs, 2, 1), folder_of(runs, 4, 0), folder_of(runs, 4, 1)
    open(os.path.join(empty, 'net.pth'), 'wb').close()
    os.remove(os.path.join(empty, 'metrics.json'))  # as if killed while its first checkpoint was written
    ckpt = checkpoints.load_checkpoint(os.path.join(nan, 'net.pth'))
    ckpt['state_dict']['rec_to_rec.weight'][:] = float('nan')  # a diverged run
    checkpoints.save_torch(ckpt, os.path.join(nan, 'net.pth'))
    config = json.load(open(os.path.join(words, 'config.json')))
    checkpoints.save_json({**config, 'n_neu': 'sixty-four'}, os.path.join(words, 'config.json'))
    problems = {empty: 'is empty (0 bytes)', nan: 'its weights are not finite',
                words: "hyperparameter 'n_neu' expects an int"}
    out = tmp_path / 'results'
    for evaluate in (lambda: generalize.generalize(gen_hp(runs, out)),
                     lambda: sparsity.sparsity_sweep(spa_hp(runs, out))):
        with pytest.raises(checkpoints.BrokenRuns) as e:
            evaluate()
        assert e.value.broken.keys() == problems.keys()
        assert all(problem in e.value.broken[where] for where, problem in problems.items())
    r_sq = results.load_results(str(out), 'tiny')['r_sq']
    assert np.isfinite(r_sq[0, 0]).all() and np.isnan(r_sq[1]).all()
    for where, problem in problems.items():
        with pytest.raises(ValueError) as e:
            analyze.analyze(ana_hp(analyze, where, tmp_path / 'analysis'))
        assert where in str(e.value) and problem in str(e.value) and '\n' not in str(e.value)
    proc = script('analyze.py', f'--path={empty}', f'--out_dir={tmp_path}', '--device=cpu')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip() == f"error: {empty} is broken: checkpoint {empty}/net.pth is empty (0 bytes): not a trained network"
    # resuming it is one line naming the file too
    with pytest.raises(ValueError, match=f"checkpoint {empty}/net.pth is empty"):
        train.train(dict(train.defaults(), **TINY, n_task=2, run=1, n_batch=60, out_dir=str(runs), resume=True))


def test_rerun_after_repair_evaluates_only_the_repaired_run(runs, tmp_path, monkeypatch):
    failed = folder_of(runs, 2, 1)
    kept = str(tmp_path / 'kept.pth')
    shutil.move(os.path.join(failed, 'net.pth'), kept)
    with pytest.raises(checkpoints.BrokenRuns):
        generalize.generalize(gen_hp(runs, tmp_path))
    shutil.move(kept, os.path.join(failed, 'net.pth'))
    evaluated, evaluate = [], generalize.decoding.evaluate_network
    monkeypatch.setattr(generalize.decoding, 'evaluate_network', lambda *a, **k: evaluated.append(1) or evaluate(*a, **k))
    generalize.generalize(gen_hp(runs, tmp_path))
    assert len(evaluated) == 1 and not os.path.exists(tmp_path / 'tiny.partial')


# ---------------------------------------------------------------------------------
# item 4: outputs checked first, results saved per network

@pytest.mark.parametrize('results_dir', ['/proc/x', 'x' * 5000])
def test_unwritable_results_dir_fails_before_work_in_one_line(sweep, tmp_path, results_dir):
    for name in ('generalize.py', 'sparsity.py'):
        proc = script(name, f'--runs_dir={sweep}', '--n_tasks=[2, 4]', '--n_runs=2', f'--results_dir={results_dir}',
                      cwd=tmp_path)
        errors = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr
        assert errors[0].startswith("error: cannot write to results_dir=") and len(errors[0]) < 200
        assert 'n_task=' not in proc.stdout  # no network was evaluated


def test_results_dir_is_checked_before_any_checkpoint_is_read(sweep, monkeypatch):
    monkeypatch.setattr(checkpoints, 'find_sweep', lambda *a: pytest.fail('checkpoints read first'))
    for main, hp in ((generalize.generalize, gen_hp(sweep, '/proc/x')),
                     (sparsity.sparsity_sweep, dict(hyperparameters(vars(sparsity)), runs_dir=sweep, results_dir='/proc/x'))):
        with pytest.raises(OSError, match="cannot write to results_dir='/proc/x'"):
            main(hp)


def test_unwritable_out_dir_of_the_analyses_fails_before_work(sweep, gpt, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('')
    monkeypatch.setattr(analyze.rep, 'state_trajectories', lambda *a: pytest.fail('work started'))
    monkeypatch.setattr(analyze_transformer, 'head_steady_states', lambda *a: pytest.fail('work started'))
    for out_dir in ('/proc/x', str(tmp_path / 'file'), 'y' * 5000):
        for module, main, path in ((analyze, analyze.analyze, folder_of(sweep, 2, 0)),
                                   (analyze_transformer, analyze_transformer.analyze_transformer, gpt)):
            with pytest.raises(OSError, match='cannot write to out_dir='):
                main(ana_hp(module, path, out_dir))
    proc = script('analyze_transformer.py', f'--path={gpt}', '--out_dir=/proc/x')
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot write to out_dir='/proc/x/")


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message given where no GPU is present')
def test_device_cuda_without_a_gpu_is_one_clear_error_before_work(sweep, gpt, tmp_path):
    evaluate = [f'--runs_dir={sweep}', '--n_tasks=[2, 4]', '--n_runs=2', f'--results_dir={tmp_path / "r"}']
    for name, args in (('generalize.py', evaluate), ('sparsity.py', evaluate),
                       ('analyze.py', [f'--path={folder_of(sweep, 2, 0)}', f'--out_dir={tmp_path / "a"}']),
                       ('analyze_transformer.py', [f'--path={gpt}', f'--out_dir={tmp_path / "a"}']),
                       ('train.py', ['--n_task=2', '--n_batch=5', f'--out_dir={tmp_path / "nets"}'])):
        proc = script(name, *args, '--device=cuda', cwd=tmp_path)
        assert proc.returncode in (1, 2) and proc.stderr.strip().splitlines() == [
            "error: device='cuda' is not allowed: no CUDA device is available here (use 'auto' or 'cpu')"], \
            (name, proc.stderr)
        assert 'n_task=' not in proc.stdout, name  # nothing was evaluated
        assert not list(tmp_path.rglob('*.np[yz]')) and not (tmp_path / 'nets').exists(), name


@pytest.mark.parametrize('item', ['--label=../../x', '--label=a/b', '--results_dir=', '--label='])
def test_labels_and_empty_folders_are_rejected_before_work(sweep, tmp_path, item):
    for name in ('generalize.py', 'sparsity.py'):
        proc = script(name, f'--runs_dir={sweep}', f'--results_dir={tmp_path / "out"}', item, cwd=tmp_path)
        assert proc.returncode == 2 and item.split('=')[0][2:] in proc.stderr, proc.stderr
        assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
    for name in ('analyze.py', 'analyze_transformer.py'):
        proc = script(name, f'--runs_dir={sweep}', '--out_dir=', cwd=tmp_path)
        assert proc.returncode == 2 and "out_dir='' is not allowed" in proc.stderr


def test_interrupted_evaluation_continues_to_the_same_numbers(sweep, tmp_path, monkeypatch):
    whole = tmp_path / 'whole'
    generalize.generalize(gen_hp(sweep, whole))
    sparsity.sparsity_sweep(spa_hp(sweep, whole))
    calls, evaluate, steady = [], generalize.decoding.evaluate_network, sparsity.rep.steady_states

    def interrupted(function):
        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:  # Ctrl-C during the third network
                raise KeyboardInterrupt
            return function(*args, **kwargs)
        return wrapper

    part = tmp_path / 'part'
    for name, patch, run, hp, label in (
            ('evaluate_network', (generalize.decoding, 'evaluate_network', evaluate), generalize.generalize, gen_hp, 'tiny'),
            ('steady_states', (sparsity.rep, 'steady_states', steady), sparsity.sparsity_sweep, spa_hp, 'sparsity_tiny')):
        calls.clear()
        monkeypatch.setattr(patch[0], patch[1], interrupted(patch[2]))
        with pytest.raises(KeyboardInterrupt):
            run(hp(sweep, part))
        assert len(os.listdir(part / f'{label}.partial')) == 2  # two networks saved
        calls.clear()
        monkeypatch.setattr(patch[0], patch[1], interrupted(patch[2]))
        calls.extend([1] * 3)  # no more interrupts
        run(hp(sweep, part))
        assert len(calls) == 3 + 2, name  # the rerun evaluated only the two networks left
        a, b = results.load_results(str(whole), label), results.load_results(str(part), label)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert not (part / f'{label}.partial').exists()


def test_changed_settings_are_not_mixed_with_saved_networks(sweep, tmp_path, monkeypatch):
    generalize.generalize(gen_hp(sweep, tmp_path))
    os.makedirs(tmp_path / 'tiny.partial')  # leftovers of an interrupted run with other settings
    part = results.Partial(str(tmp_path / 'tiny'), {'seed': 99})
    part.save(folder_of(sweep, 2, 0), checkpoints.fingerprint(folder_of(sweep, 2, 0)), r_sq=np.zeros((4, 1)))
    evaluated, evaluate = [], generalize.decoding.evaluate_network
    monkeypatch.setattr(generalize.decoding, 'evaluate_network', lambda *a, **k: evaluated.append(1) or evaluate(*a, **k))
    generalize.generalize(gen_hp(sweep, tmp_path))
    assert len(evaluated) == 4


# ---------------------------------------------------------------------------------
# item 14: partial sweeps

def test_partial_sweep_evaluates_the_task_counts_found(sweep, tmp_path, capsys):
    generalize.generalize(gen_hp(sweep, tmp_path, n_tasks=[2, 3, 4, 24], label='p'))
    out = capsys.readouterr().out
    assert 'note: no trained networks' in out and 'n_task in [3, 24]' in out
    res = results.load_results(str(tmp_path), 'p')
    assert res['n_tasks'].tolist() == [2, 4] and res['r_sq'].shape[:2] == (2, 2)


# ---------------------------------------------------------------------------------
# items 10, 11: configuration errors and --help, before anything is written or imported

@pytest.mark.parametrize('item', ['--n_grid=0', '--tol_q=-1', '--n_trials=1', '--lr=nan'])
def test_analyze_rejects_bad_values_before_writing(sweep, tmp_path, item):
    item = item.replace('--lr', '--fp_lr')
    proc = script('analyze.py', f'--runs_dir={sweep}', "--select={'n_task': 2}", f'--out_dir={tmp_path / "a"}', item)
    assert proc.returncode == 2 and item[2:].split('=')[0] in proc.stderr
    assert not (tmp_path / 'a').exists()


SCRIPTS = ['train.py', 'generalize.py', 'analyze.py', 'analyze_transformer.py', 'sparsity.py',
           os.path.join('Figures', 'run_notebooks.py')]
PROBE = """import runpy, sys
sys.argv = [{path!r}] + {args!r}
try:
    runpy.run_path({path!r}, run_name='__main__')
except SystemExit as e:
    code = e.code
print('STATUS', code, 'torch' in sys.modules, 'matplotlib' in sys.modules)
"""


@pytest.mark.parametrize('path', SCRIPTS)
@pytest.mark.parametrize('args', [['--help'], ['--no_such_name=1']])
def test_help_and_configuration_errors_answer_before_the_slow_imports(path, args):
    proc = script('-c', PROBE.format(path=os.path.join(ROOT, path), args=args))
    status = proc.stdout.strip().splitlines()[-1]
    assert status == f"STATUS {0 if args == ['--help'] else 2} False False", (status, proc.stderr)


@pytest.mark.parametrize('path', SCRIPTS + ['sweep.py'])
def test_help_into_a_closed_pipe_exits_quietly(path):
    """`python train.py --help | head -1`: the reader leaves after one line; no traceback."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, path), '--help'], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = proc.stdout.read(20)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and first.startswith(b'usage:') and err == '', err


# item 12: a value equal to the default stays out of the folder name, however it is written

def test_n_batch_written_1e5_names_the_default_run_folder(tmp_path):
    names = []
    for argv in ([], ['--n_batch=1e5'], ['--n_batch=100000']):
        namespace = dict(train.defaults(), __file__=os.path.join(ROOT, 'train.py'))
        config = configurator.configure(namespace, argv=argv + [f'--out_dir={tmp_path}'], print_config=False)
        config, members, folders, _, locks = train.setup(config)
        for lock in locks:
            lock.release()
        assert config['n_batch'] == 100_000 and type(config['n_batch']) is int
        names.append(os.path.basename(folders[0]))
    assert names == ['nTask24_run0'] * 3


# ---------------------------------------------------------------------------------
# Reliability III, item 1: results and analyses made from other networks are kept

def test_results_made_from_other_networks_are_never_replaced_by_default(sweep, tmp_path, monkeypatch):
    out = tmp_path / 'results'
    generalize.generalize(gen_hp(sweep, out))  # as the committed results: the whole sweep
    sparsity.sparsity_sweep(spa_hp(sweep, out))
    kept = {name: (out / name).read_bytes() for name in ('tiny.npz', 'tiny.json', 'sparsity_tiny.npz')}
    newcomer = tmp_path / 'newcomer'  # a network of one's own, trained elsewhere, evaluated under the same label
    shutil.copytree(folder_of(sweep, 2, 0), newcomer / 'nTask2_run0')
    monkeypatch.setattr(checkpoints, 'load_network', lambda *a, **k: pytest.fail('work started'))
    for main, hp in ((generalize.generalize, gen_hp(newcomer, out, n_tasks=[2], n_runs=1)),
                     (sparsity.sparsity_sweep, spa_hp(newcomer, out, n_tasks=[2], n_runs=1))):
        with pytest.raises(FileExistsError) as e:
            main(hp)
        message = str(e.value)
        assert len(message.splitlines()) == 1 and '--overwrite=True' in message
        assert str(out) in message and f'runs_dir={sweep!r}' in message  # the file, and what it was made from
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    proc = script('generalize.py', f'--runs_dir={newcomer}', '--n_tasks=[2]', '--n_runs=1', f'--results_dir={out}',
                  '--label=tiny')
    assert proc.returncode == 1 and proc.stderr.startswith(f'error: {out / "tiny.npz"} was made from 4 network(s)')
    assert len(proc.stderr.strip().splitlines()) == 1 and 'n_task=' not in proc.stdout
    monkeypatch.undo()
    generalize.generalize(gen_hp(sweep, out))  # the same networks again: replaced as before
    generalize.generalize(gen_hp(newcomer, out, n_tasks=[2], n_runs=1, overwrite=True))  # asked for
    assert results.load_results(str(out), 'tiny')['r_sq'].shape[:2] == (1, 1)


def test_an_analysis_of_another_network_is_not_replaced(sweep, gpt, tmp_path):
    out = tmp_path / 'analysis'
    for module, main, folder in ((analyze, analyze.analyze, folder_of(sweep, 2, 0)),
                                 (analyze_transformer, analyze_transformer.analyze_transformer, gpt)):
        main(ana_hp(module, folder, out))
        name = os.path.basename(folder)  # the run name names the analysis folder
        summary = 'summary.json' if module is analyze else 'values_summary.json'
        kept = (out / name / summary).read_bytes()
        quick_start = shutil.copytree(folder, tmp_path / 'quick_start' / name)  # same name, another network
        with pytest.raises(FileExistsError) as e:
            main(ana_hp(module, quick_start, out))
        assert str(out / name / summary) in str(e.value) and folder in str(e.value)
        assert '--overwrite=True' in str(e.value) and (out / name / summary).read_bytes() == kept
        main(ana_hp(module, folder, out))  # the same network again
        assert main(ana_hp(module, quick_start, out, overwrite=True))['network'] == str(quick_start)


# ---------------------------------------------------------------------------------
# Reliability III, item 3: a corrupt file drawn beside the results

def test_a_corrupt_file_beside_the_results_fails_before_any_work(sweep, tmp_path, monkeypatch):
    (tmp_path / 'tiny_ID.npz').write_bytes(b'PK\x03\x04 cut short')  # drawn in tiny's r² plot
    monkeypatch.setattr(checkpoints, 'load_network', lambda *a, **k: pytest.fail('work started'))
    with pytest.raises(ValueError) as e:
        generalize.generalize(gen_hp(sweep, tmp_path))
    assert len(str(e.value).splitlines()) == 1 and str(e.value).startswith(f"{tmp_path / 'tiny_ID.npz'} is not")
    assert not (tmp_path / 'tiny.npz').exists()


# ---------------------------------------------------------------------------------
# Reliability III, item 4: Ctrl-C says what was saved and how to continue

def test_ctrl_c_says_what_was_saved_and_the_command_that_continues(sweep, tmp_path, monkeypatch, capsys):
    for name, main, hp, (module, function) in (
            ('generalize.py', generalize.generalize, gen_hp(sweep, tmp_path), (generalize.decoding, 'evaluate_network')),
            ('sparsity.py', sparsity.sparsity_sweep, spa_hp(sweep, tmp_path), (sparsity.rep, 'steady_states'))):
        calls, real = [], getattr(module, function)

        def interrupted(*args, real=real, calls=calls, **kwargs):
            calls.append(1)
            if len(calls) == 2:  # Ctrl-C during the second network
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(module, function, interrupted)
        with pytest.raises(SystemExit) as e:
            configurator.run(main, hp)
        monkeypatch.undo()
        assert e.value.code == 130
        err = capsys.readouterr().err
        stem = 'tiny' if name == 'generalize.py' else 'sparsity_tiny'
        assert 'interrupted: 1 of 4 networks evaluated' in err and f"{tmp_path / stem}.partial/" in err
        command = err.strip().splitlines()[-1].strip()
        assert command.startswith(f'python {name} ')
        proc = script(*shlex.split(command)[1:], cwd=tmp_path)  # the command, as the shell passes it
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.startswith('n_task=')]
        assert len(lines) == 4 and sum(line.endswith('(saved by an earlier run)') for line in lines) == 1
        assert (tmp_path / f'{stem}.npz').exists() and not (tmp_path / f'{stem}.partial').exists()
# Ctrl-C while a script imports torch (after its configuration is read) is one line

INTERRUPT_PROBE = """import builtins, runpy, sys
sys.path.insert(0, {root!r})
sys.argv = [{path!r}]
real_import = builtins.__import__


def ctrl_c(name, *args, **kwargs):  # Ctrl-C arrives while the slow imports run
    if name.split('.')[0] in ('torch', 'numpy', 'matplotlib'):
        raise KeyboardInterrupt
    return real_import(name, *args, **kwargs)


builtins.__import__ = ctrl_c
runpy.run_path({path!r}, run_name='__main__')
"""


@pytest.mark.parametrize('path', [p for p in SCRIPTS if not p.startswith('Figures')])
def test_ctrl_c_during_the_imports_prints_one_line(path, tmp_path):
    proc = script('-c', INTERRUPT_PROBE.format(root=ROOT, path=os.path.join(ROOT, path)), cwd=tmp_path)
    assert proc.stderr.strip() == 'interrupted while starting: nothing was done', proc.stderr
    assert proc.returncode == -signal.SIGINT  # the status of a process stopped by Ctrl-C
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('network, budget', [('RNN', 100_000), ('gpt-2', 20_000)])
def test_the_printed_values_show_the_training_budget_used(tmp_path, network, budget):
    # n_dim=3 on the default task fails after the values are printed, before any training
    proc = script('train.py', f'--network={network}', '--n_dim=3', f'--out_dir={tmp_path / "nets"}')
    assert proc.returncode == 1 and 'HighDim' in proc.stderr
    assert f'n_batch = {budget}' in proc.stdout.splitlines() and 'n_batch = None' not in proc.stdout


@pytest.mark.parametrize('path, item', [('sparsity.py', '--n_stim=1000000000000'),
                                        ('analyze.py', '--n_init=1000000000000'), ('train.py', '--n_neu=1000000')])
def test_sizes_beyond_the_machines_memory_are_refused_before_work(tmp_path, path, item):
    proc = script(path, item, cwd=tmp_path)
    errors = proc.stderr.strip().splitlines()
    name = item[2:].split('=')[0]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert errors[0].startswith(f'error: {name}=') and 'is too large' in errors[0] and f'lower {name}' in errors[0]
    assert os.listdir(tmp_path) == []
