"""train.py on tiny networks: learning, ensembles, resuming, checkpoints, bad input."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import torch

import checkpoints
import runs
import train

pytestmark = pytest.mark.slow  # every test here trains networks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100}


def tiny(tmp_path, **over):
    """A small, fast configuration: 16 units, 5 stimulus steps."""
    config = train.defaults()
    config.update(n_neu=16, n_task=4, timing=SHORT, n_batch=60, ckpt_every=30, device='cpu',
                  out_dir=str(tmp_path / 'nets'))
    config.update(over)
    return config


def weights(folder):
    return checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))['state_dict']


def assert_same_training(folders, others):
    """The networks of two runs reached the same weights through the same loss history."""
    for a, b in zip(folders, others):
        ca, cb = (checkpoints.load_checkpoint(os.path.join(f, 'net.pth')) for f in (a, b))
        for k in ca['state_dict']:
            torch.testing.assert_close(ca['state_dict'][k], cb['state_dict'][k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ca['loss_hist'], cb['loss_hist'])


@pytest.mark.parametrize('over', [dict(network='RNN'), dict(network='RNN', leaky=False),
                                  dict(network='LSTM'), dict(network='gpt-2', n_head=4, lr=1e-3)],
                         ids=['RNN', 'RNN-nonleaky', 'LSTM', 'gpt-2'])
def test_loss_falls_and_accuracy_beats_chance(tmp_path, over):
    config = tiny(tmp_path, **{'n_batch': 400, 'lr': 1e-2, 'n_task': 2, **over})
    folder, = train.train(config)
    ckpt = checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))
    loss, acc = ckpt['loss_hist'].numpy(), ckpt['acc_hist'].numpy()
    assert len(loss) == 100 and ckpt['conf_matr_hist'].shape == (100, 2, 2)
    # BCE averages over all steps and the 0.5 targets before the decision keep it near
    # ln 2 there, so only the decision step (1 of 7) can bring it down
    assert loss[-10:].mean() < loss[:10].mean() - 0.015
    assert acc[-10:].mean() > 0.7  # chance is 0.5
    conf = ckpt['conf_matr_hist'][-1]
    assert torch.isclose(conf.sum(), torch.tensor(1.0), atol=1e-5)
    metrics = json.load(open(os.path.join(folder, 'metrics.json')))
    assert metrics['batches_done'] == 400 and metrics['batches_per_second'] > 0


def test_ensemble_member_matches_network_trained_alone(tmp_path):
    together = train.train(tiny(tmp_path / 'a', n_task=[2, 4], runs=2, n_batch=200))
    alone, = train.train(tiny(tmp_path / 'b', n_task=4, run=1, n_batch=200))
    member = [f for f in together if f.endswith('nTask4_run1')][0]
    for k, v in weights(alone).items():
        torch.testing.assert_close(weights(member)[k], v, rtol=1e-4, atol=1e-5)
    # members are different networks
    names = sorted(os.path.basename(f) for f in together)
    prefix = 'n_neu-16_timing-100-500-0-100_n_batch-200_'  # what differs from the defaults
    assert names == [prefix + s for s in ('nTask2_run0', 'nTask2_run1', 'nTask4_run0', 'nTask4_run1')]
    w = [weights(f)['rec_to_rec.weight'] for f in together]
    assert not torch.allclose(w[0], w[1])


@pytest.mark.parametrize('over', [dict(), dict(network='gpt-2', n_head=4, n_batch=60),
                                  dict(n_sd_net=0.1, rand_pen=True)], ids=['RNN', 'gpt-2', 'noise'])
def test_resume_continues_as_if_never_stopped(tmp_path, over, monkeypatch):
    full = train.train(tiny(tmp_path / 'full', n_task=[2, 4], **over))
    # the same run, killed at batch 31 (a checkpoint was written at batch 30) ...
    part = tiny(tmp_path / 'part', n_task=[2, 4], **over)
    calls, step_losses = [], train.Objective.step_losses

    def killed(*args):
        calls.append(1)
        if len(calls) > 31:
            raise KeyboardInterrupt
        return step_losses(*args)

    monkeypatch.setattr(train.Objective, 'step_losses', killed)
    with pytest.raises(KeyboardInterrupt):
        train.train(part)
    monkeypatch.undo()
    for folder in checkpoints.find_runs(part['out_dir']):
        assert checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))['resume']['batch'] == 30
    # ... and continued with --resume=True
    resumed = train.train(dict(part, resume=True))
    assert_same_training(full, resumed)


def test_checkpoint_contents_and_safe_loading(tmp_path):
    folder, = train.train(tiny(tmp_path))
    ckpt = torch.load(os.path.join(folder, 'net.pth'), weights_only=True)
    for key in ('state_dict', 'encoder', 'decoder', 'loss_hist', 'conf_matr_hist', 'config', 'resume'):
        assert key in ckpt
    assert set(ckpt['state_dict']) == {f'{a}.{b}' for a in ('inp_to_rec', 'rec_to_rec', 'rec_to_out')
                                       for b in ('weight', 'bias')}
    assert set(ckpt['encoder']) == {'0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias'}
    assert ckpt['state_dict']['inp_to_rec.weight'].shape == (16, 41)  # fixation + 40 encoder features
    config = json.load(open(os.path.join(folder, 'config.json')))
    assert config['n_task'] == 4 and config['run'] == 0 and 'member_seed' in config
    assert config['torch'] == torch.__version__ and 'git_commit' in config
    assert not [f for f in os.listdir(folder) if f.endswith('.tmp')]  # atomic writes leave nothing


def test_find_runs_and_load_network(tmp_path):
    train.train(tiny(tmp_path, n_task=[2, 4], runs=2, n_batch=10))
    root = str(tmp_path / 'nets')
    assert len(checkpoints.find_runs(root)) == 4
    found = checkpoints.find_runs(root, network='RNN', n_task=4)
    assert [os.path.basename(f)[-11:] for f in found] == ['nTask4_run0', 'nTask4_run1']
    assert checkpoints.find_runs(root, network='LSTM') == []
    net, encoder, config = checkpoints.load_network(found[1])
    assert config['n_task'] == 4 and not net.training
    u = torch.zeros(3, 7, 41)
    h, out = net(u)
    assert h.shape == (3, 7, 16) and out.shape == (3, 7, 4)


def test_same_seed_same_network_other_seed_differs(tmp_path):
    a, = train.train(tiny(tmp_path / 'a', n_batch=20))
    b, = train.train(tiny(tmp_path / 'b', n_batch=20))
    c, = train.train(tiny(tmp_path / 'c', n_batch=20, seed=1))
    assert torch.equal(weights(a)['rec_to_rec.weight'], weights(b)['rec_to_rec.weight'])
    assert not torch.equal(weights(a)['rec_to_rec.weight'], weights(c)['rec_to_rec.weight'])


def spy(monkeypatch):
    """Record what the training step sees: the task, the network inputs, the noise
    after the encoder, the objective and the logits."""
    seen = {}
    inputs, losses = train.networks.network_inputs, train.Objective.batch_loss

    def network_inputs(ob, env, encoder=None, enc_noise=None):
        u = inputs(ob, env, encoder, enc_noise)
        seen.update(env=env, u=u, enc_noise=enc_noise)
        return u

    def batch_loss(self, logits, *args):
        seen.update(objective=self, logits=logits)
        return losses(self, logits, *args)

    monkeypatch.setattr(train.networks, 'network_inputs', network_inputs)
    monkeypatch.setattr(train.Objective, 'batch_loss', batch_loss)
    return seen


T = 7  # steps of a SHORT trial


def sparse_init(config):
    """The fraction of zero recurrent weights of a freshly built network."""
    m = train.Member(config, 'x', config['n_task'], 0)
    net, _ = train.build_ensemble(config, [m], 41, 'cpu')
    return float((net.rec_to_rec.weight == 0).float().mean())


def test_each_network_draws_its_own_boundaries_unless_boundary_seed_fixes_them(tmp_path):
    high_dim = train.tasks.LinearClassificationHighDim
    for seed in (None, 0):
        config = tiny(tmp_path, task='LinearClassificationHighDim', n_dim=3, runs=2, n_batch=2, boundary_seed=seed,
                      out_dir=str(tmp_path / f'seed{seed}'))
        saved = [runs.load_config(folder) for folder in train.train(config)]
        read = [train.tasks.training_env(c).normals for c in saved]  # what an evaluation reads back
        trained = [train.Member(config, 'x', 4, run).envs[0].normals for run in (0, 1)]  # what training drew
        np.testing.assert_array_equal(read, trained)
        if seed is None:  # each its own, from its member seed
            assert not np.allclose(read[0], read[1]) and saved[0]['boundary_seed'] is None
            for c, normals in zip(saved, read):
                np.testing.assert_array_equal(normals, high_dim(n_task=4, n_dim=3, boundary_seed=c['member_seed']).normals)
        else:  # one set for every network
            for normals in read:
                np.testing.assert_array_equal(normals, high_dim(n_task=4, n_dim=3, boundary_seed=0).normals)
    # a run saved before boundary_seed existed was trained with 0
    path = os.path.join(os.path.dirname(glob.glob(str(tmp_path / 'seedNone' / '*' / 'config.json'))[0]), 'config.json')
    with open(path) as f:
        old = {k: v for k, v in json.load(f).items() if k != 'boundary_seed'}
    with open(path, 'w') as f:
        json.dump(old, f)
    assert train.tasks.boundary_seed(runs.load_config(os.path.dirname(path))) == 0
    with pytest.raises(ValueError, match="boundary_seed=None draws each network's boundaries from its own member_seed"):
        train.tasks.training_env(dict(config, boundary_seed=None))  # a configuration of no network


OPTIONS = {  # name: (overrides, what the training step must show)
    'multiply': (dict(task='MultiplyClassificationFull', n_task=8),
                 lambda s, c: type(s['env']).__name__ == 'MultiplyClassificationFull' and s['logits'].shape[-1] == 8),
    'bound': (dict(task='LinearClassificationBound', CE_loss=False, n_task=4),
              lambda s, c: s['objective'].kind == 'bound_tanh' and s['objective'].loss == 'mse'
              and s['u'].shape[-1] == 40),  # no fixation channel
    'denoise': (dict(task='DenoiseQuads', CE_loss=False),
                lambda s, c: s['objective'].kind == 'tanh' and s['logits'].shape[-1] == 2),
    'families': (dict(task=['LinearClassificationCentOut', 'TwoAlternativeForcedChoiceCent'], n_task=4),
                 lambda s, c: s['u'].shape[-1] == 43 and s['logits'].shape[-1] == 5
                 and set(s['u'][0, :, 0, -2:].sum(-1).tolist()) == {1.0}),  # one rule input per batch
    'mse-bal-trials': (dict(CE_loss=False, bal_err=True, trial_num=2, noise_enc=True),
                       lambda s, c: s['objective'].weighting == 'bal_err' and s['u'].shape[2] == 2 * T
                       and s['env'].noise_std == 0 and s['enc_noise'][..., 1:6, :].abs().sum() > 0
                       and s['enc_noise'][..., 0, :].abs().sum() == 0),  # noise only on stimulus steps
    'pen_end': (dict(pen_end=True, encode=False, corr=0.5),
                lambda s, c: s['objective'].weighting == 'pen_end' and s['u'].shape[-1] == 3
                and type(s['env']).__name__ == 'LinearClassificationCorr'),
    'autocorr': (dict(autocorr=0.5, dist='gauss', init='sparse'),
                 lambda s, c: type(s['env']).__name__ == 'LinearClassificationAutocorr'
                 and abs(sparse_init(c) - 0.85) < 0.01),
    'gumbel': (dict(network='LSTM', dist='gumbel', activ_enc='Quad'),
               lambda s, c: s['env'].dist == 'gumbel'),
    'boundary_seed': (dict(task='LinearClassificationHighDim', n_dim=3, boundary_seed=5),
                      lambda s, c: np.array_equal(s['env'].normals, train.tasks.LinearClassificationHighDim(
                          n_task=4, n_dim=3, boundary_seed=5).normals) and not np.array_equal(
                          s['env'].normals, train.tasks.LinearClassificationHighDim(n_task=4, n_dim=3).normals)),
}


@pytest.mark.parametrize('name', list(OPTIONS))
def test_every_task_and_option_trains_and_shows_its_effect(tmp_path, monkeypatch, name):
    over, shows = OPTIONS[name]
    seen = spy(monkeypatch)
    config = tiny(tmp_path, n_batch=10, **over)
    folder, = train.train(config)
    ckpt = checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))
    assert np.isfinite(ckpt['loss_hist'].numpy()).all()
    assert shows(seen, config)
    if name == 'gumbel':  # the LSTM and the quadratic encoder come back from disk
        net, encoder, _ = checkpoints.load_network(folder)
        assert isinstance(net, train.networks.LSTM) and isinstance(encoder[1], train.networks.Square)
    if name == 'boundary_seed':  # the saved config rebuilds the same boundaries (for decoding, analyses)
        assert np.array_equal(train.tasks.training_env(ckpt['config']).normals, seen['env'].normals)


@pytest.mark.parametrize('over, words', [
    (dict(network='GRU'), 'network'), (dict(n_task=0), 'n_task'), (dict(n_task=[2, 2]), 'n_task'),
    (dict(lr=0), 'lr'), (dict(pen_end=True, rand_pen=True), 'at most one'),
    (dict(task='LinearClasificationCentOut'), 'LinearClassificationCentOut'),
    (dict(task='DenoiseQuads'), 'CE_loss=False'), (dict(device='cuda:7'), 'device'),
    (dict(timing={'fixation': 100, 'stimulus': 150, 'delay': 0, 'decision': 100}), 'stimulus'),
    (dict(network='gpt-2', n_head=5), 'n_head'), (dict(n_dim=3), 'HighDim'),
    # more than any machine's memory: refused before anything is allocated, naming the culprit
    (dict(n_neu=10**6), 'n_neu=1000000 is too large'), (dict(runs=10**7), 'runs=10000000 is too large'),
    (dict(batch_sz=10**9), 'batch_sz=1000000000 is too large'), (dict(n_task=10**9), 'n_task=1000000000 is too large'),
    (dict(network='gpt-2', n_layer=10**5), 'n_layer=100000 is too large'),
    (dict(seed=10**19), 'seed=10000000000000000000'), (dict(boundary_seed=-1), 'boundary_seed'),
])
def test_impossible_hyperparameters_fail_before_training(tmp_path, over, words):
    with pytest.raises(ValueError, match=words):
        train.train(tiny(tmp_path, **over))
    assert not os.path.exists(tmp_path / 'nets')


def test_existing_runs_are_not_overwritten_and_resume_needs_a_checkpoint(tmp_path):
    train.train(tiny(tmp_path, n_batch=5))
    with pytest.raises(FileExistsError, match='resume'):
        train.train(tiny(tmp_path, n_batch=5))
    with pytest.raises(FileNotFoundError):
        train.train(tiny(tmp_path, n_batch=5, n_task=2, resume=True))


def test_non_finite_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    calls, step_losses = [], train.Objective.step_losses

    def blows_up(self, logits, gt):  # the loss turns NaN at batch 40
        calls.append(1)
        out = step_losses(self, logits, gt)
        return out * float('nan') if len(calls) > 40 else out

    monkeypatch.setattr(train.Objective, 'step_losses', blows_up)
    with pytest.raises(FloatingPointError, match='non-finite loss at batch 40'):
        train.train(tiny(tmp_path, n_batch=60))
    folder, = checkpoints.find_runs(str(tmp_path / 'nets'))
    ckpt = checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))
    assert ckpt['resume']['batch'] == 30  # the last good checkpoint stays
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, 'train.py', '--n_batch=4', '--n_neu=8', f'--out_dir={tmp_path}',
                          "--timing={'fixation': 100, 'stimulus': 300, 'delay': 0, 'decision': 100}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(checkpoints.find_runs(str(tmp_path))) == 1
    bad = subprocess.run([sys.executable, 'train.py', '--n_tsk=3'], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'n_task'" in bad.stderr
    bad = subprocess.run([sys.executable, 'train.py', '--network=GRU', f'--out_dir={tmp_path}/x'],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and 'network' in bad.stderr and not os.path.exists(f'{tmp_path}/x')


def signal_at(monkeypatch, sig, at):
    """Send `sig` to this process during the `at`-th training batch."""
    calls, step_losses = [], train.Objective.step_losses

    def send(self, logits, gt):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), sig)
        return step_losses(self, logits, gt)

    monkeypatch.setattr(train.Objective, 'step_losses', send)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['ctrl-c', 'sigterm'])
def test_interrupt_saves_every_network_and_resume_is_exact(tmp_path, monkeypatch, capsys, sig):
    full = train.train(tiny(tmp_path / 'full', n_task=[2, 4], n_sd_net=0.1))
    part = tiny(tmp_path / 'part', n_task=[2, 4], n_sd_net=0.1)
    signal_at(monkeypatch, sig, 37)
    with pytest.raises(KeyboardInterrupt):
        train.train(part)
    monkeypatch.undo()
    assert signal.getsignal(sig) is not None  # the previous handler is back
    for folder in checkpoints.find_runs(part['out_dir']):
        ckpt = checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))
        assert ckpt['resume']['batch'] == 37 and ckpt['resume']['wall_seconds'] > 0
        assert not os.path.exists(os.path.join(folder, 'metrics.json'))
    err = capsys.readouterr().err
    assert 'saved every network at batch 37' in err and '--resume=True' in err and 'python train.py' in err
    resumed = train.train(dict(part, resume=True))
    assert_same_training(full, resumed)


def test_resume_of_a_finished_run_changes_nothing_and_wall_time_accumulates(tmp_path, monkeypatch, capsys):
    config = tiny(tmp_path)
    signal_at(monkeypatch, signal.SIGINT, 20)
    with pytest.raises(KeyboardInterrupt):
        train.train(config)
    monkeypatch.undo()
    folder, = train.train(dict(config, resume=True))
    first = checkpoints.load_json(os.path.join(folder, 'metrics.json'))
    before = open(os.path.join(folder, 'metrics.json')).read()
    assert first['wall_seconds'] > 0 and first['batches_done'] == 60
    capsys.readouterr()
    assert train.train(dict(config, resume=True)) == [folder]
    assert 'is complete' in capsys.readouterr().out
    assert open(os.path.join(folder, 'metrics.json')).read() == before


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(train.Objective, 'step_losses', lambda self, logits, gt: logits * float('nan'))
    with pytest.raises(FloatingPointError, match='batch 0.*nothing was saved'):
        train.train(tiny(tmp_path, ckpt_every=1000))
    assert os.listdir(tmp_path) == []  # nor the out_dir it made


def test_a_diverging_run_under_the_paper_loss_ends_in_the_non_finite_loss_error(tmp_path):
    """lr=30 sends the weights to inf within a batch or two; BCELoss alone would raise
    'all elements of input should be between 0 and 1' on the NaN outputs."""
    config = tiny(tmp_path, n_batch=20, lr=30.0, ckpt_every=1000, out_dir=str(tmp_path / 'a' / 'b'),
                  timing=train.defaults()['timing'])
    assert config['loss'] == 'paper'
    with pytest.raises(FloatingPointError, match=r'non-finite loss at batch \d+ .*diverged.*nothing was saved'):
        train.train(config)
    assert os.listdir(tmp_path) == []  # no empty folders left behind


def test_nothing_is_allocated_in_proportion_to_n_batch(tmp_path, monkeypatch):
    """--n_batch=1e12 once grew to 24 GB (a list of every checkpoint batch); here 2e6
    batches with a checkpoint each would hold 2e6 Python ints (~100 MB) before the first."""
    signal_at(monkeypatch, signal.SIGINT, 3)
    tracemalloc.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            train.train(tiny(tmp_path, n_batch=2 * 10**6, ckpt_every=1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak
    folder, = checkpoints.find_runs(str(tmp_path / 'nets'))
    assert checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))['resume']['batch'] == 3


def test_memory_is_estimated_and_the_largest_hyperparameter_named():
    config = dict(train.defaults(), n_batch=100)
    need = train.memory_needed(config)
    assert 0 < need < 2**24  # the paper's network: a few MB
    assert train.memory_needed(dict(config, n_batch=10**12)) == need  # nothing grows with n_batch
    assert train.memory_needed(dict(config, runs=10)) == 10 * need
    train.check_memory(config, need, 'here')  # fits exactly
    for name, value in [('n_neu', 10**4), ('runs', 1000), ('batch_sz', 10**5), ('n_task', 10**5)]:
        with pytest.raises(ValueError, match=f'{name}=.* is too large: .* GiB .*here has'):
            train.check_memory(dict(config, **{name: value}), 2 * need, 'here')
    with pytest.raises(ValueError, match='lower runs, n_task or n_neu'):  # the defaults themselves
        train.check_memory(config, need // 2, 'here')


def long_path(root, total):
    """A path of `total` bytes under root, in names of at most 200."""
    path = root
    while len(path) < total:
        path = os.path.join(path, 'x' * min(200, total - len(path) - 1))
    return path


@pytest.mark.parametrize('out_dir', [lambda root: long_path(root, 5000),
                                     lambda root: os.path.join(root, 'a', 'y' * 300),
                                     lambda root: long_path(root, 4096 - 20)],
                         ids=['nested', 'one-long-name', 'run-folder-too-long'])
def test_a_too_long_out_dir_is_refused_before_any_folder_is_made(tmp_path, out_dir):
    """Names over 255 bytes, or paths whose run folders pass 4096 bytes: 'File name too
    long' half-way through making the folders left them all behind."""
    with pytest.raises(ValueError, match='out_dir=.* is too long for the file system') as error:
        train.train(tiny(tmp_path, out_dir=out_dir(str(tmp_path))))
    assert len(str(error.value)) < 250  # one readable line, however long the path
    assert os.listdir(tmp_path) == []


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path):
    config = tiny(tmp_path, n_batch=5)
    name = runs.run_name(config, dict(train.defaults(), n_batch=100_000), 4, 0)
    lock = runs.RunLock(os.path.join(config['out_dir'], name))
    try:
        with pytest.raises(FileExistsError, match=f'being trained by pid {os.getpid()}'):
            train.train(config)
    finally:
        lock.release()
    folder, = train.train(config)
    assert os.path.basename(folder) == name and not os.path.exists(os.path.join(folder, '.lock'))


