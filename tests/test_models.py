import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ensemble
import networks
import train
import transformer
from RNN import LSTM, RNN, _LSTMRecurrence, _Recurrence, _reference_lstm, _reference_recurrence
from transformer import GPT


def stack(cls, kwargs, models):
    """One ensemble whose member m holds models[m]'s weights (as train.py builds them)."""
    ensemble_ = cls(**kwargs, n_members=len(models))
    for m, model in enumerate(models):
        ensemble.load_member_state_dict(ensemble_, m, ensemble.member_state_dict(model, 0))
    return ensemble_


def single_models(cls, kwargs, seeds):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(cls(**kwargs))
    return models


# ---------------------------------------------------------------- ensemble layers

def test_linear_equals_loop_over_members_and_seeded_like_torch():
    torch.manual_seed(0)
    layer = ensemble.Linear(4, 3, n_members=5)
    x = torch.randn(5, 2, 7, 4)
    expected = torch.stack([F.linear(x[m], layer.weight[m], layer.bias[m]) for m in range(5)])
    torch.testing.assert_close(layer(x), expected)
    no_bias = ensemble.Linear(4, 3, n_members=5, bias=False)
    torch.testing.assert_close(no_bias(x), torch.stack([F.linear(x[m], no_bias.weight[m]) for m in range(5)]))
    # with one member, a seed gives exactly torch.nn.Linear's init
    torch.manual_seed(1)
    ours = ensemble.Linear(30, 20)
    torch.manual_seed(1)
    ref = nn.Linear(30, 20)
    assert torch.equal(ours.weight[0], ref.weight) and torch.equal(ours.bias[0], ref.bias)
    with pytest.raises(ValueError, match="n_members=5"):
        layer(torch.randn(4, 2, 4))


def test_layernorm_equals_torch_per_member():
    norm = ensemble.LayerNorm(6, n_members=3)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(3, 2, 5, 6)
    for m in range(3):
        ref = nn.LayerNorm(6)
        ref.load_state_dict(ensemble.member_state_dict(norm, m))
        torch.testing.assert_close(norm(x)[m], ref(x[m]))


