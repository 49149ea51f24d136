"""checkpoints.py and runs.py on fabricated run folders (no training): the state of a
run (finished / partial / missing / broken), what find_sweep refuses before any work,
the commands it suggests, output checks and file permissions."""
import json
import os
import shlex
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

import checkpoints
import ensemble
import networks
import runs
import tasks
from configurator import parse_value, script_defaults

TRAIN_DEFAULTS = script_defaults(checkpoints.TRAIN_SCRIPT)


def untrained(config):
    """The weights of an untrained network of a configuration, as a checkpoint holds them."""
    env = tasks.training_env(config)
    net = networks.build_network(config, networks.n_inputs(env, config), env.n_out)
    encoder = networks.build_encoder(config)
    return {'state_dict': ensemble.member_state_dict(net, 0),
            'encoder': None if encoder is None else ensemble.member_state_dict(encoder, 0)}


def fake_run(root, n_task, run, batch=3000, n_batch=3000, finished=True, checkpoint=True, **config):
    """A run folder as train.py leaves it: config.json, a checkpoint at `batch`
    (untrained weights and what run_state reads) and, once finished, metrics.json."""
    config = {**TRAIN_DEFAULTS, 'n_batch': n_batch, **config, 'n_task': n_task, 'run': run,
              'member_seed': 7, 'name': f'nTask{n_task}_run{run}', 'git_commit': 'abc', 'torch': '2'}
    folder = os.path.join(root, config['name'] + config.pop('suffix', ''))
    os.makedirs(folder)
    checkpoints.save_json(config, os.path.join(folder, 'config.json'))
    if checkpoint:
        checkpoints.save_torch({**untrained(config), 'resume': {'batch': batch, 'n_batch': n_batch}},
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


# ---------------------------------------------------------------------------------
# Corrupt and odd inputs: one line naming the file or the run, and broken in a sweep

def test_empty_checkpoint_is_one_line_naming_the_file(sweep):
    empty = os.path.join(sweep, 'nTask2_run1')
    open(os.path.join(empty, 'net.pth'), 'wb').close()
    with pytest.raises(ValueError) as e:
        checkpoints.load_checkpoint(os.path.join(empty, 'net.pth'))
    assert str(e.value) == f"checkpoint {os.path.join(empty, 'net.pth')} is empty (0 bytes): not a trained network"
    _, _, broken = checkpoints.find_sweep(sweep, {}, [2, 24], 2)
    assert list(broken) == [empty] and 'empty (0 bytes)' in broken[empty]
    with pytest.raises(ValueError, match='is broken: checkpoint .* is empty'):
        checkpoints.select_network(empty, None, {}, 0)


def test_unsafe_checkpoint_says_what_was_refused_without_torchs_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned',))

    for zipped in (False, True):
        path = tmp_path / f'evil{zipped}.pth'
        torch.save({'state_dict': {}, 'x': Evil()}, path, _use_new_zipfile_serialization=zipped)
        with pytest.raises(ValueError) as e:
            checkpoints.load_checkpoint(str(path))
        message = str(e.value)
        assert message.startswith(f'checkpoint {path} is not a safe checkpoint and was not loaded')
        assert 'posix.system' in message and 'weights_only' not in message and '\n' not in message
    assert not (tmp_path / 'pwned').exists()
    (tmp_path / 'cut.pth').write_bytes(b'\x80\x02')  # a pickle that ends early
    with pytest.raises(ValueError, match=r'cut.pth is corrupt \(not a complete torch checkpoint') as e:
        checkpoints.load_checkpoint(str(tmp_path / 'cut.pth'))
    assert 'weights_only' not in str(e.value)


def test_unreadable_or_missing_configs_and_unsafe_files_are_listed_as_broken(tmp_path):
    no_config = fake_run(tmp_path, 2, 0)
    os.remove(os.path.join(no_config, 'config.json'))
    half = fake_run(tmp_path, 2, 1)
    with open(os.path.join(half, 'config.json'), 'w') as f:
        f.write('{"n_task": 2,')
    torch.save({'state_dict': {}, 'x': stat.S_IMODE}, tmp_path / 'RNN64nTask2Mix.pth',
               _use_new_zipfile_serialization=False)  # a paper-style file that would import code
    unsafe = str(tmp_path / 'RNN64nTask2Mix.pth')
    root = str(tmp_path)
    for find in (lambda: checkpoints.find_sweep(root, {}, [2], 2), lambda: checkpoints.select_network(None, root, {}, 0)):
        with pytest.raises(checkpoints.BrokenRuns) as e:
            find()
        assert set(e.value.broken) == {no_config, half, unsafe}
        message = str(e.value)
        assert 'train them first' not in message and 'match' in message and '3 broken run(s)' in message
        assert 'config.json does not exist' in e.value.broken[no_config] and 'JSON' in e.value.broken[half]
        assert 'not a safe checkpoint' in e.value.broken[unsafe]
    # beside a readable run they are listed as broken, and it is evaluated
    good = fake_run(tmp_path, 2, 2)
    folders, _, broken = checkpoints.find_sweep(root, {}, [2], 2)
    assert folders == {2: [good]} and set(broken) == {no_config, half, unsafe}


def test_bad_config_values_wrong_shapes_and_nan_weights_name_the_run_and_are_broken(sweep):
    words, shape, nan = (os.path.join(sweep, f'nTask{k}_run{r}') for k, r in ((2, 0), (2, 1), (24, 1)))
    config = checkpoints.load_json(os.path.join(words, 'config.json'))
    checkpoints.save_json({**config, 'n_neu': 'sixty-four'}, os.path.join(words, 'config.json'))
    checkpoints.save_torch(untrained({**config, 'n_neu': 32}), os.path.join(shape, 'net.pth'))
    ckpt = checkpoints.load_checkpoint(os.path.join(nan, 'net.pth'))
    ckpt['state_dict']['rec_to_rec.weight'][0, 0] = float('nan')
    checkpoints.save_torch(ckpt, os.path.join(nan, 'net.pth'))
    expected = {words: "its config.json is invalid: hyperparameter 'n_neu' expects an int",
                shape: "its checkpoint does not fit the network its config describes (state dict entry "
                       "'inp_to_rec.weight' has shape (32, 41), expected (64, 41))",
                nan: "its weights are not finite (NaN or inf in state_dict 'rec_to_rec.weight')"}
    for where, problem in expected.items():
        with pytest.raises(ValueError) as e:
            checkpoints.load_network(where)
        assert str(e.value).startswith(f'{where}: {problem}') and '\n' not in str(e.value)
    folders, _, broken = checkpoints.find_sweep(sweep, {}, [2, 24], 2)
    assert folders[24][1] == nan and set(broken) == set(expected)  # they stay in their slot
    assert all(broken[where].startswith(f'{where}: {problem}') for where, problem in expected.items())


# ---------------------------------------------------------------------------------
# The paper's release: its files hold what its training code saved (no readout)

RELEASE = 'LinProbSigmoidSL8{net}batch1e5LR0.001Noise2NetN0nTrial1{gpt}CElossnTask4Mix.pth'
CONV1D = ('c_attn', 'c_proj', 'c_fc')  # Hugging Face's GPT-2 stores these weights (in, out)


def release_state(network, state):
    """Our single network's weights as the release saved them: a bare nn.LSTM, or its
    Linear input_projection in front of Hugging Face's GPT2Model (unused token
    embedding, zero frozen position embeddings, causal-mask buffers); no readout."""
    if network == 'RNN':  # the same names as ours, and its (untrained) rec_to_out
        return state
    if network == 'LSTM':
        return {k[len('lstm.'):]: v for k, v in state.items() if k.startswith('lstm.')}
    n_embd, n_positions = state['wte.weight'].shape[0], 22
    saved = {'transformer.wte.weight': torch.randn(1, n_embd), 'transformer.wpe.weight': torch.zeros(n_positions, n_embd),
             'input_projection.weight': state['wte.weight'], 'input_projection.bias': state['wte.bias']}
    for key, value in state.items():
        if key.startswith(('h.', 'ln_f.')):
            conv1d = key.endswith('.weight') and key.split('.')[-2] in CONV1D
            saved['transformer.' + key] = value.t().contiguous() if conv1d else value
            if key.endswith('ln_1.weight'):
                layer = key.split('.')[1]
                saved[f'transformer.h.{layer}.attn.bias'] = torch.ones(n_positions, n_positions).tril().bool()[None, None]
                saved[f'transformer.h.{layer}.attn.masked_bias'] = torch.tensor(-1e4)
    return saved


@pytest.mark.parametrize('network', ['RNN', 'LSTM', 'gpt-2'])
def test_release_files_load_their_hidden_states_and_say_the_readout_is_missing(tmp_path, network):
    config = {**TRAIN_DEFAULTS, 'network': network, 'n_neu': 8, 'n_head': 2, 'n_layer': 2, 'n_task': 4}
    torch.manual_seed(0)
    ours = untrained(config)
    ours['state_dict'] = {k: v + 0.1 * torch.randn_like(v) for k, v in ours['state_dict'].items()}  # not an init
    path = tmp_path / RELEASE.format(net=network, gpt='nLayer2nHead2' if network == 'gpt-2' else '')
    torch.save({'state_dict': release_state(network, ours['state_dict']), 'encoder': ours['encoder'],
                'loss_hist': np.zeros(100), 'conf_matr_hist': np.zeros((100, 2, 2))},
               path, _use_new_zipfile_serialization=False)
    lacks = 'a rec_to_out layer that is not the readout' if network == 'RNN' else 'no readout'
    with pytest.warns(UserWarning, match=f"paper's {network} checkpoints hold {lacks}.*hidden states.*load"):
        net, encoder, loaded = checkpoints.load_network(str(path))
    assert (loaded['network'], loaded['n_neu'], loaded['n_task']) == (network, 8, 4)
    if network == 'gpt-2':
        assert (loaded['n_layer'], loaded['n_head']) == (2, 2)
    env = tasks.training_env(config)
    u = torch.randn(3, 7, networks.n_inputs(env, config))
    if network == 'LSTM':  # what the release trained: torch's own LSTM
        reference = torch.nn.LSTM(u.shape[-1], 8, batch_first=True)
        reference.load_state_dict(release_state(network, ours['state_dict']))
    else:
        reference = networks.build_network(config, u.shape[-1], env.n_out)
        ensemble.load_member_state_dict(reference, 0, ours['state_dict'])
    hidden, outputs = net(u)
    torch.testing.assert_close(hidden, reference.eval()(u)[0])
    if network == 'RNN':
        torch.testing.assert_close(outputs, reference(u)[1])
    else:
        assert torch.isnan(outputs).all()  # the readout it never saved is not made up
    torch.testing.assert_close(ensemble.member_state_dict(encoder, 0), ours['encoder'])
    # found, finished and selected like any other network
    folders, _, broken = checkpoints.find_sweep(str(tmp_path), {}, [4], 1)
    assert folders == {4: [str(path)]} and broken == {}


def test_release_gpt_without_heads_or_with_positions_is_named(tmp_path):
    config = {**TRAIN_DEFAULTS, 'network': 'gpt-2', 'n_neu': 8, 'n_head': 2, 'n_task': 4}
    state = release_state('gpt-2', untrained(config)['state_dict'])
    torch.save({'state_dict': state}, tmp_path / 'SL8gpt-2nLayer1nTask4.pth', _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match='SL8gpt-2nLayer1nTask4.pth: the number of attention heads cannot be told'):
        checkpoints.load_network(str(tmp_path / 'SL8gpt-2nLayer1nTask4.pth'))
    state['transformer.wpe.weight'] = torch.ones_like(state['transformer.wpe.weight'])
    torch.save({'state_dict': state}, tmp_path / 'SL8gpt-2nHead2nTask4.pth', _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match='position embeddings are not zero'):
        checkpoints.load_network(str(tmp_path / 'SL8gpt-2nHead2nTask4.pth'))


def test_runs_saved_before_boundary_seed_pool_with_new_ones_of_a_task_without_boundaries(tmp_path):
    """A fixed-RT RNN saved before boundary_seed existed (read as 0) and one saved now
    (None) are one condition: only LinearClassificationHighDim reads boundary_seed."""
    old, new = fake_run(tmp_path, 2, 0), fake_run(tmp_path, 2, 1)
    config = json.load(open(os.path.join(old, 'config.json')))
    config.pop('boundary_seed', None)
    checkpoints.save_json(config, os.path.join(old, 'config.json'))
    config = json.load(open(os.path.join(new, 'config.json')))
    checkpoints.save_json({**config, 'boundary_seed': None}, os.path.join(new, 'config.json'))
    folders, _, broken = checkpoints.find_sweep(str(tmp_path), {}, [2], 2)
    assert folders == {2: [old, new]} and not broken
    assert not runs.reads_setting({'task': 'LinearClassificationCentOut'}, 'boundary_seed')
    assert runs.reads_setting({'task': ['LinearClassificationHighDim']}, 'boundary_seed')
