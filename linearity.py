"""How linear the frozen random encoder is (issue 18): the baseline under OOD r².

A network that only integrates its input inherits whatever linear code of x* the
encoder already provides, so two numbers describe the encoder itself:
- variance_share: the share of the encoder's noise-free output variance over the latent
  cube [-0.5, 0.5]^D that a linear map of x* (with bias) explains, pooled over the
  output features: 1 - sum of squared least-squares residuals / total sum of squares
  (features weigh by their variance). 1 for a linear encoder.
- ood_r2: the OOD r² of a least-squares linear decoder (metrics.fit_lstsq) reading x*
  from the encoder's output averaged over the stimulus steps of noisy trials, with the
  noise of training (input noise, or noise after the encoder with noise_enc). Splits as
  decoding.splits: the held-out quadrant for D = 2, the half-spaces x_q > 0 of
  split_var for D > 2; r² = 1 - MSE / (1/12) on the held-out trials (SPEC §5), averaged
  over the splits. For a linear encoder this is the r² of the exact sample mean, the
  ceiling of SPEC §7 (≈ 0.975 at σ = 2, dt = 100, T = 20 steps).

Measure and save (train.py's defaults; the encoders of the first three 24-task networks):
    python -c "import train, linearity; c = train.defaults(); linearity.main(c, [train.member_seeds(c['seed'], 24, r)[0] for r in range(3)])"
"""
import itertools
import json

import numpy as np
import torch

import decoding
import metrics
import networks
import tasks

N_CUBE = 20000  # noise-free latents for the variance share
N_TRIALS = 20000  # noisy trials for the OOD r²
D_VALUES = (2, 4, 6, 8, 10)  # latent dimensionalities of Figure 5b
N_ENCODERS = 3  # encoders per condition in main()
OUT = 'results/encoder_linearity.json'


def features(encoder, x):
    """Noise-free encoder output (n, enc_out) of latents x (n, D)."""
    with torch.no_grad():  # the frozen encoder is a one-member ensemble: leading member dim
        return encoder(torch.as_tensor(x, dtype=torch.float32)[None])[0].double().numpy()


def _check(encoder, config):
    if encoder is None or not config.get('encode', True):
        raise ValueError("config['encode'] is False: there is no encoder to measure")


def variance_share(encoder, n_dim, n=N_CUBE, seed=0, centred=True):
    """Share of the encoder's output variance over [-0.5, 0.5]^D explained by a linear map
    of x*. centred=False divides by the raw second moment sum(F²) instead, which credits
    the features' constant offsets to the linear map (kept only to compare with numbers
    computed that way; it overstates linearity)."""
    x = np.random.default_rng(seed).random((n, n_dim)) - 0.5
    F = features(encoder, x)
    A = np.concatenate([x, np.ones((n, 1))], 1)
    coef, *_ = np.linalg.lstsq(A, F, rcond=None)
    total = ((F - F.mean(0)) ** 2).sum() if centred else (F ** 2).sum()
    if total == 0:
        raise ValueError("the encoder's output does not vary over the latent cube")
    return float(1 - ((F - A @ coef) ** 2).sum() / total)


def averaged_code(encoder, config, n=N_TRIALS, seed=0):
    """Encoder output averaged over the stimulus steps of n noisy trials drawn over all
    orthants as the decoding task draws them, (n, enc_out), and their latents (n, D)."""
    env = tasks.decoding_env(config)
    rng = np.random.default_rng(seed)
    trials = env.sample(rng, n, gt=False)
    ob = torch.as_tensor(trials['ob'])
    a, b = env.stim_steps
    enc_noise = None
    if config.get('noise_enc'):  # training puts the noise after the encoder, on the stimulus steps
        gen = torch.Generator().manual_seed(seed)
        enc_noise = torch.zeros(n, env.n_steps, config['enc_out'])
        enc_noise[:, a:b] = torch.randn(n, b - a, config['enc_out'], generator=gen) \
            * config['n_sd_in'] * networks.ENC_NOISE_SCALE
    u = networks.network_inputs(ob, env, encoder, enc_noise)
    first = 1 if env.fixation else 0
    code = u[:, a:b, first:first + config['enc_out']].double().mean(1)
    return code.numpy(), trials['stim']


