"""Fixed points of a recurrent network's one-step map, their Jacobians and time scales.

The map is any callable F(h) -> h_next on torch tensors of shape (K, N); the caller
closes over the constant input, e.g. `lambda h: net.dynamics(u.expand(len(h), -1), h)`.
Fixed points are minima of q(h) = ½‖F(h) − h‖² found with Adam from many initial
states at once (as in Sussillo & Barak 2013 and Golub's fixed-point-finder).
Everything here takes tensors/arrays and returns numpy arrays; no I/O, no plotting.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacrev, vmap

# The knobs (tol_q, tol_unique, max_iters, lr, near-zero tolerance) have their defaults in
# one place, analyze.py's hyperparameters; here they are required keyword arguments.
STOP_RATIO = 1e-4       # stop early once every q < STOP_RATIO * tol_q
# Why converge past tol_q: a point with residual q lies up to √(2q)/σ_min(J) from the true
# one (J the Jacobian of F(h) − h; σ_min is small along slow directions), so stopping at
# q < tol_q/10 leaves copies of one fixed point farther apart than tol_unique. It costs few steps.


@dataclass
class FixedPointResult:
    """Unique fixed points sorted by ascending q, with their linearisation."""
    points: np.ndarray     # (P, N) fixed points
    q: np.ndarray          # (P,) ½‖F(h) − h‖² at each point
    jacobians: np.ndarray  # (P, N, N) Jacobian of F(h) − h (empty if not computed)
    eigvals: np.ndarray    # (P, N) complex eigenvalues of the Jacobian, descending real part
    n_initial: int         # number of initial states optimised
    n_rejected_q: int      # optimised states dropped because q >= tol_q
    n_duplicates: int      # states with q < tol_q merged into a lower-q point
    n_iters: int           # Adam steps taken


def _as_states(h, name):
    h = torch.as_tensor(h)
    if h.ndim != 2 or h.shape[0] == 0 or not h.is_floating_point():
        raise ValueError(f"{name} must be a non-empty float array of shape (K, N), got "
                         f"shape {tuple(h.shape)} and dtype {h.dtype}")
    return h


def _residual(F, h):
    """F(h) − h, checking that F keeps the shape of its batch."""
    h_next = F(h)
    if h_next.shape != h.shape:
        raise ValueError(f"F must map states of shape (K, N) to the same shape, "
                         f"got {tuple(h.shape)} -> {tuple(h_next.shape)}")
    return h_next - h


def find_fixed_points(F, h0, *, tol_q, tol_unique, max_iters, lr, stop_ratio=STOP_RATIO,
                      noise_scale=0.0, seed=0, compute_jacobians=True):
    """Minimise q(h) = ½‖F(h) − h‖² with Adam (learning rate lr, constant: plain Adam
    already settles into the minima) from the K initial states h0 (K, N), for at most
    max_iters steps, and return the unique points with q < tol_q (points closer than
    tol_unique are one). h0 keeps its dtype and device, which must suit F."""
    h0 = _as_states(h0, "h0")
    if tol_q <= 0 or tol_unique < 0:
        raise ValueError(f"tol_q must be > 0 and tol_unique >= 0, got {tol_q}, {tol_unique}")
    if int(max_iters) != max_iters or max_iters < 0:
        raise ValueError(f"max_iters must be an integer >= 0, got {max_iters}")
    if lr <= 0 or not 0 < stop_ratio <= 1:
        raise ValueError(f"lr must be > 0 and stop_ratio in (0, 1], got {lr}, {stop_ratio}")
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")

    h = h0.detach().clone()
    if noise_scale > 0:
        gen = torch.Generator().manual_seed(seed)
        h += noise_scale * torch.randn(h.shape, generator=gen, dtype=h.dtype).to(h.device)
    h.requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)

    for n_iters in range(int(max_iters)):
        q = 0.5 * _residual(F, h).pow(2).sum(dim=1)
        if (q < stop_ratio * tol_q).all():
            break
        # Rows are independent, so the summed loss gives each row its own gradient.
        # autograd.grad (not backward) leaves the .grad of F's parameters untouched.
        (h.grad,) = torch.autograd.grad(q.sum(), h)
        opt.step()
    else:
        n_iters = int(max_iters)

    with torch.no_grad():
        h = h.detach()
        q = 0.5 * _residual(F, h).pow(2).sum(dim=1)

    # Greedy merge in order of q: a point is new if it is far from every kept point.
    order = torch.argsort(q)
    order = order[q[order] < tol_q]
    keep = []
    for i in order.tolist():
        if not keep or torch.linalg.norm(h[keep] - h[i], dim=1).min() >= tol_unique:
            keep.append(i)
    points, q_kept = h[keep], q[keep]

    n = h.shape[1]
    jac = jacobians(F, points) if compute_jacobians else np.zeros((0, n, n))
    eig = _sorted_eigvals(jac) if compute_jacobians else np.zeros((0, n), dtype=complex)
    return FixedPointResult(
        points=points.cpu().numpy(), q=q_kept.cpu().numpy(), jacobians=jac, eigvals=eig,
        n_initial=len(h), n_rejected_q=len(h) - len(order), n_duplicates=len(order) - len(keep),
        n_iters=n_iters)


def jacobians(F, points):
    """Jacobian of F(h) − h at each of the P points (P, N) -> (P, N, N), batched with
    torch.func. points keep their dtype, which must suit F."""
    points = torch.as_tensor(points)
    if points.ndim != 2 or not points.is_floating_point():
        raise ValueError(f"points must be a float array of shape (P, N), got shape "
                         f"{tuple(points.shape)} and dtype {points.dtype}")
    if len(points) == 0:
        return np.zeros((0, points.shape[1], points.shape[1]))

    def residual_one(h):  # F works on batches, so give it a batch of one
        return (F(h[None]) - h[None])[0]

    return vmap(jacrev(residual_one))(points.detach()).detach().cpu().numpy()


def _sorted_eigvals(jac):
    eig = np.linalg.eigvals(jac).astype(complex)
    return np.take_along_axis(eig, np.argsort(-eig.real, axis=-1, kind="stable"), axis=-1)


def is_stable(eigvals):
    """Whether each fixed point is stable for the discrete map: every |1 + λ| < 1,
    with λ the eigenvalues of the Jacobian of F(h) − h. eigvals (P, N) -> (P,) bool."""
    return np.all(np.abs(1 + np.asarray(eigvals)) < 1, axis=-1)


def amplification(eigvals, dt=100, tau=100, n_top=2):
    """Time-scale amplification A = τ_net / τ, τ_net = dt / |ln|1 + λ||, for the n_top
    eigenvalues of largest real part at each fixed point: (P, N) -> (P, n_top).
    |1 + λ| = 1 (a perfect integrator direction) gives inf."""
    eigvals = np.asarray(eigvals)
    if eigvals.ndim != 2:
        raise ValueError(f"eigvals must have shape (P, N), got {eigvals.shape}")
    if not 1 <= n_top <= eigvals.shape[1]:
        raise ValueError(f"n_top must be in [1, {eigvals.shape[1]}] (N), got {n_top}")
    if dt <= 0 or tau <= 0:
        raise ValueError(f"dt and tau must be > 0, got {dt}, {tau}")
    top = np.take_along_axis(eigvals, np.argsort(-eigvals.real, axis=1, kind="stable"), axis=1)
    top = top[:, :n_top]
    with np.errstate(divide="ignore"):  # ln 1 = 0 -> inf; ln 0 = -inf -> A = 0
        return (dt / tau) / np.abs(np.log(np.abs(1 + top)))


def count_near_zero(eigvals, tol):
    """Number of eigenvalues with |λ| < tol per fixed point: (P, N) -> (P,). A 2-D
    continuous attractor has two."""
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return np.sum(np.abs(np.asarray(eigvals)) < tol, axis=-1)


def sample_initial_states(trajectories, n, noise_scale, seed):
    """n states drawn uniformly (with replacement) from hidden-state trajectories
    (..., N), flattened over all leading dims, plus Gaussian jitter of std noise_scale.
    Returns (n, N) in the trajectories' dtype."""
    states = np.asarray(trajectories.detach().cpu() if torch.is_tensor(trajectories)
                        else trajectories)
    if states.ndim < 1 or states.size == 0:
        raise ValueError(f"trajectories must be a non-empty array (..., N), got {states.shape}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
    states = states.reshape(-1, states.shape[-1])
    rng = np.random.default_rng(seed)
    picked = states[rng.integers(len(states), size=int(n))]
    return (picked + noise_scale * rng.standard_normal(picked.shape)).astype(states.dtype)
