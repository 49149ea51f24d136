"""
Representation metrics: decoder fits and r² (SPEC §5), sparseness (SPEC §6) and the
abstraction metrics CCGP / parallelism score (Bernardi et al., Cell 2020).

Pure computation: arrays in, arrays out. The decoder functions (`r_squared`,
`decoder_angles`, `fit_lstsq`, `fit_adam`, `predict`) return the type of their first
argument: torch in -> torch out (same device and float dtype), numpy in -> numpy out.
The analysis functions (`sparsity`, `active_fraction`, `mean_ci`, `ccgp`,
`parallelism_score`, `abstraction_metrics`) accept either and return numpy / floats.
"""

import math

import numpy as np
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

UNIFORM_VAR = 1 / 12  # variance of U(-0.5, 0.5): the r² denominator of SPEC §5

# -----------------------------------------------------------------------------
# helpers

def _to_torch(*arrays):
    """Arrays as float torch tensors on the device of the first tensor among them."""
    device = next((a.device for a in arrays if torch.is_tensor(a)), None)
    out = []
    for a in arrays:
        t = torch.as_tensor(a, device=device)
        out.append(t if t.is_floating_point() else t.double())
    return out


def _like(out, ref):
    """Give `out` (a tensor) the array type and float dtype of the input `ref`."""
    if torch.is_tensor(ref):
        return out.to(ref.dtype) if ref.is_floating_point() else out
    out = out.detach().cpu().numpy()
    ref_dtype = np.asarray(ref).dtype
    return out.astype(ref_dtype) if np.issubdtype(ref_dtype, np.floating) else out


def _to_numpy(a):
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _check_decoder_data(H, X):
    if H.ndim != 3 or X.ndim != 3 or H.shape[:2] != X.shape[:2]:
        raise ValueError(f"H must be (K, n, N) and X (K, n, D) with the same K and n; "
                         f"got H {tuple(H.shape)}, X {tuple(X.shape)}")

# -----------------------------------------------------------------------------
# decoding (SPEC §5)