def test_member_state_dict_round_trip_and_errors():
    net = RNN(3, 5, 2, n_members=3)
    sd = ensemble.member_state_dict(net, 1)
    assert sd["inp_to_rec.weight"].shape == (5, 3) and sd["rec_to_out.bias"].shape == (2,)
    other = RNN(3, 5, 2, n_members=4)
    ensemble.load_member_state_dict(other, 2, sd)
    for k, v in ensemble.member_state_dict(other, 2).items():
        assert torch.equal(v, sd[k])
    assert not torch.equal(ensemble.member_state_dict(other, 0)["rec_to_rec.weight"], sd["rec_to_rec.weight"])
    with pytest.raises(ValueError, match="missing"):
        ensemble.load_member_state_dict(other, 0, {k: v for k, v in sd.items() if k != "rec_to_out.bias"})
    with pytest.raises(ValueError, match="shape"):
        ensemble.load_member_state_dict(other, 0, {**sd, "rec_to_out.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match="out of range"):
        ensemble.member_state_dict(net, 3)


@pytest.mark.parametrize("cls, kwargs", [
    (RNN, dict(inp_size=3, rec_size=6, out_size=2, n_sd=0.0, dt=20)),
    (LSTM, dict(inp_size=3, rec_size=6, out_size=2)),
    (GPT, dict(n_in=3, n_out=2, n_embd=8, n_head=2, n_layer=2)),
])
def test_each_member_of_an_ensemble_is_the_network_alone(cls, kwargs):
    models = single_models(cls, kwargs, seeds=[0, 1, 2])
    stacked = stack(cls, kwargs, models).eval()
    assert stacked.n_members == 3
    u = torch.randn(3, 4, 5, 3)
    hidden, out = stacked(u)
    for m, model in enumerate(models):
        h_m, out_m = model.eval()(u[m])  # single network: no member dim
        torch.testing.assert_close(hidden[m], h_m)
        torch.testing.assert_close(out[m], out_m)


def test_member_gradient_equals_gradient_alone():
    kwargs = dict(inp_size=3, rec_size=6, out_size=2, n_sd=0.0, dt=50)
    models = single_models(RNN, kwargs, seeds=[0, 1, 2])
    stacked = stack(RNN, kwargs, models)
    u, target = torch.randn(3, 4, 5, 3), torch.rand(3, 4, 5, 2)
    _, out = stacked(u)
    F.mse_loss(out, target, reduction="none").mean((1, 2, 3)).sum().backward()
    for m, model in enumerate(models):
        _, out_m = model(u[m])
        F.mse_loss(out_m, target[m]).backward()
        for name, p in stacked.named_parameters():
            torch.testing.assert_close(p.grad[m], model.get_parameter(name).grad[0])


# ---------------------------------------------------------------- RNN

def numpy_rnn(sd, u, noise, n_sd, alpha, leaky, activation):
    """The SPEC §3 equations, step by step, in float64."""
    p = {k: v.double().numpy() for k, v in sd.items()}
    f = {"relu": lambda h: np.maximum(h, 0), "tanh": np.tanh}[activation]
    u, noise = u.double().numpy(), noise.double().numpy()
    r = np.zeros((u.shape[0], p["rec_to_rec.weight"].shape[0]))
    rates = []
    for t in range(u.shape[1]):
        h = (u[:, t] @ p["inp_to_rec.weight"].T + p["inp_to_rec.bias"]
             + r @ p["rec_to_rec.weight"].T + p["rec_to_rec.bias"] + n_sd * noise[:, t])
        r = (1 - alpha) * r + alpha * f(h) if leaky else r + alpha * f(h)
        rates.append(r)
    rates = np.stack(rates, 1)
    return rates, rates @ p["rec_to_out.weight"].T + p["rec_to_out.bias"]


@pytest.mark.parametrize("leaky", [True, False])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("dt", [10, 100])
def test_rnn_matches_numpy_equations(leaky, activation, dt):
    torch.manual_seed(0)
    net = RNN(3, 7, 2, n_sd=0.3, activation=activation, tau=100, dt=dt, leaky=leaky, n_members=2)
    u, noise = torch.randn(2, 4, 6, 3), torch.randn(2, 4, 6, 7)
    rates, out = net(u, noise=noise)
    for m in range(2):
        ref_rates, ref_out = numpy_rnn(ensemble.member_state_dict(net, m), u[m], noise[m], 0.3,
                                       dt / 100, leaky, activation)
        np.testing.assert_allclose(rates[m].detach().numpy(), ref_rates, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[m].detach().numpy(), ref_out, rtol=1e-5, atol=1e-5)


def test_rnn_noise_is_drawn_when_not_given():
    net = RNN(3, 7, 2, n_sd=0.5, n_members=1)
    u = torch.randn(4, 6, 3)
    assert not torch.equal(net(u)[0], net(u)[0])
    quiet = RNN(3, 7, 2, n_sd=0.0)
    assert torch.equal(quiet(u)[0], quiet(u)[0])
    with pytest.raises(ValueError, match="noise"):
        net(u, noise=torch.randn(4, 5, 7))


@pytest.mark.parametrize("leaky", [True, False])
def test_rnn_dynamics_is_one_noise_free_step(leaky):
    net = RNN(3, 7, 2, n_sd=0.0, activation="tanh", dt=30, leaky=leaky, n_members=3)
    u = torch.randn(3, 4, 2, 3)
    rates, _ = net(u)
    torch.testing.assert_close(net.dynamics(u[:, :, 1], rates[:, :, 0]), rates[:, :, 1])
    torch.testing.assert_close(net.dynamics(u[:, :, 0], torch.zeros(3, 4, 7)), rates[:, :, 0])
    single = RNN(3, 7, 2, n_sd=0.0)
    r = torch.rand(10, 7)  # many states under one input broadcast, no member dim
    assert single.dynamics(torch.randn(1, 3), r).shape == (10, 7)


def test_rnn_sparse_and_ortho_init():
    torch.manual_seed(0)
    net = RNN(3, 200, 2, init="sparse", n_members=2)
    for w in net.rec_to_rec.weight.detach():
        nonzero = w[w != 0]
        assert nonzero.numel() / w.numel() == pytest.approx(0.15, abs=1e-3)
        assert nonzero.std().item() == pytest.approx(math.sqrt(2 / (0.15 * 200)), rel=0.05)
    ortho = RNN(3, 20, 2, init="ortho", n_members=2)
    for w in ortho.rec_to_rec.weight.detach():
        torch.testing.assert_close(w @ w.T, torch.eye(20), atol=1e-5, rtol=0)


def test_rnn_defaults_are_the_paper_network():
    """RNN(n_in, 64, n_out) is the network train.py trains by default, weights included."""
    config = train.defaults()
    torch.manual_seed(0)
    paper = networks.build_network(config, 43, 24)
    torch.manual_seed(0)
    plain = RNN(43, config["n_neu"], 24)
    assert (plain.n_sd, plain.alpha, plain.leaky, plain.activation_name) == (0.0, 1.0, True, "relu")
    assert (paper.n_sd, paper.alpha, paper.leaky, paper.activation_name) == (0.0, 1.0, True, "relu")
    for (name, a), (_, b) in zip(plain.state_dict().items(), paper.state_dict().items()):
        assert torch.equal(a, b), name
    u = torch.randn(2, 5, 43)
    torch.testing.assert_close(plain(u)[1], plain(u)[1], rtol=0, atol=0)  # no network noise by default


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="sigmoid"), "activation"), (dict(init="xavier"), "init"),
    (dict(tau=0), "tau"), (dict(dt=-1), "dt"), (dict(n_sd=-0.1), "n_sd"),
    (dict(rec_size=0), "rec_size"), (dict(n_members=0), "n_members"), (dict(leaky="yes"), "leaky"),
])
def test_rnn_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RNN(**{**dict(inp_size=3, rec_size=5, out_size=2), **kwargs})


