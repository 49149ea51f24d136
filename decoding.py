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
import tasks

MAX_DECODERS = 20  # decoders fit at once (bounds the memory of their training sets)
N_ABSTRACTION = 500  # trials per quadrant for CCGP and the parallelism score


def splits(n_dim, out_of_distribution, split=None, split_var=False):
    """(train orthants, test orthants) per split. Orthant k (1-based) is the k-th sign
    pattern of itertools.product([-.5, .5], repeat=D); for D = 2 these are the
    paper's quadrants 1:(+,+) 2:(−,+) 3:(−,−) 4:(+,−)."""
    if n_dim == 2:
        tests = [[q] for q in (1, 2, 3, 4)]
        everything = [1, 2, 3, 4]
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
    single = config['n_dim'] == 2 or (hp['split'] is None and not hp['split_var'])
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
    W (n_split, n_fit, N, D), hist (n_split, n_fit, n_batch; empty for lstsq), and the
    abstraction metrics ccgp, ps of (x1, x2) (NaN for D > 2)."""
    pairs = splits(config['n_dim'], hp['out_of_distribution'], hp['split'], hp['split_var'])
    n_fit, n_train = hp['n_fit'], n_train_batches * hp['batch_sz']
    rng = np.random.default_rng([hp['seed'], net_seed])

    # the pools: n_fit slices per orthant, each large enough for its share of one training set
    per_slice = max(math.ceil(n_train / len(train)) for train, _ in pairs)
    pools = {}
    for k in sorted({k for train, _ in pairs for k in train}):
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
    W, b, hist = [], [], []
    for start in range(0, len(jobs), MAX_DECODERS):
        group = jobs[start:start + MAX_DECODERS]
        H_train, X_train = training_sets(pools, pairs, group, n_train, rng)
        if hp['decoder'] == 'adam':
            w, c, h = metrics.fit_adam(H_train, X_train, lr=hp['lr'], batch_size=hp['batch_sz'],
                                       n_batch=n_train_batches, seed=hp['seed'] + net_seed + start)
        else:  # solved in float64 inside
            (w, c), h = metrics.fit_lstsq(H_train, X_train), torch.zeros(len(group), 0)
        W.append(w.double()), b.append(c.double()), hist.append(h)
    W, b, hist = torch.cat(W), torch.cat(b), torch.cat(hist)
    shape = (len(pairs), n_fit)
    r2, mse = {}, {}
    for protocol, (H_test, X_test) in tests.items():
        pred = metrics.predict(H_test, W, b)
        r2[protocol] = metrics.r_squared(pred, X_test).numpy().reshape(shape)
        mse[protocol] = ((pred - X_test) ** 2).mean((1, 2)).numpy().reshape(shape)
    ccgp, ps, extra = abstraction(pools, config, hp['seed'])
    return {'r2': r2, 'mse': mse, 'W': W.numpy().reshape(shape + W.shape[1:]),
            'hist': hist.numpy().reshape(shape + (hist.shape[-1],)), 'ccgp': ccgp, 'ps': ps,
            'disentanglement': extra}


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


def abstraction(pools, config, seed):
    """The abstraction and disentanglement metrics of the final hidden states (SPEC §6,
    issue 21), from the first slice of the pools (N_ABSTRACTION trials per orthant):
    CCGP and parallelism score of (x1, x2) (NaN for D > 2 or when a quadrant has no
    pool: in-distribution pools always have all four), and
    disentanglement.network_metrics (DCI, MIG, CCGP / PS means, their null bands) over
    the latents. Returns (ccgp (2,), ps (2,), {name: float})."""
    H = torch.cat([pools[k][0][0, :N_ABSTRACTION] for k in sorted(pools)]).numpy()
    X = torch.cat([pools[k][1][0, :N_ABSTRACTION] for k in sorted(pools)]).numpy()
    extra = disentanglement.network_metrics(H, X, seed=seed)
    if config['n_dim'] != 2 or len(pools) < 4:
        return np.full(2, np.nan), np.full(2, np.nan), extra
    scores = metrics.abstraction_metrics(H, X, seed=seed)
    return (np.array([scores['ccgp_x1'], scores['ccgp_x2']]),
            np.array([scores['ps_x1'], scores['ps_x2']]), extra)