def r_squared(pred, target, var=UNIFORM_VAR):
    """r² = 1 - MSE/var, MSE over the last two axes (trials, D): (..., n, D) -> (...)."""
    if tuple(pred.shape) != tuple(target.shape) or len(pred.shape) < 2:
        raise ValueError(f"pred and target must have the same shape (..., n_trials, D); "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if not var > 0:
        raise ValueError(f"var must be > 0, got {var}")
    p, t = _to_torch(pred, target)
    return _like(1 - ((p - t) ** 2).mean((-2, -1)) / var, pred)


def decoder_angles(weights):
    """Angles (degrees) between decoder columns: (..., n_neu, D) -> (..., D, D).

    Entry [i, j] for i < j is the angle between columns i and j; the diagonal and
    the lower triangle are NaN. A zero column gives NaN angles.
    """
    if len(weights.shape) < 2:
        raise ValueError(f"weights must be (..., n_neu, D), got shape {tuple(weights.shape)}")
    (W,) = _to_torch(weights)
    W = W.double()
    U = W / W.norm(dim=-2, keepdim=True)  # unit columns
    Ui, Uj = U.unsqueeze(-1), U.unsqueeze(-2)  # (..., n_neu, D, 1), (..., n_neu, 1, D)
    # 2·atan2(|u-v|, |u+v|) (Kahan) is accurate near 0° and 180°, unlike arccos(u·v)
    angles = torch.rad2deg(2 * torch.atan2((Ui - Uj).norm(dim=-3), (Ui + Uj).norm(dim=-3)))
    D = W.shape[-1]
    upper = torch.ones(D, D, dtype=torch.bool, device=W.device).triu(1)
    return _like(angles.masked_fill(~upper, float("nan")), weights)


def fit_lstsq(H, X, rtol=1e-10):
    """Least-squares linear decoders with bias, batched over K.

    H (K, n, N) hidden states, X (K, n, D) latents -> W (K, N, D), b (K, D).
    Solved in float64 from the normal equations of the centred data with the
    pseudo-inverse of the Gram matrix (eigenvalues below `rtol` x the largest count
    as 0). Why not torch.linalg.lstsq: on CUDA its only driver ('gels') assumes full
    rank, and hidden states are often rank-deficient (silent ReLU units). This gives
    the minimum-norm solution (bias unpenalised): an all-zero or constant unit gets
    weight 0 (to rounding; the bias absorbs constants), duplicated units share their
    weight equally, and predictions match numpy.linalg.lstsq.
    """
    _check_decoder_data(H, X)
    Ht, Xt = (t.double() for t in _to_torch(H, X))
    H_mean, X_mean = Ht.mean(1, keepdim=True), Xt.mean(1, keepdim=True)
    Hc = Ht - H_mean
    gram_pinv = torch.linalg.pinv(Hc.mT @ Hc, rtol=rtol, hermitian=True)
    W = gram_pinv @ (Hc.mT @ (Xt - X_mean))
    b = (X_mean - H_mean @ W).squeeze(1)
    return _like(W, H), _like(b, H)


def fit_adam(H, X, lr=3e-3, batch_size=16, n_batch=1000, seed=0):
    """The paper's decoder: K independent Linear(N, D) trained with Adam on the MSE.

    Step i uses trials [i·batch_size, (i+1)·batch_size) of each of the K training
    sets (fresh trials every step), so H (K, n, N) needs n >= n_batch·batch_size.
    Init as torch.nn.Linear, U(-1/sqrt(N), 1/sqrt(N)), from a generator seeded with
    `seed`. Returns W (K, N, D), b (K, D) and the MSE of each step, loss_hist (K, n_batch).
    """
    _check_decoder_data(H, X)
    if n_batch < 1 or batch_size < 1:
        raise ValueError(f"n_batch and batch_size must be >= 1, got {n_batch}, {batch_size}")
    if H.shape[1] < n_batch * batch_size:
        raise ValueError(f"H has {H.shape[1]} trials per decoder; n_batch·batch_size = "
                         f"{n_batch * batch_size} are needed (one fresh batch per step)")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    Ht, Xt = _to_torch(H, X)
    Xt = Xt.to(Ht.dtype)
    K, _, N = Ht.shape
    D = Xt.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(N)
    W = ((2 * torch.rand(K, N, D, generator=gen, dtype=Ht.dtype) - 1) * bound).to(Ht.device)
    b = ((2 * torch.rand(K, D, generator=gen, dtype=Ht.dtype) - 1) * bound).to(Ht.device)
    W.requires_grad_()
    b.requires_grad_()
    opt = torch.optim.Adam([W, b], lr=lr, fused=True)  # fused: ~30 % faster on CPU
    loss_hist = torch.empty(K, n_batch, dtype=Ht.dtype, device=Ht.device)
    for i in range(n_batch):
        trials = slice(i * batch_size, (i + 1) * batch_size)
        pred = torch.baddbmm(b.unsqueeze(1), Ht[:, trials], W)
        loss = ((pred - Xt[:, trials]) ** 2).mean((1, 2))  # one MSE per decoder
        opt.zero_grad(set_to_none=True)
        # decoders share no parameters and Adam is elementwise, so summing the K
        # losses trains each decoder exactly as if it were trained alone
        loss.sum().backward()
        opt.step()
        loss_hist[:, i] = loss.detach()
    return _like(W.detach(), H), _like(b.detach(), H), _like(loss_hist, H)


# Convergence of the Adam decoder (the reliability issue §5): the paper's protocol fixes its
# batches, so a decoder still learning at the end under-reports the network's r².
# Calibrated on the committed sweeps' 17,200 Adam histories, with the mirror image (a rise as
# large) as the count of false alarms: windows of a tenth flag rises almost as often as falls
# (Adam's loss jitters in bursts); windows of a fifth with z >= 4 flag 178 falls and 9 rises.
FALL_WINDOW = 0.2  # the last fifth of a loss history is compared with the fifth before it
FALL_Z = 4.0  # a fall counts when it stands out of the batch-to-batch noise (Welch z) ...
FALL_REL = 0.05  # ... and is at least 5 % of the final loss (a fall too small to matter is not flagged)


def loss_fall(history, window=FALL_WINDOW):
    """How much a decoder's loss still falls at the end of its history (..., n) (per
    batch, or the 100-point means the result files keep): the mean of the last
    `window` fraction of the points against that of the fraction before. Returns
    numpy (relative fall, z): the drop over the final mean, and the drop over its
    standard error from the scatter of the points within the two windows (Welch);
    z is ±inf for noise-free histories that change, 0 for flat ones."""
    h = _to_numpy(history)
    w = max(2, int(round(window * h.shape[-1])))
    if h.shape[-1] < 2 * w:
        raise ValueError(f"a loss history needs >= {2 * w} points for windows of {w}, got {h.shape[-1]}")
    before, last = h[..., -2 * w:-w], h[..., -w:]
    drop = before.mean(-1) - last.mean(-1)
    se = np.sqrt((before.var(-1, ddof=1) + last.var(-1, ddof=1)) / w)
    with np.errstate(divide='ignore', invalid='ignore'):
        rel = drop / np.abs(last.mean(-1))
        z = np.where(se > 0, drop / np.where(se > 0, se, 1), np.sign(drop) * np.inf)
    return rel, np.nan_to_num(z, nan=0.0, posinf=np.inf, neginf=-np.inf)


def still_falling(history, window=FALL_WINDOW, z_min=FALL_Z, rel_min=FALL_REL):
    """True where a loss history (..., n) is still falling at its end: a fall of at
    least `rel_min` of the final loss, `z_min` standard errors out of the noise."""
    rel, z = loss_fall(history, window)
    return (rel >= rel_min) & (z >= z_min)


def predict(H, W, b):
    """Decoder outputs H @ W + b: (K, n, N), (K, N, D), (K, D) -> (K, n, D)."""
    if len(H.shape) != 3 or tuple(W.shape) != (H.shape[0], H.shape[2], W.shape[-1]) \
            or tuple(b.shape) != (H.shape[0], W.shape[-1]):
        raise ValueError(f"need H (K, n, N), W (K, N, D), b (K, D); got "
                         f"{tuple(H.shape)}, {tuple(W.shape)}, {tuple(b.shape)}")
    Ht, Wt, bt = _to_torch(H, W, b)
    dtype = torch.promote_types(Ht.dtype, Wt.dtype)
    return _like(torch.baddbmm(bt.to(dtype).unsqueeze(1), Ht.to(dtype), Wt.to(dtype)), H)

# -----------------------------------------------------------------------------
# sparseness (SPEC §6)

def sparsity(rates):
    """Vinje–Gallant sparseness of each unit over m stimuli: (m, N) -> (N,).

    S = (1 - (mean r)² / mean(r²)) / (1 - 1/m); 0 for a constant unit, 1 for a unit
    active on a single stimulus; a silent unit (all rates exactly 0) counts as 1.
    The ratio is scale-free, so no tolerance is needed for nearly silent units.
    Signed activity (tanh, LSTM) is used as is; S then lies in [0, m/(m-1)].
    """
    r = _to_numpy(rates)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"rates must be (m, N) with m >= 2 stimuli, got shape {r.shape}")
    m = r.shape[0]
    mean_sq = (r ** 2).mean(0)
    silent = mean_sq == 0
    ratio = r.mean(0) ** 2 / np.where(silent, 1, mean_sq)
    return np.where(silent, 1.0, (1 - ratio) / (1 - 1 / m))