def test_ctrl_c_on_the_command_line_exits_130_with_the_resume_command(tmp_path):
    proc = subprocess.Popen([sys.executable, 'train.py', '--n_batch=100000', '--n_neu=8', f'--out_dir={tmp_path}',
                             "--timing={'fixation': 100, 'stimulus': 300, 'delay': 0, 'decision': 100}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not glob.glob(str(tmp_path / '*' / '.lock')):
        time.sleep(0.2)
    time.sleep(3)  # some batches
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert 'Continue with' in err and '--resume=True' in err and 'Traceback' not in err
    folder, = checkpoints.find_runs(str(tmp_path))
    assert checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))['resume']['batch'] > 0


def test_drawing_data_in_parallel_changes_nothing(tmp_path):
    serial = train.train(tiny(tmp_path / 'a', n_task=[2, 4], runs=2, n_batch=40))
    parallel = train.train(tiny(tmp_path / 'b', n_task=[2, 4], runs=2, n_batch=40, data_threads=3))
    for a, b in zip(serial, parallel):
        for k, v in weights(a).items():
            assert torch.equal(weights(b)[k], v)


def test_networks_checkpointed_at_different_batches_resume_in_one_call(tmp_path, monkeypatch):
    full = train.train(tiny(tmp_path / 'full', n_task=[2, 4]))
    part = tiny(tmp_path / 'part', n_task=[2, 4])
    for k, at in ((2, 40), (4, 25)):  # checkpointed at batches 40 and 25
        signal_at(monkeypatch, signal.SIGINT, at)
        with pytest.raises(KeyboardInterrupt):
            train.train(dict(part, n_task=k))
        monkeypatch.undo()
    resumed = train.train(dict(part, resume=True))  # one call, one ensemble per batch
    for a, b in zip(full, resumed):
        torch.testing.assert_close(weights(a)['rec_to_rec.weight'], weights(b)['rec_to_rec.weight'],
                                   rtol=1e-5, atol=1e-6)


