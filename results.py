"""Result files: their names, the one atomic writer of every output, safe reading, the
guard that keeps results made from other networks, and their summaries (for
generalize.py, sparsity.py, the analyses, the sweep and the figure notebooks).

A results file `results/<name>.npz` holds arrays whose first two axes are
(n_tasks, n_runs), the rest being repeats of one network's evaluation (held-out
splits × decoder fits). Two summaries are reported (SPEC §5 and the fidelity issue):
- pooled: median and interquartile range over runs × splits × fits (the paper's);
- over networks: one value per network (its mean over splits × fits), their median
  and a bootstrap 95 % interval of that median, so the spread between networks shows.
Files are read with allow_pickle=False: nothing is unpickled.

Names: results/<label>[_ID][_paper][_lstsq].npz (in distribution, the paper's test sets,
the least-squares decoder) and results/sparsity_<label>.npz, built by result_name alone.

An existing output made from other networks is never replaced unless asked for
(overwrite=True): its JSON records the networks it evaluated (run folders or .pth files)
and how many batches each was trained for. A new output replaces it silently only when
it evaluates every one of those networks again, each trained at least as long (a rerun,
more runs or task counts, a finished run that was evaluated unfinished); otherwise
(other folders, fewer of them, a shorter training) refuse_replacing names the file.
Checkpoint fingerprints are not compared: they change with every copy of a folder.
"""
import json
import os
import pickle
import shutil
import sys
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

N_BOOT = 10_000  # bootstrap resamples of the networks
LEVEL = 0.95  # confidence level of the bootstrap interval


# ---------------------------------------------------------------------------------
# Names

PROTOCOLS = ('correct', 'paper')  # OOD test sets of generalize.py ('paper' adds '_paper')
DECODERS = ('adam', 'lstsq')  # decoders of generalize.py ('lstsq' adds '_lstsq')


def result_name(label, out_of_distribution=True, protocol='correct', decoder='adam', sparsity=False):
    """The name of a results file, results/<name>.npz: sparsity.py's `sparsity_<label>`,
    or generalize.py's `<label>[_ID][_paper][_lstsq]` (in distribution, the paper's
    test sets, the least-squares decoder)."""
    if sparsity:
        return 'sparsity_' + label
    return (label + ('' if out_of_distribution else '_ID') + ('_paper' if protocol == 'paper' else '')
            + ('_lstsq' if decoder == 'lstsq' else ''))


def parse_name(name):
    """The arguments of result_name that give `name` (its suffixes read back)."""
    if name.startswith('sparsity_'):
        return {'label': name.removeprefix('sparsity_'), 'sparsity': True}
    parts = {'sparsity': False, 'decoder': 'adam', 'protocol': 'correct', 'out_of_distribution': True}
    for suffix, key, value in (('_lstsq', 'decoder', 'lstsq'), ('_paper', 'protocol', 'paper'),
                               ('_ID', 'out_of_distribution', False)):
        if name.endswith(suffix) and len(name) > len(suffix):
            name, parts[key] = name.removesuffix(suffix), value
    return {'label': name, **parts}


# ---------------------------------------------------------------------------------
# Reading and writing

def load_results(results_dir, name):
    """results_dir/<name>.npz (ours or the paper's) as a dict of arrays. A file that is
    not an .npz (truncated, other bytes, pickled objects) or lacks `n_tasks` and its
    measure (`r_sq`; `sparsity` for sparsity_<label>) raises ValueError naming it."""
    path = os.path.join(results_dir, name + '.npz')
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} not found') from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError) as e:
        raise ValueError(f'{path} is not a readable results file ({_reason(e)}); remake it or delete it') from None
    if not isinstance(arrays, dict) or not arrays:
        raise ValueError(f'{path} is not a results file (no arrays); remake it or delete it')
    needed = ('n_tasks', 'sparsity' if parse_name(name)['sparsity'] else 'r_sq')
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise ValueError(f"{path} is not a complete results file: no {' or '.join(missing)} "
                         f"(it holds {', '.join(sorted(arrays))}); remake it or delete it")
    return arrays


def _reason(error):
    if 'allow_pickle' in str(error):  # numpy's advice (allow_pickle=True) is one we never give
        return 'not an .npz of plain arrays: reading it would unpickle objects'
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def atomic_write(path, write):
    """Write a file through a temporary file in its folder, fsync and a rename, so that a
    crash mid-write never leaves a truncated file behind: `write(f)` fills the binary file
    f. Creates the folder; on any failure the temporary file is removed and an existing
    file at `path` is kept."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path), suffix='.tmp')
    try:
        # mkstemp makes the file 0600; give it the permissions any other file gets
        # under the umask (as numpy's and matplotlib's files), so a shared folder stays readable
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def save_json(obj, path):
    """JSON (indented; numpy scalars and arrays, torch tensors as lists) through atomic_write."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable).encode()))


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    torch = sys.modules.get('torch')  # a tensor exists only where torch is loaded: never imported here
    if isinstance(x, np.ndarray) or (torch is not None and isinstance(x, torch.Tensor)):
        return x.tolist()
    raise TypeError(f'{type(x).__name__} is not JSON serialisable')


