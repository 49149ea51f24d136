"""disentanglement.py on codes whose answers are known: an axis-aligned code, the same
code rotated by 45°, a random nonlinear mixture, shuffled labels and silent units."""
import numpy as np
import pytest

import disentanglement as dis
import metrics

N = 2000
QUAD = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])


def latents(n=N, seed=0):
    return np.random.default_rng(seed).random((n, 2)) - 0.5


def axis_code(X, noise=0.002, seed=1):
    """One unit per latent, plus three silent units (zero, constant, sub-threshold jitter)."""
    rng = np.random.default_rng(seed)
    n = len(X)
    silent = np.stack([np.zeros(n), np.full(n, 0.3), 0.3 + 1e-8 * rng.standard_normal(n)], 1)
    return np.concatenate([X + noise * rng.standard_normal(X.shape), silent], 1)


def rotated_code(X, noise=0.002, seed=1):
    c = np.sqrt(0.5)
    H = axis_code(X, noise, seed)
    H[:, :2] = H[:, :2] @ np.array([[c, c], [-c, c]])  # 45°: every unit is (x1 ± x2)/√2
    return H


def sine_mixture(X, n_units=64, seed=2):
    """Random nonlinear mixture: sines of random projections, several periods across the square."""
    rng = np.random.default_rng(seed)
    W = 8 * rng.standard_normal((2, n_units))
    return np.sin(np.pi * X @ W + 2 * np.pi * rng.random(n_units))


