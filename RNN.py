"""Recurrent networks (SPEC §3): a rate RNN and an LSTM, both vectorised over ensemble members.

Every parameter has a leading member dim M; forward takes u (M, B, T, n_in) and returns
(M, B, T, ·). With n_members == 1 the member dim may be left out of the inputs, and is
then left out of the outputs too. Outputs are linear readouts (logits); the caller applies
the sigmoid / tanh.
"""

import math

import torch
import torch.nn as nn
from torch.autograd.function import once_differentiable

import checks
import ensemble
from ensemble import with_member_dim

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
INITS = (None, "sparse", "ortho")
SPARSE_DENSITY = 0.15  # fraction of non-zero recurrent weights of the 'sparse' init

# The activations writing into a given tensor, and their derivatives from their outputs f.
_ACTIVATE_INTO = {"relu": lambda h, out: torch.clamp_min(h, 0, out=out),
                  "tanh": lambda h, out: torch.tanh(h, out=out)}
_DERIVATIVE = {"relu": torch.sign,  # relu outputs are >= 0: sign() is the 0/1 derivative
               "tanh": lambda f: torch.addcmul(f.new_ones(()), f, f, value=-1)}


class _Recurrence(torch.autograd.Function):
    """The RNN recurrence over all steps, with a hand-written backward (SPEC §3).

    Leaky: r_t = (1-α) r_{t-1} + α f(h_t) (α = 1: r_t = f(h_t)); non-leaky: r_t = r_{t-1} +
    α f(h_t); h_t = d_t + W r_{t-1}, r_{-1} = 0; drive d and rates r are (M, B, T, N).
    Through autograd, the loop records ~4 nodes per step and a small matmul per step for
    dW; here every step is one matmul and 1-3 elementwise ops each way, the per-step
    slices are written in place (no stack), and dW is one product over all steps.
    """

    @staticmethod
    def forward(ctx, drive, w_rec, activation, alpha, leaky):
        w_t = w_rec.transpose(1, 2)
        rates = drive.new_empty(drive.shape)
        plain = leaky and alpha == 1  # r_t = f(h_t): the rates are the activations
        acts = rates if plain else drive.new_empty(drive.shape)  # f(h_t), for the derivative
        # One view per step, made once: unbind is cheaper than indexing in the loop.
        d_steps, r_steps, f_steps = drive.unbind(2), rates.unbind(2), acts.unbind(2)
        r = drive.new_zeros(d_steps[0].shape)
        for t in range(len(d_steps)):
            h = d_steps[t] if t == 0 else torch.baddbmm(d_steps[t], r, w_t)  # r_{-1} = 0
            f = _ACTIVATE_INTO[activation](h, f_steps[t])
            if not leaky:
                torch.add(r, f, alpha=alpha, out=r_steps[t])
            elif not plain:
                torch.lerp(r, f, alpha, out=r_steps[t])
            r = r_steps[t]
        ctx.save_for_backward(w_rec, rates, acts)
        ctx.activation, ctx.alpha, ctx.leaky = activation, alpha, leaky
        return rates

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rates):
        w_rec, rates, acts = ctx.saved_tensors
        alpha, leaky, derivative = ctx.alpha, ctx.leaky, _DERIVATIVE[ctx.activation]
        M, B, T, N = rates.shape
        d_drive = torch.empty_like(rates)  # dL/dh_t, filled backwards
        g_steps, f_steps, dh_steps = grad_rates.unbind(2), acts.unbind(2), d_drive.unbind(2)

        def dh_step(t, g):  # dL/dh_t = α f'(h_t) dL/dr_t
            dh = torch.mul(g, derivative(f_steps[t]), out=dh_steps[t])
            return dh if alpha == 1 else dh.mul_(alpha)

        # g = dL/dr_t: its own gradient plus what flows back from step t+1 (dh_{t+1} W,
        # and the carry: (1-α) r_t in the leaky update, r_t in the non-leaky one).
        g = g_steps[T - 1]
        for t in range(T - 1, 0, -1):
            g_prev = torch.baddbmm(g_steps[t - 1], dh_step(t, g), w_rec)
            if not leaky:
                g_prev += g
            elif alpha != 1:
                g_prev.add_(g, alpha=1 - alpha)
            g = g_prev
        # dW = sum_t dh_t^T r_{t-1}, one product over all steps: in the flat (B·T, N) rows,
        # row t of a trial pairs with row t-1; the pairs (t=0, previous trial's last step)
        # get a zero dh_0, which is filled in only after the product.
        d_w = None
        if ctx.needs_input_grad[1]:
            dh_steps[0].zero_()
            d_w = torch.bmm(d_drive.view(M, -1, N)[:, 1:].transpose(1, 2),
                            rates.view(M, -1, N)[:, :-1])
        dh_step(0, g)
        return d_drive, d_w, None, None, None


