"""Disentanglement metrics of a network's final hidden states beside OOD r² (issue 21):
DCI (Eastwood & Williams 2018), MIG (Chen et al. 2018, for continuous latents) and the
abstraction metrics CCGP / parallelism score of metrics.py, each with null models:
the value on shuffled condition labels and, for CCGP / PS, a geometric null after
Bernardi et al. 2020. Arrays in, floats out; no file I/O.

Definitions (H (n_trials, N) hidden states, X (n_trials, D) latents, D >= 2):
- Silent units: a unit whose std over trials is below `silent_std` (SILENT_STD) is
  dropped before every metric; `network_metrics` reports how many were dropped.
- DCI: a regressor predicts each latent from the active units; its importance matrix
  R (N_active, D) gives, with P_ij = R_ij / sum_k R_ik,
    disentanglement D = sum_i rho_i (1 - H_D(P_i.)),   rho_i = sum_j R_ij / sum_ij R_ij
    completeness    C = mean_j (1 - H_N(P~_.j)),       P~_ij = R_ij / sum_k R_kj
  with entropies in base D (number of latents) and base N_active. Informativeness I
  is the held-out r² = 1 - MSE / Var(latent on the test trials), averaged over the
  latents. The regressor is trained on a random half of the trials (TEST_FRACTION
  held out). 'lasso' (default): sklearn Lasso(alpha) on z-scored units and z-scored
  latents, importance |coef|. 'gbt': one sklearn GradientBoostingRegressor per latent,
  importance feature_importances_ (about 100x slower; meant for single networks).
  When no unit gets any importance (all-zero lasso), D = C = 0.
  Caveat: lasso importance is the regressor's sparse choice, not each unit's tuning.
  In a large random population some units lie close to each latent's axis and lasso
  picks those, so a random ReLU mixture can score D ≈ 1 (while its MIG stays ≈ 0);
  the shuffle null does not correct this. Read DCI-D beside MIG.
- MIG: every unit and latent is cut into `n_bins` (N_BINS = 20, as Locatello et al.
  2019) equal-frequency bins (by rank; tied values share a bin); I(unit; latent) is the
  plug-in mutual information of the joint histogram (nats). For each latent, the gap
  between the largest and second-largest I over units, divided by the latent's entropy
  under the same binning; MIG is the mean over latents. Rank bins make MIG invariant to
  any monotone transform of a unit (tanh(x1) codes x1 as well as x1 does); equal-width
  bins are not, their edges fall off a unit's range and blur the code. The plug-in
  estimate is biased upwards by about (n_bins - 1)² / (2 n_trials) nats, so a perfect
  code scores slightly below 1 and the shuffle null (same bias) is the reference.
  MIG counts information, so noise lowers it: a unit x1 + noise of std one bin width
  (0.05, about the network's estimation noise σ/√T) loses roughly half its gap.
- CCGP / PS: metrics.ccgp / metrics.parallelism_score on the four quadrants of
  (x1, x2), averaged over the two dichotomies (D = 2 only; NaN otherwise).

Null models (n_shuffles draws each, from one generator seeded with `seed`):
- shuffle: the rows of X are permuted against H, so every metric sees a code that
  carries no information about the latents with the same units and the same latent
  distribution. Applies to DCI, MIG, CCGP and PS.
- geometric (CCGP / PS): Bernardi et al. 2020 test CCGP and PS against random
  geometries built from the data: the condition clouds keep their noise and their
  separation, but the conditions are placed at random relative to one another (their
  STAR Methods were not re-read for this implementation; check the construction below
  against them). Here each quadrant's centroid m_q, relative to the grand mean g, is
  turned by its own Haar-random orthogonal matrix Q_q (N_active x N_active), and its
  trials move with it: h -> g + Q_q (m_q - g) + (h - m_q). The centroids' distances
  from g and the within-quadrant scatter are kept; the parallel arrangement of the
  coding directions is destroyed. With four conditions every draw is nearly
  all-or-none for CCGP, so its geometric band is wide (e.g. 0.1-0.96).
Each null gives a band (percentiles BAND, default 5-95 %) and a one-sided p-value
(1 + #{null >= observed}) / (1 + n_shuffles): small when the network scores above
its null.
"""
import numpy as np
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Lasso

