"""analyze.py, analyze_transformer.py and sparsity.py end to end on tiny trained networks."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import analyze
import analyze_transformer
import checkpoints
import sparsity
import tasks
import train
import representations as rep
from configurator import hyperparameters

pytestmark = pytest.mark.slow  # every test here trains networks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100}
FAST_FP = dict(n_trials=60, n_init=64, max_iters=500, tol_q=1e-6)  # few, exact fixed-point steps: enough for the RNN


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    """Tiny trained networks: RNNs with 2 and 4 tasks, an LSTM and a gpt-2 (4 tasks)."""
    root = tmp_path_factory.mktemp('nets')
    for over in (dict(network='RNN', n_task=[2, 4]), dict(network='LSTM', n_task=4),
                 dict(network='gpt-2', n_head=4, n_task=4)):
        config = train.defaults()
        config.update(n_neu=16, timing=SHORT, n_batch=300, lr=1e-2, device='cpu', ckpt_every=1000,
                      out_dir=str(root), **over)
        train.train(config)
    return str(root)


def hp_of(module, **over):
    """A script's hyperparameters (its defaults) with overrides."""
    return {**hyperparameters(vars(module)), **over}


@pytest.fixture(scope='module')
def rnn_folder(nets, tmp_path_factory):
    """analyze.py run from the command line on the 4-task RNN; its output folder."""
    out = tmp_path_factory.mktemp('analysis')
    path = checkpoints.find_runs(nets, network='RNN', n_task=4)[0]
    args = [f'--path={path}', f'--out_dir={out}', '--device=cpu'] + [f'--{k}={v}' for k, v in FAST_FP.items()]
    proc = subprocess.run([sys.executable, 'analyze.py', *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return os.path.join(out, os.path.basename(path))


def load(folder, name):
    with np.load(os.path.join(folder, name), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def blank_map(path):
    """The one-step map under encoder(0) with fixation 1, built by hand."""
    net, encoder, _ = checkpoints.load_network(path, noise_free=True)
    with torch.no_grad():
        u = torch.cat([torch.ones(1, 1), encoder(torch.zeros(1, 1, 2))[0]], dim=1)
    return net, lambda h: net.dynamics(u.double(), h)


# ---------------------------------------------------------------------------------
# building blocks

@pytest.mark.parametrize('name, kwargs', [('DenoiseQuads', dict(rule_vec=[0.0, 1.0])),
                                          ('LinearClassificationBound', dict())])
def test_noise_free_observations_match_the_task_layout(name, kwargs):
    env = tasks.make_env(name, timing=SHORT, sigma=0, **kwargs)
    trials = env.sample(np.random.default_rng(0), 5)
    ob = env.observations(trials['stim'])
    np.testing.assert_array_equal(ob, trials['ob'])  # sigma = 0: the task's own observations
    a, b = env.stim_steps
    np.testing.assert_array_equal(ob[:, a:b][..., env.stim_channels],
                                  np.repeat(trials['stim'][:, None].astype(np.float32), b - a, 1))
    assert not ob[:, b:][..., env.stim_channels].any() and not ob[:, :a][..., env.stim_channels].any()
    with pytest.raises(ValueError, match='x must have shape'):
        env.observations(np.zeros((3, 3)))


def test_grid_rate_maps_and_correlations():
    x = rep.stimulus_grid(4)
    assert x.shape == (16, 2) and x.min() == -0.5 and x.max() == 0.5
    states = np.stack([x[:, 0], -x[:, 1], np.zeros(16), x[:, 0] + x[:, 1]], 1)
    maps = rep.rate_maps(states, 4)
    np.testing.assert_array_equal(maps[1, 3], states[1 * 4 + 3])
    assert maps[1, 3, 0] == 0.5 and maps[1, 3, 1] == -x[4, 1]  # [x2 index, x1 index]
    corr = rep.unit_correlations(states, x)
    np.testing.assert_allclose(corr[:2], [[1, 0], [0, -1]], atol=1e-12)
    assert np.isnan(corr[2]).all()  # a constant unit has no correlation
    np.testing.assert_allclose(corr[3], [np.corrcoef(states[:, 3], x[:, d])[0, 1] for d in (0, 1)])
    np.testing.assert_array_equal(rep.quadrants(np.array([[.1, .2], [-.1, .2], [-.1, -.2], [.1, -.2]])),
                                  [1, 2, 3, 4])


def test_rotating_html_embeds_the_data():
    traj = np.arange(24.0).reshape(2, 4, 3) / 7
    page = analyze.rotating_html(traj, ['#ff0000', '#00ff00'], np.ones((1, 3)), title='a</script>')
    blob = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    data = json.loads(blob)
    np.testing.assert_allclose(data['trajectories'], traj, atol=1e-5)
    assert data['colors'] == ['#ff0000', '#00ff00'] and data['points'] == [[1, 1, 1]]
    assert '<canvas' in page and page.count('</script>') == 2  # the title cannot close a script


# ---------------------------------------------------------------------------------
# analyze.py

def test_analyze_rnn_writes_every_file(rnn_folder):
    for stem in ('pca', 'eigenvalues', 'amplification', 'trajectories', 'rate_maps', 'correlations', 'encoder'):
        assert os.path.getsize(os.path.join(rnn_folder, stem + '.png')) > 0
        assert os.path.getsize(os.path.join(rnn_folder, stem + '.pdf')) > 0
    summary = checkpoints.load_json(os.path.join(rnn_folder, 'summary.json'))
    ratio = np.array(summary['pca_explained_variance_ratio'])
    assert len(ratio) == 10 and np.all(np.diff(ratio) <= 1e-12) and 0.5 < ratio.sum() <= 1 + 1e-9
    np.testing.assert_allclose(load(rnn_folder, 'pca.npz')['explained_variance_ratio'], ratio)
    for key in ('ccgp_x1', 'ccgp_x2'):
        assert 0 <= summary[key] <= 1
    for key in ('ps_x1', 'ps_x2'):
        assert -1 <= summary[key] <= 1
    units = summary['disentanglement']  # issue 21: the steady-state units scored as a code
    assert units['n_units'] == 16 and 0 <= units['dci_d'] <= 1 and 0 <= units['mig'] <= 1
    assert units['mig_null_lo'] <= units['mig_null_hi']
    for key in ('ccgp_x1', 'ccgp_x2', 'ps_x1', 'ps_x2'):  # each with its standard error and 95 % interval
        low, high = summary[key + '_ci']
        assert summary[key + '_se'] >= 0 and low <= summary[key] <= high
    assert summary['abstraction_trials'] == summary['hyperparameters']['n_abstraction'] == 500
    enc = load(rnn_folder, 'encoder.npz')
    assert enc['features'].shape == (21 * 21, 40) and enc['projection'].shape == (21 * 21, 3)
    assert 0 < enc['explained_variance_ratio'].sum() <= 1 + 1e-9


def test_analyze_rnn_fixed_points(rnn_folder):
    fp = load(rnn_folder, 'fixed_points.npz')
    jac = load(rnn_folder, 'jacobians.npz')['jacobians']
    summary = checkpoints.load_json(os.path.join(rnn_folder, 'summary.json'))
    P = len(fp['points'])
    assert P >= 1 and summary['n_fixed_points'] == P
    assert fp['points'].shape == (P, 16) and fp['eigvals'].shape == (P, 16) and jac.shape == (P, 16, 16)
    assert np.all(fp['q'] < 1e-6) and fp['amplification'].shape == (P, 2) and fp['n_near_zero'].shape == (P,)
    assert summary['n_near_zero'] == fp['n_near_zero'].tolist()
    # they are fixed points of the map under a blank stimulus with fixation on
    net, F = blank_map(summary['network'])
    h = torch.as_tensor(fp['points']).double()
    net.double()
    with torch.no_grad():
        assert torch.linalg.norm(F(h) - h, dim=1).max() < 2e-3
    assert np.all(np.diff(fp['eigvals'].real, axis=1) <= 0)  # descending real part
    eig = np.linalg.eigvals(jac)
    np.testing.assert_allclose(np.sort(eig.real, 1), np.sort(fp['eigvals'].real, 1), atol=1e-8)


def test_analyze_rnn_rate_maps_and_trajectories(rnn_folder, nets):
    rm = load(rnn_folder, 'rate_maps.npz')
    assert rm['rate_maps'].shape == (8, 8, 16) and rm['correlations'].shape == (16, 2)
    corr = rm['correlations'][np.isfinite(rm['correlations'])]
    assert corr.size and np.all(np.abs(corr) <= 1 + 1e-9)
    assert rm['rate_maps'].min() >= 0  # ReLU rates
    # entry [i2, i1] is the steady state of the noise-free stimulus (g[i1], g[i2])
    path = checkpoints.find_runs(nets, network='RNN', n_task=4)[0]
    net, encoder, config = checkpoints.load_network(path, noise_free=True)
    g = rm['grid']
    state = rep.steady_states(net, encoder, tasks.training_env(config), np.array([[g[6], g[1]]]))
    np.testing.assert_allclose(rm['rate_maps'][1, 6], state[0], rtol=1e-5, atol=1e-6)
    tr = load(rnn_folder, 'trajectories.npz')
    assert tr['trajectories'].shape == (40, 7, 3) and set(tr['quadrant']) <= {1, 2, 3, 4}
    np.testing.assert_array_equal(tr['quadrant'], rep.quadrants(tr['stim']))
    with open(os.path.join(rnn_folder, 'trajectories.html')) as f:
        page = f.read()
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', page, re.S).group(1))
    np.testing.assert_allclose(data['trajectories'], tr['trajectories'], atol=1e-5)
    assert len(data['points']) == len(tr['fixed_points'])


def test_analyze_lstm(nets, tmp_path, monkeypatch):
    hp = hp_of(analyze, runs_dir=nets, select={'network': 'LSTM'}, out_dir=str(tmp_path), device='cpu',
               n_abstraction=80, **{**FAST_FP, 'max_iters': 2000})  # the LSTM's slow cell state needs more steps
    seen, measure = [], analyze.metrics.abstraction_metrics
    monkeypatch.setattr(analyze.metrics, 'abstraction_metrics',
                        lambda H, X, **k: seen.append((X, k)) or measure(H, X, **k))
    summary = analyze.analyze(hp)
    (X, options), = [(X, k) for X, k in seen if 'n_boot' in k]  # CCGP / PS on n_abstraction trials per quadrant
    assert np.bincount(2 * (X[:, 0] > 0) + (X[:, 1] > 0)).tolist() == [80] * 4 and summary['abstraction_trials'] == 80
    fp = load(os.path.join(tmp_path, os.listdir(tmp_path)[0]), 'fixed_points.npz')
    P = summary['n_fixed_points']
    assert P >= 1 and fp['points'].shape == (P, 32) and fp['eigvals'].shape == (P, 32)  # state (h, c)
    assert np.all(fp['q'] < 1e-6)
    rm = load(os.path.join(tmp_path, os.listdir(tmp_path)[0]), 'rate_maps.npz')
    assert rm['rate_maps'].shape == (8, 8, 16) and np.abs(rm['rate_maps']).max() <= 1  # h = o·tanh(c)


def test_per_quadrant_draws_exactly_n_trials_in_each_quadrant():
    env = tasks.decoding_env(train.defaults())
    trials = analyze.per_quadrant(env, 300, np.random.default_rng(0))
    quadrant = 2 * (trials['stim'][:, 0] > 0) + (trials['stim'][:, 1] > 0)
    assert np.bincount(quadrant).tolist() == [300] * 4
    assert all(len(v) == 1200 for v in trials.values())  # every array of the trials, aligned


def test_bad_selections(nets, tmp_path):
    hp = hp_of(analyze, runs_dir=nets, out_dir=str(tmp_path), device='cpu')
    with pytest.raises(FileNotFoundError, match='no trained network'):
        analyze.analyze(dict(hp, select={'network': 'RNN', 'n_task': 24}))
    with pytest.raises(ValueError, match='index=5 is not allowed'):
        analyze.analyze(dict(hp, select={'network': 'RNN'}, index=5))
    with pytest.raises(ValueError, match='analyze_transformer.py'):
        analyze.analyze(dict(hp, select={'network': 'gpt-2'}))
    with pytest.raises(ValueError, match='analyze.py'):
        analyze_transformer.analyze_transformer(hp_of(analyze_transformer, runs_dir=nets, out_dir=str(tmp_path),
                                                      select={'network': 'LSTM'}))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        analyze.analyze(dict(hp, path=str(tmp_path / 'missing')))
    proc = subprocess.run([sys.executable, 'analyze.py', f'--runs_dir={nets}', "--select={'n_task': 7}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and 'error: no trained network' in proc.stderr


# ---------------------------------------------------------------------------------
# analyze_transformer.py and sparsity.py

def test_analyze_transformer(nets, tmp_path):
    hp = hp_of(analyze_transformer, runs_dir=nets, select={'network': 'gpt-2'}, out_dir=str(tmp_path), device='cpu')
    summary = analyze_transformer.analyze_transformer(hp)
    folder = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    res = load(folder, 'values_rate_maps.npz')
    assert res['rate_maps'].shape == (4, 8, 8, 4) and res['correlations'].shape == (4, 4, 2)
    assert summary['n_head'] == 4 and len(summary['mean_abs_correlation_x1_x2_per_head']) == 4
    components = summary['disentanglement']  # issue 21: the value components scored as a code
    assert components['n_units'] == 16 and 0 <= components['dci_d'] <= 1 and 0 <= components['mig'] <= 1
    for k in range(4):
        assert os.path.exists(os.path.join(folder, f'values_head{k}.png'))
    assert os.path.exists(os.path.join(folder, 'values_correlations.pdf'))
    # one block: the last stimulus token's values depend on that token alone
    net, encoder, _ = checkpoints.load_network(checkpoints.find_runs(nets, network='gpt-2')[0])
    g = res['grid']
    with torch.no_grad():
        x = torch.tensor([[[[g[2], g[5]]]]], dtype=torch.float32)  # (member, B, T, D)
        u = torch.cat([torch.ones(1, 1, 1), encoder(x)[0]], -1)
        v = net.head_values(u)[0, 0]  # (n_head, head_dim)
    np.testing.assert_allclose(res['rate_maps'][:, 5, 2], v.numpy(), rtol=1e-4, atol=1e-5)


def test_sparsity_sweep(nets, tmp_path, capsys):
    hp = hp_of(sparsity, runs_dir=nets, n_tasks=[2, 4], n_runs=2, label='tiny', results_dir=str(tmp_path),
               n_stim=200, device='cpu')
    stem = sparsity.sparsity_sweep(hp)
    res = load(tmp_path, 'sparsity_tiny.npz')
    assert set(res) == {'sparsity', 'confidence_intervals', 'active', 'n_tasks', 'batches'}
    np.testing.assert_array_equal(res['batches'][:, 0], [300, 300])  # batches each network trained
    for key in ('sparsity', 'confidence_intervals', 'active', 'batches'):
        assert res[key].shape == (2, 2) and np.isnan(res[key][:, 1]).all()  # one run per n_task exists
    s, ci, act = res['sparsity'][:, 0], res['confidence_intervals'][:, 0], res['active'][:, 0]
    assert np.all((0 <= s) & (s <= 200 / 199)) and np.all(ci > 0) and np.all((0 < act) & (act < 100))
    np.testing.assert_array_equal(res['n_tasks'], [2, 4])
    summary = checkpoints.load_json(stem + '.json')
    np.testing.assert_allclose(summary['sparsity_mean'], s)
    assert os.path.exists(stem + '.png') and os.path.exists(stem + '.pdf')
    # a partial sweep: the task counts found, with a note
    sparsity.sparsity_sweep(dict(hp, n_tasks=[2, 3], label='partial'))
    assert 'n_task in [3]' in capsys.readouterr().out
    np.testing.assert_array_equal(load(tmp_path, 'sparsity_partial.npz')['n_tasks'], [2])
    with pytest.raises(FileNotFoundError, match=r'n_task in \[3\]'):
        sparsity.sparsity_sweep(dict(hp, n_tasks=[3]))
