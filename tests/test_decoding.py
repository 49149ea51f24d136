"""decoding.py: held-out splits, the correct and the paper's test sets, trial pools."""
import numpy as np
import pytest
import torch

import decoding
import metrics
import results
import tasks
import train


def test_splits_hold_out_each_quadrant_or_orthant():
    assert decoding.splits(2, True) == [([2, 3, 4], [1]), ([1, 3, 4], [2]), ([1, 2, 4], [3]),
                                          ([1, 2, 3], [4])]
    assert all(train == [1, 2, 3, 4] for train, _ in decoding.splits(2, False))
    every_other = decoding.splits(3, True, split=2)
    assert every_other == [([2, 4, 6, 8], [1, 3, 5, 7]), ([1, 3, 5, 7], [2, 4, 6, 8])]
    # split_var on D = 3: orthant k is the k-th sign pattern of product([-, +], repeat=3)
    per_var = decoding.splits(3, True, split_var=True)
    assert per_var[0] == ([1, 2, 3, 4], [5, 6, 7, 8])  # x1 > 0 held out
    assert per_var[2] == ([1, 3, 5, 7], [2, 4, 6, 8])  # x3 > 0 held out


def test_split_var_holds_out_half_planes_at_d2_too():
    """split_var is one scheme at every D: at D = 2 the half-planes x1 > 0 (quadrants 1, 4)
    and x2 > 0 (quadrants 1, 2), tested on themselves under either protocol, so a D
    sweep's D = 2 point is the same kind of test as the others."""
    pairs = decoding.splits(2, True, split_var=True)
    assert pairs == [([2, 3], [1, 4]), ([3, 4], [1, 2])]
    config = train.defaults()
    hp = {'protocol': 'paper', 'split': None, 'split_var': True}
    for _, test in pairs:
        assert decoding.test_orthants(config, test, hp) == test
    x = tasks.decoding_env(config, [1, 4]).sample(np.random.default_rng(0), 2000)['stim']
    assert np.all(x[:, 0] > 0) and 0.4 < np.mean(x[:, 1] > 0) < 0.6


def test_paper_protocol_reproduces_the_release_test_sets():
    """'paper': held-out quadrants 2 and 4 are tested on an even mix of quadrants 1 and
    3 (coordinates of equal sign), 1 and 3 on themselves; 'correct' on the held-out one."""
    config = train.defaults()
    rng = np.random.default_rng(0)
    hp = {'protocol': 'paper', 'split': None, 'split_var': False}
    for q in (1, 2, 3, 4):
        env = tasks.decoding_env(config, decoding.test_orthants(config, [q], hp))
        x = env.sample(rng, 4000)['stim']
        if q in (1, 3):
            assert np.all(np.sign(x) == tasks.QUAD_SIGNS[q - 1])
        else:
            assert np.all(np.sign(x[:, 0]) == np.sign(x[:, 1]))
            assert abs(np.mean(x[:, 0] > 0) - 0.5) < 0.03  # an even mix of Q1 and Q3
        correct = tasks.decoding_env(config, decoding.test_orthants(config, [q], dict(hp, protocol='correct')))
        assert np.all(np.sign(correct.sample(rng, 1000)['stim']) == tasks.QUAD_SIGNS[q - 1])


def test_paper_protocol_in_higher_dimensions():
    """D > 2 without split: each held-out orthant is tested on the all-positive and
    all-negative orthants in proportion to its signs; with split or split_var the
    held-out orthants themselves (the release passed lists there)."""
    config = dict(train.defaults(), task='LinearClassificationHighDim', n_dim=4)
    rng = np.random.default_rng(1)
    hp = {'protocol': 'paper', 'split': None, 'split_var': False}
    orthant = 0b0111 + 1  # signs (-, +, +, +): three of four entries positive
    env = tasks.decoding_env(config, decoding.test_orthants(config, [orthant], hp))
    x = env.sample(rng, 8000)['stim']
    same = np.all(np.sign(x) == np.sign(x[:, :1]), axis=1)
    assert same.all() and abs(np.mean(x[:, 0] > 0) - 0.75) < 0.02
    for over in ({'split': 2}, {'split_var': True}):
        for _, test in decoding.splits(4, True, **over):
            assert decoding.test_orthants(config, test, dict(hp, **over)) == test


class SampleMean(torch.nn.Module):
    """A perfect network: its state is the running sample mean of the two stimulus
    channels (the Bayes-optimal estimate, SPEC §7), a disentangled linear code."""

    def __init__(self, warp=False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))  # a parameter, for the device lookup
        self.warp = warp

    def forward(self, u, noise=None):
        h = torch.cumsum(u[..., 1:3], dim=-2) / 20
        if self.warp:  # a code with an extra unit active in quadrant 2 (x1 < 0 < x2) only
            h = torch.cat([h, torch.relu(-h[..., :1]) * torch.relu(h[..., 1:]) * 8], -1)
        return h, h


HP = dict(out_of_distribution=True, split=None, split_var=False, protocol='correct', timing=None,
          n_fit=2, batch_sz=16, n_test=40, decoder='lstsq', lr=3e-3, seed=0, n_abstraction=500)