def save(path, data):
    """Write one output file atomically (atomic_write): a dict of arrays as .npz, a str
    as text, bytes as they are (a rendered figure), anything else as JSON."""
    if path.endswith('.npz'):
        atomic_write(path, lambda f: np.savez(f, **data))
    elif isinstance(data, bytes):
        atomic_write(path, lambda f: f.write(data))
    elif isinstance(data, str):
        atomic_write(path, lambda f: f.write(data.encode()))
    else:
        save_json(data, path)


def save_results(path, **arrays):
    """save(path, arrays): a results .npz."""
    save(path, arrays)


# ---------------------------------------------------------------------------------
# Outputs made from other networks are kept

def recorded_networks(summary):
    """{network: batches trained (None: unknown)} an output's JSON records: a results
    file's `networks` (per task count) with its `batches` (n_tasks × n_runs), less its
    `broken` runs (not evaluated); an analysis' `network` and `batches`."""
    if 'networks' in summary:
        rows = summary.get('batches') or []
        out = {}
        for i, folders in enumerate(summary['networks'].values()):
            for j, where in enumerate(folders):
                out[where] = rows[i][j] if i < len(rows) and j < len(rows[i]) else None
        return {where: b for where, b in out.items() if where not in (summary.get('broken') or {})}
    return {summary['network']: summary.get('batches')}


def same_place(a, b):
    """Whether two paths name the same folder (as written, or resolved from here)."""
    return os.path.normpath(a) == os.path.normpath(b) or os.path.abspath(a) == os.path.abspath(b)


def not_evaluated_again(old, new):
    """The networks of `old` ({where: batches}) that `new` does not evaluate again
    trained at least as long: another folder, or fewer batches than before."""
    lost = []
    for where, batches in old.items():
        match = [b for w, b in new.items() if same_place(w, where)]
        if not match or (batches is not None and match[0] is not None and float(match[0]) < float(batches)):
            lost.append(where)
    return lost


def refuse_replacing(output, record, networks, overwrite, elsewhere='--label or --results_dir'):
    """Before any work: raise FileExistsError when `output` exists and was made from
    other networks than `networks` ({where: batches}, those this run evaluates) and
    not `overwrite`. `record`: the JSON that says what it was made from (absent or
    unreadable: unknown networks, e.g. the paper's published file); `elsewhere`: the
    hyperparameters that choose another output."""
    if overwrite or not os.path.exists(output):
        return
    try:
        with open(record, encoding='utf-8') as f:
            summary = json.load(f)
        old = recorded_networks(summary)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        old, summary = None, {}
    if old is not None:
        lost = not_evaluated_again(old, networks)
        if not lost:
            return
        config = summary.get('config') or summary.get('hyperparameters') or {}
        trained = sorted({b for b in old.values() if b is not None})
        made = (f"{len(old)} network(s) ({lost[0]}{', ...' if len(lost) > 1 else ''}"
                + (f"; runs_dir={config['runs_dir']!r}" if config.get('runs_dir') else '')
                + (f"; {', '.join(f'{b:.0f}' for b in trained)} batches" if trained else '')
                + f"); {len(lost)} of them are not among this run's networks (or are trained for fewer batches now)")
    else:
        made = f'networks it does not record ({record} is missing or unreadable)'
    raise FileExistsError(f"{output} was made from {made}: not replaced; choose another {elsewhere}, "
                          "or pass --overwrite=True to replace it")


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
    # imported here: scipy.stats is slow to import, and reading results should stay fast
    from scipy import stats
    ci = stats.ttest_1samp(diff, 0.0).confidence_interval(level)
    return {'diff': _listed(diff), 'mean': float(diff.mean()), 'ci_low': float(ci.low), 'ci_high': float(ci.high),
            'p_wilcoxon': float(stats.wilcoxon(diff).pvalue), 'n': int(diff.size), 'level': level}