def _reference_recurrence(drive, w_rec, update):
    """_Recurrence through autograd, step by step: the plain reference (tests, benchmarks)."""
    w_t = w_rec.transpose(1, 2)
    r = drive.new_zeros(drive.shape[0], drive.shape[1], drive.shape[3])
    rates = []
    for drive_t in drive.unbind(2):  # unbind, not indexing: indexing is slow in backward
        r = update(r, torch.baddbmm(drive_t, r, w_t))
        rates.append(r)
    return torch.stack(rates, 2)


class _LSTMRecurrence(torch.autograd.Function):
    """The LSTM recurrence (torch.nn.LSTM's equations, gates i, f, g, o) with a hand-written
    backward, as _Recurrence: gates_in (M, B, T, 4H) = W_ih u_t + both biases -> h (M, B, T, H),
    h_{-1} = c_{-1} = 0. One matmul and a few elementwise ops per step each way; W_hh's
    gradient is one product after the loop. Each step's gate activations and cell state
    are kept as separate small tensors: large per-call buffers cost more in fresh memory
    (page faults) than they save in ops.
    """

    @staticmethod
    def forward(ctx, gates_in, w_hh):
        H = gates_in.shape[-1] // 4
        w_t = w_hh.transpose(1, 2)
        h = gates_in.new_empty(gates_in.shape[:-1] + (H,))
        h_steps = h.unbind(2)
        saved = []  # per step: σ of all four gates (the g quarter unused), tanh(g), c, tanh(c)
        for t, gates_in_t in enumerate(gates_in.unbind(2)):
            gates = gates_in_t if t == 0 else torch.baddbmm(gates_in_t, h_steps[t - 1], w_t)
            tanh_g = torch.tanh(gates[..., 2 * H:3 * H])
            sig = torch.sigmoid(gates)
            i, f, _, o = sig.chunk(4, dim=-1)
            c = i * tanh_g
            if t > 0:  # c_{-1} = 0
                c.addcmul_(f, saved[-1][2])
            tanh_c = torch.tanh(c)
            torch.mul(o, tanh_c, out=h_steps[t])
            saved.append((sig, tanh_g, c, tanh_c))
        ctx.save_for_backward(w_hh, h, *(x for step in saved for x in step))
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        w_hh, h, *flat = ctx.saved_tensors
        saved = [flat[k:k + 4] for k in range(0, len(flat), 4)]
        M, B, T, H = h.shape
        d_gates = grad_h.new_empty(M, B, T, 4 * H)
        grad_steps, d_gates_steps = grad_h.unbind(2), d_gates.unbind(2)

        def d_gates_step(t, dh, carry):
            """Fills d_gates_t from dh = dL/dh_t and carry = dL/dc_t through c_{t+1}; returns dL/dc_t."""
            sig, tanh_g, c, tanh_c = saved[t]
            i, f, _, o = sig.chunk(4, dim=-1)
            dc_dh = torch.addcmul(tanh_c.new_ones(()), tanh_c, tanh_c, value=-1).mul_(o)
            dc = dh * dc_dh if carry is None else torch.addcmul(carry, dh, dc_dh)
            # d(pre-activations) = (dc, dc, dc, dh) * local, local = (tanh(g) σ'(i),
            # c_{t-1} σ'(f), σ(i) tanh'(g), tanh(c) σ'(o)), with σ' = σ - σ².
            local = torch.addcmul(sig, sig, sig, value=-1)
            local_i, local_f, local_g, local_o = local.chunk(4, dim=-1)
            local_i.mul_(tanh_g)
            if t > 0:
                local_f.mul_(saved[t - 1][2])
            else:  # c_{-1} = 0
                local_f.zero_()
            torch.addcmul(tanh_g.new_ones(()), tanh_g, tanh_g, value=-1, out=local_g).mul_(i)
            local_o.mul_(tanh_c)
            torch.mul(local[..., :3 * H].unflatten(-1, (3, H)), dc.unsqueeze(2),
                      out=d_gates_steps[t][..., :3 * H].unflatten(-1, (3, H)))
            torch.mul(dh, local_o, out=d_gates_steps[t][..., 3 * H:])
            return dc.mul_(f)  # dL/dc_{t-1} through the forget gate

        # dh = dL/dh_t: its own gradient plus d_gates_{t+1} W_hh.
        dh, carry = grad_steps[T - 1], None
        for t in range(T - 1, 0, -1):
            carry = d_gates_step(t, dh, carry)
            dh = torch.baddbmm(grad_steps[t - 1], d_gates_steps[t], w_hh)
        d_w = None
        if ctx.needs_input_grad[1]:  # sum_t d_gates_t^T h_{t-1}, flat rows as in _Recurrence
            d_gates_steps[0].zero_()
            d_w = torch.bmm(d_gates.view(M, -1, 4 * H)[:, 1:].transpose(1, 2),
                            h.view(M, -1, H)[:, :-1])
        d_gates_step(0, dh, carry)
        return d_gates, d_w


