"""checkpoints.py and runs.py on fabricated run folders (no training): the state of a
run (finished / partial / missing / broken), what find_sweep refuses before any work,
the commands it suggests, output checks and file permissions."""
import json
import os
import shlex
import stat
import subprocess
import sys

import pytest
import torch

import checkpoints
import runs
from configurator import parse_value, script_defaults

TRAIN_DEFAULTS = script_defaults(checkpoints.TRAIN_SCRIPT)


def fake_run(root, n_task, run, batch=3000, n_batch=3000, finished=True, checkpoint=True, **config):
    """A run folder as train.py leaves it: config.json, a checkpoint at `batch`
    (a stand-in holding what run_state reads) and, once finished, metrics.json."""
    config = {**TRAIN_DEFAULTS, 'n_batch': n_batch, **config, 'n_task': n_task, 'run': run,
              'member_seed': 7, 'name': f'nTask{n_task}_run{run}', 'git_commit': 'abc', 'torch': '2'}
    folder = os.path.join(root, config['name'] + config.pop('suffix', ''))
    os.makedirs(folder)
    checkpoints.save_json(config, os.path.join(folder, 'config.json'))
    if checkpoint:
        checkpoints.save_torch({'state_dict': {}, 'resume': {'batch': batch, 'n_batch': n_batch}},
                               os.path.join(folder, 'net.pth'))
    if finished:
        checkpoints.save_json({'batches_done': batch}, os.path.join(folder, 'metrics.json'))
    return folder


@pytest.fixture
def sweep(tmp_path):
    """Two task counts × two finished runs."""
    for k in (2, 24):
        for r in (0, 1):
            fake_run(tmp_path, k, r)
    return str(tmp_path)


def test_finished_sweep_records_the_batches(sweep):
    folders, batches, broken = checkpoints.find_sweep(sweep, {'network': 'RNN'}, [2, 24], 2)
    assert list(folders) == [2, 24] and all(len(f) == 2 for f in folders.values())
    assert set(batches.values()) == {3000} and broken == {}


