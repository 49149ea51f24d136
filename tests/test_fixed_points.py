"""Fixed points, Jacobians and time scales checked on systems whose answer is known."""
import warnings

import numpy as np
import pytest
import torch

import fixed_points as fp

# exact fixed points of systems with known answers (analyze.py's defaults are for slow points)
EXACT = dict(tol_q=1e-6, tol_unique=1e-3, max_iters=5000, lr=1e-2)


def find(F, h0, **over):
    return fp.find_fixed_points(F, h0, **{**EXACT, **over})


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def test_linear_rnn_has_one_fixed_point():
    # F(h) = W h + b with ‖W‖ = 0.5: the only fixed point is (I − W)⁻¹ b, J = W − I.
    gen = torch.Generator().manual_seed(0)
    n = 5
    W = torch.randn(n, n, generator=gen, dtype=torch.float64)
    W = 0.5 * W / torch.linalg.matrix_norm(W, 2)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    h_star = torch.linalg.solve(torch.eye(n, dtype=torch.float64) - W, b).numpy()
    h0 = torch.from_numpy(h_star) + torch.randn(40, n, generator=gen, dtype=torch.float64)

    # Stopping at q < STOP_RATIO·tol_q keeps each row within √(2e-10)/σ_min(I − W) ≈ 3e-5
    # of h*, well inside tol_unique, so all 40 must merge into one point.
    res = find(lambda h: h @ W.T + b, h0)
    assert res.points.shape == (1, n)
    np.testing.assert_allclose(res.points[0], h_star, atol=1e-3)
    assert res.q[0] < fp.STOP_RATIO * EXACT['tol_q']
    assert (res.n_initial, res.n_rejected_q, res.n_duplicates) == (40, 0, 39)
    np.testing.assert_allclose(res.jacobians[0], W.numpy() - np.eye(n), atol=1e-12)
    expected = np.linalg.eigvals(W.numpy() - np.eye(n))
    np.testing.assert_allclose(res.eigvals[0], expected[np.argsort(-expected.real)], atol=1e-10)
    assert np.all(np.diff(res.eigvals[0].real) <= 0)
    assert fp.is_stable(res.eigvals).all()


def test_slow_direction_still_merges_duplicates():
    # W with eigenvalue 0.9 makes I − W nearly singular: q < tol_q/10 leaves rows up to
    # 3e-3 apart (two "fixed points"); converging to STOP_RATIO·tol_q merges them.
    gen = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    W = Q @ torch.diag(torch.tensor([0.9, 0.0, -0.5], dtype=torch.float64)) @ Q.T
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    h_star = torch.linalg.solve(torch.eye(3, dtype=torch.float64) - W, b)
    h0 = h_star + 0.3 * torch.randn(20, 3, generator=gen, dtype=torch.float64)
    F = lambda h: h @ W.T + b  # noqa: E731

    res = find(F, h0)
    assert res.points.shape == (1, 3)
    np.testing.assert_allclose(res.points[0], h_star.numpy(), atol=1e-6)
    assert len(find(F, h0, stop_ratio=0.1).points) > 1


def test_bistable_unit_three_fixed_points_classified():
    # h_next = tanh(2h): stable points ±h* (h* = tanh(2h*)), unstable point 0.
    h0 = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64)[:, None]
    res = find(lambda h: torch.tanh(2 * h), h0)
    assert res.points.shape == (3, 1)
    assert res.n_duplicates == 58 and res.n_rejected_q == 0
    assert np.all(np.diff(res.q) >= 0)  # sorted by q

    order = np.argsort(res.points[:, 0])
    h, lam = res.points[order, 0], res.eigvals[order, 0]
    h_star = 0.957504  # root of tanh(2h) = h
    np.testing.assert_allclose(h, [-h_star, 0.0, h_star], atol=1e-3)
    # λ = F'(h) − 1 = 2(1 − tanh²(2h)) − 1; at 0 it is +1, so |1 + λ| = 2: unstable.
    np.testing.assert_allclose(lam.real, 2 * (1 - np.tanh(2 * h) ** 2) - 1, atol=1e-6)
    np.testing.assert_array_equal(fp.is_stable(res.eigvals[order]), [True, False, True])


def test_line_attractor_points_on_line_one_zero_eigenvalue():
    # W = R diag(1, 0.5) Rᵀ: every point on the line through R e₁ is fixed.
    R = _rotation(0.7)
    W = R @ torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64)) @ R.T
    h0 = torch.randn(30, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = find(lambda h: h @ W.T, h0)

    assert len(res.points) > 1  # a continuum: far-apart points are not merged
    off_line = res.points @ R[:, 1].numpy()
    np.testing.assert_allclose(off_line, 0, atol=1e-3)
    np.testing.assert_allclose(res.eigvals, np.tile([0.0, -0.5], (len(res.points), 1)),
                               atol=1e-10)
    np.testing.assert_array_equal(fp.count_near_zero(res.eigvals, 0.05), 1)
    np.testing.assert_array_equal(fp.amplification(res.eigvals, n_top=1), np.inf)


def test_points_with_large_q_are_rejected():
    # F(h) = h + 1 has no fixed point.
    h0 = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))
    res = find(lambda h: h + 1, h0, max_iters=100)
    assert res.points.shape == (0, 3) and res.q.shape == (0,)
    assert res.jacobians.shape == (0, 3, 3) and res.eigvals.shape == (0, 3)
    assert res.n_rejected_q == 10

    # F(h) = h + h² + 0.1 has a slow point at h = 0 with q = 0.005, a minimum of q but not
    # a fixed point: rejected under the default tol_q, kept when tol_q is above 0.005.
    slow = lambda h: h + h ** 2 + 0.1  # noqa: E731
    h0 = torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)[:, None]
    assert len(find(slow, h0, max_iters=2000).points) == 0
    kept = find(slow, h0, tol_q=0.01, max_iters=2000)
    assert kept.points.shape == (1, 1)
    np.testing.assert_allclose(kept.q, 0.005, rtol=1e-3)


