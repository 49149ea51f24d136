"""Zero-shot out-of-distribution generalization of trained networks (SPEC §5).

A frozen network's hidden state at the last step is decoded linearly into the latents
x*. The decoder is fit on trials from three quadrants and tested on the fourth (or fit
on all four with --out_of_distribution=False); r² = 1 − MSE/(1/12).

    python generalize.py                                   # paper protocol, RNN sweep
    python generalize.py --decoder=lstsq                   # exact least squares (5-13 s/network) -> results/RNN_lstsq.*
    python generalize.py --select="{'network': 'LSTM'}" --label=LSTM
    python generalize.py --protocol=paper                  # the paper's test sets -> results/RNN_paper.*
    python generalize.py --decoder=both                    # Adam and least squares on the same trials -> RNN.*, RNN_lstsq.*

A results file made from other networks (the committed results/RNN.npz is made from
trained_networks/RNN/) is never replaced by default: evaluate your own networks under
another --label (or --results_dir), or pass --overwrite=True.

protocol='paper' reproduces the test sets of the paper's code release, which made the
paper's numbers: it passes one held-out quadrant to the test task as a scalar index,
so that quadrant's sign row becomes the only row of the quadrant table and each test
trial takes one entry of it as the common sign of both coordinates. Held-out
quadrants 1 (+,+) and 3 (−,−) are tested correctly; 2 and 4 on an even mix of
quadrants 1 and 3, which the decoder was trained on (likewise for D > 2 without
`split` / `split_var`, and for free-RT networks).
"""
# ---- hyperparameters (override with --name=value or a config file) ----
runs_dir = 'trained_networks'  # where trained networks are found
select = {'network': 'RNN'}  # config values the networks must match
n_tasks = [2, 3, 6, 12, 24]  # task counts to evaluate
n_runs = 5  # runs per task count (the first n_runs found)
label = 'RNN'  # output name: results/<label>.npz ('_ID' added in distribution, '_paper' under protocol='paper', '_lstsq' with decoder='lstsq')
results_dir = 'results'  # where results and plots are written
out_of_distribution = True  # fit on the other quadrants (True) or on all four (False)
protocol = 'correct'  # test on the held-out quadrant ('correct'), on the release's test sets ('paper': adds '_paper' to the name) or 'both' (two files, the same decoders)
decoder = 'adam'  # 'adam' (the paper's protocol), 'lstsq' (exact least squares) or 'both' (fit on the same trials; the lstsq files get '_lstsq')
n_fit = 5  # decoder fits per held-out split, each on fresh trials
decoder_batches = {2: 3000, 3: 3000, 6: 2000, 12: 1000, 24: 1000}  # decoder training batches per task count (others: 1000)
batch_sz = 16  # trials per decoder batch
lr = 3e-3  # decoder Adam learning rate
n_test = 40  # test batches per fit
split = None  # D > 2: hold out every split-th orthant (None: one orthant at a time up to 2^D)
split_var = False  # train on x_q < 0, test on x_q > 0, for each variable q (any D; D = 2 otherwise holds out each quadrant)
timing = None  # evaluation timing (dict of ms); None: the network's training timing
n_abstraction = 500  # trials per quadrant for CCGP and the parallelism score (as analyze.py's: CCGP rises with it); D > 2: at most that many per orthant for the disentanglement metrics
seed = 0  # seed of the evaluation trials and decoder inits
device = 'auto'  # 'auto', 'cpu' or 'cuda'
n_threads = 1  # CPU threads for torch
save_decoders = True  # store every decoder's weights ('dec': n_tasks × runs × splits × fits × n_neu × D); False keeps high-D result files small (the angles are kept either way)
unfinished = False  # also evaluate partly trained networks (default: refuse them, naming how to finish them)
overwrite = False  # replace result files made from other networks (default: refuse, naming the file)
# ------------------------------------------------------------------------
import checks
import configurator

# at least what one trial run at once costs a paper-sized network (22 steps of inputs, encoder
# layers and 64 rates, float32): the estimate that refuses an impossible n_abstraction up front
_BYTES_PER_TRIAL = 22 * (3 + 100 + 100 + 40 + 64) * 4