def active_fraction(rates, thresh=0.0):
    """Percentage of units with rate > thresh, averaged over stimuli: (m, N) -> float."""
    r = _to_numpy(rates)
    if r.ndim != 2 or r.size == 0:
        raise ValueError(f"rates must be a non-empty (m, N) array, got shape {r.shape}")
    return float(100 * (r > thresh).mean(1).mean(0))


def mean_ci(values, level=0.95, axis=-1):
    """Mean and half-width of its `level` confidence interval (t distribution) along axis."""
    v = _to_numpy(values)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if v.ndim == 0 or v.shape[axis] < 2:
        raise ValueError(f"values need >= 2 entries along axis {axis}, got shape {v.shape}")
    n = v.shape[axis]
    half = stats.t.ppf((1 + level) / 2, n - 1) * stats.sem(v, axis=axis)
    mean = v.mean(axis)
    if mean.ndim == 0:
        return float(mean), float(half)
    return mean, half

# -----------------------------------------------------------------------------
# abstraction metrics (Bernardi et al. 2020) for the quadrant dichotomies of a 2-D latent
# A condition is a quadrant (sign pattern of x, x > 0 counting as positive); the
# dichotomy "x_d" splits the four quadrants by the sign of x_d, two on each side.

DICHOTOMIES = ("x1", "x2")


def _check_abstraction_data(H, X):
    H, X = _to_numpy(H), _to_numpy(X)
    if H.ndim != 2 or X.ndim != 2 or X.shape[1] != 2 or len(H) != len(X):
        raise ValueError(f"H must be (n, N) and X (n, 2) with the same n; "
                         f"got H {H.shape}, X {X.shape}")
    pos = X > 0
    for s1 in (True, False):
        for s2 in (True, False):
            if not np.any((pos[:, 0] == s1) & (pos[:, 1] == s2)):
                raise ValueError(f"X has no trial in the quadrant with signs "
                                 f"({'+' if s1 else '-'}, {'+' if s2 else '-'}); all four are needed")
    return H, pos