def relu_mixture(X, n_units=64, seed=3):
    """Random ReLU population, each unit tuned to a random direction of (x1, x2)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((2, n_units))
    return np.maximum(0, X @ W + 0.3 * rng.standard_normal(n_units)) + 0.02 * rng.standard_normal((len(X), n_units))


def ood_r2(H, X):
    """Least-squares decoder fit on three quadrants, tested on the fourth; mean over the four."""
    q = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
    r2 = []
    for held in range(4):
        W, b = metrics.fit_lstsq(H[None, q != held], X[None, q != held])
        pred = metrics.predict(H[None, q == held], W, b)
        r2.append(float(metrics.r_squared(pred, X[None, q == held])[0]))
    return np.mean(r2)


@pytest.fixture(scope="module")
def X():
    return latents()


@pytest.fixture(scope="module")
def axis(X):
    return dis.network_metrics(axis_code(X), X)


@pytest.fixture(scope="module")
def rotated(X):
    return dis.network_metrics(rotated_code(X), X)


# -----------------------------------------------------------------------------
# the pieces


def test_dci_from_importance_on_known_matrices():
    assert dis.dci_from_importance(np.eye(2)) == pytest.approx((1.0, 1.0))
    # every unit equally important for both latents: no disentanglement, no completeness
    assert dis.dci_from_importance(np.ones((4, 2))) == pytest.approx((0.0, 0.0))
    # two units each for one latent: disentangled, but each latent spread over 2 of 4 units
    R = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    d, c = dis.dci_from_importance(R)
    assert d == pytest.approx(1.0) and c == pytest.approx(1 - np.log(2) / np.log(4))
    # a unit with no importance has no weight in D
    assert dis.dci_from_importance(np.array([[1, 0], [0, 1], [0, 0]]))[0] == pytest.approx(1.0)
    assert dis.dci_from_importance(np.zeros((3, 2))) == (0.0, 0.0)


def test_mig_is_invariant_to_monotone_transforms_of_a_unit(X):
    code = X + 0.002 * np.random.default_rng(4).standard_normal(X.shape)
    squashed = np.stack([np.tanh(3 * code[:, 0]), np.exp(code[:, 1])], 1)
    assert dis.mig(code, X) > 0.9
    assert dis.mig(squashed, X) == pytest.approx(dis.mig(code, X), abs=1e-12)


def test_mig_counts_a_second_unit_of_the_same_latent_against_it(X):
    """A latent coded twice has no gap: MIG is about one unit per latent."""
    H = np.concatenate([X, X[:, :1] + 1e-3 * np.random.default_rng(5).standard_normal((len(X), 1))], 1)
    mi, _ = dis.mutual_information(H, X)
    assert mi[0, 0] > 2.5 and mi[2, 0] > 2 and mi[1, 0] < 0.2
    assert dis.mig(H, X) < 0.65  # x2 keeps its gap, x1 loses most of it


def test_rotate_centroids_keeps_distances_and_scatter(X):
    H = relu_mixture(X)
    rotated = dis.rotate_centroids(H, X, np.random.default_rng(0))
    q = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
    g = H.mean(0)
    for k in range(4):
        m, m_new = H[q == k].mean(0), rotated[q == k].mean(0)
        assert np.linalg.norm(m_new - g) == pytest.approx(np.linalg.norm(m - g))
        np.testing.assert_allclose(rotated[q == k] - m_new, H[q == k] - m, atol=1e-10)
        assert not np.allclose(m_new, m)

# -----------------------------------------------------------------------------
# codes with known answers


def test_axis_aligned_code_scores_near_one(axis):
    assert axis['dci_d'] > 0.95 and axis['dci_c'] > 0.95 and axis['dci_i'] > 0.99
    assert axis['mig'] > 0.9
    assert axis['ccgp_mean'] > 0.95 and axis['ps_mean'] > 0.99
    # above each null: the p-value is the smallest the draws allow
    p_min = 1 / (dis.N_SHUFFLES + 1)
    for m in ('dci_i', 'mig', 'ccgp_mean', 'ps_mean'):
        assert axis[f'{m}_null_p'] == pytest.approx(p_min) and axis[m] > axis[f'{m}_null_hi']
    for m in ('ccgp_mean', 'ps_mean'):
        assert axis[f'{m}_geo_p'] == pytest.approx(p_min) and axis[m] > axis[f'{m}_geo_hi']


def test_rotation_keeps_linear_decoding_and_loses_dci_and_mig(X, axis, rotated):
    assert ood_r2(axis_code(X), X) > 0.99
    assert ood_r2(rotated_code(X), X) == pytest.approx(ood_r2(axis_code(X), X), abs=1e-6)
    assert rotated['dci_i'] > 0.99  # still informative
    assert rotated['dci_d'] < 0.1 and rotated['dci_c'] < 0.1
    assert rotated['mig'] < 0.1
    # abstraction metrics are blind to the rotation, like OOD r²
    assert rotated['ccgp_mean'] > 0.95 and rotated['ps_mean'] > 0.99


def test_random_nonlinear_mixture_scores_low_on_all(X):
    H = sine_mixture(X)
    m = dis.network_metrics(H, X)
    assert ood_r2(H, X) < 0.5
    assert m['dci_i'] < 0.7
    assert m['dci_d'] < 0.6  # lasso spreads over many weakly informative units
    assert m['mig'] < 0.05
    assert m['ccgp_mean'] < 0.75 and m['ps_mean'] < 0.3
    assert m['ps_mean_null_p'] > 0.1  # PS is not above its shuffle null


@pytest.mark.slow  # eight full null computations: ~10 s on a loaded CPU
def test_shuffled_labels_fall_inside_their_null_band():
    """Labels shuffled against a real code: each metric lands inside its 5-95 % band
    about 90 % of the time; the unshuffled code lies above every band."""
    inside, total, p = 0, 0, []
    for seed in range(4):
        X = latents(600, seed)
        H = relu_mixture(X, n_units=16, seed=seed)
        shuffled = X[np.random.default_rng(100 + seed).permutation(len(X))]
        m = dis.network_metrics(H, shuffled, seed=seed, n_shuffles=10)
        for name in dis.SHUFFLED:
            inside += m[f'{name}_null_lo'] <= m[name] <= m[f'{name}_null_hi']
            total += 1
            p.append(m[f'{name}_null_p'])
        true = dis.network_metrics(H, X, seed=seed, n_shuffles=10)
        for name in ('dci_i', 'mig', 'ccgp_mean'):
            assert true[name] > true[f'{name}_null_hi']
    assert inside / total >= 0.75
    assert np.median(p) > 0.25  # p-values of a true null spread over (0, 1]


def test_silent_units_are_excluded_and_counted(X):
    H = relu_mixture(X)[:, :16]
    active = dis.network_metrics(H, X, n_shuffles=3)
    silent = np.zeros((len(X), 4))
    silent[:, 1] = 2.0
    silent[:, 2] = 1e-7 * np.random.default_rng(0).standard_normal(len(X))  # below SILENT_STD
    padded = dis.network_metrics(np.concatenate([silent[:, :2], H, silent[:, 2:]], 1), X, n_shuffles=3)
    assert padded['n_silent'] == 4 and padded['n_units'] == 20 and active['n_silent'] == 0
    for k in active:
        if k not in ('n_units', 'n_silent'):
            assert padded[k] == pytest.approx(active[k], abs=1e-9, nan_ok=True), k
    # a unit just above the threshold is kept
    barely = np.concatenate([H, 1e-5 * np.random.default_rng(1).standard_normal((len(X), 1))], 1)
    assert dis.network_metrics(barely, X, n_shuffles=1)['n_silent'] == 0
    assert dis.network_metrics(barely, X, n_shuffles=1, silent_std=1e-4)['n_silent'] == 1


def test_all_silent_gives_nan_with_the_count(X):
    m = dis.network_metrics(np.zeros((len(X), 5)), X, n_shuffles=2)
    assert m['n_silent'] == 5 and np.isnan(m['dci_d']) and np.isnan(m['mig_null_p'])


def test_gradient_boosting_regressor_tells_axis_from_rotation():
    X = latents(600)
    axis = dis.dci(axis_code(X)[:, :2], X, regressor='gbt')
    rotated = dis.dci(rotated_code(X)[:, :2], X, regressor='gbt')
    assert axis['dci_d'] > 0.9 and rotated['dci_d'] < 0.3
    assert axis['dci_i'] > 0.95 and rotated['dci_i'] > 0.9


def test_high_dimensional_latents_skip_ccgp_and_ps():
    X = np.random.default_rng(0).random((500, 4)) - 0.5
    H = np.concatenate([X, np.zeros((500, 2))], 1)
    m = dis.network_metrics(H, X, n_shuffles=3)
    assert m['dci_d'] > 0.95 and m['mig'] > 0.8 and m['n_silent'] == 2
    assert np.isnan(m['ccgp_mean']) and np.isnan(m['ps_mean_geo_p'])


def test_keys_are_new_and_floats(axis):
    assert all(isinstance(v, float) for v in axis.values())
    assert not {'r_sq', 'dec', 'angles', 'ccgp', 'ps', 'train', 'test'} & set(axis)
    expected = {'n_units', 'n_silent', *dis.SHUFFLED}
    expected |= {f'{m}_null_{s}' for m in dis.SHUFFLED for s in ('lo', 'hi', 'p')}
    expected |= {f'{m}_geo_{s}' for m in dis.GEOMETRIC for s in ('lo', 'hi', 'p')}
    assert set(axis) == expected


def test_same_seed_same_numbers(X):
    H = relu_mixture(X)[:, :8]
    assert dis.network_metrics(H, X, seed=3, n_shuffles=4) == dis.network_metrics(H, X, seed=3, n_shuffles=4)


@pytest.mark.parametrize("H, X, kwargs, match", [
    (np.zeros(10), np.zeros((10, 2)), {}, "H must be"),
    (np.zeros((30, 3)), np.zeros((29, 2)), {}, "same n_trials"),
    (np.zeros((30, 3)), np.zeros((30, 1)), {}, "D >= 2"),
    (np.full((30, 3), np.nan), np.zeros((30, 2)), {}, "finite"),
    (np.zeros((30, 3)), np.zeros((30, 2)), {'n_shuffles': 0}, "n_shuffles"),
    (np.zeros((30, 3)), np.zeros((30, 2)), {'regressor': 'ridge'}, "regressor"),
    (np.zeros((30, 3)), np.zeros((30, 2)), {'band': (95, 5)}, "band"),
    (np.zeros((30, 3)), np.zeros((30, 2)) + 0.1, {}, "quadrant"),
])
def test_bad_input_is_refused(H, X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dis.network_metrics(H, X, **kwargs)
