"""What the analysis scripts compute from a trained network, as arrays in and arrays
out (SPEC §6): stimulus grids, steady states, trajectories of the full recurrent
state, PCA, quadrant labels, rate maps, per-unit correlations with the latents and
the encoder's output geometry. Shared by analyze.py, analyze_transformer.py and
sparsity.py; no file I/O and no plotting here."""
import numpy as np
import torch
from sklearn.decomposition import PCA

import networks


def stimulus_grid(n_grid, n_dim=2, low=-0.5, high=0.5):
    """n_grid² latents (n_grid², D) on a grid over (x1, x2), other coordinates 0.
    Row i2·n_grid + i1 has x1 = g[i1], x2 = g[i2], so reshape(n_grid, n_grid, ...)
    indexes [x2, x1] (image rows are x2)."""
    if not isinstance(n_grid, int) or n_grid < 2:
        raise ValueError(f"n_grid must be an integer >= 2, got {n_grid!r}")
    g = np.linspace(low, high, n_grid)
    x2, x1 = np.meshgrid(g, g, indexing='ij')
    x = np.zeros((n_grid * n_grid, n_dim))
    x[:, 0], x[:, 1] = x1.ravel(), x2.ravel()
    return x


def last_stimulus_step(env):
    return env.stim_steps[1] - 1


def steady_states(net, encoder, env, x):
    """Hidden state (n, N) at the last stimulus step of noise-free trials of latents x."""
    h = networks.hidden_states(net, encoder, env, env.observations(x))
    return h[:, last_stimulus_step(env)].numpy()


def blank_input(env, encoder, device='cpu'):
    """Network input (1, n_in) of a blank stimulus with fixation on: encoder(0) plus
    the fixation and rule channels of a stimulus step."""
    ob = env.observations(np.zeros((1, env.n_dim)))[:, env.stim_steps[0]:env.stim_steps[0] + 1]
    return networks.network_inputs(torch.as_tensor(ob, device=device), env, encoder)[:, 0]


def state_trajectories(net, u):
    """Full recurrent state (B, T, S) of inputs u (B, T, n_in) from the zero state,
    stepped with the noise-free map net.dynamics (S = N for an RNN, 2H = concat(h, c)
    for an LSTM)."""
    n_state = 2 * net.hidden_size if hasattr(net, 'lstm') else net.hidden_size
    r = u.new_zeros(u.shape[0], n_state)
    states = []
    with torch.no_grad():
        for u_t in u.unbind(1):
            r = net.dynamics(u_t, r)
            states.append(r)
    return torch.stack(states, 1)


def pca_variance(H, n_components=10):
    """Fitted PCA of states H (n, N) and the explained-variance ratio of its first
    min(n_components, N, n) components."""
    H = np.asarray(H, dtype=np.float64)
    pca = PCA(n_components=min(n_components, *H.shape)).fit(H)
    return pca, pca.explained_variance_ratio_


def quadrants(x):
    """Quadrant 1:(+,+) 2:(−,+) 3:(−,−) 4:(+,−) of each latent (n, ≥2) -> (n,) ints."""
    pos1, pos2 = np.asarray(x)[:, 0] > 0, np.asarray(x)[:, 1] > 0
    return np.select([pos1 & pos2, ~pos1 & pos2, ~pos1 & ~pos2], [1, 2, 3], 4)


def rate_maps(states, n_grid):
    """States (n_grid², N) of stimulus_grid(n_grid) -> maps (n_grid, n_grid, N), [x2, x1]."""
    states = np.asarray(states)
    if states.ndim != 2 or len(states) != n_grid * n_grid:
        raise ValueError(f"states must have shape ({n_grid * n_grid}, N), got {states.shape}")
    return states.reshape(n_grid, n_grid, -1)


def unit_correlations(states, x):
    """Pearson correlation of each unit (n, N) with x1 and with x2 -> (N, 2); NaN for
    a unit that does not vary."""
    s = np.asarray(states, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)[:, :2]
    s, x = s - s.mean(0), x - x.mean(0)
    norm = np.linalg.norm(s, axis=0)[:, None] * np.linalg.norm(x, axis=0)[None, :]
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(norm > 0, s.T @ x / norm, np.nan)


def encoder_geometry(encoder, n_dim, n_grid, n_components=10):
    """Encoder features over a grid of latents: latents (n_grid², D), features
    (n_grid², 40), their top-3 PC projection and explained-variance ratio."""
    x = stimulus_grid(n_grid, n_dim)
    device = next(encoder.parameters()).device
    with torch.no_grad():
        # the frozen encoder is a one-member ensemble: it takes a leading member dim
        feats = encoder(torch.as_tensor(x, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
    pca, ratio = pca_variance(feats, n_components)
    return x, feats, pca.transform(feats)[:, :3], ratio


def mean_abs_correlation(corr):
    """Mean |correlation| with x1 and with x2 over the units that vary (corr (N, 2));
    None where no unit varies."""
    return [float(np.nanmean(np.abs(c))) if np.isfinite(c).any() else None for c in np.asarray(corr).T]
