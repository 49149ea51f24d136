import numpy as np
import pytest
import torch
from scipy import stats

import metrics

# -----------------------------------------------------------------------------
# synthetic data

def uniform_latents(rng, shape):
    return rng.uniform(-0.5, 0.5, shape)


def quadrant_latents(rng, n):
    """DenoiseQuads latents: pick a quadrant uniformly, x = U(0,1)²·(±0.5, ±0.5)."""
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])  # quadrants 1..4
    quad = rng.integers(0, 4, n)
    return rng.uniform(0, 1, (n, 2)) * 0.5 * signs[quad], quad


def ood_r2(H, X, quad, held_out):
    """lstsq decoder fit on every quadrant but `held_out`, r² on `held_out`."""
    train, test = quad != held_out, quad == held_out
    W, b = metrics.fit_lstsq(H[None, train], X[None, train])
    return metrics.r_squared(metrics.predict(H[None, test], W, b), X[None, test])[0]


def id_r2(H, X, n_train):
    W, b = metrics.fit_lstsq(H[None, :n_train], X[None, :n_train])
    return metrics.r_squared(metrics.predict(H[None, n_train:], W, b), X[None, n_train:])[0]

# -----------------------------------------------------------------------------
# r²

def test_r_squared_exact_zero_and_offset():
    rng = np.random.default_rng(0)
    X = uniform_latents(rng, (3, 20000, 2))
    np.testing.assert_allclose(metrics.r_squared(X, X), 1.0)
    r2_zero = metrics.r_squared(np.zeros_like(X), X)
    assert r2_zero.shape == (3,)
    np.testing.assert_allclose(r2_zero, 0.0, atol=0.03)
    c = 0.1
    np.testing.assert_allclose(metrics.r_squared(X + c, X), 1 - 12 * c ** 2, rtol=1e-12)
    np.testing.assert_allclose(metrics.r_squared(X + c, X, var=0.5), 1 - c ** 2 / 0.5, rtol=1e-12)


def test_r_squared_torch_in_torch_out():
    X = torch.rand(2, 5, 100, 2) - 0.5
    out = metrics.r_squared(X + 0.1, X)
    assert torch.is_tensor(out) and out.shape == (2, 5) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((2, 5), 0.88))


def test_r_squared_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        metrics.r_squared(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="var"):
        metrics.r_squared(np.zeros((4, 2)), np.zeros((4, 2)), var=0)

# -----------------------------------------------------------------------------
# decoder angles

def test_decoder_angles():
    W = np.zeros((2, 4, 3))
    W[0, :, 0] = [1, 0, 0, 0]
    W[0, :, 1] = [0, 2, 0, 0]             # orthogonal to column 0
    W[0, :, 2] = [3, 0, 0, 0]             # parallel to column 0
    W[1, :, 0] = [1, 1, 0, 0]
    W[1, :, 1] = [1, 0, 0, 0]             # 45° from column 0
    W[1, :, 2] = [-1, -1, 0, 0]           # opposite to column 0
    angles = metrics.decoder_angles(W)
    assert angles.shape == (2, 3, 3)
    assert np.isnan(angles[:, np.tril_indices(3)[0], np.tril_indices(3)[1]]).all()
    np.testing.assert_allclose(angles[0][np.triu_indices(3, 1)], [90, 0, 90], atol=1e-10)
    np.testing.assert_allclose(angles[1][np.triu_indices(3, 1)], [45, 180, 135], atol=1e-10)


