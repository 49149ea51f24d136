"""Vectorised ensembles: layers whose parameters carry a leading member dimension.

An ensemble of M independent networks is one module whose every parameter has shape
(M, ...) and whose forward maps inputs (M, B, ..., n_in) to (M, B, ..., n_out). One
forward/backward then trains all members at once, and since Adam is elementwise each
member trains exactly as if it were alone. A single network is an ensemble of one.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import checks


class Linear(nn.Module):
    """M independent torch.nn.Linear layers: weight (M, out, in), bias (M, out)."""

    def __init__(self, in_features, out_features, n_members=1, bias=True):
        super().__init__()
        for name, value in [("in_features", in_features), ("out_features", out_features),
                            ("n_members", n_members)]:
            checks.positive_int(name, value)
        self.in_features, self.out_features, self.n_members = in_features, out_features, n_members
        self.weight = nn.Parameter(torch.empty(n_members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_members, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # Member by member, in the same order as torch.nn.Linear, so that with M = 1 a
        # given seed gives the same weights as torch.nn.Linear.
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            for m in range(self.n_members):
                nn.init.kaiming_uniform_(self.weight[m], a=math.sqrt(5))
                if self.bias is not None:
                    self.bias[m].uniform_(-bound, bound)

    def forward(self, x):
        """x (M, ..., in) -> (M, ..., out)."""
        if x.shape[0] != self.n_members:
            raise ValueError(f"input must have n_members={self.n_members} in its leading dim, "
                             f"got shape {tuple(x.shape)}")
        flat = x.reshape(self.n_members, -1, self.in_features)
        if self.bias is None:
            out = torch.bmm(flat, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"n_members={self.n_members}, bias={self.bias is not None}")


class LayerNorm(nn.Module):
    """M independent torch.nn.LayerNorm(n) layers: weight (M, n) ones, bias (M, n) zeros."""

    def __init__(self, n, n_members=1):
        super().__init__()
        checks.positive_int("n", n)
        checks.positive_int("n_members", n_members)
        self.n, self.n_members = n, n_members
        self.weight = nn.Parameter(torch.ones(n_members, n))
        self.bias = nn.Parameter(torch.zeros(n_members, n))

    def forward(self, x):
        """x (M, ..., n) -> (M, ..., n)."""
        flat = F.layer_norm(x, (self.n,)).reshape(self.n_members, -1, self.n)
        out = torch.addcmul(self.bias.unsqueeze(1), flat, self.weight.unsqueeze(1))
        return out.view(x.shape)


def with_member_dim(x, n_members, ndim, name="input"):
    """Return (x with its leading member dim, whether it had to be added).

    `ndim` is the number of dimensions including the member dim. Inputs without it
    are accepted only for a single network (n_members == 1).
    """
    if x.dim() == ndim:
        if x.shape[0] != n_members:
            raise ValueError(f"{name} has {x.shape[0]} members in its leading dim, "
                             f"the model has n_members={n_members}")
        return x, False
    if x.dim() == ndim - 1 and n_members == 1:
        return x.unsqueeze(0), True
    allowed = f"{ndim}" + (f" or {ndim - 1} (no member dim)" if n_members == 1 else "")
    raise ValueError(f"{name} must have {allowed} dimensions, got shape {tuple(x.shape)}")


def _n_members(module):
    """The member count shared by the leading dim of every entry of the state dict."""
    sizes = {v.shape[0] if v.dim() > 0 else None for v in module.state_dict().values()}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("module is not an ensemble: its state dict entries do not share "
                         f"one leading member dim (leading sizes {sorted(map(str, sizes))})")
    return sizes.pop()


def member_state_dict(module, m):
    """State dict of member m, member dim removed (shapes as the single torch modules)."""
    n = _n_members(module)
    if not 0 <= m < n:
        raise ValueError(f"member index m={m} out of range for {n} members")
    return {k: v[m].detach().clone() for k, v in module.state_dict().items()}


def load_member_state_dict(module, m, state_dict):
    """Copy a single network's state dict into member m of the ensemble `module`."""
    n = _n_members(module)
    if not 0 <= m < n:
        raise ValueError(f"member index m={m} out of range for {n} members")
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise ValueError(f"state dict keys do not match: missing {missing}, unexpected {unexpected}")
    for k, target in own.items():
        value = torch.as_tensor(state_dict[k])
        if value.shape != target.shape[1:]:
            raise ValueError(f"state dict entry {k!r} has shape {tuple(value.shape)}, "
                             f"expected {tuple(target.shape[1:])}")
        with torch.no_grad():
            target[m].copy_(value)  # state_dict() tensors share storage with the parameters