def test_a_perfect_network_reaches_the_ceiling_under_both_protocols():
    config = dict(train.defaults(), encode=False)
    for protocol in ('correct', 'paper'):
        out = decoding.evaluate_network(SampleMean(), None, config, dict(HP, protocol=protocol), 300, 0)
        r2 = out['r2'][protocol]
        assert r2.shape == (4, 2) and out['W'].shape == (4, 2, 2, 2)
        assert abs(r2.mean() - 0.975) < 0.01  # SPEC §7: the ceiling for σ = 0.2, T = 20
        assert np.all(out['ccgp'] > 0.95) and np.all(out['ps'] > 0.95)


def test_the_abstraction_metrics_use_n_abstraction_trials_per_quadrant(monkeypatch):
    config = dict(train.defaults(), encode=False)
    seen, measure = [], metrics.abstraction_metrics
    monkeypatch.setattr(metrics, 'abstraction_metrics', lambda H, X, **k: seen.append((X, k)) or measure(H, X, **k))
    # 300 batches: pools of 1600 trials per quadrant; 10 batches: 54, fewer than asked for, so the pools grow
    for batches, n in ((300, 150), (10, 120)):
        seen.clear()
        out = decoding.evaluate_network(SampleMean(), None, config, dict(HP, n_abstraction=n), batches, 0)
        (X, options), = [(X, k) for X, k in seen if 'n_boot' in k]  # the metric itself (the nulls have none)
        quadrant = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
        assert np.bincount(quadrant).tolist() == [n] * 4 and options['n_boot'] == metrics.ABSTRACTION_BOOT
        assert all(len(X) == 4 * n for X, _ in seen)  # the disentanglement metrics and nulls: the same trials
        assert out['ccgp_se'].shape == out['ps_se'].shape == (2,) and np.all(out['ccgp_se'] >= 0)


def test_a_quadrant_dependent_code_generalizes_worse_only_under_the_correct_protocol():
    """Held out, quadrant 2 (where the warped code has its extra unit) is decoded
    badly; the paper's test set for quadrant 2 is an even mix of quadrants 1 and 3,
    which the decoder was trained on, and hides the loss."""
    config = dict(train.defaults(), encode=False)
    correct = decoding.evaluate_network(SampleMean(warp=True), None, config, HP, 300, 0)['r2']['correct']
    paper = decoding.evaluate_network(SampleMean(warp=True), None, config, dict(HP, protocol='paper'), 300, 0)['r2']['paper']
    ideal = dict(HP, out_of_distribution=False)
    iid = decoding.evaluate_network(SampleMean(warp=True), None, config, ideal, 300, 0)['r2']['correct']
    both = decoding.evaluate_network(SampleMean(warp=True), None, config, dict(HP, protocol='both'), 300, 0)['r2']
    np.testing.assert_array_equal(both['correct'], correct)  # one pass, the same decoders and test sets
    np.testing.assert_array_equal(both['paper'], paper)
    assert iid.mean() > correct.mean() + 0.05
    assert correct[1].mean() < 0.8 and paper[1].mean() > 0.95  # held-out quadrant 2
    np.testing.assert_allclose(paper[[0, 2]], correct[[0, 2]], atol=0.01)  # quadrants 1 and 3: the same test


def test_training_sets_take_equal_fresh_shares_of_each_training_orthant():
    pools = {k: (torch.full((2, 10, 3), float(k)) + torch.arange(10.)[None, :, None] / 100
                 + torch.arange(2.)[:, None, None] * 10, torch.zeros(2, 10, 2)) for k in (1, 2, 3, 4)}
    pairs = decoding.splits(2, True)
    H, X = decoding.training_sets(pools, pairs, [(0, 0), (0, 1)], 9, np.random.default_rng(0))
    assert H.shape == (2, 9, 3) and X.shape == (2, 9, 2)
    orthant = H[..., 0].floor() % 10
    assert sorted(orthant[0].tolist()) == [2.0] * 3 + [3.0] * 3 + [4.0] * 3  # split 0 holds out quadrant 1
    assert torch.all(H[0, :, 0] < 10) and torch.all(H[1, :, 0] >= 10)  # fit 0 and fit 1 use their own slices


# ---------------------------------------------------------------------------------
# Adam beside least squares, Adam's convergence, the states' conditioning

