"""Representations of one trained RNN or LSTM (SPEC §6): PCA of its hidden states,
fixed points of its noise-free dynamics under a blank stimulus (Jacobian spectra,
time-scale amplification), trajectories in the top PCs, steady-state rate maps over a
grid of noise-free stimuli, the encoder's output geometry and CCGP / parallelism.

    python analyze.py                                      # the first 24-task RNN in trained_networks/
    python analyze.py --path=trained_networks/nTask24_run0  # one run folder (or a paper .pth file)
    python analyze.py --select="{'network': 'LSTM', 'n_task': 6}" --index=2

Everything goes to out_dir/<run name>/: PNG + PDF plots, the numbers beside them
(.npz / .json), an interactive rotating trajectories.html and summary.json. The
network noise is switched off (n_sd = 0); trials keep their input noise.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
path = None  # a run folder or a paper .pth file; None: pick from runs_dir by select and index
runs_dir = 'trained_networks'  # where trained networks are found
select = {'n_task': 24, 'network': 'RNN'}  # config values the network must match
index = 0  # which of the networks matching select (0: the first, sorted by n_task, run)
n_trials = 200  # noisy trials for PCA, trajectories and the fixed points' initial states
n_abstraction = 500  # trials per quadrant of (x1, x2) for CCGP and the parallelism score (as generalize.py's: CCGP rises with it)
n_plot = 40  # trajectories drawn in the PC plots
n_init = 512  # fixed points: initial states sampled on the trajectories
noise_scale = 0.05  # fixed points: std of the jitter added to the initial states
tol_q = 1e-3  # fixed points: keep points with q < tol_q (slow points; trajectories move at q ≈ 0.2 per step)
tol_unique = 1e-3  # fixed points: points closer than this are the same one
max_iters = 5000  # fixed points: Adam steps at most
fp_lr = 1e-2  # fixed points: Adam learning rate
near_zero_tol = 0.05  # eigenvalues with |λ| below this count as zero (attractor directions)
n_grid = 8  # steady-state rate maps: n_grid x n_grid noise-free stimuli in [-.5, .5]²
n_enc_grid = 21  # encoder geometry: n_enc_grid x n_enc_grid latents in [-.5, .5]²
seed = 0  # seed of the trials and the initial states
out_dir = 'analysis'  # results go to out_dir/<run name>/
device = 'auto'  # 'auto', 'cpu' or 'cuda'
n_threads = 1  # CPU threads for torch
unfinished = False  # also analyse a partly trained network (default: refuse it, naming how to finish it)
overwrite = False  # replace an analysis of another network (or of a longer training) in the same folder (default: refuse)
# ------------------------------------------------------------------------
import checks
import configurator

# at least what one trial run at once costs a paper-sized network (22 steps of inputs, encoder
# layers and 64 rates, float32): the estimate that refuses an impossible n_abstraction up front
_BYTES_PER_TRIAL = 22 * (3 + 100 + 100 + 40 + 64) * 4


def check(hp):
    """Reject impossible settings before any work is done (no slow imports needed)."""
    for name in ('n_trials', 'n_plot', 'n_init', 'max_iters', 'n_threads'):
        checks.positive_int(name, hp[name])
    # each initial state of the fixed-point search holds at least a 64×64 Jacobian (float32)
    checks.fits_memory('n_init', hp['n_init'], hp['n_init'] * 64 * 64 * 4)
    if hp['n_trials'] < 8:
        checks.fail('n_trials', hp['n_trials'], 'at least 8 trials (PCA needs some)')
    checks.int_at_least('n_abstraction', hp['n_abstraction'], 2)  # the classifiers need two trials per side
    checks.fits_memory('n_abstraction', hp['n_abstraction'], 4 * hp['n_abstraction'] * _BYTES_PER_TRIAL)
    for name in ('n_grid', 'n_enc_grid'):
        checks.int_at_least(name, hp[name], 2)
    for name in ('tol_q', 'fp_lr', 'near_zero_tol'):
        checks.positive(name, hp[name])
    for name in ('tol_unique', 'noise_scale'):
        checks.non_negative(name, hp[name])
    checks.non_negative_int('index', hp['index'])
    checks.non_negative_int('seed', hp['seed'])
    checks.dictionary('select', hp['select'])
    checks.folder('out_dir', hp['out_dir'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import copy
import json
import os

import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

import checkpoints
import disentanglement
import fixed_points
import metrics
import networks
import plots
import representations as rep
import results
import tasks
import util

SUMMARY = 'summary.json'  # written last: what the folder was made from (results.refuse_replacing reads it)
_QUAD_COLORS = ('#1b9e77', '#d95f02', '#7570b3', '#e7298a')  # quadrants 1-4
_QUAD_SIGNS = ('(+, +)', '(−, +)', '(−, −)', '(+, −)')  # signs of (x1, x2) in quadrants 1-4 (SPEC §2)


# ---------------------------------------------------------------------------------
# Fixed points

def analyse_fixed_points(net, u, h0, dt, tau, tol_q, tol_unique, max_iters, lr, near_zero_tol):
    """Fixed points of the noise-free map under constant input u (1, n_in) from
    initial states h0 (K, S), in float64. Returns the FixedPointResult, the
    amplification (P, 2) of the two largest-real-part eigenvalues and the number of
    near-zero eigenvalues (P,)."""
    net64 = copy.deepcopy(net).double()
    u64 = u.double()

    def F(h):
        return net64.dynamics(u64.expand(len(h), -1), h)

    h0 = torch.as_tensor(h0, dtype=torch.float64, device=u.device)
    res = fixed_points.find_fixed_points(F, h0, tol_q=tol_q, tol_unique=tol_unique,
                                         max_iters=max_iters, lr=lr)
    n_top = min(2, res.eigvals.shape[1])
    amp = fixed_points.amplification(res.eigvals, dt, tau, n_top) if len(res.points) else np.zeros((0, n_top))
    return res, amp, fixed_points.count_near_zero(res.eigvals, near_zero_tol)


# ---------------------------------------------------------------------------------
# Plots and the interactive HTML

def rotating_html(trajectories, colors, points=None, title='trajectories'):
    """A self-contained HTML page (no dependencies) that draws 3-D trajectories
    (n, T, 3) in the given colours and optional points (P, 3) on a canvas and rotates
    them; drag to turn. The data is embedded as JSON."""
    data = {'title': title, 'trajectories': np.round(np.asarray(trajectories, float), 5).tolist(),
            'colors': list(colors),
            'points': np.round(np.asarray(points, float), 5).tolist() if points is not None else []}
    blob = json.dumps(data).replace('</', '<\\/')
    return _HTML.replace('__TITLE__', title.replace('<', '&lt;')).replace('__DATA__', blob)


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{font-family:sans-serif;margin:10px}canvas{border:1px solid #ccc;cursor:grab}</style>
</head><body>
<div>__TITLE__ (top 3 PCs; drag to rotate, black: fixed points)</div>
<canvas id="view" width="640" height="640"></canvas>
<script id="data" type="application/json">__DATA__</script>
<script>
const d = JSON.parse(document.getElementById('data').textContent);
const cv = document.getElementById('view'), ctx = cv.getContext('2d');
const all = d.trajectories.flat().concat(d.points);
const c = [0, 1, 2].map(k => all.reduce((s, p) => s + p[k], 0) / Math.max(all.length, 1));
const r = Math.max(1e-9, ...all.map(p => Math.hypot(p[0] - c[0], p[1] - c[1], p[2] - c[2])));
let yaw = 0, pitch = 0.4, drag = null;
function project(p) {
  const x = p[0] - c[0], y = p[1] - c[1], z = p[2] - c[2];
  const x1 = x * Math.cos(yaw) + z * Math.sin(yaw), z1 = -x * Math.sin(yaw) + z * Math.cos(yaw);
  const y1 = y * Math.cos(pitch) - z1 * Math.sin(pitch);
  const s = 0.45 * cv.width / r;
  return [cv.width / 2 + s * x1, cv.height / 2 - s * y1];
}
function draw() {
  ctx.clearRect(0, 0, cv.width, cv.height);
  ctx.lineWidth = 1.2;
  d.trajectories.forEach((tr, i) => {
    ctx.strokeStyle = d.colors[i];
    ctx.beginPath();
    tr.forEach((p, t) => { const q = project(p); t ? ctx.lineTo(q[0], q[1]) : ctx.moveTo(q[0], q[1]); });
    ctx.stroke();
  });
  ctx.fillStyle = 'black';
  d.points.forEach(p => { const q = project(p); ctx.beginPath(); ctx.arc(q[0], q[1], 3, 0, 2 * Math.PI); ctx.fill(); });
}
cv.onmousedown = e => { drag = [e.clientX, e.clientY]; };
window.onmouseup = () => { drag = null; };
window.onmousemove = e => {
  if (!drag) return;
  yaw += 0.01 * (e.clientX - drag[0]); pitch += 0.01 * (e.clientY - drag[1]);
  drag = [e.clientX, e.clientY];
};
(function loop() { if (!drag) yaw += 0.005; draw(); requestAnimationFrame(loop); })();
</script></body></html>
"""