import metrics

SILENT_STD = 1e-6  # a unit whose std over trials is below this is silent (excluded)
N_BINS = 20  # MIG: equal-frequency bins per unit and per latent
LASSO_ALPHA = 0.01  # DCI lasso penalty on z-scored units and latents
TEST_FRACTION = 0.5  # DCI: share of trials held out for informativeness
N_SHUFFLES = 20  # draws of each null model
N_STIMULI = 2000  # random noise-free stimuli the analyses score steady states on (analyze.py, analyze_transformer.py)
BAND = (5.0, 95.0)  # percentiles of the null band
REGRESSORS = ('lasso', 'gbt')

# -----------------------------------------------------------------------------
# helpers


def _check_data(H, X):
    H, X = np.asarray(H, dtype=np.float64), np.asarray(X, dtype=np.float64)
    if H.ndim != 2 or X.ndim != 2 or len(H) != len(X):
        raise ValueError(f"H must be (n_trials, n_units) and X (n_trials, D) with the same n_trials; "
                         f"got H {H.shape}, X {X.shape}")
    if X.shape[1] < 2:
        raise ValueError(f"X needs D >= 2 latents (DCI disentanglement and MIG compare latents), got D = {X.shape[1]}")
    if len(H) < 20:
        raise ValueError(f"need at least 20 trials, got {len(H)}")
    if not (np.isfinite(H).all() and np.isfinite(X).all()):
        raise ValueError("H and X must be finite (found NaN or inf)")
    return H, X


def active_units(H, silent_std=SILENT_STD):
    """Boolean mask (N,) of the units whose std over trials is >= silent_std."""
    return np.asarray(H, dtype=np.float64).std(0) >= silent_std


def _zscore(A):
    return (A - A.mean(0)) / A.std(0)


def _entropy(p, base):
    """Entropy of each row of p (rows sum to 1) in log base `base`; 0 log 0 = 0."""
    with np.errstate(divide='ignore', invalid='ignore'):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(-1) / np.log(base)

# -----------------------------------------------------------------------------
# DCI


def importance_matrix(H, X, regressor='lasso', alpha=LASSO_ALPHA, seed=0):
    """Importance R (N, D) of each unit for each latent and the held-out r² (D,) of the
    regressor, trained on a random (1 - TEST_FRACTION) of the trials. H must have no
    silent unit (z-scoring divides by each unit's std)."""
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
    n = len(H)
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(TEST_FRACTION * n))
    test, train = order[:n_test], order[n_test:]
    if regressor == 'lasso':
        Hz, Xz = _zscore(H), _zscore(X)
        # precompute: the Gram matrix is small (N x N) and makes coordinate descent ~3x faster;
        # correlated ReLU populations need ~2000 sweeps to converge (sklearn's default is 1000)
        model = Lasso(alpha=alpha, precompute=True, max_iter=10000).fit(Hz[train], Xz[train])
        R = np.abs(model.coef_).T
        pred = model.predict(Hz[test]) * X.std(0) + X.mean(0)
    else:
        R, pred = np.empty((H.shape[1], X.shape[1])), np.empty((n_test, X.shape[1]))
        for j in range(X.shape[1]):
            model = GradientBoostingRegressor(random_state=seed).fit(H[train], X[train, j])
            R[:, j], pred[:, j] = model.feature_importances_, model.predict(H[test])
    r2 = 1 - ((pred - X[test]) ** 2).mean(0) / X[test].var(0)
    return R, r2