def test_lists_of_data_settings_train_one_network_each_as_one_ensemble(tmp_path):
    together = train.train(tiny(tmp_path / 'a', n_task=2, n_sd_in=[1.0, 3.0], corr=[0.0, 0.5], n_batch=30))
    names = sorted(os.path.basename(f).split('_nTask')[0] for f in together)
    assert len(together) == 4 and sum('corr-0.5' in n for n in names) == 2 and sum('n_sd_in-1.0' in n for n in names) == 2
    alone, = train.train(tiny(tmp_path / 'b', n_task=2, n_sd_in=3.0, corr=0.5, n_batch=30))
    member, = [f for f in together if os.path.basename(f) == os.path.basename(alone)]
    config = checkpoints.load_config(member)
    assert config['n_sd_in'] == 3.0 and config['corr'] == 0.5
    for k, v in weights(alone).items():
        torch.testing.assert_close(weights(member)[k], v, rtol=1e-4, atol=1e-5)


def test_folder_names_from_the_command_line_name_the_overrides(tmp_path):
    out = subprocess.run([sys.executable, 'train.py', '--n_batch=3', '--n_neu=8', f'--out_dir={tmp_path}',
                          '--network=LSTM', "--timing={'fixation': 100, 'stimulus': 300, 'delay': 0, 'decision': 100}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.listdir(tmp_path) == ['n_neu-8_network-LSTM_timing-100-300-0-100_n_batch-3_nTask24_run0']


def test_an_untrained_run_is_the_initialisation_of_the_trained_run(tmp_path):
    """n_batch=0 saves each network as initialised, a finished run; the same network
    trained for one batch differs from it by at most Adam's first step (lr per weight)."""
    lr = 1e-3
    untrained = train.train(tiny(tmp_path / 'u', n_task=[2, 4], runs=2, n_batch=0, lr=lr))
    trained = train.train(tiny(tmp_path / 't', n_task=[2, 4], runs=2, n_batch=1, lr=lr))
    assert [os.path.basename(f).replace('n_batch-0', 'n_batch-1') for f in untrained] == \
        [os.path.basename(f) for f in trained]
    for u, t in zip(untrained, trained):
        assert sorted(os.listdir(u)) == ['config.json', 'metrics.json', 'net.pth']
        assert json.load(open(os.path.join(u, 'config.json')))['n_batch'] == 0
        assert json.load(open(os.path.join(u, 'metrics.json')))['batches_done'] == 0
        assert checkpoints.run_state(u)[:2] == (runs.FINISHED, 0)
        cu, ct = (checkpoints.load_checkpoint(os.path.join(f, 'net.pth')) for f in (u, t))
        assert len(cu['loss_hist']) == 0 and cu['resume']['batch'] == 0
        for k, v in cu['encoder'].items():  # the frozen encoder: identical
            torch.testing.assert_close(ct['encoder'][k], v, rtol=0, atol=0)
        moved = [(ct['state_dict'][k] - v).abs().max().item() for k, v in cu['state_dict'].items()]
        assert max(moved) <= lr * (1 + 1e-4) and max(moved) > lr / 2  # one Adam step from this init
    # and the members are different networks: init differs by far more than a step
    w = [weights(f)['rec_to_rec.weight'] for f in untrained]
    assert (w[0] - w[1]).abs().max() > 100 * lr