def _lstm_step(gates_in, h, c, w_hh):
    """One LSTM step from the input part of the gates (biases included), through autograd."""
    gates = torch.baddbmm(gates_in, h, w_hh.transpose(1, 2))
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def _reference_lstm(gates_in, w_hh):
    """_LSTMRecurrence through autograd, step by step: the plain reference (tests, benchmarks)."""
    h = gates_in.new_zeros(gates_in.shape[0], gates_in.shape[1], gates_in.shape[3] // 4)
    c = torch.zeros_like(h)
    hs = []
    for gates_t in gates_in.unbind(2):
        h, c = _lstm_step(gates_t, h, c, w_hh)
        hs.append(h)
    return torch.stack(hs, 2)


class RNN(nn.Module):
    """Rate RNN: h_t = W_in u_t + W_rec r_{t-1} + n_sd·ξ_t, r_t = (1-α) r_{t-1} + α f(h_t).

    α = dt / tau; the non-leaky variant integrates, r_t = r_{t-1} + α f(h_t); r_0 = 0.
    Network noise is governed by n_sd alone (also in eval mode): set n_sd = 0 for
    noise-free analyses. The defaults are the paper's network (train.py's defaults):
    leaky ReLU units, no network noise, dt = tau = 100 ms (a plain ReLU RNN) and
    PyTorch's default init; its rec_size is 64.
    """

    fused = True  # the hand-written recurrence; False: plain autograd (reference for tests)

    def __init__(self, inp_size, rec_size, out_size, n_sd=0.0, activation="relu", tau=100,
                 dt=100, leaky=True, init=None, n_members=1):
        super().__init__()
        for name, value in [("inp_size", inp_size), ("rec_size", rec_size),
                            ("out_size", out_size), ("n_members", n_members)]:
            checks.positive_int(name, value)
        checks.non_negative("n_sd", n_sd)
        checks.one_of("activation", activation, tuple(ACTIVATIONS))
        checks.positive("tau", tau)
        checks.positive("dt", dt)
        if not isinstance(leaky, bool):
            checks.fail("leaky", leaky, "True or False")
        checks.one_of("init", init, INITS)
        self.n_members, self.n_sd, self.leaky, self.activation_name = n_members, n_sd, leaky, activation
        self.alpha = dt / tau
        self.activation = ACTIVATIONS[activation]
        # Created in this order so a seed gives the same weights as the paper's nn.Linear model.
        self.inp_to_rec = ensemble.Linear(inp_size, rec_size, n_members)
        self.rec_to_rec = ensemble.Linear(rec_size, rec_size, n_members)
        self.rec_to_out = ensemble.Linear(rec_size, out_size, n_members)
        with torch.no_grad():
            for w in self.rec_to_rec.weight:  # one member at a time
                if init == "sparse":
                    n_nonzero = round(SPARSE_DENSITY * w.numel())
                    std = math.sqrt(2 / (SPARSE_DENSITY * rec_size))
                    w.zero_().view(-1)[torch.randperm(w.numel())[:n_nonzero]] = std * torch.randn(n_nonzero)
                elif init == "ortho":
                    nn.init.orthogonal_(w)

    @property
    def hidden_size(self):
        return self.rec_to_rec.in_features

    def _update(self, r, h):
        """r_t from r_{t-1} and the total input h_t."""
        f = self.activation(h)
        if not self.leaky:
            return torch.add(r, f, alpha=self.alpha)
        if self.alpha == 1:  # the paper's dt = tau: a plain RNN, skip the mixing op
            return f
        return torch.lerp(r, f, self.alpha)

    def forward(self, u, noise=None):
        """u (M, B, T, in) -> (rates (M, B, T, N), outputs (M, B, T, out)).

        noise: optional unit-variance ξ (M, B, T, N) to use instead of torch.randn (lets
        the caller draw each member's noise from its own generator); unused if n_sd = 0.
        """
        u, squeeze = with_member_dim(u, self.n_members, 4, "u")
        # Input drive for all steps at once, with both biases in one (the loop only does
        # W_rec r); the network noise is added in place (no extra (M, B, T, N) tensors).
        bias = (self.inp_to_rec.bias + self.rec_to_rec.bias).unsqueeze(1)
        drive = torch.baddbmm(bias, u.reshape(self.n_members, -1, u.shape[-1]),
                              self.inp_to_rec.weight.transpose(1, 2))
        drive = drive.view(*u.shape[:-1], drive.shape[-1])
        if self.n_sd > 0:
            if noise is None:
                noise = torch.randn_like(drive)
            else:
                noise, _ = with_member_dim(noise, self.n_members, 4, "noise")
                if noise.shape != drive.shape:
                    raise ValueError(f"noise must have shape {tuple(drive.shape)}, "
                                     f"got {tuple(noise.shape)}")
            drive.add_(noise, alpha=self.n_sd)
        if self.fused:
            rates = _Recurrence.apply(drive, self.rec_to_rec.weight, self.activation_name,
                                      self.alpha, self.leaky)
        else:
            rates = _reference_recurrence(drive, self.rec_to_rec.weight, self._update)
        outputs = self.rec_to_out(rates)
        return (rates[0], outputs[0]) if squeeze else (rates, outputs)

    def dynamics(self, u, r):
        """Noise-free one-step map r_{t-1} -> r_t under input u (fixed-point analysis).

        r (M, B, N), or (B, N) for a single network; u (M, B, in) / (B, in), broadcastable
        against r in the batch dim.
        """
        r, squeeze = with_member_dim(r, self.n_members, 3, "r")
        if squeeze:
            u = u.unsqueeze(0)
        r_next = self._update(r, self.inp_to_rec(u) + self.rec_to_rec(r))
        return r_next[0] if squeeze else r_next


class LSTM(nn.Module):
    """torch.nn.LSTM (gate order i, f, g, o) with member-dim parameters, plus a linear readout.

    Parameters are named lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
    lstm.bias_hh_l0 (a member's state dict matches nn.LSTM's under the prefix 'lstm.').
    """

    fused = True  # the hand-written recurrence; False: plain autograd (reference for tests)

    def __init__(self, inp_size, rec_size, out_size, n_members=1):
        super().__init__()
        for name, value in [("inp_size", inp_size), ("rec_size", rec_size),
                            ("out_size", out_size), ("n_members", n_members)]:
            checks.positive_int(name, value)
        self.n_members = n_members
        self.lstm = nn.Module()
        self.lstm.weight_ih_l0 = nn.Parameter(torch.empty(n_members, 4 * rec_size, inp_size))
        self.lstm.weight_hh_l0 = nn.Parameter(torch.empty(n_members, 4 * rec_size, rec_size))
        self.lstm.bias_ih_l0 = nn.Parameter(torch.empty(n_members, 4 * rec_size))
        self.lstm.bias_hh_l0 = nn.Parameter(torch.empty(n_members, 4 * rec_size))
        bound = 1 / math.sqrt(rec_size)
        with torch.no_grad():
            for m in range(n_members):  # same order as nn.LSTM, so M = 1 matches it per seed
                for p in self.lstm.parameters():
                    p[m].uniform_(-bound, bound)
        self.rec_to_out = ensemble.Linear(rec_size, out_size, n_members)

    @property
    def hidden_size(self):
        return self.lstm.weight_hh_l0.shape[2]

    def _step(self, gates_in, h, c):
        """One LSTM step from the input part of the gates (biases included)."""
        return _lstm_step(gates_in, h, c, self.lstm.weight_hh_l0)

    def _gates_in(self, u):
        """W_ih u + b_ih + b_hh for u (M, ..., in)."""
        flat = u.reshape(self.n_members, -1, u.shape[-1])
        bias = (self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0).unsqueeze(1)
        gates = torch.baddbmm(bias, flat, self.lstm.weight_ih_l0.transpose(1, 2))
        return gates.view(*u.shape[:-1], gates.shape[-1])

    def forward(self, u, noise=None):
        """u (M, B, T, in) -> (h of every step (M, B, T, H), outputs (M, B, T, out)).

        noise is accepted for a signature uniform with RNN, and ignored.
        """
        u, squeeze = with_member_dim(u, self.n_members, 4, "u")
        gates_in = self._gates_in(u)
        if self.fused:
            hs = _LSTMRecurrence.apply(gates_in, self.lstm.weight_hh_l0)
        else:
            hs = _reference_lstm(gates_in, self.lstm.weight_hh_l0)
        outputs = self.rec_to_out(hs)
        return (hs[0], outputs[0]) if squeeze else (hs, outputs)

    def dynamics(self, u, state):
        """One-step map of the state concat(h, c) (last dim 2H) under input u.

        state (M, B, 2H), or (B, 2H) for a single network; u (M, B, in) / (B, in).
        """
        state, squeeze = with_member_dim(state, self.n_members, 3, "state")
        if squeeze:
            u = u.unsqueeze(0)
        h, c = state.split(self.hidden_size, dim=-1)
        h, c = self._step(self._gates_in(u), h, c)
        state_next = torch.cat([h, c], dim=-1)
        return state_next[0] if squeeze else state_next