def _plot_pca(ratio, folder):
    fig, ax = plots.subplots()
    ax.bar(np.arange(1, len(ratio) + 1), 100 * ratio, label='per PC')
    ax.plot(np.arange(1, len(ratio) + 1), 100 * np.cumsum(ratio), 'ko-', ms=3, label='cumulative')
    ax.set(xlabel='principal component', ylabel='explained variance (%)', ylim=(0, 105))
    ax.legend()
    plots.save_figure(fig, os.path.join(folder, 'pca.png'))


def _plot_fixed_points(res, amp, folder):
    fig, ax = plots.subplots(panel=(3.2, 3.2))
    ax.add_patch(Circle((-1, 0), 1, fill=False, ls='--', color='gray'))
    eig = res.eigvals.ravel()
    ax.scatter(eig.real, eig.imag, s=6, alpha=0.6)
    ax.axvline(0, c='gray', lw=0.5)
    ax.set(xlabel='Re λ', ylabel='Im λ', aspect='equal',
           title=f'Jacobian of F(h) − h, {len(res.points)} fixed points')
    if not len(res.points):
        plots.empty_note(ax, 'no fixed points found\n(q < tol_q)')
    plots.save_figure(fig, os.path.join(folder, 'eigenvalues.png'))

    fig, ax = plots.subplots()
    finite = amp[np.isfinite(amp) & (amp > 0)]
    if finite.size:
        ax.hist(np.log10(finite), bins=20)
    else:
        plots.empty_note(ax, 'no fixed points found' if not len(res.points) else 'no finite amplification')
    ax.set(xlabel='log₁₀ amplification A = τ_net / τ', ylabel='count',
           title=f'two slowest modes ({np.sum(np.isinf(amp))} infinite)')
    plots.save_figure(fig, os.path.join(folder, 'amplification.png'))