def test_member_dim_may_be_omitted_only_for_one_member():
    u = torch.randn(4, 6, 3)
    rates, out = RNN(3, 5, 2)(u)
    assert rates.shape == (4, 6, 5) and out.shape == (4, 6, 2)
    with pytest.raises(ValueError, match="dimensions"):
        RNN(3, 5, 2, n_members=2)(u)
    with pytest.raises(ValueError, match="members"):
        RNN(3, 5, 2, n_members=2)(torch.randn(3, 4, 6, 3))


# ---------------------------------------------------------------- LSTM

def test_lstm_equals_torch_lstm():
    torch.manual_seed(0)
    net = LSTM(3, 6, 2, n_members=2)
    u = torch.randn(2, 4, 7, 3)
    hs, out = net(u)
    for m in range(2):
        sd = ensemble.member_state_dict(net, m)
        ref = nn.LSTM(3, 6, batch_first=True)
        ref.load_state_dict({k.removeprefix("lstm."): v for k, v in sd.items() if k.startswith("lstm.")})
        torch.testing.assert_close(hs[m], ref(u[m])[0])
        torch.testing.assert_close(out[m], F.linear(hs[m], sd["rec_to_out.weight"], sd["rec_to_out.bias"]))
    torch.manual_seed(3)  # one member: a seed gives nn.LSTM's init
    ours = LSTM(3, 6, 2)
    torch.manual_seed(3)
    ref = nn.LSTM(3, 6, batch_first=True)
    assert torch.equal(ours.lstm.weight_hh_l0[0], ref.weight_hh_l0)
    assert torch.equal(ours.lstm.bias_hh_l0[0], ref.bias_hh_l0)