def test_jitter_is_seeded_and_parameters_keep_no_grad():
    lin = torch.nn.Linear(2, 2)
    F = lambda h: torch.tanh(lin(h))  # noqa: E731
    h0 = torch.zeros(4, 2)
    a = find(F, h0, noise_scale=0.5, seed=3, max_iters=5)
    b = find(F, h0, noise_scale=0.5, seed=3, max_iters=5, tol_q=1e9)
    c = find(F, h0, noise_scale=0.5, seed=4, max_iters=5, tol_q=1e9)
    assert a.n_iters == 5
    assert len(b.points) == 4 and len(c.points) == 4  # tol_q = 1e9 keeps every row
    assert not np.allclose(np.sort(b.points, axis=0), np.sort(c.points, axis=0))
    b2 = find(F, h0, noise_scale=0.5, seed=3, max_iters=5, tol_q=1e9)
    np.testing.assert_array_equal(b.points, b2.points)
    assert lin.weight.grad is None  # only the states are optimised

    no_jac = find(F, h0, max_iters=5, tol_q=1e9, compute_jacobians=False)
    assert no_jac.jacobians.shape == (0, 2, 2)


def test_jacobians_match_central_differences():
    # The caller's pattern: F closes over a constant input expanded to the batch.
    torch.manual_seed(0)
    n = 5
    rec = torch.nn.Linear(n, n).double()
    u = torch.randn(1, n, dtype=torch.float64)
    F = lambda h: torch.tanh(rec(h) + u.expand(len(h), -1))  # noqa: E731
    points = torch.randn(3, n, dtype=torch.float64)

    jac = fp.jacobians(F, points)
    eps = 1e-6
    eye = torch.eye(n, dtype=torch.float64)
    for p, h in enumerate(points):
        with torch.no_grad():
            plus = F(h + eps * eye) - (h + eps * eye)   # row j: h shifted along e_j
            minus = F(h - eps * eye) - (h - eps * eye)
        fd = ((plus - minus) / (2 * eps)).T.numpy()  # column j = ∂(F − h)/∂h_j
        np.testing.assert_allclose(jac[p], fd, atol=1e-8)
    assert jac.shape == (3, n, n)


def test_amplification_hand_computed():
    eig = np.array([[-0.5, -0.9, -1.5], [1e-6, -0.2, -0.7], [0.0, -1.0, -2.0]], dtype=complex)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # |1 + λ| = 1 or 0 must not warn
        A = fp.amplification(eig, dt=100, tau=100, n_top=2)
        A_fast = fp.amplification(eig, dt=10, tau=100, n_top=1)
    assert A.shape == (3, 2)
    np.testing.assert_allclose(A[0], [1 / np.log(2), 1 / np.log(10)])
    assert A[1, 0] > 1e5 and np.isfinite(A[1, 0])  # λ → 0: a very slow direction
    np.testing.assert_allclose(A[1, 1], 1 / abs(np.log(0.8)))
    assert A[2, 0] == np.inf  # λ = 0: a perfect integrator
    assert A[2, 1] == 0.0     # λ = −1: the direction resets in one step
    np.testing.assert_allclose(A_fast[0], 0.1 / np.log(2))
    # The n_top eigenvalues of largest real part are used, whatever the input order.
    np.testing.assert_allclose(fp.amplification(eig[:, ::-1], n_top=2), A)
    # Complex pair: |1 + λ| = |0.5 + 0.5i| = 1/√2.
    np.testing.assert_allclose(fp.amplification(np.array([[-0.5 + 0.5j, -0.5 - 0.5j]])),
                               [[2 / np.log(2), 2 / np.log(2)]])
    with pytest.raises(ValueError, match="n_top"):
        fp.amplification(eig, n_top=4)


def test_count_near_zero_and_is_stable():
    eig = np.array([[0.01, -0.03j, -0.5, -1.2], [0.2, 0.0, -1.0, -1.9]])
    np.testing.assert_array_equal(fp.count_near_zero(eig, 0.05), [2, 1])
    np.testing.assert_array_equal(fp.count_near_zero(eig, tol=0.3), [2, 2])
    np.testing.assert_array_equal(fp.is_stable(np.array([[-0.5, -1.9], [-0.5, 0.1]])),
                                  [True, False])


def test_sample_initial_states():
    traj = np.random.default_rng(0).standard_normal((4, 6, 3)).astype(np.float32)
    s = fp.sample_initial_states(traj, n=10, noise_scale=0.0, seed=1)
    assert s.shape == (10, 3) and s.dtype == np.float32
    flat = traj.reshape(-1, 3)
    assert all((flat == row).all(axis=1).any() for row in s)  # each row is a visited state

    a = fp.sample_initial_states(torch.from_numpy(traj), 10, noise_scale=0.1, seed=1)
    b = fp.sample_initial_states(traj, 10, noise_scale=0.1, seed=1)
    c = fp.sample_initial_states(traj, 10, noise_scale=0.1, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert 0 < np.abs(a - s).max() < 1  # same draws as noise-free, plus jitter
    with pytest.raises(ValueError, match="n must"):
        fp.sample_initial_states(traj, 0, 0.1, 1)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="h0"):
        find(lambda h: h, torch.zeros(3))
    with pytest.raises(ValueError, match="F must map"):
        find(lambda h: h[:, :1], torch.zeros(3, 2))
    with pytest.raises(ValueError, match="tol_q"):
        find(lambda h: h, torch.zeros(3, 2), tol_q=0)
