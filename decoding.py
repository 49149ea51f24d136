"""Reading the latents out of a frozen network with a linear decoder (SPEC §5): the
held-out splits, the correct and the paper's test sets, the trial pools the
decoders are fit on, the fits and their scores. Arrays in, arrays out; generalize.py
does the file I/O.

One pool of trials per orthant serves every split and fit: fit f of every split
draws its training trials from slice f of the pools of its training orthants (equal
numbers from each, shuffled), so each network runs 4/3 × n_fit × n_batch × batch_sz
trials (D = 2, OOD) instead of 4 × n_fit × n_batch × batch_sz, and each decoder still
sees fresh trials of its own. Test trials are drawn per split and fit from the test
task itself, so the paper's mixed test sets are reproduced exactly.
"""
import itertools
import math

import numpy as np
import torch

import disentanglement
import metrics
import networks
import results
import tasks

MAX_DECODERS = 20  # decoders fit at once (bounds the memory of their training sets)
GAP_MAX = 0.05  # an Adam decoder whose training r² is further below least squares' (same trials) is unconverged


def splits(n_dim, out_of_distribution, split=None, split_var=False):
    """(train orthants, test orthants) per split. Orthant k (1-based) is the k-th sign
    pattern of itertools.product([-.5, .5], repeat=D); for D = 2 these are the
    paper's quadrants 1:(+,+) 2:(−,+) 3:(−,−) 4:(+,−). split_var: for each variable q,
    test on the orthants where x_q > 0 (train on the rest), for every D, D = 2 included, so
    a D sweep holds out the same kind of set (a half-space) at each D."""
    if n_dim == 2:
        everything = [1, 2, 3, 4]
        tests = [[1, 4], [1, 2]] if split_var else [[q] for q in everything]  # x1 > 0, x2 > 0
    else:
        signs = list(itertools.product([-1, 1], repeat=n_dim))
        everything = list(range(1, len(signs) + 1))
        if split_var:
            tests = [[k for k, s in zip(everything, signs) if s[q] > 0] for q in range(n_dim)]
        else:
            step = split or 1
            tests = [everything[i::step] for i in range(step)] if split else [[k] for k in everything]
    pairs = []
    for test in tests:
        train = [k for k in everything if k not in test] if out_of_distribution else everything
        pairs.append((train, test))
    return pairs


def decoders(hp):
    """The decoders an evaluation fits: 'both' is least squares and Adam on the same
    trial pools (Adam's files last; the sweep counts a step done when every file it
    writes is there)."""
    return ['lstsq', 'adam'] if hp['decoder'] == 'both' else [hp['decoder']]


def protocols(hp):
    """The test protocols an evaluation computes: 'both' is 'correct' and 'paper' from
    the same decoders."""
    return ['correct', 'paper'] if hp['protocol'] == 'both' else [hp['protocol']]


def test_orthants(config, test, hp, protocol=None):
    """The orthants the test trials of one split are drawn from. 'correct': the
    held-out ones. 'paper': where the release passed a single held-out orthant as a
    scalar (D = 2; D > 2 without split / split_var), each trial's common sign is one
    entry of that orthant's sign row, i.e. the all-positive or all-negative orthant in
    proportion to the row's signs (listing an orthant twice doubles its weight).
    `protocol` defaults to hp['protocol']."""
    single = not hp['split_var'] and (config['n_dim'] == 2 or hp['split'] is None)
    if (protocol or hp['protocol']) == 'correct' or not single:
        return test
    signs = tasks.decoding_env(config, test).signs[0]
    all_positive, all_negative = (1, 3) if config['n_dim'] == 2 else (2 ** config['n_dim'], 1)
    return [all_positive if s > 0 else all_negative for s in signs]


def final_states(net, encoder, env, trials):
    """Final hidden states (n, N) and latents (n, D) of sampled trials, float32."""
    return (networks.hidden_states(net, encoder, env, trials['ob'], last_only=True),
            torch.as_tensor(trials['stim'], dtype=torch.float32))


