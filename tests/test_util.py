"""util.py: encoder, network inputs, targets, loss masks, task building from a config."""
import numpy as np
import pytest
import torch

import train
import util

CONFIG = train.defaults()


def test_step_masks_follow_the_timing():
    timing = {'fixation': 100, 'stimulus': 300, 'delay': 200, 'decision': 100}
    stim, dec = util.step_masks(timing, 100, trial_num=2)
    assert stim.tolist() == [0, 1, 1, 1, 0, 0, 0] * 2
    assert dec.tolist() == [0, 0, 0, 0, 0, 0, 1] * 2


def test_encoder_is_frozen_with_paper_keys_and_quadratic_option():
    enc = util.build_encoder(2)
    assert not any(p.requires_grad for p in enc.parameters())
    assert [k for k in enc.state_dict()] == ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']
    quad = util.build_encoder(2, 'Quad')
    x = torch.randn(1, 5, 2)
    h = quad[1](quad[0](x))
    torch.testing.assert_close(h, quad[0](x) ** 2)
    with pytest.raises(ValueError, match='activ_enc'):
        util.build_encoder(2, 'tanh')


def test_network_inputs_mix_only_the_stimulus_channels():
    env = util.make_env(CONFIG)
    trials = env.sample(np.random.default_rng(0), 3)
    ob = torch.as_tensor(trials['ob'])
    enc = util.build_encoder(2)
    u = util.network_inputs(ob, env, enc)
    assert u.shape == (3, env.n_steps, 41) == (3, 22, util.n_inputs(env, True))
    torch.testing.assert_close(u[..., 0], ob[..., 0])  # fixation passes unmixed
    torch.testing.assert_close(u[..., 1:], enc(ob[None, ..., 1:3])[0])
    # ensembles: each member's stimulus goes through its own encoder
    enc3 = util.build_encoder(2, n_members=3)
    u3 = util.network_inputs(ob[None].expand(3, -1, -1, -1), env, enc3)
    assert not torch.allclose(u3[0], u3[1])
    noise = torch.ones(3, 22, 40)
    torch.testing.assert_close(util.network_inputs(ob, env, enc, noise)[..., 1:], u[..., 1:] + 1)


def test_bce_targets_and_readouts():
    gt = torch.tensor([0.0, 1.0, -1.0])
    assert util.classification_targets(gt, CONFIG).tolist() == [0.5, 1.0, 0.0]
    assert util.classification_targets(gt, dict(CONFIG, CE_loss=False)).tolist() == [0.0, 1.0, -1.0]
    z = torch.tensor([0.0, 100.0])
    assert util.readout(z, CONFIG).tolist() == [0.5, 1.0]
    assert util.readout(z, dict(CONFIG, CE_loss=False)).tolist() == [0.0, 1.0]
    bound = dict(CONFIG, task='LinearClassificationBound', CE_loss=False)
    assert util.readout(z, bound).tolist() == [0.0, 5.0]
    assert util.decision_threshold(CONFIG) == 0.5 and util.decision_threshold(bound) == 0.0
    loss = util.step_losses(torch.zeros(1, 3), torch.zeros(1, 3), CONFIG)
    torch.testing.assert_close(loss, torch.full((1, 3), np.log(2), dtype=torch.float32))


def test_loss_masks_sum_to_one_and_weigh_as_documented():
    _, dec = util.step_masks(CONFIG['timing'], 100)  # 22 steps, the last is the decision
    w = util.loss_weights(CONFIG, dec)
    torch.testing.assert_close(w, torch.full((22,), 1 / 22))
    w = util.loss_weights(dict(CONFIG, bal_err=True), dec)
    assert w[-1] == pytest.approx(0.5) and w[:-1].sum() == pytest.approx(0.5)
    w = util.loss_weights(dict(CONFIG, pen_end=True), dec)
    assert w[-1] == 1 and w.sum() == 1
    g = torch.Generator().manual_seed(0)
    w = util.loss_weights(dict(CONFIG, rand_pen=True), dec, g, (500,))
    assert w.shape == (500, 22) and torch.all(w.sum(-1) == 1) and torch.all(w.max(-1).values == 1)
    assert len(torch.unique(w.argmax(-1))) > 15  # the penalised step varies across trials


def test_make_env_resolves_variants_and_options():
    assert type(util.make_env(dict(CONFIG, corr=0.5))).__name__ == 'LinearClassificationCorr'
    assert type(util.make_env(dict(CONFIG, autocorr=0.5))).__name__ == 'LinearClassificationAutocorr'
    env = util.make_env(CONFIG, 'DenoiseQuads', quad_num=[2])
    assert np.all(env.sample(np.random.default_rng(0), 50)['stim'] * [-1, 1] > 0)
    assert util.make_env(dict(CONFIG, noise_enc=True)).noise_std == 0  # noise goes after the encoder
    two = util.make_envs(dict(CONFIG, task=['LinearClassificationCentOut', 'AttributeIntegrationCent']), 4)
    assert [e.rule_vec.tolist() for e in two] == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match='did you mean'):
        util.make_env(dict(CONFIG, task='LinearClassificationCentOur'))
    with pytest.raises(ValueError, match='gumbel'):
        util.make_env(dict(CONFIG, dist='gumbel'), 'DenoiseQuads')
