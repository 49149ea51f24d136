"""linearity.py: an encoder built to be exactly linear sits at the ceiling, a strongly
nonlinear one far below."""
import numpy as np
import pytest
import torch
from torch import nn

import linearity
import networks

CONFIG = dict(task='LinearClassificationCentOut', n_task=24, n_dim=2, encode=True, activ_enc='relu',
              enc_hidden=100, enc_out=40, noise_enc=False, n_sd_in=2.0, dt=100, dist='gauss',
              timing={'fixation': 100, 'stimulus': 2000, 'delay': 0, 'decision': 100}, corr=0.0,
              autocorr=0.0, bound=5.0)
N = 8000


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(20 * x)


def encoder(config, act=None, seed=0):
    """networks.build_encoder with its two nonlinearities replaced by `act` (Identity: linear)."""
    torch.manual_seed(seed)
    enc = networks.build_encoder(config)
    if act is not None:
        enc[1], enc[3] = act(), act()
    return enc


def test_linear_encoder_explains_all_variance_and_reaches_the_ceiling():
    enc = encoder(CONFIG, nn.Identity)
    out = linearity.encoder_linearity(enc, CONFIG, n_cube=N, n_trials=N)
    ceiling = linearity.sample_mean_r2(CONFIG, n_trials=N)
    assert out['variance_share'] == pytest.approx(1, abs=1e-9)
    # an affine map of the sample mean decodes exactly as the sample mean does
    assert out['ood_r2'] == pytest.approx(ceiling, abs=1e-4)
    assert ceiling == pytest.approx(0.975, abs=0.006)  # SPEC §7: ≈ 0.975 at σ = 0.2 per step, T = 20


def test_noise_free_linear_encoder_decodes_perfectly():
    cfg = dict(CONFIG, n_sd_in=0.0)
    assert linearity.encoder_linearity(encoder(cfg, nn.Identity), cfg, n_cube=N, n_trials=N)['ood_r2'] \
        == pytest.approx(1, abs=1e-5)


def test_strongly_nonlinear_encoder_is_far_below():
    out = linearity.encoder_linearity(encoder(CONFIG, Sine), CONFIG, n_cube=N, n_trials=N)
    assert out['variance_share'] < 0.2
    assert out['ood_r2'] < 0.5


def test_relu_encoder_lies_between():
    out = linearity.encoder_linearity(encoder(CONFIG), CONFIG, n_cube=N, n_trials=N)
    assert 0.6 < out['variance_share'] < 0.99
    assert 0.8 < out['ood_r2'] < linearity.sample_mean_r2(CONFIG, n_trials=N)


def test_high_dimensional_latents_use_half_space_splits():
    cfg = dict(CONFIG, task='LinearClassificationHighDim', n_dim=4)
    out = linearity.encoder_linearity(encoder(cfg, nn.Identity), cfg, n_cube=N, n_trials=N)
    assert out['variance_share'] == pytest.approx(1, abs=1e-9)
    assert out['ood_r2'] == pytest.approx(linearity.sample_mean_r2(cfg, n_trials=N), abs=1e-4)
    assert out['ood_r2'] > 0.96


def test_noise_after_the_encoder_is_drawn_when_training_draws_it():
    cfg = dict(CONFIG, noise_enc=True)
    enc = encoder(cfg, nn.Identity)
    noisy = linearity.encoder_linearity(enc, cfg, n_cube=N, n_trials=N)['ood_r2']
    clean = linearity.encoder_linearity(enc, dict(cfg, n_sd_in=0.0), n_cube=N, n_trials=N)['ood_r2']
    assert clean == pytest.approx(1, abs=1e-5) and 0 < noisy < 0.999


def test_ood_r2_uses_the_quadrant_hold_out():
    """A code that is linear inside each quadrant but folds across them decodes well
    in distribution and badly out of it."""
    x = np.random.default_rng(0).random((4000, 2)) - 0.5
    folded = np.abs(x)
    assert linearity.ood_r2(folded, x) < 0.5
    assert linearity.ood_r2(x, x) == pytest.approx(1)


def test_no_encoder_is_refused():
    with pytest.raises(ValueError, match="encode"):
        linearity.encoder_linearity(None, dict(CONFIG, encode=False))


def test_constant_offsets_do_not_count_as_linear():
    """Shifting every output feature by a constant leaves the (centred) share unchanged;
    the uncentred ratio would call the shifted sine encoder linear."""
    enc = encoder(CONFIG, Sine)
    before = linearity.variance_share(enc, 2, n=N)
    with torch.no_grad():
        enc[4].bias += 10.0
    assert linearity.variance_share(enc, 2, n=N) == pytest.approx(before, abs=1e-6)
    assert linearity.variance_share(enc, 2, n=N, centred=False) > 0.99