def check(hp):
    """Reject impossible settings before any work is done (no slow imports needed)."""
    checks.one_of('protocol', hp['protocol'], ('correct', 'paper', 'both'))
    checks.one_of('decoder', hp['decoder'], ('adam', 'lstsq', 'both'))
    checks.positive_ints('n_tasks', hp['n_tasks'])
    checks.dictionary('select', hp['select'])
    checks.file_label('label', hp['label'])
    checks.folder('results_dir', hp['results_dir'])
    for name in ('n_runs', 'n_fit', 'batch_sz', 'n_test', 'n_threads'):
        checks.positive_int(name, hp[name])
    checks.int_at_least('n_abstraction', hp['n_abstraction'], 2)  # the classifiers need two trials per side
    checks.fits_memory('n_abstraction', hp['n_abstraction'], 4 * hp['n_fit'] * hp['n_abstraction'] * _BYTES_PER_TRIAL)  # the pools of D = 2
    checks.non_negative_int('seed', hp['seed'])
    checks.positive('lr', hp['lr'])
    checks.dictionary('decoder_batches', hp['decoder_batches'])
    for k, n in hp['decoder_batches'].items():
        checks.positive_int(f'decoder_batches[{k}]', n)
    if hp['split'] is not None:
        checks.positive_int('split', hp['split'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import os
import sys
import time

import numpy as np

import decoding
import evaluation
import metrics
import plots
import results
import tasks


# the disentanglement metrics summarised in the JSON (every key of network_metrics is in the .npz)
_DISENTANGLEMENT = ('dci_d', 'dci_c', 'dci_i', 'mig', 'n_silent', 'ccgp_mean', 'ps_mean', 'dci_d_null_hi', 'mig_null_hi',
                   'ccgp_mean_null_hi', 'ps_mean_null_hi', 'ccgp_mean_geo_hi', 'ps_mean_geo_hi')


def batches_for(hp, n_task):
    """Decoder training batches for a task count (SPEC §5; 1000 where not given)."""
    return hp['decoder_batches'].get(n_task, 1000)


def names(hp):
    """{(decoder, protocol): result name} of the files this evaluation writes, lstsq's first
    under decoder='both' (results.result_name: <label>[_ID][_paper][_lstsq])."""
    return {(d, p): results.result_name(hp['label'], hp['out_of_distribution'], p, d)
            for d in decoding.decoders(hp) for p in decoding.protocols(hp)}


def generalize(hp):
    """Evaluate every selected network; write results/<label>.npz, .json and plots.
    Output locations, the result files beside them and the networks are checked before
    any work (evaluation.Sweep); each network's results are saved as it completes, so a
    rerun continues where an interrupted one stopped. Broken runs are skipped; once the
    rest is written, checkpoints.BrokenRuns lists them (exit status 1)."""
    check(hp)
    written = names(hp)
    # the settings one network's numbers depend on (not which networks are swept, nor where results go)
    settings = {k: v for k, v in hp.items() if k not in ('runs_dir', 'select', 'n_tasks', 'n_runs', 'unfinished',
                                                          'label', 'results_dir', 'overwrite')}
    # Adam's file first: it names the per-network folder <label>.partial/ (and is written last, below)
    order = sorted(written, key=lambda dp: dp[0] != 'adam')
    sweep = evaluation.Sweep(hp, 'generalize.py', [written[dp] for dp in order], settings)
    for name in written.values():  # a corrupt file drawn beside ours fails now, not after the work
        for other in set(plotted_with(name)) - set(written.values()):
            if os.path.exists(os.path.join(hp['results_dir'], other + '.npz')):
                results.load_results(hp['results_dir'], other)

    def measure(net, encoder, config, n_task):
        out = decoding.evaluate_network(net, encoder, config, hp, batches_for(hp, n_task),
                                        1000 * n_task + config['run'])
        res = {key: out[key] for key in ('ccgp', 'ps', 'ccgp_se', 'ps_se', 'adam_gap', 'adam_fall', 'converged')
               if key in out}
        res.update({key: np.float64(value) for key, value in out['disentanglement'].items()})  # new keys (issue 21)
        res['boundary_cond'] = np.float64(tasks.boundary_condition(config))  # NaN: no class boundaries
        for d, fit in out['fits'].items():  # under decoder='both', lstsq's arrays as lstsq_<key>
            pre = decoder_prefix(hp, d)
            res.update({pre + 'angles': metrics.decoder_angles(fit['W']),
                        pre + 'train': results.history(fit['hist']).astype(np.float32),  # 100 points, as in the paper's files
                        **{f'{pre}r_sq_{p}': r2 for p, r2 in fit['r2'].items()},
                        **{f'{pre}test_{p}': mse for p, mse in fit['mse'].items()}})
            if hp['save_decoders']:
                res[pre + 'dec'] = fit['W'].astype(np.float32)
        return res

    def describe(res):
        both = hp['decoder'] == 'both'
        r2 = ', '.join(f"{np.mean(res[decoder_prefix(hp, d) + f'r_sq_{p}']):.3f} ({p}{', ' + d if both else ''})"
                       for d, p in written)
        return (f"r² mean {r2}, CCGP {np.mean(res['ccgp']):.3f} ± {np.max(res['ccgp_se']):.3f}, "
                f"PS {np.mean(res['ps']):.3f} ± {np.max(res['ps_se']):.3f} (± its standard error)")

    arrays = sweep.evaluate(measure, describe, inspect=warn_unconverged)
    stems = dict(zip(order, sweep.stems))
    for decoder, protocol in written:  # lstsq before Adam: the sweep takes <label>_paper.npz as the sign of a finished evaluation
        stem = stems[decoder, protocol]
        own = decoder_arrays(arrays, hp, decoder)
        shared = {k: v for k, v in own.items() if not k.startswith(('r_sq_', 'test_'))}
        r_sq = own[f'r_sq_{protocol}']
        sweep.write(stem, dict(n_tasks=np.array(sweep.n_tasks), protocol=np.array(protocol), decoder=np.array(decoder),
                               r_sq=r_sq, test=own[f'test_{protocol}'], **shared),
                    sweep.summary(arrays['batches'], protocol=protocol, decoder=decoder,
                                  # networks saved as initialised (train.py --n_batch=0): the baseline, not a trained sweep
                                  untrained=untrained(arrays['batches']),
                                  **unconverged_summary(arrays, sweep.folders, sweep.n_tasks),
                                  r_sq=results.summarise(r_sq), r_sq_networks=results.network_summary(r_sq),
                                  angle=results.summarise(results.pair_angles(own['angles'])),
                                  **abstraction_summary(arrays, hp['n_abstraction']),
                                  # σ_min/σ_max of each network's class boundaries (LinearClassificationHighDim)
                                  **({'boundary_cond': results.listed(arrays['boundary_cond'])}
                                     if np.isfinite(arrays['boundary_cond']).any() else {}),
                                  disentanglement={key: results.summarise(arrays[key]) for key in _DISENTANGLEMENT
                                                   if key in arrays}))
        plot(hp['results_dir'], os.path.basename(stem))
        print(f"wrote {stem}.npz, .json and plots ({time.time() - sweep.t0:.0f} s)")
    sweep.finish()
    return stems[order[0]]


def abstraction_summary(arrays, n_abstraction):
    """The JSON's CCGP and parallelism score per task count: `ccgp` / `parallelism`,
    the median and IQR over networks × (x1, x2); `<name>_networks`, the median over
    networks of each network's mean over (x1, x2) with its bootstrap 95 % interval over
    networks (results.network_summary); `<name>_se`, the median and IQR over networks
    of one value's standard error over resampled trials (metrics.abstraction_metrics);
    `abstraction_trials`, the trials per quadrant they were measured on."""
    out = {'abstraction_trials': n_abstraction}
    for name, key in (('ccgp', 'ccgp'), ('parallelism', 'ps')):
        out[name] = results.summarise(arrays[key])
        out[name + '_networks'] = results.network_summary(arrays[key])
        out[name + '_se'] = results.summarise(arrays[key + '_se'])
    return out


def plotted_with(name):
    """The result names drawn in `name`'s r² plot: its OOD file and the in-distribution one."""
    parts = results.parse_name(name)
    return list(dict.fromkeys((results.result_name(parts['label'], True, parts['protocol'], parts['decoder']),
                               results.result_name(parts['label'], False, 'correct', parts['decoder']))))


_LSTSQ_PREFIX = 'lstsq_'  # under decoder='both', the per-network keys of the lstsq fits


def decoder_prefix(hp, decoder):
    """The prefix of a decoder's per-network arrays: 'lstsq_' for lstsq beside Adam, else none."""
    return _LSTSQ_PREFIX if hp['decoder'] == 'both' and decoder == 'lstsq' else ''


def decoder_arrays(arrays, hp, decoder):
    """The arrays of one decoder's result files: its own (prefix dropped) and the
    network's (abstraction metrics, Adam's convergence, batches)."""
    pre = decoder_prefix(hp, decoder)
    common = {k: v for k, v in arrays.items() if not k.startswith(_LSTSQ_PREFIX)}
    if not pre:
        return common
    return {**common, **{k[len(pre):]: v for k, v in arrays.items() if k.startswith(pre)}}


def untrained(batches):
    """True when every network of known budget was saved as initialised (train.py --n_batch=0)."""
    known = batches[np.isfinite(batches)]
    return bool(known.size) and bool(np.all(known == 0))


def warn_unconverged(folder, res):
    """Warn (stderr) naming the network when some of its Adam decoders did not converge
    (decoding.converged), with the reasons."""
    if 'converged' not in res or np.all(res['converged'] == 1):
        return
    bad = res['converged'] == 0
    gap = res['adam_gap'] > decoding.GAP_MAX
    why = [f"{int((bad & ~gap).sum())} with the loss still falling at the end"] * bool((bad & ~gap).any())
    why += [f"{int(gap.sum())} with a training r² up to {np.nanmax(res['adam_gap']):.2f} below least "
            f"squares' on the same trials (> {decoding.GAP_MAX})"] * bool(gap.any())
    print(f"warning: {folder}: the Adam decoder did not converge in {int(bad.sum())} of {bad.size} fits "
          f"({'; '.join(why)}): this network's r² is under-reported; compare --decoder=both, or give the "
          "decoder more n_batch or another lr", file=sys.stderr)


def unconverged_summary(arrays, folders, n_tasks):
    """The JSON's record of Adam's convergence: fits and networks that did not converge."""
    if 'converged' not in arrays:
        return {}
    bad = arrays['converged'] == 0
    per_network = bad.reshape(bad.shape[:2] + (-1,)).any(-1)
    return {'adam_unconverged': {
        'fits': int(bad.sum()), 'of': int(np.isfinite(arrays['converged']).sum()),
        'networks': [folders[k][j] for i, k in enumerate(n_tasks) for j in range(len(folders[k])) if per_network[i, j]],
        'gap_max': decoding.GAP_MAX, 'fall': {'window': metrics.FALL_WINDOW, 'rel_min': metrics.FALL_REL, 'z_min': metrics.FALL_Z}}}


def plot(results_dir, name):
    """r² vs number of tasks (one dot per network, median over networks with its
    bootstrap interval; with the in-distribution file beside it when present), the
    angle between the decoded latents, and the decoder loss curves; PNG and PDF in
    results_dir, named after the results file."""
    res = results.load_results(results_dir, name)
    pair = plotted_with(name)
    ood = pair[0]
    found = {n: results.load_results(results_dir, n) for n in pair
             if os.path.exists(os.path.join(results_dir, n + '.npz'))}
    fig, ax = plots.subplots()
    plots.compare(ax, found, {n: 'ID' if n.endswith('_ID') else 'OOD' for n in found})
    plots.reference(ax, plots.CEILING, f'ceiling {plots.CEILING}')
    ax.set(ylabel='decoder r²', title=ood)
    plots.legend(ax)
    plots.save_figure(fig, os.path.join(results_dir, f'{name}_r2.png'))

    fig, ax = plots.subplots()
    plots.compare(ax, {name: res}, {name: name}, key='angles')
    plots.reference(ax, 90)
    ax.set(ylabel='angle between latents (°)')
    plots.save_figure(fig, os.path.join(results_dir, f'{name}_angle.png'))

    if res['train'].shape[-1]:
        fig, ax = plots.subplots()
        for i, k in enumerate(res['n_tasks']):
            hist = res['train'][i].reshape(-1, res['train'].shape[-1])
            ax.plot(np.linspace(0, 100, hist.shape[-1]), np.nanmean(hist, 0), label=f'{k} tasks')
        ax.set(yscale='log', xlabel='decoder training (% of its batches)', ylabel='train MSE', title=name)
        plots.legend(ax)
        plots.save_figure(fig, os.path.join(results_dir, f'{name}_loss.png'))


if __name__ == '__main__':
    configurator.run(generalize, _hp)