def evaluate_network(net, encoder, config, hp, n_train_batches, net_seed):
    """The SPEC §5 protocol for one network (hp: generalize.py's hyperparameters).
    Returns a dict: r2 and mse {protocol: (n_split, n_fit)} for each of protocols(hp),
    W (n_split, n_fit, N, D), hist (n_split, n_fit, n_batch; empty for lstsq) of the
    decoder (Adam under 'both'); the same of every decoder of decoders(hp) in `fits`
    {decoder: {r2, mse, W, hist}}, all fit on the same training sets; the
    abstraction metrics ccgp, ps of (x1, x2) and their standard errors ccgp_se, ps_se
    (NaN for D > 2); and where Adam is fit, its convergence (n_split, n_fit): adam_gap
    (least squares' training r² minus Adam's, on the same trials), adam_fall (relative
    fall of its loss over the last fifth of its batches, metrics.loss_fall) and
    converged (1.0 or 0.0, see converged())."""
    pairs = splits(config['n_dim'], hp['out_of_distribution'], hp['split'], hp['split_var'])
    n_fit, n_train = hp['n_fit'], n_train_batches * hp['batch_sz']
    rng = np.random.default_rng([hp['seed'], net_seed])

    # the pools: n_fit slices per orthant, each large enough for its share of one training set
    # and, for D = 2, for the abstraction metrics' n_abstraction trials per quadrant
    per_slice = max(math.ceil(n_train / len(train)) for train, _ in pairs)
    if config['n_dim'] == 2:
        per_slice = max(per_slice, hp['n_abstraction'])
    pools = {}
    # D = 2: every quadrant, also one no split trains on (split_var), for the abstraction metrics
    for k in sorted({k for train, _ in pairs for k in train} | ({1, 2, 3, 4} if config['n_dim'] == 2 else set())):
        env = tasks.decoding_env(config, [k], hp['timing'])
        H, X = final_states(net, encoder, env, env.sample(rng, n_fit * per_slice))
        pools[k] = H.view(n_fit, per_slice, -1), X.view(n_fit, per_slice, -1)

    # test sets, drawn per split and fit from each protocol's test task, run at once
    tests = {}
    for protocol in protocols(hp):
        obs, X_test = [], []
        for s, (_, test) in enumerate(pairs):
            env = tasks.decoding_env(config, test_orthants(config, test, hp, protocol), hp['timing'])
            for f in range(n_fit):
                trials = env.sample(np.random.default_rng([hp['seed'], net_seed, s, f]), hp['n_test'] * hp['batch_sz'])
                obs.append(trials['ob'])
                X_test.append(trials['stim'])
        # every decoding task shares one input layout, so the last env runs them all
        H_test = networks.hidden_states(net, encoder, env, np.concatenate(obs), last_only=True)
        tests[protocol] = (H_test.view(len(obs), -1, H_test.shape[-1]).double(),
                           torch.as_tensor(np.stack(X_test), dtype=torch.float64))

    # decoders, a group at a time: each (split, fit) trains on slice f of its orthants' pools
    jobs = [(s, f) for s in range(len(pairs)) for f in range(n_fit)]
    names = decoders(hp)
    fitted = {d: ([], [], []) for d in names}  # W, b, hist of each decoder
    gap = []
    for start in range(0, len(jobs), MAX_DECODERS):
        group = jobs[start:start + MAX_DECODERS]
        H_train, X_train = training_sets(pools, pairs, group, n_train, rng)
        # least squares also where only Adam is asked for: the optimum Adam's training fit is held
        # to. One decoder at a time: its float64 copy of the training set stays small.
        lstsq = [metrics.fit_lstsq(H_train[k:k + 1], X_train[k:k + 1]) for k in range(len(group))]
        lstsq = torch.cat([w for w, _ in lstsq]), torch.cat([c for _, c in lstsq])
        fits = {'lstsq': lstsq + (torch.zeros(len(group), 0),)}
        if 'adam' in names:
            fits['adam'] = metrics.fit_adam(H_train, X_train, lr=hp['lr'], batch_size=hp['batch_sz'],
                                            n_batch=n_train_batches, seed=hp['seed'] + net_seed + start)
            gap.append(training_r2(H_train, X_train, *lstsq) - training_r2(H_train, X_train, *fits['adam'][:2]))
        for d in names:
            w, c, h = fits[d]
            fitted[d][0].append(w.double()), fitted[d][1].append(c.double()), fitted[d][2].append(h)
    shape = (len(pairs), n_fit)
    out = {'fits': {}}
    for d in names:
        W, b, hist = (torch.cat(x) for x in fitted[d])
        r2, mse = {}, {}
        for protocol, (H_test, X_test) in tests.items():
            pred = metrics.predict(H_test, W, b)
            r2[protocol] = metrics.r_squared(pred, X_test).numpy().reshape(shape)
            mse[protocol] = ((pred - X_test) ** 2).mean((1, 2)).numpy().reshape(shape)
        out['fits'][d] = {'r2': r2, 'mse': mse, 'W': W.numpy().reshape(shape + W.shape[1:]),
                          'hist': hist.numpy().reshape(shape + (hist.shape[-1],))}
    if 'adam' in names:
        history = results.history(out['fits']['adam']['hist'])  # the 100 points the result files keep
        out['adam_gap'] = torch.cat(gap).numpy().reshape(shape)
        out['adam_fall'] = metrics.loss_fall(history)[0]
        out['converged'] = converged(history, out['adam_gap']).astype(float)
    scores, out['disentanglement'] = abstraction(pools, config, hp['seed'], hp['n_abstraction'])
    out.update(scores)
    return {**out['fits'][names[-1]], **out}  # r2, mse, W, hist at the top: the one decoder, or Adam beside lstsq