def ood_r2(code, x):
    """Mean OOD r² of least-squares decoders over decoding.splits (quadrant hold-out for
    D = 2, split_var half-spaces for D > 2), from codes (n, k) and latents (n, D)."""
    n_dim = x.shape[1]
    # orthant index k (1-based) as decoding / DenoiseQuads(HighDim) number them
    if n_dim == 2:
        signs = {tuple(s): k + 1 for k, s in enumerate(tasks.QUAD_SIGNS.astype(int))}
    else:
        signs = {s: k + 1 for k, s in enumerate(itertools.product([-1, 1], repeat=n_dim))}
    orthant = np.array([signs[tuple(s)] for s in np.where(x > 0, 1, -1)])
    r2 = []
    for train, test in decoding.splits(n_dim, True, split_var=n_dim > 2):
        tr, te = np.isin(orthant, train), np.isin(orthant, test)
        W, b = metrics.fit_lstsq(code[None, tr], x[None, tr])
        r2.append(float(metrics.r_squared(metrics.predict(code[None, te], W, b), x[None, te])[0]))
    return float(np.mean(r2))


def encoder_linearity(encoder, config, seed=0, n_cube=N_CUBE, n_trials=N_TRIALS):
    """{'variance_share', 'ood_r2'} of a frozen encoder built for `config` (train.py's
    hyperparameters: n_dim, timing, dt, n_sd_in, noise_enc, enc_out, task)."""
    _check(encoder, config)
    code, x = averaged_code(encoder, config, n_trials, seed)
    return {'variance_share': variance_share(encoder, config['n_dim'], n_cube, seed),
            'ood_r2': ood_r2(code, x)}


def sample_mean_r2(config, seed=0, n_trials=N_TRIALS):
    """OOD r² of the same decoders on the exact sample mean of the observations: the
    ceiling a linear encoder reaches (SPEC §7)."""
    env = tasks.decoding_env(dict(config, encode=False, noise_enc=False))
    trials = env.sample(np.random.default_rng(seed), n_trials, gt=False)
    a, b = env.stim_steps
    mean = trials['ob'][:, a:b][..., env.stim_channels].astype(np.float64).mean(1)
    return ood_r2(mean, trials['stim'])


def measure(config, init_seeds):
    """encoder_linearity of the encoders built as train.py builds them (torch seeded with
    each network's init seed, then networks.build_encoder), with summary statistics."""
    per = []
    for s in init_seeds:
        torch.manual_seed(s)
        enc = networks.build_encoder(config)
        per.append({**encoder_linearity(enc, config, seed=int(s) % 2**32),
                    'variance_share_uncentred': variance_share(enc, config['n_dim'], seed=int(s) % 2**32,
                                                               centred=False)})
    return {'init_seeds': [int(s) for s in init_seeds], 'per_encoder': per,
            **{f'{k}_{stat}': float(f(np.array([p[k] for p in per])))
               for k in ('variance_share', 'variance_share_uncentred', 'ood_r2') for stat, f in (('min', np.min), ('max', np.max))},
            'ceiling': sample_mean_r2(config)}


def main(base, init_seeds, out=OUT):
    """Measure the ReLU encoder, S1's quadratic encoder and the ReLU encoder for each D of
    Figure 5b (LinearClassificationHighDim, 24 tasks) under the hyperparameters `base`
    (train.defaults()), one encoder per init seed; write the report to `out`."""
    report = {'what': __doc__.split('\n\n')[0].strip(), 'n_cube': N_CUBE, 'n_trials': N_TRIALS,
              'config': {k: base[k] for k in ('enc_hidden', 'enc_out', 'n_sd_in', 'dt', 'timing', 'noise_enc')},
              'relu': measure(dict(base, n_task=24), init_seeds),
              'quad': measure(dict(base, n_task=24, activ_enc='Quad'), init_seeds),
              'relu_by_D': {}}
    for d in D_VALUES:
        cfg = dict(base, task='LinearClassificationHighDim', n_dim=d, n_task=24)
        report['relu_by_D'][str(d)] = measure(cfg, init_seeds)
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)
    return report