def test_lstm_dynamics_consistent_with_forward():
    net = LSTM(3, 6, 2, n_members=2)
    u = torch.randn(2, 4, 5, 3)
    hs, _ = net(u)
    state = torch.zeros(2, 4, 12)
    for t in range(5):
        state = net.dynamics(u[:, :, t], state)
        torch.testing.assert_close(state[..., :6], hs[:, :, t])
    single = LSTM(3, 6, 2)
    assert single.dynamics(torch.randn(1, 3), torch.zeros(9, 12)).shape == (9, 12)
    assert single.hidden_size == 6


# ---------------------------------------------------------------- transformer

def test_gpt_is_causal_without_positions():
    torch.manual_seed(0)
    net = GPT(3, 2, n_embd=16, n_layer=2, n_head=4).eval()
    u = torch.randn(2, 6, 3)
    hidden, out = net(u)
    values = net.head_values(u)
    assert hidden.shape == (2, 6, 16) and out.shape == (2, 6, 2) and values.shape == (2, 6, 4, 4)
    t = 3
    changed = u.clone()
    changed[:, t] += 1.0
    hidden2, out2 = net(changed)
    values2 = net.head_values(changed)
    torch.testing.assert_close(hidden2[:, :t], hidden[:, :t])
    torch.testing.assert_close(out2[:, :t], out[:, :t])
    torch.testing.assert_close(values2[:, :t], values[:, :t])
    for later in range(t, 6):
        assert not torch.allclose(hidden2[:, later], hidden[:, later])
    assert not torch.allclose(values2[:, t], values[:, t])
    # no positional information: with one layer (the paper's), the order of the earlier
    # tokens does not matter to the last one
    one_layer = GPT(3, 2, n_embd=16, n_layer=1, n_head=4).eval()
    permuted = torch.cat([u[:, [4, 2, 0, 3, 1]], u[:, 5:]], 1)
    torch.testing.assert_close(one_layer(permuted)[0][:, -1], one_layer(u)[0][:, -1])
    torch.testing.assert_close(one_layer.head_values(permuted)[:, -1], one_layer.head_values(u)[:, -1])


def test_gpt_head_values_are_value_projection_of_ln_1():
    net = GPT(3, 2, n_embd=8, n_layer=1, n_head=2, n_members=2).eval()
    u = torch.randn(2, 4, 5, 3)
    block = net.h[0]
    qkv = block.attn.c_attn(block.ln_1(net.wte(u)))
    torch.testing.assert_close(net.head_values(u, layer=0), qkv[..., 16:].reshape(2, 4, 5, 2, 4))
    with pytest.raises(ValueError, match="layer"):
        net.head_values(u, layer=1)