def versus_baseline(trained, untrained, n_boot=N_BOOT, level=LEVEL, seed=0):
    """Trained networks against their untrained baseline (issue 18), per task count of
    `trained` (r_sq arrays, n_tasks × runs × ...): the trained networks' median r² (each
    network's mean), the baseline's median over all its networks (an untrained network's
    hidden state does not depend on N_task, so every task count's networks pool into one
    band), and the difference of the two medians with its percentile bootstrap interval
    (networks resampled within each group; the groups are not paired)."""
    base = per_network(untrained).ravel()
    base = base[np.isfinite(base)]
    rng = np.random.default_rng(seed)
    rows = []
    for nets in per_network(trained):
        nets = nets[np.isfinite(nets)]
        if not nets.size or not base.size:
            rows.append({'trained': None, 'untrained': None, 'diff': None, 'ci_low': None, 'ci_high': None})
            continue
        boot = (np.median(nets[rng.integers(nets.size, size=(n_boot, nets.size))], axis=1)
                - np.median(base[rng.integers(base.size, size=(n_boot, base.size))], axis=1))
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(boot, [tail, 100 - tail])
        rows.append({'trained': float(np.median(nets)), 'untrained': float(np.median(base)),
                     'diff': float(np.median(nets) - np.median(base)), 'ci_low': float(low), 'ci_high': float(high)})
    return rows


# (trained results, their untrained baseline): the conditions of the OOD figures (issue 18)
BASELINES = [('RNN', 'RNN_untrained'), ('RNN_NoLeak', 'RNN_NoLeak_untrained'), ('LSTM', 'LSTM_untrained'),
             ('gpt-2', 'gpt-2_untrained'), ('Quad', 'Quad_untrained'),
             *[(f'HighDim_D{d}', f'HighDim_D{d}_untrained') for d in (2, 4, 6, 8, 10)],
             *[(f'HighDim5b{net}_D{d}', f'HighDim5b{net}_D{d}_untrained') for net in ('', '_gpt-2')
               for d in (2, 4, 6, 8, 10)],
             *[(f'Noise_{n}', f'Noise_{n}_untrained') for n in (1, 2, 3, 4, 6)],
             ('FreeRT', 'FreeRT_untrained'),
             *[(f'FreeRT_T{t}', f'FreeRT_T{t}_untrained') for t in (5, 10, 20, 30, 40)],
             *[(f'FreeRT5a_T{t}', f'FreeRT5a_T{t}_untrained') for t in (5, 10, 20, 30, 40)]]


def baseline_report(results_dir='results', pairs=BASELINES):
    """Markdown rows: for each (trained, baseline) pair whose files exist, under each
    protocol, the trained networks' median r² at their first and last task count (Adam,
    and least squares where the trained sweep has a _lstsq file), the untrained
    baseline under both decoders, and the differences that say whether training beats
    the information already there: trained (Adam) − untrained (lstsq) at the first and
    the last task count, and trained (lstsq) − untrained (lstsq) at the last, each with
    its bootstrap interval (versus_baseline)."""
    def have(name):
        return os.path.exists(os.path.join(results_dir, name + '.npz'))

    def median(a, i):
        return f'{float(np.nanmedian(per_network(a)[i])):.3f}'

    def diff(v):
        return f"{v['diff']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"

    lines = ['| trained | protocol | N_task | trained, Adam | trained, lstsq | untrained, Adam | untrained, lstsq '
             '| Adam − untrained lstsq, first N_task | Adam − untrained lstsq, last N_task '
             '| lstsq − untrained lstsq, last N_task |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for label, base in pairs:
        for protocol in PROTOCOLS:
            names = {(kind, d): result_name(lab, protocol=protocol, decoder=d)
                     for kind, lab in (('trained', label), ('untrained', base)) for d in ('adam', 'lstsq')}
            if not all(have(names[key]) for key in (('trained', 'adam'), ('untrained', 'adam'), ('untrained', 'lstsq'))):
                continue
            files = {key: load_results(results_dir, name) for key, name in names.items() if have(name)}
            res = {key: f['r_sq'] for key, f in files.items()}
            adam, lstsq = res['trained', 'adam'], res.get(('trained', 'lstsq'))
            base_adam, base_lstsq = (versus_baseline(adam, res['untrained', d]) for d in ('adam', 'lstsq'))
            k = [int(x) for x in files['trained', 'adam']['n_tasks']]
            both = versus_baseline(lstsq, res['untrained', 'lstsq'])[-1] if lstsq is not None else None
            lines.append(f"| {label} | {protocol} | {k[0]} → {k[-1]} | {median(adam, 0)} → {median(adam, -1)} "
                         f"| {f'{median(lstsq, 0)} → {median(lstsq, -1)}' if lstsq is not None else '–'} "
                         f"| {base_adam[0]['untrained']:.3f} | {base_lstsq[0]['untrained']:.3f} "
                         f"| {diff(base_lstsq[0])} | {diff(base_lstsq[-1])} | {diff(both) if both else '–'} |")
    return lines