def _plot_trajectories(proj, colors, fp_proj, folder):
    fig = plots.figure(4.8, 4)
    ax = fig.add_subplot(projection='3d')
    for tr, col in zip(proj, colors):
        ax.plot(tr[:, 0], tr[:, 1], tr[:, 2], c=col, lw=0.8, alpha=0.8)
    handles = [Line2D([], [], c=c, label=f'Q{q} {_QUAD_SIGNS[q - 1]}') for q, c in enumerate(_QUAD_COLORS, 1)]
    if len(fp_proj):
        handles.append(ax.scatter(fp_proj[:, 0], fp_proj[:, 1], fp_proj[:, 2], c='k', s=10, label='fixed points'))
    ax.legend(handles=handles, title='x* in', loc='upper left', bbox_to_anchor=(1.05, 1), fontsize=7)
    ax.set(xlabel='PC1', ylabel='PC2', zlabel='PC3', title='trajectories by quadrant')
    plots.save_figure(fig, os.path.join(folder, 'trajectories.png'))


def _plot_encoder(x, proj, ratio, folder):
    fig, axes = plots.subplots(1, 3, panel=(3, 2.8))
    for d, ax in enumerate(axes[:2]):
        sc = ax.scatter(proj[:, 0], proj[:, 1], c=x[:, d], s=6, cmap='coolwarm')
        ax.set(xlabel='PC1', ylabel='PC2', title=f'encoder output, colour x{d + 1}')
        fig.colorbar(sc, ax=ax)
    axes[2].plot(np.arange(1, len(ratio) + 1), 100 * np.cumsum(ratio), 'ko-', ms=3)
    axes[2].set(xlabel='principal component', ylabel='cumulative variance (%)', ylim=(0, 105))
    plots.save_figure(fig, os.path.join(folder, 'encoder.png'))