def planted(K=2, n=48000, N=8, seed=0):
    """Training sets with a planted linear map and a little noise: H (K, n, N), X (K, n, 2)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(K, n, 2, generator=g) - 0.5
    H = X @ torch.randn(2, N, generator=g) + 0.05 * torch.randn(K, n, N, generator=g)
    return H, X


def adam_verdict(H, X, **fit):
    W, b, hist = metrics.fit_adam(H, X, **fit)
    Wl, bl = metrics.fit_lstsq(H, X)
    gap = (decoding.training_r2(H, X, Wl, bl) - decoding.training_r2(H, X, W, b)).numpy()
    history = results.history(hist.numpy())
    return decoding.converged(history, gap), metrics.still_falling(history), gap


def test_convergence_check_flags_a_decoder_short_of_batches_or_lr_and_not_a_converged_one():
    H, X = planted()
    ok, falling, gap = adam_verdict(H, X, lr=1e-2, batch_size=16, n_batch=3000)
    assert ok.all() and not falling.any() and np.all(gap < 0.01)
    ok, falling, gap = adam_verdict(H, X, lr=1e-3, batch_size=16, n_batch=200)  # too few batches
    assert not ok.any() and np.all(gap > 0.15)
    ok, falling, gap = adam_verdict(H, X, lr=3e-5, batch_size=16, n_batch=3000)  # too small a step
    assert not ok.any() and falling.all() and np.all(gap > 0.5)
    # a decoder that stalled far from least squares is unconverged although its loss is flat
    flat = np.full((1, 100), 0.05) + np.random.default_rng(0).normal(0, 1e-3, (1, 100))
    assert not metrics.still_falling(flat).any()
    assert not decoding.converged(flat, np.array([0.3])).any() and decoding.converged(flat, np.array([0.01])).all()
    assert decoding.converged(flat, np.array([np.nan])).all()  # gap unknown: the history decides


def test_loss_fall_measures_the_last_fifth_against_the_one_before():
    h = np.r_[np.ones(60), np.full(20, 1.25), np.ones(20)]
    rel, z = metrics.loss_fall(h)
    assert rel == 0.25 and z == np.inf  # noise-free and falling
    assert metrics.loss_fall(np.ones(100))[1] == 0
    with pytest.raises(ValueError, match='needs >= 4 points'):
        metrics.loss_fall(np.ones(3))


def test_decoder_both_fits_adam_and_lstsq_on_the_same_trials():
    config = dict(train.defaults(), encode=False)
    hp = dict(HP, protocol='both')
    runs = {d: decoding.evaluate_network(SampleMean(), None, config, dict(hp, decoder=d), 300, 0)
            for d in ('adam', 'lstsq', 'both')}
    both = runs['both']
    assert list(both['fits']) == ['lstsq', 'adam'] == decoding.decoders(dict(hp, decoder='both'))
    for d in ('adam', 'lstsq'):
        for key in ('r2', 'mse'):
            for protocol in ('correct', 'paper'):
                np.testing.assert_array_equal(both['fits'][d][key][protocol], runs[d][key][protocol])
        np.testing.assert_array_equal(both['fits'][d]['W'], runs[d]['W'])
    np.testing.assert_array_equal(both['r2']['correct'], runs['adam']['r2']['correct'])  # Adam at the top
    for key in ('adam_gap', 'adam_fall', 'converged'):
        np.testing.assert_array_equal(both[key], runs['adam'][key])
        assert both[key].shape == (4, 2) and key not in runs['lstsq']
    # least squares is the optimum of the training fit: Adam's gap to it is never negative
    assert np.all(both['adam_gap'] > -1e-9)


def test_count_unconverged_on_a_synthetic_results_file(tmp_path):
    rng = np.random.default_rng(0)
    train_hist = 0.01 + rng.normal(0, 1e-4, (2, 3, 4, 5, 100))  # converged: flat and noisy
    train_hist[0, 1, 2, 3] = np.linspace(0.05, 0.01, 100)  # still falling: one fit of one network
    train_hist[1, 0, :, :2] = np.linspace(0.08, 0.02, 100)  # eight fits of another
    train_hist[1, 2] = np.nan  # a network not evaluated
    results.save_results(str(tmp_path / 'X.npz'), train=train_hist.astype(np.float32), r_sq=np.zeros((2, 3, 4, 5)),
                         n_tasks=np.array([2, 24]))
    counts = decoding.count_unconverged(results.load_results(str(tmp_path), 'X'))
    assert counts == {'fits': 9, 'of': 100, 'networks': 2, 'of_networks': 5, 'per_n_task': [1, 8]}
    results.save_results(str(tmp_path / 'L.npz'), train=np.zeros((2, 3, 4, 5, 0)), r_sq=np.zeros((2, 3, 4, 5)),
                         n_tasks=np.array([2, 24]))  # an lstsq file
    assert decoding.count_unconverged(results.load_results(str(tmp_path), 'L'))['of'] == 0


def test_state_conditioning_of_states_with_known_covariance():
    rng = np.random.default_rng(0)
    H = rng.normal(size=(20000, 3)) * [10, 1, 0.1] + [30, 0, 0]
    c = decoding.state_conditioning(torch.as_tensor(H))
    assert abs(c['log10_cond'] - 4) < 0.05 and c['rank'] == 3
    assert abs(c['participation'] - 101.01 ** 2 / 10001.0001) < 0.01
    assert abs(c['offset'] - 30 / np.sqrt(101.01)) < 0.1 and 30 < c['mean_norm'] < np.sqrt(900 + 101.01)  # E‖h‖ ≤ √E‖h‖²
    silent = decoding.state_conditioning(np.c_[H, np.zeros(len(H))])  # a silent unit adds no direction
    assert silent['rank'] == 3 and abs(silent['log10_cond'] - 4) < 0.05
    with pytest.raises(ValueError, match=r'\(n >= 2, N\)'):
        decoding.state_conditioning(np.zeros(5))