def test_gpt_init_stds():
    torch.manual_seed(0)
    net = GPT(4, 3, n_embd=64, n_layer=2, n_head=8, n_members=2)
    assert net.h[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert net.h[1].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert net.h[1].mlp.c_proj.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert net.h[0].attn.c_proj.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert net.rec_to_out.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert all(torch.all(p == 0) for n, p in net.named_parameters() if n.endswith("bias") and "ln" not in n)
    assert torch.all(net.ln_f.weight == 1) and torch.all(net.h[0].ln_1.bias == 0)
    assert net.hidden_size == 64
    with pytest.raises(ValueError, match="n_head"):
        GPT(4, 3, n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="dropout"):
        GPT(4, 3, dropout=1.5)


def test_gpt_dropout_only_in_train_mode():
    net = GPT(3, 2, n_embd=16, n_head=4, dropout=0.3)
    u = torch.randn(2, 5, 3)
    assert not torch.allclose(net.train()(u)[1], net(u)[1])
    assert torch.equal(net.eval()(u)[1], net(u)[1])


# ---------------------------------------------------------------- fused paths vs the autograd references

PAPER = dict(n_in=41, n_hidden=64, n_out=24, batch=16, steps=22)  # the paper's training sizes
RNN_VARIANTS = {f"{act}-{'leaky' if leaky else 'nonleaky'}-dt{dt}": dict(activation=act, leaky=leaky, dt=dt)
                for act in ("relu", "tanh") for leaky in (True, False) for dt in (100, 30)}


def assert_close_to_scale(actual, expected, rtol=1e-5):
    """Equal up to rtol of the tensor's largest entry (rounding-level differences in sums)."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * expected.abs().max().item())


def fused_and_reference_step(net, u, noise=None):
    """(hidden, outputs, parameter gradients of a BCE loss) with the fused path and the
    reference path of the same network."""
    target = torch.rand(u.shape[:-1] + (net.rec_to_out.out_features,),
                        generator=torch.Generator().manual_seed(1))
    results = []
    for fused in (True, False):
        net.fused = fused
        hidden, out = net(u, noise)
        loss = F.binary_cross_entropy_with_logits(out, target)
        results.append((hidden, out, torch.autograd.grad(loss, list(net.parameters()))))
    net.fused = True
    return results


@pytest.mark.parametrize("n_members", [1, 2])
@pytest.mark.parametrize("variant", RNN_VARIANTS.values(), ids=RNN_VARIANTS.keys())
def test_rnn_recurrence_gradcheck(variant, n_members):
    net = RNN(3, 5, 2, tau=100, n_members=n_members, **variant)
    generator = torch.Generator().manual_seed(0)
    drive = torch.randn(n_members, 3, 4, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    w_rec = (0.5 * torch.randn(n_members, 5, 5, dtype=torch.float64, generator=generator)).requires_grad_()

    def fused(d, w):
        return _Recurrence.apply(d, w, variant["activation"], net.alpha, net.leaky)

    assert torch.autograd.gradcheck(fused, (drive, w_rec))
    assert torch.autograd.gradcheck(fused, (drive, w_rec.detach()))  # no weight gradient asked
    torch.testing.assert_close(fused(drive, w_rec), _reference_recurrence(drive, w_rec, net._update))


@pytest.mark.parametrize("variant", RNN_VARIANTS.values(), ids=RNN_VARIANTS.keys())
def test_rnn_fused_equals_reference_at_paper_sizes(variant):
    torch.manual_seed(0)
    net = RNN(PAPER["n_in"], PAPER["n_hidden"], PAPER["n_out"], n_sd=0.1, tau=100, n_members=3, **variant)
    u = torch.randn(3, PAPER["batch"], PAPER["steps"], PAPER["n_in"])
    noise = torch.randn(3, PAPER["batch"], PAPER["steps"], PAPER["n_hidden"])
    (rates, out, grads), (ref_rates, ref_out, ref_grads) = fused_and_reference_step(net, u, noise)
    assert_close_to_scale(rates, ref_rates)
    assert_close_to_scale(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        assert_close_to_scale(grad, ref)


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 2, 1), (3, 1, 5)], ids=["M2", "M1-T1", "B1"])
def test_lstm_recurrence_gradcheck(shape):
    generator = torch.Generator().manual_seed(0)
    gates_in = torch.randn(*shape, 4 * 5, dtype=torch.float64, generator=generator, requires_grad=True)
    w_hh = (0.5 * torch.randn(shape[0], 4 * 5, 5, dtype=torch.float64, generator=generator)).requires_grad_()
    assert torch.autograd.gradcheck(_LSTMRecurrence.apply, (gates_in, w_hh))
    assert torch.autograd.gradcheck(_LSTMRecurrence.apply, (gates_in, w_hh.detach()))
    torch.testing.assert_close(_LSTMRecurrence.apply(gates_in, w_hh), _reference_lstm(gates_in, w_hh))


def test_lstm_fused_equals_reference_at_paper_sizes():
    torch.manual_seed(0)
    net = LSTM(PAPER["n_in"], PAPER["n_hidden"], PAPER["n_out"], n_members=3)
    u = torch.randn(3, PAPER["batch"], PAPER["steps"], PAPER["n_in"])
    (hs, out, grads), (ref_hs, ref_out, ref_grads) = fused_and_reference_step(net, u)
    assert_close_to_scale(hs, ref_hs)
    assert_close_to_scale(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        assert_close_to_scale(grad, ref)


def test_gpt_fused_equals_reference_in_eval_mode():
    torch.manual_seed(0)
    net = GPT(PAPER["n_in"], PAPER["n_out"], n_embd=PAPER["n_hidden"], n_head=8, n_layer=2,
              n_members=3).eval()
    u = torch.randn(3, PAPER["batch"], PAPER["steps"], PAPER["n_in"])
    (hidden, out, grads), (ref_hidden, ref_out, ref_grads) = fused_and_reference_step(net, u)
    assert_close_to_scale(hidden, ref_hidden)
    assert_close_to_scale(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        assert_close_to_scale(grad, ref)


@pytest.mark.parametrize("make", [
    lambda: RNN(3, 6, 2, n_sd=0.2, dt=50),
    lambda: RNN(3, 6, 2, n_sd=0.0, activation="tanh", leaky=False, dt=20),
    lambda: LSTM(3, 6, 2),
    lambda: GPT(3, 2, n_embd=8, n_head=2),
], ids=["rnn", "rnn-tanh-nonleaky", "lstm", "gpt"])
def test_single_network_without_member_dim_fused_equals_reference(make):
    torch.manual_seed(0)
    net = make().eval()
    u = torch.randn(4, 5, 3)
    noise = torch.randn(4, 5, 6) if isinstance(net, RNN) else None
    (hidden, out, grads), (ref_hidden, ref_out, ref_grads) = fused_and_reference_step(net, u, noise)
    assert hidden.shape == (4, 5, net.hidden_size) and out.shape == (4, 5, 2)
    torch.testing.assert_close(hidden, ref_hidden)
    torch.testing.assert_close(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref)


def test_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    drop = transformer.Dropout(0.3)
    x = torch.rand(200_000, dtype=torch.float64) + 1  # no zeros of its own
    x.requires_grad_()
    y = drop(x)
    kept = y != 0
    assert kept.double().mean().item() == pytest.approx(0.7, abs=0.005)
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, kept.double() / 0.7)  # the same mask in the backward
    assert not torch.equal(drop(x), y)  # a fresh mask per call
    assert drop.eval()(x) is x and transformer.Dropout(0.0)(x) is x


# ---------------------------------------------------------------- training sanity

def running_mean_sign_batch(generator, batch=32, steps=10):
    """1-D noisy evidence; the label at every step is the sign of the running mean."""
    latent = torch.rand(batch, 1, 1, generator=generator) - 0.5
    u = latent + 0.3 * torch.randn(batch, steps, 1, generator=generator)
    running_mean = u.cumsum(1) / torch.arange(1, steps + 1).view(1, -1, 1)
    return u, (running_mean > 0).float()


@pytest.mark.parametrize("make", [
    lambda: RNN(1, 16, 1, n_sd=0.0, tau=100, dt=100),
    lambda: RNN(1, 16, 1, n_sd=0.01, tau=100, dt=20, leaky=False),
    lambda: LSTM(1, 16, 1),
    lambda: GPT(1, 1, n_embd=16, n_head=2, dropout=0.0),
], ids=["rnn", "rnn-nonleaky", "lstm", "gpt"])
def test_tiny_training_reduces_loss(make):
    torch.manual_seed(0)
    net = make()
    generator = torch.Generator().manual_seed(0)
    u_test, y_test = running_mean_sign_batch(generator, batch=256)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    def test_loss():
        with torch.no_grad():
            return F.binary_cross_entropy_with_logits(net(u_test)[1], y_test).item()

    initial = test_loss()
    for _ in range(150):
        u, y = running_mean_sign_batch(generator)
        loss = F.binary_cross_entropy_with_logits(net(u)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert test_loss() < 0.7 * initial