# ---------------------------------------------------------------------------------
# The whole analysis

def _range(values):
    finite = values[np.isfinite(values)]
    return [float(finite.min()), float(finite.max())] if finite.size else None


def per_quadrant(env, n, rng):
    """Trials of `env` with exactly n in each quadrant of (x1, x2) (the conditions of
    CCGP and PS), in the order drawn: drawn 4n at a time until every quadrant has n."""
    drawn = []
    while True:
        drawn.append(env.sample(rng, 4 * n))
        x = np.concatenate([t['stim'] for t in drawn])
        quadrant = 2 * (x[:, 0] > 0) + (x[:, 1] > 0)
        if np.bincount(quadrant, minlength=4).min() >= n:
            break
    keep = np.sort(np.concatenate([np.flatnonzero(quadrant == q)[:n] for q in range(4)]))
    return {key: np.concatenate([t[key] for t in drawn])[keep] for key in drawn[0]}


def analyze(hp):
    """Run every analysis on the selected network; write the files and return the summary."""
    check(hp)
    path, batches = checkpoints.select_network(hp['path'], hp['runs_dir'], hp['select'], hp['index'],
                                               hp['unfinished'])
    device = util.pick_device(hp['device'])
    util.set_threads(hp['n_threads'])
    net, encoder, config = checkpoints.load_network(path, device, noise_free=True)
    if config['network'] not in ('RNN', 'LSTM'):
        raise ValueError(f"network {config['network']!r} at {path}: analyze.py takes an RNN or LSTM "
                         "(use analyze_transformer.py for gpt-2)")
    name = config['name']
    folder = os.path.join(hp['out_dir'], name)
    results.refuse_replacing(os.path.join(folder, SUMMARY), os.path.join(folder, SUMMARY), {path: batches},
                             hp['overwrite'], elsewhere='--out_dir')  # before any work
    checkpoints.check_output('out_dir', folder)
    env = tasks.training_env(config)
    rng = np.random.default_rng(hp['seed'])
    n_neu = net.hidden_size

    # PCA of the hidden states of noisy trials
    trials = env.sample(rng, hp['n_trials'])
    u = networks.network_inputs(torch.as_tensor(trials['ob'], device=device), env, encoder)
    states = rep.state_trajectories(net, u).cpu().numpy()
    H = states[..., :n_neu]
    pca, ratio = rep.pca_variance(H.reshape(-1, n_neu))
    results.save_results(os.path.join(folder, 'pca.npz'), explained_variance_ratio=ratio,
                         components=pca.components_, mean=pca.mean_)
    _plot_pca(ratio, folder)

    # fixed points under a blank stimulus with fixation on
    a, b = env.stim_steps
    h0 = fixed_points.sample_initial_states(states[:, a:b], hp['n_init'], hp['noise_scale'], hp['seed'])
    tau = config['tau'] if config['network'] == 'RNN' else config['dt']  # LSTM: A in time steps
    res, amp, near_zero = analyse_fixed_points(net, rep.blank_input(env, encoder, device), h0, config['dt'], tau,
                                               hp['tol_q'], hp['tol_unique'], hp['max_iters'],
                                               hp['fp_lr'], hp['near_zero_tol'])
    results.save_results(os.path.join(folder, 'fixed_points.npz'), points=res.points, q=res.q, eigvals=res.eigvals,
                         amplification=amp, n_near_zero=near_zero, stable=fixed_points.is_stable(res.eigvals))
    results.save_results(os.path.join(folder, 'jacobians.npz'), jacobians=res.jacobians)  # large: beside the summary
    _plot_fixed_points(res, amp, folder)

    # trajectories and fixed points in the top 3 PCs
    n_plot = min(hp['n_plot'], len(H))
    proj = pca.transform(H[:n_plot].reshape(-1, n_neu))[:, :3].reshape(n_plot, -1, min(3, pca.n_components_))
    fp_proj = pca.transform(res.points[:, :n_neu])[:, :3] if len(res.points) else np.zeros((0, 3))
    quads = rep.quadrants(trials['stim'][:n_plot])
    colors = [_QUAD_COLORS[q - 1] for q in quads]
    results.save_results(os.path.join(folder, 'trajectories.npz'), trajectories=proj, quadrant=quads,
                         stim=trials['stim'][:n_plot], fixed_points=fp_proj)
    _plot_trajectories(proj, colors, fp_proj, folder)
    results.save(os.path.join(folder, 'trajectories.html'), rotating_html(proj, colors, fp_proj, title=name))

    # steady-state rate maps over a grid of noise-free stimuli
    x = rep.stimulus_grid(hp['n_grid'], config['n_dim'])
    steady = rep.steady_states(net, encoder, env, x)
    maps, corr = rep.rate_maps(steady, hp['n_grid']), rep.unit_correlations(steady, x)
    results.save_results(os.path.join(folder, 'rate_maps.npz'), rate_maps=maps, grid=np.unique(x[:, 0]),
                         stim=x, correlations=corr)
    plots.plot_rate_maps(maps, name, os.path.join(folder, 'rate_maps.png'))
    plots.plot_correlations(corr, name, os.path.join(folder, 'correlations.png'))

    # the encoder's output geometry
    enc_ratio = None
    if encoder is not None:
        xe, feats, eproj, enc_ratio = rep.encoder_geometry(encoder, config['n_dim'], hp['n_enc_grid'])
        results.save_results(os.path.join(folder, 'encoder.npz'), stim=xe, features=feats, projection=eproj,
                             explained_variance_ratio=enc_ratio)
        _plot_encoder(xe, eproj, enc_ratio, folder)

    # abstraction metrics on the final hidden states of DenoiseQuads trials, with their standard errors
    qenv = tasks.decoding_env(config)
    quad_trials = per_quadrant(qenv, hp['n_abstraction'], rng)
    final = networks.hidden_states(net, encoder, qenv, quad_trials['ob'], last_only=True).numpy()
    abstraction = metrics.abstraction_metrics(final, quad_trials['stim'][:, :2], seed=hp['seed'],
                                              n_boot=metrics.ABSTRACTION_BOOT)

    # the disentanglement metrics of the steady-state units (issue 21), on random noise-free stimuli
    xs = np.random.default_rng(hp['seed']).uniform(-0.5, 0.5, (disentanglement.N_STIMULI, config['n_dim']))
    units = disentanglement.network_metrics(rep.steady_states(net, encoder, env, xs), xs, seed=hp['seed'])

    summary = {
        'network': path, 'batches': batches,  # batches trained
        'config': {k: config.get(k) for k in ('network', 'n_task', 'n_neu', 'task', 'run')},
        'pca_explained_variance_ratio': ratio.tolist(),
        'pca_variance_top3': float(ratio[:3].sum()),
        'n_fixed_points': int(len(res.points)), 'fixed_point_q_max': float(res.q.max()) if len(res.q) else None,
        'n_stable': int(fixed_points.is_stable(res.eigvals).sum()),
        'n_near_zero': near_zero.tolist(), 'amplification_range': _range(amp),
        'n_amplification_infinite': int(np.isinf(amp).sum()),
        'fixed_point_search': {'n_initial': res.n_initial, 'n_rejected_q': res.n_rejected_q,
                               'n_duplicates': res.n_duplicates, 'n_iters': res.n_iters},
        'mean_abs_correlation_x1_x2': rep.mean_abs_correlation(corr),
        'encoder_variance_top3': float(enc_ratio[:3].sum()) if enc_ratio is not None else None,
        **abstraction, 'abstraction_trials': hp['n_abstraction'], 'disentanglement': units, 'hyperparameters': hp,
    }
    results.save(os.path.join(folder, SUMMARY), summary)
    print(f"{len(res.points)} fixed points, near-zero eigenvalues {near_zero.tolist()}; "
          f"CCGP {abstraction['ccgp_x1']:.3f} ± {abstraction['ccgp_x1_se']:.3f} / "
          f"{abstraction['ccgp_x2']:.3f} ± {abstraction['ccgp_x2_se']:.3f} -> {folder}/")
    return summary


if __name__ == '__main__':
    configurator.run(analyze, _hp)