def training_r2(H, X, W, b):
    """r² (K,) of decoders W (K, N, D), b (K, D) on their own training sets H (K, n, N),
    X (K, n, D), in float64, one decoder at a time (small copies)."""
    return torch.cat([metrics.r_squared(metrics.predict(H[k:k + 1].double(), W[k:k + 1].double(), b[k:k + 1].double()),
                                        X[k:k + 1].double()) for k in range(len(H))])


def converged(history, gap, gap_max=GAP_MAX):
    """Whether each Adam decoder converged: its loss history (..., n) no longer falls
    (metrics.still_falling) and its training r² is within `gap_max` of least squares'
    on the same trials (`gap`, ...; NaN: not known, e.g. in the committed result files,
    which keep only the history)."""
    gap = np.asarray(gap, dtype=float)
    return ~metrics.still_falling(history) & ~(gap > gap_max)


def count_unconverged(res):
    """How many Adam decoders of a result file's arrays (`res`, results.load_results)
    were still falling at the end of their batches, by the criterion generalize.py
    warns with (metrics.still_falling on the 100-point `train` histories; the
    committed files keep no lstsq fit, so the training gap is not used): returns
    {'fits', 'of', 'networks' (with at least one), 'of_networks', 'per_n_task' [fits
    per task count]}. Networks not evaluated (NaN) are not counted; lstsq files
    (empty histories) count 0 of 0."""
    train = np.asarray(res['train'], dtype=float)
    shape = train.shape[:2]
    if train.shape[-1] == 0:
        return {'fits': 0, 'of': 0, 'networks': 0, 'of_networks': 0, 'per_n_task': [0] * shape[0]}
    evaluated = np.isfinite(train).all(-1)
    falling = metrics.still_falling(train) & evaluated
    flat = lambda a: a.reshape(shape + (-1,))  # noqa: E731 (per network: every split and fit)
    return {'fits': int(falling.sum()), 'of': int(evaluated.sum()),
            'networks': int(flat(falling).any(-1).sum()), 'of_networks': int(flat(evaluated).any(-1).sum()),
            'per_n_task': flat(falling).sum((1, 2)).astype(int).tolist()}


def training_sets(pools, pairs, group, n_train, rng):
    """Hidden states (K, n_train, N) and latents (K, n_train, D) of the decoders in
    `group` ((split, fit) pairs): equal shares of slice f of each training orthant's
    pool, shuffled so every Adam batch mixes the orthants."""
    H, X = [], []
    for s, f in group:
        train = pairs[s][0]
        share = math.ceil(n_train / len(train))
        h = torch.cat([pools[k][0][f, :share] for k in train])
        x = torch.cat([pools[k][1][f, :share] for k in train])
        order = torch.as_tensor(rng.permutation(len(h))[:n_train])
        H.append(h[order]), X.append(x[order])
    return torch.stack(H), torch.stack(X)


