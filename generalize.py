"""Zero-shot out-of-distribution generalization of trained networks (SPEC §5).

A frozen network's hidden state at the last step is decoded linearly into the latents
x*. The decoder is fit on trials from three quadrants and tested on the fourth (or fit
on all four with --out_of_distribution=False); r² = 1 − MSE/(1/12).

    python generalize.py                                   # paper protocol, RNN sweep
    python generalize.py --decoder=lstsq --label=RNN_fast  # exact least squares, ~1 s/network
    python generalize.py --select="{'network': 'LSTM'}" --label=LSTM
    python generalize.py --protocol=paper                  # the paper's test sets -> results/RNN_paper.*
    python generalize.py --decoder=both                    # Adam and least squares on the same trials -> RNN.*, RNN_lstsq.*

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
label = 'RNN'  # output name: results/<label>.npz ('_ID' added in distribution, '_paper' under protocol='paper')
results_dir = 'results'  # where results and plots are written
out_of_distribution = True  # fit on the other quadrants (True) or on all four (False)
protocol = 'correct'  # test on the held-out quadrant ('correct'), on the release's test sets ('paper': adds '_paper' to the name) or 'both' (two files, the same decoders)
decoder = 'adam'  # 'adam' (the paper's protocol), 'lstsq' (exact least squares) or 'both' (fit on the same trials; the lstsq files get '_lstsq')
n_fit = 5  # decoder fits per held-out split, each on fresh trials
n_batch = {2: 3000, 3: 3000, 6: 2000, 12: 1000, 24: 1000}  # decoder training batches per task count (others: 1000)
batch_sz = 16  # trials per decoder batch
lr = 3e-3  # decoder Adam learning rate
n_test = 40  # test batches per fit
split = None  # D > 2: hold out every split-th orthant (None: one orthant at a time up to 2^D)
split_var = False  # D > 2: train on x_q < 0, test on x_q > 0, for each variable q
timing = None  # evaluation timing (dict of ms); None: the network's training timing
seed = 0  # seed of the evaluation trials and decoder inits
device = 'auto'  # 'auto', 'cpu' or 'cuda'
n_threads = 1  # CPU threads for torch
save_decoders = True  # store every decoder's weights ('dec': n_tasks × runs × splits × fits × n_neu × D); False keeps high-D result files small (the angles are kept either way)
unfinished = False  # also evaluate partly trained networks (default: refuse them, naming how to finish them)
# ------------------------------------------------------------------------
import checks
import configurator


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
    checks.non_negative_int('seed', hp['seed'])
    checks.positive('lr', hp['lr'])
    checks.dictionary('n_batch', hp['n_batch'])
    for k, n in hp['n_batch'].items():
        checks.positive_int(f'n_batch[{k}]', n)
    if hp['split'] is not None:
        checks.positive_int('split', hp['split'])


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _hp = configurator.configure(globals(), doc=__doc__, check=check)

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import checkpoints  # noqa: E402
import decoding  # noqa: E402
import metrics  # noqa: E402
import plots  # noqa: E402
import results  # noqa: E402
import util  # noqa: E402


def batches_for(hp, n_task):
    """Decoder training batches for a task count (SPEC §5; 1000 where not given)."""
    return hp['n_batch'].get(n_task, 1000)


def generalize(hp):
    """Evaluate every selected network; write results/<label>.npz, .json and plots.
    Output locations are checked and the networks classified before any work. Each
    network's results are saved as it completes (results.Partial): a rerun with the
    same settings continues where an interrupted one stopped. Broken runs are skipped;
    once the rest is written, checkpoints.BrokenRuns lists them (exit status 1)."""
    check(hp)
    checkpoints.check_output('results_dir', hp['results_dir'], keep=False)
    folders, batches, broken = checkpoints.find_sweep(hp['runs_dir'], hp['select'], hp['n_tasks'],
                                                      hp['n_runs'], hp['unfinished'])
    os.makedirs(hp['results_dir'], exist_ok=True)
    device = util.pick_device(hp['device'])
    util.set_threads(hp['n_threads'])
    names = {(d, p): result_name(hp, p, d) for d in decoding.decoders(hp) for p in decoding.protocols(hp)}
    path = os.path.join(hp['results_dir'], result_name(hp))
    n_tasks = list(folders)  # the task counts found
    # the settings one network's numbers depend on (not which networks are swept, nor where results go)
    partial = results.Partial(path, {k: v for k, v in hp.items() if k not in
                                     ('runs_dir', 'select', 'n_tasks', 'n_runs', 'unfinished', 'label', 'results_dir')})
    done, t0 = {}, time.time()
    for i, k in enumerate(n_tasks):
        for j, folder in enumerate(folders[k]):
            if folder in broken:
                print(f"n_task={k:>3} {os.path.basename(folder)}: skipped, broken ({broken[folder]})")
                continue
            t1, network = time.time(), checkpoints.fingerprint(folder)
            res = partial.load(folder, network)
            reused = res is not None
            if not reused:
                net, encoder, config = checkpoints.load_network(folder, device)
                net_seed = 1000 * k + config['run']
                out = decoding.evaluate_network(net, encoder, config, hp, batches_for(hp, k), net_seed)
                res = {key: out[key] for key in ('ccgp', 'ps', 'adam_gap', 'adam_fall', 'converged') if key in out}
                for d, fit in out['fits'].items():  # under decoder='both', lstsq's arrays as lstsq_<key>
                    pre = decoder_prefix(hp, d)
                    res.update({pre + 'angles': metrics.decoder_angles(fit['W']),
                                pre + 'train': results.history(fit['hist']).astype(np.float32),  # 100 points, as in the paper's files
                                **{f'{pre}r_sq_{p}': r2 for p, r2 in fit['r2'].items()},
                                **{f'{pre}test_{p}': mse for p, mse in fit['mse'].items()}})
                    if hp['save_decoders']:
                        res[pre + 'dec'] = fit['W'].astype(np.float32)
                partial.save(folder, network, **res)
            done[i, j] = res
            warn_unconverged(folder, res)
            r2 = ', '.join(f"{np.mean(res[decoder_prefix(hp, d) + f'r_sq_{p}']):.3f} ({p}{', ' + d if hp['decoder'] == 'both' else ''})"
                           for d, p in names)
            print(f"n_task={k:>3} {os.path.basename(folder)}: r² mean {r2}, "
                  f"CCGP {np.mean(res['ccgp']):.2f}, PS {np.mean(res['ps']):.2f} "
                  f"({'saved by an earlier run' if reused else f'{time.time() - t1:.1f} s'})")
    if not done:
        raise checkpoints.BrokenRuns(broken, wrote=None)
    # one array per quantity: (n_tasks, n_runs, ...), NaN where no network was evaluated
    shape = (len(n_tasks), hp['n_runs'])
    first = next(iter(done.values()))
    arrays = {key: np.full(shape + value.shape, np.nan, dtype=value.dtype) for key, value in first.items()}
    for (i, j), res in done.items():
        for key, value in res.items():
            arrays[key][i, j] = value
    arrays['batches'] = np.full(shape, np.nan)  # batches each network was trained for
    for i, k in enumerate(n_tasks):
        for j, folder in enumerate(folders[k]):
            arrays['batches'][i, j] = np.nan if batches.get(folder) is None else batches[folder]
    for (decoder, protocol), name in names.items():
        own = decoder_arrays(arrays, hp, decoder)
        shared = {k: v for k, v in own.items() if not k.startswith(('r_sq_', 'test_'))}
        out_path = os.path.join(hp['results_dir'], name)
        r_sq = own[f'r_sq_{protocol}']
        results.save_results(out_path + '.npz', n_tasks=np.array(n_tasks), protocol=np.array(protocol),
                             decoder=np.array(decoder), r_sq=r_sq, test=own[f'test_{protocol}'], **shared)
        summary = {'config': hp, 'networks': {str(k): folders[k] for k in n_tasks},
                   'n_tasks': n_tasks, 'protocol': protocol, 'decoder': decoder,
                   'batches': results.listed(arrays['batches']), 'broken': broken,
                   # networks saved as initialised (train.py --n_batch=0): the baseline, not a trained sweep
                   'untrained': untrained(arrays['batches']),
                   **unconverged_summary(arrays, folders, n_tasks),
                   'r_sq': results.summarise(r_sq), 'r_sq_networks': results.network_summary(r_sq),
                   'angle': results.summarise(results.pair_angles(own['angles'])),
                   'ccgp': results.summarise(arrays['ccgp']), 'parallelism': results.summarise(arrays['ps']),
                   'seconds': time.time() - t0}
        checkpoints.save_json(summary, out_path + '.json')
        plot(hp['results_dir'], name)
        print(f"wrote {out_path}.npz, .json and plots ({time.time() - t0:.0f} s)")
    if broken:  # keep the per-network files: a rerun after retraining evaluates only those
        raise checkpoints.BrokenRuns(broken, wrote=path + '.npz')
    partial.clear()
    return path


def result_name(hp, protocol=None, decoder=None):
    """results/<label>[_ID][_lstsq][_paper]: in-distribution and the paper's protocol get
    their own files (`protocol` defaults to hp['protocol']); under decoder='both' the
    least-squares results get '_lstsq' beside Adam's (a lone decoder keeps <label>)."""
    paper = (protocol or hp['protocol']) == 'paper'
    lstsq = hp['decoder'] == 'both' and decoder == 'lstsq'
    return (hp['label'] + ('' if hp['out_of_distribution'] else '_ID') + ('_lstsq' if lstsq else '')
            + ('_paper' if paper else ''))


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
    ood = name.removesuffix('_ID')
    pair = dict.fromkeys((ood, ood.removesuffix('_paper') + '_ID'))  # this file and its partner
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
