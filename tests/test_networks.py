"""networks.py: the encoder, network inputs, the network factory."""
import numpy as np
import torch

import networks
import tasks
import train
from RNN import LSTM, RNN
from transformer import GPT

CONFIG = train.defaults()


def test_encoder_is_frozen_with_paper_keys_sizes_and_quadratic_option():
    enc = networks.build_encoder(CONFIG)
    assert not any(p.requires_grad for p in enc.parameters())
    assert [k for k in enc.state_dict()] == ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']
    assert enc.state_dict()['2.weight'].shape == (1, 100, 100) and enc.state_dict()['4.weight'].shape == (1, 40, 100)
    small = networks.build_encoder(dict(CONFIG, enc_hidden=7, enc_out=3))
    assert small.state_dict()['4.weight'].shape == (1, 3, 7)
    quad = networks.build_encoder(dict(CONFIG, activ_enc='Quad'))
    x = torch.randn(1, 5, 2)
    h = quad[1](quad[0](x))
    torch.testing.assert_close(h, quad[0](x) ** 2)
    assert networks.build_encoder(dict(CONFIG, encode=False)) is None


def test_network_inputs_mix_only_the_stimulus_channels():
    env = tasks.training_env(CONFIG)
    trials = env.sample(np.random.default_rng(0), 3)
    ob = torch.as_tensor(trials['ob'])
    enc = networks.build_encoder(CONFIG)
    u = networks.network_inputs(ob, env, enc)
    assert u.shape == (3, env.n_steps, 41) == (3, 22, networks.n_inputs(env, CONFIG))
    torch.testing.assert_close(u[..., 0], ob[..., 0])  # fixation passes unmixed
    torch.testing.assert_close(u[..., 1:], enc(ob[None, ..., 1:3])[0])
    # ensembles: each member's stimulus goes through its own encoder
    enc3 = networks.build_encoder(CONFIG, n_members=3)
    u3 = networks.network_inputs(ob[None].expand(3, -1, -1, -1), env, enc3)
    assert not torch.allclose(u3[0], u3[1])
    noise = torch.ones(3, 22, 40)
    torch.testing.assert_close(networks.network_inputs(ob, env, enc, noise)[..., 1:], u[..., 1:] + 1)


def test_build_network_follows_the_config():
    rnn = networks.build_network(dict(CONFIG, leaky=False, activation='tanh'), 41, 24)
    assert isinstance(rnn, RNN) and not rnn.leaky and rnn.hidden_size == 64
    assert isinstance(networks.build_network(dict(CONFIG, network='LSTM'), 41, 24), LSTM)
    gpt = networks.build_network(dict(CONFIG, network='gpt-2', dropout=0.25, n_neu=32), 41, 24, n_members=2)
    assert isinstance(gpt, GPT) and gpt.drop.p == 0.25 and gpt.n_members == 2 and gpt.hidden_size == 32


def test_hidden_states_do_not_depend_on_how_the_trials_are_chunked():
    # hidden_states runs CPU evaluations in cache-sized chunks (CHUNK); the states must be
    # bit-identical to one large pass (the per-network path generalize.py's numbers were made with)
    env = tasks.training_env(CONFIG)
    ob = env.sample(np.random.default_rng(0), 600)['ob']
    enc = networks.build_encoder(CONFIG)
    for config in (CONFIG, dict(CONFIG, network='LSTM'), dict(CONFIG, network='gpt-2', n_neu=32)):
        torch.manual_seed(0)
        net = networks.build_network(config, networks.n_inputs(env, config), 24).eval()
        whole = networks.hidden_states(net, enc, env, ob, chunk=4096)
        assert whole.shape == (600, 22, net.hidden_size)
        for chunk in (None, 7, 256):  # None: the device's default, CHUNK['cpu']
            assert torch.equal(networks.hidden_states(net, enc, env, ob, chunk=chunk), whole), (config['network'], chunk)
        assert torch.equal(networks.hidden_states(net, enc, env, ob, last_only=True), whole[:, -1])
    assert networks.CHUNK['cpu'] < 600  # the default splits these trials
