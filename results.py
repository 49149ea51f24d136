"""Result files and their summaries, written once for generalize.py, sparsity.py, the
sweep and the figure notebooks.

A results file `results/<name>.npz` holds arrays whose first two axes are
(n_tasks, n_runs), the rest being repeats of one network's evaluation (held-out
splits × decoder fits). Two summaries are reported (SPEC §5 and the fidelity issue):
- pooled: median and interquartile range over runs × splits × fits (the paper's);
- over networks: one value per network (its mean over splits × fits), their median
  and a bootstrap 95 % interval of that median, so the spread between networks shows.
Files are read with allow_pickle=False: nothing is unpickled.
"""
import json
import os
import shutil
import warnings
import zipfile

import numpy as np
from scipy import stats

N_BOOT = 10_000  # bootstrap resamples of the networks
LEVEL = 0.95  # confidence level of the bootstrap interval


def load_results(results_dir, name):
    """results_dir/<name>.npz (ours or the paper's) as a dict of arrays."""
    path = os.path.join(results_dir, name + '.npz')
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_results(path, **arrays):
    """Write arrays to `path` (.npz) through a temporary file and a rename."""
    tmp = path + '.tmp.npz'
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def history(values, points=100):
    """Loss histories (..., n_batch) as `points` means over equal windows of batches
    (the paper's files keep 100 points): (..., points); shorter ones stay as they are."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    if n <= points:
        return values
    edges = np.linspace(0, n, points + 1).round().astype(int)
    return np.add.reduceat(values, edges[:-1], axis=-1) / np.diff(edges)


def pair_angles(angles):
    """The angle of every pair of decoded latents: the strict upper triangle of
    (..., D, D) matrices; arrays without a square trailing pair are taken as they are."""
    angles = np.asarray(angles, dtype=float)
    if angles.ndim >= 2 and angles.shape[-1] == angles.shape[-2] > 1:
        i, j = np.triu_indices(angles.shape[-1], 1)
        return angles[..., i, j]
    return angles


def quantile_rows(values):
    """Median, 25th and 75th percentile of each row of `values` (an array: over all
    but the first axis; or a list of arrays of any sizes), NaNs ignored."""
    rows = [np.asarray(v, dtype=float).ravel() for v in values]
    with warnings.catch_warnings():  # an all-NaN row (networks not evaluated) gives NaN quietly
        warnings.simplefilter('ignore', RuntimeWarning)
        q = np.array([np.nanpercentile(r, [50, 25, 75]) if r.size else [np.nan] * 3 for r in rows])
    return q[:, 0], q[:, 1], q[:, 2]


def summarise(values):
    """{'median', 'p25', 'p75'} lists, one entry per row (task count), pooled over
    everything else."""
    med, lo, hi = quantile_rows(values)
    return {'median': _listed(med), 'p25': _listed(lo), 'p75': _listed(hi)}


def per_network(values):
    """One value per network: the mean over every axis after (n_tasks, n_runs);
    NaN for networks not evaluated."""
    values = np.asarray(values, dtype=float)
    flat = values.reshape(values.shape[:2] + (-1,))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        return np.nanmean(flat, axis=-1) if flat.shape[-1] else np.full(values.shape[:2], np.nan)


def bootstrap_median_ci(values, n_boot=N_BOOT, level=LEVEL, seed=0):
    """Median of `values` (1-D, NaNs dropped) and the percentile bootstrap interval of
    that median: (median, low, high); NaNs when there is no value."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(v.size, size=(n_boot, v.size))], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(np.median(v)), float(low), float(high)


def network_summary(values, seed=0):
    """Per task count: every network's value, their median and its bootstrap interval."""
    nets = per_network(values)
    rows = [bootstrap_median_ci(row, seed=seed) for row in nets]
    median, low, high = (_listed([r[i] for r in rows]) for i in range(3))
    return {'per_network': [_listed(row) for row in nets], 'median': median,
            'ci_low': low, 'ci_high': high, 'level': LEVEL}


def listed(a):
    """An array as nested JSON-friendly lists of its shape, NaN as None."""
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist()


def _listed(a):
    """A float array as a JSON-friendly list, NaN as None."""
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=float).ravel()]


# ---------------------------------------------------------------------------------
# Per-network results, saved as each network completes

class Partial:
    """The per-network results of one evaluation, saved in `<stem>.partial/` as each
    network completes, so that a failure or an interrupt loses at most the network
    being evaluated and a rerun continues where it stopped. Every network's numbers
    depend on the settings and the network alone (never on the order), so reusing a
    saved one gives what an uninterrupted run gives; a saved result is reused only
    for the same `settings` and the same network (`network`: its path and checkpoint
    fingerprint)."""

    def __init__(self, stem, settings):
        self.folder = stem + '.partial'
        self.settings = json.dumps(settings, sort_keys=True, default=str)

    def _path(self, where):
        return os.path.join(self.folder, os.path.basename(os.path.normpath(where)) + '.npz')

    def _key(self, network):
        return json.dumps({'settings': self.settings, 'network': network}, sort_keys=True)

    def load(self, where, network):
        """The saved arrays of the network at `where`, or None (none saved, or saved
        under other settings or for another checkpoint, or unreadable)."""
        try:
            with np.load(self._path(where), allow_pickle=False) as f:
                if str(f['_key']) != self._key(network):
                    return None
                return {k: f[k] for k in f.files if k != '_key'}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # missing, or not a complete file
            return None

    def save(self, where, network, **arrays):
        os.makedirs(self.folder, exist_ok=True)
        save_results(self._path(where), _key=np.array(self._key(network)), **arrays)

    def clear(self):
        """Remove the per-network files once the merged results are written."""
        shutil.rmtree(self.folder, ignore_errors=True)


def paired(a, b, level=LEVEL):
    """Paired comparison of two sets of networks matched one to one (e.g. the same
    seeds trained with two losses): the differences a - b, their mean with its t
    confidence interval, and the Wilcoxon signed-rank p-value. NaN pairs are dropped."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size < 2:
        return {'diff': _listed(diff), 'mean': None, 'ci_low': None, 'ci_high': None, 'p_wilcoxon': None, 'n': int(diff.size)}
    ci = stats.ttest_1samp(diff, 0.0).confidence_interval(level)
    return {'diff': _listed(diff), 'mean': float(diff.mean()), 'ci_low': float(ci.low), 'ci_high': float(ci.high),
            'p_wilcoxon': float(stats.wilcoxon(diff).pvalue), 'n': int(diff.size), 'level': level}