def dci_from_importance(R):
    """(disentanglement, completeness) of an importance matrix R (N units, D latents)."""
    R = np.abs(np.asarray(R, dtype=np.float64))
    N, D = R.shape
    total = R.sum()
    if total == 0:  # no unit predicts anything: no structure to credit
        return 0.0, 0.0
    unit_sum, latent_sum = R.sum(1), R.sum(0)
    used = unit_sum > 0
    d_unit = 1 - _entropy(R[used] / unit_sum[used, None], D)
    disentanglement = float((unit_sum[used] / total) @ d_unit)
    # a latent no unit predicts has no complete code: completeness 0
    c_latent = np.zeros(D)
    has = latent_sum > 0
    c_latent[has] = 1 - _entropy((R[:, has] / latent_sum[has]).T, N) if N > 1 else 1.0
    return disentanglement, float(c_latent.mean())


def dci(H, X, regressor='lasso', alpha=LASSO_ALPHA, seed=0):
    """DCI of active units H (n, N) for latents X (n, D): {'dci_d', 'dci_c', 'dci_i'}."""
    R, r2 = importance_matrix(H, X, regressor, alpha, seed)
    d, c = dci_from_importance(R)
    return {'dci_d': d, 'dci_c': c, 'dci_i': float(r2.mean())}

# -----------------------------------------------------------------------------
# MIG


def _bins(A, n_bins):
    """Equal-frequency bin index (n, k) of each column of A: bin = floor(rank · n_bins / n),
    tied values sharing the lowest rank (a ReLU unit's zeros share one bin)."""
    ranks = stats.rankdata(A, method='min', axis=0) - 1
    return (ranks * n_bins // len(A)).astype(int)


def mutual_information(H, X, n_bins=N_BINS):
    """Plug-in mutual information (nats) of each unit with each latent under
    equal-frequency binning, (N, D), and each latent's binned entropy (D,)."""
    n = len(H)
    bh, bx = _bins(H, n_bins), _bins(X, n_bins)
    px = np.stack([np.bincount(bx[:, j], minlength=n_bins) for j in range(X.shape[1])]) / n
    ph = np.stack([np.bincount(bh[:, i], minlength=n_bins) for i in range(H.shape[1])]) / n
    h_x = _entropy(px, np.e)
    h_h = _entropy(ph, np.e)
    mi = np.empty((H.shape[1], X.shape[1]))
    for j in range(X.shape[1]):
        # joint counts of every unit with latent j at once: code = unit_bin * n_bins + latent_bin
        codes = bh * n_bins + bx[:, j:j + 1] + (np.arange(H.shape[1]) * n_bins * n_bins)
        joint = np.bincount(codes.ravel(), minlength=H.shape[1] * n_bins * n_bins)
        joint = joint.reshape(H.shape[1], n_bins * n_bins) / n
        mi[:, j] = h_h + h_x[j] - _entropy(joint, np.e)
    return mi, h_x


def mig(H, X, n_bins=N_BINS):
    """Mutual information gap of active units H (n, N >= 2) for latents X (n, D)."""
    if H.shape[1] < 2:
        return float('nan')
    mi, h_x = mutual_information(H, X, n_bins)
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h_x))

# -----------------------------------------------------------------------------
# null models


def rotate_centroids(H, X, rng):
    """The geometric null's surrogate of H: each quadrant's centroid turned about the
    grand mean by its own Haar-random rotation, its trials moved with it."""
    quadrant = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
    g = H.mean(0)
    out = np.empty_like(H)
    for q in range(4):
        rows = quadrant == q
        m = H[rows].mean(0)
        # Haar-random orthogonal matrix: QR of a Gaussian matrix with the signs of R's diagonal
        Q, Rq = np.linalg.qr(rng.standard_normal((H.shape[1], H.shape[1])))
        Q = Q * np.sign(np.diag(Rq))
        out[rows] = g + Q @ (m - g) + (H[rows] - m)
    return out