def test_unfinished_runs_are_refused_with_the_command_that_finishes_them(tmp_path):
    setting = dict(leaky=False, n_sd_in=1.0, timing={'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100})
    fake_run(tmp_path, 2, 0, **setting)
    part = fake_run(tmp_path, 6, 0, batch=1000, finished=False, **setting)
    assert checkpoints.run_state(part) == ('partial', 1000, None)
    sweep = str(tmp_path)
    with pytest.raises(ValueError) as e:
        checkpoints.find_sweep(sweep, {}, [2, 6], 2)
    message = str(e.value)
    assert part in message and 'batch 1000 of 3000' in message and '--unfinished=True' in message
    command = next(line for line in message.splitlines() if 'python train.py' in line).split(': ', 1)[1]
    args = dict(a[2:].split('=', 1) for a in shlex.split(command)[2:])  # as the shell passes them
    assert {k: parse_value(v) for k, v in args.items()} == {
        'leaky': False, 'n_sd_in': 1.0, 'n_batch': 3000, 'n_task': 6, 'run': 0, 'runs': 1, 'resume': True,
        'timing': {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100},
        'out_dir': os.path.abspath(tmp_path)}
    # asked for explicitly: evaluated, with the batch it is at
    folders, batches, _ = checkpoints.find_sweep(sweep, {}, [2, 6], 2, unfinished=True)
    assert folders[6] == [part] and batches[part] == 1000
    # an analysis of that one network refuses it the same way
    with pytest.raises(ValueError, match='partly trained'):
        checkpoints.select_network(part, None, {}, 0)
    assert checkpoints.select_network(part, None, {}, 0, unfinished=True) == (part, 1000)


def test_broken_runs_stay_in_their_slot_and_are_listed(sweep, tmp_path):
    failed = fake_run(tmp_path, 24, 2, checkpoint=False, finished=False)  # only config.json
    corrupt = fake_run(tmp_path, 24, 3)
    with open(os.path.join(corrupt, 'net.pth'), 'r+b') as f:
        f.truncate(os.path.getsize(f.name) // 2)
    unreadable = os.path.join(tmp_path, 'half_written')
    os.makedirs(unreadable)
    with open(os.path.join(unreadable, 'config.json'), 'w') as f:
        f.write('{"n_task": 2,')
    folders, _, broken = checkpoints.find_sweep(sweep, {}, [2, 24], 4)
    assert folders[24][2:] == [failed, corrupt]
    assert set(broken) == {failed, corrupt, unreadable}
    assert 'no net.pth' in broken[failed] and 'corrupt' in broken[corrupt] and 'JSON' in broken[unreadable]
    with pytest.raises(ValueError, match='is broken: no net.pth'):
        checkpoints.select_network(failed, None, {}, 0)
    error = checkpoints.BrokenRuns(broken, wrote='results/RNN.npz')
    assert '3 broken run(s)' in str(error) and failed in str(error) and 'results/RNN.npz' in str(error)


def test_runs_of_different_conditions_are_not_pooled(sweep, tmp_path):
    fake_run(tmp_path, 2, 5, leaky=False, suffix='_noleak')
    with pytest.raises(ValueError) as e:
        checkpoints.find_sweep(sweep, {'network': 'RNN'}, [2, 24], 5)
    message = str(e.value)
    assert 'leaky: True (4 networks), False (1 networks)' in message
    assert "--select=\"{'network': 'RNN', 'leaky': True}\"" in message
    # the select it suggests splits them; seeds, runs and bookkeeping may differ
    fake_run(tmp_path, 24, 5, seed=3, device='cuda', n_threads=4, ckpt_every=10, suffix='_other')
    folders, _, _ = checkpoints.find_sweep(sweep, {'network': 'RNN', 'leaky': True}, [2, 24], 5)
    assert len(folders[2]) == 2 and len(folders[24]) == 3


def test_unknown_select_key_suggests_the_close_match(sweep):
    with pytest.raises(ValueError, match="select key 'netwrok' is unknown.*did you mean 'network'"):
        checkpoints.find_sweep(sweep, {'netwrok': 'RNN'}, [2], 1)
    with pytest.raises(ValueError, match="'netwrok' is unknown"):
        checkpoints.select_network(None, sweep, {'netwrok': 'RNN'}, 0)
    with pytest.raises(FileNotFoundError, match='train them first'):  # a known key, no match
        checkpoints.find_sweep(sweep, {'network': 'LSTM'}, [2], 1)


def test_partial_sweep_takes_the_task_counts_found(sweep, capsys):
    folders, _, _ = checkpoints.find_sweep(sweep, {}, [2, 3, 24], 2)
    assert list(folders) == [2, 24]
    assert 'n_task in [3]' in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match=r'n_task in \[3, 6\]'):
        checkpoints.find_sweep(sweep, {}, [3, 6], 2)


def test_paper_files_are_finished_with_the_budget_their_name_carries(tmp_path):
    path = tmp_path / 'RNN16batch1e5LR0.001Noise2NetN0nTrial1CElossnTask4Mix.pth'
    torch.save({'state_dict': {'rec_to_rec.weight': torch.zeros(4, 4), 'rec_to_out.weight': torch.zeros(4, 4)}},
               path, _use_new_zipfile_serialization=False)
    assert checkpoints.run_state(str(path)) == ('finished', 100000, None)


@pytest.mark.parametrize('umask', [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        checkpoints.save_json({'a': 1}, str(tmp_path / 'config.json'))
        checkpoints.save_torch({'a': 1}, str(tmp_path / 'net.pth'))
    finally:
        os.umask(old)
    for name in ('config.json', 'net.pth'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_output_locations_are_checked_by_a_write(tmp_path):
    assert checkpoints.check_output('results_dir', str(tmp_path / 'new' / 'deep')) and (tmp_path / 'new' / 'deep').is_dir()
    assert os.listdir(tmp_path / 'new' / 'deep') == []  # the probe is removed
    (tmp_path / 'file').write_text('')
    bad = {'/proc/x': 'results_dir', str(tmp_path / 'file' / 'x'): 'out_dir',
           str(tmp_path / ('x' * 5000)): 'out_dir'}
    for folder, name in bad.items():
        with pytest.raises(OSError) as e:
            checkpoints.check_output(name, folder)
        message = str(e.value)
        assert message.startswith(f'cannot write to {name}=') and len(message) < 200, message
    assert '(5' in str(pytest.raises(OSError, checkpoints.check_output, 'out_dir', 'y' * 5000).value)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_output_folder(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(OSError, match='cannot write to out_dir'):
            checkpoints.check_output('out_dir', str(tmp_path))
    finally:
        os.chmod(tmp_path, 0o700)



def test_one_vocabulary_of_run_states(tmp_path):
    finished = fake_run(tmp_path, 2, 0)
    partial = fake_run(tmp_path, 3, 0, batch=100, finished=False)
    started = fake_run(tmp_path, 6, 0, finished=False, checkpoint=False)  # killed before its first checkpoint
    assert [runs.state(f) for f in (finished, partial, started, None)] == \
        [runs.FINISHED, runs.PARTIAL, runs.MISSING, runs.MISSING] == ['finished', 'partial', 'missing', 'missing']
    assert checkpoints.run_state(partial) == (runs.PARTIAL, 100, None)
    state, _, problem = checkpoints.run_state(started)
    assert state == runs.MISSING and 'no net.pth' in problem
    with open(os.path.join(partial, 'net.pth'), 'wb') as f:
        f.write(b'not a checkpoint')
    state, _, problem = checkpoints.run_state(partial)
    assert state == runs.BROKEN and 'corrupt' in problem and partial in problem
    # the sweep planner reads the same states (torch-free)
    import experiments
    expected = {**TRAIN_DEFAULTS, 'n_batch': 3000}
    states = experiments.network_states(str(tmp_path), expected, [(2, 0), (3, 0), (6, 0), (12, 0)])
    assert [s for s, _, _ in states.values()] == ['finished', 'partial', 'missing', 'missing']
    assert runs.finished(finished, 3000) and not runs.finished(finished, 6000) and not runs.finished(partial, 100)


def test_resume_command_of_a_run_saved_before_a_hyperparameter_existed(tmp_path):
    """config.json has one reader: a run trained before `loss` existed (with logits)
    resumes with --loss=logits, not with today's default."""
    part = fake_run(tmp_path, 2, 0, batch=100, finished=False)
    config = json.load(open(os.path.join(part, 'config.json')))
    del config['loss']
    checkpoints.save_json(config, os.path.join(part, 'config.json'))
    args = shlex.split(runs.resume_command(part))
    assert args[:2] == ['python', 'train.py'] and '--loss=logits' in args and '--resume=True' in args
    assert runs.load_config(part)['loss'] == 'logits'


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path):
    folder = str(tmp_path / 'nTask2_run0')
    lock = runs.RunLock(folder)
    with pytest.raises(FileExistsError, match=f'pid {os.getpid()} on '):
        runs.RunLock(folder)
    lock.release()
    assert not os.path.exists(folder)  # nothing was trained: the folder goes too


def test_run_folders_and_the_sweep_planner_import_no_torch():
    code = 'import sys, runs, experiments; assert "torch" not in sys.modules, "torch imported"'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=os.path.dirname(checkpoints.TRAIN_SCRIPT))