def ccgp(H, X, classifier=None, seed=0):
    """Cross-condition generalization performance of each quadrant dichotomy.

    For "x_d": train a linear classifier of sign(x_d) on the two quadrants with one
    sign of the other latent and test it on the two quadrants with the other sign;
    the score is the test accuracy averaged over the 2 choices. (Training on a
    diagonal pair of quadrants is left out: its boundary is ill-posed even for a
    perfectly disentangled code, e.g. I vs III is separated as well by x1 + x2 = 0.)
    Each quadrant is first subsampled (`seed`) to the smallest one's size, so chance
    is 0.5. H is centred and divided by its overall std (one number: geometry is
    kept). Default classifier: LogisticRegression(C=1); any sklearn classifier works.
    Returns {'x1': score, 'x2': score}.
    """
    H, pos = _check_abstraction_data(H, X)
    classifier = LogisticRegression(C=1.0, max_iter=1000) if classifier is None else classifier
    rng = np.random.default_rng(seed)
    quadrant = 2 * pos[:, 0] + pos[:, 1]
    n_min = np.bincount(quadrant, minlength=4).min()
    keep = np.concatenate([rng.choice(np.flatnonzero(quadrant == q), n_min, replace=False)
                           for q in range(4)])
    H, pos = H[keep], pos[keep]
    H = (H - H.mean(0)) / max(H.std(), np.finfo(float).tiny)
    scores = {}
    for d, name in enumerate(DICHOTOMIES):
        other = pos[:, 1 - d]
        acc = []
        for other_sign in (True, False):
            train = other == other_sign
            clf = clone(classifier).fit(H[train], pos[train, d])
            acc.append(clf.score(H[~train], pos[~train, d]))
        scores[name] = float(np.mean(acc))
    return scores


def _cosine(u, v):
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def parallelism_score(H, X):
    """Parallelism score of each quadrant dichotomy.

    For "x_d", a pairing matches each quadrant with x_d > 0 to one with x_d <= 0; each
    pair gives a coding vector (mean H of the positive quadrant minus that of its
    partner). With two quadrants per side there are two pairings: the natural one
    (partners share the sign of the other latent) and the crossed one. The score is
    the max over pairings of the cosine between the pairing's two coding vectors.
    Returns {'x1': score, 'x2': score}.
    """
    H, pos = _check_abstraction_data(H, X)
    scores = {}
    for d, name in enumerate(DICHOTOMIES):
        side, other = pos[:, d], pos[:, 1 - d]

        def mean(side_sign, other_sign):
            return H[(side == side_sign) & (other == other_sign)].mean(0)

        natural = _cosine(mean(True, True) - mean(False, True), mean(True, False) - mean(False, False))
        crossed = _cosine(mean(True, True) - mean(False, False), mean(True, False) - mean(False, True))
        scores[name] = max(natural, crossed)
    return scores


ABSTRACTION_BOOT = 20  # resamples of the trials for the standard errors of CCGP and PS (as many as the nulls' draws)
ABSTRACTION_Z = 1.96  # the reported interval is value ± ABSTRACTION_Z standard errors (95 %)


def abstraction_metrics(H, X, classifier=None, seed=0, n_boot=0):
    """CCGP and parallelism score of both dichotomies of hidden states H (n, N), latents X (n, 2).

    Returns {'ccgp_x1', 'ccgp_x2', 'ps_x1', 'ps_x2'} as floats. With n_boot > 0, also
    each one's standard error '<key>_se' and its 95 % interval '<key>_ci' ([value −
    1.96 se, value + 1.96 se]). The standard error is the spread over the trials drawn:
    the std over n_boot bootstrap resamples of the trials, drawn with replacement within
    each quadrant (so every quadrant keeps its size), the classifiers refit on each.
    It is not a correction for the sample size: CCGP rises with the trials per quadrant
    (its classifiers learn the coding direction better), so values are comparable only
    at one sample size (generalize.py's and analyze.py's n_abstraction).
    """
    c = ccgp(H, X, classifier=classifier, seed=seed)
    p = parallelism_score(H, X)
    out = {**{f"ccgp_{k}": v for k, v in c.items()}, **{f"ps_{k}": v for k, v in p.items()}}
    if n_boot:
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
            raise ValueError(f"n_boot must be an integer >= 2 (or 0: no standard errors), got {n_boot!r}")
        H, X = _to_numpy(H), _to_numpy(X)
        quadrant = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
        members = [np.flatnonzero(quadrant == q) for q in range(4)]
        rng = np.random.default_rng([seed, 1])  # apart from ccgp's own subsampling stream
        draws = []
        for _ in range(n_boot):
            idx = np.concatenate([rng.choice(m, m.size, replace=True) for m in members])
            draws.append(abstraction_metrics(H[idx], X[idx], classifier=classifier, seed=seed))
        for key in list(out):
            se = float(np.std([d[key] for d in draws], ddof=1))
            out[key + '_se'] = se
            out[key + '_ci'] = [out[key] - ABSTRACTION_Z * se, out[key] + ABSTRACTION_Z * se]
    return out