def null_summary(name, observed, null, band=BAND):
    """{name_lo, name_hi, name_p} of a null distribution (NaN draws ignored)."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or len(null) == 0:
        return {f'{name}_lo': float('nan'), f'{name}_hi': float('nan'), f'{name}_p': float('nan')}
    lo, hi = np.percentile(null, band)
    p = (1 + np.sum(null >= observed)) / (1 + len(null))
    return {f'{name}_lo': float(lo), f'{name}_hi': float(hi), f'{name}_p': float(p)}

# -----------------------------------------------------------------------------
# entry point

SHUFFLED = ('dci_d', 'dci_c', 'dci_i', 'mig', 'ccgp_mean', 'ps_mean')
GEOMETRIC = ('ccgp_mean', 'ps_mean')


def _scores(H, X, regressor, alpha, n_bins, classifier, seed):
    return {**dci(H, X, regressor, alpha, seed), 'mig': mig(H, X, n_bins),
            **_abstraction(H, X, classifier, seed)}


def _abstraction(H, X, classifier, seed):
    if X.shape[1] != 2:
        return {'ccgp_mean': float('nan'), 'ps_mean': float('nan')}
    s = metrics.abstraction_metrics(H, X, classifier=classifier, seed=seed)
    return {'ccgp_mean': (s['ccgp_x1'] + s['ccgp_x2']) / 2, 'ps_mean': (s['ps_x1'] + s['ps_x2']) / 2}


def network_metrics(H, X, seed=0, n_shuffles=N_SHUFFLES, regressor='lasso', alpha=LASSO_ALPHA,
                    n_bins=N_BINS, silent_std=SILENT_STD, band=BAND, classifier=None):
    """Disentanglement metrics of final hidden states H (n_trials, n_units) for latents
    X (n_trials, D), with their null models, as a flat dict of floats:
      n_units, n_silent                    units in H, units excluded as silent
      dci_d, dci_c, dci_i, mig             DCI (regressor) and MIG of the active units
      ccgp_mean, ps_mean                   CCGP / PS averaged over x1, x2 (NaN unless D = 2)
      <m>_null_lo, <m>_null_hi, <m>_null_p shuffle null of each of those six metrics
      <m>_geo_lo, <m>_geo_hi, <m>_geo_p    geometric null of ccgp_mean and ps_mean
    Metrics are NaN when fewer than 2 units are active. The module docstring defines
    every metric and null.
    """
    H, X = _check_data(H, X)
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise ValueError(f"n_shuffles must be an integer >= 1, got {n_shuffles!r}")
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2):
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if not (len(band) == 2 and 0 <= band[0] < band[1] <= 100):
        raise ValueError(f"band must be two percentiles 0 <= lo < hi <= 100, got {band!r}")
    if not silent_std >= 0:
        raise ValueError(f"silent_std must be >= 0, got {silent_std!r}")
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
    if X.shape[1] == 2:
        metrics._check_abstraction_data(H, X)  # all four quadrants needed, before any work
    active = active_units(H, silent_std)
    out = {'n_units': float(H.shape[1]), 'n_silent': float(np.sum(~active))}
    H = H[:, active]
    if H.shape[1] < 2:
        nan = float('nan')
        out.update({m: nan for m in SHUFFLED})
        for m in SHUFFLED:
            out.update(null_summary(f'{m}_null', nan, []))
        for m in GEOMETRIC:
            out.update(null_summary(f'{m}_geo', nan, []))
        return out
    observed = _scores(H, X, regressor, alpha, n_bins, classifier, seed)
    out.update(observed)
    rng = np.random.default_rng(seed)
    shuffled = [_scores(H, X[rng.permutation(len(X))], regressor, alpha, n_bins, classifier, seed)
                for _ in range(n_shuffles)]
    for m in SHUFFLED:
        out.update(null_summary(f'{m}_null', observed[m], [s[m] for s in shuffled], band))
    if X.shape[1] == 2:
        geometric = [_abstraction(rotate_centroids(H, X, rng), X, classifier, seed) for _ in range(n_shuffles)]
    else:
        geometric = []
    for m in GEOMETRIC:
        out.update(null_summary(f'{m}_geo', observed[m], [s[m] for s in geometric], band))
    return out