def test_decoder_angles_torch_and_nearly_parallel():
    W = torch.randn(5, 64, 2, dtype=torch.float64)
    W[..., 1] = W[..., 0] * 2.5
    angles = metrics.decoder_angles(W)
    assert torch.is_tensor(angles) and angles.shape == (5, 2, 2)
    torch.testing.assert_close(angles[:, 0, 1], torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.isnan(angles[:, 1, 0]).all() and torch.isnan(angles[:, 0, 0]).all()

# -----------------------------------------------------------------------------
# least squares

def test_lstsq_recovers_planted_map_batched():
    rng = np.random.default_rng(1)
    K, n, N, D = 3, 200, 10, 2
    H = rng.normal(size=(K, n, N)) + 3.0  # offset: the bias has to be solved for
    W_true, b_true = rng.normal(size=(K, N, D)), rng.normal(size=(K, D))
    X = H @ W_true + b_true[:, None]
    W, b = metrics.fit_lstsq(H, X)
    assert W.shape == (K, N, D) and b.shape == (K, D)
    np.testing.assert_allclose(W, W_true, atol=1e-7)
    np.testing.assert_allclose(b, b_true, atol=1e-7)
    for k in range(K):  # agrees with numpy's lstsq on [H, 1]
        coef = np.linalg.lstsq(np.c_[H[k], np.ones(n)], X[k], rcond=None)[0]
        np.testing.assert_allclose(W[k], coef[:-1], atol=1e-7)
        np.testing.assert_allclose(b[k], coef[-1], atol=1e-7)


def test_lstsq_noisy_agrees_with_numpy_and_torch_float32():
    rng = np.random.default_rng(2)
    H = rng.normal(size=(2, 300, 8))
    X = rng.normal(size=(2, 300, 2))
    W, b = metrics.fit_lstsq(torch.tensor(H, dtype=torch.float32), torch.tensor(X, dtype=torch.float32))
    assert torch.is_tensor(W) and W.dtype == torch.float32
    coef = np.linalg.lstsq(np.c_[H[1], np.ones(300)], X[1], rcond=None)[0]
    np.testing.assert_allclose(W[1].numpy(), coef[:-1], atol=1e-5)
    np.testing.assert_allclose(b[1].numpy(), coef[-1], atol=1e-5)


def test_lstsq_robust_to_silent_and_duplicate_units():
    rng = np.random.default_rng(3)
    n, N = 200, 6
    H = np.maximum(rng.normal(size=(1, n, N)), 0)
    H[..., 2] = 0.0            # silent ReLU unit
    H[..., 4] = H[..., 3]      # duplicate unit: rank-deficient as well
    X = H @ rng.normal(size=(1, N, 2)) + 0.1 * rng.normal(size=(1, n, 2))
    W, b = metrics.fit_lstsq(H, X)
    assert np.isfinite(W).all() and np.isfinite(b).all()
    np.testing.assert_allclose(W[0, 2], 0.0, atol=1e-12)
    A = np.c_[H[0], np.ones(n)]
    coef = np.linalg.lstsq(A, X[0], rcond=None)[0]
    np.testing.assert_allclose(metrics.predict(H, W, b)[0], A @ coef, atol=1e-6)
    np.testing.assert_allclose(W[0, 3], W[0, 4], atol=1e-12)  # min-norm splits the weight evenly
    W0, b0 = metrics.fit_lstsq(np.zeros((1, n, N)), X)  # everything silent: bias = mean
    np.testing.assert_array_equal(W0, 0.0)
    np.testing.assert_allclose(b0[0], X[0].mean(0))


def test_fit_and_predict_reject_bad_shapes():
    with pytest.raises(ValueError, match="H must be"):
        metrics.fit_lstsq(np.zeros((10, 4)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="need H"):
        metrics.predict(np.zeros((2, 10, 4)), np.zeros((2, 5, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="n_batch"):
        metrics.fit_adam(np.zeros((2, 100, 4)), np.zeros((2, 100, 2)), n_batch=10, batch_size=16)

# -----------------------------------------------------------------------------
# Adam decoder (the paper's protocol)

def test_adam_agrees_with_lstsq_and_loss_falls():
    rng = np.random.default_rng(4)
    K, N, n_batch, batch_size = 4, 32, 1000, 16
    n_train, n_test = n_batch * batch_size, 2000
    A = rng.normal(size=(K, 2, N))
    X = uniform_latents(rng, (K, n_train + n_test, 2))
    H = torch.tensor(X @ A + 0.3 * rng.normal(size=(K, n_train + n_test, N)), dtype=torch.float32)
    X = torch.tensor(X, dtype=torch.float32)
    W, b, loss = metrics.fit_adam(H[:, :n_train], X[:, :n_train], n_batch=n_batch, seed=0)
    assert W.shape == (K, N, 2) and b.shape == (K, 2) and loss.shape == (K, n_batch)
    W_ls, b_ls = metrics.fit_lstsq(H[:, :n_train], X[:, :n_train])
    r2_adam = metrics.r_squared(metrics.predict(H[:, n_train:], W, b), X[:, n_train:])
    r2_ls = metrics.r_squared(metrics.predict(H[:, n_train:], W_ls, b_ls), X[:, n_train:])
    assert (r2_ls > 0.9).all() and (r2_ls < 0.98).all()  # noisy enough for the test to mean something
    torch.testing.assert_close(r2_adam, r2_ls, atol=0.01, rtol=0)
    assert (r2_adam < r2_ls + 1e-3).all()  # lstsq is the optimum Adam approaches
    assert (loss[:, -200:].mean(1) < 0.2 * loss[:, :10].mean(1)).all()
    W2, _, _ = metrics.fit_adam(H[:, :n_train], X[:, :n_train], n_batch=5, seed=0)
    W3, _, _ = metrics.fit_adam(H[:, :n_train], X[:, :n_train], n_batch=5, seed=0)
    torch.testing.assert_close(W2, W3)  # seeded


def test_adam_decoders_are_independent():
    """Decoder k trained in a batch of K equals decoder k trained alone; init as nn.Linear."""
    rng = np.random.default_rng(5)
    H = rng.normal(size=(3, 200, 5))
    X = rng.normal(size=(3, 200, 2))
    W, b, loss = metrics.fit_adam(H, X, batch_size=10, n_batch=20, seed=1)
    # the first loss is that of the seeded U(-1/sqrt(N), 1/sqrt(N)) init
    gen = torch.Generator().manual_seed(1)
    W_init = ((2 * torch.rand(3, 5, 2, generator=gen, dtype=torch.float64) - 1) / np.sqrt(5)).numpy()
    b_init = ((2 * torch.rand(3, 2, generator=gen, dtype=torch.float64) - 1) / np.sqrt(5)).numpy()
    first = ((H[:, :10] @ W_init + b_init[:, None] - X[:, :10]) ** 2).mean((1, 2))
    np.testing.assert_allclose(loss[:, 0], first, rtol=1e-12)
    # changing the other decoders' data leaves decoder 0 untouched
    H2, X2 = H.copy(), X.copy()
    H2[1:], X2[1:] = rng.normal(size=(2, 200, 5)), rng.normal(size=(2, 200, 2))
    W_b, b_b, loss_b = metrics.fit_adam(H2, X2, batch_size=10, n_batch=20, seed=1)
    np.testing.assert_allclose(W_b[0], W[0], rtol=1e-12)
    np.testing.assert_allclose(b_b[0], b[0], rtol=1e-12)
    np.testing.assert_allclose(loss_b[0], loss[0], rtol=1e-12)
    assert not np.allclose(W_b[1], W[1])

# -----------------------------------------------------------------------------
# out-of-distribution generalization (SPEC §5, §7)

def test_disentangled_code_generalizes_entangled_code_does_not():
    rng = np.random.default_rng(6)
    n, N = 8000, 20
    X, quad = quadrant_latents(rng, n)
    # linear (disentangled) code
    H_lin = X @ rng.normal(size=(2, N)) + 0.05 * rng.normal(size=(n, N))
    # quadrant-gated code: each quadrant is embedded in its own subspace
    gated = np.zeros((n, 4 * 5))
    for q in range(4):
        m = quad == q
        gated[m, 5 * q:5 * q + 5] = X[m] @ rng.normal(size=(2, 5)) + rng.normal(size=5)
    H_gate = gated + 0.05 * rng.normal(size=gated.shape)
    r2_lin_id, r2_gate_id = id_r2(H_lin, X, n // 2), id_r2(H_gate, X, n // 2)
    assert r2_lin_id > 0.95 and r2_gate_id > 0.95
    for q in range(4):
        assert abs(ood_r2(H_lin, X, quad, q) - r2_lin_id) < 0.02
        # the held-out quadrant's units were silent in training: only the bias is left
        assert ood_r2(H_gate, X, quad, q) < 0.5


@pytest.mark.parametrize("sigma, ceiling", [(0.2, 0.975), (0.4, 0.893)])
def test_sample_mean_ood_ceiling(sigma, ceiling):
    """SPEC §7: lstsq on the exact sample mean of T = 20 noisy observations, fit on 3
    quadrants and tested on the 4th, reaches the ceiling."""
    rng = np.random.default_rng(7)
    n, T = 40000, 20
    X, quad = quadrant_latents(rng, n)
    mu = (X[:, None] + sigma * rng.normal(size=(n, T, 2))).mean(1)
    r2 = np.mean([ood_r2(mu, X, quad, q) for q in range(4)])
    assert abs(r2 - ceiling) < 0.01

# -----------------------------------------------------------------------------
# sparseness

def test_sparsity_hand_examples():
    rates = np.array([[0.0, 2.0, 0.0, 1.0],
                      [5.0, 2.0, 0.0, 2.0],
                      [0.0, 2.0, 0.0, 3.0]])
    # one-hot unit -> 1, constant -> 0, silent -> 1,
    # [1, 2, 3]: (1 - 4 / (14/3)) / (1 - 1/3) = (1/7) / (2/3) = 3/14
    np.testing.assert_allclose(metrics.sparsity(rates), [1.0, 0.0, 1.0, 3 / 14], atol=1e-12)
    np.testing.assert_allclose(metrics.sparsity(torch.tensor(rates)), [1.0, 0.0, 1.0, 3 / 14], atol=1e-12)
    # scale-free: a barely active unit is as sparse as its scaled-up copy
    np.testing.assert_allclose(metrics.sparsity(rates[:, 3:] * 1e-30), 3 / 14)
    with pytest.raises(ValueError, match="m >= 2"):
        metrics.sparsity(rates[:1])


def test_active_fraction_hand_example():
    rates = np.array([[0.0, 1.0, 2.0],
                      [0.0, 0.0, 3.0]])
    assert metrics.active_fraction(rates) == pytest.approx(100 * (2 / 3 + 1 / 3) / 2)
    assert metrics.active_fraction(rates, thresh=1.5) == pytest.approx(100 * (1 / 3 + 1 / 3) / 2)


def test_mean_ci_against_scipy():
    values = np.random.default_rng(8).normal(size=30)
    mean, half = metrics.mean_ci(values, level=0.9)
    lo, hi = stats.t.interval(0.9, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and half == pytest.approx((hi - lo) / 2)
    means, halves = metrics.mean_ci(np.stack([values, 2 * values]), level=0.9)
    np.testing.assert_allclose(means, [mean, 2 * mean])
    np.testing.assert_allclose(halves, [half, 2 * half])
    with pytest.raises(ValueError, match="level"):
        metrics.mean_ci(values, level=95)

# -----------------------------------------------------------------------------
# abstraction metrics

def abstraction_data(rng, n=2000, N=50, noise=0.05):
    """Latents X and two random embeddings in N units: a disentangled code of (x1, x2)
    and an XOR-like one of (x1, x2, 2·sign(x1)·sign(x2)), both plus noise."""
    X = uniform_latents(rng, (n, 2))
    disentangled = X @ rng.normal(size=(2, N)) + noise * rng.normal(size=(n, N))
    xor = np.sign(X[:, 0]) * np.sign(X[:, 1])
    entangled = np.c_[X, 2 * xor] @ rng.normal(size=(3, N)) + noise * rng.normal(size=(n, N))
    return X, disentangled, entangled


def test_abstraction_disentangled_vs_entangled():
    rng = np.random.default_rng(9)
    X, disentangled, entangled = abstraction_data(rng)
    good = metrics.abstraction_metrics(disentangled, X)
    bad = metrics.abstraction_metrics(entangled, X)
    assert set(good) == {"ccgp_x1", "ccgp_x2", "ps_x1", "ps_x2"}
    assert all(isinstance(v, float) for v in good.values())
    for d in ("x1", "x2"):
        assert good[f"ccgp_{d}"] > 0.95 and good[f"ps_{d}"] > 0.95
        # the XOR axis dominates every trained boundary: generalization is below chance
        assert bad[f"ccgp_{d}"] < 0.3 and bad[f"ps_{d}"] < 0.4


def test_abstraction_standard_errors_bracket_the_value_and_shrink_with_the_trials():
    rng = np.random.default_rng(13)
    spread = {}
    for n in (200, 2000):  # 50 and 500 trials per quadrant
        X, disentangled, _ = abstraction_data(rng, n=n, noise=1.5)  # noisy: CCGP and PS well below 1
        out = metrics.abstraction_metrics(disentangled, X, seed=1, n_boot=metrics.ABSTRACTION_BOOT)
        plain = metrics.abstraction_metrics(disentangled, X, seed=1)
        for key, value in plain.items():
            assert out[key] == value  # the bootstrap leaves the values as they are
            low, high = out[key + '_ci']
            assert out[key + '_se'] > 0 and low < value < high
            assert high - low == pytest.approx(2 * metrics.ABSTRACTION_Z * out[key + '_se'])
        spread[n] = np.mean([out[k] for k in out if k.endswith('_se')])
    assert spread[2000] < spread[200] / 2  # ten times the trials: about a third of the spread
    assert out == metrics.abstraction_metrics(disentangled, X, seed=1, n_boot=metrics.ABSTRACTION_BOOT)  # seeded
    with pytest.raises(ValueError, match="n_boot must be an integer >= 2"):
        metrics.abstraction_metrics(disentangled, X, n_boot=1)


def test_random_quadrant_centroids_are_not_parallel():
    """Each quadrant its own random centroid in 200 units: coding vectors are nearly
    orthogonal, so PS is near 0 (the max of two cosines of independent vectors)."""
    rng = np.random.default_rng(10)
    X = uniform_latents(rng, (2000, 2))
    quadrant = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
    H = rng.normal(size=(4, 200))[quadrant] + 0.1 * rng.normal(size=(2000, 200))
    ps = metrics.parallelism_score(H, X)
    assert abs(ps["x1"]) < 0.3 and abs(ps["x2"]) < 0.3


def test_ccgp_seeded_and_any_classifier():
    from sklearn.svm import LinearSVC
    rng = np.random.default_rng(12)
    X, disentangled, _ = abstraction_data(rng, n=1001)
    assert metrics.ccgp(disentangled, X, seed=3) == metrics.ccgp(disentangled, X, seed=3)
    svm = metrics.ccgp(disentangled, X, classifier=LinearSVC(C=1.0))
    assert svm["x1"] > 0.95 and svm["x2"] > 0.95


def test_parallelism_score_hand_example():
    # one trial per quadrant; means a=(+,+), b=(-,+), c=(+,-), d=(-,-) placed by hand
    X = np.array([[0.3, 0.3], [-0.3, 0.3], [0.3, -0.3], [-0.3, -0.3]])
    a, b, c, d = [2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]
    # x1: natural a-b=(2,0), c-d=(1,0): cos 1;  crossed a-d=(2,-1), c-b=(1,1): 1/sqrt(10)
    # x2: natural a-c=(1,-1), b-d=(0,-1): 1/sqrt(2);  crossed a-d=(2,-1), b-c=(-1,-1): -1/sqrt(10)
    ps = metrics.parallelism_score(np.array([a, b, c, d]), X)
    assert ps["x1"] == pytest.approx(1.0) and ps["x2"] == pytest.approx(1 / np.sqrt(2))
    # swapping b and d: x1's natural vectors become (2,-1), (1,1) and the crossed ones
    # (2,0), (1,0), so the max over pairings picks the crossed pairing
    ps = metrics.parallelism_score(np.array([a, d, c, b]), X)
    assert ps["x1"] == pytest.approx(1.0)


def test_abstraction_rejects_missing_quadrant():
    X = np.abs(uniform_latents(np.random.default_rng(11), (100, 2)))
    with pytest.raises(ValueError, match="quadrant"):
        metrics.abstraction_metrics(np.zeros((100, 5)), X)
    with pytest.raises(ValueError, match=r"X \(n, 2\)"):
        metrics.ccgp(np.zeros((100, 5)), np.zeros((100, 3)))
