"""Recurrent networks (SPEC §3): a rate RNN and an LSTM, both vectorised over ensemble members.

Every parameter has a leading member dim M; forward takes u (M, B, T, n_in) and returns
(M, B, T, ·). With n_members == 1 the member dim may be left out of the inputs, and is
then left out of the outputs too. Outputs are linear readouts (logits); the caller applies
the sigmoid / tanh.
"""

import math
import numbers

import torch
import torch.nn as nn

import ensemble
from ensemble import check_positive_int, with_member_dim

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
INITS = (None, "sparse", "ortho")
SPARSE_DENSITY = 0.15  # fraction of non-zero recurrent weights of the 'sparse' init


class RNN(nn.Module):
    """Rate RNN: h_t = W_in u_t + W_rec r_{t-1} + n_sd·ξ_t, r_t = (1-α) r_{t-1} + α f(h_t).

    α = dt / tau; the non-leaky variant integrates, r_t = r_{t-1} + α f(h_t); r_0 = 0.
    Network noise is governed by n_sd alone (also in eval mode): set n_sd = 0 for
    noise-free analyses.
    """

    def __init__(self, inp_size, rec_size, out_size, n_sd=0.1, activation="relu", tau=100,
                 dt=10, leaky=True, init=None, n_members=1):
        super().__init__()
        for name, value in [("inp_size", inp_size), ("rec_size", rec_size),
                            ("out_size", out_size), ("n_members", n_members)]:
            check_positive_int(name, value)
        if not isinstance(n_sd, numbers.Real) or n_sd < 0:
            raise ValueError(f"n_sd must be a number >= 0, got {n_sd!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        for name, value in [("tau", tau), ("dt", dt)]:
            if not isinstance(value, numbers.Real) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(leaky, bool):
            raise ValueError(f"leaky must be True or False, got {leaky!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.kwargs = dict(inp_size=inp_size, rec_size=rec_size, out_size=out_size, n_sd=n_sd,
                           activation=activation, tau=tau, dt=dt, leaky=leaky, init=init,
                           n_members=n_members)
        self.n_members, self.n_sd, self.leaky = n_members, n_sd, leaky
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
        # Input drive and recurrent bias for all steps at once; the loop only does W_rec r.
        drive = self.inp_to_rec(u) + self.rec_to_rec.bias[:, None, None, :]
        if self.n_sd > 0:
            if noise is None:
                noise = torch.randn_like(drive)
            else:
                noise, _ = with_member_dim(noise, self.n_members, 4, "noise")
                if noise.shape != drive.shape:
                    raise ValueError(f"noise must have shape {tuple(drive.shape)}, "
                                     f"got {tuple(noise.shape)}")
            drive = drive + self.n_sd * noise
        w_rec_t = self.rec_to_rec.weight.transpose(1, 2)
        r = drive.new_zeros(drive.shape[0], drive.shape[1], drive.shape[3])
        rates = []
        for drive_t in drive.unbind(2):  # unbind, not indexing: indexing is slow in backward
            r = self._update(r, torch.baddbmm(drive_t, r, w_rec_t))
            rates.append(r)
        rates = torch.stack(rates, 2)
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

    def __init__(self, inp_size, rec_size, out_size, n_members=1):
        super().__init__()
        for name, value in [("inp_size", inp_size), ("rec_size", rec_size),
                            ("out_size", out_size), ("n_members", n_members)]:
            check_positive_int(name, value)
        self.kwargs = dict(inp_size=inp_size, rec_size=rec_size, out_size=out_size,
                           n_members=n_members)
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
        gates = torch.baddbmm(gates_in, h, self.lstm.weight_hh_l0.transpose(1, 2))
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

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
        h = gates_in.new_zeros(u.shape[0], u.shape[1], self.hidden_size)
        c = torch.zeros_like(h)
        hs = []
        for gates_t in gates_in.unbind(2):
            h, c = self._step(gates_t, h, c)
            hs.append(h)
        hs = torch.stack(hs, 2)
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