def abstraction(pools, config, seed, n_abstraction):
    """The abstraction and disentanglement metrics of the final hidden states (SPEC §6,
    issue 21), from the first slice of the pools (n_abstraction trials per orthant,
    fewer where a D > 2 pool is smaller): CCGP and parallelism score of (x1, x2) with
    their standard errors over resampled trials (metrics.abstraction_metrics; NaN for
    D > 2 or when a quadrant has no pool: in-distribution pools always have all four),
    and disentanglement.network_metrics (DCI, MIG, CCGP / PS means, their null bands)
    over the latents. Returns ({'ccgp', 'ps', 'ccgp_se', 'ps_se'}: arrays (2,) over
    (x1, x2), {name: float})."""
    H = torch.cat([pools[k][0][0, :n_abstraction] for k in sorted(pools)]).numpy()
    X = torch.cat([pools[k][1][0, :n_abstraction] for k in sorted(pools)]).numpy()
    extra = disentanglement.network_metrics(H, X, seed=seed)
    if config['n_dim'] != 2 or len(pools) < 4:
        return {key: np.full(2, np.nan) for key in ('ccgp', 'ps', 'ccgp_se', 'ps_se')}, extra
    s = metrics.abstraction_metrics(H, X, seed=seed, n_boot=metrics.ABSTRACTION_BOOT)
    scores = {key: np.array([s[f'{metric}_x1{end}'], s[f'{metric}_x2{end}']])
              for metric in ('ccgp', 'ps') for key, end in ((metric, ''), (metric + '_se', '_se'))}
    return scores, extra


def state_conditioning(H, rtol=1e-10):
    """Scale and conditioning of final hidden states H (n, N) seen as a linear decoder's
    design matrix: why a fixed-budget Adam fit can fail where least squares does not.
    Adam moves every weight by about lr per step whatever the gradient's size, so the
    decoder's output moves by about lr·‖h‖₁ per step (`l1_norm`): large states make it
    jitter, and directions of small variance (a large `cond`) are learnt slowly.
    Returns floats: mean_norm (mean ‖h‖₂), l1_norm (mean ‖h‖₁), unit_std (median std of
    a unit), offset (‖mean h‖ over the root of the total variance: states far from the
    origin relative to their spread must be cancelled by the bias), cond and log10_cond
    (largest over smallest eigenvalue of the covariance, eigenvalues below rtol × the
    largest counting as 0), rank (eigenvalues above that), participation (participation
    ratio (Σλ)²/Σλ², the covariance's effective dimensionality)."""
    h = _to_numpy_2d(H)
    mean = h.mean(0)
    lam = np.clip(np.linalg.eigvalsh(np.cov(h, rowvar=False)), 0, None)
    kept = lam[lam > rtol * lam.max()] if lam.max() > 0 else lam[:0]
    cond = float(kept.max() / kept.min()) if kept.size else float('nan')
    return {'mean_norm': float(np.linalg.norm(h, axis=1).mean()), 'l1_norm': float(np.abs(h).sum(1).mean()),
            'unit_std': float(np.median(h.std(0))),
            'offset': float(np.linalg.norm(mean) / np.sqrt(lam.sum())) if lam.sum() > 0 else float('nan'),
            'cond': cond, 'log10_cond': float(np.log10(cond)), 'rank': int(kept.size),
            'participation': float(lam.sum() ** 2 / (lam ** 2).sum()) if lam.sum() > 0 else float('nan')}


def _to_numpy_2d(H):
    h = H.detach().cpu().numpy() if torch.is_tensor(H) else np.asarray(H)
    if h.ndim != 2 or len(h) < 2:
        raise ValueError(f"hidden states must be (n >= 2, N), got shape {h.shape}")
    return h.astype(np.float64)
